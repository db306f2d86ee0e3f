//! The export worker: claims queued exports, writes their files (`datasets`) in a scratch
//! folder of this host and stores them where every server can serve them; with a retention
//! period, it also removes the files of exports that finished longer ago.

use std::time::{Duration, Instant};

use anyhow::Context;
use store::PgPool;

use super::Files;

/// One claim: true when there was an export to write.
async fn claim_and_export(pool: &PgPool, files: &Files, name: &str) -> anyhow::Result<bool> {
    let Some(claim) = store::export::claim(pool, name, datasets::LEASE)
        .await
        .context("claiming an export")?
    else {
        return Ok(false);
    };
    // One folder per export and worker: a takeover on the same host never shares it.
    let scratch = files.data_dir.join("staging").join(format!(
        "{}-{}",
        claim.id,
        name.replace([':', '/'], "_")
    ));
    let destination = datasets::Destination::Storage {
        storage: &files.storage,
        key: &claim.key,
        scratch: &scratch,
    };
    // A failed export is recorded as failed; the worker itself goes on.
    if let Ok((_, counts)) =
        datasets::run_leased(pool, claim.id, name, &claim.spec, destination).await
    {
        tracing::info!("export {} wrote {} rows", claim.id, counts.rows);
    }
    Ok(true)
}

/// How often a worker looks for exports past the retention period.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Removes the files of finished exports older than `retention` and marks them expired;
/// returns how many.
pub async fn remove_expired(
    pool: &PgPool,
    files: &Files,
    retention: Duration,
) -> anyhow::Result<usize> {
    let expired = store::export::past_retention(pool, retention)
        .await
        .context("finding exports past the retention period")?;
    let days = retention.as_secs() / 86_400;
    let reason = format!("removed {days} days after it finished (PAIRWISE_EXPORT_RETENTION_DAYS)");
    let mut removed = 0;
    for (id, key) in &expired {
        // One export whose files cannot be removed now does not hold back the others.
        if let Err(e) = files.storage.remove_dir(key).await {
            tracing::warn!("export {id}: cannot remove its files: {e}");
            continue;
        }
        store::export::expire(pool, *id, &reason)
            .await
            .context("recording the expired export")?;
        tracing::info!("export {id}: files removed after {days} days");
        removed += 1;
    }
    Ok(removed)
}

/// Runs until `stop` turns true; with a retention period, removes expired exports' files at
/// start and then hourly.
pub async fn run(
    pool: PgPool,
    files: Files,
    name: String,
    retention: Option<Duration>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let last_sweep = std::sync::Mutex::new(None::<Instant>);
    super::poll::poll(&name, stop, || {
        let (pool, files, name, last_sweep) = (&pool, &files, &name, &last_sweep);
        async move {
            if let Some(retention) = retention {
                let due = match last_sweep.lock() {
                    Ok(mut last) => {
                        let due = last.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
                        if due {
                            *last = Some(Instant::now());
                        }
                        due
                    }
                    Err(_) => false,
                };
                if due {
                    if let Err(e) = remove_expired(pool, files, retention).await {
                        tracing::warn!("{e:#}");
                    }
                }
            }
            claim_and_export(pool, files, name).await
        }
    })
    .await
}
