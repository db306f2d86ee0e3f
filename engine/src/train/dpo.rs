//! Direct Preference Optimization (Rafailov et al. 2023) against a frozen
//! reference: the same initial weights, whose log-probs are computed once
//! before training unless a separate reference model is given.
//!
//! The losses are those of TRL's `DPOTrainer` (1.x): `sigmoid` (with
//! `label_smoothing` ε it is the conservative cDPO form, which equals TRL's
//! at ε = 0), `hinge`, `ipo` (per-token normalised, as TRL) and `robust`.

use super::data::{self, PreferenceData, TokenizedPair};
use super::{
    autocast, micro_batches, ranges, run, shuffled_batches, split_by_prompt, BatchLoss, Control,
    Event, Metrics, Run, TrainConfig,
};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::model::{Model, Pending, Readout, ReadoutHead};
use crate::save::Head;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use tch::{Device, Kind, Reduction, Tensor};

/// The DPO loss variants (the domain's type, shared with the API).
pub use domain::DpoLossKind as DpoLoss;

/// The learning rate when none is given (TRL's `DPOConfig` default).
pub const DEFAULT_LR: f64 = 1e-6;

/// DPO settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpoConfig {
    pub beta: f64,
    pub loss: DpoLoss,
    pub label_smoothing: f64,
}

impl Default for DpoConfig {
    fn default() -> Self {
        DpoConfig {
            beta: 0.1,
            loss: DpoLoss::Sigmoid,
            label_smoothing: 0.0,
        }
    }
}

impl DpoConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::InvalidRequest(m.to_string()));
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return bad("beta must be a positive number");
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return bad("label smoothing must be in [0, 0.5)");
        }
        if self.label_smoothing > 0.0 && matches!(self.loss, DpoLoss::Hinge | DpoLoss::Ipo) {
            return bad("label smoothing applies to the sigmoid and robust losses only");
        }
        Ok(())
    }
}

/// Per-pair sequence log-probs of one batch (`[B]` each) and completion lengths.
pub struct BatchLogps {
    pub chosen: Tensor,
    pub rejected: Tensor,
    pub chosen_tokens: Tensor,
    pub rejected_tokens: Tensor,
}

/// The loss (scalar tensor) and TRL's metrics for one batch.
pub fn dpo_loss(
    policy: &BatchLogps,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    cfg: &DpoConfig,
) -> Result<(Tensor, BTreeMap<String, f64>)> {
    let beta = cfg.beta;
    let eps = cfg.label_smoothing;
    let chosen_ratio = policy.chosen.f_sub(ref_chosen)?;
    let rejected_ratio = policy.rejected.f_sub(ref_rejected)?;
    let delta = chosen_ratio.f_sub(&rejected_ratio)?;
    let scaled = delta.f_mul_scalar(beta)?;
    let per_pair = match cfg.loss {
        DpoLoss::Sigmoid => {
            let win = scaled.f_log_sigmoid()?.f_mul_scalar(-(1.0 - eps))?;
            let flip = scaled.f_neg()?.f_log_sigmoid()?.f_mul_scalar(-eps)?;
            win.f_add(&flip)?
        }
        DpoLoss::Hinge => scaled.f_neg()?.f_add_scalar(1.0)?.f_relu()?,
        DpoLoss::Ipo => {
            let c = chosen_ratio.f_div(&policy.chosen_tokens.f_clamp_min(1.0)?)?;
            let r = rejected_ratio.f_div(&policy.rejected_tokens.f_clamp_min(1.0)?)?;
            c.f_sub(&r)?.f_sub_scalar(1.0 / (2.0 * beta))?.f_square()?
        }
        DpoLoss::Robust => {
            let clean = scaled.f_log_sigmoid()?.f_mul_scalar(-(1.0 - eps))?;
            let flipped = scaled.f_neg()?.f_log_sigmoid()?.f_mul_scalar(-eps)?;
            clean.f_sub(&flipped)?.f_div_scalar(1.0 - 2.0 * eps)?
        }
    };
    let loss = per_pair.f_mean(Kind::Float)?;
    let _g = tch::no_grad_guard();
    let chosen_rewards = chosen_ratio.f_detach()?.f_mul_scalar(beta)?;
    let rejected_rewards = rejected_ratio.f_detach()?.f_mul_scalar(beta)?;
    let mean = |t: &Tensor| -> Result<f64> { Ok(t.f_mean(Kind::Float)?.f_double_value(&[])?) };
    let mut m = BTreeMap::new();
    m.insert("loss".into(), loss.f_double_value(&[])?);
    m.insert("rewards/chosen".into(), mean(&chosen_rewards)?);
    m.insert("rewards/rejected".into(), mean(&rejected_rewards)?);
    m.insert(
        "rewards/accuracies".into(),
        mean(
            &chosen_rewards
                .f_gt_tensor(&rejected_rewards)?
                .f_to_kind(Kind::Float)?,
        )?,
    );
    m.insert(
        "rewards/margins".into(),
        mean(&chosen_rewards.f_sub(&rejected_rewards)?)?,
    );
    m.insert("logps/chosen".into(), mean(&policy.chosen.f_detach()?)?);
    m.insert("logps/rejected".into(), mean(&policy.rejected.f_detach()?)?);
    Ok((loss, m))
}

/// Truncate to `max_length` keeping the start (TRL's default); `None` when
/// the prompt alone fills it.
fn fit(pair: TokenizedPair, max_length: usize) -> Option<TokenizedPair> {
    if pair.prompt.len() >= max_length {
        return None;
    }
    let room = max_length - pair.prompt.len();
    let cut = |mut c: Vec<u32>| {
        c.truncate(room);
        c
    };
    Some(TokenizedPair {
        chosen: cut(pair.chosen),
        rejected: cut(pair.rejected),
        ..pair
    })
}

/// Sequence log-probs of each pair's chosen and rejected completions (prompt
/// tokens masked): one forward over `[chosen rows; rejected rows]`, the LM
/// head applied at completion positions only. With `recompute` (activation
/// checkpointing), the gradient reaches the weights through the returned [`Pending`].
pub fn batch_logps<'m>(
    model: &'m Model,
    pairs: &[&TokenizedPair],
    recompute: bool,
) -> Result<(BatchLogps, Option<Pending<'m>>)> {
    let rows: Vec<(&[u32], &[u32])> = pairs
        .iter()
        .map(|p| (p.prompt.as_slice(), p.chosen.as_slice()))
        .chain(
            pairs
                .iter()
                .map(|p| (p.prompt.as_slice(), p.rejected.as_slice())),
        )
        .collect();
    let n = rows.len();
    let t = rows
        .iter()
        .map(|(p, c)| p.len() + c.len())
        .max()
        .unwrap_or(0);
    if t < 2 {
        return Err(EngineError::InvalidRequest(
            "a training sequence needs at least 2 tokens".into(),
        ));
    }
    let mut ids = vec![0i64; n * t];
    let mut positions = Vec::new(); // flat index of the hidden state predicting each target
    let mut targets = Vec::new();
    let mut owner = Vec::new();
    let mut lengths = vec![0f32; n];
    for (r, (prompt, completion)) in rows.iter().enumerate() {
        for (j, &id) in prompt.iter().chain(completion.iter()).enumerate() {
            ids[r * t + j] = id as i64;
        }
        for (k, &id) in completion.iter().enumerate() {
            let pos = prompt.len() + k;
            if pos == 0 {
                continue; // the first token of a sequence has no context
            }
            positions.push((r * t + pos - 1) as i64);
            targets.push(id as i64);
            owner.push(r as i64);
            lengths[r] += 1.0;
        }
    }
    model.check_ids(&ids)?;
    let dev = model.device;
    let ids = Tensor::from_slice(&ids)
        .f_view([n as i64, t as i64])?
        .f_to_device(dev)?;
    let targets = Tensor::from_slice(&targets).f_to_device(dev)?;
    // Each position's log-prob of its target token.
    let head: ReadoutHead = Box::new(move |model: &Model, hidden: &Tensor, at: Range<usize>| {
        let logits = model.lm_logits(hidden)?.f_to_kind(Kind::Float)?;
        let wanted = targets.f_narrow(0, at.start as i64, at.len() as i64)?;
        let nll =
            logits.f_cross_entropy_loss::<Tensor>(&wanted, None, Reduction::None, -100, 0.0)?;
        Ok(nll.f_neg()?)
    });
    let readout = Readout {
        positions,
        owner,
        rows: n as i64,
        head,
    };
    // Right padding: with causal attention no real token sees a pad, so no mask is needed.
    let (sums, pending) = model.readout(&ids, readout, recompute)?;
    let lengths = Tensor::from_slice(&lengths).f_to_device(dev)?;
    let b = pairs.len() as i64;
    let logps = BatchLogps {
        chosen: sums.f_narrow(0, 0, b)?,
        rejected: sums.f_narrow(0, b, b)?,
        chosen_tokens: lengths.f_narrow(0, 0, b)?,
        rejected_tokens: lengths.f_narrow(0, b, b)?,
    };
    Ok((logps, pending))
}

/// Reference log-probs of every pair, without gradients, in batches of `cfg.batch_size`
/// cut into micro-batches under `cfg.max_batch_tokens`, as training cuts them.
fn reference_logps(
    model: &Model,
    pairs: &[&TokenizedPair],
    cfg: &TrainConfig,
) -> Result<Vec<(f32, f32)>> {
    let _g = tch::no_grad_guard();
    let lengths: Vec<usize> = pairs.iter().map(|p| longest_row(p)).collect();
    let mut out = vec![(0.0, 0.0); pairs.len()];
    for batch in ranges(0, pairs.len(), cfg.batch_size) {
        for micro in micro_batches(&batch, &lengths, cfg.max_batch_tokens) {
            let chunk: Vec<&TokenizedPair> = micro.iter().map(|&i| pairs[i]).collect();
            let (lp, _) = autocast(model.device, || batch_logps(model, &chunk, false))?;
            let c = Vec::<f32>::try_from(lp.chosen.f_to_device(Device::Cpu)?)?;
            let r = Vec::<f32>::try_from(lp.rejected.f_to_device(Device::Cpu)?)?;
            for ((&i, c), r) in micro.iter().zip(c).zip(r) {
                out[i] = (c, r);
            }
        }
    }
    Ok(out)
}

/// A pair's longer row (prompt + completion) in tokens, which micro-batching goes by.
fn longest_row(p: &TokenizedPair) -> usize {
    p.prompt.len() + p.chosen.len().max(p.rejected.len())
}

/// A pair with its reference log-probs.
struct Example {
    pair: TokenizedPair,
    reference: (f32, f32),
}

fn batch_loss<'m>(
    model: &'m Model,
    batch: &[&Example],
    dpo: &DpoConfig,
    recompute: bool,
) -> Result<BatchLoss<'m>> {
    let pairs: Vec<&TokenizedPair> = batch.iter().map(|e| &e.pair).collect();
    let dev = model.device;
    let (policy, pending) = autocast(dev, || batch_logps(model, &pairs, recompute))?;
    let rc: Vec<f32> = batch.iter().map(|e| e.reference.0).collect();
    let rr: Vec<f32> = batch.iter().map(|e| e.reference.1).collect();
    let (loss, figures) = dpo_loss(
        &policy,
        &Tensor::from_slice(&rc).f_to_device(dev)?,
        &Tensor::from_slice(&rr).f_to_device(dev)?,
        dpo,
    )?;
    Ok(BatchLoss {
        loss,
        figures,
        pending,
    })
}

/// Train `engine`'s model with DPO on `data`, writing checkpoints, the final
/// model (a Hugging Face directory) and `metrics.json` into `out`.
/// `reference`: a separate frozen reference model; `None` precomputes the
/// reference log-probs with `engine` before its weights change.
#[allow(clippy::too_many_arguments)]
pub fn train(
    engine: &mut Engine,
    reference: Option<&Engine>,
    data: &PreferenceData,
    dpo: &DpoConfig,
    cfg: &TrainConfig,
    out: &Path,
    base_model: &str,
    on_event: &mut dyn FnMut(Event) -> Control,
) -> Result<Metrics> {
    cfg.validate()?;
    dpo.validate()?;
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    let _ = on_event(Event::Phase("tokenizing"));
    let mut skipped = data.skipped.clone();
    let mut pairs = Vec::new();
    for p in &data.pairs {
        match fit(data::tokenize(engine, p)?, cfg.max_length) {
            Some(t) => pairs.push(t),
            None => skipped.push(data::Skipped {
                source: p.source.clone(),
                reason: format!(
                    "the prompt alone has {} tokens or more (max length)",
                    cfg.max_length
                ),
            }),
        }
    }
    let split = split_by_prompt(pairs, cfg)?;
    let pairs: Vec<TokenizedPair> = split.train.into_iter().flatten().collect();
    let train_pairs = pairs.len();
    let pairs: Vec<TokenizedPair> = pairs
        .into_iter()
        .chain(split.eval.into_iter().flatten())
        .collect();

    let _ = on_event(Event::Phase("reference log-probs"));
    let ref_model = reference.map_or(engine.model(), |r| r.model());
    // The reference computes as the policy does (bf16 or f32), so step 0 compares like with like.
    let ref_copy = {
        let _g = tch::no_grad_guard();
        super::compute_copy(ref_model, cfg.bf16)?
    };
    let ref_model = ref_copy.as_ref().unwrap_or(ref_model);
    let refs = reference_logps(ref_model, &pairs.iter().collect::<Vec<_>>(), cfg)?;
    // Train examples first, then the eval split.
    let examples: Vec<Example> = pairs
        .into_iter()
        .zip(refs)
        .map(|(pair, reference)| Example { pair, reference })
        .collect();
    let loss = super::batch_loss_fn(|model, batch, recompute| {
        let batch: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
        batch_loss(model, &batch, dpo, recompute)
    });
    let spec = Run {
        kind: "dpo",
        head: Head::CausalLm,
        base_model,
        settings: serde_json::to_value(dpo)?,
        skipped,
        epochs: shuffled_batches(train_pairs, cfg.batch_size, cfg)?,
        lengths: examples.iter().map(|e| longest_row(&e.pair)).collect(),
        train_pairs,
        eval: ranges(train_pairs, examples.len(), cfg.batch_size),
        loss: &loss,
    };
    run(engine, cfg, out, spec, on_event)
}
