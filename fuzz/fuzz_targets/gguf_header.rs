//! A GGUF file as `pairwise model inspect` / `Engine::load` read it: the header, metadata and
//! tensor table (`GgufFile::open`), every tensor's bytes and (when small) its dequantisation,
//! the tokenizer built from the metadata, `Engine::shape`, and, for small models, `Engine::load`
//! on the CPU. None of it may panic, whatever the bytes; errors are fine.
#![no_main]

use engine::gguf::GgufFile;
use engine::{Arch, DeviceChoice, Engine, LoadOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `$TMPDIR/pairwise-fuzz-<pid>/model.gguf`, rewritten for every input.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        sweep("pairwise-fuzz-");
        let dir = std::env::temp_dir().join(format!("pairwise-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("model.gguf")
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

/// Tensors dequantised at most (elements), so one input cannot take seconds.
const MAX_DEQUANT: usize = 1 << 16;
/// Elements allowed in the RoPE tables `Engine::load` builds from the config alone
/// (`context_length * head_dim`, not backed by any tensor in the file).
const MAX_ROPE: usize = 1 << 20;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write temp file");
    let g = match GgufFile::open(path) {
        Ok(g) => g,
        Err(e) => {
            if verbose() {
                eprintln!("open: {e}");
            }
            return;
        }
    };
    for v in g.metadata.values() {
        let _ = (v.as_u64(), v.as_i64(), v.as_f64(), v.as_str(), v.as_bool());
        let _ = v.as_array().map(|a| a.len());
    }
    for t in &g.tensors {
        // Every tensor lies inside the file, with as many bytes as its type and shape need.
        let bytes = g.tensor_bytes(t);
        assert_eq!(bytes.len(), t.n_bytes);
        assert_eq!(Some(t.n_bytes), t.ty.bytes_for(t.numel()).ok());
        // `tensor_info` answers the last tensor of a name (a name may repeat).
        let info = g
            .tensor_info(&t.name)
            .expect("a listed tensor is found by name");
        if info.numel() <= MAX_DEQUANT {
            if let Ok((values, shape)) = g.dequantize(&t.name) {
                assert_eq!(values.len(), info.numel());
                assert_eq!(shape, info.shape);
            }
        }
    }
    if let Ok(tok) = engine::tokenizer::from_gguf(&g) {
        if let Ok(ids) = engine::tokenizer::encode(&tok, "Hi <|im_start|>user 12345 héllo") {
            let _ = engine::tokenizer::decode(&tok, &ids);
        }
    }
    drop(g);
    let cfg = match Engine::shape(path) {
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
    match Engine::load(path, &opts) {
        Ok(engine) => {
            if verbose() {
                eprintln!("loaded: {:?}", engine.info());
            }
            if let Ok(ids) = engine.encode("Hi <|im_start|>user") {
                let _ = engine.decode(&ids);
            }
        }
        Err(e) => {
            if verbose() {
                eprintln!("load: {e}");
            }
        }
    }
});
