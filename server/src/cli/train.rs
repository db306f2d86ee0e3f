//! `pairwise train-reward`, `pairwise reward` and `pairwise dpo`: learning
//! from exported preferences with the model engine, from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use engine::train::{self, dpo, reward, Control, Event, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};

use super::generate::device;

/// Settings both trainers take.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Preference files (TRL standard or conversational; JSONL, JSONL.gz or Parquet) or export folders.
    #[arg(long, required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Base model: a GGUF file or a Hugging Face directory (default: the bundled SmolLM2-135M-Instruct).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output folder: the trained model (Hugging Face layout), checkpoints and metrics.json.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Pairs per batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (default: 1e-6 for DPO, 1e-5 for the reward model).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Linear warm-up steps (then linear decay to 0).
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    /// Clip the gradient norm to this (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Longest prompt + response in tokens.
    #[arg(long, default_value_t = 1024)]
    pub max_length: usize,
    /// Tokens one forward pass may hold; larger batches are cut into micro-batches.
    #[arg(long, default_value_t = 4096)]
    pub max_batch_tokens: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of prompts held out for evaluation.
    #[arg(long, default_value_t = 0.1)]
    pub eval_split: f64,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Save `checkpoint-N/` every N steps.
    #[arg(long)]
    pub save_steps: Option<usize>,
    /// Continue from a `checkpoint-N/` folder.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// auto (CUDA when present), cpu, or cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// CPU threads for libtorch.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Mixed precision: compute in bf16, keep f32 weights, gradients and optimizer (faster on
    /// CPUs with bf16 instructions).
    #[arg(long)]
    pub bf16: bool,
    /// Keep every layer's activations for backward instead of recomputing them (faster,
    /// needs far more memory on long sequences).
    #[arg(long)]
    pub no_gradient_checkpointing: bool,
    /// No progress bar; one JSON line per step on standard output instead.
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    pub fn config(&self, default_lr: f64) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr.unwrap_or(default_lr),
            warmup_steps: self.warmup_steps,
            max_grad_norm: self.max_grad_norm,
            weight_decay: self.weight_decay,
            max_length: self.max_length,
            max_batch_tokens: self.max_batch_tokens,
            seed: self.seed,
            eval_split: self.eval_split,
            max_steps: self.max_steps,
            save_steps: self.save_steps,
            resume: self.resume.clone(),
            bf16: self.bf16,
            gradient_checkpointing: !self.no_gradient_checkpointing,
        }
    }

    fn model_path(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(engine::default_model_path)
    }
}

#[derive(Args)]
pub struct TrainRewardArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Reward centring: adds coef * mean((r_chosen + r_rejected)^2) to the loss.
    #[arg(long)]
    pub center_rewards: Option<f64>,
}

#[derive(Args)]
pub struct DpoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// sigmoid, hinge, ipo or robust.
    #[arg(long, default_value = "sigmoid", value_parser = parse_loss)]
    pub loss: dpo::DpoLoss,
    /// Share of labels assumed flipped (sigmoid, robust).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Keep a second copy of the base model as the reference and run it on
    /// every batch, instead of computing its log-probs once up front.
    #[arg(long)]
    pub live_reference: bool,
}

fn parse_loss(s: &str) -> Result<dpo::DpoLoss, String> {
    s.parse()
        .map_err(|_| format!("unknown DPO loss `{s}` (sigmoid, hinge, ipo, robust)"))
}

#[derive(Args)]
pub struct RewardArgs {
    /// A reward model folder written by `pairwise train-reward`.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub prompt: String,
    #[arg(long)]
    pub response: String,
    /// Score the prompt and response as a user turn and an assistant turn of a chat.
    #[arg(long)]
    pub chat: bool,
    #[arg(long, default_value = "auto")]
    pub device: String,
}

fn load(path: &Path, args: &CommonArgs) -> anyhow::Result<engine::Engine> {
    train::load_for_training(path, device(&args.device)?, args.threads)
        .with_context(|| format!("loading {}", path.display()))
}

fn read_data(args: &CommonArgs) -> anyhow::Result<train::PreferenceData> {
    let files = train::data::data_files(&args.data)?;
    let data = train::data::read_preferences(&files)?;
    eprintln!(
        "{} preference pairs from {} file(s){}",
        data.pairs.len(),
        files.len(),
        if data.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} rows skipped", data.skipped.len())
        }
    );
    Ok(data)
}

/// Progress on the terminal: a bar with the latest figures, or JSON lines.
struct Progress {
    bar: Option<ProgressBar>,
    json: bool,
    headline: &'static [&'static str],
}

impl Progress {
    fn new(json: bool, headline: &'static [&'static str]) -> Self {
        Progress {
            bar: None,
            json,
            headline,
        }
    }

    fn on_event(&mut self, event: Event) -> Control {
        match event {
            Event::Phase(what) => eprintln!("{what}…"),
            Event::Started {
                total_steps,
                train_pairs,
                eval_pairs,
            } => {
                eprintln!(
                    "training on {train_pairs} pairs ({eval_pairs} held out), {total_steps} steps"
                );
                if !self.json {
                    let bar = ProgressBar::new(total_steps as u64);
                    if let Ok(style) = ProgressStyle::with_template(
                        "{bar:30} {pos}/{len} steps · {elapsed} < {eta} · {msg}",
                    ) {
                        bar.set_style(style);
                    }
                    self.bar = Some(bar);
                }
            }
            Event::Step(record) | Event::Eval(record) if self.json => {
                println!("{}", serde_json::to_string(record).unwrap_or_default());
            }
            Event::Step(record) => {
                if let Some(bar) = &self.bar {
                    bar.set_position(record.step as u64);
                    bar.set_message(self.figures(&record.values));
                }
            }
            Event::Eval(record) => {
                let line = format!(
                    "eval after epoch {}: {}",
                    record.epoch,
                    self.figures(&record.values)
                );
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("{line}"),
                }
            }
        }
        Control::Continue(())
    }

    fn figures(&self, values: &std::collections::BTreeMap<String, f64>) -> String {
        self.headline
            .iter()
            .filter_map(|k| values.get(*k).map(|v| format!("{k} {}", figure(*v))))
            .collect::<Vec<_>>()
            .join(" · ")
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Four decimals, or four significant digits for small values (learning rates).
fn figure(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn report(metrics: &train::Metrics, out: &Path) {
    for (k, v) in &metrics.summary {
        eprintln!("{k:>32}: {}", figure(*v));
    }
    if !metrics.skipped.is_empty() {
        eprintln!(
            "{} rows skipped (reasons in metrics.json), e.g. {}: {}",
            metrics.skipped.len(),
            metrics.skipped[0].source,
            metrics.skipped[0].reason
        );
    }
    if let Some(mib) = metrics.peak_rss_mib {
        eprintln!("peak memory {mib:.0} MiB on {}", metrics.device);
    }
    println!("{}", out.display());
}

pub fn train_reward(args: TrainRewardArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let data = read_data(common)?;
    let base = common.model_path();
    let mut engine = load(&base, common)?;
    let mut progress = Progress::new(common.json, &["loss", "accuracy", "margin"]);
    let settings = reward::RewardConfig {
        center_rewards_coefficient: args.center_rewards,
    };
    let metrics = reward::train(
        &mut engine,
        &data,
        &settings,
        &common.config(reward::DEFAULT_LR),
        &common.out,
        &base.display().to_string(),
        &mut |e| progress.on_event(e),
    )?;
    progress.finish();
    report(&metrics, &common.out);
    Ok(())
}

pub fn dpo(args: DpoArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let data = read_data(common)?;
    let base = common.model_path();
    let mut engine = load(&base, common)?;
    let reference = if args.live_reference {
        Some(load(&base, common)?)
    } else {
        None
    };
    let settings = dpo::DpoConfig {
        beta: args.beta,
        loss: args.loss,
        label_smoothing: args.label_smoothing,
    };
    let mut progress = Progress::new(
        common.json,
        &["loss", "rewards/accuracies", "rewards/margins"],
    );
    let metrics = dpo::train(
        &mut engine,
        reference.as_ref(),
        &data,
        &settings,
        &common.config(dpo::DEFAULT_LR),
        &common.out,
        &base.display().to_string(),
        &mut |e| progress.on_event(e),
    )?;
    progress.finish();
    report(&metrics, &common.out);
    Ok(())
}

pub fn reward(args: RewardArgs) -> anyhow::Result<()> {
    let engine = train::load_for_training(&args.model, device(&args.device)?, None)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let (prompt, response) = if args.chat {
        let turn = |role: &str, content: String| {
            train::data::Turns::Messages(vec![domain::Message {
                role: role.into(),
                content,
            }])
        };
        (turn("user", args.prompt), turn("assistant", args.response))
    } else {
        (
            train::data::Turns::Text(args.prompt),
            train::data::Turns::Text(args.response),
        )
    };
    println!("{}", engine.reward(&prompt, &response)?);
    Ok(())
}
