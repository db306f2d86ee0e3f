//! Learning from preferences: a Bradley–Terry reward model and DPO, on the
//! engine's own transformer, with libtorch autograd and AdamW.
//!
//! Both trainers share this module's loop pieces: the train/eval split by
//! prompt, the learning-rate schedule (linear warm-up, then linear decay to
//! zero, as `transformers`' default), gradient accumulation and clipping,
//! checkpoints, progress events and `metrics.json`.

pub mod data;
pub mod dpo;
pub mod memory;
pub mod reward;

use crate::engine::{DType, DeviceChoice, Engine, LoadOptions};
use crate::error::{EngineError, Result};
use crate::io::write_json;
use crate::model::{Model, Pending};
use crate::save::Head;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

pub use data::{PreferenceData, Skipped, TokenizedPair};
// Also at its old path, for callers of `engine::train::peak_rss_mib`.
pub use crate::io::peak_rss_mib;

/// Settings shared by both trainers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Pairs per micro-batch (reward model: whole prompts are added until at least this many pairs).
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    /// Longest sequence (prompt + completion) in tokens.
    pub max_length: usize,
    /// Tokens one forward pass may hold (rows × the longest row, padding included): a batch
    /// over it is cut into micro-batches whose gradients add up to the batch's, so memory
    /// follows the data's real lengths rather than the batch size times the longest row.
    /// A single pair over it still goes alone.
    #[serde(default = "default_max_batch_tokens")]
    pub max_batch_tokens: usize,
    pub seed: u64,
    /// Share of prompts held out for evaluation (0 = none).
    pub eval_split: f64,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<usize>,
    /// Write `checkpoint-N/` every N optimizer steps.
    pub save_steps: Option<usize>,
    /// A `checkpoint-N/` folder to continue from.
    pub resume: Option<PathBuf>,
    /// Compute in bf16 (a differentiable bf16 copy of the weights each step) while the
    /// weights, gradients and AdamW stay f32: mixed precision for CPUs with bf16 instructions.
    #[serde(default)]
    pub bf16: bool,
    /// Activation checkpointing: keep only each layer's input in the forward and recompute
    /// the layer in backward (see `model::readout`). A second forward for a fraction of the
    /// memory; on by default, as in TRL on CPU.
    #[serde(default = "default_gradient_checkpointing")]
    pub gradient_checkpointing: bool,
}

fn default_gradient_checkpointing() -> bool {
    true
}

fn default_max_batch_tokens() -> usize {
    4096
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: domain::DEFAULT_EPOCHS as usize,
            batch_size: domain::DEFAULT_BATCH_SIZE as usize,
            grad_accum: 1,
            lr: 1e-6,
            warmup_steps: 0,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            max_length: 1024,
            max_batch_tokens: default_max_batch_tokens(),
            seed: 42,
            eval_split: 0.0,
            max_steps: None,
            save_steps: None,
            resume: None,
            bf16: false,
            gradient_checkpointing: default_gradient_checkpointing(),
        }
    }
}

impl TrainConfig {
    /// The settings of a run asked for through the app (`domain::TrainSettings`), with
    /// defaults for what it leaves out.
    pub fn from_settings(kind: domain::TrainKind, s: &domain::TrainSettings) -> TrainConfig {
        let defaults = TrainConfig::default();
        TrainConfig {
            epochs: s.epochs.map_or(defaults.epochs, |v| v as usize),
            batch_size: s.batch_size.map_or(defaults.batch_size, |v| v as usize),
            lr: s.lr.unwrap_or(match kind {
                domain::TrainKind::Dpo => dpo::DEFAULT_LR,
                domain::TrainKind::Reward => reward::DEFAULT_LR,
            }),
            max_length: s.max_length.map_or(defaults.max_length, |v| v as usize),
            max_batch_tokens: s
                .max_batch_tokens
                .map_or(defaults.max_batch_tokens, |v| v as usize),
            max_steps: s.max_steps.map(|v| v as usize),
            eval_split: s.eval_split.unwrap_or(0.1),
            seed: s.seed.unwrap_or(defaults.seed),
            bf16: s.bf16.unwrap_or(false),
            gradient_checkpointing: s
                .gradient_checkpointing
                .unwrap_or(defaults.gradient_checkpointing),
            ..defaults
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(EngineError::InvalidRequest(m.to_string()));
        if self.epochs == 0 || self.batch_size == 0 || self.grad_accum == 0 {
            return bad("epochs, batch size and gradient accumulation must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("the learning rate must be a positive number");
        }
        if !(0.0..1.0).contains(&self.eval_split) {
            return bad("the eval split must be in [0, 1)");
        }
        if self.max_length < 2 {
            return bad("max length must be at least 2 tokens");
        }
        if self.max_batch_tokens < 2 {
            return bad("max batch tokens must be at least 2");
        }
        if self.save_steps == Some(0) || self.max_steps == Some(0) {
            return bad("save steps and max steps must be at least 1");
        }
        Ok(())
    }
}

/// One optimizer step's (or one evaluation's) figures, by name
/// ("loss", "rewards/accuracies", ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: f64,
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
}

/// What a trainer reports as it goes.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A phase that takes a while ("tokenizing", "reference log-probs").
    Phase(&'a str),
    Started {
        total_steps: usize,
        train_pairs: usize,
        eval_pairs: usize,
    },
    Step(&'a StepRecord),
    Eval(&'a StepRecord),
}

/// Returned by the progress callback: keep going or stop (a cancelled job).
pub type Control = std::ops::ControlFlow<()>;

/// `metrics.json`: per-step and final figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metrics {
    /// "reward" or "dpo".
    pub kind: String,
    pub base_model: String,
    pub config: TrainConfig,
    /// Trainer-specific settings (beta, loss, ...).
    pub settings: serde_json::Value,
    pub train_pairs: usize,
    pub eval_pairs: usize,
    pub skipped: Vec<Skipped>,
    pub steps: Vec<StepRecord>,
    pub eval: Vec<StepRecord>,
    /// Last step's and last evaluation's figures, and throughput.
    pub summary: BTreeMap<String, f64>,
    pub peak_rss_mib: Option<f64>,
    pub device: String,
}

impl Metrics {
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(&dir.join("metrics.json"), self)
    }
}

/// Load a model for training: f32 weights (CPU or CUDA; on CUDA the forward
/// runs under bf16 autocast), regardless of the file's storage type.
pub fn load_for_training(
    path: &Path,
    device: DeviceChoice,
    threads: Option<usize>,
) -> Result<Engine> {
    Engine::load(
        path,
        &LoadOptions {
            device,
            dtype: Some(DType::F32),
            threads,
        },
    )
}

/// Pairs grouped by prompt, split into train and eval by prompt so that
/// no prompt is in both.
pub(crate) struct Split {
    pub train: Vec<Vec<TokenizedPair>>,
    pub eval: Vec<Vec<TokenizedPair>>,
}

pub(crate) fn split_by_prompt(pairs: Vec<TokenizedPair>, cfg: &TrainConfig) -> Result<Split> {
    let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
    let mut groups: Vec<Vec<TokenizedPair>> = Vec::new();
    for p in pairs {
        let next = groups.len();
        let g = *index.entry(p.prompt.clone()).or_insert(next);
        if g == next {
            groups.push(Vec::new());
        }
        groups[g].push(p);
    }
    let order = permutation(groups.len(), cfg.seed)?;
    let mut groups: Vec<Option<Vec<TokenizedPair>>> = groups.into_iter().map(Some).collect();
    let mut shuffled: Vec<Vec<TokenizedPair>> =
        order.iter().filter_map(|&i| groups[i].take()).collect();
    let n_eval = if cfg.eval_split > 0.0 && shuffled.len() >= 2 {
        ((shuffled.len() as f64 * cfg.eval_split).ceil() as usize).clamp(1, shuffled.len() - 1)
    } else {
        0
    };
    let eval = shuffled.split_off(shuffled.len() - n_eval);
    if shuffled.is_empty() {
        return Err(EngineError::InvalidRequest(
            "no preference pairs left to train on".into(),
        ));
    }
    Ok(Split {
        train: shuffled,
        eval,
    })
}

/// A seeded permutation of `0..n` (torch's generator, so it is the same on every machine).
pub(crate) fn permutation(n: usize, seed: u64) -> Result<Vec<usize>> {
    if n == 0 {
        return Ok(vec![]);
    }
    let mut generator_seed = seed as i64;
    // Keep the sequence independent of everything else drawn from the global generator.
    generator_seed = generator_seed
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(n as i64);
    tch::manual_seed(generator_seed);
    let perm = Tensor::f_randperm(n as i64, (Kind::Int64, Device::Cpu))?;
    Ok(Vec::<i64>::try_from(perm)?
        .into_iter()
        .map(|i| i as usize)
        .collect())
}

/// `transformers`' "linear" schedule: warm-up from 0, then down to 0 at `total`.
pub fn lr_at(step: usize, cfg: &TrainConfig, total: usize) -> f64 {
    if step < cfg.warmup_steps {
        return cfg.lr * step as f64 / cfg.warmup_steps.max(1) as f64;
    }
    let rest = total.saturating_sub(cfg.warmup_steps).max(1) as f64;
    cfg.lr * (total.saturating_sub(step) as f64 / rest).max(0.0)
}

/// The policy's weights in a var store, with libtorch's AdamW over them.
pub(crate) struct Optimizer {
    opt: nn::Optimizer,
    params: Vec<Tensor>,
    // The var store owns the variables the optimizer updates; kept alive with it.
    _vs: nn::VarStore,
}

impl Optimizer {
    pub fn new(engine: &mut Engine, cfg: &TrainConfig) -> Result<Self> {
        let model = engine.model_mut();
        let vs = nn::VarStore::new(model.device);
        let root = vs.root();
        let mut params = Vec::new();
        for (i, p) in model.parameters_mut().into_iter().enumerate() {
            // `add` marks the tensor trainable and returns a handle to the same storage.
            *p = root.add(&format!("p{i}"), p.shallow_clone(), true);
            params.push(p.shallow_clone());
        }
        let opt = nn::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            wd: cfg.weight_decay,
            eps: 1e-8,
            amsgrad: false,
        };
        let opt = nn::OptimizerConfig::build(opt, &vs, cfg.lr)?;
        Ok(Optimizer {
            opt,
            params,
            _vs: vs,
        })
    }

    /// Clip the accumulated gradients to `max_norm`, step, zero them.
    /// Returns the norm before clipping.
    pub fn step(&mut self, lr: f64, max_norm: f64) -> Result<f64> {
        let _g = tch::no_grad_guard();
        // Per-tensor norms stay on the device; one read for the total.
        let norms = self
            .params
            .iter()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .map(|g| g.f_norm())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let norm = if norms.is_empty() {
            0.0
        } else {
            Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?
        };
        if max_norm > 0.0 && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for p in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.f_mul_scalar_(scale)?;
                }
            }
        }
        self.opt.set_lr(lr);
        self.opt.step();
        self.opt.zero_grad();
        Ok(norm)
    }
}

/// What a checkpoint folder holds besides the model: where to continue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TrainerState {
    pub step: usize,
    pub steps: Vec<StepRecord>,
    pub eval: Vec<StepRecord>,
}

pub(crate) fn save_checkpoint(
    engine: &Engine,
    out: &Path,
    head: Head,
    state: &TrainerState,
) -> Result<()> {
    let dir = out.join(format!("checkpoint-{}", state.step));
    engine.save_hf(&dir, head)?;
    write_json(&dir.join("trainer_state.json"), state)
}

/// Load a checkpoint's weights into `engine` and return where it stopped.
/// The optimizer's moment estimates are not in checkpoints: AdamW restarts them.
pub(crate) fn resume(engine: &mut Engine, dir: &Path) -> Result<TrainerState> {
    let p = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&p).map_err(|e| EngineError::io(&p, e))?;
    let state: TrainerState = serde_json::from_str(&text)?;
    let saved = Engine::load(
        dir,
        &LoadOptions {
            device: match engine.model().device {
                Device::Cuda(i) => DeviceChoice::Cuda(i),
                _ => DeviceChoice::Cpu,
            },
            dtype: Some(DType::F32),
            threads: None,
        },
    )?;
    let mut saved = saved;
    let from = saved.model_mut().parameters_mut();
    let to = engine.model_mut().parameters_mut();
    if from.len() != to.len() {
        return Err(EngineError::InvalidRequest(format!(
            "{} does not hold the same model ({} tensors, expected {})",
            dir.display(),
            from.len(),
            to.len()
        )));
    }
    let _g = tch::no_grad_guard();
    for (t, f) in to.into_iter().zip(from) {
        if t.size() != f.size() {
            return Err(EngineError::InvalidRequest(format!(
                "{} does not hold the same model (shape {:?} vs {:?})",
                dir.display(),
                f.size(),
                t.size()
            )));
        }
        t.f_copy_(f)?;
    }
    Ok(state)
}

/// Named figures of a batch or an evaluation ("loss", "accuracy", ...).
pub type Figures = BTreeMap<String, f64>;

/// A batch's loss (a scalar to back-propagate), its figures, and, when its forward was
/// checkpointed, the rest of its backward.
pub struct BatchLoss<'m> {
    pub loss: Tensor,
    pub figures: Figures,
    pub pending: Option<Pending<'m>>,
}

impl BatchLoss<'_> {
    /// Back-propagates `loss × scale` into the weights' gradients.
    pub fn backward(self, scale: f64) -> Result<Figures> {
        self.loss.f_mul_scalar(scale)?.f_backward()?;
        if let Some(pending) = self.pending {
            pending.backward()?;
        }
        Ok(self.figures)
    }
}

/// A trainer's loss of a batch of examples (by index), with or without activation
/// checkpointing.
type LossFn<'a> = &'a dyn for<'m> Fn(&'m Model, &[usize], bool) -> Result<BatchLoss<'m>>;

/// Gives a trainer's loss closure its signature, which the compiler cannot infer: the loss
/// borrows the model it is given.
pub(crate) fn batch_loss_fn<F>(f: F) -> F
where
    F: for<'m> Fn(&'m Model, &[usize], bool) -> Result<BatchLoss<'m>>,
{
    f
}

/// A trainer's part of a run: its examples (train then eval, addressed by index), how to
/// batch them and the loss of a batch; [`run`] does the rest.
pub(crate) struct Run<'a> {
    /// "reward" or "dpo", for `metrics.json`.
    pub kind: &'static str,
    pub head: Head,
    pub base_model: &'a str,
    /// Trainer-specific settings, for `metrics.json`.
    pub settings: serde_json::Value,
    pub skipped: Vec<Skipped>,
    /// Per epoch, the training batches.
    pub epochs: Vec<Vec<Vec<usize>>>,
    /// Each example's longest row in tokens (a pair has two rows), for micro-batching.
    pub lengths: Vec<usize>,
    pub train_pairs: usize,
    /// Batches of the eval split, evaluated after each epoch (empty: no eval split).
    pub eval: Vec<Vec<usize>>,
    /// Loss (to back-propagate) and figures of one batch.
    pub loss: LossFn<'a>,
}

/// The shared loop: gradient accumulation, schedule, clipping, AdamW, progress events,
/// checkpoints and resume, per-epoch evaluation; then the final model and `metrics.json`.
pub(crate) fn run(
    engine: &mut Engine,
    cfg: &TrainConfig,
    out: &Path,
    run: Run,
    on_event: &mut dyn FnMut(Event) -> Control,
) -> Result<Metrics> {
    let mut state = TrainerState {
        step: 0,
        steps: vec![],
        eval: vec![],
    };
    if let Some(dir) = &cfg.resume {
        state = resume(engine, dir)?;
    }
    let eval_pairs: usize = run.eval.iter().map(Vec::len).sum();
    let steps_in = |e: &Vec<Vec<usize>>| e.len().div_ceil(cfg.grad_accum);
    let total = cfg
        .max_steps
        .unwrap_or(usize::MAX)
        .min(run.epochs.iter().map(steps_in).sum());
    let started = Event::Started {
        total_steps: total,
        train_pairs: run.train_pairs,
        eval_pairs,
    };
    if on_event(started).is_break() {
        return Err(EngineError::Cancelled);
    }
    let mut opt = Optimizer::new(engine, cfg)?;
    let clock = std::time::Instant::now();
    let mut pairs_trained = 0usize;
    let first_step = state.step;
    let mut step = 0usize;
    'epochs: for (epoch, batches) in run.epochs.iter().enumerate() {
        let in_epoch = steps_in(batches);
        for (s, group) in batches.chunks(cfg.grad_accum).enumerate() {
            if step >= total {
                break 'epochs;
            }
            step += 1;
            if step <= first_step {
                continue; // done before the checkpoint this run resumed from
            }
            let mut figures = Vec::new();
            for batch in group {
                let mut parts = Vec::new();
                for micro in micro_batches(batch, &run.lengths, cfg.max_batch_tokens) {
                    let copy = compute_copy(engine.model(), cfg.bf16)?;
                    let model = copy.as_ref().unwrap_or(engine.model());
                    let loss = (run.loss)(model, &micro, cfg.gradient_checkpointing)?;
                    // The batch's loss is the mean over its pairs: each micro-batch's
                    // mean counts by its share of them.
                    let share = micro.len() as f64 / batch.len() as f64;
                    let scale = share / group.len() as f64;
                    // A checkpointed layer is recomputed as it was computed (bf16 autocast
                    // on CUDA), so its gradient is that of the forward the loss came from.
                    parts.push((share, autocast(model.device, || loss.backward(scale))?));
                }
                pairs_trained += batch.len();
                figures.push(weighted_values(&parts));
            }
            let lr = lr_at(step - 1, cfg, total);
            let grad_norm = opt.step(lr, cfg.max_grad_norm)?;
            let mut values = mean_values(&figures);
            values.insert("lr".into(), lr);
            values.insert("grad_norm".into(), grad_norm);
            let record = StepRecord {
                step,
                epoch: epoch as f64 + (s + 1) as f64 / in_epoch.max(1) as f64,
                values,
            };
            state.step = step;
            state.steps.push(record.clone());
            if on_event(Event::Step(&record)).is_break() {
                return Err(EngineError::Cancelled);
            }
            if cfg.save_steps.is_some_and(|n| step.is_multiple_of(n)) {
                save_checkpoint(engine, out, run.head, &state)?;
            }
        }
        if !run.eval.is_empty() {
            let _g = tch::no_grad_guard();
            let copy = compute_copy(engine.model(), cfg.bf16)?;
            let model = copy.as_ref().unwrap_or(engine.model());
            // Micro-batches here too: without gradients they hold less, but a batch of long
            // pairs whole would still hold every row's activations of a layer at once.
            let mut figures = Vec::new();
            for batch in &run.eval {
                let mut parts = Vec::new();
                for micro in micro_batches(batch, &run.lengths, cfg.max_batch_tokens) {
                    let share = micro.len() as f64 / batch.len() as f64;
                    parts.push((share, (run.loss)(model, &micro, false)?.figures));
                }
                figures.push(weighted_values(&parts));
            }
            let record = StepRecord {
                step: state.step,
                epoch: (epoch + 1) as f64,
                values: mean_values(&figures),
            };
            state.eval.push(record.clone());
            if on_event(Event::Eval(&record)).is_break() {
                return Err(EngineError::Cancelled);
            }
        }
    }
    let seconds = clock.elapsed().as_secs_f64();

    engine.save_hf(out, run.head)?;
    let mut summary = BTreeMap::new();
    for (prefix, records) in [("train", &state.steps), ("eval", &state.eval)] {
        if let Some(last) = records.last() {
            for (k, v) in &last.values {
                summary.insert(format!("{prefix}/{k}"), *v);
            }
        }
    }
    summary.insert("train_seconds".into(), seconds);
    summary.insert(
        "train_pairs_per_second".into(),
        pairs_trained as f64 / seconds.max(1e-9),
    );
    let metrics = Metrics {
        kind: run.kind.into(),
        base_model: run.base_model.to_string(),
        config: cfg.clone(),
        settings: run.settings,
        train_pairs: run.train_pairs,
        eval_pairs,
        skipped: run.skipped,
        steps: state.steps,
        eval: state.eval,
        summary,
        peak_rss_mib: peak_rss_mib(),
        device: device_name(engine.model().device),
    };
    metrics.write(out)?;
    Ok(metrics)
}

/// `start..end` cut into batches of `size` (an eval split's batches).
pub(crate) fn ranges(start: usize, end: usize, size: usize) -> Vec<Vec<usize>> {
    (start..end)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(<[usize]>::to_vec)
        .collect()
}

/// Per epoch, a seeded shuffle of `0..n` cut into batches of `size`.
pub(crate) fn shuffled_batches(
    n: usize,
    size: usize,
    cfg: &TrainConfig,
) -> Result<Vec<Vec<Vec<usize>>>> {
    (0..cfg.epochs)
        .map(|epoch| {
            let order = permutation(n, cfg.seed.wrapping_add(epoch as u64))?;
            Ok(order.chunks(size).map(<[usize]>::to_vec).collect())
        })
        .collect()
}

/// The model to compute with: `None` means the model itself (f32); with `bf16`, a bf16
/// copy attached to the graph, so gradients land on the f32 weights.
pub(crate) fn compute_copy(model: &Model, bf16: bool) -> Result<Option<Model>> {
    if bf16 {
        Ok(Some(model.cast(Kind::BFloat16)?))
    } else {
        Ok(None)
    }
}

/// Runs `f` under bf16 autocast on CUDA, plainly on CPU.
pub(crate) fn autocast<T>(device: Device, f: impl FnOnce() -> T) -> T {
    match device {
        Device::Cuda(_) => tch::autocast(true, f),
        _ => f(),
    }
}

/// `batch` cut into micro-batches of at most `budget` tokens (two rows per example, each
/// padded to the micro-batch's longest): longest examples first, so that short ones are not
/// padded to a long one's length. A batch within the budget stays whole, in its order.
pub(crate) fn micro_batches(batch: &[usize], lengths: &[usize], budget: usize) -> Vec<Vec<usize>> {
    let length = |i: usize| lengths.get(i).copied().unwrap_or(0);
    let cost = |examples: usize, longest: usize| 2 * examples * longest;
    let longest = batch.iter().map(|&i| length(i)).max().unwrap_or(0);
    if cost(batch.len(), longest) <= budget {
        return vec![batch.to_vec()];
    }
    let mut sorted = batch.to_vec();
    sorted.sort_by_key(|&i| std::cmp::Reverse(length(i)));
    let mut micro: Vec<Vec<usize>> = Vec::new();
    for i in sorted {
        match micro.last_mut() {
            // The first (longest) example of a micro-batch sets its padded length.
            Some(open) if cost(open.len() + 1, length(open[0])) <= budget => open.push(i),
            _ => micro.push(vec![i]),
        }
    }
    micro
}

/// The figures of a batch from its micro-batches', each weighted by its share of pairs.
fn weighted_values(parts: &[(f64, BTreeMap<String, f64>)]) -> BTreeMap<String, f64> {
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    for (share, values) in parts {
        for (k, v) in values {
            *sum.entry(k.clone()).or_default() += share * v;
        }
    }
    sum
}

/// Mean of each named figure over batches.
pub(crate) fn mean_values(parts: &[BTreeMap<String, f64>]) -> BTreeMap<String, f64> {
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    for p in parts {
        for (k, v) in p {
            *sum.entry(k.clone()).or_default() += v;
        }
    }
    let n = parts.len().max(1) as f64;
    sum.into_iter().map(|(k, v)| (k, v / n)).collect()
}

pub(crate) fn device_name(d: Device) -> String {
    format!("{d:?}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let cfg = TrainConfig {
            lr: 1.0,
            warmup_steps: 2,
            ..TrainConfig::default()
        };
        let lrs: Vec<f64> = (0..6).map(|s| lr_at(s, &cfg, 6)).collect();
        assert_eq!(lrs, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        let flat = TrainConfig {
            lr: 1.0,
            ..TrainConfig::default()
        };
        assert_eq!(lr_at(0, &flat, 4), 1.0);
    }

    #[test]
    fn long_examples_get_micro_batches_of_their_own() {
        let lengths = [100, 1000, 90, 80, 950];
        // Within the budget: one micro-batch, in order.
        assert_eq!(
            micro_batches(&[0, 2, 3], &lengths, 4096),
            vec![vec![0, 2, 3]]
        );
        // Over it: longest first, short ones together rather than padded to 1000.
        assert_eq!(
            micro_batches(&[0, 1, 2, 3, 4], &lengths, 4096),
            vec![vec![1, 4], vec![0, 2, 3]]
        );
        // A single example over the budget still goes, alone.
        assert_eq!(
            micro_batches(&[1, 0], &lengths, 1000),
            vec![vec![1], vec![0]]
        );
    }

    #[test]
    fn permutations_are_seeded() {
        let a = permutation(50, 7).unwrap();
        assert_eq!(a, permutation(50, 7).unwrap());
        assert_ne!(a, permutation(50, 8).unwrap());
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
    }
}
