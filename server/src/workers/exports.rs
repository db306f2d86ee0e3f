//! The export worker: claims queued exports, writes their files (`datasets`) in a scratch
//! folder of this host and stores them where every server can serve them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use storage::Storage;
use store::PgPool;

/// One claim: true when there was an export to write.
async fn claim_and_export(
    pool: &PgPool,
    storage: &Storage,
    name: &str,
    data_dir: &Path,
) -> anyhow::Result<bool> {
    let Some(claim) = store::export::claim(pool, name, datasets::LEASE)
        .await
        .context("claiming an export")?
    else {
        return Ok(false);
    };
    // One folder per export and worker: a takeover on the same host never shares it.
    let scratch =
        data_dir
            .join("staging")
            .join(format!("{}-{}", claim.id, name.replace([':', '/'], "_")));
    let destination = datasets::Destination::Storage {
        storage,
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

/// Runs until `stop` turns true.
pub async fn run(
    pool: PgPool,
    storage: Storage,
    name: String,
    data_dir: PathBuf,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    super::poll::poll(&name, stop, || {
        claim_and_export(&pool, &storage, &name, &data_dir)
    })
    .await
}
