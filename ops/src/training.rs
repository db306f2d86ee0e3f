//! Reward-model and DPO runs on a finished export: queued here, run by workers.

use domain::{CurrentUser, ModelRecord, NewTrainingRun, TrainingRecord};
use engine::train::{memory, TrainConfig};
use engine::{Engine, EngineError};
use std::io::ErrorKind;
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
    let base =
        store::models::named_or_default(&ops.pool, new.settings.base_model.as_deref()).await?;
    fits(&base, &new).await?;
    Ok(store::training::create(&ops.pool, user.id, &export, base.id, new).await?)
}

/// Refuses settings the base model cannot train with: over its context length, or needing
/// more memory than training may take (`engine::train::memory`). A base model whose files
/// are not on this host (one trained on another) is left to the worker's own limits.
async fn fits(base: &ModelRecord, new: &NewTrainingRun) -> Result<()> {
    let path = std::path::PathBuf::from(&base.path);
    let config = TrainConfig::from_settings(new.kind, &new.settings);
    tokio::task::spawn_blocking(move || -> Result<()> {
        let shape = match Engine::shape(&path) {
            Ok(shape) => shape,
            Err(EngineError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Ok(());
            }
            Err(e) => {
                let message = format!("the base model cannot be read here: {e}");
                return Err(domain::Invalid(message).into());
            }
        };
        // A malformed limit is the server's configuration, not the caller's request.
        let limit = memory::limit().map_err(|e| crate::Error::Internal(e.into()))?;
        match memory::check(&shape, &config, limit) {
            Ok(_) => Ok(()),
            Err(EngineError::InvalidRequest(message)) => Err(domain::Invalid(message).into()),
            Err(e) => Err(crate::Error::Internal(e.into())),
        }
    })
    .await
    .map_err(|e| crate::Error::Internal(e.into()))?
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
