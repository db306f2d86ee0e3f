//! The generation job queue (the models are in [`crate::models`], the prompts they answer
//! in [`crate::prompts`]).
//!
//! A job's prompts sit in `job_prompts`. Workers claim a few at a time through the lease all
//! background work uses (`crate::lease`) and renew it while they generate; each finished
//! prompt commits its candidates and items in one transaction. A lease that runs out (the
//! worker died) makes its prompts claimable again, up to the job's `max_attempts`, and a
//! finished prompt is never claimed twice.

use std::time::Duration;

use domain::{CurrentUser, GenerateSpec, GenerationPayload, JobModel, JobRecord, JobStatus};
use sqlx::PgPool;
use uuid::Uuid;

use crate::import::GOLD_SLOTS;
use crate::lease::Leased;
use crate::{rfc3339, stored, Result, StoreError};

/// A job's prompts as leased work: claimed a batch of one job at a time.
const PROMPTS: Leased = Leased {
    table: "job_prompts",
    scope: "job_id",
    key: "prompt_id",
    order: "prompt_id",
    max_attempts: "max_attempts",
    restart: "",
    // A prompt that failed waits out its retry backoff.
    claimable: "available_at <= now()",
};

/// The campaign's saved generation settings, if any.
pub async fn saved_spec(pool: &PgPool, campaign_id: Uuid) -> Result<Option<GenerateSpec>> {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT generation FROM campaigns WHERE id = $1")
            .bind(campaign_id)
            .fetch_one(pool)
            .await?;
    value
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("stored generation settings: {e}")))
}

/// The prompts a generation job takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobScope {
    /// Every prompt of the campaign without candidates (and in no open job).
    Ungenerated,
    /// The prompts whose generated candidates all read the same ([`IDENTICAL_ONLY`]): their
    /// candidates are deleted in the job's transaction and sampled again.
    IdenticalOnly,
}

/// Queues generation for the prompts of `scope`, and saves the settings as the campaign's.
/// Returns the job id and how many prompts it holds.
pub async fn enqueue_generation(
    pool: &PgPool,
    actor: &CurrentUser,
    campaign_id: Uuid,
    spec: &GenerateSpec,
    models: Vec<JobModel>,
    seed: u64,
    scope: JobScope,
) -> Result<(Uuid, i64)> {
    let payload = GenerationPayload {
        spec: spec.clone(),
        models,
        seed,
    };
    let payload_json = serde_json::to_value(&payload)
        .map_err(|e| StoreError::Corrupt(format!("cannot store the job: {e}")))?;
    let spec_json = serde_json::to_value(spec)
        .map_err(|e| StoreError::Corrupt(format!("cannot store the settings: {e}")))?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let status: String =
        sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1 FOR UPDATE")
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
    if status == "closed" {
        return Err(StoreError::Conflict("the campaign is closed".into()));
    }
    sqlx::query("UPDATE campaigns SET generation = $2, updated_at = now() WHERE id = $1")
        .bind(campaign_id)
        .bind(&spec_json)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO jobs (id, kind, campaign_id, payload, created_by)
         VALUES ($1, 'generate', $2, $3, $4)",
    )
    .bind(id)
    .bind(campaign_id)
    .bind(&payload_json)
    .bind(actor.id)
    .execute(&mut *tx)
    .await?;
    let added = match scope {
        JobScope::Ungenerated => sqlx::query(
            "INSERT INTO job_prompts (job_id, prompt_id, max_attempts)
             SELECT $1, p.id, $3 FROM prompts p
             WHERE p.campaign_id = $2
               AND NOT EXISTS (SELECT 1 FROM candidates c WHERE c.prompt_id = p.id)
               AND NOT EXISTS (SELECT 1 FROM job_prompts jp JOIN jobs j ON j.id = jp.job_id
                               WHERE jp.prompt_id = p.id AND j.status IN ('queued', 'running'))
             ORDER BY p.id",
        )
        .bind(id)
        .bind(campaign_id)
        .bind(spec.max_attempts as i32)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64,
        JobScope::IdenticalOnly => {
            let mut prompts: Vec<Uuid> = sqlx::query_scalar(&format!(
                "DELETE FROM candidates WHERE prompt_id IN ({IDENTICAL_ONLY}) RETURNING prompt_id"
            ))
            .bind(campaign_id)
            .fetch_all(&mut *tx)
            .await?;
            prompts.sort_unstable();
            prompts.dedup();
            sqlx::query(
                "INSERT INTO job_prompts (job_id, prompt_id, max_attempts)
                 SELECT $1, prompt, $3 FROM unnest($2::uuid[]) AS prompt",
            )
            .bind(id)
            .bind(&prompts)
            .bind(spec.max_attempts as i32)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64
        }
    };
    if added == 0 {
        return Err(StoreError::Conflict(match scope {
            JobScope::Ungenerated => {
                "every prompt of this campaign has candidates or is being generated; add prompts first"
            }
            JobScope::IdenticalOnly => "no prompt of this campaign has only identical candidates",
        }
        .into()));
    }
    sqlx::query("UPDATE jobs SET total = $2 WHERE id = $1")
        .bind(id)
        .bind(added as i32)
        .execute(&mut *tx)
        .await?;
    crate::audit(
        &mut tx,
        Some(actor.id),
        "job.generate",
        &id.to_string(),
        payload_json,
    )
    .await?;
    tx.commit().await?;
    Ok((id, added))
}

/// Resolves the models (default: the first registered) and the seed (random when not given,
/// and always for [`JobScope::IdenticalOnly`]: the saved seed would sample the same text
/// again), and queues the job; the caller checked that `user` may manage the campaign.
pub async fn start_generation(
    pool: &PgPool,
    user: &CurrentUser,
    campaign_id: Uuid,
    spec: GenerateSpec,
    scope: JobScope,
) -> Result<(Uuid, i64)> {
    let spec = spec.validated()?;
    let choices: Vec<domain::ModelChoice> = if !spec.models.is_empty() {
        spec.models.clone()
    } else if let Some(name) = &spec.model {
        vec![domain::ModelChoice::Name(name.clone())]
    } else {
        let first = crate::models::named_or_default(pool, None).await?;
        vec![domain::ModelChoice::Name(first.name)]
    };
    let mut models = Vec::with_capacity(choices.len());
    for choice in choices {
        let model = crate::models::by_name(pool, choice.name()).await?;
        let (temperature, top_p, max_new_tokens) = choice.overrides();
        models.push(JobModel {
            id: model.id,
            name: model.name,
            path: model.path,
            stored_at: model.stored_at,
            temperature,
            top_p,
            max_new_tokens,
        });
    }
    let seed = match spec.seed {
        Some(seed) if scope == JobScope::Ungenerated => seed,
        _ => rand::random(),
    };
    enqueue_generation(pool, user, campaign_id, &spec, models, seed, scope).await
}

/// Generated prompts of the campaign whose candidates all read the same: two or more
/// candidates and not one item (every distinct pair makes one), from a finished generation
/// (imported responses are never replaced), and in no open job. What "regenerate" samples
/// again.
const IDENTICAL_ONLY: &str = "
    SELECT p.id FROM prompts p
    WHERE p.campaign_id = $1
      AND (SELECT count(*) FROM candidates c WHERE c.prompt_id = p.id) >= 2
      AND NOT EXISTS (SELECT 1 FROM items i WHERE i.prompt_id = p.id)
      AND EXISTS (SELECT 1 FROM job_prompts jp WHERE jp.prompt_id = p.id AND jp.status = 'done')
      AND NOT EXISTS (SELECT 1 FROM job_prompts jp JOIN jobs j ON j.id = jp.job_id
                      WHERE jp.prompt_id = p.id AND j.status IN ('queued', 'running'))";

/// How many prompts of the campaign gave only identical candidates.
pub async fn identical_only_prompts(pool: &PgPool, campaign_id: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar(&format!("SELECT count(*) FROM ({IDENTICAL_ONLY}) p"))
            .bind(campaign_id)
            .fetch_one(pool)
            .await?,
    )
}

/// A batch of prompts a worker holds.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job_id: Uuid,
    pub campaign_id: Uuid,
    pub payload: GenerationPayload,
    /// (prompt id, conversation, attempt number starting at 1)
    pub prompts: Vec<(Uuid, Vec<domain::Message>, i32)>,
}

/// A prompt [`claim`] leased, with its conversation.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    prompt_id: Uuid,
    messages: String,
    attempts: i32,
}

/// Claims up to the job's batch size of prompts from the oldest open job that has any.
pub async fn claim(pool: &PgPool, worker: &str, lease: Duration) -> Result<Option<Claim>> {
    loop {
        match claim_from_oldest_job(pool, worker, lease).await? {
            Claimed::Prompts(claim) => return Ok(Some(claim)),
            // That job's last lapsed prompts were failed: look again.
            Claimed::FailedLapsed => continue,
            Claimed::Nothing => return Ok(None),
        }
    }
}

enum Claimed {
    Prompts(Claim),
    FailedLapsed,
    Nothing,
}

async fn claim_from_oldest_job(pool: &PgPool, worker: &str, lease: Duration) -> Result<Claimed> {
    let mut tx = pool.begin().await?;
    let job: Option<(Uuid, Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT j.id, j.campaign_id, j.payload FROM jobs j
         WHERE j.kind = 'generate' AND j.status IN ('queued', 'running')
           AND EXISTS (SELECT 1 FROM job_prompts jp WHERE jp.job_id = j.id
                       AND ((jp.status = 'queued' AND jp.available_at <= now())
                            OR (jp.status = 'running' AND jp.lease_expires_at < now())))
         ORDER BY j.created_at LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some((job_id, campaign_id, payload)) = job else {
        return Ok(Claimed::Nothing);
    };
    let payload: GenerationPayload = serde_json::from_value(payload)
        .map_err(|e| StoreError::Corrupt(format!("stored job payload: {e}")))?;
    // Prompts whose workers died on every attempt count as failed for the job.
    let failed = PROMPTS.fail_lapsed(&mut tx, Some(job_id)).await?.len() as i32;
    if failed > 0 {
        let error = "the worker generating a prompt stopped on each of its attempts";
        finish_progress(&mut tx, job_id, 0, failed, 0, 0.0, Some(error)).await?;
    }
    let prompts = PROMPTS
        .claim(
            &mut tx,
            Some(job_id),
            i64::from(payload.spec.batch_size),
            worker,
            lease,
        )
        .await?;
    if prompts.is_empty() {
        tx.commit().await?;
        return Ok(if failed > 0 {
            Claimed::FailedLapsed
        } else {
            Claimed::Nothing
        });
    }
    let rows = sqlx::query_as::<_, ClaimedRow>(
        "SELECT jp.prompt_id, p.messages::text AS messages, jp.attempts
         FROM job_prompts jp JOIN prompts p ON p.id = jp.prompt_id
         WHERE jp.job_id = $1 AND jp.prompt_id = ANY($2)
         ORDER BY jp.prompt_id",
    )
    .bind(job_id)
    .bind(&prompts)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE jobs SET status = 'running', updated_at = now() WHERE id = $1 AND status = 'queued'",
    )
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut prompts = Vec::with_capacity(rows.len());
    for row in rows {
        prompts.push((
            row.prompt_id,
            serde_json::from_str(&row.messages)
                .map_err(|e| StoreError::Corrupt(format!("stored prompt: {e}")))?,
            row.attempts,
        ));
    }
    Ok(Claimed::Prompts(Claim {
        job_id,
        campaign_id,
        payload,
        prompts,
    }))
}

/// Renews the worker's lease on a job's prompts; false once the job is no longer open
/// (cancelled), so the worker stops.
pub async fn heartbeat(pool: &PgPool, job_id: Uuid, worker: &str, lease: Duration) -> Result<bool> {
    PROMPTS
        .renew(&mut *pool.acquire().await?, job_id, worker, lease)
        .await?;
    job_is_open(pool, job_id).await
}

pub async fn job_is_open(pool: &PgPool, job_id: Uuid) -> Result<bool> {
    let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(pool)
        .await?;
    Ok(stored::<JobStatus>(&status)?.is_open())
}

/// One generated candidate, with what made it.
#[derive(Debug, Clone)]
pub struct NewCandidate {
    pub text: String,
    pub metadata: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Stored,
    /// Another worker finished the prompt, or took it over after this lease ran out.
    LostLease,
    /// The job was cancelled or failed meanwhile: nothing stored.
    JobClosed,
}

/// Stores a prompt's candidates and its C(K, 2) items in one transaction, if this worker
/// still holds the prompt, and finishes the job when it was the last. Pairs of candidates that
/// read the same become no item; the job counts them.
pub async fn complete_prompt(
    pool: &PgPool,
    claim: &Claim,
    prompt_id: Uuid,
    worker: &str,
    candidates: &[NewCandidate],
    tokens: i64,
    generate_ms: f64,
) -> Result<Completion> {
    let mut tx = pool.begin().await?;
    let job: (String, i32) = sqlx::query_as(
        "SELECT j.status, c.overlap FROM jobs j JOIN campaigns c ON c.id = j.campaign_id
         WHERE j.id = $1 FOR UPDATE OF j",
    )
    .bind(claim.job_id)
    .fetch_one(&mut *tx)
    .await?;
    if !stored::<JobStatus>(&job.0)?.is_open() {
        return Ok(Completion::JobClosed);
    }
    let held = sqlx::query(
        "UPDATE job_prompts SET status = 'done', lease_expires_at = NULL, error = NULL,
                finished_at = now()
         WHERE job_id = $1 AND prompt_id = $2 AND worker = $3 AND status = 'running'",
    )
    .bind(claim.job_id)
    .bind(prompt_id)
    .bind(worker)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if held == 0 {
        return Ok(Completion::LostLease);
    }
    // Random ids: labelers see them, and time-ordered ones would give away which model
    // answered first.
    let ids: Vec<Uuid> = candidates.iter().map(|_| Uuid::new_v4()).collect();
    let positions: Vec<i32> = (0..candidates.len() as i32).collect();
    let texts: Vec<&str> = candidates.iter().map(|c| c.text.as_str()).collect();
    let metadata: Vec<serde_json::Value> = candidates.iter().map(|c| c.metadata.clone()).collect();
    sqlx::query(
        "INSERT INTO candidates (id, prompt_id, position, text, metadata)
         SELECT u.id, $1, u.position, u.text, u.metadata
         FROM UNNEST($2::uuid[], $3::int[], $4::text[], $5::jsonb[]) AS u(id, position, text, metadata)",
    )
    .bind(prompt_id)
    .bind(&ids)
    .bind(&positions)
    .bind(&texts)
    .bind(&metadata)
    .execute(&mut *tx)
    .await?;
    let gold: bool = sqlx::query_scalar("SELECT gold IS NOT NULL FROM prompts WHERE id = $1")
        .bind(prompt_id)
        .fetch_one(&mut *tx)
        .await?;
    let (pairs, identical) = domain::distinct_pairs(&texts);
    if identical > 0 {
        sqlx::query("UPDATE jobs SET identical_pairs = identical_pairs + $2 WHERE id = $1")
            .bind(claim.job_id)
            .bind(identical as i32)
            .execute(&mut *tx)
            .await?;
    }
    let item_ids: Vec<Uuid> = pairs.iter().map(|_| Uuid::now_v7()).collect();
    let first: Vec<Uuid> = pairs.iter().map(|(i, _)| ids[*i]).collect();
    let second: Vec<Uuid> = pairs.iter().map(|(_, j)| ids[*j]).collect();
    sqlx::query(
        "INSERT INTO items (id, campaign_id, prompt_id, candidate_ids, is_gold, remaining)
         SELECT u.id, $1, $2, ARRAY[u.a, u.b], $5, $6
         FROM UNNEST($3::uuid[], $4::uuid[], $7::uuid[]) WITH ORDINALITY AS u(id, a, b, n)
         ORDER BY u.n",
    )
    .bind(claim.campaign_id)
    .bind(prompt_id)
    .bind(&item_ids)
    .bind(&first)
    .bind(gold)
    .bind(if gold { GOLD_SLOTS } else { job.1 })
    .bind(&second)
    .execute(&mut *tx)
    .await?;
    finish_progress(&mut tx, claim.job_id, 1, 0, tokens, generate_ms, None).await?;
    tx.commit().await?;
    Ok(Completion::Stored)
}

async fn finish_progress(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
    done: i32,
    failed: i32,
    tokens: i64,
    generate_ms: f64,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET done = done + $2, failed = failed + $3, tokens = tokens + $4,
                generate_ms = generate_ms + $5, error = coalesce($6, error), updated_at = now(),
                status = CASE WHEN done + $2 + failed + $3 >= total
                              THEN (CASE WHEN failed + $3 > 0 THEN 'failed' ELSE 'done' END)
                              ELSE status END,
                finished_at = CASE WHEN done + $2 + failed + $3 >= total THEN now() END
         WHERE id = $1",
    )
    .bind(job_id)
    .bind(done)
    .bind(failed)
    .bind(tokens)
    .bind(generate_ms)
    .bind(error)
    .execute(tx)
    .await?;
    Ok(())
}

/// A prompt failed: retried later with exponential backoff, or given up on after its last
/// attempt.
pub async fn fail_prompt(
    pool: &PgPool,
    claim: &Claim,
    prompt_id: Uuid,
    worker: &str,
    attempt: i32,
    error: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(claim.job_id)
        .execute(&mut *tx)
        .await?;
    let last = attempt >= claim.payload.spec.max_attempts as i32;
    let changed = sqlx::query(
        "UPDATE job_prompts SET status = CASE WHEN $4 THEN 'failed' ELSE 'queued' END,
                error = $5, lease_expires_at = NULL,
                finished_at = CASE WHEN $4 THEN now() END,
                available_at = now() + make_interval(secs => power(2, attempts)::float8)
         WHERE job_id = $1 AND prompt_id = $2 AND worker = $3 AND status = 'running'",
    )
    .bind(claim.job_id)
    .bind(prompt_id)
    .bind(worker)
    .bind(last)
    .bind(error)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed > 0 && last {
        finish_progress(&mut tx, claim.job_id, 0, 1, 0, 0.0, Some(error)).await?;
    } else if changed > 0 {
        sqlx::query("UPDATE jobs SET error = $2, updated_at = now() WHERE id = $1")
            .bind(claim.job_id)
            .bind(error)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The whole job cannot run (its model does not load): it fails with the message.
pub async fn fail_job(pool: &PgPool, job_id: Uuid, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'failed', error = $2, finished_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Releases the prompts a worker still holds (it stops), without counting an attempt.
pub async fn release(pool: &PgPool, job_id: Uuid, worker: &str) -> Result<()> {
    PROMPTS
        .release(&mut *pool.acquire().await?, job_id, worker)
        .await
}

/// Cancels an open job: workers stop at their next prompt and store nothing more.
pub async fn cancel(pool: &PgPool, actor: Uuid, job_id: Uuid) -> Result<JobRecord> {
    let mut tx = pool.begin().await?;
    let changed = sqlx::query(
        "UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('queued', 'running')",
    )
    .bind(job_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(StoreError::Conflict("the job has already ended".into()));
    }
    crate::audit(
        &mut tx,
        Some(actor),
        "job.cancel",
        &job_id.to_string(),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    get(pool, job_id).await
}

const JOB_COLUMNS: &str = "id, kind, campaign_id, status, total, done, failed, tokens,
    generate_ms, identical_pairs, error, payload, created_at, finished_at";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    kind: String,
    campaign_id: Option<Uuid>,
    status: String,
    total: i32,
    done: i32,
    failed: i32,
    tokens: i64,
    generate_ms: f64,
    identical_pairs: i32,
    error: Option<String>,
    payload: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self> {
        Ok(JobRecord {
            id: row.id,
            kind: row.kind,
            campaign_id: row.campaign_id,
            status: stored(&row.status)?,
            total: row.total,
            done: row.done,
            failed: row.failed,
            tokens: row.tokens,
            tokens_per_s: (row.generate_ms > 0.0)
                .then(|| row.tokens as f64 * 1000.0 / row.generate_ms),
            identical_pairs: row.identical_pairs,
            error: row.error,
            payload: row.payload,
            created_at: rfc3339(row.created_at),
            finished_at: row.finished_at.map(rfc3339),
        })
    }
}

pub async fn get(pool: &PgPool, job_id: Uuid) -> Result<JobRecord> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    sqlx::query_as::<_, JobRow>(&sql)
        .bind(job_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_into()
}

pub async fn list_for_campaign(pool: &PgPool, campaign_id: Uuid) -> Result<Vec<JobRecord>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE campaign_id = $1 ORDER BY created_at DESC LIMIT 50"
    );
    sqlx::query_as::<_, JobRow>(&sql)
        .bind(campaign_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(JobRecord::try_from)
        .collect()
}
