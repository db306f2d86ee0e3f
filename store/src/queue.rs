//! The assignment queue: handing items to labelers and taking their judgments.
//!
//! Invariant: for every item, `remaining` + live leases + done judgments = the item's slots.
//! Claims lock the item row (`FOR UPDATE SKIP LOCKED`) and decrement `remaining`, so however
//! many labelers race, no item gets more judgments than its overlap, and the unique
//! (item, user) pair means nobody sees an item twice. Expired leases give their slot back.
//!
//! The SQL lives in the functions `pairwise_next`, `pairwise_submit` and
//! `pairwise_submit_next` (migrations `20261203000001_queue_round_trips.sql` and
//! `20261204000001_lighter_judgments.sql`), so each labeling request costs one round trip to
//! PostgreSQL; the rules (access, validation, the winner) stay in Rust and the domain crate.

use domain::{
    winner, CampaignStatus, CurrentUser, JudgmentAck, JudgmentInput, Message, Need, NextItem,
    Outlook, Progress, ShownResponse,
};
use std::sync::LazyLock;

use sqlx::types::Json;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::access::{CampaignAccess, CampaignAccessRow};
use crate::campaigns::CAMPAIGN_COLUMNS;
use crate::{rfc3339, stored, Result, StoreError};

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
    let hand_out = || {
        // Named as `pairwise_submit_next` names them, so one reader serves both.
        sqlx::query_as::<_, NextRow>(
            "SELECT assignment_id AS next_assignment_id, item_id AS next_item_id,
                    shown_order AS next_shown_order, expires_at AS next_expires_at,
                    messages AS next_messages, texts AS next_texts, done AS next_done,
                    skipped AS next_skipped
             FROM pairwise_next($1, $2, $3, $4, $5, $6)",
        )
        .bind(campaign.id)
        .bind(user_id)
        .bind(exclude)
        .bind(Uuid::now_v7())
        .bind(rand::random::<bool>())
        .bind(f64::from(campaign.lease_seconds))
        .fetch_optional(pool)
    };
    let row = match hand_out().await {
        Err(e) if same_labeler_raced(&e) => hand_out().await?,
        other => other?,
    };
    match row {
        Some(row) => row.into_item(campaign.id),
        None => Ok(None),
    }
}

/// Whether a hand-out failed because another request of the same labeler (a second tab)
/// leased them the same item and committed first: both claims saw no assignment of theirs in
/// their snapshots. Asking again then returns the lease that request made.
fn same_labeler_raced(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|e| e.constraint() == Some("assignments_item_id_user_id_key"))
}

/// The `next_*` columns of `pairwise_next` (renamed) and `pairwise_submit_next`: all NULL when
/// no item was handed out, hence all optional.
#[derive(FromRow)]
struct NextRow {
    next_assignment_id: Option<Uuid>,
    next_item_id: Option<Uuid>,
    next_shown_order: Option<Vec<Uuid>>,
    next_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    next_messages: Option<Json<Vec<Message>>>,
    next_texts: Option<Vec<String>>,
    next_done: Option<i64>,
    next_skipped: Option<i64>,
}

impl NextRow {
    /// The item handed out; `None` when `next_assignment_id` is NULL.
    fn into_item(self, campaign_id: Uuid) -> Result<Option<NextItem>> {
        let Some(assignment_id) = self.next_assignment_id else {
            return Ok(None);
        };
        let shown_order = filled(self.next_shown_order, "next_shown_order")?;
        let texts = filled(self.next_texts, "next_texts")?;
        let Json(prompt) = filled(self.next_messages, "next_messages")?;
        let responses = shown_order
            .into_iter()
            .zip(texts)
            .map(|(id, text)| ShownResponse { id, text })
            .collect();
        Ok(Some(NextItem {
            assignment_id,
            campaign_id,
            item_id: filled(self.next_item_id, "next_item_id")?,
            prompt,
            responses,
            expires_at: rfc3339(filled(self.next_expires_at, "next_expires_at")?),
            progress: Progress {
                done: filled(self.next_done, "next_done")?,
                skipped: filled(self.next_skipped, "next_skipped")?,
            },
        }))
    }
}

/// A column the queue functions fill whenever the row's outcome needs it; NULL there fails as
/// `Row::try_get` fails on a NULL read as a value.
fn filled<T>(value: Option<T>, column: &str) -> Result<T> {
    value.ok_or_else(|| {
        StoreError::Db(sqlx::Error::ColumnDecode {
            index: format!("{column:?}"),
            source: Box::new(sqlx::error::UnexpectedNullError),
        })
    })
}

pub async fn progress<'e>(
    db: impl sqlx::PgExecutor<'e>,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<Progress> {
    let counts: Option<(i64, i64)> = sqlx::query_as(
        "SELECT done, skipped FROM labeler_progress WHERE campaign_id = $1 AND user_id = $2",
    )
    .bind(campaign_id)
    .bind(user_id)
    .fetch_optional(db)
    .await?;
    let (done, skipped) = counts.unwrap_or_default();
    Ok(Progress { done, skipped })
}

/// What is left for a labeler and for the campaign: counted when a page opens, never on the
/// labeling loop's path. An item is left for a labeler while they hold a live lease on it, or
/// have no assignment of it and it has open slots (the queue never hands an item to the same
/// labeler twice, so one whose lease ran out is not theirs any more).
pub async fn outlook(pool: &PgPool, campaign: &domain::Campaign, user_id: Uuid) -> Result<Outlook> {
    let (left_for_you, items, items_complete): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*) FILTER (WHERE mine.status IS NULL AND i.remaining > 0
                                    OR mine.status = 'leased' AND mine.expires_at > now()),
                count(*) FILTER (WHERE NOT i.is_gold),
                count(*) FILTER (WHERE NOT i.is_gold AND coalesce(j.n, 0) >= $3)
         FROM items i
         LEFT JOIN assignments mine ON mine.item_id = i.id AND mine.user_id = $2
         {}
         WHERE i.campaign_id = $1",
        crate::stats::ITEM_JUDGMENTS
    ))
    .bind(campaign.id)
    .bind(user_id)
    .bind(campaign.overlap)
    .fetch_one(pool)
    .await?;
    Ok(Outlook {
        left_for_you,
        items,
        items_complete,
    })
}

/// An assignment of the caller with its campaign, their membership and the shown order.
static ASSIGNMENT_ACCESS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CAMPAIGN_COLUMNS}, m.role AS member_role, a.shown_order
         FROM assignments a
         JOIN campaigns c ON c.id = a.campaign_id
         LEFT JOIN campaign_members m ON m.campaign_id = c.id AND m.user_id = a.user_id
         WHERE a.id = $1 AND a.user_id = $2"
    )
});

/// The campaign statuses that take judgments, as `pairwise_submit` checks them under its lock.
static ACCEPTING: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    CampaignStatus::ALL
        .iter()
        .filter(|s| s.accepts_judgments())
        .map(|s| s.as_str())
        .collect()
});

/// The caller's assignment: its campaign, if they may label in it, and the candidates in the
/// order they were shown. Unknown ids and others' assignments are not found; the campaign's
/// access rule applies as in [`crate::access::campaign_for`].
pub(crate) async fn assignment_for(
    pool: &PgPool,
    user: &CurrentUser,
    assignment_id: Uuid,
) -> Result<(domain::Campaign, Vec<Uuid>)> {
    let row = sqlx::query_as::<_, AssignmentRow>(&ASSIGNMENT_ACCESS)
        .bind(assignment_id)
        .bind(user.id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let campaign = CampaignAccess::try_from(row.access)?.check(user, Need::Label)?;
    Ok((campaign, row.shown_order))
}

/// A row of [`ASSIGNMENT_ACCESS`].
#[derive(FromRow)]
struct AssignmentRow {
    #[sqlx(flatten)]
    access: CampaignAccessRow,
    shown_order: Vec<Uuid>,
}

/// Stores a judgment for the caller's assignment. Repeating a request (same
/// `client_request_id`) returns the stored answer with `created: false`; a different answer
/// to an already judged assignment is a conflict. A late answer to an expired lease is taken
/// only while the item still has an open slot. Others' assignments are not found.
pub async fn submit(
    pool: &PgPool,
    user: &CurrentUser,
    assignment_id: Uuid,
    input: JudgmentInput,
) -> Result<JudgmentAck> {
    let (campaign, shown_order) = assignment_for(pool, user, assignment_id).await?;
    let (ack, _) = submit_checked(
        pool,
        user.id,
        assignment_id,
        &campaign,
        &shown_order,
        input,
        None,
    )
    .await?;
    Ok(ack)
}

/// After a judgment: hand out the labeler's next item in the same transaction, other than
/// `exclude` (an item the client holds in reserve).
#[derive(Debug, Clone, Copy, Default)]
pub struct HandOut {
    pub exclude: Option<Uuid>,
}

/// [`submit`] for a caller already allowed to label in `campaign`, the assignment's campaign,
/// whose shown order is `shown_order`. The assignment's owner and the campaign's status are
/// checked again under the assignment's lock. With `hand_out`, the same round trip and
/// transaction also hand out the labeler's next item (as [`next`]; none when the campaign
/// hands out no items or nothing is left), once the judgment is stored or found repeated.
pub(crate) async fn submit_checked(
    pool: &PgPool,
    user_id: Uuid,
    assignment_id: Uuid,
    campaign: &domain::Campaign,
    shown_order: &[Uuid],
    input: JudgmentInput,
    hand_out: Option<HandOut>,
) -> Result<(JudgmentAck, Option<NextItem>)> {
    let input = input.validated(&campaign.judgment_rules())?;
    let winner_id = winner(input.choice, shown_order);
    let hand_out = hand_out.filter(|_| campaign.status.hands_out_items());
    // Without a hand-out, the plain function: no wrapper's cost on the two-request path.
    let sql = if hand_out.is_some() {
        "SELECT * FROM pairwise_submit_next($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                                            $11, $12, $13, $14, $15)"
    } else {
        "SELECT outcome, judgment_id, choice, winner_candidate_id, done, skipped, campaign_status
         FROM pairwise_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    };
    let submit = || {
        let query = sqlx::query(sql)
            .bind(assignment_id)
            .bind(user_id)
            .bind(Uuid::now_v7())
            .bind(input.choice.as_str())
            .bind(winner_id)
            .bind(input.strength)
            .bind(&input.rationale)
            .bind(input.time_on_task_ms)
            .bind(&input.client_request_id)
            .bind(&*ACCEPTING);
        match hand_out {
            Some(hand_out) => query
                .bind(campaign.id)
                .bind(hand_out.exclude)
                .bind(Uuid::now_v7())
                .bind(rand::random::<bool>())
                .bind(f64::from(campaign.lease_seconds)),
            None => query,
        }
        .fetch_one(pool)
    };
    // The judgment and the hand-out are one transaction: after a race the whole call is
    // repeated, and the judgment, already stored or not, is recognised by its request id.
    let row = match submit().await {
        Err(e) if same_labeler_raced(&e) => submit().await?,
        other => other?,
    };
    let submitted = SubmitRow::from_row(&row)?;
    let created = match submitted.outcome.as_str() {
        "created" => true,
        "repeated" => false,
        "request_reused" => {
            return Err(StoreError::Conflict(
                "client_request_id was already used for another assignment".into(),
            ))
        }
        "not_found" => return Err(StoreError::NotFound),
        "judged" => {
            return Err(StoreError::Conflict(
                "this assignment was already judged".into(),
            ))
        }
        "not_accepting" => {
            let status = filled(submitted.campaign_status, "campaign_status")?;
            return Err(StoreError::Conflict(format!("the campaign is {status}")));
        }
        "taken" => {
            return Err(StoreError::Conflict(
                "the lease on this item expired and other labelers took its place".into(),
            ))
        }
        other => {
            return Err(StoreError::Db(sqlx::Error::Protocol(format!(
                "pairwise_submit returned the unknown outcome {other:?}"
            ))))
        }
    };
    let ack = JudgmentAck {
        judgment_id: filled(submitted.judgment_id, "judgment_id")?,
        assignment_id,
        choice: stored(&filled(submitted.choice, "choice")?)?,
        winner_candidate_id: submitted.winner_candidate_id,
        created,
        progress: Progress {
            done: filled(submitted.done, "done")?,
            skipped: filled(submitted.skipped, "skipped")?,
        },
    };
    if created {
        // Every way in (API, labeling page) passes here: `/metrics` counts them all.
        metrics::counter!("pairwise_judgments_total").increment(1);
    }
    // The same row carries the `next_*` columns only with a hand-out.
    let next = match hand_out {
        Some(_) => NextRow::from_row(&row)?.into_item(campaign.id)?,
        None => None,
    };
    Ok((ack, next))
}

/// The columns of `pairwise_submit`; those an outcome does not need may be NULL.
#[derive(FromRow)]
struct SubmitRow {
    outcome: String,
    judgment_id: Option<Uuid>,
    choice: Option<String>,
    winner_candidate_id: Option<Uuid>,
    done: Option<i64>,
    skipped: Option<i64>,
    campaign_status: Option<String>,
}
