//! A Bradley–Terry reward model (InstructGPT, Ouyang et al. 2022): the base
//! transformer with a scalar `score` head read at each sequence's last real
//! token, trained with −log σ(r_chosen − r_rejected − margin) (+ optional
//! reward centring, as TRL's `RewardTrainer`). All comparisons of one prompt
//! go into the same batch, and each distinct response is forwarded once
//! however many pairs it appears in.

use super::data::{self, PreferenceData, Turns};
use super::{
    autocast, permutation, ranges, run, split_by_prompt, BatchLoss, Control, Event, Metrics, Run,
    TrainConfig,
};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::model::{Model, Pending, Readout, ReadoutHead};
use crate::save::Head;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The learning rate when none is given: a full fine-tune of a small model, so a tenth of
/// TRL's `RewardConfig` default (1e-4), which targets adapters as often as full models.
pub const DEFAULT_LR: f64 = 1e-5;

/// Reward-model settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    /// Adds `coefficient * mean((r_chosen + r_rejected)^2)` to keep rewards centred on 0.
    pub center_rewards_coefficient: Option<f64>,
}

/// One comparison: full token sequences (prompt + response + EOS).
#[derive(Debug, Clone)]
struct Comparison {
    chosen: Vec<u32>,
    rejected: Vec<u32>,
    margin: f32,
}

/// Rewards of right-padded sequences, one forward, read through the reward head at each
/// sequence's last token. With right padding and causal attention no real token attends to
/// a pad, so the positions come from the lengths, never from the pad id (SmolLM2's pad is
/// its EOS). With `recompute` (activation checkpointing), the gradient reaches the weights
/// through the returned [`Pending`].
pub fn sequence_rewards<'m>(
    model: &'m Model,
    seqs: &[&[u32]],
    recompute: bool,
) -> Result<(Tensor, Option<Pending<'m>>)> {
    let n = seqs.len();
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    if t == 0 || seqs.iter().any(|s| s.is_empty()) {
        return Err(EngineError::InvalidRequest(
            "cannot score an empty sequence".into(),
        ));
    }
    let mut ids = vec![0i64; n * t];
    for (r, s) in seqs.iter().enumerate() {
        for (j, &id) in s.iter().enumerate() {
            ids[r * t + j] = id as i64;
        }
    }
    model.check_ids(&ids)?;
    score_head(model)?; // before the forward, not after it
    let dev = model.device;
    let ids = Tensor::from_slice(&ids)
        .f_view([n as i64, t as i64])?
        .f_to_device(dev)?;
    let head: ReadoutHead = Box::new(|model: &Model, hidden: &Tensor, _| {
        let score = score_head(model)?;
        Ok(hidden.f_matmul(&score.f_tr()?)?.f_squeeze_dim(-1)?)
    });
    let readout = Readout {
        positions: seqs
            .iter()
            .enumerate()
            .map(|(r, s)| (r * t + s.len() - 1) as i64)
            .collect(),
        owner: (0..n as i64).collect(),
        rows: n as i64,
        head,
    };
    autocast(dev, || model.readout(&ids, readout, recompute))
}

fn score_head(model: &Model) -> Result<&Tensor> {
    model.score_head().ok_or_else(|| {
        EngineError::InvalidRequest("this model has no reward head (`score.weight`)".into())
    })
}

fn batch_loss<'m>(
    model: &'m Model,
    batch: &[&Comparison],
    cfg: &RewardConfig,
    recompute: bool,
) -> Result<BatchLoss<'m>> {
    let chosen: Vec<&[u32]> = batch.iter().map(|c| c.chosen.as_slice()).collect();
    let rejected: Vec<&[u32]> = batch.iter().map(|c| c.rejected.as_slice()).collect();
    let margins: Vec<f32> = batch.iter().map(|c| c.margin).collect();
    comparison_loss(model, &chosen, &rejected, &margins, cfg, recompute)
}

/// The reward-model loss and figures of comparisons given as full token sequences
/// (prompt + response): each distinct sequence is forwarded once.
pub fn comparison_loss<'m>(
    model: &'m Model,
    chosen: &[&[u32]],
    rejected: &[&[u32]],
    margins: &[f32],
    cfg: &RewardConfig,
    recompute: bool,
) -> Result<BatchLoss<'m>> {
    let mut index: HashMap<&[u32], i64> = HashMap::new();
    let mut unique: Vec<&[u32]> = Vec::new();
    let mut chosen_at = Vec::with_capacity(chosen.len());
    let mut rejected_at = Vec::with_capacity(rejected.len());
    for (c, r) in chosen.iter().zip(rejected) {
        for (seq, into) in [(*c, &mut chosen_at), (*r, &mut rejected_at)] {
            let next = unique.len() as i64;
            let i = *index.entry(seq).or_insert(next);
            if i == next {
                unique.push(seq);
            }
            into.push(i);
        }
    }
    let (rewards, pending) = sequence_rewards(model, &unique, recompute)?;
    let dev = model.device;
    let at = |v: &[i64]| -> Result<Tensor> { Ok(Tensor::from_slice(v).f_to_device(dev)?) };
    let rc = rewards.f_index_select(0, &at(&chosen_at)?)?;
    let rr = rewards.f_index_select(0, &at(&rejected_at)?)?;
    let margins = Tensor::from_slice(margins).f_to_device(dev)?;
    let diff = rc.f_sub(&rr)?;
    let mut loss = diff
        .f_sub(&margins)?
        .f_log_sigmoid()?
        .f_neg()?
        .f_mean(Kind::Float)?;
    if let Some(coef) = cfg.center_rewards_coefficient {
        let centre = rc.f_add(&rr)?.f_square()?.f_mean(Kind::Float)?;
        loss = loss.f_add(&centre.f_mul_scalar(coef)?)?;
    }
    let _g = tch::no_grad_guard();
    let mean = |t: &Tensor| -> Result<f64> { Ok(t.f_mean(Kind::Float)?.f_double_value(&[])?) };
    let mut m = BTreeMap::new();
    m.insert("loss".into(), loss.f_double_value(&[])?);
    m.insert(
        "accuracy".into(),
        mean(&diff.f_gt(0.0)?.f_to_kind(Kind::Float)?)?,
    );
    m.insert("margin".into(), mean(&diff)?);
    m.insert("rewards/chosen".into(), mean(&rc)?);
    m.insert("rewards/rejected".into(), mean(&rr)?);
    Ok(BatchLoss {
        loss,
        figures: m,
        pending,
    })
}

/// Per epoch: prompts shuffled, then whole prompts packed into micro-batches
/// of at least `batch_size` comparisons.
fn packed_batches(groups: &[Vec<usize>], cfg: &TrainConfig) -> Result<Vec<Vec<Vec<usize>>>> {
    (0..cfg.epochs)
        .map(|epoch| {
            let order = permutation(groups.len(), cfg.seed.wrapping_add(epoch as u64))?;
            let mut batches = Vec::new();
            let mut current: Vec<usize> = Vec::new();
            for g in order {
                current.extend(&groups[g]);
                if current.len() >= cfg.batch_size {
                    batches.push(std::mem::take(&mut current));
                }
            }
            if !current.is_empty() {
                batches.push(current);
            }
            Ok(batches)
        })
        .collect()
}

/// Train a reward model on `data` from `engine`'s base model (a fresh
/// `score` head unless it already has one), writing checkpoints, the final
/// model (a Hugging Face sequence-classification directory) and
/// `metrics.json` into `out`.
pub fn train(
    engine: &mut Engine,
    data: &PreferenceData,
    reward: &RewardConfig,
    cfg: &TrainConfig,
    out: &Path,
    base_model: &str,
    on_event: &mut dyn FnMut(Event) -> Control,
) -> Result<Metrics> {
    cfg.validate()?;
    std::fs::create_dir_all(out).map_err(|e| EngineError::io(out, e))?;
    let _ = on_event(Event::Phase("tokenizing"));
    let mut skipped = data.skipped.clone();
    let mut pairs = Vec::new();
    for p in &data.pairs {
        let t = data::tokenize(engine, p)?;
        if t.max_len() > cfg.max_length {
            skipped.push(data::Skipped {
                source: p.source.clone(),
                reason: format!(
                    "{} tokens, longer than the max length {}",
                    t.max_len(),
                    cfg.max_length
                ),
            });
            continue;
        }
        pairs.push(t);
    }
    let split = split_by_prompt(pairs, cfg)?;
    // Train comparisons first, then the eval split; `train_groups` holds each training
    // prompt's comparisons, which share a batch.
    let mut comparisons = Vec::new();
    let mut train_groups = Vec::new();
    for (group, is_train) in split
        .train
        .into_iter()
        .map(|g| (g, true))
        .chain(split.eval.into_iter().map(|g| (g, false)))
    {
        let first = comparisons.len();
        for p in group {
            let full = |c: &[u32]| p.prompt.iter().chain(c).copied().collect::<Vec<u32>>();
            comparisons.push(Comparison {
                chosen: full(&p.chosen),
                rejected: full(&p.rejected),
                margin: p.margin.unwrap_or(0.0),
            });
        }
        if is_train {
            train_groups.push((first..comparisons.len()).collect::<Vec<_>>());
        }
    }
    let train_pairs = train_groups.iter().map(Vec::len).sum();

    if engine.model().score_head().is_none() {
        tch::manual_seed(cfg.seed as i64);
        engine.model_mut().init_score_head()?;
    }
    let loss = super::batch_loss_fn(|model, batch, recompute| {
        let batch: Vec<&Comparison> = batch.iter().map(|&i| &comparisons[i]).collect();
        batch_loss(model, &batch, reward, recompute)
    });
    let spec = Run {
        kind: "reward",
        head: Head::Reward,
        base_model,
        settings: serde_json::to_value(reward)?,
        skipped,
        epochs: packed_batches(&train_groups, cfg)?,
        lengths: comparisons
            .iter()
            .map(|c| c.chosen.len().max(c.rejected.len()))
            .collect(),
        train_pairs,
        eval: ranges(train_pairs, comparisons.len(), cfg.batch_size),
        loss: &loss,
    };
    run(engine, cfg, out, spec, on_event)
}

impl Engine {
    /// The reward of `response` to `prompt` (text, or messages through the
    /// chat template), tokenized as in training. Needs a reward model.
    pub fn reward(&self, prompt: &Turns, response: &Turns) -> Result<f32> {
        let _g = tch::no_grad_guard();
        let pair = data::Preference {
            prompt: prompt.clone(),
            chosen: response.clone(),
            rejected: response.clone(),
            margin: None,
            source: "request".into(),
        };
        let t = data::tokenize(self, &pair)?;
        let full: Vec<u32> = t.prompt.iter().chain(&t.chosen).copied().collect();
        let (r, _) = sequence_rewards(self.model(), &[&full], false)?;
        Ok(r.f_to_device(Device::Cpu)?.f_double_value(&[0])? as f32)
    }
}
