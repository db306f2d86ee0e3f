//! Print a model's info and K sampled candidates for one chat prompt, as JSON.
//!
//! `cargo run --release -p engine --example generate -- [PROMPT] [K] [SEED]`
//! (model: `PAIRWISE_DEFAULT_MODEL` or the cache path; `MODEL=path` overrides).

use domain::Message;
use engine::{Engine, GenerateRequest, LoadOptions, PromptInput};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let path = std::env::var_os("MODEL")
        .map(Into::into)
        .unwrap_or_else(engine::default_model_path);
    let engine = Engine::load(
        &path,
        &LoadOptions {
            threads: Some(2),
            ..Default::default()
        },
    )?;
    println!("{}", serde_json::to_string_pretty(&engine.info())?);
    let out = engine.generate(&GenerateRequest {
        prompt: PromptInput::Chat(vec![Message {
            role: "user".into(),
            content: prompt,
        }]),
        n,
        max_new_tokens: 64,
        temperature: 0.7,
        top_k: None,
        top_p: Some(0.9),
        repetition_penalty: None,
        seed: Some(seed),
        stop: vec![],
    })?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
