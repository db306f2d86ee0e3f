//! Data quality over HTTP: four labelers answer a planned pattern, and the quality endpoint's
//! agreement figures equal the reference implementation (`krippendorff` from PyPI) and a plain
//! count on the same labels.

use domain::Role;
use serde_json::{json, Value};
use store::PgPool;
use tests::{campaign_with_items, pair, spawn, user, Api};

/// Each labeler's answer per item, in the item's own order: F first better, S second better,
/// T tie, B both bad, K skip.
const PLAN: [&str; 4] = ["FSFTSF", "FSSTSF", "FSTBSK", "FFFTSS"];

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn agreement_equals_the_reference_on_planned_labels(pool: PgPool) {
    let python = std::env::var("PAIRWISE_PYTHON").expect(
        "PAIRWISE_PYTHON must name a python with `krippendorff` (make test sets it up with scripts/python-datasets.sh)",
    );
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let items: Vec<Value> = (0..6).map(pair).collect();
    let campaign = campaign_with_items(&admin, json!({"name": "Q", "overlap": 4}), &items).await;
    admin.add_member(&campaign, "res@x", "researcher").await;
    let path = format!("/api/v1/campaigns/{campaign}/quality");
    let (status, empty) = researcher.get(&path).await;
    assert_eq!(status, 200, "{empty}");
    assert!(empty["alpha"]["value"].is_null(), "nothing judged: {empty}");

    for (n, plan) in PLAN.iter().enumerate() {
        let email = format!("lab{n}@x");
        let labeler = Api::new(&server, &user(&pool, &email, Role::Labeler).await);
        admin.add_member(&campaign, &email, "labeler").await;
        loop {
            let (status, item) = labeler
                .get(&format!("/api/v1/campaigns/{campaign}/next"))
                .await;
            if status == 204 {
                break;
            }
            let responses = item["responses"].as_array().unwrap();
            let text = |side: usize| responses[side]["text"].as_str().unwrap().to_string();
            let index: usize = text(0).rsplit(' ').next().unwrap().parse().unwrap();
            let first_shown_left = text(0).starts_with("first");
            let choice = match plan.as_bytes()[index] {
                b'F' if first_shown_left => "a",
                b'F' => "b",
                b'S' if first_shown_left => "b",
                b'S' => "a",
                b'T' => "tie",
                b'B' => "both_bad",
                _ => "skip",
            };
            let (status, ack) = labeler
                .post(
                    &format!(
                        "/api/v1/assignments/{}/judgment",
                        item["assignment_id"].as_str().unwrap()
                    ),
                    json!({"choice": choice, "client_request_id": format!("{n}-{index}")}),
                )
                .await;
            assert_eq!(status, 201, "{ack}");
        }
    }

    let (status, quality) = researcher.get(&path).await;
    assert_eq!(status, 200, "{quality}");
    // The reference: rows are labelers, columns items, NaN where there is no label.
    let reference = std::process::Command::new(&python)
        .arg("-c")
        .arg(
            "import json, sys, itertools, numpy as np, krippendorff
plan = json.loads(sys.argv[1])
codes = {'F': 0, 'S': 1, 'T': 2, 'B': 3}
data = np.array([[codes.get(c, np.nan) for c in row] for row in plan], dtype=float)
alpha = krippendorff.alpha(reliability_data=data, level_of_measurement='nominal')
columns = [[v for v in data[:, i] if not np.isnan(v)] for i in range(data.shape[1])]
columns = [c for c in columns if len(c) >= 2]
pairs = [(a == b) for c in columns for a, b in itertools.permutations(c, 2)]
split = sum(len(set(c)) > 1 for c in columns) / len(columns)
# Each labeler against the others' majority, where the others have a single most common label.
agreement = []
for r in range(data.shape[0]):
    agreed = compared = 0
    for i in range(data.shape[1]):
        others = [data[o, i] for o in range(data.shape[0]) if o != r and not np.isnan(data[o, i])]
        if np.isnan(data[r, i]) or not others:
            continue
        counts = {v: others.count(v) for v in set(others)}
        top = max(counts.values())
        if list(counts.values()).count(top) > 1:
            continue
        compared += 1
        agreed += counts.get(data[r, i], 0) == top
    agreement.append([agreed, compared])
print(json.dumps({'alpha': alpha, 'pairwise': sum(pairs) / len(pairs), 'split': split,
                  'agreement': agreement}))",
        )
        .arg(json!(PLAN).to_string())
        .output()
        .expect("running the reference");
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let reference: Value = serde_json::from_slice(&reference.stdout).unwrap();
    let close = |ours: &Value, theirs: &Value| {
        (ours.as_f64().unwrap() - theirs.as_f64().unwrap()).abs() < 1e-9
    };
    assert!(
        close(&quality["alpha"]["value"], &reference["alpha"]),
        "alpha {} vs krippendorff {}",
        quality["alpha"]["value"],
        reference["alpha"]
    );
    assert!(
        close(&quality["pairwise_agreement"], &reference["pairwise"]),
        "{quality}"
    );
    assert!(
        close(&quality["split_share"], &reference["split"]),
        "{quality}"
    );
    assert_eq!(quality["items_compared"], 6);
    let (low, high) = (
        quality["alpha"]["ci_low"].as_f64().unwrap(),
        quality["alpha"]["ci_high"].as_f64().unwrap(),
    );
    let alpha = quality["alpha"]["value"].as_f64().unwrap();
    assert!(low <= alpha && alpha <= high, "{quality}");
    // Labelers by pseudonym for researchers; admins also see who they are.
    let labelers = quality["labelers"].as_array().unwrap();
    assert_eq!(labelers.len(), 4);
    assert!(labelers.iter().all(|l| l["email"].is_null()), "{quality}");
    assert!(!quality.to_string().contains("lab0@x"));
    let skips: i64 = labelers.iter().map(|l| l["skips"].as_i64().unwrap()).sum();
    assert_eq!(skips, 1);
    let (_, by_admin) = admin.get(&path).await;
    assert!(by_admin.to_string().contains("lab0@x"), "{by_admin}");
    for labeler in by_admin["labelers"].as_array().unwrap() {
        let email = labeler["email"].as_str().unwrap();
        let n: usize = email
            .trim_start_matches("lab")
            .trim_end_matches("@x")
            .parse()
            .unwrap();
        let [agreed, compared] = [0, 1].map(|k| reference["agreement"][n][k].as_i64().unwrap());
        assert_eq!(labeler["agreement_n"], compared, "{email}: {labeler}");
        assert!(
            close(
                &labeler["agreement"],
                &json!(agreed as f64 / compared as f64)
            ),
            "{email}: {labeler} vs {agreed}/{compared}"
        );
    }
    let hours = quality["throughput"].as_array().unwrap();
    let counted: i64 = hours.iter().map(|h| h["judgments"].as_i64().unwrap()).sum();
    assert_eq!(counted, 23, "24 answers, one of them a skip: {quality}");
}
