//! The transformer: Llama family (Llama, SmolLM2, Mistral, Qwen2 with q/k/v
//! biases) and GPT-2, with a preallocated KV cache.
//!
//! Weights are plain `tch::Tensor`s (see [`Model::parameters_mut`]): a
//! training step can set `requires_grad` on them and reuse [`Model::forward`]
//! outside a `no_grad_guard`.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama, SmolLM2, Mistral (RMSNorm, RoPE, SwiGLU, GQA); Qwen2 = Llama with q/k/v biases.
    Llama,
    /// GPT-2 (LayerNorm, learned positions, GELU MLP, fused qkv with biases).
    Gpt2,
}

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub norm_eps: f64,
    pub context_length: usize,
    pub tie_embeddings: bool,
    pub qkv_bias: bool,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::Unsupported(m));
        if self.n_layers == 0 || self.n_heads == 0 || self.hidden_size == 0 || self.vocab_size == 0
        {
            return bad("zero-sized model dimension".into());
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} heads not divisible by {} kv heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!("head dim {} must be even", self.head_dim));
        }
        if self.context_length == 0 {
            return bad("context length 0".into());
        }
        Ok(())
    }
}

/// A source of f32 CPU tensors in PyTorch layout (`[out, in]` for linear
/// weights) under canonical (GGUF-style) names, Q/K already in HF (rotate-half) order.
pub(crate) trait WeightSource {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>>;
}

fn req(src: &dyn WeightSource, name: &str, shape: &[usize]) -> Result<Tensor> {
    opt(src, name, shape)?.ok_or_else(|| EngineError::MissingTensor(name.to_string()))
}

fn opt(src: &dyn WeightSource, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
    let Some(t) = src.tensor(name)? else {
        return Ok(None);
    };
    let got: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    if got != shape {
        return Err(EngineError::ShapeMismatch {
            name: name.to_string(),
            got,
            expected: shape.to_vec(),
        });
    }
    Ok(Some(t))
}

#[derive(Debug)]
pub(crate) struct Norm {
    w: Tensor,
    b: Option<Tensor>,
    eps: f64,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.w.size()[0];
        Ok(match &self.b {
            None => x.f_rms_norm([n], Some(&self.w), self.eps)?,
            Some(b) => x.f_layer_norm([n], Some(&self.w), Some(b), self.eps, false)?,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Layer {
    norm1: Norm,
    /// `[hidden, q + 2*kv]`, pre-transposed.
    qkv_t: Tensor,
    qkv_b: Option<Tensor>,
    o_t: Tensor,
    o_b: Option<Tensor>,
    norm2: Norm,
    /// Llama: fused gate|up `[hidden, 2*inter]`; GPT-2: c_fc `[hidden, inter]`.
    up_t: Tensor,
    up_b: Option<Tensor>,
    down_t: Tensor,
    down_b: Option<Tensor>,
}

/// Per-layer key/value cache, preallocated to `capacity` positions.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn batch(&self) -> i64 {
        self.k.first().map(|t| t.size()[0]).unwrap_or(0)
    }
    /// Reorder/select/replicate batch rows (`rows` indexes the current batch).
    pub fn select_rows(&mut self, rows: &[i64]) -> Result<()> {
        let Some(first) = self.k.first() else {
            return Ok(());
        };
        let idx = Tensor::from_slice(rows).f_to_device(first.device())?;
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.f_index_select(0, &idx)?;
        }
        Ok(())
    }
}

/// The model.
#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub device: Device,
    pub kind: Kind,
    embed: Tensor,
    pos_embed: Option<Tensor>,
    layers: Vec<Layer>,
    final_norm: Norm,
    /// Untied output head `[vocab, hidden]`; `None` means tied to `embed`.
    lm_head: Option<Tensor>,
    /// Scalar reward head `[1, hidden]` of a sequence-classification checkpoint.
    score_head: Option<Tensor>,
    rope_cos: Option<Tensor>,
    rope_sin: Option<Tensor>,
}

fn t_(t: Tensor, dev: Device, kind: Kind) -> Result<Tensor> {
    Ok(t.f_to_device(dev)?.f_to_kind(kind)?.f_contiguous()?)
}

impl Model {
    pub(crate) fn load(
        cfg: Config,
        src: &dyn WeightSource,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        cfg.validate()?;
        let h = cfg.hidden_size;
        let (hd, nh, nkv) = (cfg.head_dim, cfg.n_heads, cfg.n_kv_heads);
        let (qd, kvd) = (nh * hd, nkv * hd);
        let inter = cfg.intermediate_size;
        let gpt2 = cfg.arch == Arch::Gpt2;
        let mv = |t: Tensor| t_(t, device, kind);
        let tr = |t: Tensor| -> Result<Tensor> { t_(t.f_transpose(0, 1)?, device, kind) };
        let norm = |prefix: &str| -> Result<Norm> {
            Ok(Norm {
                w: mv(req(src, &format!("{prefix}.weight"), &[h])?)?,
                b: if gpt2 {
                    Some(mv(req(src, &format!("{prefix}.bias"), &[h])?)?)
                } else {
                    None
                },
                eps: cfg.norm_eps,
            })
        };
        let embed = mv(req(src, "token_embd.weight", &[cfg.vocab_size, h])?)?;
        let pos_embed = if gpt2 {
            Some(mv(req(
                src,
                "position_embd.weight",
                &[cfg.context_length, h],
            )?)?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let p = format!("blk.{i}");
            let layer = if gpt2 {
                Layer {
                    norm1: norm(&format!("{p}.attn_norm"))?,
                    qkv_t: tr(req(src, &format!("{p}.attn_qkv.weight"), &[3 * h, h])?)?,
                    qkv_b: Some(mv(req(src, &format!("{p}.attn_qkv.bias"), &[3 * h])?)?),
                    o_t: tr(req(src, &format!("{p}.attn_output.weight"), &[h, h])?)?,
                    o_b: Some(mv(req(src, &format!("{p}.attn_output.bias"), &[h])?)?),
                    norm2: norm(&format!("{p}.ffn_norm"))?,
                    up_t: tr(req(src, &format!("{p}.ffn_up.weight"), &[inter, h])?)?,
                    up_b: Some(mv(req(src, &format!("{p}.ffn_up.bias"), &[inter])?)?),
                    down_t: tr(req(src, &format!("{p}.ffn_down.weight"), &[h, inter])?)?,
                    down_b: Some(mv(req(src, &format!("{p}.ffn_down.bias"), &[h])?)?),
                }
            } else {
                let q = req(src, &format!("{p}.attn_q.weight"), &[qd, h])?;
                let k = req(src, &format!("{p}.attn_k.weight"), &[kvd, h])?;
                let v = req(src, &format!("{p}.attn_v.weight"), &[kvd, h])?;
                let qkv = Tensor::f_cat(&[q, k, v], 0)?;
                let qkv_b = if cfg.qkv_bias {
                    let qb = req(src, &format!("{p}.attn_q.bias"), &[qd])?;
                    let kb = req(src, &format!("{p}.attn_k.bias"), &[kvd])?;
                    let vb = req(src, &format!("{p}.attn_v.bias"), &[kvd])?;
                    Some(mv(Tensor::f_cat(&[qb, kb, vb], 0)?)?)
                } else {
                    None
                };
                let gate = req(src, &format!("{p}.ffn_gate.weight"), &[inter, h])?;
                let up = req(src, &format!("{p}.ffn_up.weight"), &[inter, h])?;
                Layer {
                    norm1: norm(&format!("{p}.attn_norm"))?,
                    qkv_t: tr(qkv)?,
                    qkv_b,
                    o_t: tr(req(src, &format!("{p}.attn_output.weight"), &[h, qd])?)?,
                    o_b: None,
                    norm2: norm(&format!("{p}.ffn_norm"))?,
                    up_t: tr(Tensor::f_cat(&[gate, up], 0)?)?,
                    up_b: None,
                    down_t: tr(req(src, &format!("{p}.ffn_down.weight"), &[h, inter])?)?,
                    down_b: None,
                }
            };
            layers.push(layer);
        }
        let final_norm = norm("output_norm")?;
        let lm_head = if cfg.tie_embeddings {
            None
        } else {
            match opt(src, "output.weight", &[cfg.vocab_size, h])? {
                Some(t) => Some(mv(t)?),
                None => None, // GGUF files omit `output.weight` when tied
            }
        };
        let score_head = match opt(src, "score.weight", &[1, h])? {
            Some(t) => Some(mv(t)?),
            None => None,
        };
        let (rope_cos, rope_sin) = if gpt2 {
            (None, None)
        } else {
            let (c, s) = rope_tables(hd, cfg.rope_theta, cfg.context_length)?;
            (Some(t_(c, device, kind)?), Some(t_(s, device, kind)?))
        };
        Ok(Model {
            config: cfg,
            device,
            kind,
            embed,
            pos_embed,
            layers,
            final_norm,
            lm_head,
            score_head,
            rope_cos,
            rope_sin,
        })
    }

    /// Every weight tensor (for `set_requires_grad`, optimisers, saving).
    pub fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v: Vec<&mut Tensor> = vec![&mut self.embed];
        if let Some(p) = self.pos_embed.as_mut() {
            v.push(p);
        }
        for l in self.layers.iter_mut() {
            v.push(&mut l.norm1.w);
            v.extend(l.norm1.b.as_mut());
            v.push(&mut l.qkv_t);
            v.extend(l.qkv_b.as_mut());
            v.push(&mut l.o_t);
            v.extend(l.o_b.as_mut());
            v.push(&mut l.norm2.w);
            v.extend(l.norm2.b.as_mut());
            v.push(&mut l.up_t);
            v.extend(l.up_b.as_mut());
            v.push(&mut l.down_t);
            v.extend(l.down_b.as_mut());
        }
        v.push(&mut self.final_norm.w);
        v.extend(self.final_norm.b.as_mut());
        v.extend(self.lm_head.as_mut());
        v.extend(self.score_head.as_mut());
        v
    }

    /// A copy whose every tensor is `t.to_kind(kind)`, still attached to the autograd graph:
    /// a backward pass through the copy (bf16 compute) accumulates f32 gradients on this
    /// model's weights (the master copy).
    pub fn cast(&self, kind: Kind) -> Result<Model> {
        let c = |t: &Tensor| -> Result<Tensor> { Ok(t.f_to_kind(kind)?) };
        let o = |t: &Option<Tensor>| -> Result<Option<Tensor>> { t.as_ref().map(c).transpose() };
        let norm = |n: &Norm| -> Result<Norm> {
            Ok(Norm {
                w: c(&n.w)?,
                b: o(&n.b)?,
                eps: n.eps,
            })
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    norm1: norm(&l.norm1)?,
                    qkv_t: c(&l.qkv_t)?,
                    qkv_b: o(&l.qkv_b)?,
                    o_t: c(&l.o_t)?,
                    o_b: o(&l.o_b)?,
                    norm2: norm(&l.norm2)?,
                    up_t: c(&l.up_t)?,
                    up_b: o(&l.up_b)?,
                    down_t: c(&l.down_t)?,
                    down_b: o(&l.down_b)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            config: self.config.clone(),
            device: self.device,
            kind,
            embed: c(&self.embed)?,
            pos_embed: o(&self.pos_embed)?,
            layers,
            final_norm: norm(&self.final_norm)?,
            lm_head: o(&self.lm_head)?,
            score_head: o(&self.score_head)?,
            rope_cos: o(&self.rope_cos)?,
            rope_sin: o(&self.rope_sin)?,
        })
    }

    /// The reward head, when this is a reward model.
    pub fn score_head(&self) -> Option<&Tensor> {
        self.score_head.as_ref()
    }

    /// Give the model a fresh reward head `[1, hidden]`, drawn as
    /// `transformers` initialises it (normal, std 0.02), from the global torch seed.
    pub fn init_score_head(&mut self) -> Result<()> {
        let h = self.config.hidden_size as i64;
        let w = Tensor::f_randn([1, h], (Kind::Float, Device::Cpu))?.f_mul_scalar(0.02)?;
        self.score_head = Some(t_(w, self.device, self.kind)?);
        Ok(())
    }

    /// The weights under Hugging Face names and layouts (`[out, in]` linear
    /// weights; GPT-2's Conv1D `[in, out]`), as f32 CPU tensors, for saving.
    /// `lm_head` is left out when tied, or when `with_lm_head` is false (reward models).
    pub fn hf_tensors(&self, with_lm_head: bool) -> Result<Vec<(String, Tensor)>> {
        let c = &self.config;
        let cpu = |t: &Tensor| -> Result<Tensor> {
            Ok(t.f_detach()?
                .f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Float)?
                .f_contiguous()?)
        };
        // Stored pre-transposed `[in, out]`; HF Linear wants `[out, in]`.
        let linear = |t: &Tensor| -> Result<Tensor> { cpu(&t.f_tr()?) };
        let mut out: Vec<(String, Tensor)> = Vec::new();
        let (nh, nkv, hd) = (c.n_heads as i64, c.n_kv_heads as i64, c.head_dim as i64);
        match c.arch {
            Arch::Llama => {
                out.push(("model.embed_tokens.weight".into(), cpu(&self.embed)?));
                for (i, l) in self.layers.iter().enumerate() {
                    let p = format!("model.layers.{i}");
                    let qkv = linear(&l.qkv_t)?;
                    let parts = qkv.f_split_with_sizes([nh * hd, nkv * hd, nkv * hd], 0)?;
                    for (name, t) in ["q_proj", "k_proj", "v_proj"].iter().zip(&parts) {
                        out.push((format!("{p}.self_attn.{name}.weight"), t.f_contiguous()?));
                    }
                    if let Some(b) = &l.qkv_b {
                        let b = cpu(b)?;
                        let parts = b.f_split_with_sizes([nh * hd, nkv * hd, nkv * hd], 0)?;
                        for (name, t) in ["q_proj", "k_proj", "v_proj"].iter().zip(&parts) {
                            out.push((format!("{p}.self_attn.{name}.bias"), t.f_contiguous()?));
                        }
                    }
                    out.push((format!("{p}.self_attn.o_proj.weight"), linear(&l.o_t)?));
                    let gate_up = linear(&l.up_t)?.f_chunk(2, 0)?;
                    out.push((
                        format!("{p}.mlp.gate_proj.weight"),
                        gate_up[0].f_contiguous()?,
                    ));
                    out.push((
                        format!("{p}.mlp.up_proj.weight"),
                        gate_up[1].f_contiguous()?,
                    ));
                    out.push((format!("{p}.mlp.down_proj.weight"), linear(&l.down_t)?));
                    out.push((format!("{p}.input_layernorm.weight"), cpu(&l.norm1.w)?));
                    out.push((
                        format!("{p}.post_attention_layernorm.weight"),
                        cpu(&l.norm2.w)?,
                    ));
                }
                out.push(("model.norm.weight".into(), cpu(&self.final_norm.w)?));
            }
            Arch::Gpt2 => {
                let norm = |out: &mut Vec<(String, Tensor)>, p: &str, n: &Norm| -> Result<()> {
                    out.push((format!("{p}.weight"), cpu(&n.w)?));
                    if let Some(b) = &n.b {
                        out.push((format!("{p}.bias"), cpu(b)?));
                    }
                    Ok(())
                };
                let bias = |out: &mut Vec<(String, Tensor)>, p: &str, b: &Option<Tensor>| {
                    if let Some(b) = b {
                        out.push((format!("{p}.bias"), cpu(b)?));
                    }
                    Ok::<(), EngineError>(())
                };
                out.push(("transformer.wte.weight".into(), cpu(&self.embed)?));
                if let Some(pe) = &self.pos_embed {
                    out.push(("transformer.wpe.weight".into(), cpu(pe)?));
                }
                for (i, l) in self.layers.iter().enumerate() {
                    let p = format!("transformer.h.{i}");
                    norm(&mut out, &format!("{p}.ln_1"), &l.norm1)?;
                    // Conv1D keeps `[in, out]`, the layout stored here.
                    out.push((format!("{p}.attn.c_attn.weight"), cpu(&l.qkv_t)?));
                    bias(&mut out, &format!("{p}.attn.c_attn"), &l.qkv_b)?;
                    out.push((format!("{p}.attn.c_proj.weight"), cpu(&l.o_t)?));
                    bias(&mut out, &format!("{p}.attn.c_proj"), &l.o_b)?;
                    norm(&mut out, &format!("{p}.ln_2"), &l.norm2)?;
                    out.push((format!("{p}.mlp.c_fc.weight"), cpu(&l.up_t)?));
                    bias(&mut out, &format!("{p}.mlp.c_fc"), &l.up_b)?;
                    out.push((format!("{p}.mlp.c_proj.weight"), cpu(&l.down_t)?));
                    bias(&mut out, &format!("{p}.mlp.c_proj"), &l.down_b)?;
                }
                norm(&mut out, "transformer.ln_f", &self.final_norm)?;
            }
        }
        if with_lm_head {
            if let Some(h) = &self.lm_head {
                out.push(("lm_head.weight".into(), cpu(h)?));
            }
        }
        if let Some(s) = &self.score_head {
            out.push(("score.weight".into(), cpu(s)?));
        }
        Ok(out)
    }

    /// Number of parameters (tied embeddings counted once).
    pub fn parameter_count(&self) -> usize {
        let mut n = self.embed.numel() + self.pos_embed.as_ref().map_or(0, |t| t.numel());
        let norm = |x: &Norm| x.w.numel() + x.b.as_ref().map_or(0, |t| t.numel());
        let ob = |x: &Option<Tensor>| x.as_ref().map_or(0, |t| t.numel());
        for l in &self.layers {
            n += norm(&l.norm1) + norm(&l.norm2);
            n += l.qkv_t.numel() + ob(&l.qkv_b) + l.o_t.numel() + ob(&l.o_b);
            n += l.up_t.numel() + ob(&l.up_b) + l.down_t.numel() + ob(&l.down_b);
        }
        n + norm(&self.final_norm) + ob(&self.lm_head)
    }

    /// An empty cache for `batch` rows and up to `capacity` positions.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        let c = &self.config;
        if capacity > c.context_length {
            return Err(EngineError::InvalidRequest(format!(
                "{capacity} positions exceed the model's context length {}",
                c.context_length
            )));
        }
        let shape = [
            batch as i64,
            c.n_kv_heads as i64,
            capacity as i64,
            c.head_dim as i64,
        ];
        let mut k = Vec::with_capacity(c.n_layers);
        let mut v = Vec::with_capacity(c.n_layers);
        for _ in 0..c.n_layers {
            k.push(Tensor::f_zeros(shape, (self.kind, self.device))?);
            v.push(Tensor::f_zeros(shape, (self.kind, self.device))?);
        }
        Ok(KvCache {
            k,
            v,
            len: 0,
            capacity: capacity as i64,
        })
    }

    /// Check token ids before they reach an embedding lookup.
    pub fn check_ids(&self, ids: &[i64]) -> Result<()> {
        let v = self.config.vocab_size as i64;
        if let Some(bad) = ids.iter().find(|&&i| i < 0 || i >= v) {
            return Err(EngineError::InvalidRequest(format!(
                "token id {bad} out of range (vocab {v})"
            )));
        }
        Ok(())
    }

    /// Forward `ids` `[B, T]` (int64 on the model's device).
    ///
    /// * `cache`: positions continue after the cached ones and new keys/values
    ///   are appended; `None` runs a standalone forward from position 0.
    /// * `key_mask`: optional `[B, T]` bool mask (true = real token), for
    ///   padded batches without a cache.
    /// * `last_only`: return logits for the last position only (`[B, V]`),
    ///   else `[B, T, V]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        cache: Option<&mut KvCache>,
        key_mask: Option<&Tensor>,
        last_only: bool,
    ) -> Result<Tensor> {
        let x = self.hidden(ids, cache, key_mask, last_only)?;
        self.lm_logits(&x)
    }

    /// The LM head over hidden states `[..., H]` -> logits `[..., V]`.
    ///
    /// Computed as `head · hiddenᵀ` (`[V, H] × [H, rows]`): with a few rows (decoding K
    /// candidates) MKL streams the large `[V, H]` head once this way, while `hidden · headᵀ`
    /// costs 2.6× as much at 2 rows and 3.6× at 4 on the 2-core benchmark machine (and no less
    /// at any row count measured, up to 128).
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let head = self.lm_head.as_ref().unwrap_or(&self.embed);
        let size = hidden.size();
        let Some((&width, lead)) = size.split_last() else {
            return Err(EngineError::InvalidRequest(
                "hidden states have no dimensions".into(),
            ));
        };
        let rows = hidden.f_reshape([-1, width])?;
        let logits = head.f_matmul(&rows.f_tr()?)?.f_tr()?;
        let mut shape = lead.to_vec();
        shape.push(head.size()[0]);
        Ok(logits.f_reshape(shape.as_slice())?)
    }

    /// Rewards `[B]` of a right-padded batch `ids` `[B, T]`, read at position
    /// `last[b]` (each row's last real token) through the reward head. With
    /// right padding and causal attention no real token attends to a pad, so
    /// the positions come from the lengths (the attention mask), never from
    /// the pad id (SmolLM2's pad is its EOS).
    pub fn rewards(&self, ids: &Tensor, last: &Tensor) -> Result<Tensor> {
        let head = self.score_head.as_ref().ok_or_else(|| {
            EngineError::InvalidRequest("this model has no reward head (`score.weight`)".into())
        })?;
        let x = self.hidden(ids, None, None, false)?;
        let h = self.config.hidden_size as i64;
        let idx = last.f_view([-1, 1, 1])?.f_expand([-1, 1, h], false)?;
        let at_last = x.f_gather(1, &idx, false)?.f_squeeze_dim(1)?;
        Ok(at_last.f_matmul(&head.f_tr()?)?.f_squeeze_dim(-1)?)
    }

    /// Final-norm hidden states `[B, T, H]` (`[B, H]` with `last_only`);
    /// arguments as for [`Model::forward`].
    pub fn hidden(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        key_mask: Option<&Tensor>,
        last_only: bool,
    ) -> Result<Tensor> {
        let c = &self.config;
        let size = ids.size();
        if size.len() != 2 || size[1] == 0 {
            return Err(EngineError::InvalidRequest(format!(
                "ids must be [batch, len>0], got {size:?}"
            )));
        }
        let (b, t) = (size[0], size[1]);
        let start = cache.as_ref().map_or(0, |c| c.len);
        let total = start + t;
        if let Some(cache) = cache.as_ref() {
            if total > cache.capacity {
                return Err(EngineError::InvalidRequest(format!(
                    "KV cache capacity {} exceeded",
                    cache.capacity
                )));
            }
            if cache.batch() != b {
                return Err(EngineError::InvalidRequest(format!(
                    "cache has {} rows, input has {b}",
                    cache.batch()
                )));
            }
        } else if total > c.context_length as i64 {
            return Err(EngineError::InvalidRequest(format!(
                "{total} tokens exceed the context length {}",
                c.context_length
            )));
        }
        let (nh, nkv, hd) = (c.n_heads as i64, c.n_kv_heads as i64, c.head_dim as i64);

        let mut x = Tensor::f_embedding(&self.embed, ids, -1, false, false)?;
        if let Some(pe) = &self.pos_embed {
            x = x.f_add(&pe.f_narrow(0, start, t)?.f_unsqueeze(0)?)?;
        }
        let rope = match (&self.rope_cos, &self.rope_sin) {
            (Some(cos), Some(sin)) => Some((
                cos.f_narrow(0, start, t)?.f_view([1, 1, t, hd])?,
                sin.f_narrow(0, start, t)?.f_view([1, 1, t, hd])?,
            )),
            _ => None,
        };
        // Attention mask: None + is_causal when possible.
        let attn_mask: Option<Tensor> = match key_mask {
            Some(km) => {
                let causal =
                    Tensor::f_ones([t, total], (Kind::Bool, self.device))?.f_tril(start)?;
                let km = km.f_to_kind(Kind::Bool)?.f_view([b, 1, 1, total])?;
                Some(causal.f_view([1, 1, t, total])?.f_logical_and(&km)?)
            }
            None if t > 1 && start > 0 => Some(
                Tensor::f_ones([t, total], (Kind::Bool, self.device))?
                    .f_tril(start)?
                    .f_view([1, 1, t, total])?,
            ),
            None => None,
        };
        let is_causal = attn_mask.is_none() && t > 1;

        for (li, l) in self.layers.iter().enumerate() {
            let h = l.norm1.forward(&x)?;
            let mut qkv = h.f_matmul(&l.qkv_t)?;
            if let Some(bias) = &l.qkv_b {
                qkv = qkv.f_add(bias)?;
            }
            let parts = qkv.f_split_with_sizes([nh * hd, nkv * hd, nkv * hd], -1)?;
            let q = parts[0].f_view([b, t, nh, hd])?.f_transpose(1, 2)?;
            let k = parts[1].f_view([b, t, nkv, hd])?.f_transpose(1, 2)?;
            let v = parts[2].f_view([b, t, nkv, hd])?.f_transpose(1, 2)?;
            let (q, k) = match &rope {
                Some((cos, sin)) => (apply_rope(&q, cos, sin)?, apply_rope(&k, cos, sin)?),
                None => (q, k),
            };
            let (k_all, v_all) = match cache.as_deref_mut() {
                Some(cache) => {
                    cache.k[li].f_narrow(2, start, t)?.f_copy_(&k)?;
                    cache.v[li].f_narrow(2, start, t)?.f_copy_(&v)?;
                    (
                        cache.k[li].f_narrow(2, 0, total)?,
                        cache.v[li].f_narrow(2, 0, total)?,
                    )
                }
                None => (k, v),
            };
            let att = Tensor::f_scaled_dot_product_attention(
                &q,
                &k_all,
                &v_all,
                attn_mask.as_ref(),
                0.0,
                is_causal,
                None,
                nkv != nh,
            )?;
            let att = att.f_transpose(1, 2)?.f_reshape([b, t, nh * hd])?;
            let mut o = att.f_matmul(&l.o_t)?;
            if let Some(bias) = &l.o_b {
                o = o.f_add(bias)?;
            }
            x = x.f_add(&o)?;

            let h = l.norm2.forward(&x)?;
            let mut up = h.f_matmul(&l.up_t)?;
            if let Some(bias) = &l.up_b {
                up = up.f_add(bias)?;
            }
            let act = match c.arch {
                Arch::Gpt2 => up.f_gelu("tanh")?,
                Arch::Llama => {
                    let gu = up.f_chunk(2, -1)?;
                    gu[0].f_silu()?.f_mul(&gu[1])?
                }
            };
            let mut down = act.f_matmul(&l.down_t)?;
            if let Some(bias) = &l.down_b {
                down = down.f_add(bias)?;
            }
            x = x.f_add(&down)?;
        }
        if let Some(cache) = cache {
            cache.len = total;
        }
        let x = if last_only { x.f_select(1, t - 1)? } else { x };
        self.final_norm.forward(&x)
    }
}

/// cos/sin tables `[positions, head_dim]` (HF rotate-half layout), in f32.
fn rope_tables(head_dim: usize, theta: f64, positions: usize) -> Result<(Tensor, Tensor)> {
    let d = head_dim as i64;
    let exps = Tensor::f_arange_start_step(0, d, 2, (Kind::Int64, Device::Cpu))?
        .f_to_kind(Kind::Float)?
        .f_div_scalar(d as f64)?;
    let base = Tensor::from(theta as f32);
    let inv_freq = base.f_pow(&exps)?.f_reciprocal()?;
    let pos =
        Tensor::f_arange(positions as i64, (Kind::Int64, Device::Cpu))?.f_to_kind(Kind::Float)?;
    let freqs = pos.f_unsqueeze(1)?.f_mul(&inv_freq.f_unsqueeze(0)?)?;
    let emb = Tensor::f_cat(&[&freqs, &freqs], 1)?;
    Ok((emb.f_cos()?, emb.f_sin()?))
}

fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.size()[3] / 2;
    let x1 = x.f_narrow(3, 0, half)?;
    let x2 = x.f_narrow(3, half, half)?;
    let rot = Tensor::f_cat(&[&x2.f_neg()?, &x1], 3)?;
    Ok(x.f_mul(cos)?.f_add(&rot.f_mul(sin)?)?)
}
