//! Changing an answer: a labeler's last judgment in a campaign, while the campaign's undo
//! window lasts. The judgment takes the new answer; the one it replaces is kept in
//! `judgment_revisions`, so the history loses nothing.

use domain::{winner, Campaign, Choice, JudgmentAck, JudgmentInput};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::{stored, Result, StoreError};

/// The campaign of the caller's judgment; another labeler's judgment is not found.
pub async fn campaign_of(pool: &PgPool, user_id: Uuid, judgment_id: Uuid) -> Result<Uuid> {
    sqlx::query_scalar("SELECT campaign_id FROM judgments WHERE id = $1 AND user_id = $2")
        .bind(judgment_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

/// The judgment as it stands, locked, with what decides whether it may change.
#[derive(FromRow)]
struct Standing {
    item_id: Uuid,
    assignment_id: Uuid,
    choice: String,
    winner_candidate_id: Option<Uuid>,
    shown_order: Vec<Uuid>,
    strength: Option<i32>,
    rationale: Option<String>,
    answered_at: chrono::DateTime<chrono::Utc>,
    campaign_status: String,
    undo_seconds: i32,
    too_late: bool,
    superseded: bool,
    /// This request already made a change of this judgment.
    repeated: bool,
}

/// Replaces the answer of the caller's judgment `judgment_id` in `campaign` (which the caller
/// may label in). The judgment keeps its submit's `client_request_id` and time on task; the
/// change is recorded under the input's `client_request_id`, and repeating that request
/// returns the answer as it stands with `created: false`. Refused (a conflict) once the window
/// has passed, for any but the labeler's latest judgment in the campaign, and while the
/// campaign takes no judgments. A skip turned into an answer needs an open place on the item;
/// an answer turned into a skip gives its place back, as a skip does.
pub async fn revise(
    pool: &PgPool,
    user_id: Uuid,
    campaign: &Campaign,
    judgment_id: Uuid,
    input: JudgmentInput,
) -> Result<JudgmentAck> {
    let input = input.validated(&campaign.judgment_rules())?;
    let mut tx = pool.begin().await?;
    // The labeler's progress row: every judgment of theirs in the campaign updates it, so
    // holding it means no newer judgment commits while this one changes.
    sqlx::query(
        "SELECT 1 FROM labeler_progress WHERE campaign_id = $1 AND user_id = $2 FOR UPDATE",
    )
    .bind(campaign.id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let standing: Standing = sqlx::query_as(
        "SELECT j.item_id, j.assignment_id, j.choice, j.winner_candidate_id, j.shown_order,
                j.strength, j.rationale, coalesce(j.revised_at, j.created_at) AS answered_at,
                c.status AS campaign_status, c.undo_seconds,
                now() > j.created_at + make_interval(secs => c.undo_seconds) AS too_late,
                EXISTS (SELECT 1 FROM judgments later
                        WHERE later.campaign_id = j.campaign_id AND later.user_id = j.user_id
                          AND (later.created_at, later.id) > (j.created_at, j.id)) AS superseded,
                EXISTS (SELECT 1 FROM judgment_revisions r
                        WHERE r.judgment_id = j.id AND r.request_id = $4) AS repeated
         FROM judgments j JOIN campaigns c ON c.id = j.campaign_id
         WHERE j.id = $1 AND j.user_id = $2 AND j.campaign_id = $3
         FOR UPDATE OF j",
    )
    .bind(judgment_id)
    .bind(user_id)
    .bind(campaign.id)
    .bind(&input.client_request_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let before: Choice = stored(&standing.choice)?;
    if standing.repeated {
        let progress = crate::queue::progress(&mut *tx, campaign.id, user_id).await?;
        return Ok(JudgmentAck {
            judgment_id,
            assignment_id: standing.assignment_id,
            choice: before,
            winner_candidate_id: standing.winner_candidate_id,
            created: false,
            progress,
        });
    }
    let status: domain::CampaignStatus = stored(&standing.campaign_status)?;
    if !status.accepts_judgments() {
        return Err(StoreError::Conflict(format!("the campaign is {status}")));
    }
    if standing.undo_seconds == 0 {
        return Err(StoreError::Conflict(
            "this campaign does not let labelers change their answers".into(),
        ));
    }
    if standing.too_late {
        return Err(StoreError::Conflict(format!(
            "an answer can be changed for {} after it is given, and this one is older",
            domain::words::duration(standing.undo_seconds)
        )));
    }
    if standing.superseded {
        return Err(StoreError::Conflict(
            "only your last answer in this campaign can be changed".into(),
        ));
    }
    let (was_skip, is_skip) = (before == Choice::Skip, input.choice == Choice::Skip);
    if was_skip != is_skip {
        // The place: a skip handed it back, an answer holds one.
        let taken = sqlx::query(
            "UPDATE items SET remaining = remaining + CASE WHEN $2 THEN 1 ELSE -1 END
             WHERE id = $1 AND ($2 OR remaining > 0)",
        )
        .bind(standing.item_id)
        .bind(is_skip)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Err(StoreError::Conflict(
                "other labelers have taken this item's places since you skipped it, so the skip stays"
                    .into(),
            ));
        }
        sqlx::query("UPDATE assignments SET status = $2 WHERE id = $1")
            .bind(standing.assignment_id)
            .bind(if is_skip { "skipped" } else { "done" })
            .execute(&mut *tx)
            .await?;
        let shift: i64 = if is_skip { -1 } else { 1 };
        sqlx::query(
            "UPDATE labeler_progress SET done = done + $3, skipped = skipped - $3
             WHERE campaign_id = $1 AND user_id = $2",
        )
        .bind(campaign.id)
        .bind(user_id)
        .bind(shift)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO judgment_revisions (id, judgment_id, choice, winner_candidate_id, strength,
                                         rationale, answered_at, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(judgment_id)
    .bind(&standing.choice)
    .bind(standing.winner_candidate_id)
    .bind(standing.strength)
    .bind(&standing.rationale)
    .bind(standing.answered_at)
    .bind(&input.client_request_id)
    .execute(&mut *tx)
    .await?;
    let winner_id = winner(input.choice, &standing.shown_order);
    sqlx::query(
        "UPDATE judgments SET choice = $2, winner_candidate_id = $3, strength = $4,
                rationale = $5, revised_at = now()
         WHERE id = $1",
    )
    .bind(judgment_id)
    .bind(input.choice.as_str())
    .bind(winner_id)
    .bind(input.strength)
    .bind(&input.rationale)
    .execute(&mut *tx)
    .await?;
    let progress = crate::queue::progress(&mut *tx, campaign.id, user_id).await?;
    tx.commit().await?;
    Ok(JudgmentAck {
        judgment_id,
        assignment_id: standing.assignment_id,
        choice: input.choice,
        winner_candidate_id: winner_id,
        created: true,
        progress,
    })
}
