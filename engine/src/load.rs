//! Format-specific loading: GGUF files and Hugging Face directories.

use crate::error::{EngineError, Result};
use crate::gguf::{GgufFile, Value};
use crate::model::{Arch, Config, WeightSource};
use memmap2::Mmap;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

// ---------------------------------------------------------------- GGUF

pub(crate) struct GgufSource<'a> {
    pub file: &'a GgufFile,
    /// Undo llama.cpp's Q/K row permutation (arch `llama`), with (n_heads, n_kv_heads).
    pub unpermute: Option<(usize, usize)>,
}

/// Inverse of llama.cpp's `permute(w, n_head)` on the first dimension.
fn unpermute(t: Tensor, n_head: usize) -> Result<Tensor> {
    let shape = t.size();
    let rows = shape.first().copied().unwrap_or(0);
    let n = i64::try_from(n_head).unwrap_or(0);
    if n == 0 || rows == 0 || rows % n.saturating_mul(2) != 0 {
        return Err(EngineError::Gguf(format!(
            "cannot un-permute {rows} rows into {n_head} heads"
        )));
    }
    let rest: i64 = shape[1..].iter().product();
    Ok(t.f_reshape([n, rows / n / 2, 2, rest])?
        .f_transpose(1, 2)?
        .f_reshape(shape.as_slice())?
        .f_contiguous()?)
}

impl WeightSource for GgufSource<'_> {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        if self.file.tensor_info(name).is_none() {
            return Ok(None);
        }
        let (data, shape) = self.file.dequantize(name)?;
        let shape: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::from_slice(&data).f_reshape(shape.as_slice())?;
        drop(data);
        if let Some((nh, nkv)) = self.unpermute {
            if name.ends_with(".attn_q.weight") || name.ends_with(".attn_q.bias") {
                return Ok(Some(unpermute(t, nh)?));
            }
            if name.ends_with(".attn_k.weight") || name.ends_with(".attn_k.bias") {
                return Ok(Some(unpermute(t, nkv)?));
            }
        }
        Ok(Some(t))
    }
}

fn meta_u(g: &GgufFile, key: &str) -> Result<Option<usize>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|x| Some(x as usize))
            .ok_or_else(|| EngineError::Gguf(format!("metadata `{key}` is not an integer"))),
    }
}

fn need_u(g: &GgufFile, key: &str) -> Result<usize> {
    meta_u(g, key)?.ok_or_else(|| EngineError::Gguf(format!("missing metadata `{key}`")))
}

/// Build the model config from GGUF metadata.
pub(crate) fn gguf_config(g: &GgufFile) -> Result<(Config, String)> {
    let arch_name = g
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| EngineError::Gguf("missing `general.architecture`".into()))?
        .to_string();
    let arch = match arch_name.as_str() {
        "llama" | "mistral" | "qwen2" => Arch::Llama,
        "gpt2" => Arch::Gpt2,
        other => {
            return Err(EngineError::Unsupported(format!(
                "GGUF architecture `{other}` (supported: llama, mistral, qwen2, gpt2)"
            )))
        }
    };
    let a = &arch_name;
    let hidden = need_u(g, &format!("{a}.embedding_length"))?;
    let n_heads = need_u(g, &format!("{a}.attention.head_count"))?;
    let n_kv = meta_u(g, &format!("{a}.attention.head_count_kv"))?.unwrap_or(n_heads);
    let head_dim = meta_u(g, &format!("{a}.attention.key_length"))?
        .unwrap_or(hidden.checked_div(n_heads).unwrap_or(0));
    let embd = g
        .tensor_info("token_embd.weight")
        .ok_or_else(|| EngineError::MissingTensor("token_embd.weight".into()))?;
    let vocab = match meta_u(g, &format!("{a}.vocab_size"))? {
        Some(v) => v,
        None => embd.shape[0],
    };
    let eps_key = if arch == Arch::Gpt2 {
        format!("{a}.attention.layer_norm_epsilon")
    } else {
        format!("{a}.attention.layer_norm_rms_epsilon")
    };
    let cfg = Config {
        arch,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: need_u(g, &format!("{a}.feed_forward_length"))?,
        n_layers: need_u(g, &format!("{a}.block_count"))?,
        n_heads,
        n_kv_heads: n_kv,
        head_dim,
        rope_theta: g
            .get(&format!("{a}.rope.freq_base"))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0),
        norm_eps: g.get(&eps_key).and_then(Value::as_f64).unwrap_or(1e-5),
        context_length: need_u(g, &format!("{a}.context_length"))?,
        tie_embeddings: g.tensor_info("output.weight").is_none(),
        qkv_bias: g.tensor_info("blk.0.attn_q.bias").is_some(),
    };
    Ok((cfg, arch_name))
}

// ---------------------------------------------------------------- HF directory

struct StFile {
    mmap: Mmap,
}

struct StEntry {
    file: usize,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// All `*.safetensors` in a directory, memory mapped.
pub(crate) struct SafetensorsSource {
    files: Vec<StFile>,
    entries: HashMap<String, StEntry>,
    arch: Arch,
}

impl SafetensorsSource {
    pub fn open(dir: &Path, arch: Arch) -> Result<Self> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| EngineError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(EngineError::Hf(format!(
                "no *.safetensors file in {}",
                dir.display()
            )));
        }
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        for p in paths {
            let f = std::fs::File::open(&p).map_err(|e| EngineError::io(&p, e))?;
            // SAFETY: read-only map of a file the engine never writes.
            let mmap = unsafe { Mmap::map(&f) }.map_err(|e| EngineError::io(&p, e))?;
            let (n, meta) = safetensors::SafeTensors::read_metadata(&mmap)
                .map_err(|e| EngineError::Hf(format!("{}: {e}", p.display())))?;
            let data_start = 8 + n;
            let data_len = mmap.len() - data_start;
            for (name, info) in meta.tensors() {
                let (start, end) = info.data_offsets;
                if end > data_len || start > end {
                    return Err(EngineError::Hf(format!(
                        "{}: tensor `{name}` lies outside the file",
                        p.display()
                    )));
                }
                entries.insert(
                    name.clone(),
                    StEntry {
                        file: files.len(),
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        start: data_start + start,
                        end: data_start + end,
                    },
                );
            }
            files.push(StFile { mmap });
        }
        Ok(SafetensorsSource {
            files,
            entries,
            arch,
        })
    }

    /// How many tensors of each dtype the files hold, e.g. {"BF16": 272}.
    pub fn dtype_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for e in self.entries.values() {
            *m.entry(format!("{:?}", e.dtype)).or_insert(0) += 1;
        }
        m
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    fn raw(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        let kind = match e.dtype {
            safetensors::Dtype::F32 => Kind::Float,
            safetensors::Dtype::F16 => Kind::Half,
            safetensors::Dtype::BF16 => Kind::BFloat16,
            other => {
                return Err(EngineError::Unsupported(format!(
                    "safetensors dtype {other:?} for `{name}`"
                )))
            }
        };
        let bytes = &self.files[e.file].mmap[e.start..e.end];
        let shape: Vec<i64> = e.shape.iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(bytes, &shape, kind)?.f_to_kind(Kind::Float)?;
        Ok(Some(t))
    }

    /// HF name(s) for a canonical name, and whether it is a Conv1D weight to transpose.
    fn hf_names(&self, name: &str) -> (Vec<String>, bool) {
        match self.arch {
            Arch::Llama => {
                let n = match name {
                    "score.weight" => "score.weight".to_string(),
                    "token_embd.weight" => "model.embed_tokens.weight".to_string(),
                    "output_norm.weight" => "model.norm.weight".to_string(),
                    "output.weight" => "lm_head.weight".to_string(),
                    _ => match split_block(name) {
                        Some((i, rest)) => {
                            let (part, suffix) = rest.split_once('.').unwrap_or((rest, ""));
                            let m = match part {
                                "attn_norm" => "input_layernorm",
                                "attn_q" => "self_attn.q_proj",
                                "attn_k" => "self_attn.k_proj",
                                "attn_v" => "self_attn.v_proj",
                                "attn_output" => "self_attn.o_proj",
                                "ffn_norm" => "post_attention_layernorm",
                                "ffn_gate" => "mlp.gate_proj",
                                "ffn_up" => "mlp.up_proj",
                                "ffn_down" => "mlp.down_proj",
                                other => other,
                            };
                            format!("model.layers.{i}.{m}.{suffix}")
                        }
                        None => name.to_string(),
                    },
                };
                (vec![n], false)
            }
            Arch::Gpt2 => {
                let (n, conv) = match name {
                    "score.weight" => return (vec![name.to_string()], false),
                    "token_embd.weight" => ("wte.weight".to_string(), false),
                    "position_embd.weight" => ("wpe.weight".to_string(), false),
                    "output.weight" => ("lm_head.weight".to_string(), false),
                    _ if name.starts_with("output_norm.") => {
                        (name.replacen("output_norm", "ln_f", 1), false)
                    }
                    _ => match split_block(name) {
                        Some((i, rest)) => {
                            let (part, suffix) = rest.split_once('.').unwrap_or((rest, ""));
                            let m = match part {
                                "attn_norm" => "ln_1",
                                "attn_qkv" => "attn.c_attn",
                                "attn_output" => "attn.c_proj",
                                "ffn_norm" => "ln_2",
                                "ffn_up" => "mlp.c_fc",
                                "ffn_down" => "mlp.c_proj",
                                other => other,
                            };
                            let conv = !part.ends_with("norm") && suffix == "weight";
                            (format!("h.{i}.{m}.{suffix}"), conv)
                        }
                        None => (name.to_string(), false),
                    },
                };
                if n == "lm_head.weight" {
                    return (vec![n], conv);
                }
                (vec![format!("transformer.{n}"), n], conv)
            }
        }
    }
}

fn split_block(name: &str) -> Option<(usize, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (i, rest) = rest.split_once('.')?;
    Some((i.parse().ok()?, rest))
}

impl WeightSource for SafetensorsSource {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let (names, conv) = self.hf_names(name);
        for n in names {
            if let Some(t) = self.raw(&n)? {
                return Ok(Some(if conv {
                    t.f_transpose(0, 1)?.f_contiguous()?
                } else {
                    t
                }));
            }
        }
        Ok(None)
    }
}

fn j_usize(c: &Json, keys: &[&str]) -> Option<usize> {
    keys.iter()
        .find_map(|k| c.get(*k).and_then(Json::as_u64).map(|v| v as usize))
}

/// Parse `config.json`. Returns the config and the `model_type`.
pub(crate) fn hf_config(c: &Json, st: &SafetensorsSource) -> Result<(Config, String)> {
    let model_type = c
        .get("model_type")
        .and_then(Json::as_str)
        .ok_or_else(|| EngineError::Hf("config.json lacks `model_type`".into()))?
        .to_string();
    let missing = |k: &str| EngineError::Hf(format!("config.json lacks `{k}`"));
    let cfg = match model_type.as_str() {
        "llama" | "mistral" | "qwen2" | "smollm" | "smollm2" => {
            let hidden = j_usize(c, &["hidden_size"]).ok_or_else(|| missing("hidden_size"))?;
            let n_heads = j_usize(c, &["num_attention_heads"])
                .ok_or_else(|| missing("num_attention_heads"))?;
            let rope_theta = c
                .get("rope_theta")
                .and_then(Json::as_f64)
                .or_else(|| {
                    c.get("rope_parameters")
                        .and_then(|r| r.get("rope_theta"))
                        .and_then(Json::as_f64)
                })
                .unwrap_or(10000.0);
            let qkv_bias = model_type == "qwen2"
                || c.get("attention_bias")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
            Config {
                arch: Arch::Llama,
                vocab_size: j_usize(c, &["vocab_size"]).ok_or_else(|| missing("vocab_size"))?,
                hidden_size: hidden,
                intermediate_size: j_usize(c, &["intermediate_size"])
                    .ok_or_else(|| missing("intermediate_size"))?,
                n_layers: j_usize(c, &["num_hidden_layers"])
                    .ok_or_else(|| missing("num_hidden_layers"))?,
                n_heads,
                n_kv_heads: j_usize(c, &["num_key_value_heads"]).unwrap_or(n_heads),
                head_dim: j_usize(c, &["head_dim"])
                    .unwrap_or(hidden.checked_div(n_heads).unwrap_or(0)),
                rope_theta,
                norm_eps: c.get("rms_norm_eps").and_then(Json::as_f64).unwrap_or(1e-6),
                context_length: j_usize(c, &["max_position_embeddings"]).unwrap_or(2048),
                tie_embeddings: c
                    .get("tie_word_embeddings")
                    .and_then(Json::as_bool)
                    .unwrap_or(false)
                    || !st.has("lm_head.weight"),
                qkv_bias,
            }
        }
        "gpt2" => {
            let hidden = j_usize(c, &["n_embd", "hidden_size"]).ok_or_else(|| missing("n_embd"))?;
            let n_heads = j_usize(c, &["n_head"]).ok_or_else(|| missing("n_head"))?;
            Config {
                arch: Arch::Gpt2,
                vocab_size: j_usize(c, &["vocab_size"]).ok_or_else(|| missing("vocab_size"))?,
                hidden_size: hidden,
                intermediate_size: j_usize(c, &["n_inner"]).unwrap_or(hidden.saturating_mul(4)),
                n_layers: j_usize(c, &["n_layer"]).ok_or_else(|| missing("n_layer"))?,
                n_heads,
                n_kv_heads: n_heads,
                head_dim: hidden.checked_div(n_heads).unwrap_or(0),
                rope_theta: 0.0,
                norm_eps: c
                    .get("layer_norm_epsilon")
                    .and_then(Json::as_f64)
                    .unwrap_or(1e-5),
                context_length: j_usize(c, &["n_positions", "n_ctx"]).unwrap_or(1024),
                tie_embeddings: true,
                qkv_bias: true,
            }
        }
        other => {
            return Err(EngineError::Unsupported(format!(
                "model_type `{other}` (supported: llama, mistral, qwen2, gpt2)"
            )))
        }
    };
    Ok((cfg, model_type))
}
