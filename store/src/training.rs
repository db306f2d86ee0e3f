//! Training runs (reward model, DPO) on an export: queued by researchers, claimed by workers
//! with `FOR UPDATE SKIP LOCKED` and a lease, reported step by step, and, for DPO, registered
//! as a model whose parent is the base in the same transaction that marks the run done.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::{
    ExportFormat, ExportStatus, JobStatus, NewTrainingRun, TrainKind, TrainPoint, TrainSettings,
    TrainingRecord,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::lease::Leased;
use crate::{rfc3339, stored, Result, StoreError};

/// Queues a run by `actor` on `export` (whose visibility the caller checked), in a format
/// with chosen/rejected columns, from the model `base` (see `models::named_or_default`).
pub async fn create(
    pool: &PgPool,
    actor: Uuid,
    export: &domain::ExportRecord,
    base: Uuid,
    new: NewTrainingRun,
) -> Result<Uuid> {
    let export_id = export.id;
    new.settings.validate(new.kind)?;
    if export.status != ExportStatus::Done {
        return Err(StoreError::Conflict("the export has not finished".into()));
    }
    if export.spec.format == ExportFormat::Raw {
        return Err(StoreError::Conflict(
            "raw exports hold judgments, not preference pairs: train on a trl, trl-conversational or hh-rlhf export".into(),
        ));
    }
    let settings = serde_json::to_value(&new.settings)
        .map_err(|e| StoreError::Corrupt(format!("cannot store the settings: {e}")))?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO training_runs (id, kind, export_id, base_model_id, settings, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(new.kind.as_str())
    .bind(export_id)
    .bind(base)
    .bind(&settings)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    crate::audit(
        &mut tx,
        Some(actor),
        "training.create",
        &id.to_string(),
        serde_json::json!({ "kind": new.kind.as_str(), "export": export_id, "settings": settings }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// What a worker needs to run a claimed run.
#[derive(Debug, Clone)]
pub struct TrainClaim {
    pub id: Uuid,
    pub kind: TrainKind,
    pub settings: TrainSettings,
    /// The export's key prefix in the storage (its `train.*` files are the data).
    pub export_key: String,
    pub base_model_id: Uuid,
    pub base_model_name: String,
    pub base_model_path: String,
    /// The base model's files in the storage, when it was trained here.
    pub base_model_stored_at: Option<String>,
}

/// Training runs as leased work (`crate::lease`).
const RUNS: Leased = Leased {
    table: "training_runs",
    scope: "id",
    key: "id",
    order: "created_at",
    // A worker dies at most this many times on one run before the run is failed.
    max_attempts: "3",
    restart: ", phase = 'starting', step = 0, points = '[]', eval = '[]'",
    claimable: "true",
};

/// Claims the oldest queued run, or a running one whose worker stopped renewing its lease.
pub async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<TrainClaim>> {
    let Some(id) = RUNS
        .claim_one(&mut *pool.acquire().await?, worker, lease)
        .await?
    else {
        return Ok(None);
    };
    let (kind, settings, export_key, base_model_id, base_model_name, base_model_path, stored_at): (
        String,
        serde_json::Value,
        String,
        Uuid,
        String,
        String,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT t.kind, t.settings, e.dir, m.id, m.name, m.path, m.stored_at
         FROM training_runs t JOIN exports e ON e.id = t.export_id
         JOIN models m ON m.id = t.base_model_id
         WHERE t.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await?;
    Ok(Some(TrainClaim {
        id,
        kind: stored(&kind)?,
        settings: serde_json::from_value(settings)
            .map_err(|e| StoreError::Corrupt(format!("stored training settings: {e}")))?,
        export_key,
        base_model_id,
        base_model_name,
        base_model_path,
        base_model_stored_at: stored_at,
    }))
}

/// What a worker reports; `false` back means stop (cancelled, or the run is no longer this
/// worker's).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub phase: Option<String>,
    pub total_steps: Option<u32>,
    pub train_pairs: Option<u32>,
    pub eval_pairs: Option<u32>,
    pub step: Option<u32>,
    pub points: Vec<TrainPoint>,
    pub eval: Vec<TrainPoint>,
}

pub async fn report(
    pool: &PgPool,
    id: Uuid,
    worker: &str,
    lease: Duration,
    report: &Report,
) -> Result<bool> {
    let json = |v: &Vec<TrainPoint>| {
        serde_json::to_value(v).map_err(|e| StoreError::Corrupt(format!("figures: {e}")))
    };
    let updated = sqlx::query(
        "UPDATE training_runs SET
             phase = coalesce($4, phase),
             total_steps = coalesce($5, total_steps),
             train_pairs = coalesce($6, train_pairs),
             eval_pairs = coalesce($7, eval_pairs),
             step = coalesce($8, step),
             points = points || $9,
             eval = eval || $10,
             lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND worker = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(&report.phase)
    .bind(report.total_steps.map(|v| v as i32))
    .bind(report.train_pairs.map(|v| v as i32))
    .bind(report.eval_pairs.map(|v| v as i32))
    .bind(report.step.map(|v| v as i32))
    .bind(json(&report.points)?)
    .bind(json(&report.eval)?)
    .execute(pool)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The name a DPO checkpoint is registered under: the base's name and the run's whole id,
/// so that runs on one base never collide (a prefix of a time-ordered id would, for runs
/// started within the same minute).
pub fn dpo_model_name(base: &str, run: Uuid) -> String {
    format!("{base}-dpo-{}", run.simple())
}

/// Marks the run done; a DPO checkpoint is registered as a model (parent: the base) at once,
/// found at `output_dir` on the host that trained it and at `stored_at` in the storage.
pub async fn finish(
    pool: &PgPool,
    claim: &TrainClaim,
    worker: &str,
    output_dir: &str,
    stored_at: &str,
    summary: &BTreeMap<String, f64>,
) -> Result<Option<Uuid>> {
    let mut tx = pool.begin().await?;
    let model_id = match claim.kind {
        TrainKind::Dpo => {
            let id = Uuid::now_v7();
            let name = dpo_model_name(&claim.base_model_name, claim.id);
            let notes = format!(
                "DPO fine-tune of {} by training run {}",
                claim.base_model_name, claim.id
            );
            sqlx::query(
                "INSERT INTO models (id, name, path, format, notes, parent_id, stored_at, created_by)
                 SELECT $1, $2, $3, 'hf', $4, $5, $7, created_by FROM training_runs WHERE id = $6",
            )
            .bind(id)
            .bind(&name)
            .bind(output_dir)
            .bind(&notes)
            .bind(claim.base_model_id)
            .bind(claim.id)
            .bind(stored_at)
            .execute(&mut *tx)
            .await?;
            Some(id)
        }
        TrainKind::Reward => None,
    };
    let summary =
        serde_json::to_value(summary).map_err(|e| StoreError::Conflict(format!("summary: {e}")))?;
    let done = sqlx::query(
        "UPDATE training_runs SET status = 'done', phase = 'done', output_dir = $3, summary = $4,
                model_id = $5, finished_at = now(), lease_expires_at = NULL,
                step = greatest(step, coalesce(total_steps, step))
         WHERE id = $1 AND worker = $2 AND status = 'running'",
    )
    .bind(claim.id)
    .bind(worker)
    .bind(output_dir)
    .bind(summary)
    .bind(model_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        // Cancelled meanwhile, or taken over: register nothing.
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(model_id)
}

pub async fn fail(pool: &PgPool, id: Uuid, worker: &str, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE training_runs SET status = 'failed', phase = 'failed', error = $3,
                finished_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND worker = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(worker)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Cancels an open run for `actor`; its worker stops at its next report.
pub async fn cancel(pool: &PgPool, actor: Uuid, id: Uuid) -> Result<TrainingRecord> {
    let run = get(pool, id).await?;
    if !run.status.is_open() {
        return Err(StoreError::Conflict(format!(
            "the run is already {}",
            run.status
        )));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE training_runs SET status = 'cancelled', phase = 'cancelled', finished_at = now(),
                lease_expires_at = NULL
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    crate::audit(
        &mut tx,
        Some(actor),
        "training.cancel",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    get(pool, id).await
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    kind: String,
    export_id: Uuid,
    base_model: String,
    settings: serde_json::Value,
    status: String,
    phase: String,
    step: i32,
    total_steps: Option<i32>,
    train_pairs: Option<i32>,
    eval_pairs: Option<i32>,
    points: serde_json::Value,
    eval: serde_json::Value,
    summary: Option<serde_json::Value>,
    output_dir: Option<String>,
    model_id: Option<Uuid>,
    model_name: Option<String>,
    error: Option<String>,
    worker: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

const RUN_SELECT: &str = "SELECT t.id, t.kind, t.export_id, b.name AS base_model, t.settings,
        t.status, t.phase, t.step, t.total_steps, t.train_pairs, t.eval_pairs, t.points, t.eval,
        t.summary, t.output_dir, t.model_id, m.name AS model_name, t.error, t.worker,
        t.created_at, t.finished_at
    FROM training_runs t JOIN models b ON b.id = t.base_model_id
    LEFT JOIN models m ON m.id = t.model_id";

impl TryFrom<RunRow> for TrainingRecord {
    type Error = StoreError;

    fn try_from(r: RunRow) -> Result<Self> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("stored run: {e}"));
        let count = |v: Option<i32>| v.map(|v| v.max(0) as u32);
        Ok(TrainingRecord {
            id: r.id,
            kind: stored(&r.kind)?,
            export_id: r.export_id,
            base_model: r.base_model,
            settings: serde_json::from_value(r.settings).map_err(corrupt)?,
            status: stored::<JobStatus>(&r.status)?,
            phase: r.phase,
            step: r.step.max(0) as u32,
            total_steps: count(r.total_steps),
            train_pairs: count(r.train_pairs),
            eval_pairs: count(r.eval_pairs),
            points: serde_json::from_value(r.points).map_err(corrupt)?,
            eval: serde_json::from_value(r.eval).map_err(corrupt)?,
            summary: r
                .summary
                .map(serde_json::from_value)
                .transpose()
                .map_err(corrupt)?,
            output_dir: r.output_dir,
            model_id: r.model_id,
            model_name: r.model_name,
            error: r.error,
            worker: r.worker,
            created_at: rfc3339(r.created_at),
            finished_at: r.finished_at.map(rfc3339),
        })
    }
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<TrainingRecord> {
    let sql = format!("{RUN_SELECT} WHERE t.id = $1");
    sqlx::query_as::<_, RunRow>(&sql)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_into()
}

/// The runs on the given exports (newest first).
pub async fn list_for_exports(pool: &PgPool, export_ids: &[Uuid]) -> Result<Vec<TrainingRecord>> {
    let sql =
        format!("{RUN_SELECT} WHERE t.export_id = ANY($1) ORDER BY t.created_at DESC LIMIT 200");
    sqlx::query_as::<_, RunRow>(&sql)
        .bind(export_ids)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(TrainingRecord::try_from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_together_register_different_names() {
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        assert_ne!(
            dpo_model_name("smol", first),
            dpo_model_name("smol", second)
        );
        assert!(dpo_model_name("smol", first).starts_with("smol-dpo-"));
    }
}
