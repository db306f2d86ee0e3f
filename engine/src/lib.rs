//! The Pairwise model engine: GGUF / Hugging Face loading, Llama-family and
//! GPT-2 transformers on libtorch (tch), KV-cached batched sampling of K
//! candidates, chat templates, and per-sequence log-probs.
//!
//! The API is synchronous. [`Engine`] is `Send` (not `Sync`): own it on one
//! thread, or use [`EngineHandle`], which runs it on a dedicated worker
//! thread and is `Clone + Send + Sync`.

pub mod chat;
mod engine;
pub mod error;
mod generate;
pub mod gguf;
mod handle;
pub mod io;
mod load;
pub mod model;
mod paths;
pub mod quant;
pub mod sample;
mod save;
mod score;
pub mod tokenizer;
pub mod train;

pub use engine::{DType, DeviceChoice, Engine, LoadOptions, ModelInfo, SpecialToken};
pub use error::{EngineError, Result};
pub use generate::{
    Candidate, FinishReason, GenerateOptions, GenerateRequest, PromptInput, Timing,
};
pub use handle::EngineHandle;
pub use model::{Arch, Config, KvCache, Model};
pub use paths::{cache_dir, default_model_path};
pub use save::Head;
pub use score::SequenceScore;
