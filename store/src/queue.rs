//! The assignment queue: handing items to labelers and taking their judgments.
//!
//! Invariant: for every item, `remaining` + live leases + done judgments = the item's slots.
//! Claims lock the item row (`FOR UPDATE SKIP LOCKED`) and decrement `remaining`, so however
//! many labelers race, no item gets more judgments than its overlap, and the unique
//! (item, user) pair means nobody sees an item twice. Expired leases give their slot back.

use domain::{
    winner, Choice, JudgmentAck, JudgmentInput, JudgmentRules, Message, NextItem, Progress,
    ShownResponse,
};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::{rfc3339, Result, StoreError};

/// The next item for a labeler: a live lease they already hold (other than `exclude`, which
/// lets a client prefetch the item after the one on screen), else a newly claimed one.
/// `None` when nothing is left for them.
pub async fn next(
    pool: &PgPool,
    campaign: &domain::Campaign,
    user_id: Uuid,
    exclude: Option<Uuid>,
) -> Result<Option<NextItem>> {
    if !campaign.status.hands_out_items() {
        return Err(StoreError::Conflict(format!(
            "the campaign is {}",
            campaign.status
        )));
    }
    let mut conn = pool.acquire().await?;
    let held: Option<(Uuid, Uuid, Vec<Uuid>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT id, item_id, shown_order, expires_at FROM assignments
         WHERE user_id = $1 AND campaign_id = $2 AND status = 'leased' AND expires_at > now()
           AND id IS DISTINCT FROM $3
         ORDER BY leased_at LIMIT 1",
    )
    .bind(user_id)
    .bind(campaign.id)
    .bind(exclude)
    .fetch_optional(&mut *conn)
    .await?;
    let lease = match held {
        Some(lease) => Some(lease),
        None => match claim(&mut conn, campaign, user_id).await? {
            Some(lease) => Some(lease),
            // Only when nothing is open do expired leases matter: reclaim them and retry.
            None if reap_expired(&mut conn, campaign.id).await? > 0 => {
                claim(&mut conn, campaign, user_id).await?
            }
            None => None,
        },
    };
    let Some((assignment_id, item_id, shown_order, expires_at)) = lease else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT p.messages, c.id, c.text FROM items i
         JOIN prompts p ON p.id = i.prompt_id
         JOIN candidates c ON c.id = ANY (i.candidate_ids)
         WHERE i.id = $1",
    )
    .bind(item_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut prompt: Vec<Message> = Vec::new();
    let mut texts = std::collections::HashMap::new();
    for row in &rows {
        if prompt.is_empty() {
            let messages: serde_json::Value = row.try_get("messages")?;
            prompt = serde_json::from_value(messages)
                .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))?;
        }
        texts.insert(
            row.try_get::<Uuid, _>("id")?,
            row.try_get::<String, _>("text")?,
        );
    }
    let responses = shown_order
        .iter()
        .map(|id| ShownResponse {
            id: *id,
            text: texts.remove(id).unwrap_or_default(),
        })
        .collect();
    let progress = progress_on(&mut conn, campaign.id, user_id).await?;
    Ok(Some(NextItem {
        assignment_id,
        campaign_id: campaign.id,
        item_id,
        prompt,
        responses,
        expires_at: rfc3339(expires_at),
        progress,
    }))
}

type Lease = (Uuid, Uuid, Vec<Uuid>, chrono::DateTime<chrono::Utc>);

async fn claim(
    conn: &mut PgConnection,
    campaign: &domain::Campaign,
    user_id: Uuid,
) -> Result<Option<Lease>> {
    let keep_order: bool = rand::random();
    Ok(sqlx::query_as(
        "WITH picked AS (
             SELECT i.id FROM items i
             WHERE i.campaign_id = $1 AND i.remaining > 0
               AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.user_id = $2)
             ORDER BY i.seq
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         ), taken AS (
             UPDATE items SET remaining = remaining - 1 FROM picked
             WHERE items.id = picked.id
             RETURNING items.id, items.candidate_ids
         )
         INSERT INTO assignments (id, item_id, campaign_id, user_id, shown_order, status, expires_at)
         SELECT $3, taken.id, $1, $2,
                CASE WHEN $4 THEN taken.candidate_ids
                     ELSE ARRAY[taken.candidate_ids[2], taken.candidate_ids[1]] END,
                'leased', now() + make_interval(secs => $5)
         FROM taken
         RETURNING id, item_id, shown_order, expires_at",
    )
    .bind(campaign.id)
    .bind(user_id)
    .bind(Uuid::now_v7())
    .bind(keep_order)
    .bind(f64::from(campaign.lease_seconds))
    .fetch_optional(conn)
    .await?)
}

/// Marks a campaign's expired leases and returns their slots to the queue.
pub async fn reap_expired(conn: &mut PgConnection, campaign_id: Uuid) -> Result<u64> {
    let reaped: i64 = sqlx::query_scalar(
        "WITH expired AS (
             UPDATE assignments SET status = 'expired'
             WHERE campaign_id = $1 AND status = 'leased' AND expires_at <= now()
             RETURNING item_id
         ), freed AS (
             UPDATE items SET remaining = remaining + e.n
             FROM (SELECT item_id, count(*)::int AS n FROM expired GROUP BY item_id) e
             WHERE items.id = e.item_id
             RETURNING 1
         )
         SELECT count(*) FROM expired",
    )
    .bind(campaign_id)
    .fetch_one(conn)
    .await?;
    Ok(reaped as u64)
}

async fn progress_on(
    conn: &mut PgConnection,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<Progress> {
    let (done, skipped): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FILTER (WHERE status = 'skipped')
         FROM assignments WHERE user_id = $1 AND campaign_id = $2",
    )
    .bind(user_id)
    .bind(campaign_id)
    .fetch_one(conn)
    .await?;
    Ok(Progress { done, skipped })
}

pub async fn progress(pool: &PgPool, campaign_id: Uuid, user_id: Uuid) -> Result<Progress> {
    let mut conn = pool.acquire().await?;
    progress_on(&mut conn, campaign_id, user_id).await
}

/// Stores a judgment for the caller's assignment. Repeating a request (same
/// `client_request_id`) returns the stored answer with `created: false`; a different answer
/// to an already judged assignment is a conflict. A late answer to an expired lease is taken
/// only while the item still has an open slot.
pub async fn submit(
    pool: &PgPool,
    user_id: Uuid,
    assignment_id: Uuid,
    input: JudgmentInput,
) -> Result<JudgmentAck> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT a.item_id, a.campaign_id, a.shown_order, a.status, c.status AS campaign_status,
                c.allow_tie, c.allow_both_bad, c.strength_scale, c.rationale
         FROM assignments a JOIN campaigns c ON c.id = a.campaign_id
         WHERE a.id = $1 AND a.user_id = $2
         FOR UPDATE OF a",
    )
    .bind(assignment_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let item_id: Uuid = row.try_get("item_id")?;
    let campaign_id: Uuid = row.try_get("campaign_id")?;
    let shown_order: Vec<Uuid> = row.try_get("shown_order")?;
    let status: String = row.try_get("status")?;

    if let Some(ack) = stored_ack(&mut tx, user_id, &input.client_request_id).await? {
        if ack.assignment_id != assignment_id {
            return Err(StoreError::Conflict(
                "client_request_id was already used for another assignment".into(),
            ));
        }
        let progress = progress_on(&mut tx, campaign_id, user_id).await?;
        return Ok(JudgmentAck { progress, ..ack });
    }
    if status == "done" || status == "skipped" {
        return Err(StoreError::Conflict(
            "this assignment was already judged".into(),
        ));
    }
    let campaign_status: domain::CampaignStatus =
        row.try_get::<String, _>("campaign_status")?.parse()?;
    if !campaign_status.accepts_judgments() {
        return Err(StoreError::Conflict(format!(
            "the campaign is {campaign_status}"
        )));
    }
    let rules = JudgmentRules {
        allow_tie: row.try_get("allow_tie")?,
        allow_both_bad: row.try_get("allow_both_bad")?,
        strength_scale: row.try_get("strength_scale")?,
        rationale: row.try_get::<String, _>("rationale")?.parse()?,
    };
    let input = input.validated(&rules)?;
    if status == "expired" {
        let retaken = sqlx::query(
            "UPDATE items SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0",
        )
        .bind(item_id)
        .execute(&mut *tx)
        .await?;
        if retaken.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "the lease on this item expired and other labelers took its place".into(),
            ));
        }
    }
    let winner_id = winner(input.choice, &shown_order);
    let judgment_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO judgments (id, assignment_id, item_id, campaign_id, user_id, choice,
             winner_candidate_id, shown_order, strength, rationale, time_on_task_ms, client_request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(judgment_id)
    .bind(assignment_id)
    .bind(item_id)
    .bind(campaign_id)
    .bind(user_id)
    .bind(input.choice.as_str())
    .bind(winner_id)
    .bind(&shown_order)
    .bind(input.strength)
    .bind(&input.rationale)
    .bind(input.time_on_task_ms)
    .bind(&input.client_request_id)
    .execute(&mut *tx)
    .await?;
    let skipped = input.choice == Choice::Skip;
    sqlx::query(
        "UPDATE assignments SET status = CASE WHEN $2 THEN 'skipped' ELSE 'done' END, completed_at = now()
         WHERE id = $1",
    )
    .bind(assignment_id)
    .bind(skipped)
    .execute(&mut *tx)
    .await?;
    // A skip hands the slot back to the queue; a judgment fills it for good.
    sqlx::query(
        "UPDATE items SET remaining = remaining + CASE WHEN $2 THEN 1 ELSE 0 END,
                          judgment_count = judgment_count + CASE WHEN $2 THEN 0 ELSE 1 END
         WHERE id = $1",
    )
    .bind(item_id)
    .bind(skipped)
    .execute(&mut *tx)
    .await?;
    let progress = progress_on(&mut tx, campaign_id, user_id).await?;
    tx.commit().await?;
    Ok(JudgmentAck {
        judgment_id,
        assignment_id,
        choice: input.choice,
        winner_candidate_id: winner_id,
        created: true,
        progress,
    })
}

async fn stored_ack(
    conn: &mut PgConnection,
    user_id: Uuid,
    client_request_id: &str,
) -> Result<Option<JudgmentAck>> {
    let row = sqlx::query(
        "SELECT id, assignment_id, choice, winner_candidate_id FROM judgments
         WHERE user_id = $1 AND client_request_id = $2",
    )
    .bind(user_id)
    .bind(client_request_id)
    .fetch_optional(conn)
    .await?;
    row.map(|row| {
        Ok(JudgmentAck {
            judgment_id: row.try_get("id")?,
            assignment_id: row.try_get("assignment_id")?,
            choice: row.try_get::<String, _>("choice")?.parse()?,
            winner_candidate_id: row.try_get("winner_candidate_id")?,
            created: false,
            progress: Progress::default(),
        })
    })
    .transpose()
}

/// The campaign of one of the caller's assignments (others' assignments are not found).
pub async fn assignment_campaign(
    pool: &PgPool,
    assignment_id: Uuid,
    user_id: Uuid,
) -> Result<Uuid> {
    sqlx::query_scalar("SELECT campaign_id FROM assignments WHERE id = $1 AND user_id = $2")
        .bind(assignment_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}
