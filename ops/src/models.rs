//! The model registry.

use domain::{CurrentUser, ModelFormat, ModelRecord, NewModel};

use crate::{access, Ops, Result};

pub async fn list(ops: &Ops, user: &CurrentUser) -> Result<Vec<ModelRecord>> {
    access::not_labeler(user, "list models")?;
    Ok(store::models::list(&ops.pool).await?)
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
