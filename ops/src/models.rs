//! The model registry.

use std::path::Path;

use domain::{CurrentUser, ModelEntry, ModelFile, ModelFormat, ModelRecord, NewModel};

use crate::{access, Ops, Result};

/// The most files listed for one model (a folder may hold anything).
const MAX_FILES: usize = 200;

/// Every model with its lineage and its files (from this server's disk, or from the storage
/// for checkpoints trained here).
pub async fn list(ops: &Ops, user: &CurrentUser) -> Result<Vec<ModelEntry>> {
    access::not_labeler(user, "list models")?;
    let mut entries = store::models::catalog(&ops.pool).await?;
    for entry in &mut entries {
        let found = match local_files(&entry.model.path).await {
            Some(files) => Ok(files),
            None => match &entry.model.stored_at {
                Some(key) => ops.storage.list(key).await.map_err(|e| {
                    tracing::warn!("listing the checkpoint {key}: {e}");
                    "its files could not be listed from the storage".to_string()
                }),
                None => Err(format!("{} is not on this server", entry.model.path)),
            },
        };
        match found {
            Ok(mut files) => {
                entry.file_count = files.len() as u64;
                entry.bytes = files.iter().map(|f| f.1).sum();
                files.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                if files.len() > MAX_FILES {
                    entry.files_note =
                        Some(format!("the largest {MAX_FILES} files of {}", files.len()));
                    files.truncate(MAX_FILES);
                }
                entry.files = files
                    .into_iter()
                    .map(|(name, bytes)| ModelFile { name, bytes })
                    .collect();
            }
            Err(why) => entry.files_note = Some(why),
        }
    }
    Ok(entries)
}

/// A file's name and size, or a folder's files (not its subfolders); `None` when the path
/// is not here.
async fn local_files(path: &str) -> Option<Vec<(String, u64)>> {
    let path = Path::new(path);
    let metadata = tokio::fs::metadata(path).await.ok()?;
    if metadata.is_file() {
        let name = path.file_name()?.to_string_lossy().into_owned();
        return Some(vec![(name, metadata.len())]);
    }
    let mut entries = tokio::fs::read_dir(path).await.ok()?;
    let mut files = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(meta) = entry.metadata().await {
            if meta.is_file() {
                files.push((entry.file_name().to_string_lossy().into_owned(), meta.len()));
            }
        }
    }
    Some(files)
}

/// Admins register a GGUF file or a Hugging Face folder that exists on this host.
pub async fn register(ops: &Ops, user: &CurrentUser, new: NewModel) -> Result<ModelRecord> {
    access::admin(user)?;
    let new = new.validated()?;
    let path = std::path::Path::new(&new.path);
    let usable = match new.format() {
        ModelFormat::Gguf => path.is_file(),
        ModelFormat::Hf => path.join("config.json").is_file(),
    };
    if !usable {
        return Err(domain::Invalid(format!(
            "{} is neither a .gguf file nor a folder with config.json on this server",
            new.path
        ))
        .into());
    }
    Ok(store::models::create(&ops.pool, Some(user.id), new).await?)
}
