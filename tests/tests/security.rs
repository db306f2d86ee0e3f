//! Holes found in review, each closed: login throttling that parallel requests cannot get
//! past, lock-out that a stranger cannot turn against an account's owner, client addresses
//! from a trusted proxy header only, and no open redirect after login.

use domain::Role;
use store::PgPool;
use tests::{spawn, spawn_with, user, PASSWORD};

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Posts the login form; returns where it redirects.
async fn login(
    server: &str,
    http: &reqwest::Client,
    password: &str,
    next: &str,
    forwarded_for: Option<&str>,
) -> String {
    let mut request = http.post(format!("{server}/auth/login")).form(&[
        ("email", "ann@x"),
        ("password", password),
        ("next", next),
    ]);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    let response = request.send().await.expect("login");
    assert_eq!(response.status(), 303);
    response.headers()["location"]
        .to_str()
        .expect("location")
        .to_string()
}

/// Where a failed sign-in of ann@x (going to `/`) is sent: the form again, her e-mail kept.
const INVALID: &str = "/login?error=invalid&email=ann%40x&next=%2F";
const THROTTLED: &str = "/login?error=throttled&email=ann%40x&next=%2F";

async fn failures(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM login_attempts WHERE email = 'ann@x' AND NOT succeeded",
    )
    .fetch_one(pool)
    .await
    .expect("count")
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn parallel_wrong_logins_get_no_more_tries_than_the_limit(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    user(&pool, "ann@x", Role::Labeler).await;
    let http = browser();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (base, http) = (server.base.clone(), http.clone());
        attempts.spawn(async move { login(&base, &http, "wrong password!", "/", None).await });
    }
    let answers = attempts.join_all().await;
    let invalid = answers.iter().filter(|a| *a == INVALID).count();
    let throttled = answers.iter().filter(|a| *a == THROTTLED).count();
    let limit = store::accounts::MAX_FAILURES_PER_EMAIL;
    assert_eq!(invalid as i64, limit, "{answers:?}");
    assert_eq!(invalid + throttled, 100, "{answers:?}");
    assert_eq!(failures(&pool).await, limit);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_stranger_cannot_lock_out_a_known_account(pool: PgPool) {
    let server = spawn_with(pool.clone(), |settings| {
        settings.trusted_proxy_header = Some("X-Forwarded-For".into());
    })
    .await;
    user(&pool, "ann@x", Role::Labeler).await;
    let http = browser();
    let stranger = Some("203.0.113.9");
    for _ in 0..store::accounts::MAX_FAILURES_PER_EMAIL {
        let answer = login(&server.base, &http, "wrong password!", "/", stranger).await;
        assert_eq!(answer, INVALID);
    }
    assert_eq!(
        login(&server.base, &http, PASSWORD, "/", stranger).await,
        THROTTLED,
        "the stranger's address is locked out of the account"
    );
    // The proxy appends the address it saw: a client cannot choose it by sending the header.
    assert_eq!(
        login(
            &server.base,
            &http,
            PASSWORD,
            "/",
            Some("198.51.100.7, 203.0.113.9")
        )
        .await,
        THROTTLED
    );
    assert_eq!(
        login(
            &server.base,
            &http,
            PASSWORD,
            "/campaigns",
            Some("198.51.100.7")
        )
        .await,
        "/campaigns",
        "the owner, elsewhere, signs in"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn without_a_trusted_proxy_the_forwarded_header_is_ignored(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    user(&pool, "ann@x", Role::Labeler).await;
    let http = browser();
    for i in 0..store::accounts::MAX_FAILURES_PER_EMAIL {
        let address = format!("203.0.113.{i}");
        let answer = login(&server.base, &http, "wrong password!", "/", Some(&address)).await;
        assert_eq!(answer, INVALID);
    }
    assert_eq!(
        login(&server.base, &http, PASSWORD, "/", Some("198.51.100.7")).await,
        THROTTLED,
        "every attempt came from the same peer"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn login_redirects_only_to_local_paths(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    user(&pool, "ann@x", Role::Labeler).await;
    let http = browser();
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
    ] {
        assert_eq!(
            login(&server.base, &http, PASSWORD, next, None).await,
            "/",
            "{next:?}"
        );
    }
    assert_eq!(
        login(&server.base, &http, PASSWORD, "/campaigns?x=1", None).await,
        "/campaigns?x=1"
    );
}

/// Waits until the server's access copies have not been dropped for a while (the database's
/// notifications about the test's own set-up arrive late); returns the count of drops.
async fn settled_drops(server: &tests::TestServer) -> u64 {
    let mut last = server.access.drops();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = server.access.drops();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the access copies keep being dropped");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn only_successful_changes_empty_the_access_cache(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = tests::Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let labeler = tests::Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let http = reqwest::Client::new();
    let before = settled_drops(&server).await;
    let body = serde_json::json!({"name": "c"});
    for _ in 0..5 {
        let anonymous = http
            .post(server.url("/api/v1/campaigns"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(anonymous.status(), 401);
        let logout = browser()
            .post(server.url("/auth/logout"))
            .send()
            .await
            .expect("logout");
        assert_eq!(logout.status(), 303);
        assert_eq!(labeler.post("/api/v1/campaigns", body.clone()).await.0, 403);
    }
    assert_eq!(
        server.access.drops(),
        before,
        "refused and anonymous requests keep the copies"
    );
    let (status, created) = admin.post("/api/v1/campaigns", body).await;
    assert_eq!(status, 201, "{created}");
    assert!(server.access.drops() > before, "a change drops them");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_answer_carries_the_security_headers(pool: PgPool) {
    let plain = spawn(pool.clone()).await;
    let http = browser();
    for path in ["/login", "/api/v1/me", "/healthz", "/no-such-page"] {
        let response = http.get(plain.url(path)).send().await.expect("get");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
    }
    // A page's inline scripts carry the nonce its policy names, and nothing else is inline.
    let page = http.get(plain.url("/login")).send().await.expect("page");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the page's policy")
        .to_string();
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
    let html = page.text().await.expect("html");
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "the hydration script");
    for script in scripts {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "<script{tag}>");
    }
    let again = http.get(plain.url("/login")).send().await.expect("page");
    assert!(
        !again.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains(&nonce),
        "a fresh nonce per page"
    );
    let secure = spawn_with(pool, |settings| settings.secure_cookies = true).await;
    let response = http.get(secure.url("/login")).send().await.expect("get");
    assert!(response.headers()["strict-transport-security"]
        .to_str()
        .expect("hsts")
        .starts_with("max-age="));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn one_user_has_few_exports_open_at_once(pool: PgPool) {
    // No export worker: what is queued stays queued.
    let server = spawn_with(pool.clone(), |settings| settings.workers.exports = 0).await;
    let admin = tests::Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = tests::Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let campaign =
        tests::campaign_with_items(&admin, serde_json::json!({"name": "c"}), &[tests::pair(1)])
            .await;
    admin.add_member(&campaign, "res@x", "researcher").await;
    let spec = serde_json::json!({"campaigns": [campaign], "format": "trl"});
    let mut ids = Vec::new();
    for _ in 0..store::export::MAX_OPEN_EXPORTS_PER_USER {
        let (status, body) = researcher.post("/api/v1/exports", spec.clone()).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().expect("id").to_string());
    }
    let (status, body) = researcher.post("/api/v1/exports", spec.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("cancel one")),
        "{body}"
    );
    // Others are not held back by one user's exports.
    assert_eq!(admin.post("/api/v1/exports", spec.clone()).await.0, 202);
    let (status, _) = researcher
        .post(
            &format!("/api/v1/exports/{}/cancel", ids[0]),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(researcher.post("/api/v1/exports", spec).await.0, 202);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn exports_past_the_retention_period_lose_their_files(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = tests::Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let campaign =
        tests::campaign_with_items(&admin, serde_json::json!({"name": "c"}), &[tests::pair(1)])
            .await;
    let spec = serde_json::json!({"campaigns": [campaign], "format": "raw"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, body) = admin.post("/api/v1/exports", spec.clone()).await;
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().expect("id").to_string();
        assert_eq!(admin.wait_export(&id).await["status"], "done");
        ids.push(id);
    }
    let (old, fresh) = (&ids[0], &ids[1]);
    sqlx::query("UPDATE exports SET finished_at = now() - interval '31 days' WHERE id = $1::uuid")
        .bind(old)
        .execute(&pool)
        .await
        .expect("age the export");
    let files = server.worker_files("sweeper");
    let thirty_days = std::time::Duration::from_secs(30 * 86_400);
    let removed = server::workers::exports::remove_expired(&pool, &files, thirty_days)
        .await
        .expect("sweep");
    assert_eq!(removed, 1);
    let (_, record) = admin.get(&format!("/api/v1/exports/{old}")).await;
    assert_eq!(record["status"], "expired", "{record}");
    let (status, body) = admin
        .get(&format!("/api/v1/exports/{old}/files/README.md"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("removed")),
        "{body}"
    );
    let left = files
        .storage
        .download_dir(&format!("exports/{old}"), &files.data_dir.join("check"))
        .await
        .expect("list");
    assert_eq!(left, 0, "the storage holds none of its files");
    let (status, _) = admin
        .get(&format!("/api/v1/exports/{fresh}/files/README.md"))
        .await;
    assert_eq!(status, 200, "a recent export keeps its files");
    assert_eq!(
        server::workers::exports::remove_expired(&pool, &files, thirty_days)
            .await
            .expect("sweep"),
        0
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_removed_researcher_no_longer_lists_the_campaigns_exports_and_runs(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = tests::Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = tests::Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let campaign =
        tests::campaign_with_items(&admin, serde_json::json!({"name": "c"}), &[tests::pair(1)])
            .await;
    admin.add_member(&campaign, "res@x", "researcher").await;
    let spec = serde_json::json!({"campaigns": [campaign], "format": "trl"});
    let (status, export) = researcher.post("/api/v1/exports", spec).await;
    assert_eq!(status, 202, "{export}");
    let export = export["id"].as_str().expect("id").to_string();
    assert_eq!(researcher.wait_export(&export).await["status"], "done");
    let model = serde_json::json!({
        "name": "base",
        "path": std::env::var("PAIRWISE_DEFAULT_MODEL").expect("PAIRWISE_DEFAULT_MODEL"),
    });
    assert_eq!(admin.post("/api/v1/models", model).await.0, 201);
    let (status, run) = researcher
        .post(
            &format!("/api/v1/exports/{export}/train"),
            serde_json::json!({"kind": "reward"}),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let run = run["id"].as_str().expect("id").to_string();
    let listed = |body: &serde_json::Value| body.as_array().map_or(0, Vec::len);
    assert_eq!(listed(&researcher.get("/api/v1/exports").await.1), 1);
    assert_eq!(listed(&researcher.get("/api/v1/training").await.1), 1);

    let id = admin.user_id("res@x").await;
    let (status, _) = admin
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/campaigns/{campaign}/members/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, exports) = researcher.get("/api/v1/exports").await;
    assert_eq!((status, listed(&exports)), (200, 0), "{exports}");
    let (status, runs) = researcher.get("/api/v1/training").await;
    assert_eq!((status, listed(&runs)), (200, 0), "{runs}");
    assert_eq!(
        researcher.get(&format!("/api/v1/exports/{export}")).await.0,
        404
    );
    assert_eq!(
        researcher.get(&format!("/api/v1/training/{run}")).await.0,
        404
    );
    // Admins still see both.
    assert_eq!(listed(&admin.get("/api/v1/exports").await.1), 1);
    assert_eq!(listed(&admin.get("/api/v1/training").await.1), 1);
}
