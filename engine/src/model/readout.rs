//! Training forwards: figures read out of the final hidden states at chosen positions and
//! summed per row (a completion's log-prob, a sequence's reward), optionally with
//! activation checkpointing.
//!
//! Back-propagating through a whole forward keeps every layer's intermediate tensors until
//! backward: on a 135M model about 60 KiB per token per layer, so 3.5 GB for two rows of
//! 1,024 tokens. With `recompute`, the forward runs without a graph and keeps only each
//! layer's input (one `[B, T, H]` tensor); [`Pending::backward`] then recomputes one layer
//! at a time with its graph, from the last layer to the first, and back-propagates through
//! it alone. The output head goes the same way, a chunk of positions at a time, so the
//! `[positions, vocab]` logits are never all alive at once. This costs one more forward
//! and gives the same gradients to float rounding (each layer's recomputation is the same
//! arithmetic).

use std::ops::Range;

use super::Model;
use crate::error::Result;
use tch::{Kind, Tensor};

/// Positions of the head read at once: bounds the live `[rows, vocab]` logits in backward
/// (256 × 49,152 f32 logits are 48 MiB).
pub const HEAD_CHUNK: usize = 256;

/// Per-position figures `[P]` of final hidden states `rows` `[P, H]`, which are the
/// readout's positions `range`.
pub type ReadoutHead<'h> = Box<dyn Fn(&Model, &Tensor, Range<usize>) -> Result<Tensor> + 'h>;

/// What a training forward reads: the head's figures at `positions` (flat indices into the
/// `[B × T]` hidden states), added up into `rows` per-row sums, position `i` into row
/// `owner[i]`.
pub struct Readout<'h> {
    pub positions: Vec<i64>,
    pub owner: Vec<i64>,
    pub rows: i64,
    pub head: ReadoutHead<'h>,
}

/// The backward half of a checkpointed forward: call [`Pending::backward`] after the
/// loss's backward, which has left the gradient of the sums.
pub struct Pending<'m> {
    model: &'m Model,
    ids: Tensor,
    /// Each layer's input, then the last layer's output.
    inputs: Vec<Tensor>,
    /// The sums handed out, a leaf that collects their gradient.
    sums: Tensor,
    readout: Readout<'m>,
}

impl Model {
    /// The per-row sums `[rows]` of `readout` over a forward of right-padded `ids` `[B, T]`
    /// from position 0. Without `recompute` they carry the whole graph; with it they are a
    /// leaf, and the gradient reaches the weights only through the returned [`Pending`].
    pub fn readout<'m>(
        &'m self,
        ids: &Tensor,
        readout: Readout<'m>,
        recompute: bool,
    ) -> Result<(Tensor, Option<Pending<'m>>)> {
        if !recompute {
            let hidden = self.hidden(ids, None, None, false)?;
            let sums = self.read(&hidden, &readout)?;
            return Ok((sums, None));
        }
        let span = self.span(ids, None, None)?;
        let (inputs, sums) = {
            let _g = tch::no_grad_guard();
            let mut x = self.embed_input(ids, &span)?;
            let mut inputs = Vec::with_capacity(self.layers.len() + 1);
            for l in &self.layers {
                let next = self.layer(l, &x, &span, None)?;
                inputs.push(x);
                x = next;
            }
            let hidden = self.final_norm.forward(&x)?;
            inputs.push(x);
            (inputs, self.read(&hidden, &readout)?)
        };
        let sums = sums.f_detach()?.set_requires_grad(true);
        let pending = Pending {
            model: self,
            ids: ids.shallow_clone(),
            inputs,
            sums: sums.shallow_clone(),
            readout,
        };
        Ok((sums, Some(pending)))
    }

    /// The readout's sums over final hidden states `[B, T, H]`.
    fn read(&self, hidden: &Tensor, readout: &Readout) -> Result<Tensor> {
        let mut sums = Tensor::f_zeros([readout.rows], (Kind::Float, self.device))?;
        self.each_chunk(&self.select(hidden, readout)?, readout, |values, owners| {
            sums = sums.f_index_add(0, owners, values)?;
            Ok(())
        })?;
        Ok(sums)
    }

    /// Back-propagates `weights` (the gradient of the sums) through the readout of `hidden`
    /// and on through `hidden`'s graph. Each chunk goes back as soon as it is computed, into
    /// a leaf, and the leaf's gradient through `hidden` once: a node of the graph can be
    /// passed by one backward only.
    fn read_backward(&self, hidden: &Tensor, readout: &Readout, weights: &Tensor) -> Result<()> {
        let selected = self.select(hidden, readout)?;
        let leaf = selected.f_detach()?.set_requires_grad(true);
        self.each_chunk(&leaf, readout, |values, owners| {
            carry(values, &weights.f_index_select(0, owners)?)
        })?;
        carry(&selected, &leaf.grad())
    }

    /// The hidden states `[P, H]` at the readout's positions.
    fn select(&self, hidden: &Tensor, readout: &Readout) -> Result<Tensor> {
        let width = hidden.size().last().copied().unwrap_or(0);
        let positions = Tensor::from_slice(&readout.positions).f_to_device(self.device)?;
        Ok(hidden
            .f_reshape([-1, width])?
            .f_index_select(0, &positions)?)
    }

    /// Runs the head over `selected`, a chunk of positions at a time, handing each chunk's
    /// values and owners to `f`.
    fn each_chunk(
        &self,
        selected: &Tensor,
        readout: &Readout,
        mut f: impl FnMut(&Tensor, &Tensor) -> Result<()>,
    ) -> Result<()> {
        let owner = Tensor::from_slice(&readout.owner).f_to_device(self.device)?;
        let n = readout.positions.len();
        for start in (0..n).step_by(HEAD_CHUNK) {
            let len = (start + HEAD_CHUNK).min(n) - start;
            let rows = selected.f_narrow(0, start as i64, len as i64)?;
            let values = (readout.head)(self, &rows, start..start + len)?.f_to_kind(Kind::Float)?;
            f(&values, &owner.f_narrow(0, start as i64, len as i64)?)?;
        }
        Ok(())
    }
}

impl Pending<'_> {
    /// Carries the gradient the loss left on the sums back through the head, each layer
    /// (recomputed, last first) and the embeddings, into the weights' gradients.
    pub fn backward(self) -> Result<()> {
        let weights = self.sums.grad();
        if !weights.defined() {
            return Ok(()); // the loss did not depend on these sums
        }
        let weights = weights.f_detach()?;
        let model = self.model;
        let span = model.span(&self.ids, None, None)?;
        let mut inputs = self.inputs;
        let Some(last) = inputs.pop() else {
            return Ok(());
        };
        // The head: final norm and readout, from the last layer's output.
        let x = last.f_detach()?.set_requires_grad(true);
        let hidden = model.final_norm.forward(&x)?;
        model.read_backward(&hidden, &self.readout, &weights)?;
        let mut grad = x.grad();
        // The layers, last first, each recomputed from its input.
        for (l, input) in model.layers.iter().zip(inputs).rev() {
            let x = input.f_detach()?.set_requires_grad(true);
            let y = model.layer(l, &x, &span, None)?;
            carry(&y, &grad)?;
            grad = x.grad();
        }
        let embedded = model.embed_input(&self.ids, &span)?;
        carry(&embedded, &grad)
    }
}

/// Back-propagates `grad` (the gradient of the loss with respect to `y`) through `y`'s
/// graph: the gradient of `sum(y · grad)` with respect to `y` is `grad`.
fn carry(y: &Tensor, grad: &Tensor) -> Result<()> {
    if !grad.defined() {
        return Ok(());
    }
    Ok(y.f_mul(&grad.f_detach()?)?
        .f_sum(Kind::Float)?
        .f_backward()?)
}
