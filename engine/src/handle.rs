//! A dedicated worker thread owning an [`Engine`], fed by a channel.

use crate::engine::{Engine, LoadOptions, ModelInfo};
use crate::error::{EngineError, Result};
use crate::generate::{Candidate, GenerateRequest};
use crate::score::SequenceScore;
use std::path::PathBuf;
use std::sync::mpsc;

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// `Clone + Send + Sync` handle to an engine running on its own thread.
/// Its methods block: from async code call them inside `spawn_blocking`
/// (cheap: the work itself happens on the engine thread).
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Job>,
    info: ModelInfo,
}

impl EngineHandle {
    /// Load the model on a new thread; returns once it is loaded.
    pub fn spawn(path: impl Into<PathBuf>, opts: LoadOptions) -> Result<Self> {
        let path = path.into();
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<ModelInfo>>();
        std::thread::Builder::new()
            .name("pairwise-engine".into())
            .spawn(move || {
                let mut engine = match Engine::load(&path, &opts) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(e.info()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut engine);
                }
            })
            .map_err(|e| EngineError::io("<engine thread>", e))?;
        let info = ready_rx.recv().map_err(|_| EngineError::WorkerGone)??;
        Ok(EngineHandle { tx, info })
    }

    pub fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    /// Run `f` on the engine thread and wait for its result.
    pub fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> R + Send + 'static,
    ) -> Result<R> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Box::new(move |e: &mut Engine| {
                let _ = tx.send(f(e));
            }))
            .map_err(|_| EngineError::WorkerGone)?;
        rx.recv().map_err(|_| EngineError::WorkerGone)
    }

    pub fn generate(&self, req: GenerateRequest) -> Result<Vec<Candidate>> {
        self.with(move |e| e.generate(&req))?
    }

    pub fn score(&self, seqs: Vec<Vec<u32>>) -> Result<Vec<SequenceScore>> {
        self.with(move |e| e.score(&seqs))?
    }
}
