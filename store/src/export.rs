//! Reading preference data out for export, as streams (constant memory however many
//! judgments), and the `exports` table that records each export.

use domain::{
    ExportCounts, ExportFile, ExportRecord, ExportSpec, ExportStatus, Message, RawJudgment, Votes,
};
use std::sync::LazyLock;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use sqlx::PgPool;
use uuid::Uuid;

use crate::lease::Leased;
use crate::{rfc3339, stored, Result, StoreError, PSEUDONYM, PSEUDONYM_KEY};

/// One judged item with its two responses (import order) and the votes on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemVotes {
    pub item_id: Uuid,
    pub prompt_id: Uuid,
    pub messages: Vec<Message>,
    pub first_text: String,
    pub first_model: Option<String>,
    pub second_text: String,
    pub second_model: Option<String>,
    pub votes: Votes,
    /// Decisive votes for the response shown on the left, and all decisive votes.
    pub left_wins: u64,
    pub decisive: u64,
}

#[derive(sqlx::FromRow)]
struct ItemVotesRow {
    item_id: Uuid,
    prompt_id: Uuid,
    messages: String,
    first_text: String,
    first_model: Option<String>,
    second_text: String,
    second_model: Option<String>,
    first_votes: i64,
    second_votes: i64,
    tie_votes: i64,
    both_bad_votes: i64,
    first_strength_sum: f64,
    first_strength_n: i64,
    second_strength_sum: f64,
    second_strength_n: i64,
    left_wins: i64,
    decisive: i64,
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn messages(text: &str) -> Result<Vec<Message>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Conflict(format!("a stored prompt is not a message list: {e}")))
}

impl TryFrom<ItemVotesRow> for ItemVotes {
    type Error = StoreError;

    fn try_from(row: ItemVotesRow) -> Result<Self> {
        Ok(Self {
            item_id: row.item_id,
            prompt_id: row.prompt_id,
            messages: messages(&row.messages)?,
            first_text: row.first_text,
            first_model: row.first_model,
            second_text: row.second_text,
            second_model: row.second_model,
            votes: Votes {
                first: count(row.first_votes),
                second: count(row.second_votes),
                tie: count(row.tie_votes),
                both_bad: count(row.both_bad_votes),
                first_strength: (row.first_strength_sum, count(row.first_strength_n)),
                second_strength: (row.second_strength_sum, count(row.second_strength_n)),
            },
            left_wins: row.left_wins.max(0) as u64,
            decisive: row.decisive.max(0) as u64,
        })
    }
}

/// The filters every export query shares, as SQL: $1 campaigns, $2 since, $3 until,
/// $4 exclude disabled labelers, $5 exclude gold items.
const JUDGMENT_FILTER: &str = "j.campaign_id = ANY($1)
    AND ($2::timestamptz IS NULL OR j.created_at >= $2)
    AND ($3::timestamptz IS NULL OR j.created_at < $3)
    AND NOT ($4 AND u.disabled)
    AND NOT ($5 AND i.is_gold)";

/// The votes per item, joined with the prompt and both responses: the query a pair export
/// streams (and the one `make bench-export` hands to `COPY` for comparison).
pub static ITEM_VOTES_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH votes AS (
            SELECT j.item_id,
                count(*) FILTER (WHERE j.winner_candidate_id = i.candidate_ids[1]) AS first_votes,
                count(*) FILTER (WHERE j.winner_candidate_id = i.candidate_ids[2]) AS second_votes,
                count(*) FILTER (WHERE j.choice = 'tie') AS tie_votes,
                count(*) FILTER (WHERE j.choice = 'both_bad') AS both_bad_votes,
                coalesce(sum(j.strength) FILTER (WHERE j.winner_candidate_id = i.candidate_ids[1]), 0)::float8
                    AS first_strength_sum,
                count(j.strength) FILTER (WHERE j.winner_candidate_id = i.candidate_ids[1]) AS first_strength_n,
                coalesce(sum(j.strength) FILTER (WHERE j.winner_candidate_id = i.candidate_ids[2]), 0)::float8
                    AS second_strength_sum,
                count(j.strength) FILTER (WHERE j.winner_candidate_id = i.candidate_ids[2]) AS second_strength_n,
                count(*) FILTER (WHERE j.choice = 'a') AS left_wins,
                count(*) FILTER (WHERE j.choice IN ('a', 'b')) AS decisive
            FROM judgments j
            JOIN items i ON i.id = j.item_id
            JOIN users u ON u.id = j.user_id
            WHERE j.choice <> 'skip' AND {JUDGMENT_FILTER}
            GROUP BY j.item_id
        )
        SELECT i.id AS item_id, i.prompt_id, p.messages::text AS messages,
               ca.text AS first_text, ca.metadata->>'model' AS first_model,
               cb.text AS second_text, cb.metadata->>'model' AS second_model,
               v.first_votes, v.second_votes, v.tie_votes, v.both_bad_votes,
               v.first_strength_sum, v.first_strength_n, v.second_strength_sum, v.second_strength_n,
               v.left_wins, v.decisive
        FROM votes v
        JOIN items i ON i.id = v.item_id
        JOIN prompts p ON p.id = i.prompt_id
        JOIN candidates ca ON ca.id = i.candidate_ids[1]
        JOIN candidates cb ON cb.id = i.candidate_ids[2]
        ORDER BY i.prompt_id, i.seq"
    )
});

/// Streams the judged items of an export, in item order.
pub fn item_votes<'a>(pool: &'a PgPool, spec: &ExportSpec) -> BoxStream<'a, Result<ItemVotes>> {
    sqlx::query_as::<_, ItemVotesRow>(ITEM_VOTES_SQL.as_str())
        .bind(spec.campaigns.clone())
        .bind(spec.since)
        .bind(spec.until)
        .bind(spec.exclude_disabled)
        .bind(spec.exclude_gold)
        .fetch(pool)
        .map(|row| ItemVotes::try_from(row?))
        .boxed()
}

#[derive(sqlx::FromRow)]
struct RawRow {
    judgment_id: Uuid,
    campaign_id: Uuid,
    item_id: Uuid,
    prompt_id: Uuid,
    labeler: String,
    created_at: chrono::DateTime<chrono::Utc>,
    choice: String,
    chosen_candidate_id: Option<Uuid>,
    shown_order: Vec<Uuid>,
    strength: Option<i32>,
    rationale: Option<String>,
    time_on_task_ms: Option<i32>,
    is_gold: bool,
    messages: String,
    first_candidate_id: Uuid,
    first_text: String,
    first_metadata: String,
    second_candidate_id: Uuid,
    second_text: String,
    second_metadata: String,
}

static RAW_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT j.id AS judgment_id, j.campaign_id, j.item_id, i.prompt_id,
                CASE WHEN $6 THEN u.email ELSE {PSEUDONYM} END AS labeler,
                j.created_at, j.choice, j.winner_candidate_id AS chosen_candidate_id, j.shown_order,
                j.strength, j.rationale, j.time_on_task_ms, i.is_gold, p.messages::text AS messages,
                ca.id AS first_candidate_id, ca.text AS first_text, ca.metadata::text AS first_metadata,
                cb.id AS second_candidate_id, cb.text AS second_text, cb.metadata::text AS second_metadata
            FROM judgments j
            JOIN items i ON i.id = j.item_id
            JOIN users u ON u.id = j.user_id
            JOIN prompts p ON p.id = i.prompt_id
            JOIN candidates ca ON ca.id = i.candidate_ids[1]
            JOIN candidates cb ON cb.id = i.candidate_ids[2]
            {PSEUDONYM_KEY}
            WHERE {JUDGMENT_FILTER}
            ORDER BY j.created_at, j.id"
    )
});

/// Streams every judgment (skips included) of an export in the order they were made. Labelers
/// appear as a keyed hash of their id unless `reveal_labelers` asks for e-mails.
pub fn raw_judgments<'a>(
    pool: &'a PgPool,
    spec: &ExportSpec,
) -> BoxStream<'a, Result<RawJudgment>> {
    sqlx::query_as::<_, RawRow>(RAW_SQL.as_str())
        .bind(spec.campaigns.clone())
        .bind(spec.since)
        .bind(spec.until)
        .bind(spec.exclude_disabled)
        .bind(spec.exclude_gold)
        .bind(spec.reveal_labelers)
        .fetch(pool)
        .map(|row| {
            let row = row?;
            Ok(RawJudgment {
                judgment_id: row.judgment_id,
                campaign_id: row.campaign_id,
                item_id: row.item_id,
                prompt_id: row.prompt_id,
                labeler: row.labeler,
                created_at: rfc3339(row.created_at),
                choice: row.choice,
                chosen_candidate_id: row.chosen_candidate_id,
                shown_order: row.shown_order,
                strength: row.strength,
                rationale: row.rationale,
                time_on_task_ms: row.time_on_task_ms,
                is_gold: row.is_gold,
                prompt: messages(&row.messages)?,
                first_candidate_id: row.first_candidate_id,
                first_text: row.first_text,
                first_metadata: row.first_metadata,
                second_candidate_id: row.second_candidate_id,
                second_text: row.second_text,
                second_metadata: row.second_metadata,
            })
        })
        .boxed()
}

/// About how many rows the export will read, for its progress bar: judged items for pair
/// formats, judgments for raw. Cheap, so it ignores the date and labeler filters.
pub async fn estimate_total(pool: &PgPool, spec: &ExportSpec) -> Result<i64> {
    let sql = if spec.format == domain::ExportFormat::Raw {
        "SELECT count(*) FROM judgments WHERE campaign_id = ANY($1)"
    } else {
        "SELECT count(*) FROM (SELECT DISTINCT item_id FROM judgments
                               WHERE campaign_id = ANY($1) AND choice <> 'skip') judged"
    };
    Ok(sqlx::query_scalar(sql)
        .bind(&spec.campaigns)
        .fetch_one(pool)
        .await?)
}

/// Names of the campaigns, in the order asked; an unknown id is an error.
pub async fn campaign_names(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<(Uuid, String)>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, name FROM campaigns WHERE id = ANY($1) ORDER BY name, id")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    if rows.len() != ids.len() {
        return Err(StoreError::NotFound);
    }
    Ok(rows)
}

/// Exports as leased work (`crate::lease`).
const EXPORTS: Leased = Leased {
    table: "exports",
    scope: "id",
    key: "id",
    order: "created_at",
    max_attempts: "3",
    restart: ", done = 0, total = NULL",
    // `pairwise export` writes into a folder of its own host: no worker can take that over.
    claimable: "in_storage",
};

/// Where an export's files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesAt {
    /// Under this key prefix in the storage, where workers write and servers read them.
    Storage(String),
    /// In this folder of the host that ran `pairwise export`.
    Folder(String),
}

/// Records a new export, queued for a worker, whose files will be stored under `key`.
pub async fn create(
    pool: &PgPool,
    id: Uuid,
    created_by: Option<Uuid>,
    spec: &ExportSpec,
    key: &str,
) -> Result<()> {
    insert(
        pool,
        id,
        created_by,
        spec,
        &FilesAt::Storage(key.into()),
        None,
    )
    .await
}

/// Records a new export that `worker` (the CLI) writes into a folder itself, holding its lease
/// from the start.
pub async fn create_running(
    pool: &PgPool,
    id: Uuid,
    spec: &ExportSpec,
    folder: &str,
    worker: &str,
    lease: Duration,
) -> Result<()> {
    let at = FilesAt::Folder(folder.into());
    insert(pool, id, None, spec, &at, Some((worker, lease))).await
}

/// Exports one user may have queued or running at once: each running export holds a
/// worker and a database connection for its whole run.
pub const MAX_OPEN_EXPORTS_PER_USER: i64 = 3;

async fn insert(
    pool: &PgPool,
    id: Uuid,
    created_by: Option<Uuid>,
    spec: &ExportSpec,
    at: &FilesAt,
    running: Option<(&str, Duration)>,
) -> Result<()> {
    let (dir, in_storage) = match at {
        FilesAt::Storage(key) => (key, true),
        FilesAt::Folder(folder) => (folder, false),
    };
    let spec_json = serde_json::to_value(spec)
        .map_err(|e| StoreError::Corrupt(format!("cannot store the export spec: {e}")))?;
    let mut tx = pool.begin().await?;
    if let Some(user) = created_by {
        // One user's requests take turns here, so parallel ones cannot all pass the count.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('exports ' || $1::text, 0))")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM exports
             WHERE created_by = $1 AND status IN ('queued', 'running')",
        )
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        if open >= MAX_OPEN_EXPORTS_PER_USER {
            return Err(StoreError::Conflict(format!(
                "you have {open} exports queued or running; wait for one to finish, or cancel one"
            )));
        }
    }
    sqlx::query(
        "INSERT INTO exports (id, created_by, spec, dir, in_storage, status, attempts, worker,
                              lease_expires_at)
         VALUES ($1, $2, $3, $4, $7, CASE WHEN $5::text IS NULL THEN 'queued' ELSE 'running' END,
                 CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END, $5,
                 CASE WHEN $5::text IS NULL THEN NULL
                      ELSE now() + make_interval(secs => $6) END)",
    )
    .bind(id)
    .bind(created_by)
    .bind(&spec_json)
    .bind(dir)
    .bind(running.map(|(worker, _)| worker))
    .bind(running.map_or(0.0, |(_, lease)| lease.as_secs_f64()))
    .bind(in_storage)
    .execute(&mut *tx)
    .await?;
    crate::audit(
        &mut tx,
        created_by,
        "export.create",
        &id.to_string(),
        spec_json,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Finished exports in the storage that finished longer than `retention` ago: (id, key).
pub async fn past_retention(pool: &PgPool, retention: Duration) -> Result<Vec<(Uuid, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, dir FROM exports
         WHERE status = 'done' AND in_storage
           AND finished_at < now() - make_interval(secs => $1)
         ORDER BY finished_at LIMIT 1000",
    )
    .bind(retention.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// Records that a finished export's files were removed (`reason` says why).
pub async fn expire(pool: &PgPool, id: Uuid, reason: &str) -> Result<()> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE exports SET status = 'expired', error = $2 WHERE id = $1 AND status = 'done'",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 {
        crate::audit(
            &mut tx,
            None,
            "export.expire",
            &id.to_string(),
            serde_json::json!({ "reason": reason }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What a worker needs to run a claimed export.
#[derive(Debug, Clone)]
pub struct ExportClaim {
    pub id: Uuid,
    pub spec: ExportSpec,
    /// The key prefix its files are stored under.
    pub key: String,
}

/// Claims the oldest queued export, or a running one whose worker stopped renewing its lease.
pub async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<ExportClaim>> {
    let Some(id) = EXPORTS
        .claim_one(&mut *pool.acquire().await?, worker, lease)
        .await?
    else {
        return Ok(None);
    };
    let (spec, key): (serde_json::Value, String) =
        sqlx::query_as("SELECT spec, dir FROM exports WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
    Ok(Some(ExportClaim {
        id,
        spec: serde_json::from_value(spec)
            .map_err(|e| StoreError::Corrupt(format!("stored export spec: {e}")))?,
        key,
    }))
}

/// Renews `worker`'s lease; false when the export is no longer theirs.
pub async fn renew(pool: &PgPool, id: Uuid, worker: &str, lease: Duration) -> Result<bool> {
    EXPORTS
        .renew(&mut *pool.acquire().await?, id, worker, lease)
        .await
}

/// How many rows the export will read, once known.
pub async fn start(pool: &PgPool, id: Uuid, worker: &str, total: i64) -> Result<()> {
    sqlx::query("UPDATE exports SET total = $3, done = 0 WHERE id = $1 AND worker = $2")
        .bind(id)
        .bind(worker)
        .bind(total)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn progress(pool: &PgPool, id: Uuid, worker: &str, done: u64) -> Result<()> {
    sqlx::query("UPDATE exports SET done = $3 WHERE id = $1 AND worker = $2")
        .bind(id)
        .bind(worker)
        .bind(i64::try_from(done).unwrap_or(i64::MAX))
        .execute(pool)
        .await?;
    Ok(())
}

/// Records the files of `worker`'s export; false when the export was no longer theirs (it
/// was taken over), and then nothing changed.
pub async fn finish(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    files: &[ExportFile],
    counts: &ExportCounts,
) -> Result<bool> {
    let files = serde_json::to_value(files)
        .map_err(|e| StoreError::Corrupt(format!("cannot store the file list: {e}")))?;
    let counts_json = serde_json::to_value(counts)
        .map_err(|e| StoreError::Corrupt(format!("cannot store the counts: {e}")))?;
    let finished = sqlx::query(
        "UPDATE exports SET status = 'done', files = $3, counts = $4, rows_written = $5,
                done = greatest(done, coalesce(total, 0)), total = greatest(done, coalesce(total, 0)),
                finished_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND worker = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(files)
    .bind(counts_json)
    .bind(i64::try_from(counts.rows).unwrap_or(i64::MAX))
    .execute(pool)
    .await?;
    Ok(finished.rows_affected() == 1)
}

/// Cancels a queued or running export for `actor`: its worker records nothing and stores
/// nothing more. Returns whether it was open.
pub async fn cancel(pool: &PgPool, actor: Uuid, id: Uuid) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let cancelled = sqlx::query(
        "UPDATE exports SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if cancelled {
        crate::audit(
            &mut tx,
            Some(actor),
            "export.cancel",
            &id.to_string(),
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(cancelled)
}

/// Fails `worker`'s export with the reason; nothing changes when it is no longer theirs.
pub async fn fail(pool: &PgPool, id: Uuid, worker: &str, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE exports SET status = 'failed', error = $3, finished_at = now(),
                lease_expires_at = NULL
         WHERE id = $1 AND worker = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

const EXPORT_COLUMNS: &str = "id, created_by, created_at, spec, dir, in_storage, status, done,
    total, rows_written, files, error, finished_at";

#[derive(sqlx::FromRow)]
struct ExportRow {
    id: Uuid,
    created_by: Option<Uuid>,
    created_at: chrono::DateTime<chrono::Utc>,
    spec: serde_json::Value,
    dir: String,
    in_storage: bool,
    status: String,
    done: i64,
    total: Option<i64>,
    rows_written: Option<i64>,
    files: serde_json::Value,
    error: Option<String>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<ExportRow> for ExportRecord {
    type Error = StoreError;

    fn try_from(row: ExportRow) -> Result<Self> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("stored export: {e}"));
        Ok(Self {
            id: row.id,
            created_by: row.created_by,
            created_at: rfc3339(row.created_at),
            spec: serde_json::from_value(row.spec).map_err(corrupt)?,
            status: stored::<ExportStatus>(&row.status)?,
            done: row.done,
            total: row.total,
            rows: row.rows_written,
            files: serde_json::from_value(row.files).map_err(corrupt)?,
            error: row.error,
            finished_at: row.finished_at.map(rfc3339),
        })
    }
}

/// An export and where its files are.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<(ExportRecord, FilesAt)> {
    let sql = format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1");
    let row = sqlx::query_as::<_, ExportRow>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let at = if row.in_storage {
        FilesAt::Storage(row.dir.clone())
    } else {
        FilesAt::Folder(row.dir.clone())
    };
    Ok((row.try_into()?, at))
}

/// The latest exports: all of them for `None`, else those of one creator.
pub async fn list(pool: &PgPool, created_by: Option<Uuid>) -> Result<Vec<ExportRecord>> {
    let sql = format!(
        "SELECT {EXPORT_COLUMNS} FROM exports
         WHERE $1::uuid IS NULL OR created_by = $1
         ORDER BY created_at DESC LIMIT 200"
    );
    sqlx::query_as::<_, ExportRow>(&sql)
        .bind(created_by)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(ExportRecord::try_from)
        .collect()
}
