//! Where a worker finds a model's files. A registered path on this host wins; a checkpoint
//! trained on another host is fetched from the storage once, into this host's data folder.

use std::path::{Path, PathBuf};

use anyhow::Context;
use uuid::Uuid;

use super::Files;

/// The local folder or file to load a model from. `stored_at` is the model's key prefix in
/// the storage (models trained here have one).
pub async fn local_path(
    files: &Files,
    path: &str,
    stored_at: Option<&str>,
) -> anyhow::Result<PathBuf> {
    let registered = PathBuf::from(path);
    let Some(key) = stored_at else {
        return Ok(registered);
    };
    // A whole checkpoint has its config.json: a folder that a failed attempt on this host
    // left half-written does not count.
    if tokio::fs::try_exists(registered.join("config.json"))
        .await
        .unwrap_or(false)
    {
        return Ok(registered);
    }
    let copy = files.data_dir.join("checkpoints").join(key);
    if tokio::fs::try_exists(&copy).await.unwrap_or(false) {
        return Ok(copy);
    }
    fetch(files, key, &copy).await?;
    Ok(copy)
}

/// Downloads `key` into a private folder and renames it into place, so that a folder at
/// `copy` is always whole, even when two workers of this host fetch it at once.
async fn fetch(files: &Files, key: &str, copy: &Path) -> anyhow::Result<()> {
    let parent = copy
        .parent()
        .context("a checkpoint's folder has a parent")?;
    let partial = parent.join(format!(".partial-{}", Uuid::new_v4()));
    let fetched = files
        .storage
        .download_dir(key, &partial)
        .await
        .with_context(|| format!("cannot fetch the checkpoint {key} from the storage"));
    let result = match fetched {
        Ok(0) => Err(anyhow::anyhow!("the storage holds no files under {key}")),
        Ok(_) => match tokio::fs::rename(&partial, copy).await {
            Ok(()) => Ok(()),
            // Another worker put its whole copy there first.
            Err(_) if tokio::fs::try_exists(copy).await.unwrap_or(false) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot keep {}", copy.display())),
        },
        Err(e) => Err(e),
    };
    if tokio::fs::try_exists(&partial).await.unwrap_or(false) {
        if let Err(e) = tokio::fs::remove_dir_all(&partial).await {
            tracing::warn!("cannot remove {}: {e}", partial.display());
        }
    }
    result
}
