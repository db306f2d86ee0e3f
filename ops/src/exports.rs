//! Dataset exports: started here, written in the background, downloaded file by file.

use domain::{CurrentUser, ExportRecord, ExportSpec, ExportStatus, Need};
use futures::Stream;
use storage::{Bytes, StorageError};
use store::export::FilesAt;
use uuid::Uuid;

use crate::{access, Error, Ops, Result};

/// Researchers and admins only; every campaign must be one the caller may analyse, and only
/// admins may reveal who labeled what. The export is queued; a worker writes it.
pub async fn start(ops: &Ops, user: &CurrentUser, spec: ExportSpec) -> Result<Uuid> {
    access::not_labeler(user, "export data")?;
    let spec = spec.validated()?;
    for campaign in &spec.campaigns {
        access::campaign(ops, user, *campaign, Need::Analyse).await?;
    }
    if spec.reveal_labelers && !user.is_admin() {
        return Err(Error::Forbidden(
            "only admins may export labelers' e-mails".into(),
        ));
    }
    let id = Uuid::now_v7();
    let key = format!("exports/{id}");
    store::export::create(&ops.pool, id, Some(user.id), &spec, &key).await?;
    Ok(id)
}

/// Cancels an open export the caller may see; its worker stops before storing its files.
pub async fn cancel(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<ExportRecord> {
    let (record, _) = access::export(ops, user, id).await?;
    if !store::export::cancel(&ops.pool, user.id, id).await? {
        return Err(Error::Conflict(format!(
            "the export is already {}",
            record.status
        )));
    }
    Ok(store::export::get(&ops.pool, id).await?.0)
}

pub async fn list(ops: &Ops, user: &CurrentUser) -> Result<Vec<ExportRecord>> {
    access::exports(ops, user).await
}

pub async fn get(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<ExportRecord> {
    Ok(access::export(ops, user, id).await?.0)
}

/// One file of a finished export the caller may see, as it was recorded and as a stream of
/// its bytes from the storage; only names the export recorded are served.
pub async fn download(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
    name: &str,
) -> Result<(
    domain::ExportFile,
    impl Stream<Item = std::result::Result<Bytes, StorageError>> + Send + 'static,
)> {
    let (record, at) = access::export(ops, user, id).await?;
    match record.status {
        ExportStatus::Done => {}
        ExportStatus::Expired => {
            return Err(Error::Conflict(format!(
                "the export's files were removed: {}",
                record
                    .error
                    .as_deref()
                    .unwrap_or("they were kept for a limited time")
            )))
        }
        _ => return Err(Error::Conflict("the export has not finished".into())),
    }
    let file = record
        .files
        .into_iter()
        .find(|f| f.name == name)
        .ok_or(Error::NotFound)?;
    let key = format!("{}/{}", stored_under(&at)?, file.name);
    match ops.storage.read(&key).await {
        Ok(bytes) => Ok((file, bytes)),
        Err(StorageError::Missing(_)) => {
            tracing::error!("export {id}: {key} is missing from the storage");
            Err(Error::Conflict(
                "the export's files are gone from the storage".into(),
            ))
        }
        Err(e) => Err(Error::Internal(e.into())),
    }
}

/// The key prefix of an export's files; exports that `pairwise export` wrote into a folder of
/// its host are not in the storage.
pub fn stored_under(at: &FilesAt) -> Result<&str> {
    match at {
        FilesAt::Storage(key) => Ok(key),
        FilesAt::Folder(folder) => Err(Error::Conflict(format!(
            "this export was written by `pairwise export` into {folder} on its host, not to the \
             storage; export again from the API or the Exports page"
        ))),
    }
}
