//! The transformer: Llama family (Llama, SmolLM2, Mistral, Qwen2 with q/k/v
//! biases) and GPT-2, with a preallocated KV cache.
//!
//! Both architectures share one forward (this file); what differs — how a layer's weights
//! are loaded and named, positions (RoPE or learned), the MLP's activation — lives in
//! `llama.rs` and `gpt2.rs`. Generation (the decode loop) is not model code; it lives in
//! `generate.rs` at the crate's root.
//!
//! Weights are plain `tch::Tensor`s (see [`Model::parameters_mut`]): a
//! training step can set `requires_grad` on them and reuse [`Model::forward`]
//! outside a `no_grad_guard`.

mod cache;
mod config;
mod gpt2;
mod layers;
mod llama;
mod readout;

pub use cache::KvCache;
pub use config::{Arch, Config};
pub(crate) use layers::WeightSource;
pub use readout::{Pending, Readout, ReadoutHead, HEAD_CHUNK};

use crate::error::{EngineError, Result};
use layers::{cast_opt, host, linear, numel_opt, opt, req, Layer, Norm, Target};
use tch::{Device, Kind, Tensor};

/// The model.
#[derive(Debug)]
pub struct Model {
    pub config: Config,
    pub device: Device,
    pub kind: Kind,
    embed: Tensor,
    /// GPT-2's learned positions `[context, hidden]`.
    pos_embed: Option<Tensor>,
    layers: Vec<Layer>,
    final_norm: Norm,
    /// Untied output head `[vocab, hidden]`; `None` means tied to `embed`.
    lm_head: Option<Tensor>,
    /// Scalar reward head `[1, hidden]` of a sequence-classification checkpoint.
    score_head: Option<Tensor>,
    /// The Llama family's rotary positions.
    rope: Option<llama::Rope>,
}

/// What every layer of one forward shares: the batch and positions it covers, RoPE's
/// window and the attention mask.
struct Span {
    b: i64,
    t: i64,
    /// Positions already in the cache (0 without one).
    start: i64,
    rope: Option<llama::RopeWindow>,
    /// `None` with `is_causal` when a plain causal mask will do.
    mask: Option<Tensor>,
    is_causal: bool,
}

impl Model {
    pub(crate) fn load(
        cfg: Config,
        src: &dyn WeightSource,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        cfg.validate()?;
        let to = Target { device, kind };
        let h = cfg.hidden_size;
        let embed = to.put(req(src, "token_embd.weight", &[cfg.vocab_size, h])?)?;
        let pos_embed = match cfg.arch {
            Arch::Gpt2 => Some(gpt2::positions(src, &cfg, to)?),
            Arch::Llama => None,
        };
        let layers = (0..cfg.n_layers)
            .map(|i| match cfg.arch {
                Arch::Llama => llama::load_layer(src, &cfg, i, to),
                Arch::Gpt2 => gpt2::load_layer(src, &cfg, i, to),
            })
            .collect::<Result<Vec<_>>>()?;
        // GPT-2's norms are LayerNorms, the Llama family's RMSNorms.
        let final_norm = Norm::load(src, "output_norm", &cfg, cfg.arch == Arch::Gpt2, to)?;
        let lm_head = if cfg.tie_embeddings {
            None
        } else {
            match opt(src, "output.weight", &[cfg.vocab_size, h])? {
                Some(t) => Some(to.put(t)?),
                None => None, // GGUF files omit `output.weight` when tied
            }
        };
        let score_head = match opt(src, "score.weight", &[1, h])? {
            Some(t) => Some(to.put(t)?),
            None => None,
        };
        let rope = match cfg.arch {
            Arch::Llama => Some(llama::Rope::new(&cfg, to)?),
            Arch::Gpt2 => None,
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
            rope,
        })
    }

    /// Every weight tensor (for `set_requires_grad`, optimisers, saving).
    pub fn parameters_mut(&mut self) -> Vec<&mut Tensor> {
        let mut v: Vec<&mut Tensor> = vec![&mut self.embed];
        if let Some(p) = self.pos_embed.as_mut() {
            v.push(p);
        }
        for l in self.layers.iter_mut() {
            l.parameters_mut(&mut v);
        }
        self.final_norm.parameters_mut(&mut v);
        v.extend(self.lm_head.as_mut());
        v.extend(self.score_head.as_mut());
        v
    }

    /// A copy whose every tensor is `t.to_kind(kind)`, still attached to the autograd graph:
    /// a backward pass through the copy (bf16 compute) accumulates f32 gradients on this
    /// model's weights (the master copy).
    pub fn cast(&self, kind: Kind) -> Result<Model> {
        Ok(Model {
            config: self.config.clone(),
            device: self.device,
            kind,
            embed: self.embed.f_to_kind(kind)?,
            pos_embed: cast_opt(&self.pos_embed, kind)?,
            layers: self
                .layers
                .iter()
                .map(|l| l.cast(kind))
                .collect::<Result<Vec<_>>>()?,
            final_norm: self.final_norm.cast(kind)?,
            lm_head: cast_opt(&self.lm_head, kind)?,
            score_head: cast_opt(&self.score_head, kind)?,
            rope: self.rope.as_ref().map(|r| r.cast(kind)).transpose()?,
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
        let to = Target {
            device: self.device,
            kind: self.kind,
        };
        self.score_head = Some(to.put(w)?);
        Ok(())
    }

    /// The weights under Hugging Face names and layouts (`[out, in]` linear
    /// weights; GPT-2's Conv1D `[in, out]`), as f32 CPU tensors, for saving.
    /// `lm_head` is left out when tied, or when `with_lm_head` is false (reward models).
    pub fn hf_tensors(&self, with_lm_head: bool) -> Result<Vec<(String, Tensor)>> {
        let mut out = match self.config.arch {
            Arch::Llama => {
                llama::hf_tensors(&self.config, &self.embed, &self.layers, &self.final_norm)?
            }
            Arch::Gpt2 => gpt2::hf_tensors(
                &self.embed,
                self.pos_embed.as_ref(),
                &self.layers,
                &self.final_norm,
            )?,
        };
        if with_lm_head {
            if let Some(h) = &self.lm_head {
                out.push(("lm_head.weight".into(), host(h)?));
            }
        }
        if let Some(s) = &self.score_head {
            out.push(("score.weight".into(), host(s)?));
        }
        Ok(out)
    }

    /// Number of parameters (tied embeddings counted once).
    pub fn parameter_count(&self) -> usize {
        let layers: usize = self.layers.iter().map(Layer::numel).sum();
        self.embed.numel()
            + numel_opt(&self.pos_embed)
            + layers
            + self.final_norm.numel()
            + numel_opt(&self.lm_head)
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
        KvCache::zeros(c.n_layers, shape, self.kind, self.device)
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

    /// Final-norm hidden states `[B, T, H]` (`[B, H]` with `last_only`);
    /// arguments as for [`Model::forward`].
    pub fn hidden(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        key_mask: Option<&Tensor>,
        last_only: bool,
    ) -> Result<Tensor> {
        let span = self.span(ids, cache.as_deref(), key_mask)?;
        let mut x = self.embed_input(ids, &span)?;
        for (li, l) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| (c, li));
            x = self.layer(l, &x, &span, layer_cache)?;
        }
        if let Some(cache) = cache {
            cache.len = span.start + span.t;
        }
        let x = if last_only {
            x.f_select(1, span.t - 1)?
        } else {
            x
        };
        self.final_norm.forward(&x)
    }

    /// The token embeddings of `ids` (plus GPT-2's learned positions): the first layer's input.
    fn embed_input(&self, ids: &Tensor, span: &Span) -> Result<Tensor> {
        let x = Tensor::f_embedding(&self.embed, ids, -1, false, false)?;
        Ok(match &self.pos_embed {
            Some(pe) => x.f_add(&pe.f_narrow(0, span.start, span.t)?.f_unsqueeze(0)?)?,
            None => x,
        })
    }

    /// One transformer layer over `x`: the attention block, then the MLP, each residual.
    fn layer(
        &self,
        l: &Layer,
        x: &Tensor,
        span: &Span,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let x = x.f_add(&self.attention(l, x, span, cache)?)?;
        Ok(x.f_add(&self.mlp(l, &x)?)?)
    }

    /// Check `ids` `[B, T]` against the cache (or, without one, the context length) and
    /// work out what every layer of this forward shares.
    fn span(
        &self,
        ids: &Tensor,
        cache: Option<&KvCache>,
        key_mask: Option<&Tensor>,
    ) -> Result<Span> {
        let c = &self.config;
        let size = ids.size();
        if size.len() != 2 || size[1] == 0 {
            return Err(EngineError::InvalidRequest(format!(
                "ids must be [batch, len>0], got {size:?}"
            )));
        }
        let (b, t) = (size[0], size[1]);
        let start = cache.map_or(0, |c| c.len);
        let total = start + t;
        if let Some(cache) = cache {
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
        let rope = self.rope.as_ref().map(|r| r.window(start, t)).transpose()?;
        let mask = attention_mask(key_mask, b, t, start, self.device)?;
        Ok(Span {
            b,
            t,
            start,
            rope,
            is_causal: mask.is_none() && t > 1,
            mask,
        })
    }

    /// Layer `l`'s self-attention block (pre-norm, output projection included). With a
    /// cache, this forward's keys/values are written into it and attention covers every
    /// cached position.
    fn attention(
        &self,
        l: &Layer,
        x: &Tensor,
        span: &Span,
        cache: Option<(&mut KvCache, usize)>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, t) = (span.b, span.t);
        let (nh, nkv, hd) = (c.n_heads as i64, c.n_kv_heads as i64, c.head_dim as i64);
        let h = l.norm1.forward(x)?;
        let qkv = linear(&h, &l.qkv_t, l.qkv_b.as_ref())?;
        let parts = qkv.f_split_with_sizes([nh * hd, nkv * hd, nkv * hd], -1)?;
        let q = parts[0].f_view([b, t, nh, hd])?.f_transpose(1, 2)?;
        let k = parts[1].f_view([b, t, nkv, hd])?.f_transpose(1, 2)?;
        let v = parts[2].f_view([b, t, nkv, hd])?.f_transpose(1, 2)?;
        let (q, k) = match &span.rope {
            Some(rope) => (rope.apply(&q)?, rope.apply(&k)?),
            None => (q, k),
        };
        let (k_all, v_all) = match cache {
            Some((cache, li)) => cache.write(li, span.start, &k, &v)?,
            None => (k, v),
        };
        let att = Tensor::f_scaled_dot_product_attention(
            &q,
            &k_all,
            &v_all,
            span.mask.as_ref(),
            0.0,
            span.is_causal,
            None,
            nkv != nh,
        )?;
        let att = att.f_transpose(1, 2)?.f_reshape([b, t, nh * hd])?;
        linear(&att, &l.o_t, l.o_b.as_ref())
    }

    /// Layer `l`'s feed-forward block (pre-norm).
    fn mlp(&self, l: &Layer, x: &Tensor) -> Result<Tensor> {
        let h = l.norm2.forward(x)?;
        let up = linear(&h, &l.up_t, l.up_b.as_ref())?;
        let act = match self.config.arch {
            Arch::Gpt2 => gpt2::gelu(&up)?,
            Arch::Llama => llama::swiglu(&up)?,
        };
        linear(&act, &l.down_t, l.down_b.as_ref())
    }
}

/// The attention mask `[B or 1, 1, t, start + t]` of a forward over positions
/// `start..start + t`: causal, and with `key_mask` (true = real token) hiding pads. `None`
/// (a plain causal mask, left to the kernel) when there are no pads to hide and either
/// nothing is cached or only one position is new.
fn attention_mask(
    key_mask: Option<&Tensor>,
    b: i64,
    t: i64,
    start: i64,
    device: Device,
) -> Result<Option<Tensor>> {
    let total = start + t;
    Ok(match key_mask {
        Some(km) => {
            let causal = Tensor::f_ones([t, total], (Kind::Bool, device))?.f_tril(start)?;
            let km = km.f_to_kind(Kind::Bool)?.f_view([b, 1, 1, total])?;
            Some(causal.f_view([1, 1, t, total])?.f_logical_and(&km)?)
        }
        None if t > 1 && start > 0 => Some(
            Tensor::f_ones([t, total], (Kind::Bool, device))?
                .f_tril(start)?
                .f_view([1, 1, t, total])?,
        ),
        None => None,
    })
}
