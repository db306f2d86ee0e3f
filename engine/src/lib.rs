//! The Pairwise model engine: GGUF / Hugging Face loading, Llama-family and
//! GPT-2 transformers on libtorch (tch), KV-cached batched sampling of K
//! candidates, chat templates, and per-sequence log-probs.
//!
//! The API is synchronous. [`Engine`] is `Send` (not `Sync`): own it on one
//! thread, or use [`EngineHandle`], which runs it on a dedicated worker
//! thread and is `Clone + Send + Sync`.

pub mod chat;
pub mod error;
pub mod gguf;
mod handle;
mod load;
pub mod model;
pub mod quant;
pub mod sample;
mod save;
pub mod tokenizer;
pub mod train;

pub use chat::ChatMessage;
pub use error::{EngineError, Result};
pub use handle::EngineHandle;
pub use model::{Arch, Config, KvCache, Model};
pub use save::Head;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
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

/// The prompt of a generation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptInput {
    /// Raw text, tokenized as is (no BOS added, special-token literals parsed).
    Text(String),
    /// Messages rendered through the model's chat template with the generation prompt.
    Chat(Vec<ChatMessage>),
    /// Pre-tokenized ids.
    Ids(Vec<u32>),
}

/// A generation request: `n` candidates for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: PromptInput,
    pub n: usize,
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// Same seed, same request, same model => same candidates.
    pub seed: Option<u64>,
    /// Generation stops when the decoded text contains one of these; the
    /// text is cut before it.
    pub stop: Vec<String>,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        GenerateRequest {
            prompt: PromptInput::Text(String::new()),
            n: 1,
            max_new_tokens: 128,
            temperature: 0.7,
            top_k: None,
            top_p: Some(0.9),
            repetition_penalty: None,
            seed: None,
            stop: vec![],
        }
    }
}

/// Why a candidate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// EOS token or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Timing of one generate call (shared by its candidates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub prompt_tokens: usize,
    /// Prefill forward + first logits on the host: time to first token.
    pub prefill_ms: f64,
    /// Decode steps after the first token.
    pub decode_ms: f64,
    /// Tokens generated after the first, all candidates, per second of decode.
    pub decode_tokens_per_s: f64,
    pub total_ms: f64,
}

/// One generated candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Decoded text (special tokens skipped, cut before a stop string).
    pub text: String,
    /// Generated ids, including the final EOS id when it stopped on EOS.
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub n_tokens: usize,
    pub timing: Timing,
}

/// Extra generation knobs not part of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Keep going past EOS until `max_new_tokens` (benchmarks).
    pub ignore_eos: bool,
}

/// Per-sequence log-probs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceScore {
    /// `log p(ids[t] | ids[..t])` for t = 1..len.
    pub token_logprobs: Vec<f32>,
    pub sum_logprob: f64,
    pub mean_logprob: f64,
}

/// The default model: env `PAIRWISE_DEFAULT_MODEL`, else
/// `${PAIRWISE_CACHE:-~/.cache/pairwise}/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn default_model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PAIRWISE_DEFAULT_MODEL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    cache_dir()
        .join("models")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// `${PAIRWISE_CACHE:-~/.cache/pairwise}`.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PAIRWISE_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache").join("pairwise")
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
        let config = read_json("config.json")?
            .ok_or_else(|| EngineError::Hf(format!("no config.json in {}", dir.display())))?;
        let model_type = config
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let arch = if model_type == "gpt2" {
            Arch::Gpt2
        } else {
            Arch::Llama
        };
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
        messages: &[ChatMessage],
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

    /// Token ids of a prompt.
    pub fn prompt_ids(&self, prompt: &PromptInput) -> Result<Vec<u32>> {
        match prompt {
            PromptInput::Text(t) => self.encode(t),
            PromptInput::Chat(m) => self.encode(&self.apply_chat_template(m, true)?),
            PromptInput::Ids(ids) => Ok(ids.clone()),
        }
    }

    fn ids_tensor(&self, rows: &[&[u32]], pad: u32) -> Result<(Tensor, Tensor)> {
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

    /// Logits `[len, vocab]` (f32, CPU) for one sequence, no cache.
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        let _g = tch::no_grad_guard();
        if ids.is_empty() {
            return Err(EngineError::InvalidRequest("empty sequence".into()));
        }
        let (x, _) = self.ids_tensor(&[ids], 0)?;
        let l = self.model.forward(&x, None, None, false)?;
        Ok(l.f_squeeze_dim(0)?
            .f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?)
    }

    /// Per-sequence log-probs for a batch (right-padded, masked, one forward).
    pub fn score(&self, seqs: &[Vec<u32>]) -> Result<Vec<SequenceScore>> {
        let _g = tch::no_grad_guard();
        if seqs.is_empty() {
            return Ok(vec![]);
        }
        if seqs.iter().any(|s| s.len() < 2) {
            return Err(EngineError::InvalidRequest(
                "every sequence needs at least 2 tokens to score".into(),
            ));
        }
        let pad = self.info.pad.as_ref().map_or(0, |p| p.id);
        let rows: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let (ids, mask) = self.ids_tensor(&rows, pad)?;
        let logits = self.model.forward(&ids, None, Some(&mask), false)?;
        let t = ids.size()[1];
        let lp = logits
            .f_narrow(1, 0, t - 1)?
            .f_to_kind(Kind::Float)?
            .f_log_softmax(-1, Kind::Float)?;
        let next = ids.f_narrow(1, 1, t - 1)?.f_unsqueeze(-1)?;
        let tok = lp
            .f_gather(-1, &next, false)?
            .f_squeeze_dim(-1)?
            .f_to_device(Device::Cpu)?;
        let all: Vec<f32> = Vec::<f32>::try_from(tok.f_flatten(0, -1)?)?;
        let w = (t - 1) as usize;
        Ok(seqs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let v = all[i * w..i * w + s.len() - 1].to_vec();
                let sum: f64 = v.iter().map(|&x| x as f64).sum();
                SequenceScore {
                    mean_logprob: sum / v.len() as f64,
                    sum_logprob: sum,
                    token_logprobs: v,
                }
            })
            .collect())
    }

    /// Generate `req.n` candidates: one prefill, the prompt's cache shared
    /// (expanded to the candidates' rows), candidates decoded as one batch.
    pub fn generate(&self, req: &GenerateRequest) -> Result<Vec<Candidate>> {
        self.generate_with_options(req, &GenerateOptions::default())
    }

    /// [`Engine::generate`] with extra knobs (benchmarks).
    pub fn generate_with_options(
        &self,
        req: &GenerateRequest,
        gopts: &GenerateOptions,
    ) -> Result<Vec<Candidate>> {
        let _g = tch::no_grad_guard();
        let t0 = Instant::now();
        if req.n == 0 {
            return Ok(vec![]);
        }
        if req.n > 256 {
            return Err(EngineError::InvalidRequest("n must be <= 256".into()));
        }
        if !req.temperature.is_finite() || req.temperature < 0.0 {
            return Err(EngineError::InvalidRequest("bad temperature".into()));
        }
        let prompt = self.prompt_ids(&req.prompt)?;
        if prompt.is_empty() {
            return Err(EngineError::InvalidRequest("empty prompt".into()));
        }
        let n = req.n;
        let timing_base = Timing {
            prompt_tokens: prompt.len(),
            ..Default::default()
        };
        if req.max_new_tokens == 0 {
            let c = Candidate {
                text: String::new(),
                token_ids: vec![],
                finish_reason: FinishReason::Length,
                n_tokens: 0,
                timing: timing_base,
            };
            return Ok(vec![c; n]);
        }
        let capacity = prompt.len().saturating_add(req.max_new_tokens);
        let mut cache = self.model.new_cache(1, capacity)?;
        let (ids, _) = self.ids_tensor(&[&prompt], 0)?;
        let logits = self.model.forward(&ids, Some(&mut cache), None, true)?;
        let v = self.model.config.vocab_size;
        let first: Vec<f32> = Vec::<f32>::try_from(
            logits
                .f_to_kind(Kind::Float)?
                .f_to_device(Device::Cpu)?
                .f_flatten(0, -1)?,
        )?;
        let prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();

        let params = sample::SamplingParams {
            temperature: req.temperature,
            top_k: req.top_k,
            top_p: req.top_p,
            repetition_penalty: req.repetition_penalty,
        };
        let seed = req.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        let mut rngs: Vec<sample::Rng> = (0..n)
            .map(|i| sample::Rng::for_candidate(seed, i))
            .collect();
        let mut gen: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut finish: Vec<Option<FinishReason>> = vec![None; n];
        let mut texts: Vec<Option<String>> = vec![None; n];
        // `active[r]` = candidate in cache row r.
        let mut active: Vec<usize> = (0..n).collect();
        let mut rows: Vec<Vec<f32>> = vec![first; n];
        let mut cache_rows_expanded = false;
        let mut decoded_after_first = 0usize;
        let mut context: Vec<u32> = Vec::new();
        loop {
            // Sample one token for each active candidate.
            for (r, &ci) in active.iter().enumerate() {
                let row = &mut rows[r];
                if params.repetition_penalty.is_some() {
                    context.clear();
                    context.extend_from_slice(&prompt);
                    context.extend_from_slice(&gen[ci]);
                }
                let tok = sample::sample(row, &context, &params, &mut rngs[ci]);
                gen[ci].push(tok);
                if !gopts.ignore_eos && self.eos_ids.contains(&tok) {
                    finish[ci] = Some(FinishReason::Stop);
                } else if !req.stop.is_empty() {
                    let text = self.decode(&gen[ci])?;
                    if let Some(cut) = req
                        .stop
                        .iter()
                        .filter(|s| !s.is_empty())
                        .filter_map(|s| text.find(s.as_str()))
                        .min()
                    {
                        texts[ci] = Some(text[..cut].to_string());
                        finish[ci] = Some(FinishReason::Stop);
                    }
                }
                if finish[ci].is_none() && gen[ci].len() >= req.max_new_tokens {
                    finish[ci] = Some(FinishReason::Length);
                }
            }
            let keep: Vec<i64> = active
                .iter()
                .enumerate()
                .filter(|(_, &ci)| finish[ci].is_none())
                .map(|(r, _)| r as i64)
                .collect();
            if keep.is_empty() {
                break;
            }
            if !cache_rows_expanded {
                // Share the prompt's cache: replicate its single row.
                cache.select_rows(&vec![0i64; keep.len()])?;
                cache_rows_expanded = true;
            } else if keep.len() != active.len() {
                cache.select_rows(&keep)?;
            }
            active = keep.iter().map(|&r| active[r as usize]).collect();
            let last: Vec<i64> = active
                .iter()
                .map(|&ci| *gen[ci].last().unwrap_or(&0) as i64)
                .collect();
            let x = Tensor::from_slice(&last)
                .f_view([active.len() as i64, 1])?
                .f_to_device(self.model.device)?;
            let logits = self.model.forward(&x, Some(&mut cache), None, true)?;
            let flat: Vec<f32> = Vec::<f32>::try_from(
                logits
                    .f_to_kind(Kind::Float)?
                    .f_to_device(Device::Cpu)?
                    .f_flatten(0, -1)?,
            )?;
            rows = flat.chunks(v).map(|c| c.to_vec()).collect();
            decoded_after_first += active.len();
        }
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        let timing = Timing {
            prompt_tokens: prompt.len(),
            prefill_ms,
            decode_ms,
            decode_tokens_per_s: if decode_ms > 0.0 {
                decoded_after_first as f64 / (decode_ms / 1e3)
            } else {
                0.0
            },
            total_ms: t0.elapsed().as_secs_f64() * 1e3,
        };
        let mut out = Vec::with_capacity(n);
        for ci in 0..n {
            let ids = std::mem::take(&mut gen[ci]);
            let text = match texts[ci].take() {
                Some(t) => t,
                None => self.decode(&ids)?,
            };
            out.push(Candidate {
                text,
                n_tokens: ids.len(),
                token_ids: ids,
                finish_reason: finish[ci].unwrap_or(FinishReason::Length),
                timing,
            });
        }
        Ok(out)
    }
}
