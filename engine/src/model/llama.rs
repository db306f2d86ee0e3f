//! The Llama family (Llama, SmolLM2, Mistral; Qwen2 with q/k/v biases): RMSNorm, rotary
//! positions (RoPE), a SwiGLU MLP and grouped-query attention.

use super::config::Config;
use super::layers::{host, req, Layer, Norm, Target, WeightSource};
use crate::error::Result;
use tch::{Device, Kind, Tensor};

/// Layer `i`: q/k/v fused into one projection, gate|up into one.
pub(super) fn load_layer(
    src: &dyn WeightSource,
    cfg: &Config,
    i: usize,
    to: Target,
) -> Result<Layer> {
    let h = cfg.hidden_size;
    let (qd, kvd) = (cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim);
    let inter = cfg.intermediate_size;
    let p = format!("blk.{i}");
    let q = req(src, &format!("{p}.attn_q.weight"), &[qd, h])?;
    let k = req(src, &format!("{p}.attn_k.weight"), &[kvd, h])?;
    let v = req(src, &format!("{p}.attn_v.weight"), &[kvd, h])?;
    let qkv = Tensor::f_cat(&[q, k, v], 0)?;
    let qkv_b = if cfg.qkv_bias {
        let qb = req(src, &format!("{p}.attn_q.bias"), &[qd])?;
        let kb = req(src, &format!("{p}.attn_k.bias"), &[kvd])?;
        let vb = req(src, &format!("{p}.attn_v.bias"), &[kvd])?;
        Some(to.put(Tensor::f_cat(&[qb, kb, vb], 0)?)?)
    } else {
        None
    };
    let gate = req(src, &format!("{p}.ffn_gate.weight"), &[inter, h])?;
    let up = req(src, &format!("{p}.ffn_up.weight"), &[inter, h])?;
    Ok(Layer {
        norm1: Norm::load(src, &format!("{p}.attn_norm"), cfg, false, to)?,
        qkv_t: to.put_t(qkv)?,
        qkv_b,
        o_t: to.put_t(req(src, &format!("{p}.attn_output.weight"), &[h, qd])?)?,
        o_b: None,
        norm2: Norm::load(src, &format!("{p}.ffn_norm"), cfg, false, to)?,
        up_t: to.put_t(Tensor::f_cat(&[gate, up], 0)?)?,
        up_b: None,
        down_t: to.put_t(req(src, &format!("{p}.ffn_down.weight"), &[h, inter])?)?,
        down_b: None,
    })
}

/// SwiGLU over the fused gate|up projection.
pub(super) fn swiglu(gate_up: &Tensor) -> Result<Tensor> {
    let gu = gate_up.f_chunk(2, -1)?;
    Ok(gu[0].f_silu()?.f_mul(&gu[1])?)
}

/// RoPE's cos/sin tables `[positions, head_dim]` (HF rotate-half layout).
#[derive(Debug)]
pub(super) struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// Tables for the whole context, computed in f32, then placed like the weights.
    pub fn new(cfg: &Config, to: Target) -> Result<Rope> {
        let (cos, sin) = rope_tables(cfg.head_dim, cfg.rope_theta, cfg.context_length)?;
        Ok(Rope {
            cos: to.put(cos)?,
            sin: to.put(sin)?,
        })
    }

    pub fn cast(&self, kind: Kind) -> Result<Rope> {
        Ok(Rope {
            cos: self.cos.f_to_kind(kind)?,
            sin: self.sin.f_to_kind(kind)?,
        })
    }

    /// The rows for positions `start..start + t`, shaped to broadcast over
    /// `[B, heads, t, head_dim]`.
    pub fn window(&self, start: i64, t: i64) -> Result<RopeWindow> {
        let hd = self.cos.size()[1];
        Ok(RopeWindow {
            cos: self.cos.f_narrow(0, start, t)?.f_view([1, 1, t, hd])?,
            sin: self.sin.f_narrow(0, start, t)?.f_view([1, 1, t, hd])?,
        })
    }
}

/// RoPE for the positions of one forward.
pub(super) struct RopeWindow {
    cos: Tensor,
    sin: Tensor,
}

impl RopeWindow {
    /// Rotate queries or keys `[B, heads, t, head_dim]`.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let half = x.size()[3] / 2;
        let x1 = x.f_narrow(3, 0, half)?;
        let x2 = x.f_narrow(3, half, half)?;
        let rot = Tensor::f_cat(&[&x2.f_neg()?, &x1], 3)?;
        Ok(x.f_mul(&self.cos)?.f_add(&rot.f_mul(&self.sin)?)?)
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

/// The weights under Hugging Face Llama/Qwen2 names and `[out, in]` layouts, the output
/// head left to the caller.
pub(super) fn hf_tensors(
    cfg: &Config,
    embed: &Tensor,
    layers: &[Layer],
    final_norm: &Norm,
) -> Result<Vec<(String, Tensor)>> {
    // Stored pre-transposed `[in, out]`; HF Linear wants `[out, in]`.
    let linear = |t: &Tensor| -> Result<Tensor> { host(&t.f_tr()?) };
    let (nh, nkv, hd) = (
        cfg.n_heads as i64,
        cfg.n_kv_heads as i64,
        cfg.head_dim as i64,
    );
    let mut out: Vec<(String, Tensor)> = Vec::new();
    out.push(("model.embed_tokens.weight".into(), host(embed)?));
    for (i, l) in layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        let qkv = linear(&l.qkv_t)?;
        let parts = qkv.f_split_with_sizes([nh * hd, nkv * hd, nkv * hd], 0)?;
        for (name, t) in ["q_proj", "k_proj", "v_proj"].iter().zip(&parts) {
            out.push((format!("{p}.self_attn.{name}.weight"), t.f_contiguous()?));
        }
        if let Some(b) = &l.qkv_b {
            let b = host(b)?;
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
        out.push((format!("{p}.input_layernorm.weight"), host(&l.norm1.w)?));
        out.push((
            format!("{p}.post_attention_layernorm.weight"),
            host(&l.norm2.w)?,
        ));
    }
    out.push(("model.norm.weight".into(), host(&final_norm.w)?));
    Ok(out)
}
