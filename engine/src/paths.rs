//! Where the engine looks for models by default.

use std::path::PathBuf;

/// The default model: env `PAIRWISE_DEFAULT_MODEL`, else
/// `${PAIRWISE_CACHE:-~/.cache/pairwise}/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PAIRWISE_DEFAULT_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir()
        .join("models")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// `${PAIRWISE_CACHE:-~/.cache/pairwise}`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PAIRWISE_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("pairwise")
}
