//! Outages under load: labelers keep judging over HTTP, retrying on errors and timeouts as the
//! labeling page does, while the server is killed with SIGKILL and started again, and,
//! separately, while PostgreSQL restarts (a private cluster, so that it may). Afterwards every
//! acknowledged judgment is stored exactly once, no item is judged beyond its overlap, and the
//! labelers finished the campaign without anything but the killed part being restarted.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{free_port, healthy, pairwise, start, url_of, user_with_token, Client};
use serde_json::json;
use sqlx::PgPool;

const ITEMS: usize = 120;
const LABELERS: usize = 4;

/// A campaign of `ITEMS` pairs, overlap 1, active, with `LABELERS` labelers; returns it and
/// the labelers' tokens.
async fn campaign(url: &str, base: &str) -> (String, Vec<String>) {
    let admin = Client {
        base: base.into(),
        token: user_with_token(url, "admin@x", "admin"),
        http: reqwest::Client::new(),
    };
    let (status, campaign) = admin
        .post("/api/v1/campaigns", json!({"name": "c", "overlap": 1}))
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().expect("id").to_string();
    let lines: String = (0..ITEMS)
        .map(|n| {
            format!(
                "{}\n",
                json!({"prompt": format!("p{n}"), "responses": ["a", "b"]})
            )
        })
        .collect();
    let response = admin
        .http
        .post(format!("{base}/api/v1/campaigns/{id}/items"))
        .bearer_auth(&admin.token)
        .header("content-type", "application/x-ndjson")
        .body(lines)
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 201);
    let (status, _) = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/campaigns/{id}"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(status, 200);
    let mut tokens = Vec::new();
    for n in 0..LABELERS {
        let email = format!("lab{n}@x");
        tokens.push(user_with_token(url, &email, "labeler"));
        let (status, _) = admin
            .post(
                &format!("/api/v1/campaigns/{id}/members"),
                json!({"email": email, "role": "labeler"}),
            )
            .await;
        assert_eq!(status, 201);
    }
    (id, tokens)
}

/// A labeler that judges until nothing is left, retrying every failed request, as the page
/// does; returns the assignments whose judgment was acknowledged.
async fn label_until_done(base: String, token: String, campaign: String) -> Vec<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut acknowledged = Vec::new();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the labeler did not finish"
        );
        let next = http
            .get(format!("{base}/api/v1/campaigns/{campaign}/next"))
            .bearer_auth(&token)
            .send()
            .await;
        let item: serde_json::Value = match next {
            Ok(r) if r.status() == 204 => return acknowledged,
            Ok(r) if r.status() == 200 => match r.json().await {
                Ok(item) => item,
                Err(_) => continue,
            },
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let assignment = item["assignment_id"]
            .as_str()
            .expect("assignment")
            .to_string();
        // The same request, with the same id, until it is acknowledged.
        loop {
            let sent = http
                .post(format!("{base}/api/v1/assignments/{assignment}/judgment"))
                .bearer_auth(&token)
                .json(&json!({"choice": "a", "client_request_id": assignment}))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    acknowledged.push(assignment.clone());
                    break;
                }
                // The lease ran out meanwhile: the item went back to the queue.
                Ok(r) if r.status().is_client_error() => break,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// Starts the labelers; they run until the campaign is done.
fn labelers(
    base: &str,
    campaign: &str,
    tokens: &[String],
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    tokens
        .iter()
        .map(|token| {
            tokio::spawn(label_until_done(
                base.to_string(),
                token.clone(),
                campaign.to_string(),
            ))
        })
        .collect()
}

/// Every acknowledged judgment is stored once, nothing beyond overlap, and all is judged.
async fn check_nothing_lost(pool: &PgPool, acknowledged: Vec<String>) {
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "SELECT assignment_id::text, count(*) FROM judgments GROUP BY assignment_id",
    )
    .fetch_all(pool)
    .await
    .expect("judgments");
    assert!(
        stored.iter().all(|(_, n)| *n == 1),
        "a judgment stored twice"
    );
    let stored: HashSet<String> = stored.into_iter().map(|(a, _)| a).collect();
    let acknowledged_set: HashSet<String> = acknowledged.iter().cloned().collect();
    assert_eq!(
        acknowledged.len(),
        acknowledged_set.len(),
        "one acknowledgement per assignment"
    );
    let lost: Vec<_> = acknowledged_set.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let per_item: Vec<i64> = sqlx::query_scalar("SELECT count(*) FROM judgments GROUP BY item_id")
        .fetch_all(pool)
        .await
        .expect("per item");
    assert_eq!(per_item.len(), ITEMS, "every item was judged");
    assert!(per_item.iter().all(|n| *n == 1), "overlap 1 is kept");
}

/// Starts `pairwise serve` and waits until it answers (a port just freed by a killed server
/// may take a moment to bind again).
async fn serve(url: &str, env: &[(&str, &str)], base: &str) -> tokio::process::Child {
    let started = Instant::now();
    loop {
        let mut server = start(url, &["serve"], env);
        let ready = tokio::time::timeout(Duration::from_secs(30), healthy(base)).await;
        match server.try_wait() {
            Ok(None) if ready.is_ok() => return server,
            _ => {
                let _ = server.kill().await;
                assert!(
                    started.elapsed() < Duration::from_secs(90),
                    "the server did not start again"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_server_killed_mid_load_loses_no_acknowledged_judgment(pool: PgPool) {
    let url = url_of(&pool);
    let data = tempfile::tempdir().expect("data folder");
    let data_dir = data.path().to_string_lossy().into_owned();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let env = [
        ("PAIRWISE_ADDR", addr.as_str()),
        ("PAIRWISE_DATA_DIR", data_dir.as_str()),
        ("PAIRWISE_WORKERS", "0"),
    ];
    let mut server = serve(&url, &env, &base).await;
    let (campaign, tokens) = campaign(&url, &base).await;
    let running = labelers(&base, &campaign, &tokens);
    // Mid-load: wait for some judgments, then kill the server without warning.
    mid_load(&pool).await;
    server.start_kill().expect("SIGKILL");
    let _ = server.wait().await;
    assert!(count(&pool).await < ITEMS as i64, "the kill came mid-load");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _server = serve(&url, &env, &base).await;
    let mut acknowledged = Vec::new();
    for labeler in running {
        acknowledged.extend(labeler.await.expect("labeler"));
    }
    check_nothing_lost(&pool, acknowledged).await;
}

/// Waits until a quarter of the items are judged.
async fn mid_load(pool: &PgPool) {
    let started = Instant::now();
    while count(pool).await < (ITEMS / 4) as i64 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// A PostgreSQL cluster of the test's own, which it may restart.
struct Cluster {
    data: std::path::PathBuf,
    _folder: tempfile::TempDir,
}

fn cluster_command(program: &str, args: &[&str]) -> std::process::Output {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's binaries")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .max()
        .expect("a PostgreSQL version");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut command = if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        std::process::Command::new(bin.join(program))
    };
    command
        .args(args)
        .output()
        .expect("run a PostgreSQL program")
}

impl Cluster {
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.to_string_lossy().into_owned();
        let mut all = vec!["-D", data.as_str(), "-w"];
        all.extend_from_slice(args);
        let out = cluster_command("pg_ctl", &all);
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        cluster_command("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_mid_load_loses_no_acknowledged_judgment() {
    use std::os::unix::fs::PermissionsExt;
    let folder = tempfile::tempdir().expect("scratch folder");
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755))
        .expect("permissions");
    let data = folder.path().join("postgres");
    let port = free_port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/private-cluster.sh");
    let made = std::process::Command::new(script)
        .arg(&data)
        .arg(&port)
        .output()
        .expect("the private cluster");
    let cluster = Cluster {
        data: data.clone(),
        _folder: folder,
    };
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let url = format!("{}/postgres", String::from_utf8_lossy(&made.stdout).trim());
    let pool = PgPool::connect(&url).await.expect("connect");
    let migrated = pairwise(&url, &["migrate"], None);
    assert!(migrated.status.success(), "{migrated:?}");
    let work = tempfile::tempdir().expect("data folder");
    let data_dir = work.path().to_string_lossy().into_owned();
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let env = [
        ("PAIRWISE_ADDR", addr.as_str()),
        ("PAIRWISE_DATA_DIR", data_dir.as_str()),
        ("PAIRWISE_WORKERS", "0"),
    ];
    let _server = serve(&url, &env, &base).await;
    let (campaign, tokens) = campaign(&url, &base).await;
    let running = labelers(&base, &campaign, &tokens);
    mid_load(&pool).await;
    // Down for a few seconds: the server says so on /healthz, then recovers by itself.
    cluster.pg_ctl(&["-m", "fast", "stop"]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut down = Vec::new();
    for _ in 0..6 {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            down.push(r.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !down.is_empty() && down.iter().all(|s| *s == 503),
        "/healthz while the database is down: {down:?}"
    );
    let log = format!("{}/server.log", data.display());
    let socket = data.to_string_lossy().into_owned();
    let options = format!("-p {port} -k {socket} -c listen_addresses=127.0.0.1");
    cluster.pg_ctl(&["-l", &log, "-o", &options, "start"]);
    let mut acknowledged = Vec::new();
    for labeler in running {
        acknowledged.extend(labeler.await.expect("labeler"));
    }
    check_nothing_lost(&pool, acknowledged).await;
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .map(|r| r.status().as_u16())
            .ok(),
        Some(200),
        "healthy again without a restart"
    );
}
