//! A Hugging Face model directory as `Engine::shape` and `Engine::load` read it: `config.json`
//! and `model.safetensors` (header, tensor table and data), with a fixed small `tokenizer.json`.
//! The input is a little-endian u32 `n`, then `n` bytes of `config.json`, then the
//! safetensors file. None of it may panic, whatever the bytes; errors are fine.
#![no_main]

use engine::{Arch, DeviceChoice, Engine, LoadOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A byte-level BPE tokenizer over "<|endoftext|>", "a", "b", "ab", the smallest that loads
/// (also read by engine/tests/hostile_files.rs).
const TOKENIZER: &str = include_str!("../tokenizer.json");

/// `$TMPDIR/pairwise-fuzz-hf-<pid>/`, its files rewritten for every input.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        sweep("pairwise-fuzz-hf-");
        let dir = std::env::temp_dir().join(format!("pairwise-fuzz-hf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("tokenizer.json"), TOKENIZER).expect("write tokenizer.json");
        dir
    })
}

/// Removes the temp dirs named `{prefix}<pid>` of earlier runs whose process is gone.
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

/// With `PAIRWISE_FUZZ_VERBOSE` set, each input says how far it got (to check the seeds).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PAIRWISE_FUZZ_VERBOSE").is_some())
}

/// Elements allowed in the RoPE tables `Engine::load` builds from the config alone
/// (`context_length * head_dim`, not backed by any tensor in the file).
const MAX_ROPE: usize = 1 << 20;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (config, safetensors) = rest.split_at(n);
    let dir = dir();
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
    std::fs::write(dir.join("model.safetensors"), safetensors).expect("write model.safetensors");
    let cfg = match Engine::shape(dir) {
        Ok(cfg) => cfg,
        Err(e) => {
            if verbose() {
                eprintln!("shape: {e}");
            }
            return;
        }
    };
    if cfg.arch == Arch::Llama && cfg.context_length.saturating_mul(cfg.head_dim) > MAX_ROPE {
        return;
    }
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        dtype: None,
        threads: Some(1),
    };
    match Engine::load(dir, &opts) {
        Ok(engine) => {
            if verbose() {
                eprintln!("loaded: {:?}", engine.info());
            }
        }
        Err(e) => {
            if verbose() {
                eprintln!("load: {e}");
            }
        }
    }
});
