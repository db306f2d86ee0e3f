//! Training benchmark (`make bench-train`): DPO or reward-model pairs/s on a preference file,
//! and the first batch's figures (the file's first `--batch` rows, unshuffled) for comparison
//! with TRL. Prints one JSON line. Also writes, for the peer, the base model as a Hugging
//! Face directory (`--peer-dir/base`) and the reward model with its initial head (`rm-init`),
//! so both sides start from identical weights and tokenize identically.
//!
//! `cargo run --release -p engine --example bench_train -- --kind dpo|reward --data FILE
//!  --peer-dir DIR [--model PATH] [--steps 6] [--batch 4] [--max-length 128] [--threads 2]`

use engine::train::{self, data, dpo, reward, Control, TrainConfig};
use engine::{DeviceChoice, Head};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model = engine::default_model_path();
    let (mut kind, mut file, mut peer) = (String::from("dpo"), PathBuf::new(), PathBuf::new());
    let (mut steps, mut batch, mut max_length, mut threads) = (6usize, 4usize, 128usize, 2usize);
    let mut bf16 = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--kind" => kind = val()?,
            "--data" => file = val()?.into(),
            "--peer-dir" => peer = val()?.into(),
            "--model" => model = val()?.into(),
            "--steps" => steps = val()?.parse()?,
            "--batch" => batch = val()?.parse()?,
            "--max-length" => max_length = val()?.parse()?,
            "--threads" => threads = val()?.parse()?,
            "--bf16" => bf16 = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut engine = train::load_for_training(&model, DeviceChoice::Cpu, Some(threads))?;
    let prefs = data::read_preferences(&[file])?;
    let first: Vec<data::TokenizedPair> = prefs.pairs[..batch]
        .iter()
        .map(|p| data::tokenize(&engine, p))
        .collect::<Result<_, _>>()?;
    let cfg = TrainConfig {
        batch_size: batch,
        max_length,
        max_steps: Some(steps),
        eval_split: 0.0,
        lr: 1e-6,
        bf16,
        // At 128 tokens the activations are small; the figures compare plain backward
        // passes (TRL's f32 run has no checkpointing either).
        gradient_checkpointing: false,
        ..TrainConfig::default()
    };
    let out = std::env::temp_dir().join(format!("pairwise-bench-train-{}", std::process::id()));
    let mut quiet = |_: train::Event| Control::Continue(());
    let name = if bf16 {
        "Pairwise (tch, bf16 compute + f32 weights)"
    } else {
        "Pairwise (tch, f32)"
    };
    let mut row = serde_json::json!({"impl": name, "kind": kind, "batch": batch,
                                     "max_length": max_length, "steps": steps, "threads": threads});
    match kind.as_str() {
        "dpo" => {
            engine.save_hf(&peer.join("base"), Head::CausalLm)?;
            let refs: Vec<&data::TokenizedPair> = first.iter().collect();
            let (logps, _) = {
                let _g = tch::no_grad_guard();
                dpo::batch_logps(engine.model(), &refs, false)?
            };
            let mean = |t: &tch::Tensor| t.mean(tch::Kind::Float).double_value(&[]);
            row["first_logps_chosen"] = mean(&logps.chosen).into();
            row["first_logps_rejected"] = mean(&logps.rejected).into();
            let settings = dpo::DpoConfig::default();
            let m = dpo::train(
                &mut engine,
                None,
                &prefs,
                &settings,
                &cfg,
                &out,
                "bench",
                &mut quiet,
            )?;
            row["first_loss"] = m.steps[0].values["loss"].into();
            row["pairs_per_s"] = m.summary["train_pairs_per_second"].into();
        }
        "reward" => {
            tch::manual_seed(cfg.seed as i64);
            engine.model_mut().init_score_head()?;
            engine.save_hf(&peer.join("rm-init"), Head::Reward)?;
            let full: Vec<(Vec<u32>, Vec<u32>)> = first
                .iter()
                .map(|p| {
                    let join = |c: &[u32]| p.prompt.iter().chain(c).copied().collect::<Vec<u32>>();
                    (join(&p.chosen), join(&p.rejected))
                })
                .collect();
            let chosen: Vec<&[u32]> = full.iter().map(|(c, _)| c.as_slice()).collect();
            let rejected: Vec<&[u32]> = full.iter().map(|(_, r)| r.as_slice()).collect();
            let figures = {
                let _g = tch::no_grad_guard();
                reward::comparison_loss(
                    engine.model(),
                    &chosen,
                    &rejected,
                    &vec![0.0; batch],
                    &reward::RewardConfig::default(),
                    false,
                )?
                .figures
            };
            row["first_batch_loss"] = figures["loss"].into();
            let m = reward::train(
                &mut engine,
                &prefs,
                &reward::RewardConfig::default(),
                &TrainConfig { lr: 1e-5, ..cfg },
                &out,
                "bench",
                &mut quiet,
            )?;
            row["first_loss"] = m.steps[0].values["loss"].into();
            row["pairs_per_s"] = m.summary["train_pairs_per_second"].into();
        }
        other => return Err(format!("unknown kind {other} (dpo, reward)").into()),
    }
    row["peak_rss_mb"] = engine::io::peak_rss_mib().unwrap_or(0.0).into();
    let _ = std::fs::remove_dir_all(&out);
    println!("{row}");
    Ok(())
}
