//! `pairwise generate` and `pairwise model inspect`: the model engine from the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct GenerateArgs {
    /// A GGUF file or a Hugging Face directory (default: the bundled SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long)]
    prompt: String,
    /// Render the prompt as one user turn through the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Candidates to generate (decoded together as one batch).
    #[arg(long = "n", default_value_t = 1)]
    n: usize,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// 0 means greedy.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Makes sampling reproducible; random when omitted (and printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when the text contains this (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// auto (CUDA when present), cpu, or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    /// CPU threads for libtorch.
    #[arg(long)]
    threads: Option<usize>,
    /// One JSON object per candidate: {"text", "token_ids", "finish_reason", ...}.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Architecture, parameters, dtype, tokenizer and chat template facts of a model.
    Inspect {
        path: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn device(name: &str) -> anyhow::Result<engine::DeviceChoice> {
    Ok(match name {
        "auto" => engine::DeviceChoice::Auto,
        "cpu" => engine::DeviceChoice::Cpu,
        "cuda" => engine::DeviceChoice::Cuda(0),
        other => anyhow::bail!("unknown device {other:?} (auto, cpu or cuda)"),
    })
}

fn load(
    path: Option<PathBuf>,
    device_name: &str,
    threads: Option<usize>,
) -> anyhow::Result<engine::Engine> {
    let path = path.unwrap_or_else(engine::default_model_path);
    let options = engine::LoadOptions {
        device: device(device_name)?,
        dtype: None,
        threads,
    };
    engine::Engine::load(&path, &options).with_context(|| format!("loading {}", path.display()))
}

/// Runs on the calling thread: the CLI has nothing else to do meanwhile.
pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    if args.n == 0 {
        anyhow::bail!("--n must be at least 1");
    }
    let engine = load(args.model, &args.device, args.threads)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let prompt = if args.chat {
        engine::PromptInput::Chat(vec![domain::Message {
            role: "user".into(),
            content: args.prompt,
        }])
    } else {
        engine::PromptInput::Text(args.prompt)
    };
    let request = engine::GenerateRequest {
        prompt,
        n: args.n,
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: Some(args.top_p),
        repetition_penalty: args.repetition_penalty,
        seed: Some(seed),
        stop: args.stop,
    };
    let candidates = engine.generate(&request)?;
    for (i, c) in candidates.iter().enumerate() {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "text": c.text, "token_ids": c.token_ids, "finish_reason": c.finish_reason.as_str(),
                    "n_tokens": c.n_tokens, "seed": seed,
                })
            );
        } else {
            println!(
                "--- candidate {} ({} tokens, {})",
                i + 1,
                c.n_tokens,
                c.finish_reason.as_str()
            );
            println!("{}", c.text.trim());
        }
    }
    if let Some(t) = candidates.first().map(|c| c.timing) {
        eprintln!(
            "seed {seed} · prompt {} tokens · first token {:.0} ms · {:.1} tokens/s",
            t.prompt_tokens, t.prefill_ms, t.decode_tokens_per_s
        );
    }
    Ok(())
}

pub fn model(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Inspect { path, json } => {
            let info = load(path, "cpu", None)?.info();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            let value = serde_json::to_value(&info)?;
            if let Some(fields) = value.as_object() {
                for (key, value) in fields {
                    let shown = match value {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    println!("{key:>20}: {shown}");
                }
            }
            Ok(())
        }
    }
}
