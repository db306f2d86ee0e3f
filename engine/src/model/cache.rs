//! The key/value cache that lets a forward continue after the positions it holds.

use crate::error::Result;
use tch::{Device, Kind, Tensor};

/// Per-layer key/value cache, preallocated to `capacity` positions.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    pub(super) len: i64,
    pub(super) capacity: i64,
}

impl KvCache {
    /// Zeroed keys and values `shape` (`[rows, kv_heads, capacity, head_dim]`) for each layer.
    pub(super) fn zeros(
        layers: usize,
        shape: [i64; 4],
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let mut k = Vec::with_capacity(layers);
        let mut v = Vec::with_capacity(layers);
        for _ in 0..layers {
            k.push(Tensor::f_zeros(shape, (kind, device))?);
            v.push(Tensor::f_zeros(shape, (kind, device))?);
        }
        Ok(KvCache {
            k,
            v,
            len: 0,
            capacity: shape[2],
        })
    }

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

    /// Write layer `layer`'s keys/values `[B, kv_heads, t, head_dim]` at positions
    /// `start..start + t` and return views of all `start + t` positions. The length moves
    /// only once every layer is written (the model sets it).
    pub(super) fn write(
        &mut self,
        layer: usize,
        start: i64,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let t = k.size()[2];
        self.k[layer].f_narrow(2, start, t)?.f_copy_(k)?;
        self.v[layer].f_narrow(2, start, t)?.f_copy_(v)?;
        Ok((
            self.k[layer].f_narrow(2, 0, start + t)?,
            self.v[layer].f_narrow(2, 0, start + t)?,
        ))
    }
}
