//! Reward-model and DPO runs on a finished export: queued here, run by workers.

use domain::{CurrentUser, NewTrainingRun, TrainingRecord};
use uuid::Uuid;

use crate::{access, Ops, Result};

/// Queues a run on an export the caller may see.
pub async fn start(
    ops: &Ops,
    user: &CurrentUser,
    export_id: Uuid,
    new: NewTrainingRun,
) -> Result<Uuid> {
    let (export, at) = access::export(ops, user, export_id).await?;
    crate::exports::stored_under(&at)?;
    Ok(store::training::create(&ops.pool, user.id, &export, new).await?)
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
