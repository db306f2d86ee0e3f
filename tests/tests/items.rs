//! The item browser's API, imports that skip lines already imported, and pairs of identical
//! responses, which are neither labeled nor exported.

use std::collections::HashSet;

use domain::Role;
use serde_json::{json, Value};
use store::PgPool;
use tests::{pair, spawn, user, Api};

/// Labels every item `labeler` is handed: `pick` gets the prompt text and the two shown
/// response texts and answers a choice ("first"/"second" name the response by its text's
/// first word, whichever side it is shown on; "skip" skips).
async fn label_all(labeler: &Api, campaign: &str, pick: impl Fn(&str) -> &'static str) {
    loop {
        let (status, item) = labeler
            .get(&format!("/api/v1/campaigns/{campaign}/next"))
            .await;
        if status == 204 {
            return;
        }
        assert_eq!(status, 200, "{item}");
        let prompt = item["prompt"][0]["content"].as_str().unwrap();
        let left = item["responses"][0]["text"].as_str().unwrap();
        let choice = match pick(prompt) {
            "skip" => "skip",
            word if left.starts_with(word) => "a",
            _ => "b",
        };
        let assignment = item["assignment_id"].as_str().unwrap();
        let (status, ack) = labeler
            .post(
                &format!("/api/v1/assignments/{assignment}/judgment"),
                json!({"choice": choice, "client_request_id": assignment}),
            )
            .await;
        assert_eq!(status, 201, "{ack}");
    }
}

/// Every item of a listing, following `next_cursor` page by page.
async fn all_pages(api: &Api, campaign: &str, filter: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api
            .get(&format!(
                "/api/v1/campaigns/{campaign}/items?limit=2&cursor={cursor}&{filter}"
            ))
            .await;
        assert_eq!(status, 200, "{page}");
        let rows = page["items"].as_array().unwrap();
        assert!(rows.len() <= 2);
        items.extend(rows.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return items,
        }
    }
}

fn prompts_of(items: &[Value]) -> Vec<String> {
    let mut prompts: Vec<String> = items
        .iter()
        .map(|i| i["prompt"].as_str().unwrap().to_string())
        .collect();
    prompts.sort();
    prompts
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_item_browser_pages_filters_and_shows_judgments(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let researcher = Api::new(&server, &user(&pool, "res@x", Role::Researcher).await);
    let first = Api::new(&server, &user(&pool, "l1@x", Role::Labeler).await);
    let second = Api::new(&server, &user(&pool, "l2@x", Role::Labeler).await);
    let mut lines: Vec<Value> = (0..4).map(pair).collect();
    lines.push(json!({"prompt": "prompt gold", "responses": ["first g", "second g"], "gold": 0}));
    lines.push(
        json!({"prompt": "prompt needle", "responses": ["first: a Needle in 50% of it", "second"]}),
    );
    let campaign =
        tests::campaign_with_items(&admin, json!({"name": "c", "overlap": 2}), &lines).await;
    admin.add_member(&campaign, "res@x", "researcher").await;
    admin.add_member(&campaign, "l1@x", "labeler").await;
    admin.add_member(&campaign, "l2@x", "labeler").await;
    label_all(&first, &campaign, |_| "first").await;
    label_all(&second, &campaign, |prompt| match prompt {
        "prompt 1" => "second",
        "prompt 2" | "prompt needle" => "skip",
        _ => "first",
    })
    .await;

    // Pages of two, in a stable order, every item once.
    let every = all_pages(&researcher, &campaign, "").await;
    assert_eq!(every.len(), 6);
    let ids: HashSet<&str> = every.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 6, "no item on two pages");
    assert_eq!(
        prompts_of(&all_pages(&researcher, &campaign, "status=complete").await),
        ["prompt 0", "prompt 1", "prompt 3", "prompt gold"]
    );
    assert_eq!(
        prompts_of(&all_pages(&researcher, &campaign, "status=partial").await),
        ["prompt 2", "prompt needle"]
    );
    assert!(all_pages(&researcher, &campaign, "status=unjudged")
        .await
        .is_empty());
    let disputed = all_pages(&researcher, &campaign, "agreement=disputed").await;
    assert_eq!(prompts_of(&disputed), ["prompt 1"]);
    assert_eq!(disputed[0]["agreement"], 0.5);
    assert_eq!(
        prompts_of(&all_pages(&researcher, &campaign, "agreement=unanimous&gold=false").await),
        ["prompt 0", "prompt 3"]
    );
    assert_eq!(
        prompts_of(&all_pages(&researcher, &campaign, "gold=true").await),
        ["prompt gold"]
    );
    // Search is case-insensitive, covers responses, and takes % literally.
    for q in ["needle%20IN%2050", "%25", "50%25%20of"] {
        assert_eq!(
            prompts_of(&all_pages(&researcher, &campaign, &format!("q={q}")).await),
            ["prompt needle"],
            "q={q}"
        );
    }
    assert_eq!(
        all_pages(&researcher, &campaign, "q=second%200")
            .await
            .len(),
        1
    );
    // Blank parameters are missing ones; wrong ones say what is wrong.
    let (status, page) = admin
        .get(&format!(
            "/api/v1/campaigns/{campaign}/items?q=&status=&cursor="
        ))
        .await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 6));
    let (status, error) = admin
        .get(&format!("/api/v1/campaigns/{campaign}/items?cursor=xyz"))
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, _) = admin
        .get(&format!(
            "/api/v1/campaigns/{campaign}/items?status=finished"
        ))
        .await;
    assert_eq!(status, 400);

    // One item with its judgments: pseudonyms for researchers, e-mails too for admins.
    let item = disputed[0]["id"].as_str().unwrap();
    let (status, detail) = researcher.get(&format!("/api/v1/items/{item}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["prompt"][0]["content"], "prompt 1");
    let texts: Vec<&str> = detail["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first 1", "second 1"]);
    let judgments = detail["judgments"].as_array().unwrap();
    assert_eq!(judgments.len(), 2);
    let winners: HashSet<&str> = judgments
        .iter()
        .map(|j| j["winner_candidate_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        winners.len(),
        2,
        "the two labelers preferred different responses"
    );
    for judgment in judgments {
        assert!(judgment["labeler"]
            .as_str()
            .unwrap()
            .starts_with("labeler-"));
        assert_eq!(
            judgment["email"],
            Value::Null,
            "researchers see pseudonyms only"
        );
    }
    let (_, as_admin) = admin.get(&format!("/api/v1/items/{item}")).await;
    let emails: HashSet<&str> = as_admin["judgments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, HashSet::from(["l1@x", "l2@x"]));
    let gold = every.iter().find(|i| i["prompt"] == "prompt gold").unwrap();
    let (_, gold) = admin
        .get(&format!("/api/v1/items/{}", gold["id"].as_str().unwrap()))
        .await;
    assert_eq!(gold["is_gold"], true);
    assert_eq!(gold["gold_candidate_id"], gold["responses"][0]["id"]);
    assert_eq!(
        admin
            .get(&format!("/api/v1/items/{}", uuid::Uuid::new_v4()))
            .await
            .0,
        404
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn imports_skip_ids_already_imported(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let (_, c) = admin.post("/api/v1/campaigns", json!({"name": "c"})).await;
    let id = c["id"].as_str().unwrap();
    let line = |n: usize, key: Value| {
        let mut line = pair(n);
        line["id"] = key;
        format!("{line}\n")
    };
    let body: String = line(0, json!("p0")) + &line(1, json!(1)) + &pair(2).to_string() + "\n";
    let (status, report) = admin.import(id, body.clone(), "application/x-ndjson").await;
    assert_eq!(
        (status, &report["imported"], &report["skipped"]),
        (201, &json!(3), &json!(0)),
        "{report}"
    );
    // The same file again adds only the line without an id.
    let (status, report) = admin.import(id, body, "application/x-ndjson").await;
    assert_eq!(
        (status, &report["imported"], &report["skipped"]),
        (201, &json!(1), &json!(2)),
        "{report}"
    );
    assert_eq!(report["skipped_lines"][0]["line"], 1);
    assert!(report["skipped_lines"][0]["message"]
        .as_str()
        .unwrap()
        .contains("\"p0\""));
    // An id repeated within one input, and 1 against "1": ids compare as written.
    let body = line(3, json!("n")) + &line(4, json!("n")) + &line(5, json!("1"));
    let (status, report) = admin.import(id, body, "application/x-ndjson").await;
    assert_eq!(
        (status, &report["imported"], &report["skipped"]),
        (201, &json!(2), &json!(1)),
        "{report}"
    );
    assert_eq!(report["skipped_lines"][0]["line"], 2);
    // CSV ids and prompt-only lines follow the same rule.
    let csv = "id,prompt,response_a,response_b\np0,again,a,b\nc1,new,a,b\n".to_string();
    let (status, report) = admin.import(id, csv, "text/csv").await;
    assert_eq!(
        (status, &report["imported"], &report["skipped"]),
        (201, &json!(1), &json!(1)),
        "{report}"
    );
    let prompts = "{\"prompt\": \"x\", \"id\": \"c1\"}\n{\"prompt\": \"y\", \"id\": \"q1\"}\n";
    let (status, report) = admin
        .post_text(
            &format!("/api/v1/campaigns/{id}/prompts"),
            prompts,
            "application/x-ndjson",
        )
        .await;
    assert_eq!(
        (status, &report["imported"], &report["skipped"]),
        (201, &json!(1), &json!(1)),
        "{report}"
    );
    let (_, stats) = admin.get(&format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(stats["items"], 7, "{stats}");
    // A file of only known ids imports nothing and is no error.
    let (status, report) = admin
        .import(id, line(0, json!("p0")), "application/x-ndjson")
        .await;
    assert_eq!(
        (status, &report["imported"], &report["skipped"]),
        (201, &json!(0), &json!(1)),
        "{report}"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn identical_responses_are_neither_labeled_nor_exported(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let lines = [
        pair(0),
        pair(1),
        json!({"prompt": "same", "responses": ["The  same\nanswer.", " The same answer. "]}),
        json!({"prompt": "three", "responses": ["one", "two", "one\n"]}),
    ];
    let (_, c) = admin.post("/api/v1/campaigns", json!({"name": "c"})).await;
    let campaign = c["id"].as_str().unwrap().to_string();
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (status, report) = admin.import(&campaign, jsonl, "application/x-ndjson").await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(
        (&report["items"], &report["identical_pairs"]),
        (&json!(4), &json!(2)),
        "{report}"
    );
    admin
        .patch(
            &format!("/api/v1/campaigns/{campaign}"),
            json!({"status": "active"}),
        )
        .await;
    admin.add_member(&campaign, "lab@x", "labeler").await;
    label_all(&labeler, &campaign, |_| "first").await;
    // An item made before such pairs were left out: its responses made the same afterwards.
    sqlx::query(
        "UPDATE candidates c SET text = 'first 0' FROM prompts p
         WHERE p.id = c.prompt_id AND p.messages->0->>'content' = 'prompt 0' AND c.position = 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (status, export) = admin
        .post(
            "/api/v1/exports",
            json!({"campaigns": [campaign], "format": "trl"}),
        )
        .await;
    assert_eq!(status, 202, "{export}");
    let export = admin.wait_export(export["id"].as_str().unwrap()).await;
    assert_eq!(export["status"], "done", "{export}");
    assert_eq!(export["rows"], 3, "{export}");
    let (status, card) = admin
        .get(&format!(
            "/api/v1/exports/{}/files/README.md",
            export["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    let card = card.as_str().unwrap();
    assert!(
        card.contains("| items dropped: identical responses | 1 |"),
        "{card}"
    );
}
