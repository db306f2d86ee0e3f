//! Pieces both architectures are built from: the weight source they load from, norms,
//! and the transformer layer's weights.

use super::config::Config;
use crate::error::{EngineError, Result};
use tch::{Device, Kind, Tensor};

/// A source of f32 CPU tensors in PyTorch layout (`[out, in]` for linear
/// weights) under canonical (GGUF-style) names, Q/K already in HF (rotate-half) order.
pub(crate) trait WeightSource {
    fn tensor(&self, name: &str) -> Result<Option<Tensor>>;
}

/// A tensor the model cannot do without, checked against `shape`.
pub(super) fn req(src: &dyn WeightSource, name: &str, shape: &[usize]) -> Result<Tensor> {
    opt(src, name, shape)?.ok_or_else(|| EngineError::MissingTensor(name.to_string()))
}

/// A tensor the file may lack, checked against `shape` when present.
pub(super) fn opt(src: &dyn WeightSource, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
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

/// Where loaded weights go: the model's device and compute dtype.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub device: Device,
    pub kind: Kind,
}

impl Target {
    /// `t` on the device, in the compute dtype, contiguous.
    pub fn put(self, t: Tensor) -> Result<Tensor> {
        Ok(t.f_to_device(self.device)?
            .f_to_kind(self.kind)?
            .f_contiguous()?)
    }

    /// A linear weight `[out, in]` stored pre-transposed (`[in, out]`), so a layer is `x · w`.
    pub fn put_t(self, t: Tensor) -> Result<Tensor> {
        self.put(t.f_transpose(0, 1)?)
    }
}

/// A weight as saving wants it: detached, f32, on the CPU, contiguous.
pub(super) fn host(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_detach()?
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?)
}

/// `x · w (+ b)` with a pre-transposed weight.
pub(super) fn linear(x: &Tensor, w_t: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = x.f_matmul(w_t)?;
    Ok(match b {
        Some(b) => y.f_add(b)?,
        None => y,
    })
}

/// RMSNorm (weight only) or LayerNorm (weight and bias).
#[derive(Debug)]
pub(super) struct Norm {
    pub w: Tensor,
    pub b: Option<Tensor>,
    pub eps: f64,
}

impl Norm {
    /// `{prefix}.weight`, and `{prefix}.bias` for a LayerNorm.
    pub fn load(
        src: &dyn WeightSource,
        prefix: &str,
        cfg: &Config,
        layer_norm: bool,
        to: Target,
    ) -> Result<Norm> {
        let h = cfg.hidden_size;
        Ok(Norm {
            w: to.put(req(src, &format!("{prefix}.weight"), &[h])?)?,
            b: if layer_norm {
                Some(to.put(req(src, &format!("{prefix}.bias"), &[h])?)?)
            } else {
                None
            },
            eps: cfg.norm_eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.w.size()[0];
        Ok(match &self.b {
            None => x.f_rms_norm([n], Some(&self.w), self.eps)?,
            Some(b) => x.f_layer_norm([n], Some(&self.w), Some(b), self.eps, false)?,
        })
    }

    pub fn cast(&self, kind: Kind) -> Result<Norm> {
        Ok(Norm {
            w: self.w.f_to_kind(kind)?,
            b: cast_opt(&self.b, kind)?,
            eps: self.eps,
        })
    }

    pub fn parameters_mut<'a>(&'a mut self, v: &mut Vec<&'a mut Tensor>) {
        v.push(&mut self.w);
        v.extend(self.b.as_mut());
    }

    pub fn numel(&self) -> usize {
        self.w.numel() + numel_opt(&self.b)
    }
}

/// One transformer layer's weights; the architecture decides what they mean (see
/// `llama.rs`, `gpt2.rs`).
#[derive(Debug)]
pub(super) struct Layer {
    pub norm1: Norm,
    /// `[hidden, q + 2*kv]`, pre-transposed.
    pub qkv_t: Tensor,
    pub qkv_b: Option<Tensor>,
    pub o_t: Tensor,
    pub o_b: Option<Tensor>,
    pub norm2: Norm,
    /// Llama: fused gate|up `[hidden, 2*inter]`; GPT-2: c_fc `[hidden, inter]`.
    pub up_t: Tensor,
    pub up_b: Option<Tensor>,
    pub down_t: Tensor,
    pub down_b: Option<Tensor>,
}

impl Layer {
    /// A copy in `kind`, still attached to the autograd graph (see `Model::cast`).
    pub fn cast(&self, kind: Kind) -> Result<Layer> {
        let c = |t: &Tensor| -> Result<Tensor> { Ok(t.f_to_kind(kind)?) };
        Ok(Layer {
            norm1: self.norm1.cast(kind)?,
            qkv_t: c(&self.qkv_t)?,
            qkv_b: cast_opt(&self.qkv_b, kind)?,
            o_t: c(&self.o_t)?,
            o_b: cast_opt(&self.o_b, kind)?,
            norm2: self.norm2.cast(kind)?,
            up_t: c(&self.up_t)?,
            up_b: cast_opt(&self.up_b, kind)?,
            down_t: c(&self.down_t)?,
            down_b: cast_opt(&self.down_b, kind)?,
        })
    }

    /// Appends this layer's weights to `v`, always in this order: resuming a checkpoint
    /// copies weights between two models by position.
    pub fn parameters_mut<'a>(&'a mut self, v: &mut Vec<&'a mut Tensor>) {
        self.norm1.parameters_mut(v);
        v.push(&mut self.qkv_t);
        v.extend(self.qkv_b.as_mut());
        v.push(&mut self.o_t);
        v.extend(self.o_b.as_mut());
        self.norm2.parameters_mut(v);
        v.push(&mut self.up_t);
        v.extend(self.up_b.as_mut());
        v.push(&mut self.down_t);
        v.extend(self.down_b.as_mut());
    }

    pub fn numel(&self) -> usize {
        self.norm1.numel()
            + self.norm2.numel()
            + self.qkv_t.numel()
            + numel_opt(&self.qkv_b)
            + self.o_t.numel()
            + numel_opt(&self.o_b)
            + self.up_t.numel()
            + numel_opt(&self.up_b)
            + self.down_t.numel()
            + numel_opt(&self.down_b)
    }
}

pub(super) fn cast_opt(t: &Option<Tensor>, kind: Kind) -> Result<Option<Tensor>> {
    Ok(t.as_ref().map(|t| t.f_to_kind(kind)).transpose()?)
}

pub(super) fn numel_opt(t: &Option<Tensor>) -> usize {
    t.as_ref().map_or(0, |t| t.numel())
}
