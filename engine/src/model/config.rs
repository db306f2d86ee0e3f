//! What a model is: its family and hyper-parameters.

use crate::error::{EngineError, Result};
use serde::{Deserialize, Serialize};

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama, SmolLM2, Mistral (RMSNorm, RoPE, SwiGLU, GQA); Qwen2 = Llama with q/k/v biases.
    Llama,
    /// GPT-2 (LayerNorm, learned positions, GELU MLP, fused qkv with biases).
    Gpt2,
}

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f64,
    pub norm_eps: f64,
    pub context_length: usize,
    pub tie_embeddings: bool,
    pub qkv_bias: bool,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(EngineError::Unsupported(m));
        if self.n_layers == 0 || self.n_heads == 0 || self.hidden_size == 0 || self.vocab_size == 0
        {
            return bad("zero-sized model dimension".into());
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} heads not divisible by {} kv heads",
                self.n_heads, self.n_kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!("head dim {} must be even", self.head_dim));
        }
        if self.context_length == 0 {
            return bad("context length 0".into());
        }
        // Far beyond any real model, and small enough that no product of two of them
        // overflows: a file claiming more is refused before anything is sized by it.
        let limits = [
            ("vocab size", self.vocab_size, 1 << 22),
            ("hidden size", self.hidden_size, 1 << 16),
            ("intermediate size", self.intermediate_size, 1 << 18),
            ("layer count", self.n_layers, 1 << 10),
            ("head count", self.n_heads, 1 << 10),
            ("key/value head count", self.n_kv_heads, 1 << 10),
            ("head dim", self.head_dim, 1 << 12),
            ("context length", self.context_length, 1 << 21),
        ];
        for (what, value, most) in limits {
            if value > most {
                return bad(format!("{what} {value} is over {most}"));
            }
        }
        Ok(())
    }
}
