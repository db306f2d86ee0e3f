//! How much memory a training run needs, from the model's shape and the settings alone, so
//! that a run that cannot fit is refused when it is asked for rather than failing (or
//! pushing the host into the OOM killer) when it runs.
//!
//! The figures are upper estimates of what the trainer keeps alive at its peak: f32
//! weights, their gradients and AdamW's two moments; the activations of the largest
//! micro-batch (all of them without activation checkpointing, each layer's input and one
//! layer's with it), counting attention weights as if kept; the output head's logits; and libtorch's own footprint. The per-token
//! coefficients count the tensors the forward saves for backward in `model/` (see the
//! comments below); `bench/long-responses.sh` measures the real peak to check them.

use crate::error::{EngineError, Result};
use crate::model::{Arch, Config, HEAD_CHUNK};

use super::TrainConfig;

/// What the process holds before training starts: libtorch, the tokenizer, the data.
const RUNTIME_BYTES: u64 = 600 << 20;

/// A run's estimated peak, in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Weights, gradients and optimizer state.
    pub weights: u64,
    /// Activations and logits of the largest micro-batch.
    pub activations: u64,
    pub runtime: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.weights + self.activations + self.runtime
    }
}

/// Parameters of a model of this shape (tied embeddings counted once), plus a reward head.
pub fn parameters(c: &Config) -> u64 {
    let (h, i, v) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.vocab_size as u64,
    );
    let (qd, kvd) = (
        (c.n_heads * c.head_dim) as u64,
        (c.n_kv_heads * c.head_dim) as u64,
    );
    let qkv_bias = if c.qkv_bias { qd + 2 * kvd } else { 0 };
    let attention = h * (qd + 2 * kvd) + qkv_bias + qd * h;
    let layer = match c.arch {
        // Two RMSNorms, fused gate|up, down.
        Arch::Llama => 2 * h + attention + 3 * h * i,
        // Two LayerNorms, biases on every projection.
        Arch::Gpt2 => 4 * h + attention + h + 2 * h * i + i + h,
    };
    let positions = match c.arch {
        Arch::Gpt2 => c.context_length as u64 * h,
        Arch::Llama => 0,
    };
    let final_norm = match c.arch {
        Arch::Llama => h,
        Arch::Gpt2 => 2 * h,
    };
    let output = if c.tie_embeddings { 0 } else { v * h };
    let reward_head = h;
    v * h + positions + c.n_layers as u64 * layer + final_norm + output + reward_head
}

/// f32 elements one layer keeps per token for backward: the residual input and both norm
/// outputs, q/k/v and the rotary products, the attention output, the MLP's up projection,
/// activation and product.
fn layer_floats_per_token(c: &Config) -> u64 {
    let (h, i) = (c.hidden_size as u64, c.intermediate_size as u64);
    let (qd, kvd) = (
        (c.n_heads * c.head_dim) as u64,
        (c.n_kv_heads * c.head_dim) as u64,
    );
    5 * h + 7 * qd + 8 * kvd + 5 * i
}

/// The estimated peak of training a model of shape `c` with `cfg`.
pub fn estimate(c: &Config, cfg: &TrainConfig) -> Estimate {
    let params = parameters(c);
    // f32 weights, gradients, AdamW's two moments; a bf16 compute copy.
    let weights = params * 16 + if cfg.bf16 { params * 2 } else { 0 };
    // The largest micro-batch: the token budget, or one pair (two rows) over it.
    let tokens = (cfg.max_batch_tokens as u64).max(2 * cfg.max_length as u64);
    let (h, v, layers) = (c.hidden_size as u64, c.vocab_size as u64, c.n_layers as u64);
    // Attention weights and their gradient, `[rows, heads, T, T]`, should libtorch's
    // attention kernel keep them (its math fallback does): rows × T² = tokens × T.
    let attention = 2 * tokens * cfg.max_length as u64 * c.n_heads as u64 * 4;
    let per_layer = layer_floats_per_token(c) * 4 * tokens + attention;
    // Logits, their log-softmax and its gradient, over the positions read at once.
    let logits = |positions: u64| 3 * positions * v * 4;
    let activations = if cfg.gradient_checkpointing {
        (layers + 1) * tokens * h * 4 + per_layer + logits((HEAD_CHUNK as u64).min(tokens))
    } else {
        layers * per_layer + logits(tokens)
    };
    Estimate {
        weights,
        activations,
        runtime: RUNTIME_BYTES,
    }
}

/// `PAIRWISE_TRAINING_MEMORY_MB`, in bytes: the memory a training process may take.
pub fn configured_limit() -> Result<Option<u64>> {
    match std::env::var("PAIRWISE_TRAINING_MEMORY_MB") {
        Ok(mb) => mb
            .trim()
            .parse::<u64>()
            .map(|mb| Some(mb << 20))
            .map_err(|_| {
                EngineError::InvalidRequest(
                    "PAIRWISE_TRAINING_MEMORY_MB must be a number of MiB".into(),
                )
            }),
        Err(_) => Ok(None),
    }
}

/// The memory a run may take: the configured limit, else this host's physical memory (the
/// worker's host may differ: set the limit where they do).
pub fn limit() -> Result<Option<u64>> {
    if let Some(limit) = configured_limit()? {
        return Ok(Some(limit));
    }
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return Ok(None);
    };
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib << 10))
}

/// Refuses settings a model of shape `c` cannot train with inside `limit` bytes, or beyond
/// its context length, with what to change.
pub fn check(c: &Config, cfg: &TrainConfig, limit: Option<u64>) -> Result<Estimate> {
    if cfg.max_length > c.context_length {
        return Err(EngineError::InvalidRequest(format!(
            "max length {} is over the model's context length of {} tokens",
            cfg.max_length, c.context_length
        )));
    }
    let estimate = estimate(c, cfg);
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    match limit {
        Some(limit) if estimate.total() > limit => {
            let advice = if cfg.gradient_checkpointing {
                "lower max_length or max_batch_tokens"
            } else {
                "turn gradient_checkpointing on, or lower max_length or max_batch_tokens"
            };
            Err(EngineError::InvalidRequest(format!(
                "these settings need about {:.1} GiB to train this model ({:.1} GiB for \
                 weights, gradients and optimizer, {:.1} GiB for activations), more than \
                 the {:.1} GiB training may use here: {advice}",
                gib(estimate.total()),
                gib(estimate.weights),
                gib(estimate.activations),
                gib(limit)
            )))
        }
        _ => Ok(estimate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M's shape.
    fn smollm2() -> Config {
        Config {
            arch: Arch::Llama,
            vocab_size: 49_152,
            hidden_size: 576,
            intermediate_size: 1536,
            n_layers: 30,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            rope_theta: 100_000.0,
            norm_eps: 1e-5,
            context_length: 8192,
            tie_embeddings: true,
            qkv_bias: false,
        }
    }

    #[test]
    fn parameters_match_the_published_count() {
        // 134,515,008 parameters (SmolLM2-135M), plus the reward head's 576.
        assert_eq!(parameters(&smollm2()), 134_515_008 + 576);
    }

    #[test]
    fn checkpointing_and_budgets_bound_the_activations() {
        let c = smollm2();
        let defaults = TrainConfig::default();
        let with = estimate(&c, &defaults);
        let without = estimate(
            &c,
            &TrainConfig {
                gradient_checkpointing: false,
                ..defaults.clone()
            },
        );
        assert!(with.total() < 4 << 30, "{with:?}");
        assert!(without.activations > 5 * with.activations, "{without:?}");
        // The batch size does not matter (micro-batches), the longest pair does.
        let big_batch = TrainConfig {
            batch_size: 1024,
            ..defaults.clone()
        };
        assert_eq!(estimate(&c, &big_batch), with);
        let too_long = TrainConfig {
            max_length: 32_768,
            ..defaults.clone()
        };
        let refused = check(&c, &too_long, None).unwrap_err().to_string();
        assert!(refused.contains("context length of 8192"), "{refused}");
        let long = TrainConfig {
            max_length: 8192,
            gradient_checkpointing: false,
            ..defaults
        };
        let refused = check(&c, &long, Some(24 << 30)).unwrap_err().to_string();
        assert!(
            refused.contains("turn gradient_checkpointing on"),
            "{refused}"
        );
    }
}
