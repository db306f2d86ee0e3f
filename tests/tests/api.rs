//! The JSON API over real HTTP against a spawned server and a fresh database per test.

use domain::Role;
use leptos::server_fn::ServerFn;
use reqwest::Method;
use serde_json::{json, Value};
use store::PgPool;
use tests::{campaign_with_items, pair, spawn, user, Api};

struct World {
    admin: Api,
    researcher: Api,
    labeler: Api,
    /// A labeler of campaign Y only.
    outsider: Api,
    x: String,
    y: String,
    /// An assignment of `labeler` in X, and one of `outsider` in Y.
    x_assignment: String,
    y_assignment: String,
}

async fn world(pool: PgPool) -> World {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let outsider = Api::new(&server, &user(&pool, "out@x", Role::Labeler).await);
    let items: Vec<_> = (0..4).map(pair).collect();
    let x = campaign_with_items(&admin, json!({"name": "X", "overlap": 2}), &items).await;
    let y = campaign_with_items(&admin, json!({"name": "Y"}), &items).await;
    for (campaign, email, role) in [
        (&x, "res@x", "researcher"),
        (&x, "lab@x", "labeler"),
        (&y, "out@x", "labeler"),
    ] {
        let (status, body) = admin
            .post(
                &format!("/api/v1/campaigns/{campaign}/members"),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, item) = labeler.get(&format!("/api/v1/campaigns/{x}/next")).await;
    let x_assignment = item["assignment_id"].as_str().unwrap().to_string();
    let (_, item) = outsider.get(&format!("/api/v1/campaigns/{y}/next")).await;
    let y_assignment = item["assignment_id"].as_str().unwrap().to_string();
    World {
        admin,
        researcher,
        labeler,
        outsider,
        x,
        y,
        x_assignment,
        y_assignment,
    }
}

/// (who, client, method, path, body, expected status)
type Case<'a> = (
    &'a str,
    &'a Api,
    Method,
    String,
    Option<serde_json::Value>,
    u16,
);

/// Whether `path` (under `/api/v1`, maybe with a query) is an instance of the route
/// `template` (`{name}` segments match any one segment).
fn names_route(path: &str, template: &str) -> bool {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let path = path.split('?').next().unwrap_or(path);
    let (parts, pattern): (Vec<_>, Vec<_>) =
        (path.split('/').collect(), template.split('/').collect());
    parts.len() == pattern.len()
        && parts
            .iter()
            .zip(&pattern)
            .all(|(part, want)| want.starts_with('{') || part == want)
}

/// Each role × each endpoint × own/other campaign.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn authorization_matrix(pool: PgPool) {
    let w = world(pool.clone()).await;
    let (x, y) = (w.x.clone(), w.y.clone());
    let judgment = |id: &str| json!({"choice": "a", "client_request_id": format!("m-{id}")});
    // One object of every kind in X: a member to remove, a model, a generation job, a
    // finished export and a training run on it.
    user(&pool, "spare@x", Role::Labeler).await;
    let (status, _) = w
        .admin
        .post(
            &format!("/api/v1/campaigns/{x}/members"),
            json!({"email": "spare@x"}),
        )
        .await;
    assert_eq!(status, 201);
    let spare = w.admin.user_id("spare@x").await;
    let model_path = std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)");
    let model = |name: &str| json!({"name": name, "path": model_path});
    assert_eq!(w.admin.post("/api/v1/models", model("m")).await.0, 201);
    let prompt = |text: &str| json!(text);
    let (status, _) = w
        .admin
        .post(&format!("/api/v1/campaigns/{x}/prompts"), prompt("Say hi."))
        .await;
    assert_eq!(status, 201);
    let generation = json!({"model": "m", "max_new_tokens": 1});
    let (status, job) = w
        .admin
        .post(
            &format!("/api/v1/campaigns/{x}/generate"),
            generation.clone(),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let job = job["job_id"].as_str().unwrap().to_string();
    let export_spec = json!({"campaigns": [x], "format": "trl"});
    let (status, export) = w
        .researcher
        .post("/api/v1/exports", export_spec.clone())
        .await;
    assert_eq!(status, 202, "{export}");
    let export = export["id"].as_str().unwrap().to_string();
    assert_eq!(w.researcher.wait_export(&export).await["status"], "done");
    let reward = json!({"kind": "reward"});
    let (status, run) = w
        .researcher
        .post(&format!("/api/v1/exports/{export}/train"), reward.clone())
        .await;
    assert_eq!(status, 202, "{run}");
    let run = run["id"].as_str().unwrap().to_string();
    let item = json!({"prompt": "p", "responses": ["a", "b"]});
    let (status, page) = w.admin.get(&format!("/api/v1/campaigns/{x}/items")).await;
    assert_eq!(status, 200, "{page}");
    let x_item = page["items"][0]["id"].as_str().unwrap().to_string();
    let doomed = campaign_with_items(&w.admin, json!({"name": "doomed"}), &[pair(1)]).await;
    // A judgment of the labeler's, to change (before their next one makes it not the last).
    let (_, other) = w
        .labeler
        .get(&format!(
            "/api/v1/campaigns/{x}/next?exclude={}",
            w.x_assignment
        ))
        .await;
    let (status, judged) = w
        .labeler
        .post(
            &format!(
                "/api/v1/assignments/{}/judgment",
                other["assignment_id"].as_str().unwrap()
            ),
            judgment("0"),
        )
        .await;
    assert_eq!(status, 201, "{judged}");
    let changed = format!(
        "/api/v1/judgments/{}",
        judged["judgment_id"].as_str().unwrap()
    );
    let change = json!({"choice": "b", "client_request_id": "m-changed"});
    let mut browsing: Vec<Case> = Vec::new();
    for (who, api, path, expected) in [
        ("labeler", &w.labeler, format!("/api/v1/campaigns/{x}"), 403),
        (
            "researcher",
            &w.researcher,
            format!("/api/v1/campaigns/{x}"),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            format!("/api/v1/campaigns/{x}"),
            404,
        ),
        (
            "admin",
            &w.admin,
            format!("/api/v1/campaigns/{doomed}"),
            204,
        ),
    ] {
        browsing.push((who, api, Method::DELETE, path, None, expected));
    }
    for path in [
        format!("/api/v1/campaigns/{x}/items?status="),
        format!("/api/v1/items/{x_item}"),
    ] {
        for (who, api, expected) in [
            ("admin", &w.admin, 200),
            ("researcher", &w.researcher, 200),
            ("labeler", &w.labeler, 403),
            ("outsider", &w.outsider, 404),
        ] {
            browsing.push((who, api, Method::GET, path.clone(), None, expected));
        }
    }
    let every_route: Vec<Case> = vec![
        (
            "admin",
            &w.admin,
            Method::GET,
            "/api/v1/me".into(),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            "/api/v1/me".into(),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::DELETE,
            format!("/api/v1/campaigns/{x}/members/{spare}"),
            None,
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::DELETE,
            format!("/api/v1/campaigns/{x}/members/{spare}"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::DELETE,
            format!("/api/v1/campaigns/{x}/members/{spare}"),
            None,
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::DELETE,
            format!("/api/v1/campaigns/{x}/members/{spare}"),
            None,
            204,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            "/api/v1/models".into(),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            "/api/v1/models".into(),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            "/api/v1/models".into(),
            None,
            403,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            "/api/v1/models".into(),
            Some(model("m2")),
            201,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            "/api/v1/models".into(),
            Some(model("m3")),
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            "/api/v1/models".into(),
            Some(model("m4")),
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/campaigns/{x}/prompts"),
            Some(prompt("Lab")),
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/campaigns/{x}/prompts"),
            Some(prompt("Res")),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/campaigns/{x}/prompts"),
            Some(prompt("Out")),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            format!("/api/v1/campaigns/{x}/prompts"),
            Some(prompt("Say bye.")),
            201,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/campaigns/{x}/items"),
            Some(item.clone()),
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/campaigns/{x}/items"),
            Some(item.clone()),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/campaigns/{x}/items"),
            Some(item.clone()),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            format!("/api/v1/campaigns/{x}/items"),
            Some(item.clone()),
            201,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/campaigns/{x}/generate"),
            Some(generation.clone()),
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/campaigns/{x}/generate"),
            Some(generation.clone()),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/campaigns/{x}/generate"),
            Some(generation.clone()),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            format!("/api/v1/campaigns/{x}/generate"),
            Some(generation.clone()),
            202,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/campaigns/{x}/regenerate"),
            None,
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/campaigns/{x}/regenerate"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/campaigns/{x}/regenerate"),
            None,
            404,
        ),
        // Allowed; nothing of X gave only identical candidates.
        (
            "admin",
            &w.admin,
            Method::POST,
            format!("/api/v1/campaigns/{x}/regenerate"),
            None,
            409,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/campaigns/{x}/jobs"),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/campaigns/{x}/jobs"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}/jobs"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}/jobs"),
            None,
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/jobs/{job}"),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/jobs/{job}"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/jobs/{job}"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/jobs/{job}"),
            None,
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/jobs/{job}/cancel"),
            Some(json!({})),
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/jobs/{job}/cancel"),
            Some(json!({})),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/jobs/{job}/cancel"),
            Some(json!({})),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            format!("/api/v1/jobs/{job}/cancel"),
            Some(json!({})),
            200,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            "/api/v1/exports".into(),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            "/api/v1/exports".into(),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            "/api/v1/exports".into(),
            None,
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            "/api/v1/exports".into(),
            Some(export_spec.clone()),
            202,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            "/api/v1/exports".into(),
            Some(export_spec.clone()),
            403,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/exports/{export}"),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/exports/{export}"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/exports/{export}"),
            None,
            404,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/exports/{export}"),
            None,
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/exports/{export}/files/README.md"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/exports/{export}/files/README.md"),
            None,
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/exports/{export}/cancel"),
            Some(json!({})),
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/exports/{export}/cancel"),
            Some(json!({})),
            409,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/exports/{export}/train"),
            Some(reward.clone()),
            404,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/exports/{export}/train"),
            Some(reward.clone()),
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/exports/{export}/train"),
            Some(reward.clone()),
            202,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            "/api/v1/training".into(),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            "/api/v1/training".into(),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            "/api/v1/training".into(),
            None,
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/training/{run}"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/training/{run}"),
            None,
            404,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/training/{run}"),
            None,
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/training/{run}/cancel"),
            Some(json!({})),
            404,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/training/{run}/cancel"),
            Some(json!({})),
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/training/{run}/cancel"),
            Some(json!({})),
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::PATCH,
            format!("/api/v1/users/{spare}"),
            Some(json!({"disabled": true})),
            403,
        ),
        (
            "researcher",
            &w.researcher,
            Method::PATCH,
            format!("/api/v1/users/{spare}"),
            Some(json!({"disabled": true})),
            403,
        ),
        (
            "admin",
            &w.admin,
            Method::PATCH,
            format!("/api/v1/users/{spare}"),
            Some(json!({"disabled": true})),
            204,
        ),
    ];
    let mut cases: Vec<Case> = vec![
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/campaigns/{x}"),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/campaigns/{x}"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}"),
            None,
            200,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}"),
            None,
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/campaigns/{y}"),
            None,
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            "/api/v1/campaigns".into(),
            Some(json!({"name": "n"})),
            201,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            "/api/v1/campaigns".into(),
            Some(json!({"name": "n"})),
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            "/api/v1/campaigns".into(),
            Some(json!({"name": "n"})),
            403,
        ),
        (
            "admin",
            &w.admin,
            Method::PATCH,
            format!("/api/v1/campaigns/{x}"),
            Some(json!({"name": "X2"})),
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::PATCH,
            format!("/api/v1/campaigns/{x}"),
            Some(json!({"name": "X3"})),
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::PATCH,
            format!("/api/v1/campaigns/{x}"),
            Some(json!({"status": "closed"})),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::PATCH,
            format!("/api/v1/campaigns/{x}"),
            Some(json!({"status": "closed"})),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/campaigns/{x}/members"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}/members"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}/members"),
            None,
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/campaigns/{x}/members"),
            Some(json!({"email": "out@x"})),
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/campaigns/{x}/members"),
            Some(json!({"email": "out@x"})),
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::POST,
            format!("/api/v1/campaigns/{x}/members"),
            Some(json!({"email": "out@x"})),
            403,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/campaigns/{x}/stats"),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/campaigns/{x}/stats"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}/stats"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}/stats"),
            None,
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/campaigns/{x}/quality"),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/campaigns/{x}/quality"),
            None,
            200,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}/quality"),
            None,
            403,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}/quality"),
            None,
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}/next"),
            None,
            200,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}/next"),
            None,
            404,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            format!("/api/v1/campaigns/{x}/next"),
            None,
            403,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            format!("/api/v1/campaigns/{x}/next"),
            None,
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{y}/next"),
            None,
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            format!("/api/v1/campaigns/{x}/progress"),
            None,
            200,
        ),
        (
            "outsider",
            &w.outsider,
            Method::GET,
            format!("/api/v1/campaigns/{x}/progress"),
            None,
            404,
        ),
        (
            "outsider",
            &w.outsider,
            Method::PUT,
            changed.clone(),
            Some(change.clone()),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::PUT,
            changed.clone(),
            Some(change.clone()),
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::PUT,
            changed.clone(),
            Some(change.clone()),
            200,
        ),
        (
            "outsider",
            &w.outsider,
            Method::POST,
            format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            Some(judgment("1")),
            404,
        ),
        (
            "admin",
            &w.admin,
            Method::POST,
            format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            Some(judgment("2")),
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/assignments/{}/judgment", w.y_assignment),
            Some(judgment("3")),
            404,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            Some(judgment("4")),
            201,
        ),
        (
            "admin",
            &w.admin,
            Method::GET,
            "/api/v1/users".into(),
            None,
            200,
        ),
        (
            "researcher",
            &w.researcher,
            Method::GET,
            "/api/v1/users".into(),
            None,
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"email": "z@x", "role": "admin"})),
            403,
        ),
        (
            "labeler",
            &w.labeler,
            Method::GET,
            "/api/v1/campaigns".into(),
            None,
            200,
        ),
    ];
    cases.extend(every_route);
    cases.extend(browsing);
    // Every route of the API is in the matrix: a new route fails here until it is.
    let unnamed: Vec<_> = server::http::api::ROUTES
        .iter()
        .filter(|(method, template)| {
            !cases.iter().any(|case| {
                case.2.as_str().eq_ignore_ascii_case(method) && names_route(&case.3, template)
            })
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "routes the matrix does not name: {unnamed:?}"
    );
    let mut failures = Vec::new();
    for (who, api, method, path, body, expected) in cases {
        let (status, answer) = api.send(method.clone(), &path, body).await;
        if status != expected {
            failures.push(format!(
                "{who} {method} {path}: {status} (expected {expected}) {answer}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A labeler's campaign list holds only their campaigns.
    let (_, list) = w.labeler.get("/api/v1/campaigns").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![w.x.as_str()]);
    // Without credentials: 401.
    let anonymous = Api {
        token: "pwt_invalid".into(),
        ..w.admin.clone()
    };
    assert_eq!(
        anonymous.get(&format!("/api/v1/campaigns/{x}")).await.0,
        401
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn labeling_flow_over_http(pool: PgPool) {
    let w = world(pool).await;
    let x = &w.x;
    let (status, item) = w.labeler.get(&format!("/api/v1/campaigns/{x}/next")).await;
    assert_eq!(status, 200);
    assert_eq!(
        item["assignment_id"].as_str().unwrap(),
        w.x_assignment,
        "the held lease comes back"
    );
    assert_eq!(item["responses"].as_array().unwrap().len(), 2);
    for response in item["responses"].as_array().unwrap() {
        let id: uuid::Uuid = response["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            id.get_version_num(),
            4,
            "random ids tell nothing of the file's order or the model"
        );
    }
    let shown_b = item["responses"][1]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/assignments/{}/judgment", w.x_assignment);
    let body = json!({"choice": "b", "client_request_id": "req-1", "rationale": "clearer"});
    let (status, ack) = w.labeler.post(&path, body.clone()).await;
    assert_eq!(status, 201, "{ack}");
    assert_eq!(
        ack["winner_candidate_id"].as_str().unwrap(),
        shown_b,
        "b means the right-hand response as shown"
    );
    let (status, again) = w.labeler.post(&path, body).await;
    assert_eq!(status, 200, "a repeat is acknowledged, not stored twice");
    assert_eq!(again["judgment_id"], ack["judgment_id"]);
    // Settings are enforced: strength is off in this campaign.
    let (_, next) = w.labeler.get(&format!("/api/v1/campaigns/{x}/next")).await;
    let bad = json!({"choice": "a", "strength": 2, "client_request_id": "req-2"});
    let (status, error) = w
        .labeler
        .post(
            &format!(
                "/api/v1/assignments/{}/judgment",
                next["assignment_id"].as_str().unwrap()
            ),
            bad,
        )
        .await;
    assert_eq!(status, 422, "{error}");
    // Labelers exhaust the queue, then get 204.
    let mut n = 1;
    loop {
        let response = w.labeler.get(&format!("/api/v1/campaigns/{x}/next")).await;
        if response.0 == 204 {
            break;
        }
        n += 1;
        let id = response.1["assignment_id"].as_str().unwrap().to_string();
        let (status, _) = w
            .labeler
            .post(
                &format!("/api/v1/assignments/{id}/judgment"),
                json!({"choice": "tie", "client_request_id": format!("t{n}")}),
            )
            .await;
        assert_eq!(status, 201);
    }
    assert_eq!(n, 4, "four items, each judged once by this labeler");
    let (status, stats) = w
        .researcher
        .get(&format!("/api/v1/campaigns/{x}/stats"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stats["judgments"], 4);
    assert_eq!(stats["items"], 4);
    assert_eq!(
        stats["completion"], 0.5,
        "overlap 2: half the slots are filled"
    );
    // Researchers see labelers by pseudonym only; admins see who it is too.
    let labeler = &stats["labelers"][0];
    assert!(
        labeler["labeler"]
            .as_str()
            .is_some_and(|p| p.starts_with("labeler-")),
        "{labeler}"
    );
    assert!(
        labeler["email"].is_null() && labeler["user_id"].is_null(),
        "{labeler}"
    );
    let (_, by_admin) = w.admin.get(&format!("/api/v1/campaigns/{x}/stats")).await;
    assert_eq!(by_admin["labelers"][0]["email"], "lab@x");
    assert_eq!(by_admin["labelers"][0]["labeler"], labeler["labeler"]);
    // Paused campaigns hand out nothing new.
    let (status, _) = w
        .admin
        .patch(
            &format!("/api/v1/campaigns/{}", w.y),
            json!({"status": "paused"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        w.outsider
            .get(&format!("/api/v1/campaigns/{}/next", w.y))
            .await
            .0,
        409
    );
    let (status, _) = w
        .admin
        .patch(
            &format!("/api/v1/campaigns/{}", w.y),
            json!({"status": "draft"}),
        )
        .await;
    assert_eq!(status, 409, "paused cannot go back to draft");
}

/// `POST judgment?next=true` answers with the next item too: one request per item.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_judgment_can_bring_the_next_item(pool: PgPool) {
    let w = world(pool).await;
    let mut assignment = w.x_assignment.clone();
    let mut seen = vec![assignment.clone()];
    loop {
        let path = format!("/api/v1/assignments/{assignment}/judgment?next=true");
        let body = json!({"choice": "a", "client_request_id": format!("adv-{}", seen.len())});
        let (status, answer) = w.labeler.post(&path, body.clone()).await;
        assert_eq!(status, 201, "{answer}");
        assert!(
            answer.get("next").is_some(),
            "asked for, so present: {answer}"
        );
        let (status, again) = w.labeler.post(&path, body).await;
        assert_eq!(status, 200, "a repeat is acknowledged: {again}");
        assert_eq!(again["judgment_id"], answer["judgment_id"]);
        assert_eq!(
            again["next"], answer["next"],
            "a repeat brings the same lease back"
        );
        match answer["next"]["assignment_id"].as_str() {
            Some(next) => {
                assert!(!seen.iter().any(|s| s == next), "never the same item twice");
                assert_eq!(answer["next"]["responses"].as_array().unwrap().len(), 2);
                seen.push(next.to_string());
                assignment = next.to_string();
            }
            None => {
                assert!(answer["next"].is_null(), "{answer}");
                break;
            }
        }
    }
    assert_eq!(seen.len(), 4, "each of the four items once");

    // `exclude` keeps the item held in reserve out of the answer.
    let y = &w.y;
    let (status, reserve) = w
        .outsider
        .get(&format!(
            "/api/v1/campaigns/{y}/next?exclude={}",
            w.y_assignment
        ))
        .await;
    assert_eq!(status, 200);
    let reserve = reserve["assignment_id"].as_str().unwrap().to_string();
    assert_ne!(reserve, w.y_assignment);
    let (status, answer) = w
        .outsider
        .post(
            &format!(
                "/api/v1/assignments/{}/judgment?next=true&exclude={reserve}",
                w.y_assignment
            ),
            json!({"choice": "b", "client_request_id": "y-1"}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let third = answer["next"]["assignment_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(third != reserve && third != w.y_assignment, "{answer}");
    // Without the flag there is no `next`; a paused campaign brings none.
    let (status, answer) = w
        .outsider
        .post(
            &format!("/api/v1/assignments/{third}/judgment"),
            json!({"choice": "tie", "client_request_id": "y-2"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(answer.get("next").is_none(), "{answer}");
    let (status, _) = w
        .admin
        .patch(
            &format!("/api/v1/campaigns/{y}"),
            json!({"status": "paused"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = w
        .outsider
        .post(
            &format!("/api/v1/assignments/{reserve}/judgment?next=true"),
            json!({"choice": "a", "client_request_id": "y-3"}),
        )
        .await;
    assert_eq!(
        status, 201,
        "paused campaigns still take judgments: {answer}"
    );
    assert!(answer["next"].is_null(), "but hand out nothing: {answer}");
    let (status, error) = w
        .outsider
        .post(
            &format!("/api/v1/assignments/{reserve}/judgment?next=maybe"),
            json!({"choice": "a", "client_request_id": "y-3"}),
        )
        .await;
    assert_eq!(status, 400, "{error}");
}

/// Polls `path` until it answers `expected` (at most 5 s); returns the last status.
async fn eventually(api: &Api, path: &str, expected: u16) -> u16 {
    let mut status = 0;
    for _ in 0..250 {
        status = api.get(path).await.0;
        if status == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    status
}

/// The server keeps callers and campaign rights in memory: a change made through it applies to
/// the very next request, and one made elsewhere (another server, the CLI, psql) as soon as
/// PostgreSQL's notification arrives, far sooner than the copies' 5-minute lifetime.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn access_changes_reach_kept_rights(pool: PgPool) {
    let w = world(pool.clone()).await;
    let x = &w.x;
    let next = format!("/api/v1/campaigns/{x}/next");
    let judgment = format!("/api/v1/assignments/{}/judgment", w.x_assignment);
    assert_eq!(w.labeler.get(&next).await.0, 200);
    assert_eq!(w.labeler.get("/api/v1/me").await.0, 200);

    let (_, me) = w.labeler.get("/api/v1/me").await;
    let member = format!(
        "/api/v1/campaigns/{x}/members/{}",
        me["id"].as_str().unwrap()
    );
    assert_eq!(w.admin.send(Method::DELETE, &member, None).await.0, 204);
    assert_eq!(w.labeler.get(&next).await.0, 404, "removed at once");
    let answer = json!({"choice": "a", "client_request_id": "after-removal"});
    assert_eq!(w.labeler.post(&judgment, answer.clone()).await.0, 404);
    w.admin.add_member(x, "lab@x", "labeler").await;
    assert_eq!(w.labeler.get(&next).await.0, 200, "back at once");
    // The admin page's server functions count as changes too.
    let set_status = <app::api::SetCampaignStatus as ServerFn>::PATH;
    let pause = [("id", x.as_str()), ("status", "paused")];
    assert_eq!(w.admin.form(set_status, &pause).await, 200);
    assert_eq!(w.labeler.get(&next).await.0, 409, "paused at once");
    let resume = [("id", x.as_str()), ("status", "active")];
    assert_eq!(w.admin.form(set_status, &resume).await, 200);
    assert_eq!(w.labeler.get(&next).await.0, 200, "resumed at once");

    // Changes that do not pass through this server.
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1::uuid")
        .bind(x)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(eventually(&w.labeler, &next, 409).await, 409);
    sqlx::query("UPDATE campaigns SET status = 'active' WHERE id = $1::uuid")
        .bind(x)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(eventually(&w.labeler, &next, 200).await, 200);
    sqlx::query("DELETE FROM campaign_members WHERE user_id = $1::uuid")
        .bind(me["id"].as_str().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(eventually(&w.labeler, &next, 404).await, 404);
    assert_eq!(w.labeler.post(&judgment, answer).await.0, 404);
    sqlx::query("UPDATE users SET disabled = true WHERE email = 'lab@x'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(eventually(&w.labeler, "/api/v1/me", 401).await, 401);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn import_reports_lines_and_limits(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let (_, c) = admin.post("/api/v1/campaigns", json!({"name": "c"})).await;
    let id = c["id"].as_str().unwrap();
    let body = format!("{}\n\n{{\"prompt\": \"p\"}}\n{}\n", pair(1), pair(2));
    let (status, report) = admin.import(id, body, "application/x-ndjson").await;
    assert_eq!(status, 422);
    assert_eq!(report["imported"], 0);
    assert_eq!(report["errors"][0]["line"], 3);
    let csv = "prompt,response_a,response_b\nhello,\"a, with comma\",b\n".to_string();
    let (status, report) = admin.import(id, csv, "text/csv").await;
    assert_eq!(
        (status, report["imported"].clone()),
        (201, json!(1)),
        "{report}"
    );
    // JSON bodies over the limit get 413.
    let huge = json!({"name": "x".repeat(2 << 20)});
    assert_eq!(admin.post("/api/v1/campaigns", huge).await.0, 413);
    // Unknown fields and bad enums are refused with a message.
    let (status, error) = admin
        .post("/api/v1/campaigns", json!({"name": "n", "overlapp": 2}))
        .await;
    assert_eq!(status, 422, "{error}");
    assert!(error["error"].as_str().unwrap().contains("overlapp"));
}

/// The page and the API are two adapters over one import operation: the same bad input gets
/// the same line-numbered report through both, and imports nothing through either.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn page_and_api_report_the_same_import_errors(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let (_, c) = admin.post("/api/v1/campaigns", json!({"name": "c"})).await;
    let id = c["id"].as_str().unwrap();

    // Items: a line without responses and one that is not JSON, among good lines.
    let items = format!(
        "{}\n{{\"prompt\": \"p\"}}\n{}\nnot json\n",
        pair(1),
        pair(2)
    );
    let (status, api_report) = admin
        .import(id, items.clone(), "application/x-ndjson")
        .await;
    assert_eq!(status, 422, "{api_report}");
    let import_text = <app::api::ImportText as ServerFn>::PATH;
    let fields = [("id", id), ("text", items.as_str()), ("format", "jsonl")];
    let (status, page_report) = admin.form_json(import_text, &fields).await;
    assert_eq!(status, 200, "{page_report}");
    assert_eq!(page_report, api_report);
    assert_eq!(api_report["error_count"], 2);
    let lines: Vec<&Value> = api_report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["line"])
        .collect();
    assert_eq!(lines, [&json!(2), &json!(4)]);
    // The page names its format; anything but jsonl or csv is refused, not read as JSONL.
    let fields = [("id", id), ("text", items.as_str()), ("format", "xml")];
    let (status, error) = admin.form_json(import_text, &fields).await;
    assert_eq!(status, 500, "{error}");
    assert!(
        error.to_string().contains("unknown import format"),
        "{error}"
    );

    // Prompts: every bad line is reported, not just the first.
    let prompts = "first prompt\n{\"prompt\": 3}\n[\"broken\"\n\"fine\"\n";
    let (status, api_report) = admin
        .post_text(
            &format!("/api/v1/campaigns/{id}/prompts"),
            prompts,
            "application/x-ndjson",
        )
        .await;
    assert_eq!(status, 422, "{api_report}");
    let add_prompts = <app::api::AddPromptsText as ServerFn>::PATH;
    let (status, page_report) = admin
        .form_json(add_prompts, &[("id", id), ("text", prompts)])
        .await;
    assert_eq!(status, 200, "{page_report}");
    assert_eq!(page_report, api_report);
    assert_eq!(api_report["error_count"], 2, "{api_report}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM prompts WHERE campaign_id = $1::uuid")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 0, "nothing was imported through either");
    // Plain lines are prompts through both.
    let (status, report) = admin
        .post_text(
            &format!("/api/v1/campaigns/{id}/prompts"),
            "plain prompt\n\"json prompt\"\n",
            "text/plain",
        )
        .await;
    assert_eq!(
        (status, report["imported"].clone()),
        (201, json!(2)),
        "{report}"
    );
}

/// Stored data that no longer reads back is a fault of ours, not the caller's: a 500 with a
/// generic message (the detail goes to the log), never a 409 that shows internals.
/// Found by `make test-api-schema`: a NUL character, which PostgreSQL cannot store in text or
/// jsonb, used to answer 500 wherever it went. It is the caller's mistake: 422.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn nul_characters_are_refused_not_a_server_error(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let (status, body) = admin
        .post("/api/v1/campaigns", json!({"name": "a\u{0}b"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("NUL"), "{body}");
    let (_, c) = admin.post("/api/v1/campaigns", json!({"name": "c"})).await;
    let id = c["id"].as_str().unwrap();
    let (status, body) = admin
        .post_text(
            &format!("/api/v1/campaigns/{id}/items"),
            "{\"prompt\": \"p\\u0000\", \"responses\": [\"a\", \"b\"]}\n",
            "application/x-ndjson",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(admin.get(&format!("/api/v1/campaigns/{id}")).await.0, 200);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn corrupt_stored_data_is_an_internal_error(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let (_, c) = admin.post("/api/v1/campaigns", json!({"name": "c"})).await;
    let id = c["id"].as_str().unwrap();
    let (status, export) = admin
        .post(
            "/api/v1/exports",
            json!({"campaigns": [id], "format": "trl"}),
        )
        .await;
    assert_eq!(status, 202, "{export}");
    let export_id = export["id"].as_str().unwrap();
    let path = format!("/api/v1/exports/{export_id}");
    assert_eq!(admin.get(&path).await.0, 200);
    sqlx::query("UPDATE exports SET spec = '{\"format\": 7}' WHERE id = $1::uuid")
        .bind(export_id)
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = admin.get(&path).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body, json!({"error": "internal server error"}));
    assert_eq!(admin.get("/api/v1/exports").await.0, 500);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn login_sessions_csrf_and_throttling(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    user(&pool, "ann@x", Role::Labeler).await;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |password: &'static str, origin: Option<String>| {
        let mut request = browser.post(server.url("/auth/login")).form(&[
            ("email", "Ann@X"),
            ("password", password),
            ("next", "/campaigns"),
        ]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let refused = login(tests::PASSWORD, Some("http://evil.example".into()))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "cross-origin login form refused");
    let ok = login(tests::PASSWORD, Some(server.base.clone()))
        .await
        .unwrap();
    assert_eq!(ok.status(), 303);
    assert_eq!(ok.headers()["location"], "/campaigns");
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let me: serde_json::Value = browser
        .get(server.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["email"], "ann@x");
    // A cookie-authenticated write from another origin is refused.
    let forged = browser
        .post(server.url("/api/v1/campaigns"))
        .header("origin", "http://evil.example")
        .json(&json!({"name": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Ten failures lock the e-mail for a while, even with the right password.
    for _ in 0..10 {
        let r = login("wrong password!", None).await.unwrap();
        assert_eq!(
            r.headers()["location"],
            "/login?error=invalid&email=Ann%40X&next=%2Fcampaigns",
            "the form again, with the e-mail as typed"
        );
    }
    let r = login(tests::PASSWORD, None).await.unwrap();
    assert_eq!(
        r.headers()["location"],
        "/login?error=throttled&email=Ann%40X&next=%2Fcampaigns"
    );
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = 'ann@x'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn health_metrics_and_openapi(pool: PgPool) {
    let server = spawn(pool).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let _ = http.get(server.url("/api/v1/me")).send().await.unwrap();
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pairwise_http_requests_total"),
        "{metrics}"
    );
    let spec: serde_json::Value = http
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}",
        "/api/v1/campaigns/{id}/members",
        "/api/v1/campaigns/{id}/items",
        "/api/v1/campaigns/{id}/next",
        "/api/v1/campaigns/{id}/stats",
        "/api/v1/assignments/{id}/judgment",
        "/api/v1/models",
        "/api/v1/campaigns/{id}/prompts",
        "/api/v1/exports/{id}/train",
        "/api/v1/training",
        "/api/v1/training/{id}",
        "/api/v1/training/{id}/cancel",
        "/api/v1/campaigns/{id}/generate",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/cancel",
        "/api/v1/exports",
        "/api/v1/exports/{id}",
        "/api/v1/exports/{id}/files/{name}",
        "/api/v1/exports/{id}/cancel",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} is not documented"
        );
    }
    // Every route the server has, with its method.
    for (method, template) in server::http::api::ROUTES {
        let path = format!("/api/v1{template}");
        assert!(
            spec["paths"][&path].get(method).is_some(),
            "{method} {path} is not documented"
        );
    }
}

/// Settings change after creation; only a closed campaign is archived; a campaign that holds
/// judgments is deleted only with them.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn settings_archive_and_delete(pool: PgPool) {
    let w = world(pool.clone()).await;
    let x = &w.x;
    let path = format!("/api/v1/campaigns/{x}");
    let options = json!({"allow_tie": false, "strength_scale": 3, "rationale": "required",
                         "lease_seconds": 60, "name": "X2"});
    let (status, campaign) = w.admin.patch(&path, options).await;
    assert_eq!(status, 200, "{campaign}");
    assert_eq!(
        (
            &campaign["allow_tie"],
            &campaign["strength_scale"],
            &campaign["rationale"],
            &campaign["lease_seconds"],
            &campaign["name"]
        ),
        (
            &json!(false),
            &json!(3),
            &json!("required"),
            &json!(60),
            &json!("X2")
        )
    );
    // The new rules hold for the next judgment.
    let tie = json!({"choice": "tie", "client_request_id": "t", "rationale": "same"});
    let (status, error) = w
        .labeler
        .post(
            &format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            tie,
        )
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, error) = w.admin.patch(&path, json!({"archived": true})).await;
    assert_eq!(status, 409, "{error}");
    let pick =
        json!({"choice": "a", "strength": 2, "rationale": "clearer", "client_request_id": "a"});
    let (status, ack) = w
        .labeler
        .post(
            &format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            pick,
        )
        .await;
    assert_eq!(status, 201, "{ack}");
    assert_eq!(
        w.admin.patch(&path, json!({"status": "closed"})).await.0,
        200
    );
    let (status, campaign) = w.admin.patch(&path, json!({"archived": true})).await;
    assert_eq!(
        (status, &campaign["archived"]),
        (200, &json!(true)),
        "{campaign}"
    );
    let (_, list) = w.admin.get("/api/v1/campaigns").await;
    let archived: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["archived"] == true)
        .collect();
    assert_eq!(archived.len(), 1);
    let (status, error) = w.admin.send(Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("1 judgment:"),
        "{error}"
    );
    let (status, _) = w
        .admin
        .send(Method::DELETE, &format!("{path}?with_judgments=true"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(w.admin.get(&path).await.0, 404);
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM judgments WHERE campaign_id = $1::uuid")
            .bind(x)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
    // A campaign with an open generation job is not deleted under its workers.
    let busy = campaign_with_items(&w.admin, json!({"name": "busy"}), &[]).await;
    let model_path = std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)");
    let model = json!({"name": "m", "path": model_path});
    assert_eq!(w.admin.post("/api/v1/models", model).await.0, 201);
    let prompts = format!("/api/v1/campaigns/{busy}/prompts");
    assert_eq!(w.admin.post(&prompts, json!("Say hi.")).await.0, 201);
    let (status, job) = w
        .admin
        .post(
            &format!("/api/v1/campaigns/{busy}/generate"),
            json!({"model": "m"}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let busy_path = format!("/api/v1/campaigns/{busy}");
    let (status, error) = w.admin.send(Method::DELETE, &busy_path, None).await;
    assert_eq!(status, 409, "{error}");
    assert!(error.to_string().contains("cancel it first"), "{error}");
    let cancel = format!("/api/v1/jobs/{}/cancel", job["job_id"].as_str().unwrap());
    assert_eq!(w.admin.post(&cancel, json!({})).await.0, 200);
    assert_eq!(w.admin.send(Method::DELETE, &busy_path, None).await.0, 204);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_labeler_changes_their_last_answer_within_the_window(pool: PgPool) {
    let w = world(pool.clone()).await;
    let x = &w.x;
    let (_, campaign) = w.admin.get(&format!("/api/v1/campaigns/{x}")).await;
    assert_eq!(campaign["undo_seconds"], 300, "five minutes by default");
    let labeler = &w.labeler;
    let put = |id: &str, body: Value| {
        let path = format!("/api/v1/judgments/{id}");
        async move { labeler.send(Method::PUT, &path, Some(body)).await }
    };
    let (status, first) = w
        .labeler
        .post(
            &format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            json!({"choice": "a", "client_request_id": "r1", "rationale": "left"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    let j1 = first["judgment_id"].as_str().unwrap().to_string();
    let (status, changed) = put(&j1, json!({"choice": "b", "client_request_id": "r2"})).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["choice"], "b");
    assert_eq!(changed["created"], true);
    assert_ne!(changed["winner_candidate_id"], first["winner_candidate_id"]);
    // The same request again changes nothing more.
    let (status, again) = put(&j1, json!({"choice": "b", "client_request_id": "r2"})).await;
    assert_eq!(
        (status, again["created"].clone()),
        (200, json!(false)),
        "{again}"
    );
    // A skip gives the item's place back, and taking the answer back takes it again.
    let (_, skipped) = put(&j1, json!({"choice": "skip", "client_request_id": "r3"})).await;
    assert_eq!(
        skipped["progress"],
        json!({"done": 0, "skipped": 1}),
        "{skipped}"
    );
    let (_, answered) = put(&j1, json!({"choice": "tie", "client_request_id": "r4"})).await;
    assert_eq!(
        answered["progress"],
        json!({"done": 1, "skipped": 0}),
        "{answered}"
    );
    // A late retry of an earlier change, or of the first answer, changes nothing.
    let (status, late) = put(&j1, json!({"choice": "b", "client_request_id": "r2"})).await;
    assert_eq!(status, 200, "{late}");
    assert_eq!(
        (&late["created"], &late["choice"]),
        (&json!(false), &json!("tie"))
    );
    let (status, resent) = w
        .labeler
        .post(
            &format!("/api/v1/assignments/{}/judgment", w.x_assignment),
            json!({"choice": "a", "client_request_id": "r1", "rationale": "left"}),
        )
        .await;
    assert_eq!(status, 200, "{resent}");
    assert_eq!(
        (&resent["created"], &resent["choice"]),
        (&json!(false), &json!("tie"))
    );
    let remaining: Vec<i32> =
        sqlx::query_scalar("SELECT remaining FROM items WHERE campaign_id = $1::uuid ORDER BY seq")
            .bind(x)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        remaining.iter().sum::<i32>(),
        4 * 2 - 1,
        "one place taken: {remaining:?}"
    );
    // The item shows the answer as it stands, and every answer it replaced.
    let item_id =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT item_id FROM judgments WHERE id = $1::uuid")
            .bind(&j1)
            .fetch_one(&pool)
            .await
            .unwrap();
    let (_, item) = w.admin.get(&format!("/api/v1/items/{item_id}")).await;
    let judgment = &item["judgments"][0];
    assert_eq!(judgment["choice"], "tie", "{item}");
    assert!(judgment["revised_at"].is_string(), "{judgment}");
    let history: Vec<&str> = judgment["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["choice"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["a", "b", "skip"]);
    assert_eq!(judgment["revisions"][0]["rationale"], "left");
    // Only the last answer can change.
    let (_, next) = w.labeler.get(&format!("/api/v1/campaigns/{x}/next")).await;
    let (_, second) = w
        .labeler
        .post(
            &format!(
                "/api/v1/assignments/{}/judgment",
                next["assignment_id"].as_str().unwrap()
            ),
            json!({"choice": "a", "client_request_id": "s1"}),
        )
        .await;
    let j2 = second["judgment_id"].as_str().unwrap().to_string();
    let (status, body) = put(&j1, json!({"choice": "a", "client_request_id": "r5"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("last answer"), "{body}");
    // Once the window has passed, the answer stays (every judgment made 301 s earlier, so
    // their order stays).
    sqlx::query(
        "UPDATE judgments SET created_at = created_at - interval '301 seconds'
         WHERE campaign_id = $1::uuid",
    )
    .bind(x)
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = put(&j2, json!({"choice": "b", "client_request_id": "s2"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("5 minutes"), "{body}");
    // The campaign sets the window: longer, or none at all.
    let campaign_path = format!("/api/v1/campaigns/{x}");
    let patch = |body: Value| w.admin.patch(&campaign_path, body);
    assert_eq!(patch(json!({"undo_seconds": 86_401})).await.0, 422);
    assert_eq!(patch(json!({"undo_seconds": 600})).await.0, 200);
    let (status, body) = put(&j2, json!({"choice": "b", "client_request_id": "s3"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(patch(json!({"undo_seconds": 0})).await.0, 200);
    let (status, body) = put(&j2, json!({"choice": "a", "client_request_id": "s4"})).await;
    assert_eq!(status, 409, "{body}");
    // Nor once the campaign is closed.
    assert_eq!(
        patch(json!({"undo_seconds": 300, "status": "closed"}))
            .await
            .0,
        200
    );
    let (status, body) = put(&j2, json!({"choice": "a", "client_request_id": "s5"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("closed"), "{body}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_export_form_takes_what_the_api_takes(pool: PgPool) {
    let w = world(pool).await;
    let start_export = <app::api::StartExport as ServerFn>::PATH;
    let fields = |campaigns: &[(&'static str, &str)], since: &'static str| {
        let mut fields: Vec<(&str, String)> = campaigns
            .iter()
            .map(|(name, id)| (*name, id.to_string()))
            .collect();
        for (name, value) in [
            ("format", "trl"),
            ("file_type", "jsonl"),
            ("aggregation", "majority"),
            ("ties", "drop"),
            ("both_bad", "drop"),
            ("min_judgments", "1"),
            ("min_agreement", "0"),
            ("since", since),
            ("until", ""),
            ("test_fraction", "0"),
            ("split_seed", "0"),
            ("columns", ""),
            ("license", "other"),
        ] {
            fields.push((name, value.to_string()));
        }
        fields
    };
    let admin = &w.admin;
    let send = |fields: Vec<(&'static str, String)>| async move {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        admin.form_json(start_export, &fields).await
    };
    // Two campaigns, as the page's boxes name them (one box left unticked between them).
    let both = [
        ("campaigns[0]", w.x.as_str()),
        ("campaigns[2]", w.y.as_str()),
    ];
    let (status, id) = send(fields(&both, "2026-01-02T03:04")).await;
    assert_eq!(status, 200, "{id}");
    let (_, export) = w
        .admin
        .get(&format!("/api/v1/exports/{}", id.as_str().unwrap()))
        .await;
    assert_eq!(export["spec"]["campaigns"], json!([w.x, w.y]), "{export}");
    assert_eq!(export["spec"]["since"], "2026-01-02T03:04:00Z", "{export}");
    assert!(export["spec"]["until"].is_null(), "{export}");
    // No campaign, or a time that is not one, is said in words.
    let (status, error) = send(fields(&[], "")).await;
    assert_ne!(status, 200);
    assert!(
        error.to_string().contains("at least one campaign"),
        "{error}"
    );
    let (status, error) = send(fields(&both, "yesterday")).await;
    assert_ne!(status, 200);
    assert!(error.to_string().contains("not a date"), "{error}");
}
