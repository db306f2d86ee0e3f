//! Helpers for the end-to-end tests: an in-process server on a free loopback port, users and
//! tokens made through the real store, and a Chromium driven through ChromeDriver.

use domain::Role;
use store::PgPool;

/// The site cargo-leptos built (`make build`), served by test servers.
pub const SITE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site");

pub struct TestServer {
    pub base: String,
    pub pool: PgPool,
    /// Where the server's exports are kept: workers that tests run beside it use it too.
    pub storage: storage::Storage,
    /// The server's copies of callers and rights.
    pub access: store::access_cache::AccessCache,
    /// The server's data folder (and storage), removed with the server.
    _data: tempfile::TempDir,
}

/// Serves the whole app on 127.0.0.1 with a free port, on the given database, assembled as
/// `pairwise serve` assembles it (no workers: tests run those themselves where they need them).
pub async fn spawn(pool: PgPool) -> TestServer {
    spawn_with(pool, |_| {}).await
}

/// [`spawn`], with settings changed first (e.g. a trusted proxy header).
pub async fn spawn_with(pool: PgPool, change: impl FnOnce(&mut server::Settings)) -> TestServer {
    let data = tempfile::tempdir().expect("data folder");
    let data_dir = data.path().to_path_buf();
    let storage = storage::Storage::folder(&data_dir.join("storage")).expect("storage");
    let mut settings = server::Settings {
        addr: "127.0.0.1:0".parse().expect("address"),
        site_root: SITE_ROOT.into(),
        data_dir: data_dir.clone(),
        storage: storage.clone(),
        secure_cookies: false,
        trusted_proxy_header: None,
        export_retention: None,
        // Exports run on a worker; generation and training tests run their own.
        workers: server::workers::Counts {
            generation: 0,
            exports: 1,
            training: 0,
        },
    };
    change(&mut settings);
    let app = server::Application::build(pool.clone(), settings)
        .await
        .expect("build the application");
    // Tests run against the server as deployed: with its access cache in use.
    for _ in 0..500 {
        if app.state().ops.access.live() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        app.state().ops.access.live(),
        "the server listens for access changes"
    );
    let base = format!("http://{}", app.addr());
    let access = app.state().ops.access.clone();
    tokio::spawn(async move { app.run_until_stopped().await.expect("serve") });
    TestServer {
        base,
        pool,
        storage,
        access,
        _data: data,
    }
}

pub const PASSWORD: &str = "correct horse battery";

/// Creates a user with [`PASSWORD`] and returns an API token for them.
pub async fn user(pool: &PgPool, email: &str, role: Role) -> String {
    let hash = server::passwords::hash_password(PASSWORD.into())
        .await
        .expect("hash");
    store::accounts::create_user(pool, None, email, role, Some(&hash))
        .await
        .expect("create user");
    store::accounts::create_api_token(pool, email, "test")
        .await
        .expect("token")
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The files of a worker on this server's host: the server's storage and a data folder
    /// of the worker's own under the server's.
    pub fn worker_files(&self, worker: &str) -> server::workers::Files {
        server::workers::Files {
            storage: self.storage.clone(),
            data_dir: self._data.path().join("workers").join(worker),
        }
    }
}

/// A bearer-authenticated JSON client for one user.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(server: &TestServer, token: &str) -> Self {
        Self {
            base: server.base.clone(),
            token: token.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// Posts URL-encoded fields, as the UI's server functions take them; returns the status.
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .form(fields)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    /// Posts URL-encoded fields to a server function; returns the status and its JSON answer.
    pub async fn form_json(&self, path: &str, fields: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .form(fields)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Adds `email` to a campaign with a member role ("labeler", "researcher"); expects 201.
    pub async fn add_member(&self, campaign: &str, email: &str, role: &str) {
        let (status, body) = self
            .post(
                &format!("/api/v1/campaigns/{campaign}/members"),
                serde_json::json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// The id of the user with `email`, from the admins' user list.
    pub async fn user_id(&self, email: &str) -> String {
        let (status, users) = self.get("/api/v1/users").await;
        assert_eq!(status, 200, "{users}");
        users
            .as_array()
            .and_then(|all| all.iter().find(|u| u["email"] == email))
            .and_then(|u| u["id"].as_str())
            .unwrap_or_else(|| panic!("no user {email}: {users}"))
            .to_string()
    }

    /// Polls an export until it is done or failed; returns its record.
    pub async fn wait_export(&self, id: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..400 {
            let (status, record) = self.get(&format!("/api/v1/exports/{id}")).await;
            assert_eq!(status, 200, "{record}");
            if record["status"] == "done" || record["status"] == "failed" {
                return record;
            }
            last = record;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("export {id} did not finish: {last}");
    }

    pub async fn post_text(
        &self,
        path: &str,
        body: impl Into<String>,
        content_type: &str,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type)
            .body(body.into())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// Posts a raw import body (JSONL unless `content_type` says CSV).
    pub async fn import(
        &self,
        campaign: &str,
        body: String,
        content_type: &str,
    ) -> (u16, serde_json::Value) {
        self.post_text(
            &format!("/api/v1/campaigns/{campaign}/items"),
            body,
            content_type,
        )
        .await
    }
}

/// Creates an active campaign with `lines` of JSONL imported; returns its id.
pub async fn campaign_with_items(
    admin: &Api,
    body: serde_json::Value,
    lines: &[serde_json::Value],
) -> String {
    let (status, campaign) = admin.post("/api/v1/campaigns", body).await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().expect("id").to_string();
    if !lines.is_empty() {
        let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (status, report) = admin.import(&id, jsonl, "application/x-ndjson").await;
        assert_eq!(status, 201, "{report}");
    }
    let (status, body) = admin
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            serde_json::json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    id
}

pub fn pair(i: usize) -> serde_json::Value {
    serde_json::json!({"prompt": format!("prompt {i}"), "responses": [format!("first {i}"), format!("second {i}")]})
}
