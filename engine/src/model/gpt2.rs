//! GPT-2: LayerNorm, learned positions, a GELU (tanh) MLP and a fused q|k|v projection,
//! every linear with a bias; Hugging Face stores its weights as Conv1D (`[in, out]`).

use super::config::Config;
use super::layers::{host, req, Layer, Norm, Target, WeightSource};
use crate::error::Result;
use tch::Tensor;

/// The learned position embeddings `[context, hidden]`.
pub(super) fn positions(src: &dyn WeightSource, cfg: &Config, to: Target) -> Result<Tensor> {
    to.put(req(
        src,
        "position_embd.weight",
        &[cfg.context_length, cfg.hidden_size],
    )?)
}

/// Layer `i`, every weight with its bias.
pub(super) fn load_layer(
    src: &dyn WeightSource,
    cfg: &Config,
    i: usize,
    to: Target,
) -> Result<Layer> {
    let (h, inter) = (cfg.hidden_size, cfg.intermediate_size);
    let p = format!("blk.{i}");
    let w = |name: &str, shape: &[usize]| -> Result<Tensor> {
        to.put_t(req(src, &format!("{p}.{name}"), shape)?)
    };
    let b = |name: &str, len: usize| -> Result<Option<Tensor>> {
        Ok(Some(to.put(req(src, &format!("{p}.{name}"), &[len])?)?))
    };
    Ok(Layer {
        norm1: Norm::load(src, &format!("{p}.attn_norm"), cfg, true, to)?,
        qkv_t: w("attn_qkv.weight", &[3 * h, h])?,
        qkv_b: b("attn_qkv.bias", 3 * h)?,
        o_t: w("attn_output.weight", &[h, h])?,
        o_b: b("attn_output.bias", h)?,
        norm2: Norm::load(src, &format!("{p}.ffn_norm"), cfg, true, to)?,
        up_t: w("ffn_up.weight", &[inter, h])?,
        up_b: b("ffn_up.bias", inter)?,
        down_t: w("ffn_down.weight", &[h, inter])?,
        down_b: b("ffn_down.bias", h)?,
    })
}

pub(super) fn gelu(up: &Tensor) -> Result<Tensor> {
    Ok(up.f_gelu("tanh")?)
}

/// The weights under Hugging Face GPT-2 names; Conv1D keeps `[in, out]`, the layout
/// stored here. The output head is left to the caller.
pub(super) fn hf_tensors(
    embed: &Tensor,
    pos_embed: Option<&Tensor>,
    layers: &[Layer],
    final_norm: &Norm,
) -> Result<Vec<(String, Tensor)>> {
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let norm = |out: &mut Vec<(String, Tensor)>, p: &str, n: &Norm| -> Result<()> {
        out.push((format!("{p}.weight"), host(&n.w)?));
        if let Some(b) = &n.b {
            out.push((format!("{p}.bias"), host(b)?));
        }
        Ok(())
    };
    let linear =
        |out: &mut Vec<(String, Tensor)>, p: &str, w: &Tensor, b: &Option<Tensor>| -> Result<()> {
            out.push((format!("{p}.weight"), host(w)?));
            if let Some(b) = b {
                out.push((format!("{p}.bias"), host(b)?));
            }
            Ok(())
        };
    out.push(("transformer.wte.weight".into(), host(embed)?));
    if let Some(pe) = pos_embed {
        out.push(("transformer.wpe.weight".into(), host(pe)?));
    }
    for (i, l) in layers.iter().enumerate() {
        let p = format!("transformer.h.{i}");
        norm(&mut out, &format!("{p}.ln_1"), &l.norm1)?;
        linear(&mut out, &format!("{p}.attn.c_attn"), &l.qkv_t, &l.qkv_b)?;
        linear(&mut out, &format!("{p}.attn.c_proj"), &l.o_t, &l.o_b)?;
        norm(&mut out, &format!("{p}.ln_2"), &l.norm2)?;
        linear(&mut out, &format!("{p}.mlp.c_fc"), &l.up_t, &l.up_b)?;
        linear(&mut out, &format!("{p}.mlp.c_proj"), &l.down_t, &l.down_b)?;
    }
    norm(&mut out, "transformer.ln_f", final_norm)?;
    Ok(out)
}
