//! Background workers: generation, exports and training, claimed from PostgreSQL with
//! leases. They run inside `pairwise serve` (`PAIRWISE_WORKERS`, default 1) and as
//! `pairwise worker` processes, e.g. on GPU hosts, all against the same database.

mod checkpoints;
pub mod exports;
pub mod generation;
mod poll;
pub mod training;

use std::path::PathBuf;

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

/// How long a generation or training worker's claim holds without renewal: a worker that
/// dies gives its work to another after this. `PAIRWISE_LEASE_SECONDS` (default 120); tests
/// that kill workers shorten it.
pub fn lease() -> std::time::Duration {
    static LEASE: std::sync::LazyLock<std::time::Duration> = std::sync::LazyLock::new(|| {
        let seconds = std::env::var("PAIRWISE_LEASE_SECONDS")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s >= 2)
            .unwrap_or(120);
        std::time::Duration::from_secs(seconds)
    });
    *LEASE
}

/// The files a worker reaches: the storage every process shares, and this host's data folder
/// for scratch copies (exports on their way, checkpoints fetched from the storage).
#[derive(Debug, Clone)]
pub struct Files {
    pub storage: Storage,
    pub data_dir: PathBuf,
}

/// Starts the workers on this runtime; their files go to `storage`, through scratch folders
/// under `data_dir` (checkpoints trained here stay in `data_dir/models/` too, and those
/// trained elsewhere are fetched into `data_dir/checkpoints/`). The export workers remove the
/// files of exports finished more than `export_retention` ago. Send `true` to stop them.
pub fn spawn(
    pool: &PgPool,
    storage: &Storage,
    counts: Counts,
    data_dir: &std::path::Path,
    export_retention: Option<std::time::Duration>,
) -> tokio::sync::watch::Sender<bool> {
    let (stop, receiver) = tokio::sync::watch::channel(false);
    let files = Files {
        storage: storage.clone(),
        data_dir: data_dir.to_path_buf(),
    };
    for _ in 0..counts.generation {
        tokio::spawn(generation::run(
            pool.clone(),
            files.clone(),
            worker_name("generate"),
            receiver.clone(),
        ));
    }
    for _ in 0..counts.exports {
        tokio::spawn(exports::run(
            pool.clone(),
            files.clone(),
            worker_name("export"),
            export_retention,
            receiver.clone(),
        ));
    }
    for _ in 0..counts.training {
        tokio::spawn(training::run(
            pool.clone(),
            files.clone(),
            worker_name("train"),
            receiver.clone(),
        ));
    }
    stop
}
