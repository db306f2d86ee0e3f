//! Preference dataset export against a real database: a small labeled fixture with known
//! votes, exported in every format and file type, with filters, splits and access control.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use domain::{ExportFormat, ExportSpec, FileType, Keep, PairColumn, Role};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use store::PgPool;
use tests::{spawn, user, Api};
use uuid::Uuid;

/// What one labeler answers on one item: prefer the response whose text starts with the
/// tag, or a non-preference.
#[derive(Clone, Copy)]
enum Vote {
    Prefer(&'static str, i32),
    Tie,
    BothBad,
    Skip,
}

/// Votes of labelers 1, 2 and 3 per item, keyed by the two responses' tags (import order).
fn plan() -> HashMap<(&'static str, &'static str), [Vote; 3]> {
    use Vote::*;
    HashMap::from([
        (
            ("A0", "B0"),
            [Prefer("A0", 3), Prefer("A0", 1), Prefer("A0", 2)],
        ),
        (
            ("A1", "B1"),
            [Prefer("B1", 2), Prefer("B1", 2), Prefer("A1", 1)],
        ),
        (("A2", "B2"), [Tie, Tie, Prefer("A2", 1)]),
        (("A3", "B3"), [BothBad, BothBad, BothBad]),
        (("A4", "B4"), [Skip, Skip, Skip]),
        (("X5", "Y5"), [Prefer("X5", 1), Prefer("X5", 1), Skip]),
        (("X5", "Z5"), [Prefer("X5", 1), Prefer("X5", 1), Skip]),
        (("Y5", "Z5"), [Prefer("Y5", 1), Prefer("Y5", 1), Skip]),
        (
            ("G6", "H6"),
            [Prefer("G6", 3), Prefer("G6", 3), Prefer("G6", 3)],
        ),
    ])
}

/// A long response in several scripts, with characters JSON must escape.
fn long_text() -> String {
    let mut text = String::from("A0 — naïve café, 中文, emoji 🎉, \"quotes\", back\\slash,\ttab\n");
    while text.len() < 300_000 {
        text.push_str("Ünïcødé line with 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and \u{2028} separators.\n");
    }
    text
}

fn conversation() -> Value {
    json!([
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "And now?"}
    ])
}

struct Fixture {
    server: tests::TestServer,
    admin: Api,
    researcher: Api,
    labeler: Api,
    campaign: Uuid,
}

async fn labeled(pool: PgPool) -> Fixture {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let labelers = [
        Api::new(&server, &user(&pool, "l1@x", Role::Labeler).await),
        Api::new(&server, &user(&pool, "l2@x", Role::Labeler).await),
        Api::new(&server, &user(&pool, "l3@x", Role::Labeler).await),
    ];
    let (status, campaign) = admin
        .post(
            "/api/v1/campaigns",
            json!({"name": "Export fixture", "overlap": 3, "strength_scale": 3}),
        )
        .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_string();
    let lines = [
        json!({"prompt": "prompt 0 ✓", "responses": [
            {"text": long_text(), "model": "m-a"}, {"text": "B0 short", "model": "m-b"}]}),
        json!({"prompt": conversation(), "responses": ["A1 fine", "B1 better"]}),
        json!({"prompt": "prompt 2", "responses": ["A2", "B2"]}),
        json!({"prompt": "prompt 3", "responses": ["A3", "B3"]}),
        json!({"prompt": "prompt 4", "responses": ["A4", "B4"]}),
        json!({"prompt": "rank these", "responses": ["X5", "Y5", "Z5"]}),
        json!({"prompt": "gold", "responses": ["G6", "H6"], "gold": 0}),
    ];
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (status, report) = admin.import(&id, jsonl, "application/x-ndjson").await;
    assert_eq!(status, 201, "{report}");
    for (email, role) in [
        ("res@x", "researcher"),
        ("l1@x", "labeler"),
        ("l2@x", "labeler"),
        ("l3@x", "labeler"),
    ] {
        let (status, body) = admin
            .post(
                &format!("/api/v1/campaigns/{id}/members"),
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = admin
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let plan = plan();
    for (index, labeler) in labelers.iter().enumerate() {
        let mut judged = 0;
        loop {
            let (status, item) = labeler.get(&format!("/api/v1/campaigns/{id}/next")).await;
            if status == 204 {
                break;
            }
            assert_eq!(status, 200, "{item}");
            let shown: Vec<String> = item["responses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["text"].as_str().unwrap()[..2].to_string())
                .collect();
            let mut key = shown.clone();
            key.sort();
            let votes = plan
                .iter()
                .find(|((a, b), _)| *a == key[0] && *b == key[1])
                .map(|(_, v)| v[index])
                .unwrap_or_else(|| panic!("no plan for {key:?}"));
            let (choice, strength) = match votes {
                Vote::Prefer(tag, strength) => {
                    (if shown[0] == tag { "a" } else { "b" }, Some(strength))
                }
                Vote::Tie => ("tie", None),
                Vote::BothBad => ("both_bad", None),
                Vote::Skip => ("skip", None),
            };
            let assignment = item["assignment_id"].as_str().unwrap();
            let (status, ack) = labeler
                .post(
                    &format!("/api/v1/assignments/{assignment}/judgment"),
                    json!({"choice": choice, "strength": strength,
                           "client_request_id": format!("{index}-{assignment}")}),
                )
                .await;
            assert_eq!(status, 201, "{ack}");
            judged += 1;
        }
        assert_eq!(judged, 9, "labeler {index} saw every item");
    }
    Fixture {
        server,
        admin,
        researcher,
        labeler: labelers[0].clone(),
        campaign: id.parse().unwrap(),
    }
}

fn temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("pairwise-export-{}", Uuid::new_v4()))
}

async fn export(pool: &PgPool, spec: &ExportSpec) -> (PathBuf, Vec<domain::ExportFile>) {
    let dir = temp_dir();
    let report = datasets::Report { pool, record: None };
    let (files, _) = datasets::run(report, spec, &dir)
        .await
        .expect("export runs");
    (dir, files)
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn all_columns() -> Vec<PairColumn> {
    PairColumn::ALL.to_vec()
}

fn spec(campaign: Uuid, format: ExportFormat) -> ExportSpec {
    ExportSpec::new(vec![campaign], format)
        .validated()
        .expect("valid spec")
}

/// The rows without ids (which are random per run), for comparison with literal expectations.
fn without_ids(rows: &[Value]) -> Vec<Value> {
    rows.iter()
        .map(|row| {
            let mut row = row.clone();
            let map = row.as_object_mut().unwrap();
            map.remove("prompt_id");
            map.remove("item_id");
            row
        })
        .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn trl_rows_are_exactly_the_consensus(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    let mut s = spec(f.campaign, ExportFormat::Trl);
    s.columns = all_columns();
    let (dir, files) = export(&pool, &s).await;
    let rows = read_jsonl(&dir.join("train.jsonl"));
    let transcript =
        "System: Be terse.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: And now?\n\nAssistant:";
    let row = |prompt: &str, chosen: &str, rejected: &str, margin: f64, agreement: f64, n: u32| {
        json!({"prompt": prompt, "chosen": chosen, "rejected": rejected, "margin": margin,
               "agreement": agreement, "n_judgments": n,
               "chosen_model": null, "rejected_model": null})
    };
    let mut first = row("prompt 0 ✓", &long_text(), "B0 short", 2.0, 1.0, 3);
    first["chosen_model"] = json!("m-a");
    first["rejected_model"] = json!("m-b");
    let expected = vec![
        first,
        row(transcript, "B1 better", "A1 fine", 2.0, 2.0 / 3.0, 3),
        row("rank these", "X5", "Y5", 1.0, 1.0, 2),
        row("rank these", "X5", "Z5", 1.0, 1.0, 2),
        row("rank these", "Y5", "Z5", 1.0, 1.0, 2),
        row("gold", "G6", "H6", 3.0, 1.0, 3),
    ];
    assert_eq!(without_ids(&rows), expected);
    // Unicode and the 300 kB response survive byte for byte.
    assert_eq!(
        rows[0]["chosen"].as_str().unwrap().as_bytes(),
        long_text().as_bytes()
    );
    // The three pairs of the K=3 prompt share one prompt id; other prompts differ.
    let prompt_ids: Vec<&str> = rows
        .iter()
        .map(|r| r["prompt_id"].as_str().unwrap())
        .collect();
    assert_eq!(prompt_ids[2], prompt_ids[3]);
    assert_eq!(prompt_ids[3], prompt_ids[4]);
    assert_eq!(prompt_ids.iter().collect::<BTreeSet<_>>().len(), 4);
    // The card's counts equal the files', and its checksums the bytes.
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlicense: \"other\""), "{card}");
    assert!(card.contains("| rows | 6 |"), "{card}");
    assert!(card.contains("| rows in train | 6 |"), "{card}");
    assert!(card.contains("| prompts in train | 4 |"), "{card}");
    assert!(
        card.contains("| items dropped: tie (dropped) | 1 |"),
        "{card}"
    );
    assert!(
        card.contains("| items dropped: both bad (dropped) | 1 |"),
        "{card}"
    );
    assert!(card.contains("| items considered | 8 |"), "{card}");
    // Decisive votes behind the rows written: 3 + 3 + 6 + 3 (the dropped tie item's one
    // decisive vote is not in the dataset).
    assert!(card.contains("Of 15 decisive judgments"), "{card}");
    assert!(
        card.contains("| judgments behind the rows | 15 |"),
        "{card}"
    );
    for file in &files {
        let bytes = std::fs::read(dir.join(&file.name)).unwrap();
        assert_eq!(file.bytes, bytes.len() as u64);
        assert_eq!(file.sha256, hex(&Sha256::digest(&bytes)));
        if file.name == "train.jsonl" {
            assert_eq!(file.rows, rows.len() as u64);
            assert!(card.contains(&format!(
                "| train.jsonl | 6 | {} | `{}` |",
                file.bytes, file.sha256
            )));
        }
    }
    assert_eq!(files.last().unwrap().name, "README.md");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn conversational_and_hh_rlhf_rows(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    let (dir, _) = export(&pool, &spec(f.campaign, ExportFormat::TrlConversational)).await;
    let rows = read_jsonl(&dir.join("train.jsonl"));
    assert_eq!(rows.len(), 6);
    assert_eq!(
        rows[1],
        json!({"prompt": conversation(),
               "chosen": [{"role": "assistant", "content": "B1 better"}],
               "rejected": [{"role": "assistant", "content": "A1 fine"}]})
    );
    assert_eq!(
        rows[5],
        json!({"prompt": [{"role": "user", "content": "gold"}],
               "chosen": [{"role": "assistant", "content": "G6"}],
               "rejected": [{"role": "assistant", "content": "H6"}]})
    );
    let (dir, _) = export(&pool, &spec(f.campaign, ExportFormat::HhRlhf)).await;
    let rows = read_jsonl(&dir.join("train.jsonl"));
    assert_eq!(
        rows[1],
        json!({
            "chosen": "\n\nHuman: Be terse.\n\nHi\n\nAssistant: Hello!\n\nHuman: And now?\n\nAssistant: B1 better",
            "rejected": "\n\nHuman: Be terse.\n\nHi\n\nAssistant: Hello!\n\nHuman: And now?\n\nAssistant: A1 fine"
        })
    );
    assert_eq!(
        rows[2],
        json!({"chosen": "\n\nHuman: rank these\n\nAssistant: X5",
               "rejected": "\n\nHuman: rank these\n\nAssistant: Y5"})
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn filters_change_the_rows(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    let summary = |rows: &[Value]| -> Vec<(String, String, u64)> {
        rows.iter()
            .map(|r| {
                (
                    r["chosen"].as_str().unwrap().chars().take(2).collect(),
                    r["rejected"].as_str().unwrap().chars().take(2).collect(),
                    r["n_judgments"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let base = || {
        let mut s = spec(f.campaign, ExportFormat::Trl);
        s.columns = vec![PairColumn::NJudgments, PairColumn::Agreement];
        s
    };
    let run = |s: ExportSpec| {
        let pool = pool.clone();
        async move {
            let (dir, _) = export(&pool, &s).await;
            read_jsonl(&dir.join(s.file_names()[0].as_str()))
        }
    };

    let mut s = base();
    s.exclude_gold = true;
    let rows = run(s).await;
    assert!(summary(&rows).iter().all(|(c, _, _)| c != "G6"));
    assert_eq!(rows.len(), 5);

    // Labeler 3 disabled: their votes go, so B1 wins 2 of 2 and the tie item is unanimous.
    let l3 = f.admin.user_id("l3@x").await;
    let (status, body) = f
        .admin
        .patch(&format!("/api/v1/users/{l3}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, 204, "{body}");
    let mut s = base();
    s.exclude_disabled = true;
    s.ties = Keep::Keep;
    let rows = run(s).await;
    assert_eq!(
        summary(&rows),
        vec![
            ("A0".into(), "B0".into(), 2),
            ("B1".into(), "A1".into(), 2),
            ("A2".into(), "B2".into(), 2),
            ("X5".into(), "Y5".into(), 2),
            ("X5".into(), "Z5".into(), 2),
            ("Y5".into(), "Z5".into(), 2),
            ("G6".into(), "H6".into(), 2),
        ]
    );
    assert_eq!(rows[1]["agreement"], json!(1.0));
    assert_eq!(rows[2]["outcome"], json!("tie"));
    assert_eq!(rows[0]["outcome"], json!("preferred"));

    let mut s = base();
    s.min_judgments = 3;
    assert_eq!(run(s).await.len(), 3, "the K=3 items had two votes each");

    let mut s = base();
    s.min_agreement = 0.9;
    let rows = run(s).await;
    assert!(
        summary(&rows).iter().all(|(c, _, _)| c != "B1"),
        "B1 won by 2/3 only"
    );
    assert_eq!(rows.len(), 5);

    let mut s = base();
    s.both_bad = Keep::Keep;
    let rows = run(s).await;
    assert!(rows.iter().any(|r| r["outcome"] == "both_bad"));

    let mut s = base();
    s.since = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    assert!(run(s).await.is_empty());
    let mut s = base();
    s.until = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    assert_eq!(run(s).await.len(), 6);

    let mut s = base();
    s.aggregation = domain::Aggregation::VoteShare;
    s.ties = Keep::Keep;
    let rows = run(s).await;
    // Tie item: 2 ties and 1 vote for A2 → A2's share is (1 + 1) / 3.
    let tie_item = rows.iter().find(|r| r["chosen"] == "A2").unwrap();
    assert_eq!(tie_item["agreement"], json!(2.0 / 3.0));
    assert_eq!(tie_item["outcome"], json!("preferred"));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn split_keeps_each_prompt_on_one_side(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    let mut whole = spec(f.campaign, ExportFormat::Trl);
    whole.columns = vec![PairColumn::PromptId, PairColumn::ItemId];
    let (dir, _) = export(&pool, &whole).await;
    let all = read_jsonl(&dir.join("train.jsonl"));
    let mut both_sides_seen = false;
    for seed in 0..20 {
        let mut s = whole.clone();
        s.test_fraction = 0.5;
        s.split_seed = seed;
        let (dir, files) = export(&pool, &s).await;
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["train.jsonl", "test.jsonl", "README.md"]);
        let train = read_jsonl(&dir.join("train.jsonl"));
        let test = read_jsonl(&dir.join("test.jsonl"));
        let prompts = |rows: &[Value]| -> BTreeSet<String> {
            rows.iter()
                .map(|r| r["prompt_id"].as_str().unwrap().to_string())
                .collect()
        };
        assert!(prompts(&train).is_disjoint(&prompts(&test)), "seed {seed}");
        let mut union: Vec<String> = train
            .iter()
            .chain(&test)
            .map(|r| r["item_id"].to_string())
            .collect();
        let mut expected: Vec<String> = all.iter().map(|r| r["item_id"].to_string()).collect();
        union.sort();
        expected.sort();
        assert_eq!(union, expected, "seed {seed}: every row lands in one split");
        let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
        assert!(
            card.contains(&format!("| rows in test | {} |", test.len())),
            "{card}"
        );
        both_sides_seen |= !train.is_empty() && !test.is_empty();
        // The same seed splits the same way.
        let (again, _) = export(&pool, &s).await;
        assert_eq!(read_jsonl(&again.join("test.jsonl")), test);
    }
    assert!(both_sides_seen);
}

/// Reads a Parquet file back with the `parquet`/`arrow` crates as JSON rows.
fn read_parquet(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    {
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::LineDelimited>(&mut out);
        for batch in reader {
            writer.write(&batch.unwrap()).unwrap();
        }
        writer.finish().unwrap();
    }
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn parquet_and_gzip_hold_the_same_rows(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    for format in ExportFormat::ALL {
        let mut s = spec(f.campaign, *format);
        if *format != ExportFormat::Raw {
            s.columns = all_columns();
        }
        let (json_dir, _) = export(&pool, &s).await;
        let jsonl = read_jsonl(&json_dir.join("train.jsonl"));
        assert!(!jsonl.is_empty());
        s.file_type = FileType::Parquet;
        let (parquet_dir, files) = export(&pool, &s).await;
        assert_eq!(files[0].name, "train.parquet");
        assert_eq!(
            read_parquet(&parquet_dir.join("train.parquet")),
            jsonl,
            "{format}"
        );
        s.file_type = FileType::Jsonl;
        s.gzip = true;
        let (gz_dir, _) = export(&pool, &s).await;
        assert_eq!(
            gunzip(&gz_dir.join("train.jsonl.gz")),
            std::fs::read_to_string(json_dir.join("train.jsonl")).unwrap()
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn raw_has_every_judgment_under_pseudonyms(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    let (dir, _) = export(&pool, &spec(f.campaign, ExportFormat::Raw)).await;
    let rows = read_jsonl(&dir.join("train.jsonl"));
    assert_eq!(rows.len(), 27, "3 labelers × 9 items, skips included");
    let labelers: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["labeler"].as_str().unwrap())
        .collect();
    assert_eq!(labelers.len(), 3);
    for name in &labelers {
        assert!(name.starts_with("labeler-") && name.len() == 24, "{name}");
        assert!(!name.contains('@'));
    }
    let skips = rows.iter().filter(|r| r["choice"] == "skip").count();
    assert_eq!(skips, 6, "item 4 by all three, the K=3 items by labeler 3");
    let strong = rows
        .iter()
        .find(|r| r["strength"] == 3 && r["first_text"] == "G6")
        .unwrap();
    assert_eq!(strong["is_gold"], json!(true));
    assert_eq!(strong["shown_order"].as_array().unwrap().len(), 2);
    let model = rows
        .iter()
        .find(|r| r["second_text"] == "B0 short")
        .unwrap();
    let metadata: Value = serde_json::from_str(model["second_metadata"].as_str().unwrap()).unwrap();
    assert_eq!(metadata["model"], "m-b");
    // The same labeler gets the same pseudonym in another export.
    let (again, _) = export(&pool, &spec(f.campaign, ExportFormat::Raw)).await;
    let again_labelers: BTreeSet<String> = read_jsonl(&again.join("train.jsonl"))
        .iter()
        .map(|r| r["labeler"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        again_labelers,
        labelers.iter().map(|s| s.to_string()).collect()
    );
    let mut revealed = spec(f.campaign, ExportFormat::Raw);
    revealed.reveal_labelers = true;
    let (dir, _) = export(&pool, &revealed).await;
    let emails: BTreeSet<String> = read_jsonl(&dir.join("train.jsonl"))
        .iter()
        .map(|r| r["labeler"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        emails,
        ["l1@x", "l2@x", "l3@x"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn export_jobs_over_the_api_with_access_control(pool: PgPool) {
    let f = labeled(pool.clone()).await;
    let campaign = f.campaign.to_string();
    let request = json!({"campaigns": [campaign], "format": "trl", "file_type": "parquet",
                         "columns": ["prompt_id"], "test_fraction": 0.3, "split_seed": 4});
    let (status, body) = f.researcher.post("/api/v1/exports", request.clone()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let record = f.researcher.wait_export(&id).await;
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(record["rows"], 6);
    assert_eq!(record["done"], record["total"]);
    let files = record["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{record}");
    for file in files {
        let name = file["name"].as_str().unwrap();
        let response = f
            .researcher
            .http
            .get(f.server.url(&format!("/api/v1/exports/{id}/files/{name}")))
            .bearer_auth(&f.researcher.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        assert_eq!(
            hex(&Sha256::digest(&bytes)),
            file["sha256"].as_str().unwrap()
        );
    }
    // Exports are listed for their creator and for admins.
    let (_, mine) = f.researcher.get("/api/v1/exports").await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, all) = f.admin.get("/api/v1/exports").await;
    assert_eq!(all[0]["id"], id.as_str());

    // Labelers cannot export, list, read or download.
    let (status, _) = f.labeler.post("/api/v1/exports", request.clone()).await;
    assert_eq!(status, 403);
    let (status, _) = f.labeler.get("/api/v1/exports").await;
    assert_eq!(status, 403);
    let (status, _) = f.labeler.get(&format!("/api/v1/exports/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = f
        .labeler
        .get(&format!("/api/v1/exports/{id}/files/README.md"))
        .await;
    assert_eq!(status, 404);
    // A finished export cannot be cancelled; others' exports are not found.
    let cancel = format!("/api/v1/exports/{id}/cancel");
    let (status, body) = f.researcher.post(&cancel, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(f.labeler.post(&cancel, json!({})).await.0, 404);
    // Only recorded names are served.
    let (status, _) = f
        .researcher
        .get(&format!(
            "/api/v1/exports/{id}/files/..%2F..%2Fetc%2Fpasswd"
        ))
        .await;
    assert_eq!(status, 404);
    // A researcher outside the campaign sees nothing of it.
    let outsider = Api::new(&f.server, &user(&pool, "res2@x", Role::Researcher).await);
    let (status, _) = outsider.post("/api/v1/exports", request.clone()).await;
    assert_eq!(status, 404);
    let (status, _) = outsider.get(&format!("/api/v1/exports/{id}")).await;
    assert_eq!(status, 404);
    // Only admins may reveal labelers.
    let (status, _) = f
        .researcher
        .post(
            "/api/v1/exports",
            json!({"campaigns": [campaign], "format": "raw", "reveal_labelers": true}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = f
        .admin
        .post(
            "/api/v1/exports",
            json!({"campaigns": [campaign], "format": "raw", "reveal_labelers": true}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // Bad requests are refused with a reason.
    let (status, body) = f
        .researcher
        .post(
            "/api/v1/exports",
            json!({"campaigns": [campaign], "format": "trl", "min_agreement": 2}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = f
        .researcher
        .post(
            "/api/v1/exports",
            json!({"campaigns": [campaign], "format": "csv"}),
        )
        .await;
    assert_eq!(status, 422);
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    text
}

/// Rows of an export file, whatever its type.
fn read_rows(path: &Path) -> Vec<Value> {
    let name = path.to_string_lossy();
    if name.ends_with(".parquet") {
        read_parquet(path)
    } else if name.ends_with(".gz") {
        gunzip(path)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    } else {
        read_jsonl(path)
    }
}

/// What a researcher does first: `datasets.load_dataset(folder)` finds the splits through the
/// dataset card and yields exactly the rows written, in every format and file type.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn exported_folders_load_in_hugging_face_datasets(pool: PgPool) {
    let python = std::env::var("PAIRWISE_PYTHON").expect(
        "PAIRWISE_PYTHON must name a python with `datasets` (make test sets it up with scripts/python-datasets.sh)",
    );
    let f = labeled(pool.clone()).await;
    let mut probe = spec(f.campaign, ExportFormat::Trl);
    probe.columns = vec![PairColumn::PromptId, PairColumn::ChosenModel];
    let (dir, _) = export(&pool, &probe).await;
    let rows = read_jsonl(&dir.join("train.jsonl"));
    let prompt_of = |r: &Value| -> Uuid { r["prompt_id"].as_str().unwrap().parse().unwrap() };
    let prompts: BTreeSet<Uuid> = rows.iter().map(prompt_of).collect();
    let with_model = rows
        .iter()
        .find(|r| r["chosen_model"].is_string())
        .map(prompt_of)
        .unwrap();
    // A seed that puts the only prompt with model names in test and others in train: the
    // train file's model columns are then all null, which `datasets` can only load as strings
    // because the dataset card declares the features.
    let mut split = probe.clone();
    split.test_fraction = 0.5;
    split.split_seed = (0..10_000)
        .find(|seed| {
            split.split_seed = *seed;
            split.split_of(with_model) == domain::Split::Test
                && prompts
                    .iter()
                    .any(|p| split.split_of(*p) == domain::Split::Train)
        })
        .unwrap();
    for (format, file_type, gzip) in [
        (ExportFormat::Trl, FileType::Jsonl, false),
        (ExportFormat::TrlConversational, FileType::Parquet, false),
        (ExportFormat::HhRlhf, FileType::Jsonl, true),
        (ExportFormat::Raw, FileType::Parquet, false),
    ] {
        let mut s = split.clone();
        s.format = format;
        s.file_type = file_type;
        s.gzip = gzip;
        s.columns = if format == ExportFormat::Raw {
            Vec::new()
        } else {
            all_columns()
        };
        let (dir, files) = export(&pool, &s).await;
        let output = std::process::Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/python/load_export.py"
            ))
            .arg(&dir)
            .env("HF_DATASETS_OFFLINE", "1")
            .env("HF_HOME", dir.join(".hf"))
            .output()
            .expect("run python");
        assert!(
            output.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let loaded: Value = serde_json::from_slice(&output.stdout).expect("JSON from python");
        for (split_name, file) in ["train", "test"].iter().zip(&files) {
            let written = read_rows(&dir.join(&file.name));
            assert!(!written.is_empty(), "{format} {split_name}");
            assert_eq!(
                loaded[split_name],
                Value::Array(written),
                "{format} {split_name}"
            );
        }
    }
}
