//! The RLHF loop end to end on a real database and the real default model (SmolLM2-135M):
//! label a campaign, export it, train a reward model and a DPO fine-tune as jobs on the
//! export (access control, validation, cancel), find the DPO model registered with the base
//! as its parent, and generate a "new vs old" campaign from both.

use domain::Role;
use serde_json::{json, Value};
use store::PgPool;
use tests::{campaign_with_items, spawn, user, Api};

fn default_model() -> String {
    std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)")
}

async fn export(api: &Api, campaign: &str, format: &str, file_type: &str) -> String {
    let (status, body) = api
        .post(
            "/api/v1/exports",
            json!({"campaigns": [campaign], "format": format, "file_type": file_type}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(api.wait_export(&id).await["status"], "done");
    id
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn reward_and_dpo_jobs_on_an_export_close_the_loop(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let other = Api::new(&server, &user(&pool, "other@x", Role::Researcher).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let (status, base) = admin
        .post(
            "/api/v1/models",
            json!({"name": "smol", "path": default_model()}),
        )
        .await;
    assert_eq!(status, 201, "{base}");

    // Six prompts; the labeler always prefers the polite answer.
    let lines: Vec<Value> = (0..6)
        .map(|i| {
            json!({"prompt": format!("Greet guest {i}."),
                        "responses": [format!("Hello, welcome {i}!"), format!("Go away {i}.")]})
        })
        .collect();
    let campaign =
        campaign_with_items(&admin, json!({"name": "Greetings", "overlap": 1}), &lines).await;
    admin.add_member(&campaign, "lab@x", "labeler").await;
    admin.add_member(&campaign, "res@x", "researcher").await;
    loop {
        let (status, item) = labeler
            .get(&format!("/api/v1/campaigns/{campaign}/next"))
            .await;
        if status == 204 {
            break;
        }
        let first = item["responses"][0]["text"].as_str().unwrap();
        let choice = if first.starts_with("Hello") { "a" } else { "b" };
        let assignment = item["assignment_id"].as_str().unwrap();
        let (status, ack) = labeler
            .post(
                &format!("/api/v1/assignments/{assignment}/judgment"),
                json!({"choice": choice, "client_request_id": assignment}),
            )
            .await;
        assert_eq!(status, 201, "{ack}");
    }
    let trl = export(&researcher, &campaign, "trl", "jsonl").await;
    // The reward model trains on conversational Parquet (chat template, Parquet reader).
    let conversational = export(&researcher, &campaign, "trl-conversational", "parquet").await;
    let raw = export(&researcher, &campaign, "raw", "jsonl").await;

    let small =
        json!({"max_steps": 2, "batch_size": 2, "max_length": 64, "eval_split": 0.3, "lr": 1e-5});
    let start = |api: &Api, export: &str, body: Value| {
        let api = api.clone();
        let path = format!("/api/v1/exports/{export}/train");
        async move { api.post(&path, body).await }
    };
    // Who may train, and on what.
    let (status, _) = start(&labeler, &trl, json!({"kind": "dpo"})).await;
    assert!(status == 403 || status == 404, "labeler got {status}");
    let (status, _) = start(&other, &trl, json!({"kind": "dpo"})).await;
    assert_eq!(status, 404, "another researcher's export is not found");
    let (status, body) = start(&researcher, &raw, json!({"kind": "dpo"})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = start(
        &researcher,
        &trl,
        json!({"kind": "dpo", "settings": {"lr": 0}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = start(
        &researcher,
        &trl,
        json!({"kind": "reward", "settings": {"beta": 0.1}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // Settings the base model cannot train with are refused before they are queued: over
    // its context length (SmolLM2 reads 8,192 tokens), or more memory than any host has
    // (a million-token micro-batch with every activation kept).
    let (status, body) = start(
        &researcher,
        &trl,
        json!({"kind": "dpo", "settings": {"max_length": 32768, "batch_size": 1024, "epochs": 100}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("context length of 8192"),
        "{body}"
    );
    let (status, body) = start(
        &researcher,
        &trl,
        json!({"kind": "reward", "settings": {
            "max_length": 8192, "max_batch_tokens": 1048576, "gradient_checkpointing": false
        }}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("GiB") && message.contains("turn gradient_checkpointing on"),
        "{body}"
    );

    let (status, body) = start(&researcher, &trl, json!({"kind": "dpo", "settings": small})).await;
    assert_eq!(status, 202, "{body}");
    let dpo = body["id"].as_str().unwrap().to_string();
    let (status, body) = start(
        &researcher,
        &conversational,
        json!({"kind": "reward", "settings": small}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let reward = body["id"].as_str().unwrap().to_string();
    let (status, body) = start(&researcher, &trl, json!({"kind": "dpo"})).await;
    assert_eq!(status, 202, "{body}");
    let cancelled = body["id"].as_str().unwrap().to_string();
    let (status, body) = researcher
        .post(&format!("/api/v1/training/{cancelled}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (status, _) = other.get(&format!("/api/v1/training/{dpo}")).await;
    assert_eq!(status, 404);

    let trained =
        server::workers::training::drain(&pool, &server.worker_files("trainer"), "trainer")
            .await
            .unwrap();
    assert_eq!(trained, 2, "the cancelled run is not trained");

    let (status, run) = researcher.get(&format!("/api/v1/training/{dpo}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "done", "{run}");
    assert_eq!(run["step"], 2);
    assert_eq!(run["total_steps"], 2);
    assert_eq!(
        (run["train_pairs"].as_u64(), run["eval_pairs"].as_u64()),
        (Some(4), Some(2))
    );
    let points = run["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    // Step 0 of DPO: the policy is the reference.
    let first_loss = points[0]["loss"].as_f64().unwrap();
    assert!(
        (first_loss - std::f64::consts::LN_2).abs() < 1e-4,
        "{first_loss}"
    );
    assert_eq!(run["eval"].as_array().unwrap().len(), 1);
    let model_name = run["model_name"].as_str().unwrap().to_string();
    let out = run["output_dir"].as_str().unwrap().to_string();
    assert!(std::path::Path::new(&out)
        .join("model.safetensors")
        .exists());
    assert!(std::path::Path::new(&out).join("metrics.json").exists());

    let (_, models) = admin.get("/api/v1/models").await;
    let registered = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model_name.as_str())
        .unwrap_or_else(|| panic!("{model_name} is not registered: {models}"))
        .clone();
    assert_eq!(registered["parent_id"], base["id"]);
    assert_eq!(registered["format"], "hf");

    let (_, run) = researcher.get(&format!("/api/v1/training/{reward}")).await;
    assert_eq!(run["status"], "done", "{run}");
    assert!(
        run["model_name"].is_null(),
        "reward models are not generators"
    );
    assert!(run["points"][0]["accuracy"].is_number());
    let config: Value = serde_json::from_slice(
        &std::fs::read(
            std::path::Path::new(run["output_dir"].as_str().unwrap()).join("config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    let (_, list) = researcher.get("/api/v1/training").await;
    assert_eq!(list.as_array().unwrap().len(), 3);

    // New vs old: a campaign generated by the DPO model and its base, one candidate each.
    let versus =
        campaign_with_items(&admin, json!({"name": "New vs old", "overlap": 1}), &[]).await;
    let (status, body) = admin
        .post_text(
            &format!("/api/v1/campaigns/{versus}/prompts"),
            "\"Greet the new guest.\"\n",
            "application/x-ndjson",
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, job) = admin
        .post(
            &format!("/api/v1/campaigns/{versus}/generate"),
            json!({"models": ["smol", model_name], "max_new_tokens": 3, "seed": 1}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        server::workers::generation::drain(&pool, &server.worker_files("gen"), "gen")
            .await
            .unwrap(),
        1
    );
    let used: Vec<String> = sqlx::query_scalar(
        "SELECT c.metadata->>'model' FROM candidates c JOIN prompts p ON p.id = c.prompt_id
         WHERE p.campaign_id = $1::uuid ORDER BY 1",
    )
    .bind(&versus)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected = vec!["smol".to_string(), model_name];
    expected.sort();
    assert_eq!(used, expected);
}
