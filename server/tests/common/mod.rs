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

    /// Polls `path` until its `status` is no longer queued or running; returns the record.
    pub async fn finished(&self, path: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let (status, record) = self.get(path).await;
            assert_eq!(status, 200, "{record}");
            if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                return record;
            }
            assert!(started.elapsed() < limit, "{path} did not finish: {record}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
