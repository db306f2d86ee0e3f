//! `pairwise dpo`, `pairwise train-reward` and `pairwise reward` from the command line, on the
//! real default model (one short step each), and a clear error for bad data.

use std::path::Path;
use std::process::{Command, Output};

fn pairwise(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pairwise"))
        .args(args)
        .env("PAIRWISE_LOG", "warn")
        .output()
        .expect("run pairwise")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn dpo_train_reward_and_reward_from_the_command_line() {
    // Removed when the test ends, pass or fail: each checkpoint is ~0.5 GB.
    let scratch = tempfile::tempdir().expect("scratch folder");
    let dir = scratch.path();
    let data = dir.join("prefs.jsonl");
    let rows: String = (0..4)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"prompt": format!("Greet guest {i}."),
                                   "chosen": format!(" Hello and welcome, guest {i}!"),
                                   "rejected": format!(" Go away, {i}.")})
            )
        })
        .collect();
    std::fs::write(&data, rows).expect("write data");
    let small = [
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--max-length",
        "48",
        "--eval-split",
        "0",
        "--device",
        "cpu",
    ];

    let out = dir.join("dpo");
    let mut args = vec!["dpo", "--data", s(&data), "--out", s(&out), "--json"];
    args.extend(small);
    let run = pairwise(&args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let step: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON step line");
    assert_eq!(step["step"], 1);
    assert!(
        (step["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-4,
        "{step}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(s(&out)),
        "the output folder is printed last"
    );
    assert!(
        text(&run.stderr).contains("peak memory"),
        "{}",
        text(&run.stderr)
    );
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "metrics.json",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }

    let rm = dir.join("rm");
    let mut args = vec!["train-reward", "--data", s(&data), "--out", s(&rm)];
    args.extend(small);
    let run = pairwise(&args);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let scored = pairwise(&[
        "reward",
        "--model",
        s(&rm),
        "--prompt",
        "Greet guest 9.",
        "--response",
        " Hello!",
        "--device",
        "cpu",
    ]);
    assert!(scored.status.success(), "{}", text(&scored.stderr));
    let reward: f32 = text(&scored.stdout).trim().parse().expect("a number");
    assert!(reward.is_finite());

    // Bad data: a clear error, no panic.
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").expect("write");
    let run = pairwise(&["dpo", "--data", s(&empty), "--out", s(&dir.join("x"))]);
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("holds no rows"),
        "{}",
        text(&run.stderr)
    );
    let run = pairwise(&[
        "dpo",
        "--data",
        s(&data),
        "--out",
        s(&dir.join("y")),
        "--loss",
        "nope",
    ]);
    assert!(!run.status.success());
    assert!(
        text(&run.stderr).contains("unknown DPO loss"),
        "{}",
        text(&run.stderr)
    );
}
