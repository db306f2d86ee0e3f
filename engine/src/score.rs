//! Scoring whole sequences without a cache: logits of one sequence, per-token log-probs of
//! a padded batch in one forward.

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Per-sequence log-probs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceScore {
    /// `log p(ids[t] | ids[..t])` for t = 1..len.
    pub token_logprobs: Vec<f32>,
    pub sum_logprob: f64,
    pub mean_logprob: f64,
}

impl Engine {
    /// Logits `[len, vocab]` (f32, CPU) for one sequence, no cache.
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        let _g = tch::no_grad_guard();
        if ids.is_empty() {
            return Err(EngineError::InvalidRequest("empty sequence".into()));
        }
        let (x, _) = self.ids_tensor(&[ids], 0)?;
        let l = self.model().forward(&x, None, None, false)?;
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
        let pad = self.pad_token().map_or(0, |p| p.id);
        let rows: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
        let (ids, mask) = self.ids_tensor(&rows, pad)?;
        let logits = self.model().forward(&ids, None, Some(&mask), false)?;
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
}
