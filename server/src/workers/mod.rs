//! Background workers: generation, exports and training, claimed from PostgreSQL with
//! leases. They run inside `pairwise serve` (`PAIRWISE_WORKERS`, default 1) and as
//! `pairwise worker` processes, e.g. on GPU hosts, all against the same database.

pub mod exports;
pub mod generation;
mod poll;
pub mod training;

use storage::Storage;
use store::PgPool;

use poll::worker_name;

/// How many workers of each kind a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub generation: usize,
    pub exports: usize,
    pub training: usize,
}

impl Counts {
    /// What `PAIRWISE_WORKERS=n` means: `n` generation workers and, when `n` is not 0, one
    /// export worker and one training worker.
    pub fn standard(n: usize) -> Self {
        Self {
            generation: n,
            exports: n.min(1),
            training: n.min(1),
        }
    }
}

/// Starts the workers on this runtime; their files go to `storage`, through scratch folders
/// under `data_dir` (checkpoints stay in `data_dir/models/` too, where the engine loads them).
/// Send `true` to stop them.
pub fn spawn(
    pool: &PgPool,
    storage: &Storage,
    counts: Counts,
    data_dir: &std::path::Path,
) -> tokio::sync::watch::Sender<bool> {
    let (stop, receiver) = tokio::sync::watch::channel(false);
    for _ in 0..counts.generation {
        tokio::spawn(generation::run(
            pool.clone(),
            worker_name("generate"),
            receiver.clone(),
        ));
    }
    for _ in 0..counts.exports {
        tokio::spawn(exports::run(
            pool.clone(),
            storage.clone(),
            worker_name("export"),
            data_dir.to_path_buf(),
            receiver.clone(),
        ));
    }
    for _ in 0..counts.training {
        tokio::spawn(training::run(
            pool.clone(),
            storage.clone(),
            worker_name("train"),
            data_dir.to_path_buf(),
            receiver.clone(),
        ));
    }
    stop
}
