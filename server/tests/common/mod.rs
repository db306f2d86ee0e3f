//! Helpers of the tests that run the `pairwise` binary.
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

/// The URL of the test's own database, for a `pairwise` process.
pub fn url_of(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// Runs `pairwise <args>` on that database to its end; `password` is `PAIRWISE_PASSWORD`.
pub fn pairwise(url: &str, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pairwise"));
    command
        .args(args)
        .env("PAIRWISE_DATABASE_URL", url)
        .env("PAIRWISE_LOG", "warn");
    match password {
        Some(p) => command.env("PAIRWISE_PASSWORD", p),
        None => command.env_remove("PAIRWISE_PASSWORD"),
    };
    command.output().expect("run pairwise")
}

pub const PASSWORD: &str = "long enough password";

/// A user made with the CLI, and their API token.
pub fn user_with_token(url: &str, email: &str, role: &str) -> String {
    let added = pairwise(url, &["user", "add", email, "--role", role], Some(PASSWORD));
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let created = pairwise(url, &["token", "create", email], None);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    String::from_utf8_lossy(&created.stdout)
        .split_whitespace()
        .last()
        .expect("token")
        .to_string()
}

/// A long-running `pairwise` process, killed when dropped.
pub fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pairwise"));
    command
        .args(args)
        .env("PAIRWISE_DATABASE_URL", url)
        .env("PAIRWISE_LOG", "warn")
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("start pairwise")
}

pub struct Client {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Client {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Posts a plain-text body (a prompt list); returns the status.
    pub async fn post_text(&self, path: &str, body: &str) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    /// Polls `path` until `check` holds for its record (`what` says what was awaited);
    /// returns the record.
    pub async fn until(
        &self,
        path: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let (status, record) = self.get(path).await;
            assert_eq!(status, 200, "{record}");
            if check(&record) {
                return record;
            }
            assert!(started.elapsed() < limit, "{path}: {what}: {record}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `path` until its `status` is no longer queued or running; returns the record.
    pub async fn finished(&self, path: &str, limit: Duration) -> Value {
        self.until(path, "did not finish", limit, |record| {
            !matches!(record["status"].as_str(), Some("queued" | "running"))
        })
        .await
    }

    /// Judges every item the caller is handed in `campaign` ("a"); returns how many.
    pub async fn label_everything(&self, campaign: &str) -> usize {
        let mut judged = 0;
        loop {
            let (status, item) = self
                .get(&format!("/api/v1/campaigns/{campaign}/next"))
                .await;
            if status == 204 {
                return judged;
            }
            let assignment = item["assignment_id"].as_str().expect("an item");
            let (status, ack) = self
                .post(
                    &format!("/api/v1/assignments/{assignment}/judgment"),
                    serde_json::json!({"choice": "a", "client_request_id": assignment}),
                )
                .await;
            assert_eq!(status, 201, "{ack}");
            judged += 1;
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `pairwise serve` without workers of its own on the test's database, a storage folder it
/// shares with the `pairwise worker` processes the test starts (each with a data folder of
/// its own), and an admin and a labeler to call it.
pub struct Deployment {
    pub url: String,
    pub storage: String,
    pub admin: Client,
    pub labeler: Client,
    folders: tempfile::TempDir,
    _server: tokio::process::Child,
}

impl Deployment {
    pub async fn start(pool: &PgPool) -> Self {
        let url = url_of(pool);
        let admin_token = user_with_token(&url, "admin@x", "admin");
        let labeler_token = user_with_token(&url, "lab@x", "labeler");
        let folders = tempfile::tempdir().expect("scratch folder");
        let storage = format!("file://{}", folders.path().join("shared").display());
        let addr = format!("127.0.0.1:{}", free_port());
        let server_data = folders.path().join("server").to_string_lossy().into_owned();
        let env = [
            ("PAIRWISE_ADDR", addr.as_str()),
            ("PAIRWISE_DATA_DIR", server_data.as_str()),
            ("PAIRWISE_STORAGE", storage.as_str()),
            ("PAIRWISE_WORKERS", "0"),
        ];
        let server = start(&url, &["serve"], &env);
        let http = reqwest::Client::new();
        let admin = Client {
            base: format!("http://{addr}"),
            token: admin_token,
            http: http.clone(),
        };
        let labeler = Client {
            base: admin.base.clone(),
            token: labeler_token,
            http,
        };
        healthy(&admin.base).await;
        Self {
            url,
            storage,
            admin,
            labeler,
            folders,
            _server: server,
        }
    }

    /// A folder of the test's (`shared` is the storage, `server` the server's data).
    pub fn folder(&self, name: &str) -> String {
        self.folders
            .path()
            .join(name)
            .to_string_lossy()
            .into_owned()
    }

    /// A `pairwise worker` with the data folder `data` and settings `extra`.
    pub fn worker(&self, data: &str, extra: &[(&str, &str)]) -> tokio::process::Child {
        let data = self.folder(data);
        let mut env = vec![
            ("PAIRWISE_DATA_DIR", data.as_str()),
            ("PAIRWISE_STORAGE", self.storage.as_str()),
            ("PAIRWISE_WORKERS", "1"),
        ];
        env.extend_from_slice(extra);
        start(&self.url, &["worker"], &env)
    }

    /// A campaign (overlap 1) with `prompts` to generate for, active, with the labeler in it.
    pub async fn campaign_with_prompts(&self, prompts: &str) -> String {
        let id = self.campaign().await;
        let status = self
            .admin
            .post_text(&format!("/api/v1/campaigns/{id}/prompts"), prompts)
            .await;
        assert_eq!(status, 201);
        self.open(&id).await;
        id
    }

    /// A campaign (overlap 1) with `items` imported, active, with the labeler in it.
    pub async fn campaign_with_items(&self, items: &[Value]) -> String {
        let id = self.campaign().await;
        for item in items {
            let (status, report) = self
                .admin
                .post(&format!("/api/v1/campaigns/{id}/items"), item.clone())
                .await;
            assert_eq!(status, 201, "{report}");
        }
        self.open(&id).await;
        id
    }

    async fn campaign(&self) -> String {
        let (status, campaign) = self
            .admin
            .post(
                "/api/v1/campaigns",
                serde_json::json!({"name": "c", "overlap": 1}),
            )
            .await;
        assert_eq!(status, 201, "{campaign}");
        campaign["id"].as_str().expect("id").to_string()
    }

    async fn open(&self, id: &str) {
        let (status, answer) = self
            .admin
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/campaigns/{id}"),
                Some(serde_json::json!({"status": "active"})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let member = serde_json::json!({"email": "lab@x", "role": "labeler"});
        let (status, answer) = self
            .admin
            .post(&format!("/api/v1/campaigns/{id}/members"), member)
            .await;
        assert_eq!(status, 201, "{answer}");
    }

    /// Exports `campaign` as TRL and waits for it; returns the export's record.
    pub async fn trl_export(&self, campaign: &str) -> Value {
        let spec = serde_json::json!({"campaigns": [campaign], "format": "trl"});
        let (status, export) = self.admin.post("/api/v1/exports", spec).await;
        assert_eq!(status, 202, "{export}");
        let path = format!("/api/v1/exports/{}", export["id"].as_str().expect("id"));
        self.admin.finished(&path, Duration::from_secs(120)).await
    }
}

/// Waits for `/healthz` of a server just started.
pub async fn healthy(base: &str) {
    let started = Instant::now();
    while !reqwest::get(format!("{base}/healthz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
