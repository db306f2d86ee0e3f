//! Oracle tests: the default model (SmolLM2-135M-Instruct Q4_1 GGUF) against
//! reference outputs of HF transformers in `../shared/oracle/*.json`.
//! The model must be present (env `PAIRWISE_DEFAULT_MODEL` or the cache path):
//! these tests fail, never skip, when it is missing.

use domain::Message;
use engine::{Engine, GenerateRequest, LoadOptions, PromptInput};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

fn oracle_dir() -> PathBuf {
    match std::env::var_os("PAIRWISE_ORACLE_DIR") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/oracle"),
    }
}

fn oracle(name: &str) -> Value {
    let p = oracle_dir().join(name);
    let s = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("oracle file {} missing: {e}", p.display()));
    serde_json::from_str(&s).expect("oracle JSON")
}

fn engine() -> std::sync::MutexGuard<'static, Engine> {
    static E: OnceLock<Mutex<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        let path = engine::default_model_path();
        assert!(
            path.exists(),
            "default model missing at {} (run scripts/fetch-model.sh or set PAIRWISE_DEFAULT_MODEL)",
            path.display()
        );
        let opts = LoadOptions {
            device: engine::DeviceChoice::Cpu,
            threads: Some(2),
            ..Default::default()
        };
        Mutex::new(Engine::load(&path, &opts).expect("load default model"))
    })
    .lock()
    .unwrap_or_else(|p| p.into_inner())
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("float array")
        .iter()
        .map(|x| x.as_f64().expect("float") as f32)
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol || (a - b).abs() <= tol * b.abs()
}

#[test]
fn model_info_matches_known_facts() {
    let e = engine();
    let i = e.info();
    assert_eq!(i.architecture, "llama");
    assert_eq!(i.n_layers, 30);
    assert_eq!(i.hidden_size, 576);
    assert_eq!(i.intermediate_size, 1536);
    assert_eq!((i.n_heads, i.n_kv_heads, i.head_dim), (9, 3, 64));
    assert_eq!(i.vocab_size, 49152);
    assert_eq!(i.rope_theta, 100000.0);
    assert!(i.tie_embeddings && !i.qkv_bias);
    assert_eq!(
        i.bos.as_ref().map(|t| (t.id, t.text.as_str())),
        Some((1, "<|im_start|>"))
    );
    assert_eq!(
        i.eos.as_ref().map(|t| (t.id, t.text.as_str())),
        Some((2, "<|im_end|>"))
    );
    assert_eq!(i.pad.as_ref().map(|t| t.id), Some(2));
    assert!(i.has_chat_template);
    assert_eq!(i.parameters, 134_515_008);
    serde_json::to_string(&i).expect("serialisable");
}

#[test]
fn tokenizer_matches_oracle() {
    let e = engine();
    let o = oracle("tokens.json");
    for p in o["prompts"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let text = p["text"].as_str().unwrap();
        assert_eq!(
            e.encode(text).unwrap(),
            ids(&p["raw_ids"]),
            "raw ids of {name}"
        );
        let msgs = vec![Message {
            role: "user".into(),
            content: text.into(),
        }];
        let chat = e.apply_chat_template(&msgs, true).unwrap();
        assert_eq!(
            chat,
            p["chat_text"].as_str().unwrap(),
            "chat text of {name}"
        );
        assert_eq!(
            e.encode(&chat).unwrap(),
            ids(&p["chat_ids"]),
            "chat ids of {name}"
        );
        if p["raw_decode_roundtrip_ok"].as_bool() == Some(true) && !text.contains("<|im_end|>") {
            assert_eq!(
                e.decode(&ids(&p["raw_ids"])).unwrap(),
                text,
                "decode of {name}"
            );
        }
    }
}

#[test]
fn logits_and_logprobs_match_oracle() {
    let e = engine();
    let o = oracle("logits.json");
    let seqs = o["sequences"].as_array().unwrap();
    let mut all = Vec::new();
    let (mut worst_logit, mut worst_mean) = (0f64, 0f64);
    for s in seqs {
        let name = s["name"].as_str().unwrap();
        let input = ids(&s["input_ids"]);
        let logits = e.logits(&input).unwrap();
        let last: Vec<f32> = Vec::<f32>::try_from(logits.get(input.len() as i64 - 1)).unwrap();
        let mut order: Vec<usize> = (0..last.len()).collect();
        order.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        let top5: Vec<u32> = order[..5].iter().map(|&i| i as u32).collect();
        assert_eq!(top5, ids(&s["top5_ids"]), "top-5 ids of {name}");
        for (k, want) in f32s(&s["top5_logits"]).iter().enumerate() {
            let got = last[order[k]];
            worst_logit = worst_logit.max((got as f64 - *want as f64).abs());
            assert!(
                close(got as f64, *want as f64, 1e-3),
                "{name}: top-{k} logit {got} vs oracle {want}"
            );
        }
        let lse = logits
            .get(input.len() as i64 - 1)
            .logsumexp([0], false)
            .double_value(&[]);
        assert!(
            close(lse, s["last_logsumexp"].as_f64().unwrap(), 1e-3),
            "{name}: logsumexp {lse}"
        );

        let score = &e.score(std::slice::from_ref(&input)).unwrap()[0];
        let want_mean = s["mean_logprob"].as_f64().unwrap();
        worst_mean = worst_mean.max((score.mean_logprob - want_mean).abs());
        assert!(
            (score.mean_logprob - want_mean).abs() < 1e-4,
            "{name}: mean log-prob {} vs oracle {want_mean}",
            score.mean_logprob
        );
        for (t, (g, w)) in score
            .token_logprobs
            .iter()
            .zip(f32s(&s["token_logprobs"]))
            .enumerate()
        {
            assert!(
                close(*g as f64, w as f64, 1e-3),
                "{name}: token {t} log-prob {g} vs {w}"
            );
        }
        all.push(input);
    }
    eprintln!("max |top-5 logit - oracle| = {worst_logit:.2e}, max |mean log-prob - oracle| = {worst_mean:.2e}");
    // Right-padded batch with an attention mask gives the same.
    let batched = e.score(&all).unwrap();
    let want = f32s(&o["batched_right_padded"]["mean_logprob"]);
    for (i, (b, w)) in batched.iter().zip(want).enumerate() {
        assert!(
            (b.mean_logprob - w as f64).abs() < 1e-4,
            "batched seq {i}: {} vs oracle {w}",
            b.mean_logprob
        );
    }
}

#[test]
fn greedy_matches_oracle_with_one_and_two_candidates() {
    let e = engine();
    let o = oracle("greedy.json");
    for p in o["prompts"].as_array().unwrap() {
        let prompt = p["prompt"].as_str().unwrap();
        let msgs = vec![Message {
            role: "user".into(),
            content: prompt.into(),
        }];
        assert_eq!(
            e.prompt_ids(&PromptInput::Chat(msgs.clone())).unwrap(),
            ids(&p["prompt_ids"]),
            "prompt ids of {prompt:?}"
        );
        let want = ids(&p["new_ids"]);
        for n in [1, 2] {
            let out = e
                .generate(&GenerateRequest {
                    prompt: PromptInput::Chat(msgs.clone()),
                    n,
                    max_new_tokens: 48,
                    temperature: 0.0,
                    top_k: None,
                    top_p: None,
                    repetition_penalty: None,
                    seed: Some(0),
                    stop: vec![],
                })
                .unwrap();
            assert_eq!(out.len(), n);
            for c in &out {
                assert_eq!(c.token_ids, want, "greedy ids for {prompt:?} (n={n})");
                assert_eq!(c.text, p["text"].as_str().unwrap());
                let stopped = p["stopped_on_eos"].as_bool().unwrap();
                assert_eq!(
                    c.finish_reason.as_str(),
                    if stopped { "stop" } else { "length" }
                );
                assert_eq!(c.n_tokens, want.len());
            }
        }
    }
}
