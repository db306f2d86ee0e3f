//! `pairwise serve` with `PAIRWISE_WORKERS=0` only serves; a separate `pairwise worker`
//! process, sharing only the database and the storage (each has its own data folder), runs
//! the generation job, the export and the training run the server queued, each to the end,
//! and the server serves the export's files from the storage. A worker on another host then
//! generates with the trained model, whose checkpoint it fetches from the storage.

mod common;

use std::time::{Duration, Instant};

use common::{healthy, start, url_of, user_with_token, Client};
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_separate_worker_runs_what_the_server_queues(pool: PgPool) {
    let url = url_of(&pool);
    let admin_token = user_with_token(&url, "admin@x", "admin");
    let labeler_token = user_with_token(&url, "lab@x", "labeler");
    let folders = tempfile::tempdir().expect("scratch folder");
    let folder = |name: &str| folders.path().join(name).to_string_lossy().into_owned();
    let (server_data, worker_data, shared) = (folder("server"), folder("worker"), folder("shared"));
    let storage = format!("file://{shared}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let env = [
        ("PAIRWISE_ADDR", addr.as_str()),
        ("PAIRWISE_DATA_DIR", server_data.as_str()),
        ("PAIRWISE_STORAGE", storage.as_str()),
        ("PAIRWISE_WORKERS", "0"),
    ];
    let _server = start(&url, &["serve"], &env);
    let admin = Client {
        base: format!("http://{addr}"),
        token: admin_token,
        http: reqwest::Client::new(),
    };
    let labeler = Client {
        base: admin.base.clone(),
        token: labeler_token,
        http: admin.http.clone(),
    };
    let started = Instant::now();
    let health = format!("{}/healthz", admin.base);
    while !reqwest::get(&health)
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The server registered the default model and queues a generation job that it does not run.
    let (status, campaign) = admin
        .post("/api/v1/campaigns", json!({"name": "c", "overlap": 1}))
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_string();
    let prompts = "Say hello.\nName a colour.\n".to_string();
    let response = admin
        .http
        .post(format!("{}/api/v1/campaigns/{id}/prompts", admin.base))
        .bearer_auth(&admin.token)
        .body(prompts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let (status, answer) = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/campaigns/{id}"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let member = json!({"email": "lab@x", "role": "labeler"});
    let (status, answer) = admin
        .post(&format!("/api/v1/campaigns/{id}/members"), member)
        .await;
    assert_eq!(status, 201, "{answer}");
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

    let worker_env = [
        ("PAIRWISE_DATA_DIR", worker_data.as_str()),
        ("PAIRWISE_STORAGE", storage.as_str()),
        ("PAIRWISE_WORKERS", "1"),
    ];
    let worker = start(&url, &["worker"], &worker_env);
    let job = admin.finished(&job_path, Duration::from_secs(240)).await;
    assert_eq!(job["status"], "done", "{job}");

    // Label what the worker generated, then export and train on it.
    let mut judged = 0;
    loop {
        let (status, item) = labeler.get(&format!("/api/v1/campaigns/{id}/next")).await;
        if status == 204 {
            break;
        }
        let assignment = item["assignment_id"].as_str().unwrap();
        let (status, ack) = labeler
            .post(
                &format!("/api/v1/assignments/{assignment}/judgment"),
                json!({"choice": "a", "client_request_id": assignment}),
            )
            .await;
        assert_eq!(status, 201, "{ack}");
        judged += 1;
    }
    assert_eq!(judged, 2, "one item per prompt with K = 2");

    let (status, export) = admin
        .post(
            "/api/v1/exports",
            json!({"campaigns": [id], "format": "trl"}),
        )
        .await;
    assert_eq!(status, 202, "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();
    let export = admin
        .finished(
            &format!("/api/v1/exports/{export_id}"),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(export["status"], "done", "{export}");
    assert_eq!(export["rows"], 2, "{export}");
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
    let other_data = folder("other-worker");
    let other_env = [
        ("PAIRWISE_DATA_DIR", other_data.as_str()),
        ("PAIRWISE_STORAGE", storage.as_str()),
        ("PAIRWISE_WORKERS", "1"),
    ];
    let _other = start(&url, &["worker"], &other_env);
    let response = admin
        .http
        .post(format!("{}/api/v1/campaigns/{id}/prompts", admin.base))
        .bearer_auth(&admin.token)
        .body("Count to three.\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
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
        std::path::Path::new(&other_data)
            .join("checkpoints/models")
            .join(run["id"].as_str().unwrap())
            .join("config.json")
            .is_file(),
        "the other worker keeps its copy of the checkpoint"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_training_run_that_runs_out_of_memory_fails_and_the_worker_goes_on(pool: PgPool) {
    let url = url_of(&pool);
    let admin_token = user_with_token(&url, "admin@x", "admin");
    let labeler_token = user_with_token(&url, "lab@x", "labeler");
    let folders = tempfile::tempdir().expect("scratch folder");
    let folder = |name: &str| folders.path().join(name).to_string_lossy().into_owned();
    let (server_data, worker_data, shared) = (folder("server"), folder("worker"), folder("shared"));
    let storage = format!("file://{shared}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server_env = [
        ("PAIRWISE_ADDR", addr.as_str()),
        ("PAIRWISE_DATA_DIR", server_data.as_str()),
        ("PAIRWISE_STORAGE", storage.as_str()),
        ("PAIRWISE_WORKERS", "0"),
    ];
    let _server = start(&url, &["serve"], &server_env);
    // A training process may take 512 MiB of address space: too little for DPO on the
    // default model, which libtorch finds out when it allocates.
    let worker_env = [
        ("PAIRWISE_DATA_DIR", worker_data.as_str()),
        ("PAIRWISE_STORAGE", storage.as_str()),
        ("PAIRWISE_WORKERS", "1"),
        ("PAIRWISE_TRAINING_MEMORY_MB", "512"),
    ];
    let mut worker = start(&url, &["worker"], &worker_env);
    let admin = Client {
        base: format!("http://{addr}"),
        token: admin_token,
        http: reqwest::Client::new(),
    };
    let labeler = Client {
        base: admin.base.clone(),
        token: labeler_token,
        http: admin.http.clone(),
    };
    healthy(&admin.base).await;
    let (status, campaign) = admin
        .post("/api/v1/campaigns", json!({"name": "c", "overlap": 1}))
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_string();
    for n in 0..2 {
        let item = json!({"prompt": format!("Say {n}."), "responses": [format!("{n}"), "no"]});
        let (status, report) = admin
            .post(&format!("/api/v1/campaigns/{id}/items"), item)
            .await;
        assert_eq!(status, 201, "{report}");
    }
    let (status, _) = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/campaigns/{id}"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 200);
    let member = json!({"email": "lab@x", "role": "labeler"});
    let (status, _) = admin
        .post(&format!("/api/v1/campaigns/{id}/members"), member)
        .await;
    assert_eq!(status, 201);
    loop {
        let (status, item) = labeler.get(&format!("/api/v1/campaigns/{id}/next")).await;
        if status == 204 {
            break;
        }
        let assignment = item["assignment_id"].as_str().unwrap();
        let (status, _) = labeler
            .post(
                &format!("/api/v1/assignments/{assignment}/judgment"),
                json!({"choice": "a", "client_request_id": assignment}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let export_spec = json!({"campaigns": [id], "format": "trl"});
    let (status, export) = admin.post("/api/v1/exports", export_spec.clone()).await;
    assert_eq!(status, 202, "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();
    let export = admin
        .finished(
            &format!("/api/v1/exports/{export_id}"),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(export["status"], "done", "{export}");

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
    let (status, again) = admin.post("/api/v1/exports", export_spec).await;
    assert_eq!(status, 202, "{again}");
    let again = admin
        .finished(
            &format!("/api/v1/exports/{}", again["id"].as_str().unwrap()),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(again["status"], "done", "{again}");
}

/// Waits until `check` holds for the record at `path`.
async fn until(client: &Client, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, record) = client.get(path).await;
        assert_eq!(status, 200, "{record}");
        if check(&record) {
            return record;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{what}: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn workers_killed_mid_generation_and_mid_training_are_taken_over(pool: PgPool) {
    let url = url_of(&pool);
    let admin_token = user_with_token(&url, "admin@x", "admin");
    let labeler_token = user_with_token(&url, "lab@x", "labeler");
    let folders = tempfile::tempdir().expect("scratch folder");
    let folder = |name: &str| folders.path().join(name).to_string_lossy().into_owned();
    let shared = folder("shared");
    let storage = format!("file://{shared}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server_data = folder("server");
    let server_env = [
        ("PAIRWISE_ADDR", addr.as_str()),
        ("PAIRWISE_DATA_DIR", server_data.as_str()),
        ("PAIRWISE_STORAGE", storage.as_str()),
        ("PAIRWISE_WORKERS", "0"),
    ];
    let _server = start(&url, &["serve"], &server_env);
    // Workers whose leases lapse 4 s after they die.
    let worker = |name: &str| {
        let data = folder(name);
        let env = [
            ("PAIRWISE_DATA_DIR", data.as_str()),
            ("PAIRWISE_STORAGE", storage.as_str()),
            ("PAIRWISE_WORKERS", "1"),
            ("PAIRWISE_LEASE_SECONDS", "4"),
        ];
        start(&url, &["worker"], &env)
    };
    let admin = Client {
        base: format!("http://{addr}"),
        token: admin_token,
        http: reqwest::Client::new(),
    };
    let labeler = Client {
        base: admin.base.clone(),
        token: labeler_token,
        http: admin.http.clone(),
    };
    healthy(&admin.base).await;
    let (status, campaign) = admin
        .post("/api/v1/campaigns", json!({"name": "c", "overlap": 1}))
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_string();
    let prompts: String = (0..6)
        .map(|n| format!("Write a short story about the number {n}.\n"))
        .collect();
    let response = admin
        .http
        .post(format!("{}/api/v1/campaigns/{id}/prompts", admin.base))
        .bearer_auth(&admin.token)
        .body(prompts)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            format!("/api/v1/campaigns/{id}"),
            json!({"status": "active"}),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/campaigns/{id}/members"),
            json!({"email": "lab@x", "role": "labeler"}),
        ),
    ] {
        let (status, answer) = admin.send(method, &path, Some(body)).await;
        assert!(status == 200 || status == 201, "{answer}");
    }

    // Generation: the first worker dies after a prompt or two; the second finishes the job.
    let mut first = worker("first");
    let (status, job) = admin
        .post(
            &format!("/api/v1/campaigns/{id}/generate"),
            json!({"k": 2, "max_new_tokens": 64, "seed": 7, "batch_size": 1}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job_path = format!("/api/v1/jobs/{}", job["job_id"].as_str().unwrap());
    until(&admin, &job_path, "a prompt done", |j| {
        j["done"].as_i64() >= Some(1)
    })
    .await;
    first.start_kill().expect("SIGKILL");
    let _ = first.wait().await;
    let done_before = admin.get(&job_path).await.1["done"].as_i64().unwrap_or(0);
    assert!(done_before < 6, "the worker died mid-job");
    let mut second = worker("second");
    let job = admin.finished(&job_path, Duration::from_secs(300)).await;
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
    loop {
        let (status, item) = labeler.get(&format!("/api/v1/campaigns/{id}/next")).await;
        if status == 204 {
            break;
        }
        let assignment = item["assignment_id"].as_str().unwrap();
        let (status, _) = labeler
            .post(
                &format!("/api/v1/assignments/{assignment}/judgment"),
                json!({"choice": "a", "client_request_id": assignment}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, export) = admin
        .post(
            "/api/v1/exports",
            json!({"campaigns": [id], "format": "trl"}),
        )
        .await;
    assert_eq!(status, 202, "{export}");
    let export_id = export["id"].as_str().unwrap().to_string();
    let export = admin
        .finished(
            &format!("/api/v1/exports/{export_id}"),
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(export["status"], "done", "{export}");
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
    until(&admin, &run_path, "a training step", |r| {
        r["step"].as_i64() >= Some(1)
    })
    .await;
    second.start_kill().expect("SIGKILL");
    let _ = second.wait().await;
    let _third = worker("third");
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
