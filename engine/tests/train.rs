//! Reward model and DPO on tiny random-weight models: the DPO losses against
//! a hand computation, step 0 (policy = reference), learning a separable toy
//! preference, a reward model learning a marker-word rule, checkpoints that
//! reload to identical outputs (all architectures), resume, and bad data.

mod common;

use common::{Arch, Quant, Tiny};
use domain::Message;
use engine::train::data::{self, Preference, PreferenceData, Turns};
use engine::train::dpo::{self, BatchLogps, DpoConfig, DpoLoss};
use engine::train::{self, reward, Control, Event, Metrics, TrainConfig};
use engine::{DeviceChoice, Engine, Head};
use std::path::{Path, PathBuf};
use tch::Tensor;

fn tiny(arch: Arch, name: &str) -> (PathBuf, Engine) {
    let dir = common::tmpdir(name);
    let model = dir.join("base");
    Tiny::new(arch, Quant::F32, 11).write_hf(&model);
    let engine = train::load_for_training(&model, DeviceChoice::Cpu, Some(2)).unwrap();
    (dir, engine)
}

fn text_pair(prompt: &str, chosen: &str, rejected: &str) -> Preference {
    Preference {
        prompt: Turns::Text(prompt.into()),
        chosen: Turns::Text(chosen.into()),
        rejected: Turns::Text(rejected.into()),
        margin: None,
        source: format!("test:{prompt}"),
    }
}

fn quiet(_: Event) -> Control {
    Control::Continue(())
}

fn ln_sigmoid(x: f64) -> f64 {
    -(1.0 + (-x).exp()).ln()
}

#[test]
fn dpo_losses_equal_a_hand_computation() {
    let pc = [-10.0f32, -12.5, -7.25, -20.0];
    let pr = [-11.0f32, -12.0, -9.5, -19.0];
    let rc = [-10.5f32, -12.0, -8.0, -21.0];
    let rr = [-10.0f32, -13.0, -9.0, -18.5];
    let nc = [3.0f32, 5.0, 2.0, 7.0];
    let nr = [4.0f32, 5.0, 6.0, 1.0];
    let t = |v: &[f32]| Tensor::from_slice(v);
    let logps = BatchLogps {
        chosen: t(&pc),
        rejected: t(&pr),
        chosen_tokens: t(&nc),
        rejected_tokens: t(&nr),
    };
    let beta = 0.2;
    let eps = 0.1;
    for (loss, smoothing) in [
        (DpoLoss::Sigmoid, 0.0),
        (DpoLoss::Sigmoid, eps),
        (DpoLoss::Hinge, 0.0),
        (DpoLoss::Ipo, 0.0),
        (DpoLoss::Robust, eps),
    ] {
        let cfg = DpoConfig {
            beta,
            loss,
            label_smoothing: smoothing,
        };
        let (value, m) = dpo::dpo_loss(&logps, &t(&rc), &t(&rr), &cfg).unwrap();
        let mut expected = 0.0;
        let (mut acc, mut margin, mut rew_c, mut rew_r) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..4 {
            let cr = (pc[i] - rc[i]) as f64;
            let rj = (pr[i] - rr[i]) as f64;
            let d = beta * (cr - rj);
            expected += match loss {
                DpoLoss::Sigmoid => -(1.0 - smoothing) * ln_sigmoid(d) - smoothing * ln_sigmoid(-d),
                DpoLoss::Hinge => (1.0 - d).max(0.0),
                DpoLoss::Ipo => {
                    let x = cr / nc[i] as f64 - rj / nr[i] as f64 - 1.0 / (2.0 * beta);
                    x * x
                }
                DpoLoss::Robust => {
                    (-(1.0 - smoothing) * ln_sigmoid(d) + smoothing * ln_sigmoid(-d))
                        / (1.0 - 2.0 * smoothing)
                }
            } / 4.0;
            acc += f64::from(u8::from(beta * cr > beta * rj)) / 4.0;
            margin += (beta * cr - beta * rj) / 4.0;
            rew_c += beta * cr / 4.0;
            rew_r += beta * rj / 4.0;
        }
        let close = |a: f64, b: f64| (a - b).abs() < 1e-5 * (1.0 + b.abs());
        assert!(close(value.double_value(&[]), expected), "{loss:?}");
        assert!(
            close(m["loss"], expected),
            "{loss:?}: {} vs {expected}",
            m["loss"]
        );
        assert!(close(m["rewards/accuracies"], acc));
        assert!(close(m["rewards/margins"], margin));
        assert!(close(m["rewards/chosen"], rew_c));
        assert!(close(m["rewards/rejected"], rew_r));
        assert!(close(
            m["logps/chosen"],
            pc.iter().map(|&x| x as f64).sum::<f64>() / 4.0
        ));
        assert!(close(
            m["logps/rejected"],
            pr.iter().map(|&x| x as f64).sum::<f64>() / 4.0
        ));
    }
    let bad = DpoConfig {
        loss: DpoLoss::Hinge,
        label_smoothing: 0.1,
        ..DpoConfig::default()
    };
    assert!(bad.validate().is_err());
}

/// Prompts and a preference any model can learn: "good" over "bad".
fn separable(n: usize) -> PreferenceData {
    PreferenceData {
        pairs: (0..n)
            .map(|i| text_pair(&format!("q{i}:"), " good", " bad"))
            .collect(),
        skipped: vec![],
    }
}

fn dpo_run(engine: &mut Engine, data: &PreferenceData, cfg: &TrainConfig, out: &Path) -> Metrics {
    dpo::train(
        engine,
        None,
        data,
        &DpoConfig::default(),
        cfg,
        out,
        "tiny",
        &mut quiet,
    )
    .unwrap()
}

#[test]
fn dpo_starts_at_ln2_and_learns_a_separable_preference() {
    let (dir, mut engine) = tiny(Arch::Llama, "dpo-learns");
    let cfg = TrainConfig {
        lr: 3e-3,
        batch_size: 4,
        epochs: 6,
        eval_split: 0.25,
        max_length: 64,
        ..TrainConfig::default()
    };
    let m = dpo_run(&mut engine, &separable(16), &cfg, &dir.join("out"));
    let first = &m.steps[0].values;
    // Step 0: the policy is the reference.
    assert!(
        (first["loss"] - std::f64::consts::LN_2).abs() < 1e-6,
        "{first:?}"
    );
    assert!(first["rewards/chosen"].abs() < 1e-6 && first["rewards/rejected"].abs() < 1e-6);
    assert_eq!(m.train_pairs, 12);
    assert_eq!(m.eval_pairs, 4);
    assert_eq!(m.steps.len(), 18);
    let last = &m.steps.last().unwrap().values;
    assert_eq!(last["rewards/accuracies"], 1.0, "{last:?}");
    assert!(last["rewards/margins"] > 0.1, "{last:?}");
    assert!(last["loss"] < first["loss"]);
    let eval = &m.eval.last().unwrap().values;
    assert_eq!(eval["rewards/accuracies"], 1.0, "{eval:?}");
    // What was written matches what was returned.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/metrics.json")).unwrap()).unwrap();
    assert_eq!(saved["steps"].as_array().unwrap().len(), 18);
    assert_eq!(saved["kind"], "dpo");
}

#[test]
fn bf16_compute_trains_the_f32_weights() {
    let (dir, mut engine) = tiny(Arch::Llama, "dpo-bf16");
    let cfg = TrainConfig {
        lr: 3e-3,
        epochs: 6,
        max_length: 64,
        bf16: true,
        ..TrainConfig::default()
    };
    let m = dpo_run(&mut engine, &separable(12), &cfg, &dir.join("out"));
    // The reference computes in bf16 too, so step 0 is still exactly the reference.
    assert!((m.steps[0].values["loss"] - std::f64::consts::LN_2).abs() < 1e-6);
    let last = &m.steps.last().unwrap().values;
    assert_eq!(last["rewards/accuracies"], 1.0, "{last:?}");
    assert_eq!(
        engine.model().kind,
        tch::Kind::Float,
        "the weights stay f32"
    );
    let saved = train::load_for_training(&dir.join("out"), DeviceChoice::Cpu, None).unwrap();
    let ids = engine.encode("q1: good").unwrap();
    assert_eq!(saved.logits(&ids).unwrap(), engine.logits(&ids).unwrap());
}

/// Every weight's gradient after `backward`, from fresh leaves (no gradient left over).
fn gradients(engine: &mut Engine, backward: impl Fn(&engine::Model)) -> Vec<Tensor> {
    for p in engine.model_mut().parameters_mut() {
        *p = p.detach().set_requires_grad(true);
    }
    backward(engine.model());
    engine
        .model_mut()
        .parameters_mut()
        .into_iter()
        .map(|p| p.grad().copy())
        .collect()
}

fn assert_same_gradients(plain: &[Tensor], recomputed: &[Tensor], what: &str) {
    assert_eq!(plain.len(), recomputed.len());
    for (i, (a, b)) in plain.iter().zip(recomputed).enumerate() {
        assert!(
            a.defined() && b.defined(),
            "{what}: weight {i} got no gradient"
        );
        let scale = a.abs().max().double_value(&[]).max(1e-6);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-5 * scale,
            "{what}: weight {i} differs by {diff} (largest {scale})"
        );
    }
}

/// Activation checkpointing changes what is kept, not what is computed: the same loss
/// gives the same gradient on every weight, with the output head read in several chunks
/// (over 256 completion positions) and rows of different lengths (padding).
#[test]
fn checkpointed_backward_gives_the_same_gradients() {
    for arch in [Arch::Llama, Arch::Gpt2] {
        let (_dir, mut engine) = tiny(arch, "checkpointing");
        let mut seed = 3u64;
        let pairs: Vec<data::TokenizedPair> = (0..4)
            .map(|i| {
                let pair = text_pair(
                    &format!("q{i}: {}", words(&mut seed, 3)),
                    &format!(" {}", words(&mut seed, 12 + 8 * i)),
                    &format!(" {}", words(&mut seed, 30)),
                );
                let mut t = data::tokenize(&engine, &pair).unwrap();
                let room = common::CTX - t.prompt.len();
                t.chosen.truncate(room);
                t.rejected.truncate(room);
                t
            })
            .collect();
        let positions: usize = pairs
            .iter()
            .map(|p| p.chosen.len() + p.rejected.len())
            .sum();
        assert!(
            positions > 256,
            "{positions} positions: one head chunk only"
        );
        let refs: Vec<&data::TokenizedPair> = pairs.iter().collect();
        let dpo_backward = |recompute: bool| {
            let refs = &refs;
            move |model: &engine::Model| {
                let (lp, pending) = dpo::batch_logps(model, refs, recompute).unwrap();
                let margin = (&lp.chosen - &lp.rejected).g_mul_scalar(0.05);
                margin.log_sigmoid().mean(tch::Kind::Float).neg().backward();
                if let Some(pending) = pending {
                    pending.backward().unwrap();
                }
            }
        };
        let plain = gradients(&mut engine, dpo_backward(false));
        let recomputed = gradients(&mut engine, dpo_backward(true));
        assert_same_gradients(&plain, &recomputed, &format!("{arch:?} DPO"));

        tch::manual_seed(1);
        engine.model_mut().init_score_head().unwrap();
        let full = |p: &data::TokenizedPair, c: &[u32]| -> Vec<u32> {
            p.prompt.iter().chain(c).copied().collect()
        };
        let chosen: Vec<Vec<u32>> = pairs.iter().map(|p| full(p, &p.chosen)).collect();
        let rejected: Vec<Vec<u32>> = pairs.iter().map(|p| full(p, &p.rejected)).collect();
        let reward_backward = |recompute: bool| {
            let (chosen, rejected) = (&chosen, &rejected);
            move |model: &engine::Model| {
                let c: Vec<&[u32]> = chosen.iter().map(Vec::as_slice).collect();
                let r: Vec<&[u32]> = rejected.iter().map(Vec::as_slice).collect();
                let margins = vec![0.0; c.len()];
                let config = reward::RewardConfig::default();
                reward::comparison_loss(model, &c, &r, &margins, &config, recompute)
                    .unwrap()
                    .backward(1.0)
                    .unwrap();
            }
        };
        let plain = gradients(&mut engine, reward_backward(false));
        let recomputed = gradients(&mut engine, reward_backward(true));
        assert_same_gradients(&plain, &recomputed, &format!("{arch:?} reward model"));
    }
}

/// Short random "words" from a fixed alphabet.
fn words(seed: &mut u64, n: usize) -> String {
    let mut out = Vec::new();
    for _ in 0..n {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 2 + (*seed >> 60) as usize % 3;
        let w: String = (0..len)
            .map(|k| (b'a' + ((*seed >> (8 * k + 8)) % 8) as u8) as char)
            .collect();
        out.push(w);
    }
    out.join(" ")
}

#[test]
fn reward_model_learns_a_marker_word_rule() {
    let (dir, mut engine) = tiny(Arch::Llama, "reward-learns");
    let mut seed = 5u64;
    let mut pairs = Vec::new();
    for i in 0..48 {
        let prompt = format!("p{i}: {}", words(&mut seed, 2));
        let plain = words(&mut seed, 3);
        let marked = format!("{} zz {}", words(&mut seed, 1), words(&mut seed, 1));
        // Two comparisons per prompt: they must share a batch.
        pairs.push(text_pair(
            &prompt,
            &format!(" {marked}"),
            &format!(" {plain}"),
        ));
        pairs.push(text_pair(
            &prompt,
            &format!(" {marked}"),
            &format!(" {}", words(&mut seed, 3)),
        ));
    }
    let data = PreferenceData {
        pairs,
        skipped: vec![],
    };
    let cfg = TrainConfig {
        lr: 2e-3,
        batch_size: 8,
        epochs: 8,
        eval_split: 0.25,
        max_length: 64,
        ..TrainConfig::default()
    };
    let out = dir.join("rm");
    let m = reward::train(
        &mut engine,
        &data,
        &reward::RewardConfig::default(),
        &cfg,
        &out,
        "tiny",
        &mut quiet,
    )
    .unwrap();
    assert_eq!((m.train_pairs, m.eval_pairs), (72, 24));
    let eval = &m.eval.last().unwrap().values;
    assert!(eval["accuracy"] >= 0.9, "held-out accuracy {eval:?}");

    // The saved reward model scores as the trained one does.
    let reloaded = train::load_for_training(&out, DeviceChoice::Cpu, None).unwrap();
    let prompt = Turns::Text("p1: ab cd".into());
    let good = Turns::Text(" ab zz cd".into());
    let bad = Turns::Text(" ab cd ef".into());
    let (a, b) = (
        engine.reward(&prompt, &good).unwrap(),
        reloaded.reward(&prompt, &good).unwrap(),
    );
    assert_eq!(a, b);
    assert!(reloaded.reward(&prompt, &good).unwrap() > reloaded.reward(&prompt, &bad).unwrap());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["num_labels"], 1);
    // Not the EOS (which is also the tiny tokenizer's pad), so transformers reads the last real token.
    assert_eq!(config["pad_token_id"], 0);
}

#[test]
fn checkpoints_reload_to_identical_logits_for_every_architecture() {
    for arch in [Arch::Llama, Arch::Qwen2, Arch::Gpt2] {
        let (dir, mut engine) = tiny(arch, &format!("reload-{arch:?}"));
        let cfg = TrainConfig {
            lr: 1e-3,
            max_steps: Some(2),
            save_steps: Some(1),
            max_length: 64,
            ..TrainConfig::default()
        };
        let out = dir.join("out");
        dpo_run(&mut engine, &separable(8), &cfg, &out);
        let ids: Vec<u32> = engine.encode("q1: good").unwrap();
        let trained = engine.logits(&ids).unwrap();
        let base = train::load_for_training(&dir.join("base"), DeviceChoice::Cpu, None).unwrap();
        let reloaded = train::load_for_training(&out, DeviceChoice::Cpu, None).unwrap();
        assert_eq!(reloaded.logits(&ids).unwrap(), trained, "{arch:?}");
        assert!(
            base.logits(&ids).unwrap() != trained,
            "{arch:?}: training changed nothing"
        );
        assert!(out.join("checkpoint-1/model.safetensors").exists());
        for f in [
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            assert!(out.join(f).exists(), "{f}");
        }
        // The chat template travels with the checkpoint.
        let chat = [Message {
            role: "user".into(),
            content: "hi".into(),
        }];
        assert_eq!(
            reloaded.apply_chat_template(&chat, true).unwrap(),
            base.apply_chat_template(&chat, true).unwrap()
        );
        assert!(base.save_hf(&dir.join("no-head"), Head::Reward).is_err());
    }
}

#[test]
fn resume_continues_from_a_checkpoint() {
    let (dir, mut engine) = tiny(Arch::Llama, "resume");
    let data = separable(8);
    let cfg = TrainConfig {
        lr: 1e-3,
        batch_size: 2,
        save_steps: Some(2),
        max_length: 64,
        ..TrainConfig::default()
    };
    let out = dir.join("first");
    let full = dpo_run(&mut engine, &data, &cfg, &out);
    assert_eq!(full.steps.len(), 4);

    let (_, mut fresh) = tiny(Arch::Llama, "resume-fresh");
    let resumed_cfg = TrainConfig {
        resume: Some(out.join("checkpoint-2")),
        ..cfg.clone()
    };
    let resumed = dpo_run(&mut fresh, &data, &resumed_cfg, &dir.join("second"));
    let steps: Vec<usize> = resumed.steps.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        vec![1, 2, 3, 4],
        "steps 1-2 come from the checkpoint"
    );
    for (a, b) in resumed.steps[..2].iter().zip(&full.steps[..2]) {
        assert!((a.values["loss"] - b.values["loss"]).abs() < 1e-12);
    }
    // Step 3 starts from the checkpoint's weights and sees the same batch, so
    // its loss (computed before the update) is the same.
    let (a, b) = (
        resumed.steps[2].values["loss"],
        full.steps[2].values["loss"],
    );
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}

#[test]
fn bad_data_gives_clear_errors_or_counted_skips() {
    let dir = common::tmpdir("bad-data");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let empty = write("empty.jsonl", "\n");
    let e = data::read_preferences(&[empty]).unwrap_err().to_string();
    assert!(e.contains("no rows"), "{e}");
    let cols = write("cols.jsonl", "{\"prompt\": \"p\", \"completion\": \"c\"}\n");
    let e = data::read_preferences(&[cols]).unwrap_err().to_string();
    assert!(e.contains("`chosen` and `rejected`"), "{e}");
    let e = data::data_files(std::slice::from_ref(&dir))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no train.jsonl"), "{e}");
    let mixed = write(
        "train.jsonl",
        "{\"prompt\": \"a\", \"chosen\": \" x\", \"rejected\": \" y\"}\n\
         {\"prompt\": \"b\", \"chosen\": null, \"rejected\": \" y\"}\n",
    );
    let d = data::read_preferences(&data::data_files(std::slice::from_ref(&dir)).unwrap()).unwrap();
    assert_eq!(d.pairs.len(), 1);
    assert_eq!(d.skipped.len(), 1);
    assert_eq!(d.skipped[0].source, format!("{}:2", mixed.display()));

    // Gzipped JSONL reads the same.
    let gz = dir.join("more.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut enc, std::fs::read(&mixed).unwrap().as_slice()).unwrap();
    enc.finish().unwrap();
    let from_gz = data::read_preferences(&[gz]).unwrap();
    assert_eq!(from_gz.pairs[0].chosen, d.pairs[0].chosen);
    assert_eq!((from_gz.pairs.len(), from_gz.skipped.len()), (1, 1));

    // A prompt longer than the max length is a counted skip, not a silent drop.
    let (_, mut engine) = tiny(Arch::Llama, "too-long");
    let mut data = separable(4);
    data.pairs
        .push(text_pair(&"long prompt ".repeat(20), " good", " bad"));
    let cfg = TrainConfig {
        max_length: 32,
        max_steps: Some(1),
        ..TrainConfig::default()
    };
    let m = dpo_run(&mut engine, &data, &cfg, &dir.join("out"));
    assert_eq!(m.train_pairs, 4);
    assert_eq!(m.skipped.len(), 1);
    assert!(
        m.skipped[0].reason.contains("max length"),
        "{:?}",
        m.skipped
    );
}
