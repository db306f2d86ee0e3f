//! The [`Engine`]: a model loaded from a GGUF file or a Hugging Face directory, with its
//! tokenizer, special tokens and chat template. Generation is in `generate.rs`, scoring in
//! `score.rs`, saving in `save.rs`.

use crate::chat;
use crate::error::{EngineError, Result};
use crate::model::{Arch, Config, Model};
use crate::{gguf, load, tokenizer};
use domain::Message;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Where to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA (bf16) when available, else CPU (f32).
    #[default]
    Auto,
    Cpu,
    /// CUDA device index.
    Cuda(usize),
}

/// Compute dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::F16 => Kind::Half,
            DType::BF16 => Kind::BFloat16,
        }
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    /// Override the compute dtype (default: bf16 on CUDA, f32 on CPU).
    pub dtype: Option<DType>,
    /// Intra-op CPU threads for libtorch (`tch::set_num_threads`; process-wide).
    pub threads: Option<usize>,
}

/// A special token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialToken {
    pub id: u32,
    pub text: String,
}

/// What `pairwise model inspect PATH` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// "gguf" or "hf".
    pub format: String,
    /// As the file names it: "llama", "qwen2", "gpt2", ...
    pub architecture: String,
    pub arch: Arch,
    pub parameters: usize,
    /// Compute dtype: "f32", "f16", "bf16".
    pub dtype: String,
    /// Storage types of the weights in the file, e.g. {"Q4_1": 211, "F32": 61}.
    pub file_tensor_types: std::collections::BTreeMap<String, usize>,
    pub device: String,
    pub vocab_size: usize,
    pub context_length: usize,
    pub n_layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub tie_embeddings: bool,
    pub qkv_bias: bool,
    /// e.g. "gguf gpt2 byte-level BPE (pre: smollm)" or "tokenizer.json".
    pub tokenizer_kind: String,
    pub bos: Option<SpecialToken>,
    pub eos: Option<SpecialToken>,
    pub pad: Option<SpecialToken>,
    pub has_chat_template: bool,
}

/// A loaded model with its tokenizer and chat template.
pub struct Engine {
    model: Model,
    tokenizer: tokenizers::Tokenizer,
    chat_template: Option<String>,
    eos_ids: Vec<u32>,
    info: ModelInfo,
}

fn resolve_device(opts: &LoadOptions) -> Result<(Device, Kind)> {
    let device = match opts.device {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda(i) => {
            if !tch::Cuda::is_available() || i >= tch::Cuda::device_count() as usize {
                return Err(EngineError::Unsupported(format!(
                    "CUDA device {i} is not available"
                )));
            }
            Device::Cuda(i)
        }
        DeviceChoice::Auto => {
            if tch::Cuda::is_available() {
                Device::Cuda(0)
            } else {
                Device::Cpu
            }
        }
    };
    let kind = match (opts.dtype, device) {
        (Some(d), _) => d.kind(),
        (None, Device::Cpu) => Kind::Float,
        (None, _) => Kind::BFloat16,
    };
    Ok((device, kind))
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Float => "f32",
        Kind::Half => "f16",
        Kind::BFloat16 => "bf16",
        _ => "other",
    }
}

/// A Hugging Face directory's `config.json` and the family its `model_type` names.
fn hf_config_json(dir: &Path) -> Result<(serde_json::Value, Arch)> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| EngineError::io(&p, e))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EngineError::Hf(format!("{}: {e}", p.display())))?;
    let arch = match config.get("model_type").and_then(|v| v.as_str()) {
        Some("gpt2") => Arch::Gpt2,
        _ => Arch::Llama,
    };
    Ok((config, arch))
}

fn special(tok: &tokenizers::Tokenizer, id: Option<u32>) -> Option<SpecialToken> {
    let id = id?;
    Some(SpecialToken {
        id,
        text: tok.id_to_token(id)?,
    })
}

impl Engine {
    /// Load a `.gguf` file or a Hugging Face directory.
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let path = path.as_ref();
        if let Some(n) = opts.threads {
            tch::set_num_threads(n.max(1) as i32);
        }
        let (device, kind) = resolve_device(opts)?;
        let _guard = tch::no_grad_guard();
        let meta = std::fs::metadata(path).map_err(|e| EngineError::io(path, e))?;
        if meta.is_dir() {
            Self::load_hf(path, device, kind)
        } else {
            Self::load_gguf(path, device, kind)
        }
    }

    /// The shape of the model at `path` (a `.gguf` file or a Hugging Face directory), read
    /// from its header or `config.json` without loading any weights.
    pub fn shape(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| EngineError::io(path, e))?;
        let config = if meta.is_dir() {
            let (config, arch) = hf_config_json(path)?;
            let st = load::SafetensorsSource::open(path, arch)?;
            load::hf_config(&config, &st)?.0
        } else {
            load::gguf_config(&gguf::GgufFile::open(path)?)?.0
        };
        config.validate()?;
        Ok(config)
    }

    fn load_gguf(path: &Path, device: Device, kind: Kind) -> Result<Self> {
        let g = gguf::GgufFile::open(path)?;
        let (cfg, arch_name) = load::gguf_config(&g)?;
        let tokenizer = tokenizer::from_gguf(&g)?;
        let unpermute = matches!(arch_name.as_str(), "llama" | "mistral")
            .then_some((cfg.n_heads, cfg.n_kv_heads));
        let src = load::GgufSource {
            file: &g,
            unpermute,
        };
        let model = Model::load(cfg, &src, device, kind)?;
        let mut types = std::collections::BTreeMap::new();
        for t in &g.tensors {
            *types.entry(format!("{:?}", t.ty)).or_insert(0) += 1;
        }
        let get_id = |k: &str| g.get(k).and_then(|v| v.as_u64()).map(|v| v as u32);
        let bos = get_id("tokenizer.ggml.bos_token_id");
        let eos = get_id("tokenizer.ggml.eos_token_id");
        let pad = get_id("tokenizer.ggml.padding_token_id");
        let chat_template = g
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let pre = g
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        if let Some(e) = get_id("tokenizer.ggml.eot_token_id") {
            if !eos_ids.contains(&e) {
                eos_ids.push(e);
            }
        }
        Ok(Self::finish(
            model,
            tokenizer,
            chat_template,
            eos_ids,
            path,
            "gguf",
            arch_name,
            types,
            format!("gguf gpt2 byte-level BPE (pre: {pre})"),
            (bos, eos, pad),
        ))
    }

    fn load_hf(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            let s = std::fs::read_to_string(&p).map_err(|e| EngineError::io(&p, e))?;
            serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| EngineError::Hf(format!("{}: {e}", p.display())))
        };
        let (config, arch) = hf_config_json(dir)?;
        let st = load::SafetensorsSource::open(dir, arch)?;
        let (cfg, arch_name) = load::hf_config(&config, &st)?;
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizer::from_file(&tok_path)?;
        let model = Model::load(cfg, &st, device, kind)?;
        let tok_cfg = read_json("tokenizer_config.json")?.unwrap_or_default();
        let token_str = |v: Option<&serde_json::Value>| -> Option<String> {
            match v? {
                serde_json::Value::String(s) => Some(s.clone()),
                o => o.get("content")?.as_str().map(str::to_string),
            }
        };
        let tok_id = |name: &str| -> Option<u32> {
            token_str(tok_cfg.get(name)).and_then(|s| tokenizer.token_to_id(&s))
        };
        let cfg_ids = |name: &str| -> Vec<u32> {
            match config.get(name) {
                Some(serde_json::Value::Number(n)) => {
                    n.as_u64().map(|v| v as u32).into_iter().collect()
                }
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_u64().map(|v| v as u32))
                    .collect(),
                _ => vec![],
            }
        };
        let bos = tok_id("bos_token").or_else(|| cfg_ids("bos_token_id").first().copied());
        let eos = tok_id("eos_token").or_else(|| cfg_ids("eos_token_id").first().copied());
        let pad = tok_id("pad_token").or(eos);
        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        for e in cfg_ids("eos_token_id") {
            if !eos_ids.contains(&e) {
                eos_ids.push(e);
            }
        }
        let chat_template = match tok_cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => std::fs::read_to_string(dir.join("chat_template.jinja")).ok(),
        };
        let types = st.dtype_counts();
        Ok(Self::finish(
            model,
            tokenizer,
            chat_template,
            eos_ids,
            dir,
            "hf",
            arch_name,
            types,
            "tokenizer.json".to_string(),
            (bos, eos, pad),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        model: Model,
        tokenizer: tokenizers::Tokenizer,
        chat_template: Option<String>,
        eos_ids: Vec<u32>,
        path: &Path,
        format: &str,
        architecture: String,
        file_tensor_types: std::collections::BTreeMap<String, usize>,
        tokenizer_kind: String,
        (bos, eos, pad): (Option<u32>, Option<u32>, Option<u32>),
    ) -> Self {
        let c = &model.config;
        let info = ModelInfo {
            path: path.to_path_buf(),
            format: format.to_string(),
            architecture,
            arch: c.arch,
            parameters: model.parameter_count(),
            dtype: kind_name(model.kind).to_string(),
            file_tensor_types,
            device: format!("{:?}", model.device).to_lowercase(),
            vocab_size: c.vocab_size,
            context_length: c.context_length,
            n_layers: c.n_layers,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            rope_theta: c.rope_theta,
            tie_embeddings: c.tie_embeddings,
            qkv_bias: c.qkv_bias,
            tokenizer_kind,
            bos: special(&tokenizer, bos),
            eos: special(&tokenizer, eos),
            pad: special(&tokenizer, pad),
            has_chat_template: chat_template.is_some(),
        };
        Engine {
            model,
            tokenizer,
            chat_template,
            eos_ids,
            info,
        }
    }

    pub fn info(&self) -> ModelInfo {
        self.info.clone()
    }
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// Mutable access, e.g. to make the weights trainable.
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }
    /// The EOS token (without cloning the whole [`ModelInfo`]).
    pub fn eos_token(&self) -> Option<&SpecialToken> {
        self.info.eos.as_ref()
    }
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Encode text (no BOS added; special-token literals are parsed).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        tokenizer::encode(&self.tokenizer, text)
    }
    /// Decode ids, skipping special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        tokenizer::decode(&self.tokenizer, ids)
    }

    /// Render messages with the model's chat template (ChatML when it has none).
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self
            .chat_template
            .as_deref()
            .unwrap_or(chat::CHATML_TEMPLATE);
        let bos = self.info.bos.as_ref().map_or("", |t| t.text.as_str());
        let eos = self.info.eos.as_ref().map_or("", |t| t.text.as_str());
        chat::render(tmpl, messages, add_generation_prompt, bos, eos)
    }

    /// The padding token, if the model names one.
    pub(crate) fn pad_token(&self) -> Option<&SpecialToken> {
        self.info.pad.as_ref()
    }

    /// Right-padded ids `[rows, longest]` and their mask (true = real token), on the
    /// model's device, ids checked against the vocabulary.
    pub(crate) fn ids_tensor(&self, rows: &[&[u32]], pad: u32) -> Result<(Tensor, Tensor)> {
        let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut mask = Vec::with_capacity(rows.len() * t);
        for r in rows {
            for j in 0..t {
                ids.push(r.get(j).copied().unwrap_or(pad) as i64);
                mask.push(j < r.len());
            }
        }
        self.model.check_ids(&ids)?;
        let shape = [rows.len() as i64, t as i64];
        let ids = Tensor::from_slice(&ids)
            .f_view(shape)?
            .f_to_device(self.model.device)?;
        let mask = Tensor::from_slice(&mask)
            .f_view(shape)?
            .f_to_device(self.model.device)?;
        Ok((ids, mask))
    }
}
