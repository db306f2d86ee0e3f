//! Generation benchmark: prints one JSON line per configuration.
//!
//! `cargo run --release -p engine --example bench_generate -- [--model PATH]
//!  [--k 2] [--new 128] [--threads 2] [--runs 3]`

use domain::Message;
use engine::{Engine, GenerateOptions, GenerateRequest, LoadOptions, PromptInput};
use std::time::Instant;

pub const PROMPT: &str = "Tell me a story about a robot.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = engine::default_model_path();
    let (mut k, mut new, mut threads, mut runs) = (2usize, 128usize, 2usize, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = val()?.into(),
            "--k" => k = val()?.parse()?,
            "--new" => new = val()?.parse()?,
            "--threads" => threads = val()?.parse()?,
            "--runs" => runs = val()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let t = Instant::now();
    let engine = Engine::load(
        &model,
        &LoadOptions {
            device: engine::DeviceChoice::Cpu,
            threads: Some(threads),
            ..Default::default()
        },
    )?;
    let load_s = t.elapsed().as_secs_f64();
    let req = GenerateRequest {
        prompt: PromptInput::Chat(vec![Message {
            role: "user".into(),
            content: PROMPT.into(),
        }]),
        n: k,
        max_new_tokens: new,
        temperature: 0.7,
        top_k: None,
        top_p: Some(0.9),
        repetition_penalty: None,
        seed: Some(1),
        stop: vec![],
    };
    let prompt_tokens = engine.prompt_ids(&req.prompt)?.len();
    let opts = GenerateOptions { ignore_eos: true };
    engine.generate_with_options(&req, &opts)?; // warm-up
    let mut tps = Vec::new();
    let mut ttft = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = engine.generate_with_options(&req, &opts)?;
        let secs = t.elapsed().as_secs_f64();
        let toks: usize = out.iter().map(|c| c.n_tokens).sum();
        tps.push(toks as f64 / secs);
        ttft.push(out[0].timing.prefill_ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "{{\"impl\": \"pairwise-engine (tch, f32)\", \"k\": {k}, \"prompt_tokens\": {prompt_tokens}, \"new_tokens\": {new}, \"threads\": {threads}, \"tokens_per_s\": {:.1}, \"ttft_ms\": {:.1}, \"peak_rss_mb\": {:.0}, \"load_s\": {load_s:.2}}}",
        median(&mut tps),
        median(&mut ttft),
        engine::io::peak_rss_mib().unwrap_or(0.0)
    );
    Ok(())
}
