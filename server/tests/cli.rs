//! CLI round trip: `pairwise user add`, `pairwise token create`, then an API call with the token.

mod common;

use common::{pairwise, url_of};
use sqlx::PgPool;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn user_add_token_create_then_api_call(pool: PgPool) {
    let url = url_of(&pool);
    let added = pairwise(
        &url,
        &["user", "add", "Res@Example.org", "--role", "researcher"],
        Some("long enough password"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(String::from_utf8_lossy(&added.stdout).contains("res@example.org"));

    let weak = pairwise(
        &url,
        &["user", "add", "weak@example.org", "--role", "labeler"],
        Some("short"),
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"));
    let bad_role = pairwise(
        &url,
        &["user", "add", "x@example.org", "--role", "root"],
        Some("long enough password"),
    );
    assert!(!bad_role.status.success());

    let created = pairwise(&url, &["token", "create", "res@example.org"], None);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    let token = stdout.split_whitespace().last().expect("token").to_string();
    assert!(token.starts_with("pwt_"), "{stdout}");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, token.as_bytes(), "tokens are stored hashed");

    let data_dir = std::env::temp_dir().join(format!("pairwise-test-{}", uuid::Uuid::new_v4()));
    let storage = storage::Storage::folder(&data_dir.join("storage")).expect("storage");
    let settings = server::Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        site_root: "target/site".into(),
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
    let app = server::Application::build(pool.clone(), settings)
        .await
        .unwrap();
    let addr = app.addr();
    tokio::spawn(app.run_until_stopped());
    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "res@example.org");
    assert_eq!(me["role"], "researcher");

    let missing = pairwise(&url, &["token", "create", "nobody@example.org"], None);
    assert!(!missing.status.success());
}
