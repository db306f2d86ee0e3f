//! Saving a model as a Hugging Face directory that `transformers` and this
//! engine both load: `config.json`, `model.safetensors` (f32),
//! `tokenizer.json`, `tokenizer_config.json` (with the chat template) and
//! `generation_config.json`.

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::io::write_json;
use crate::model::Arch;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::Path;

/// Which head the checkpoint carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `*ForCausalLM`: a generator (DPO output).
    CausalLm,
    /// `*ForSequenceClassification` with one label: a reward model (`score` head).
    Reward,
}

impl Engine {
    /// Write this model (weights as they are now) as a Hugging Face directory.
    pub fn save_hf(&self, dir: &Path, head: Head) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
        let model = self.model();
        if head == Head::Reward && model.score_head().is_none() {
            return Err(EngineError::InvalidRequest(
                "cannot save a reward model without a reward head".into(),
            ));
        }
        let tensors = model.hf_tensors(head == Head::CausalLm)?;
        let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
        for (name, t) in tensors {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            // f32 CPU tensors, copied once into the bytes safetensors writes.
            let numel = t.numel();
            let mut raw = vec![0u8; numel * 4];
            t.f_copy_data_u8(&mut raw, numel)?;
            bytes.push((name, shape, raw));
        }
        let views = bytes
            .iter()
            .map(|(name, shape, raw)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| EngineError::Hf(format!("{name}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        let path = dir.join("model.safetensors");
        safetensors::serialize_to_file(views, Some(meta), &path)
            .map_err(|e| EngineError::Hf(format!("{}: {e}", path.display())))?;

        let info = self.info();
        let bos = info.bos.as_ref().map(|t| t.id);
        let eos = info.eos.as_ref().map(|t| t.id);
        let pad = self.pad_for(head);
        write_json(
            &dir.join("config.json"),
            &self.hf_config(head, bos, eos, pad),
        )?;
        write_json(
            &dir.join("generation_config.json"),
            &json!({"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}),
        )?;
        let tok_path = dir.join("tokenizer.json");
        self.tokenizer()
            .save(&tok_path, false)
            .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
        let text = |id: Option<u32>| id.and_then(|i| self.tokenizer().id_to_token(i));
        let mut tok_cfg = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": text(bos),
            "eos_token": text(eos),
            "pad_token": text(pad),
            "model_max_length": model.config.context_length,
            "clean_up_tokenization_spaces": false,
            "add_bos_token": false,
        });
        if let Some(t) = self.chat_template() {
            tok_cfg["chat_template"] = Json::String(t.to_string());
        }
        write_json(&dir.join("tokenizer_config.json"), &tok_cfg)
    }

    /// The padding id written into the checkpoint. `transformers` finds a
    /// sequence classifier's last token as the last one that is not padding,
    /// so a reward model whose pad equals EOS (SmolLM2) would be read one
    /// token early there; it gets a special token that never appears in
    /// text instead, when the vocabulary has one.
    fn pad_for(&self, head: Head) -> Option<u32> {
        let info = self.info();
        let eos = info.eos.as_ref().map(|t| t.id);
        let pad = info.pad.as_ref().map(|t| t.id).or(eos);
        if head == Head::CausalLm || pad != eos {
            return pad;
        }
        let bos = info.bos.as_ref().map(|t| t.id);
        ["<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<unk>"]
            .iter()
            .filter_map(|t| self.tokenizer().token_to_id(t))
            .find(|&id| Some(id) != eos && Some(id) != bos)
            .or(pad)
    }

    fn hf_config(&self, head: Head, bos: Option<u32>, eos: Option<u32>, pad: Option<u32>) -> Json {
        let c = &self.model().config;
        let suffix = match head {
            Head::CausalLm => "ForCausalLM",
            Head::Reward => "ForSequenceClassification",
        };
        let mut cfg = match c.arch {
            Arch::Llama => {
                // Qwen2 is the Llama variant with q/k/v biases (and none on o_proj).
                let (model_type, class) = if c.qkv_bias {
                    ("qwen2", "Qwen2")
                } else {
                    ("llama", "Llama")
                };
                json!({
                    "architectures": [format!("{class}{suffix}")],
                    "model_type": model_type,
                    "vocab_size": c.vocab_size,
                    "hidden_size": c.hidden_size,
                    "intermediate_size": c.intermediate_size,
                    "num_hidden_layers": c.n_layers,
                    "num_attention_heads": c.n_heads,
                    "num_key_value_heads": c.n_kv_heads,
                    "head_dim": c.head_dim,
                    "max_position_embeddings": c.context_length,
                    "rms_norm_eps": c.norm_eps,
                    "rope_theta": c.rope_theta,
                    "hidden_act": "silu",
                    "attention_bias": false,
                    "mlp_bias": false,
                    "tie_word_embeddings": c.tie_embeddings,
                    "initializer_range": 0.02,
                })
            }
            Arch::Gpt2 => json!({
                "architectures": [format!("GPT2{}", if head == Head::CausalLm { "LMHeadModel" } else { suffix })],
                "model_type": "gpt2",
                "vocab_size": c.vocab_size,
                "n_embd": c.hidden_size,
                "n_inner": c.intermediate_size,
                "n_layer": c.n_layers,
                "n_head": c.n_heads,
                "n_positions": c.context_length,
                "n_ctx": c.context_length,
                "layer_norm_epsilon": c.norm_eps,
                "activation_function": "gelu_new",
                "tie_word_embeddings": true,
                "initializer_range": 0.02,
            }),
        };
        cfg["torch_dtype"] = json!("float32");
        cfg["bos_token_id"] = json!(bos);
        cfg["eos_token_id"] = json!(eos);
        cfg["pad_token_id"] = json!(pad);
        if head == Head::Reward {
            cfg["num_labels"] = json!(1);
            cfg["id2label"] = json!({"0": "LABEL_0"});
            cfg["label2id"] = json!({"LABEL_0": 0});
        }
        cfg
    }
}
