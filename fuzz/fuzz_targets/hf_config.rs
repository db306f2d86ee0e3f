//! A Hugging Face model directory as `Engine::shape` and `Engine::load` read it: `config.json`
//! and `model.safetensors` (header, tensor table and data), with a fixed small `tokenizer.json`.
//! The input is a little-endian u32 `n`, then `n` bytes of `config.json`, then the
//! safetensors file. None of it may panic, whatever the bytes; errors are fine.
#![no_main]

mod model_files;

use model_files::{scratch_dir, shape_then_load};
use std::path::PathBuf;
use std::sync::OnceLock;

/// A byte-level BPE tokenizer over "<|endoftext|>", "a", "b", "ab", the smallest that loads
/// (also read by engine/tests/hostile_files.rs).
const TOKENIZER: &str = include_str!("../tokenizer.json");

/// `$TMPDIR/pairwise-fuzz-hf-<pid>/`, its files rewritten for every input.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch_dir("pairwise-fuzz-hf-");
        std::fs::write(dir.join("tokenizer.json"), TOKENIZER).expect("write tokenizer.json");
        dir
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (config, safetensors) = rest.split_at(n);
    let dir = dir();
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
    std::fs::write(dir.join("model.safetensors"), safetensors).expect("write model.safetensors");
    shape_then_load(dir);
});
