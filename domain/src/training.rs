//! Training runs: a reward model or a DPO fine-tune trained on an export, as
//! a job that workers pick up, with its live figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{text_enum, Invalid, JobStatus};

text_enum! {
    /// What a training run makes.
    TrainKind {
        /// A Bradley–Terry reward model (sequence-classification checkpoint).
        Reward => "reward",
        /// A DPO fine-tune of the base model, registered as a model on success.
        Dpo => "dpo",
    }
}

text_enum! {
    /// DPO loss variants (as TRL defines them).
    DpoLossKind { Sigmoid => "sigmoid", Hinge => "hinge", Ipo => "ipo", Robust => "robust" }
}

/// Passes over the training pairs unless the settings say otherwise (the engine's default).
pub const DEFAULT_EPOCHS: u32 = 1;
/// Pairs per optimiser step unless the settings say otherwise (the engine's default).
pub const DEFAULT_BATCH_SIZE: u32 = 4;

/// What a researcher asks for; every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// The base model's registry name (default: the first registered model, the default one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_split: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// DPO only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// DPO only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<DpoLossKind>,
    /// DPO only (sigmoid, robust).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_smoothing: Option<f64>,
    /// Reward model only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center_rewards: Option<f64>,
    /// Mixed precision: bf16 compute over f32 weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<bool>,
    /// Tokens one forward pass may hold (rows × the longest row); larger batches are cut
    /// into micro-batches with the same gradient. Default 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_tokens: Option<u32>,
    /// Recompute each layer in backward instead of keeping its activations. Default on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_checkpointing: Option<bool>,
}

impl TrainSettings {
    /// Checks ranges before a run is queued, so a bad value fails the request, not the job.
    pub fn validate(&self, kind: TrainKind) -> Result<(), Invalid> {
        let bad = |m: &str| Err(Invalid::new(m));
        if self.epochs.is_some_and(|e| e == 0 || e > 100) {
            return bad("epochs must be between 1 and 100");
        }
        if self.batch_size.is_some_and(|b| b == 0 || b > 1024) {
            return bad("batch size must be between 1 and 1024");
        }
        if self.lr.is_some_and(|lr| !(lr > 0.0 && lr < 1.0)) {
            return bad("the learning rate must be in (0, 1)");
        }
        if self.max_length.is_some_and(|l| !(8..=32_768).contains(&l)) {
            return bad("max length must be between 8 and 32768 tokens");
        }
        if self
            .max_batch_tokens
            .is_some_and(|t| !(64..=1 << 20).contains(&t))
        {
            return bad("max batch tokens must be between 64 and 1048576");
        }
        if self.max_steps == Some(0) {
            return bad("max steps must be at least 1");
        }
        if self.eval_split.is_some_and(|s| !(0.0..0.9).contains(&s)) {
            return bad("the eval split must be in [0, 0.9)");
        }
        if self.beta.is_some_and(|b| !(b > 0.0 && b.is_finite())) {
            return bad("beta must be a positive number");
        }
        if self
            .label_smoothing
            .is_some_and(|e| !(0.0..0.5).contains(&e))
        {
            return bad("label smoothing must be in [0, 0.5)");
        }
        let dpo_only = self.beta.is_some() || self.loss.is_some() || self.label_smoothing.is_some();
        match kind {
            TrainKind::Reward if dpo_only => bad("beta, loss and label smoothing are DPO settings"),
            TrainKind::Dpo if self.center_rewards.is_some() => {
                bad("center_rewards is a reward-model setting")
            }
            _ => Ok(()),
        }
    }
}

/// `POST /api/v1/exports/{id}/train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTrainingRun {
    pub kind: TrainKind,
    #[serde(default)]
    pub settings: TrainSettings,
}

/// One step's (or evaluation's) figures, as the engine reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainPoint {
    pub step: u32,
    pub epoch: f64,
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
}

impl TrainPoint {
    /// The accuracy figure of either trainer.
    pub fn accuracy(&self) -> Option<f64> {
        self.values
            .get("accuracy")
            .or_else(|| self.values.get("rewards/accuracies"))
            .copied()
    }
    pub fn loss(&self) -> Option<f64> {
        self.values.get("loss").copied()
    }
}

/// A training run as the API and the UI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub id: Uuid,
    pub kind: TrainKind,
    pub export_id: Uuid,
    pub base_model: String,
    pub settings: TrainSettings,
    pub status: JobStatus,
    /// What it is doing now ("tokenizing", "reference log-probs", "training", ...).
    pub phase: String,
    pub step: u32,
    pub total_steps: Option<u32>,
    pub train_pairs: Option<u32>,
    pub eval_pairs: Option<u32>,
    pub points: Vec<TrainPoint>,
    pub eval: Vec<TrainPoint>,
    /// Final figures (metrics.json's summary), when done.
    pub summary: Option<BTreeMap<String, f64>>,
    /// Where the checkpoint was written (on the worker's disk).
    pub output_dir: Option<String>,
    /// The registered model (DPO).
    pub model_id: Option<Uuid>,
    pub model_name: Option<String>,
    pub error: Option<String>,
    pub worker: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl TrainingRecord {
    /// Why a run has fewer steps than its `max_steps` asked for: the data ran out first.
    pub fn steps_note(&self) -> Option<String> {
        let (asked, total, pairs) = (
            self.settings.max_steps?,
            self.total_steps?,
            self.train_pairs?,
        );
        if total >= asked {
            return None;
        }
        let epochs = self.settings.epochs.unwrap_or(DEFAULT_EPOCHS);
        let batch = self.settings.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        let plural =
            |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        Some(format!(
            "{} ran, not the {} asked for: {} in batches of up to {batch} make {} over {}. More epochs or more data give more steps.",
            plural(total, "step", "steps"),
            asked,
            plural(pairs, "training pair", "training pairs"),
            plural(total, "step", "steps"),
            plural(epochs, "epoch", "epochs"),
        ))
    }

    pub fn percent(&self) -> f64 {
        match self.total_steps {
            Some(t) if t > 0 => (f64::from(self.step) / f64::from(t) * 100.0).min(100.0),
            _ if self.status == JobStatus::Done => 100.0,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_says_why() {
        let run: TrainingRecord = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::nil(), "kind": "dpo", "export_id": uuid::Uuid::nil(),
            "base_model": "m", "settings": {"max_steps": 2}, "status": "done", "phase": "done",
            "step": 1, "total_steps": 1, "train_pairs": 4, "eval_pairs": 0, "points": [],
            "eval": [], "summary": null, "output_dir": null, "model_id": null,
            "model_name": null, "error": null, "worker": null, "created_at": "", "finished_at": null
        }))
        .unwrap();
        assert_eq!(
            run.steps_note().as_deref(),
            Some("1 step ran, not the 2 asked for: 4 training pairs in batches of up to 4 make 1 step over 1 epoch. More epochs or more data give more steps.")
        );
        let full = TrainingRecord {
            total_steps: Some(2),
            ..run
        };
        assert_eq!(full.steps_note(), None);
    }

    #[test]
    fn settings_are_checked_per_kind() {
        let ok = TrainSettings {
            beta: Some(0.1),
            loss: Some(DpoLossKind::Ipo),
            ..TrainSettings::default()
        };
        assert!(ok.validate(TrainKind::Dpo).is_ok());
        assert!(ok.validate(TrainKind::Reward).is_err());
        let bad = TrainSettings {
            lr: Some(0.0),
            ..TrainSettings::default()
        };
        assert!(bad.validate(TrainKind::Dpo).is_err());
        let e: Result<TrainSettings, _> = serde_json::from_str(r#"{"learning_rate": 1}"#);
        assert!(e.is_err(), "unknown fields are refused");
        let p: TrainPoint = serde_json::from_str(
            r#"{"step": 3, "epoch": 0.5, "loss": 0.6, "rewards/accuracies": 0.75}"#,
        )
        .unwrap();
        assert_eq!((p.loss(), p.accuracy()), (Some(0.6), Some(0.75)));
    }
}
