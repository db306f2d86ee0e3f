//! Reward-model and DPO runs on a finished export: queued here, run by workers.

use domain::{CurrentUser, ModelRecord, NewTrainingRun, TrainingRecord};
use engine::train::{memory, TrainConfig};
use engine::Engine;
use uuid::Uuid;

use crate::{access, Ops, Result};

/// Queues a run on an export the caller may see, if its settings fit the base model and
/// the memory training may use.
pub async fn start(
    ops: &Ops,
    user: &CurrentUser,
    export_id: Uuid,
    new: NewTrainingRun,
) -> Result<Uuid> {
    let (export, at) = access::export(ops, user, export_id).await?;
    crate::exports::stored_under(&at)?;
    new.settings.validate(new.kind)?;
    let base = store::models::training_base(&ops.pool, new.settings.base_model.as_deref()).await?;
    fits(&base, &new).await?;
    Ok(store::training::create(&ops.pool, user.id, &export, base.id, new).await?)
}

/// Refuses settings the base model cannot train with: over its context length, or needing
/// more memory than training may take (`engine::train::memory`). A base model whose files
/// are not on this host (one trained on another) is left to the worker's own limits.
async fn fits(base: &ModelRecord, new: &NewTrainingRun) -> Result<()> {
    let path = std::path::PathBuf::from(&base.path);
    let config = TrainConfig::from_settings(new.kind, &new.settings);
    let checked = tokio::task::spawn_blocking(move || {
        let shape = match Engine::shape(&path) {
            Ok(shape) => shape,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "base model not readable here");
                return Ok(());
            }
        };
        let limit = memory::limit().map_err(|e| e.to_string())?;
        memory::check(&shape, &config, limit)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| crate::Error::Internal(e.into()))?;
    checked.map_err(|message| domain::Invalid(message).into())
}

/// The runs on the exports the caller may list (newest first).
pub async fn list(ops: &Ops, user: &CurrentUser) -> Result<Vec<TrainingRecord>> {
    let exports: Vec<Uuid> = access::exports(ops, user)
        .await?
        .iter()
        .map(|e| e.id)
        .collect();
    Ok(store::training::list_for_exports(&ops.pool, &exports).await?)
}

pub async fn get(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<TrainingRecord> {
    access::training_run(ops, user, id).await
}

/// Cancels an open run the caller may see; its worker stops at its next report.
pub async fn cancel(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<TrainingRecord> {
    access::training_run(ops, user, id).await?;
    Ok(store::training::cancel(&ops.pool, user.id, id).await?)
}
