//! Model files as the fuzz targets feed them (`make fuzz`; the inputs are `fuzz/seeds/`):
//! every seed, including those that once crashed the loader, is read and loaded without a
//! panic, and the dimension overflows that `gguf_header` and `hf_config` found are refused
//! with an error.

mod common;

use engine::{DeviceChoice, Engine, LoadOptions};
use std::path::{Path, PathBuf};

/// The fuzz target's tokenizer, which the seeds' vocabularies fit.
const TOKENIZER: &str = include_str!("../../fuzz/tokenizer.json");

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

/// Reads the shape, then loads the model when the shape is fine: the errors, if any.
fn read(path: &Path) -> Vec<String> {
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        dtype: None,
        threads: Some(1),
    };
    match Engine::shape(path) {
        Err(e) => vec![e.to_string()],
        Ok(_) => Engine::load(path, &opts)
            .err()
            .map(|e| e.to_string())
            .into_iter()
            .collect(),
    }
}

fn expect_refused(name: &str, errors: &[String]) {
    let overflow = name.contains("overflow") || name.contains("rem_zero");
    if overflow {
        assert!(
            errors.iter().any(|e| e.contains("is over")),
            "{name}: {errors:?}"
        );
    } else {
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
}

#[test]
fn gguf_seeds_load_or_are_refused() {
    for seed in seeds("gguf_header") {
        let name = seed.file_name().unwrap().to_string_lossy().to_string();
        let errors = read(&seed);
        // A lone tensor is no model: it only has to fail cleanly.
        if !name.starts_with("lone_") {
            expect_refused(&name, &errors);
        }
    }
}

#[test]
fn hf_seeds_load_or_are_refused() {
    for seed in seeds("hf_config") {
        let name = seed.file_name().unwrap().to_string_lossy().to_string();
        // As the fuzz target splits it: a u32 length, config.json, then model.safetensors,
        // beside a tokenizer.
        let bytes = std::fs::read(&seed).unwrap();
        let (len, rest) = bytes.split_at(4);
        let n = (u32::from_le_bytes(len.try_into().unwrap()) as usize).min(rest.len());
        let dir = common::tmpdir(&format!("hostile-hf-{name}"));
        std::fs::write(dir.join("config.json"), &rest[..n]).unwrap();
        std::fs::write(dir.join("model.safetensors"), &rest[n..]).unwrap();
        std::fs::write(dir.join("tokenizer.json"), TOKENIZER).unwrap();
        expect_refused(&name, &read(&dir));
        let _ = std::fs::remove_dir_all(dir);
    }
}
