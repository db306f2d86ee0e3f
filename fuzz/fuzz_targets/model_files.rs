//! What the two model-file targets (`gguf_header`, `hf_config`) share: a scratch folder per
//! process, the verbose switch, and reading a model's shape, then loading it when its config
//! alone would not size a huge allocation.

use engine::{Arch, DeviceChoice, Engine, LoadOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Elements allowed in the RoPE tables `Engine::load` builds from the config alone
/// (`context_length * head_dim`, not backed by any tensor in the file).
const MAX_ROPE: usize = 1 << 20;

/// With `PAIRWISE_FUZZ_VERBOSE` set, each input says how far it got (to check the seeds).
pub fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PAIRWISE_FUZZ_VERBOSE").is_some())
}

/// `$TMPDIR/{prefix}<pid>/`, created after removing those of earlier runs whose process is
/// gone.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    sweep(prefix);
    let dir = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn sweep(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `Engine::shape`, then `Engine::load` on the CPU unless the RoPE tables would be huge: the
/// engine when it loaded. Errors are fine (and said when verbose); panics are findings.
pub fn shape_then_load(path: &Path) -> Option<Engine> {
    let cfg = match Engine::shape(path) {
        Ok(cfg) => cfg,
        Err(e) => {
            if verbose() {
                eprintln!("shape: {e}");
            }
            return None;
        }
    };
    if cfg.arch == Arch::Llama && cfg.context_length.saturating_mul(cfg.head_dim) > MAX_ROPE {
        return None;
    }
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        dtype: None,
        threads: Some(1),
    };
    match Engine::load(path, &opts) {
        Ok(engine) => {
            if verbose() {
                eprintln!("loaded: {:?}", engine.info());
            }
            Some(engine)
        }
        Err(e) => {
            if verbose() {
                eprintln!("load: {e}");
            }
            None
        }
    }
}
