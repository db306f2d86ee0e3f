//! A GGUF file as `pairwise model inspect` / `Engine::load` read it: the header, metadata and
//! tensor table (`GgufFile::open`), every tensor's bytes and (when small) its dequantisation,
//! the tokenizer built from the metadata, `Engine::shape`, and, for small models, `Engine::load`
//! on the CPU. None of it may panic, whatever the bytes; errors are fine.
#![no_main]

mod model_files;

use engine::gguf::GgufFile;
use model_files::{scratch_dir, shape_then_load, verbose};
use std::path::PathBuf;
use std::sync::OnceLock;

/// `$TMPDIR/pairwise-fuzz-<pid>/model.gguf`, rewritten for every input.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| scratch_dir("pairwise-fuzz-").join("model.gguf"))
}

/// Tensors dequantised at most (elements), so one input cannot take seconds.
const MAX_DEQUANT: usize = 1 << 16;

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
    if let Some(engine) = shape_then_load(path) {
        if let Ok(ids) = engine.encode("Hi <|im_start|>user") {
            let _ = engine.decode(&ids);
        }
    }
});
