//! `pairwise serve` with `PAIRWISE_WORKERS=0` only serves; a separate `pairwise worker`
//! process, sharing only the database and the storage (each has its own data folder), runs
//! the generation job, the export and the training run the server queued, each to the end,
//! and the server serves the export's files from the storage. A worker on another host then
//! generates with the trained model, whose checkpoint it fetches from the storage. Workers
//! survive a training process that runs out of memory, and workers killed mid-work are taken
//! over.

mod common;

use std::time::Duration;

use common::Deployment;
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_separate_worker_runs_what_the_server_queues(pool: PgPool) {
    let d = Deployment::start(&pool).await;
    let (admin, labeler) = (&d.admin, &d.labeler);
    let (worker_data, shared) = (d.folder("worker"), d.folder("shared"));

    // The server registered the default model and queues a generation job that it does not run.
    let id = d
        .campaign_with_prompts("Say hello.\nName a colour.\n")
        .await;
    let (status, job) = admin
        .post(
            &format!("/api/v1/campaigns/{id}/generate"),
            json!({"k": 2, "max_new_tokens": 3, "seed": 7}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_path = format!("/api/v1/jobs/{}", job["job_id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        admin.get(&job_path).await.1["status"],
        "queued",
        "the server runs no workers"
    );

    let worker = d.worker("worker", &[]);
    let job = admin.finished(&job_path, Duration::from_secs(240)).await;
    assert_eq!(job["status"], "done", "{job}");

    // Label what the worker generated, then export and train on it.
    let judged = labeler.label_everything(&id).await;
    assert_eq!(judged, 2, "one item per prompt with K = 2");

    let export = d.trl_export(&id).await;
    assert_eq!(export["status"], "done", "{export}");
    assert_eq!(export["rows"], 2, "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();
    let stored = std::path::Path::new(&shared)
        .join("exports")
        .join(&export_id);
    assert!(
        stored.join("train.jsonl").is_file(),
        "the worker stored the files"
    );
    let download = admin
        .http
        .get(format!(
            "{}/api/v1/exports/{export_id}/files/train.jsonl",
            admin.base
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status().as_u16(), 200);
    let served = download.bytes().await.unwrap();
    assert_eq!(served, std::fs::read(stored.join("train.jsonl")).unwrap());
    assert!(
        !std::path::Path::new(&worker_data)
            .join("staging")
            .join(&export_id)
            .exists(),
        "the worker's scratch copy is gone"
    );

    let settings = json!({"max_steps": 1, "batch_size": 1, "max_length": 48});
    let (status, run) = admin
        .post(
            &format!("/api/v1/exports/{export_id}/train"),
            json!({"kind": "dpo", "settings": settings}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run = admin
        .finished(
            &format!("/api/v1/training/{}", run["id"].as_str().unwrap()),
            Duration::from_secs(400),
        )
        .await;
    assert_eq!(run["status"], "done", "{run}");
    assert!(
        run["model_name"].is_string(),
        "the DPO model is registered: {run}"
    );
    let checkpoint = std::path::Path::new(&shared)
        .join("models")
        .join(run["id"].as_str().unwrap());
    assert!(
        checkpoint.join("config.json").is_file(),
        "the checkpoint is in the storage"
    );

    // A worker on another host (its own data folder, no copy of the checkpoint) generates
    // with the trained model: it fetches the checkpoint from the storage.
    drop(worker);
    std::fs::remove_dir_all(std::path::Path::new(&worker_data).join("models"))
        .expect("the first worker's checkpoint");
    let _other = d.worker("other-worker", &[]);
    let status = admin
        .post_text(
            &format!("/api/v1/campaigns/{id}/prompts"),
            "Count to three.\n",
        )
        .await;
    assert_eq!(status, 201);
    let (status, job) = admin
        .post(
            &format!("/api/v1/campaigns/{id}/generate"),
            json!({"model": run["model_name"], "k": 2, "max_new_tokens": 3, "seed": 7}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_path = format!("/api/v1/jobs/{}", job["job_id"].as_str().unwrap());
    let job = admin.finished(&job_path, Duration::from_secs(240)).await;
    assert_eq!(job["status"], "done", "{job}");
    assert!(
        std::path::Path::new(&d.folder("other-worker"))
            .join("checkpoints/models")
            .join(run["id"].as_str().unwrap())
            .join("config.json")
            .is_file(),
        "the other worker keeps its copy of the checkpoint"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_training_run_that_runs_out_of_memory_fails_and_the_worker_goes_on(pool: PgPool) {
    let d = Deployment::start(&pool).await;
    let admin = &d.admin;
    // A training process may take 512 MiB of address space: too little for DPO on the
    // default model, which libtorch finds out when it allocates.
    let mut worker = d.worker("worker", &[("PAIRWISE_TRAINING_MEMORY_MB", "512")]);
    let items: Vec<_> = (0..2)
        .map(|n| json!({"prompt": format!("Say {n}."), "responses": [format!("{n}"), "no"]}))
        .collect();
    let id = d.campaign_with_items(&items).await;
    d.labeler.label_everything(&id).await;
    let export = d.trl_export(&id).await;
    assert_eq!(export["status"], "done", "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();

    let (status, run) = admin
        .post(
            &format!("/api/v1/exports/{export_id}/train"),
            json!({"kind": "dpo", "settings": {"max_steps": 1, "batch_size": 2}}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run = admin
        .finished(
            &format!("/api/v1/training/{}", run["id"].as_str().unwrap()),
            Duration::from_secs(300),
        )
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the run says why: {run}"
    );
    assert!(
        worker.try_wait().expect("the worker's state").is_none(),
        "the worker survived its training process"
    );
    // And it goes on with other work.
    let again = d.trl_export(&id).await;
    assert_eq!(again["status"], "done", "{again}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn workers_killed_mid_generation_and_mid_training_are_taken_over(pool: PgPool) {
    let d = Deployment::start(&pool).await;
    let admin = &d.admin;
    // Workers whose leases lapse 4 s after they die.
    let short_lease = [("PAIRWISE_LEASE_SECONDS", "4")];
    let prompts: String = (0..6)
        .map(|n| format!("Write a short story about the number {n}.\n"))
        .collect();
    let id = d.campaign_with_prompts(&prompts).await;

    // Generation: the first worker dies after a prompt or two; the second finishes the job.
    let mut first = d.worker("first", &short_lease);
    let (status, job) = admin
        .post(
            &format!("/api/v1/campaigns/{id}/generate"),
            json!({"k": 2, "max_new_tokens": 64, "seed": 7, "batch_size": 1}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_path = format!("/api/v1/jobs/{}", job["job_id"].as_str().unwrap());
    let limit = Duration::from_secs(300);
    admin
        .until(&job_path, "a prompt done", limit, |j| {
            j["done"].as_i64() >= Some(1)
        })
        .await;
    first.start_kill().expect("SIGKILL");
    let _ = first.wait().await;
    let done_before = admin.get(&job_path).await.1["done"].as_i64().unwrap_or(0);
    assert!(done_before < 6, "the worker died mid-job");
    let mut second = d.worker("second", &short_lease);
    let job = admin.finished(&job_path, limit).await;
    assert_eq!(job["status"], "done", "{job}");
    let per_prompt: Vec<i64> = sqlx::query_scalar(
        "SELECT count(c.id) FROM prompts p LEFT JOIN candidates c ON c.prompt_id = p.id
         GROUP BY p.id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_prompt,
        vec![2; 6],
        "two candidates per prompt, none twice"
    );
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(items, 6, "one item per prompt");

    // Training: label, export, then kill the worker mid-run.
    d.labeler.label_everything(&id).await;
    let export = d.trl_export(&id).await;
    assert_eq!(export["status"], "done", "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();
    let settings = json!({"max_steps": 6, "batch_size": 1, "max_length": 64, "eval_split": 0.0});
    let (status, run) = admin
        .post(
            &format!("/api/v1/exports/{export_id}/train"),
            json!({"kind": "dpo", "settings": settings}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    let run_path = format!("/api/v1/training/{run_id}");
    admin
        .until(&run_path, "a training step", limit, |r| {
            r["step"].as_i64() >= Some(1)
        })
        .await;
    second.start_kill().expect("SIGKILL");
    let _ = second.wait().await;
    let _third = d.worker("third", &short_lease);
    let run = admin.finished(&run_path, Duration::from_secs(400)).await;
    assert_eq!(run["status"], "done", "{run}");
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM training_runs WHERE id = $1::uuid")
            .bind(&run_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 2, "taken over once");
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM models WHERE parent_id IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(registered, 1, "one registered model");
}
