//! Generation jobs end to end: prompts in, the real engine on the default SmolLM2-135M model
//! (a few tokens per candidate), candidates and items out; racing workers, a dead worker, a
//! cancelled job and a model that does not load.

use domain::Role;
use serde_json::{json, Value};
use store::PgPool;
use tests::{spawn, user, Api, TestServer};
use uuid::Uuid;

struct World {
    server: TestServer,
    admin: Api,
    labeler: Api,
    campaign: String,
}

fn default_model() -> String {
    std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)")
}

async fn world(pool: PgPool, prompts: usize) -> World {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let (status, model) = admin
        .post(
            "/api/v1/models",
            json!({"name": "smol", "path": default_model(), "notes": "base"}),
        )
        .await;
    assert_eq!(status, 201, "{model}");
    let (status, campaign) = admin
        .post(
            "/api/v1/campaigns",
            json!({"name": "Generated", "overlap": 1}),
        )
        .await;
    assert_eq!(status, 201);
    let campaign = campaign["id"].as_str().unwrap().to_string();
    let body: String = (0..prompts)
        .map(|i| {
            if i % 2 == 0 {
                format!("\"Name a colour, number {i}.\"\n")
            } else {
                format!("{{\"prompt\": [{{\"role\": \"user\", \"content\": \"Say hi {i}\"}}], \"id\": {i}}}\n")
            }
        })
        .collect();
    let (status, report) = add_prompts(&admin, &campaign, body).await;
    assert_eq!(status, 201, "{report}");
    let (status, _) = admin
        .post(
            &format!("/api/v1/campaigns/{campaign}/members"),
            json!({"email": "lab@x", "role": "labeler"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = admin
        .patch(
            &format!("/api/v1/campaigns/{campaign}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, 200);
    World {
        server,
        admin,
        labeler,
        campaign,
    }
}

async fn add_prompts(admin: &Api, campaign: &str, jsonl: impl Into<String>) -> (u16, Value) {
    admin
        .post_text(
            &format!("/api/v1/campaigns/{campaign}/prompts"),
            jsonl,
            "application/x-ndjson",
        )
        .await
}

async fn generate(w: &World, body: Value) -> String {
    let (status, job) = w
        .admin
        .post(&format!("/api/v1/campaigns/{}/generate", w.campaign), body)
        .await;
    assert_eq!(status, 202, "{job}");
    job["job_id"].as_str().unwrap().to_string()
}

async fn job(w: &World, id: &str) -> Value {
    let (status, job) = w.admin.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

/// (prompt id, candidates) for every prompt of the campaign.
async fn candidates_per_prompt(pool: &PgPool, campaign: &str) -> Vec<(Uuid, i64)> {
    sqlx::query_as(
        "SELECT p.id, count(c.id) FROM prompts p LEFT JOIN candidates c ON c.prompt_id = p.id
         WHERE p.campaign_id = $1::uuid GROUP BY p.id ORDER BY p.id",
    )
    .bind(campaign)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn settings() -> Value {
    json!({"model": "smol", "k": 2, "max_new_tokens": 3, "temperature": 0.8, "seed": 7, "batch_size": 2})
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_job_generates_k_candidates_per_prompt_for_labeling(pool: PgPool) {
    let w = world(pool.clone(), 3).await;
    // Nothing to label before generation.
    let (status, _) = w
        .labeler
        .get(&format!("/api/v1/campaigns/{}/next", w.campaign))
        .await;
    assert_eq!(status, 204);
    let id = generate(&w, settings()).await;
    assert_eq!(job(&w, &id).await["total"], 3);
    let stored = server::workers::generation::drain(&pool, &w.server.worker_files("w1"), "w1")
        .await
        .unwrap();
    assert_eq!(stored, 3);
    let record = job(&w, &id).await;
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(record["done"], 3);
    assert!(record["tokens"].as_i64().unwrap() > 0);
    assert!(record["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(candidates_per_prompt(&pool, &w.campaign)
        .await
        .iter()
        .all(|(_, n)| *n == 2));
    // Each candidate records what made it.
    let metadata: Vec<Value> = sqlx::query_scalar(
        "SELECT c.metadata FROM candidates c JOIN prompts p ON p.id = c.prompt_id
         WHERE p.campaign_id = $1::uuid",
    )
    .bind(&w.campaign)
    .fetch_all(&pool)
    .await
    .unwrap();
    for m in &metadata {
        assert_eq!(m["model"], "smol");
        assert_eq!(m["temperature"], json!(0.8));
        assert!(m["tokens"].as_u64().unwrap() <= 3);
        assert!(m["seed"].is_u64());
        assert!(["stop", "length"].contains(&m["finish_reason"].as_str().unwrap()));
        assert!(m["generation_ms"].as_f64().unwrap() > 0.0);
    }
    // The labeler now gets the generated pairs, with nothing that names the model.
    let (status, item) = w
        .labeler
        .get(&format!("/api/v1/campaigns/{}/next", w.campaign))
        .await;
    assert_eq!(status, 200, "{item}");
    assert_eq!(item["responses"].as_array().unwrap().len(), 2);
    assert!(!item.to_string().contains("smol"), "{item}");
    // With every prompt generated there is nothing left to queue.
    let (status, body) = w
        .admin
        .post(
            &format!("/api/v1/campaigns/{}/generate", w.campaign),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // New prompts, then an empty body: the campaign's saved settings are used.
    let (status, report) = add_prompts(&w.admin, &w.campaign, "\"One more?\"\n").await;
    assert_eq!(status, 201, "{report}");
    let (status, body) = w
        .admin
        .post(
            &format!("/api/v1/campaigns/{}/generate", w.campaign),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let record = job(&w, body["job_id"].as_str().unwrap()).await;
    assert_eq!(record["total"], 1);
    assert_eq!(record["payload"]["spec"]["max_new_tokens"], 3);
    assert_eq!(record["payload"]["seed"], 7);
    // Bad prompt lines are reported by line and nothing is added.
    let (status, report) = add_prompts(&w.admin, &w.campaign, "\"fine\"\n{\"prompt\": 3}\n").await;
    assert_eq!(status, 422);
    assert_eq!(report["errors"][0]["line"], 2, "{report}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn racing_workers_share_a_job_without_duplicates(pool: PgPool) {
    let w = world(pool.clone(), 6).await;
    let mut body = settings();
    body["batch_size"] = json!(1);
    let id = generate(&w, body).await;
    let (files1, files2) = (w.server.worker_files("w1"), w.server.worker_files("w2"));
    let (a, b) = tokio::join!(
        server::workers::generation::drain(&pool, &files1, "w1"),
        server::workers::generation::drain(&pool, &files2, "w2")
    );
    assert_eq!(a.unwrap() + b.unwrap(), 6);
    let record = job(&w, &id).await;
    assert_eq!(record["status"], "done");
    let counts = candidates_per_prompt(&pool, &w.campaign).await;
    assert_eq!(counts.len(), 6);
    assert!(counts.iter().all(|(_, n)| *n == 2), "{counts:?}");
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE campaign_id = $1::uuid")
        .bind(&w.campaign)
        .fetch_one(&pool)
        .await
        .unwrap();
    // Three sampled tokens sometimes repeat: such a pair is counted, not made an item.
    let identical = record["identical_pairs"].as_i64().unwrap();
    assert_eq!(items + identical, 6, "{record}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_dead_workers_prompts_are_picked_up(pool: PgPool) {
    let w = world(pool.clone(), 4).await;
    let id = generate(&w, settings()).await;
    // A worker claims a batch and dies: its lease runs out.
    let claim = store::jobs::claim(&pool, "dead", std::time::Duration::from_secs(600))
        .await
        .unwrap()
        .expect("work to claim");
    assert_eq!(claim.prompts.len(), 2);
    let stored = server::workers::generation::drain(&pool, &w.server.worker_files("w2"), "w2")
        .await
        .unwrap();
    assert_eq!(
        stored, 2,
        "the other two prompts only, while the lease holds"
    );
    assert_eq!(job(&w, &id).await["status"], "running");
    sqlx::query("UPDATE job_prompts SET lease_expires_at = now() - interval '1 second' WHERE worker = 'dead'")
        .execute(&pool)
        .await
        .unwrap();
    let stored = server::workers::generation::drain(&pool, &w.server.worker_files("w2"), "w2")
        .await
        .unwrap();
    assert_eq!(stored, 2);
    assert_eq!(job(&w, &id).await["status"], "done");
    let counts = candidates_per_prompt(&pool, &w.campaign).await;
    assert!(counts.iter().all(|(_, n)| *n == 2), "{counts:?}");
    // The dead worker coming back stores nothing twice.
    let prompt = claim.prompts[0].0;
    let late = store::jobs::complete_prompt(
        &pool,
        &claim,
        prompt,
        "dead",
        &[store::jobs::NewCandidate {
            text: "late".into(),
            metadata: json!({}),
        }],
        1,
        1.0,
    )
    .await
    .unwrap();
    assert_ne!(late, store::jobs::Completion::Stored);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_prompt_whose_worker_always_dies_fails_after_its_attempts(pool: PgPool) {
    let w = world(pool.clone(), 1).await;
    let mut body = settings();
    body["max_attempts"] = json!(2);
    let id = generate(&w, body).await;
    let lease = std::time::Duration::from_secs(600);
    for worker in ["dead-1", "dead-2"] {
        let claim = store::jobs::claim(&pool, worker, lease)
            .await
            .unwrap()
            .expect("the prompt is taken over");
        assert_eq!(claim.prompts.len(), 1);
        sqlx::query("UPDATE job_prompts SET lease_expires_at = now() - interval '1 second'")
            .execute(&pool)
            .await
            .unwrap();
    }
    let stored = server::workers::generation::drain(&pool, &w.server.worker_files("w"), "w")
        .await
        .unwrap();
    assert_eq!(stored, 0, "no third attempt");
    let record = job(&w, &id).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["failed"], 1);
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped")),
        "{record}"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_cancelled_job_stops(pool: PgPool) {
    let w = world(pool.clone(), 3).await;
    let id = generate(&w, settings()).await;
    let (status, record) = w
        .admin
        .post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "cancelled");
    assert_eq!(
        server::workers::generation::drain(&pool, &w.server.worker_files("w1"), "w1")
            .await
            .unwrap(),
        0
    );
    assert!(candidates_per_prompt(&pool, &w.campaign)
        .await
        .iter()
        .all(|(_, n)| *n == 0));
    let (status, _) = w
        .admin
        .post(&format!("/api/v1/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 409, "an ended job cannot be cancelled again");
    // The prompts can be generated by a new job.
    let id = generate(&w, settings()).await;
    assert_eq!(job(&w, &id).await["total"], 3);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_model_that_does_not_load_fails_the_job(pool: PgPool) {
    let w = world(pool.clone(), 2).await;
    let broken = std::env::temp_dir().join(format!("broken-{}.gguf", Uuid::new_v4()));
    std::fs::write(&broken, b"this is not a GGUF file at all").unwrap();
    let (status, body) = w
        .admin
        .post(
            "/api/v1/models",
            json!({"name": "broken", "path": broken.to_string_lossy(), "parent": "smol"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, models) = w.admin.get("/api/v1/models").await;
    let broken_model = models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "broken")
        .unwrap();
    assert!(broken_model["parent_id"].is_string());
    let mut body = settings();
    body["model"] = json!("broken");
    let id = generate(&w, body).await;
    assert_eq!(
        server::workers::generation::drain(&pool, &w.server.worker_files("w1"), "w1")
            .await
            .unwrap(),
        0
    );
    let record = job(&w, &id).await;
    assert_eq!(record["status"], "failed", "{record}");
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("cannot load model \"broken\""), "{error}");
    // Registering a path that does not exist is refused.
    let (status, _) = w
        .admin
        .post(
            "/api/v1/models",
            json!({"name": "ghost", "path": "/nowhere/model.gguf"}),
        )
        .await;
    assert_eq!(status, 422);
    // Labelers may not list models, nor start jobs.
    let (status, _) = w.labeler.get("/api/v1/models").await;
    assert_eq!(status, 403);
    let (status, _) = w
        .labeler
        .post(
            &format!("/api/v1/campaigns/{}/generate", w.campaign),
            settings(),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = w.labeler.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(status, 403);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn new_vs_old_with_settings_per_model(pool: PgPool) {
    let w = world(pool.clone(), 2).await;
    let (status, body) = w
        .admin
        .post(
            "/api/v1/models",
            json!({"name": "smol-copy", "path": default_model(), "parent": "smol"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = generate(
        &w,
        json!({"models": ["smol", {"name": "smol-copy", "temperature": 0.0, "max_new_tokens": 2}],
               "temperature": 0.8, "max_new_tokens": 3, "seed": 3}),
    )
    .await;
    assert_eq!(
        server::workers::generation::drain(&pool, &w.server.worker_files("w1"), "w1")
            .await
            .unwrap(),
        2
    );
    assert_eq!(job(&w, &id).await["status"], "done");
    let rows: Vec<(Uuid, i32, Value)> = sqlx::query_as(
        "SELECT c.id, c.position, c.metadata FROM candidates c JOIN prompts p ON p.id = c.prompt_id
         WHERE p.campaign_id = $1::uuid ORDER BY p.id, c.position",
    )
    .bind(&w.campaign)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4, "one candidate per model per prompt");
    for (id, position, metadata) in rows {
        // Labelers see candidate ids: random ones say nothing of the model or the order.
        assert_eq!(id.get_version_num(), 4, "{id}");
        if position == 0 {
            assert_eq!(metadata["model"], "smol");
            assert_eq!(metadata["temperature"], json!(0.8));
            assert_eq!(metadata["max_new_tokens"], 3);
        } else {
            assert_eq!(metadata["model"], "smol-copy");
            assert_eq!(metadata["temperature"], json!(0.0));
            assert_eq!(metadata["max_new_tokens"], 2);
            assert!(metadata["tokens"].as_u64().unwrap() <= 2);
        }
    }
    // Each prompt's pair is one item comparing the two models.
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE campaign_id = $1::uuid")
        .bind(&w.campaign)
        .fetch_one(&pool)
        .await
        .unwrap();
    let identical = job(&w, &id).await["identical_pairs"].as_i64().unwrap();
    assert_eq!(items + identical, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn prompts_with_only_identical_candidates_are_sampled_again(pool: PgPool) {
    let w = world(pool.clone(), 2).await;
    let regenerate = format!("/api/v1/campaigns/{}/regenerate", w.campaign);
    let (status, body) = w.admin.post(&regenerate, json!({})).await;
    assert_eq!(status, 409, "nothing generated yet: {body}");
    // Greedy decoding writes the same answer twice: no item, two identical pairs.
    let first = generate(
        &w,
        json!({"model": "smol", "k": 2, "max_new_tokens": 2, "temperature": 0.0, "seed": 1}),
    )
    .await;
    let files = w.server.worker_files("w1");
    let drain = || server::workers::generation::drain(&pool, &files, "w1");
    assert_eq!(drain().await.unwrap(), 2);
    assert_eq!(job(&w, &first).await["identical_pairs"], 2);
    let candidates = || async {
        sqlx::query_scalar::<_, Uuid>(
            "SELECT c.id FROM candidates c JOIN prompts p ON p.id = c.prompt_id
             WHERE p.campaign_id = $1::uuid",
        )
        .bind(&w.campaign)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = candidates().await;
    assert_eq!(before.len(), 4);
    // Regenerating samples both prompts again, under a new seed (the saved one would repeat).
    let (status, body) = w.admin.post(&regenerate, json!({})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["prompts"], 2);
    let again = job(&w, body["job_id"].as_str().unwrap()).await;
    assert_eq!(again["total"], 2);
    assert_ne!(again["payload"]["seed"], 1, "{again}");
    assert_eq!(again["payload"]["spec"]["temperature"], json!(0.0));
    assert_eq!(drain().await.unwrap(), 2);
    let after = candidates().await;
    assert_eq!(after.len(), 4);
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "the old candidates were replaced"
    );
    // A prompt whose candidates made an item is never sampled again.
    let (status, report) = add_prompts(&w.admin, &w.campaign, "\"Tell a joke.\"\n").await;
    assert_eq!(status, 201, "{report}");
    generate(
        &w,
        json!({"model": "smol", "models": [{"name": "smol", "max_new_tokens": 1, "temperature": 0.0}, {"name": "smol", "max_new_tokens": 3, "temperature": 0.0}]}),
    )
    .await;
    assert_eq!(drain().await.unwrap(), 1);
    // Nor are imported responses, even identical ones.
    let (status, report) = w
        .admin
        .post_text(
            &format!("/api/v1/campaigns/{}/items", w.campaign),
            "{\"prompt\": \"Imported\", \"responses\": [\"same\", \"same\"]}\n",
            "application/x-ndjson",
        )
        .await;
    assert_eq!(status, 201, "{report}");
    let (status, body) = w.admin.post(&regenerate, json!({})).await;
    assert_eq!(status, 202, "the two greedy prompts again: {body}");
    assert_eq!(body["prompts"], 2, "{body}");
}
