//! Tokenizers: built from GGUF metadata (`gpt2` byte-level BPE) or loaded
//! from a Hugging Face `tokenizer.json`.

use crate::error::{EngineError, Result};
use crate::gguf::GgufFile;
use serde_json::{json, Value as Json};
use std::path::Path;
use tokenizers::Tokenizer;

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// llama3-style pre-tokenizer regex (`llama-bpe`, `llama3`, `smaug-bpe`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2 pre-tokenizer regex.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn byte_level(use_regex: bool) -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn split(pattern: &str) -> Json {
    json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false})
}

/// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Json {
    match pre {
        // StarCoder-style: digits split one by one, then GPT-2 byte-level split.
        "smollm" | "starcoder" | "refact" | "smaug" => json!({
            "type": "Sequence",
            "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level(true)]
        }),
        "llama-bpe" | "llama3" | "smaug-bpe" | "falcon3" => json!({
            "type": "Sequence", "pretokenizers": [split(LLAMA3_SPLIT), byte_level(false)]
        }),
        "qwen2" | "deepseek-r1-qwen" => json!({
            "type": "Sequence", "pretokenizers": [split(QWEN2_SPLIT), byte_level(false)]
        }),
        // "gpt2", "default", unknown: plain GPT-2 byte-level.
        _ => byte_level(true),
    }
}

fn meta_strings(g: &GgufFile, key: &str) -> Result<Vec<String>> {
    let arr = g
        .get(key)
        .and_then(|v| v.as_array())
        .ok_or_else(|| EngineError::Gguf(format!("missing metadata array `{key}`")))?;
    arr.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| EngineError::Gguf(format!("`{key}` holds a non-string")))
        })
        .collect()
}

/// Build a `tokenizers::Tokenizer` from GGUF tokenizer metadata.
pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer> {
    let model = g
        .get("tokenizer.ggml.model")
        .and_then(|v| v.as_str())
        .ok_or_else(|| EngineError::Gguf("missing `tokenizer.ggml.model`".into()))?;
    if model != "gpt2" {
        return Err(EngineError::Unsupported(format!(
            "GGUF tokenizer model `{model}` (only `gpt2` byte-level BPE is supported; use a HF directory with tokenizer.json)"
        )));
    }
    let tokens = meta_strings(g, "tokenizer.ggml.tokens")?;
    let merges = meta_strings(g, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match g
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.as_array())
    {
        Some(a) => a.iter().map(|v| v.as_i64().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let pre = g
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.as_str())
        .unwrap_or("default");

    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, tok) in tokens.iter().enumerate() {
        vocab.insert(tok.clone(), json!(id));
        let ty = types.get(id).copied().unwrap_or(1);
        if ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED {
            added.push(json!({
                "id": id, "content": tok, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": ty == TOKEN_TYPE_CONTROL
            }));
        }
    }
    let merges: Vec<Json> = merges
        .iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok(json!([a, b])),
            None => Err(EngineError::Gguf(format!("bad merge `{m}`"))),
        })
        .collect::<Result<_>>()?;
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre),
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    });
    let s = serde_json::to_string(&spec)?;
    s.parse::<Tokenizer>()
        .map_err(|e| EngineError::Tokenizer(format!("building tokenizer from GGUF: {e}")))
}

/// Load a `tokenizer.json`.
pub fn from_file(path: &Path) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    text.parse::<Tokenizer>()
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))
}

/// Encode without adding special tokens (special literals in the text are still parsed).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    tok.encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| EngineError::Tokenizer(e.to_string()))
}

/// Decode, skipping special tokens.
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true)
        .map_err(|e| EngineError::Tokenizer(e.to_string()))
}
