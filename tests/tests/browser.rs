//! Headless Chromium: a labeler logs in, opens a campaign, labels three items with the
//! keyboard and sees progress change, while hostile markup in a prompt stays inert; a
//! researcher exports a campaign from the export page and downloads the file.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::Role;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use store::PgPool;
use tests::{campaign_with_items, pair, spawn, user, Api, PASSWORD};

/// The chromedriver process and its port.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed"),
        port,
    );
    let profile = std::env::temp_dir().join(format!("pairwise-chromium-{}", uuid::Uuid::new_v4()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                panic!("chromedriver did not start: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Types a key into the page body, where the page's window-level shortcut handler hears it.
async fn press(client: &Client, key: char) -> Result<(), fantoccini::error::CmdError> {
    client
        .find(Locator::Css("body"))
        .await?
        .send_keys(&key.to_string())
        .await
}

/// The browser console so far (chromedriver's log endpoint), to explain a failure.
async fn console_log(driver: &Driver, client: &Client) -> String {
    let Ok(Some(session)) = client.session_id().await else {
        return String::new();
    };
    let url = format!("http://127.0.0.1:{}/session/{session}/se/log", driver.1);
    match reqwest::Client::new()
        .post(url)
        .json(&json!({"type": "browser"}))
        .send()
        .await
    {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => e.to_string(),
    }
}

/// Fails when the browser reported a Content-Security-Policy violation: the pages must work
/// under the policy the server sends, with nothing refused.
fn assert_no_csp_violation(console: &str) {
    assert!(
        !console.contains("Content Security Policy"),
        "the browser refused something under the CSP: {console}"
    );
}

/// Marks the loaded page; [`still_same_page`] then tells whether an action ran in the hydrated
/// app or fell back to a full form post and reload (which means hydration failed).
async fn mark_page(client: &Client) -> anyhow::Result<()> {
    client
        .execute("window.__pairwiseMark = true;", vec![])
        .await?;
    Ok(())
}

async fn still_same_page(client: &Client) -> anyhow::Result<bool> {
    Ok(client
        .execute("return window.__pairwiseMark === true;", vec![])
        .await?
        == json!(true))
}

/// Polls `check` until it returns Some, or fails after `secs`.
async fn until<T, F, Fut>(secs: u64, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn shown_assignment(client: &Client) -> Option<String> {
    client
        .find(Locator::Css("article.item"))
        .await
        .ok()?
        .attr("data-assignment")
        .await
        .ok()?
}

async fn log_in(client: &Client, base: &str, email: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}/login")).await?;
    client
        .find(Locator::Css("input[name=email]"))
        .await?
        .send_keys(email)
        .await?;
    client
        .find(Locator::Css("input[name=password]"))
        .await?
        .send_keys(PASSWORD)
        .await?;
    client
        .find(Locator::Css("form[action='/auth/login'] button"))
        .await?
        .click()
        .await?;
    until(20, "the campaign list", || async {
        text_of(client, "h1").await.filter(|t| t == "Campaigns")
    })
    .await?;
    Ok(())
}

/// The "Label" links of the campaign list, once its rows are there.
async fn label_links(client: &Client) -> anyhow::Result<usize> {
    until(20, "the campaign rows", || async {
        client
            .find(Locator::Css("table.list tr.campaign"))
            .await
            .ok()
    })
    .await?;
    Ok(client
        .find_all(Locator::Css("tr.campaign a.label"))
        .await?
        .len())
}

async fn label_three_items(
    client: &Client,
    base: &str,
    campaign: &str,
) -> anyhow::Result<Vec<String>> {
    log_in(client, base, "lab@x").await?;
    anyhow::ensure!(
        label_links(client).await? == 1,
        "the campaign list does not offer its labeler to label"
    );
    // Each page names itself in the tab, beside the app's icon.
    let title = client.title().await?;
    anyhow::ensure!(
        title == "Campaigns · Pairwise",
        "the list's title is {title:?}"
    );
    client
        .find(Locator::Css("link[rel=icon][href='/favicon.svg']"))
        .await?;
    accessible(client, "campaign list").await?;
    client.goto(&format!("{base}/campaigns/{campaign}")).await?;
    client
        .wait()
        .for_element(Locator::Css("#start-labeling"))
        .await?
        .click()
        .await?;
    // The item appears only once the wasm has hydrated the page and fetched it.
    let mut seen = vec![until(60, "the first item", || shown_assignment(client)).await?];

    // Hostile markup in the first prompt rendered as inert content.
    let pwned = client
        .execute("return window.__pwned === undefined;", vec![])
        .await?;
    assert_eq!(pwned, json!(true), "a script from the prompt ran");
    let active = client
        .execute(
            "return document.querySelectorAll('.prompt script, .prompt [onerror], .response script').length;",
            vec![],
        )
        .await?;
    assert_eq!(active, json!(0), "active markup survived sanitising");
    let prompt = text_of(client, ".prompt").await.unwrap_or_default();
    assert!(prompt.contains("Tell me about XSS"), "{prompt}");
    // A single line break in a response stays a line break.
    let breaks = client
        .execute(
            "return document.querySelectorAll('.response br').length;",
            vec![],
        )
        .await?;
    assert_eq!(breaks, json!(1), "the response's two lines were merged");

    // Write a rationale for the first item, then Esc back to the shortcuts, as a person would.
    let rationale = client.find(Locator::Css("textarea.rationale")).await?;
    rationale.click().await?;
    rationale.send_keys("left is clearer").await?;
    rationale.send_keys("\u{E00C}").await?;
    for (n, key) in ['a', 'b', 't'].into_iter().enumerate() {
        let before = seen.last().cloned().unwrap_or_default();
        press(client, key).await?;
        let expected = (n + 1).to_string();
        let advanced = until(20, "progress to advance", || async {
            text_of(client, "#my-progress")
                .await
                .filter(|t| *t == expected)
        })
        .await;
        if let Err(e) = advanced {
            let shown = text_of(client, "#label-message").await.unwrap_or_default();
            anyhow::bail!("{e} (key {n}); the page says: {shown:?}");
        }
        if n < 2 {
            let next = until(20, "the next item", || async {
                shown_assignment(client).await.filter(|a| *a != before)
            })
            .await?;
            seen.push(next);
        }
    }
    // The last answer (the tie) can still change: U brings its item back, B answers again,
    // and the page returns to the item that was on screen.
    let fourth = until(20, "the fourth item", || async {
        shown_assignment(client)
            .await
            .filter(|a| seen.last() != Some(a))
    })
    .await?;
    until(20, "the offer to change the answer", || async {
        text_of(client, "#undo-bar")
            .await
            .filter(|t| t.contains("Tie"))
    })
    .await?;
    press(client, 'u').await?;
    until(20, "the answered item back on screen", || async {
        shown_assignment(client)
            .await
            .filter(|a| seen.last() == Some(a))
    })
    .await?;
    press(client, 'b').await?;
    until(20, "the changed answer confirmed", || async {
        text_of(client, "#label-notice")
            .await
            .filter(|t| t.contains("B is better") && t.contains("Tie"))
    })
    .await?;
    until(20, "the fourth item again", || async {
        shown_assignment(client).await.filter(|a| *a == fourth)
    })
    .await?;
    Ok(seen)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn labeler_labels_three_items_by_keyboard(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    user(&pool, "lab@x", Role::Labeler).await;
    let hostile = json!({
        "prompt": "Tell me about XSS <script>window.__pwned = 1</script> <img src=x onerror=\"window.__pwned = 2\">",
        "responses": ["**Bold** answer with `code`\nand a second line", "<script>window.__pwned = 3</script>plain answer"]
    });
    let mut lines = vec![hostile];
    lines.extend((1..5).map(pair));
    let campaign = campaign_with_items(
        &admin,
        json!({"name": "Browser", "guidelines": "Pick the *better* answer."}),
        &lines,
    )
    .await;
    let (status, _) = admin
        .post(
            &format!("/api/v1/campaigns/{campaign}/members"),
            json!({"email": "lab@x"}),
        )
        .await;
    assert_eq!(status, 201);

    let counted = judgments_counted(&server.base).await;
    let (driver, client) = browser().await;
    let outcome = label_three_items(&client, &server.base, &campaign).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    let seen = outcome.unwrap_or_else(|e| panic!("labeling in the browser: {e}; console: {log}"));
    assert_no_csp_violation(&log);

    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        String,
        String,
        Option<uuid::Uuid>,
        Vec<uuid::Uuid>,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT a.id::text, j.choice, j.winner_candidate_id, j.shown_order, j.rationale
         FROM judgments j JOIN assignments a ON a.id = j.assignment_id
         JOIN users u ON u.id = j.user_id WHERE u.email = 'lab@x' ORDER BY j.created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let choices: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(choices, ["a", "b", "b"], "the tie was changed to B");
    let replaced: Vec<String> = sqlx::query_scalar("SELECT choice FROM judgment_revisions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(replaced, ["tie"], "the answer it replaced is kept");
    let assignments: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        assignments,
        seen.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(
        rows[0].2,
        Some(rows[0].3[0]),
        "A is the left response as shown"
    );
    assert_eq!(
        rows[1].2,
        Some(rows[1].3[1]),
        "B is the right response as shown"
    );
    assert_eq!(rows[2].2, Some(rows[2].3[1]), "the changed answer's winner");
    assert_eq!(rows[0].4.as_deref(), Some("left is clearer"));
    assert_eq!(
        rows[1].4, None,
        "the rationale box is cleared for the next item"
    );
    // Other tests of this process may add to the shared counter, never take from it.
    assert!(
        judgments_counted(&server.base).await >= counted + 3,
        "the page's judgments are counted in /metrics"
    );
}

/// `pairwise_judgments_total` as `/metrics` shows it (absent before the first judgment).
async fn judgments_counted(base: &str) -> u64 {
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("pairwise_judgments_total "))
        .map_or(0, |value| value.trim().parse::<f64>().unwrap() as u64)
}

/// A researcher starts an export on the export page, watches it finish, and downloads the
/// file with their browser session.
async fn export_in_browser(client: &Client, base: &str) -> anyhow::Result<String> {
    log_in(client, base, "res@x").await?;
    // A researcher member sees the campaign, but is not offered labeling it.
    anyhow::ensure!(
        label_links(client).await? == 0,
        "the campaign list offers a researcher to label"
    );
    client.goto(&format!("{base}/exports")).await?;
    let title = client.title().await?;
    anyhow::ensure!(
        title == "Exports and training · Pairwise",
        "the export page's title is {title:?}"
    );
    let columns = client
        .wait()
        .for_element(Locator::Css("#export-columns"))
        .await?;
    // Wait for hydration (the campaign list arrives with the page or right after).
    // One box per campaign; with more than one, none is chosen for the researcher.
    let boxes = until(60, "the campaign choice", || async {
        let boxes = client
            .find_all(Locator::Css("#export-campaigns input[type=checkbox]"))
            .await
            .ok()?;
        (boxes.len() == 2).then_some(boxes)
    })
    .await?;
    for campaign_box in &boxes {
        anyhow::ensure!(
            campaign_box.prop("checked").await?.as_deref() != Some("true"),
            "a campaign is chosen already"
        );
    }
    accessible(client, "exports").await?;
    mark_page(client).await?;
    for campaign_box in boxes {
        campaign_box.click().await?;
    }
    columns.send_keys("prompt_id,n_judgments").await?;
    client
        .find(Locator::Css("#start-export"))
        .await?
        .click()
        .await?;
    let link = until(60, "the finished export", || async {
        let row = client
            .find(Locator::Css("tr.export[data-status=done]"))
            .await
            .ok()?;
        row.find(Locator::Css("a.download")).await.ok()
    })
    .await?;
    anyhow::ensure!(
        still_same_page(client).await?,
        "the export page reloaded: it was not hydrated"
    );
    let href = link.attr("href").await?.unwrap_or_default();
    let body = client
        .execute_async(
            "const [href, done] = arguments; fetch(href).then(r => r.text()).then(done);",
            vec![json!(href)],
        )
        .await?;
    // Clicking the link downloads the file: the app's router must not take it over (it used
    // to, and showed "Page not found" at the file's address).
    link.click().await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let url = client.current_url().await?;
    anyhow::ensure!(
        url.path() == "/exports",
        "clicking the file link went to {url}"
    );
    anyhow::ensure!(
        still_same_page(client).await?,
        "clicking the file link left the export page"
    );
    Ok(body.as_str().unwrap_or_default().to_string())
}

/// Then DPO on that export from the training form, on the same page: the run's progress and
/// its loss/accuracy chart update live until it is done and its model is registered.
async fn train_in_browser(client: &Client) -> anyhow::Result<String> {
    until(60, "the export in the training form", || async {
        client.find(Locator::Css("#train-export option")).await.ok()
    })
    .await?;
    mark_page(client).await?;
    client
        .find(Locator::Css("#train-max-steps"))
        .await?
        .send_keys("1")
        .await?;
    client
        .find(Locator::Css("#train-max-length"))
        .await?
        .send_keys("64")
        .await?;
    client
        .find(Locator::Css("#start-training"))
        .await?
        .click()
        .await?;
    let run = until(180, "the finished training run", || async {
        client
            .find(Locator::Css("article.training-run[data-status=done]"))
            .await
            .ok()
    })
    .await?;
    anyhow::ensure!(
        still_same_page(client).await?,
        "the export page reloaded: it was not hydrated"
    );
    anyhow::ensure!(
        run.find(Locator::Css("svg.training-chart polyline.loss"))
            .await
            .is_ok(),
        "no loss chart"
    );
    // One step is one point: drawn as a dot, not an empty box. A finished run shows its
    // status once ("done", not "done · done").
    anyhow::ensure!(
        run.find(Locator::Css("svg.training-chart circle.loss"))
            .await
            .is_ok(),
        "the one-step chart is empty"
    );
    anyhow::ensure!(
        run.find(Locator::Css("header .badge.done")).await.is_ok()
            && run.find(Locator::Css("header .phase")).await.is_err(),
        "the card does not show its status once"
    );
    Ok(run
        .find(Locator::Css(".model-registered code"))
        .await?
        .text()
        .await?)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn researcher_exports_from_the_page(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    user(&pool, "res@x", Role::Researcher).await;
    let campaign =
        campaign_with_items(&admin, json!({"name": "To export"}), &[pair(1), pair(2)]).await;
    admin.add_member(&campaign, "lab@x", "labeler").await;
    admin.add_member(&campaign, "res@x", "researcher").await;
    // A second campaign of the researcher's, exported together with the first (no rows).
    let other = campaign_with_items(&admin, json!({"name": "Also"}), &[]).await;
    admin.add_member(&other, "res@x", "researcher").await;
    for n in 0..2 {
        let (_, item) = labeler
            .get(&format!("/api/v1/campaigns/{campaign}/next"))
            .await;
        let assignment = item["assignment_id"].as_str().unwrap();
        let (status, _) = labeler
            .post(
                &format!("/api/v1/assignments/{assignment}/judgment"),
                json!({"choice": "a", "client_request_id": format!("r{n}")}),
            )
            .await;
        assert_eq!(status, 201);
    }

    let (status, model) = admin
        .post(
            "/api/v1/models",
            json!({"name": "smol", "path": std::env::var("PAIRWISE_DEFAULT_MODEL")
                .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)")}),
        )
        .await;
    assert_eq!(status, 201, "{model}");
    let models_dir = tempfile::tempdir().expect("scratch folder");
    let stop = server::workers::spawn(
        &pool,
        &server.storage,
        server::workers::Counts::standard(1),
        models_dir.path(),
        None,
    );

    let (driver, client) = browser().await;
    let mut outcome = export_in_browser(&client, &server.base).await;
    let trained = match &outcome {
        Ok(_) => Some(train_in_browser(&client).await),
        Err(_) => None,
    };
    if let Some(Err(e)) = &trained {
        outcome = Err(anyhow::anyhow!("training in the browser: {e}"));
    }
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    let _ = stop.send(true);
    let body = outcome.unwrap_or_else(|e| panic!("exporting in the browser: {e}; console: {log}"));
    assert_no_csp_violation(&log);
    let registered = trained.and_then(Result::ok).unwrap_or_default();
    assert!(registered.starts_with("smol-dpo-"), "{registered}");
    let (_, exports) = admin.get("/api/v1/exports").await;
    let mut chosen: Vec<String> = serde_json::from_value(exports[0]["spec"]["campaigns"].clone())
        .expect("the export's campaigns");
    chosen.sort();
    let mut both = vec![campaign.clone(), other.clone()];
    both.sort();
    assert_eq!(chosen, both, "the export took both ticked campaigns");
    let rows: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSONL"))
        .collect();
    assert_eq!(rows.len(), 2, "{body}");
    for row in &rows {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            ["chosen", "n_judgments", "prompt", "prompt_id", "rejected"]
                .into_iter()
                .collect()
        );
        assert!(row["prompt"].as_str().unwrap().starts_with("prompt "));
    }
}

/// An admin pastes prompts, starts generation on the generation page and watches the job's
/// progress reach the end; a worker runs beside the server as in `pairwise serve`.
async fn generate_in_browser(
    client: &Client,
    base: &str,
    campaign: &str,
) -> anyhow::Result<String> {
    log_in(client, base, "admin@x").await?;
    client
        .goto(&format!("{base}/campaigns/{campaign}/generate"))
        .await?;
    let prompts = client
        .wait()
        .for_element(Locator::Css("#prompts-text"))
        .await?;
    // Hydration is done once the model list (a resource) is in the form.
    until(60, "the model choice", || async {
        client
            .find(Locator::Css("#generate-model option"))
            .await
            .ok()
    })
    .await?;
    mark_page(client).await?;
    prompts
        .send_keys("Name a fruit.\nName a tree.\nName a river.")
        .await?;
    client
        .find(Locator::Css("#add-prompts"))
        .await?
        .click()
        .await?;
    until(30, "the prompts to be added", || async {
        text_of(client, "#prompts-added").await
    })
    .await?;
    let tokens = client
        .find(Locator::Css("input[name=max_new_tokens]"))
        .await?;
    tokens.clear().await?;
    tokens.send_keys("3").await?;
    // New vs old: one candidate from each of two models.
    client
        .find(Locator::Css("#generate-versus"))
        .await?
        .select_by_value("smol-dpo")
        .await?;
    client
        .find(Locator::Css("#start-generation"))
        .await?
        .click()
        .await?;
    let progress = until(120, "the job to finish", || async {
        client
            .find(Locator::Css("tr.job[data-status=done]"))
            .await
            .ok()?;
        text_of(client, "tr.job .job-progress").await
    })
    .await?;
    anyhow::ensure!(
        still_same_page(client).await?,
        "the generation page reloaded: it was not hydrated"
    );
    // The two models share their weights and each prompt's seed, so they wrote the same
    // answers: the page offers to sample those prompts again, and does.
    let offer = until(30, "the offer to regenerate", || async {
        text_of(client, "#identical-only").await
    })
    .await?;
    accessible(client, "generation").await?;
    anyhow::ensure!(offer.contains("3 prompts"), "the offer reads {offer:?}");
    client
        .find(Locator::Css("#regenerate"))
        .await?
        .click()
        .await?;
    until(30, "the confirmation", || async {
        for toast in client.find_all(Locator::Css(".toast")).await.ok()? {
            if toast.text().await.ok()?.contains("Regeneration queued") {
                return Some(());
            }
        }
        None
    })
    .await?;
    until(120, "the second job to finish", || async {
        let done = client
            .find_all(Locator::Css("tr.job[data-status=done]"))
            .await
            .ok()?;
        (done.len() == 2).then_some(())
    })
    .await?;
    anyhow::ensure!(
        still_same_page(client).await?,
        "regenerating reloaded the page"
    );
    Ok(progress)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_generates_candidates_from_the_generation_page(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let model = std::env::var("PAIRWISE_DEFAULT_MODEL").expect("PAIRWISE_DEFAULT_MODEL");
    let (status, body) = admin
        .post("/api/v1/models", json!({"name": "smol", "path": model}))
        .await;
    assert_eq!(status, 201, "{body}");
    // Stands in for a fine-tune of `smol` (the same weights suffice here).
    let (status, body) = admin
        .post(
            "/api/v1/models",
            json!({"name": "smol-dpo", "path": model, "parent": "smol"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let campaign = campaign_with_items(&admin, json!({"name": "Fresh"}), &[]).await;
    let stop = server::workers::spawn(
        &pool,
        &server.storage,
        server::workers::Counts::standard(1),
        &std::env::temp_dir().join("pairwise-browser-models"),
        None,
    );

    let (driver, client) = browser().await;
    let outcome = generate_in_browser(&client, &server.base, &campaign).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    let _ = stop.send(true);
    assert_eq!(
        outcome.unwrap_or_else(|e| panic!("generating in the browser: {e}; console: {log}")),
        "3 / 3"
    );
    assert_no_csp_violation(&log);
    let candidates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM candidates c JOIN prompts p ON p.id = c.prompt_id
         WHERE p.campaign_id = $1::uuid",
    )
    .bind(&campaign)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        candidates, 6,
        "two candidates for each of the three prompts"
    );
    let per_model: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.metadata->>'model', count(*) FROM candidates c JOIN prompts p ON p.id = c.prompt_id
         WHERE p.campaign_id = $1::uuid GROUP BY 1 ORDER BY 1",
    )
    .bind(&campaign)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        per_model,
        vec![("smol".to_string(), 3), ("smol-dpo".to_string(), 3)],
        "one candidate from each model per prompt"
    );
}

/// The admin's campaign page runs its forms in the hydrated app: pausing changes the badge
/// without a page load.
async fn pause_in_browser(client: &Client, base: &str, campaign: &str) -> anyhow::Result<String> {
    log_in(client, base, "admin@x").await?;
    client.goto(&format!("{base}/campaigns/{campaign}")).await?;
    let pause = client
        .wait()
        .for_element(Locator::Css("button.status-paused"))
        .await?;
    // The stats card is rendered from the campaign resource, so the page has data to hydrate.
    until(60, "the campaign's progress", || async {
        text_of(client, "#campaign-progress").await
    })
    .await?;
    mark_page(client).await?;
    pause.click().await?;
    let badge = until(30, "the paused badge", || async {
        text_of(client, "h1 .badge").await.filter(|b| b == "paused")
    })
    .await?;
    anyhow::ensure!(
        still_same_page(client).await?,
        "the campaign page reloaded: it was not hydrated"
    );
    Ok(badge)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_pauses_a_campaign_from_its_page(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let campaign = campaign_with_items(
        &admin,
        json!({"name": "To pause", "guidelines": "Be **kind**."}),
        &[pair(1)],
    )
    .await;
    let (driver, client) = browser().await;
    let outcome = pause_in_browser(&client, &server.base, &campaign).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    outcome.unwrap_or_else(|e| panic!("pausing in the browser: {e}; console: {log}"));
    assert_no_csp_violation(&log);
    let status: String = sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1::uuid")
        .bind(&campaign)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "paused");
}

/// Payloads after the OWASP XSS filter-evasion cheat sheet; each one that ran would set
/// `window.__xss`.
const XSS: &[&str] = &[
    "<script>window.__xss=1</script>",
    "<img src=x onerror=\"window.__xss=2\">",
    "<svg onload=\"window.__xss=3\">",
    "\"><script>window.__xss=4</script>",
    "[click](javascript:window.__xss=5)",
    "<iframe src=\"javascript:window.__xss=6\"></iframe>",
    "<a href=\"jav&#x09;ascript:window.__xss=7\">x</a>",
    "<body onload=window.__xss=8>",
    "<IMG SRC=JaVaScRiPt:window.__xss=9>",
    "<details open ontoggle=\"window.__xss=10\">",
    "';window.__xss=11;//",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=12>",
    "<input autofocus onfocus=window.__xss=13>",
    "![x](javascript:window.__xss=14)",
];

/// Opens `path` and tells whether the page loaded with nothing hostile run.
async fn inert(client: &Client, base: &str, path: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}{path}")).await?;
    until(20, &format!("{path} to load"), || async {
        text_of(client, "h1").await.filter(|t| !t.is_empty())
    })
    .await?;
    // Time for hydration, and for anything injected to run.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ran = client
        .execute(
            "return window.__xss === undefined ? null : window.__xss;",
            vec![],
        )
        .await?;
    anyhow::ensure!(ran.is_null(), "payload {ran} ran on {path}");
    Ok(())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn hostile_text_stays_inert_on_every_page(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let hostile = XSS.join(" ");
    let items: Vec<serde_json::Value> = (0..2)
        .map(|n| json!({"prompt": format!("{n} {hostile}"), "responses": [hostile.clone(), format!("plain {}", XSS[2])]}))
        .collect();
    let campaign = campaign_with_items(
        &admin,
        json!({"name": XSS[1], "guidelines": hostile.clone()}),
        &items,
    )
    .await;
    let model_path = std::env::var("PAIRWISE_DEFAULT_MODEL").expect("PAIRWISE_DEFAULT_MODEL");
    let (status, body) = admin
        .post(
            "/api/v1/models",
            json!({"name": XSS[0], "path": model_path}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin
        .post(
            "/api/v1/users",
            json!({"email": "<svg/onload=window.__xss=15>@x", "role": "labeler"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = admin
        .post(
            &format!("/api/v1/campaigns/{campaign}/members"),
            json!({"email": "lab@x"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, item) = labeler
        .get(&format!("/api/v1/campaigns/{campaign}/next"))
        .await;
    let assignment = item["assignment_id"].as_str().expect("an item").to_string();
    let item_id = item["item_id"].as_str().expect("an item").to_string();
    let (status, ack) = labeler
        .post(
            &format!("/api/v1/assignments/{assignment}/judgment"),
            json!({"choice": "a", "client_request_id": "x", "rationale": hostile}),
        )
        .await;
    assert_eq!(status, 201, "{ack}");

    let (driver, client) = browser().await;
    let outcome = async {
        log_in(&client, &server.base, "admin@x").await?;
        for path in [
            "/".to_string(),
            format!("/campaigns/{campaign}"),
            format!("/campaigns/{campaign}/generate"),
            "/exports".to_string(),
            "/users".to_string(),
            format!("/campaigns/{campaign}/items"),
            format!("/items/{item_id}"),
        ] {
            inert(&client, &server.base, &path).await?;
        }
        client.goto(&format!("{}/login", server.base)).await?;
        client.delete_all_cookies().await?;
        log_in(&client, &server.base, "lab@x").await?;
        inert(
            &client,
            &server.base,
            &format!("/campaigns/{campaign}/label"),
        )
        .await?;
        anyhow::ensure!(
            text_of(&client, "article.item")
                .await
                .is_some_and(|t| t.contains("window.__xss")),
            "the hostile prompt is shown, as text"
        );
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    outcome.unwrap_or_else(|e| panic!("hostile text in the browser: {e}; console: {log}"));
    assert_no_csp_violation(&log);
}

/// Saves the page on screen at a laptop's width and a phone's into the test output folder
/// (`target/tmp/screenshots/`), for a reviewer to look at, and checks that the narrow one
/// does not scroll sideways.
async fn screenshots(client: &Client, name: &str) -> anyhow::Result<()> {
    let folder = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&folder)?;
    for width in [1400u32, 400] {
        client.set_window_size(width, 900).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = client.screenshot().await?;
        std::fs::write(folder.join(format!("{name}-{width}.png")), png)?;
        let sideways = client
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                vec![],
            )
            .await?;
        anyhow::ensure!(
            sideways.as_f64().unwrap_or(1.0) <= 0.0,
            "{name} scrolls sideways by {sideways} px at {width} px wide"
        );
    }
    client.set_window_size(1280, 900).await?;
    Ok(())
}

/// axe-core (from npm, in `tools/node_modules`) on the page on screen: no serious or critical
/// WCAG 2.1 A/AA violation (labels, roles, names, contrast, focus order, ...).
async fn accessible(client: &Client, name: &str) -> anyhow::Result<()> {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&source).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (make setup installs axe-core from npm)",
            source.display()
        )
    })?;
    // Run as a WebDriver script (the page's policy allows no inline scripts): defines `axe`.
    client
        .execute(&format!("{axe}\nreturn true;"), vec![])
        .await?;
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
                                resultTypes: ['violations']})
               .then(r => done(r.violations
                   .filter(v => v.impact === 'serious' || v.impact === 'critical')
                   .map(v => `${v.id} (${v.impact}): ${v.help}; at ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)))
               .catch(e => done([`axe failed: ${e}`]));",
            vec![],
        )
        .await?;
    let violations: Vec<String> = serde_json::from_value(found)?;
    anyhow::ensure!(
        violations.is_empty(),
        "the {name} page has accessibility violations:\n{}",
        violations.join("\n")
    );
    Ok(())
}

/// The value of the form field `css`.
async fn value_of(client: &Client, css: &str) -> Option<String> {
    client
        .find(Locator::Css(css))
        .await
        .ok()?
        .prop("value")
        .await
        .ok()?
}

/// Signed out, a page sends its visitor to sign in and back; a failed attempt keeps the
/// e-mail; missing pages and refused ones say so in words, with the way back.
async fn errors_in_browser(client: &Client, base: &str) -> anyhow::Result<()> {
    client.goto(&format!("{base}/exports")).await?;
    until(30, "the sign-in page", || async {
        let url = client.current_url().await.ok()?;
        (url.path() == "/login" && url.query().is_some_and(|q| q.contains("next=%2Fexports")))
            .then_some(())
    })
    .await?;
    accessible(client, "sign-in").await?;
    let email = client.find(Locator::Css("input[name=email]")).await?;
    email.send_keys("res@x").await?;
    client
        .find(Locator::Css("input[name=password]"))
        .await?
        .send_keys("not the password")
        .await?;
    client
        .find(Locator::Css("form[action='/auth/login'] button"))
        .await?
        .click()
        .await?;
    until(20, "the failed sign-in", || async {
        text_of(client, "p.error")
            .await
            .filter(|t| t.contains("Wrong e-mail or password"))
    })
    .await?;
    anyhow::ensure!(
        value_of(client, "input[name=email]").await.as_deref() == Some("res@x"),
        "the typed e-mail was lost"
    );
    client
        .find(Locator::Css("input[name=password]"))
        .await?
        .send_keys(PASSWORD)
        .await?;
    client
        .find(Locator::Css("form[action='/auth/login'] button"))
        .await?
        .click()
        .await?;
    until(30, "the page asked for first", || async {
        let url = client.current_url().await.ok()?;
        (url.path() == "/exports").then_some(())
    })
    .await?;
    let page = |path: String| async move {
        client.goto(&format!("{base}{path}")).await?;
        until(30, &format!("{path} to say what happened"), || async {
            text_of(client, "main .error[role=alert], main .notice").await
        })
        .await
    };
    let missing = page(format!("/campaigns/{}", uuid::Uuid::new_v4())).await?;
    anyhow::ensure!(
        missing.contains("not shared with you"),
        "a missing campaign reads {missing:?}"
    );
    client
        .find(Locator::LinkText("Back to the campaign list"))
        .await?;
    let nowhere = page("/no/such/page".into()).await?;
    anyhow::ensure!(
        nowhere.contains("does not exist"),
        "an unknown address reads {nowhere:?}"
    );
    let refused = page("/users".into()).await?;
    anyhow::ensure!(
        refused.contains("You do not have access to this") && !refused.contains("server function"),
        "a refused page reads {refused:?}"
    );
    Ok(())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn errors_read_as_sentences_with_a_way_forward(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    user(&pool, "res@x", Role::Researcher).await;
    let (driver, client) = browser().await;
    let outcome = errors_in_browser(&client, &server.base).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    outcome.unwrap_or_else(|e| panic!("errors in the browser: {e}; console: {log}"));
}

/// An admin imports twice (the second adds nothing), browses the items, and closes the
/// campaign after confirming: the closed page offers nothing that no longer makes sense.
async fn administer_in_browser(
    client: &Client,
    base: &str,
    campaign: &str,
    labeler: &Api,
) -> anyhow::Result<()> {
    log_in(client, base, "admin@x").await?;
    // An invitation is shown as the whole link, with a button that copies it.
    client.goto(&format!("{base}/users")).await?;
    until(60, "the user list", || async {
        client.find(Locator::Css("table.list")).await.ok()
    })
    .await?;
    accessible(client, "users").await?;
    client
        .find(Locator::Css("input[name=email]"))
        .await?
        .send_keys("new@x")
        .await?;
    client
        .find(Locator::Css(
            "form:has(input[name=email]) button[type=submit]",
        ))
        .await?
        .click()
        .await?;
    let link = until(30, "the invitation link", || async {
        value_of(client, "#invite-link").await
    })
    .await?;
    anyhow::ensure!(
        link.starts_with(&format!("{base}/invite/pwi_")),
        "the invitation reads {link:?}"
    );
    client
        .find(Locator::Css("#copy-invite"))
        .await?
        .click()
        .await?;
    until(10, "the copy to be confirmed", || async {
        text_of(client, "#copy-invite")
            .await
            .filter(|t| t == "Copied")
    })
    .await?;
    client.goto(&format!("{base}/campaigns/{campaign}")).await?;
    until(60, "the campaign's progress", || async {
        text_of(client, "#campaign-progress").await
    })
    .await?;
    mark_page(client).await?;
    let lines = format!(
        "{}\n{}\n",
        json!({"id": "a", "prompt": "alpha", "responses": ["one", "two"]}),
        json!({"id": "b", "prompt": "beta", "responses": ["same  answer", "same answer"]})
    );
    for (round, expected) in [
        (0, "Imported 2 prompts as 1 item. Left out 1 pair whose two responses were the same."),
        (1, "Imported 0 prompts as 0 items. Skipped 2 lines already in this campaign (same id; line 1, 2)."),
    ] {
        client.find(Locator::Css("#import-text")).await?.send_keys(&lines).await?;
        client
            .find(Locator::Css("form:has(#import-text) button[type=submit]"))
            .await?
            .click()
            .await?;
        until(30, "the import report", || async {
            text_of(client, "#import-report").await.filter(|t| t == expected)
        })
        .await
        .map_err(|e| anyhow::anyhow!("import {round}: {e}"))?;
        anyhow::ensure!(
            value_of(client, "#import-text").await.as_deref() == Some(""),
            "the import form kept its text after import {round}"
        );
    }
    screenshots(client, "campaign").await?;
    accessible(client, "campaign").await?;
    client
        .find(Locator::Css("#browse-items"))
        .await?
        .click()
        .await?;
    let rows = until(30, "the item rows", || async {
        let rows = client.find_all(Locator::Css("tr.item-row")).await.ok()?;
        (!rows.is_empty()).then_some(rows.len())
    })
    .await?;
    // "beta" made no item: its two responses are the same.
    anyhow::ensure!(rows == 1, "the browser lists {rows} items");
    screenshots(client, "items").await?;
    accessible(client, "items").await?;
    client
        .find(Locator::Css("tr.item-row a"))
        .await?
        .click()
        .await?;
    until(30, "the item's page", || async {
        text_of(client, "main h2")
            .await
            .filter(|t| t == "Judgments")
    })
    .await?;
    screenshots(client, "item").await?;
    accessible(client, "item").await?;
    // The labeler judges the one item, so the settings below change a judged campaign.
    let (_, item) = labeler
        .get(&format!("/api/v1/campaigns/{campaign}/next"))
        .await;
    let assignment = item["assignment_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = labeler
        .post(
            &format!("/api/v1/assignments/{assignment}/judgment"),
            json!({"choice": "a", "client_request_id": "one"}),
        )
        .await;
    anyhow::ensure!(status == 201, "the labeler's judgment: {status}");
    client.goto(&format!("{base}/campaigns/{campaign}")).await?;
    until(60, "the campaign's progress", || async {
        text_of(client, "#campaign-progress").await
    })
    .await?;
    mark_page(client).await?;
    // Settings after creation: the page says what happens to judgments already made.
    let note = text_of(client, "#settings-note").await.unwrap_or_default();
    anyhow::ensure!(
        note.starts_with("1 judgment already made"),
        "the settings note reads {note:?}"
    );
    let name = client.find(Locator::Css("#settings-name")).await?;
    name.clear().await?;
    name.send_keys("Everyday, renamed").await?;
    let overlap = client.find(Locator::Css("#settings-overlap")).await?;
    overlap.clear().await?;
    overlap.send_keys("3").await?;
    client
        .find(Locator::Css("#save-settings"))
        .await?
        .click()
        .await?;
    until(30, "the saved settings", || async {
        text_of(client, "h1")
            .await
            .filter(|t| t.starts_with("Everyday, renamed"))
    })
    .await?;
    let toast = text_of(client, "#settings .toast")
        .await
        .unwrap_or_default();
    anyhow::ensure!(
        toast == "Settings saved.",
        "the settings toast reads {toast:?}"
    );
    // Removing a member.
    client
        .find(Locator::Css("button.remove-member"))
        .await?
        .click()
        .await?;
    until(30, "the member to go", || async {
        let members = text_of(client, "ul.members").await?;
        (!members.contains("lab@x")).then_some(())
    })
    .await?;
    anyhow::ensure!(
        still_same_page(client).await?,
        "the page reloaded: it was not hydrated"
    );
    // Closing asks first; "Cancel" leaves everything as it was.
    client
        .find(Locator::Css("#close-campaign"))
        .await?
        .click()
        .await?;
    let question = until(10, "the confirmation", || async {
        text_of(client, "#close-question").await
    })
    .await?;
    anyhow::ensure!(question.contains("cannot be reopened"), "{question}");
    client
        .find(Locator::Css(".confirm button[type=button]"))
        .await?
        .click()
        .await?;
    until(10, "the confirmation to go", || async {
        client
            .find(Locator::Css("#close-question"))
            .await
            .err()
            .map(|_| ())
    })
    .await?;
    client
        .find(Locator::Css("#close-campaign"))
        .await?
        .click()
        .await?;
    client
        .wait()
        .for_element(Locator::Css("#confirm-close"))
        .await?
        .click()
        .await?;
    until(30, "the closed badge", || async {
        text_of(client, "h1 .badge").await.filter(|b| b == "closed")
    })
    .await?;
    anyhow::ensure!(still_same_page(client).await?, "closing reloaded the page");
    client.find(Locator::Css("#closed-note")).await?;
    for gone in [
        "#import-text",
        "#open-generation",
        "#start-labeling",
        "button.status-paused",
    ] {
        anyhow::ensure!(
            client.find(Locator::Css(gone)).await.is_err(),
            "the closed campaign still offers {gone}"
        );
    }
    // Archived, it moves to the list's own section.
    client
        .find(Locator::Css("#archive-campaign"))
        .await?
        .click()
        .await?;
    until(30, "the archive to be confirmed", || async {
        text_of(client, "#archive-or-delete .toast").await
    })
    .await?;
    client.goto(&format!("{base}/")).await?;
    let archived = until(30, "the archived section", || async {
        text_of(client, "details.archived summary").await
    })
    .await?;
    anyhow::ensure!(
        archived == "Archived (1)",
        "the list's archive reads {archived:?}"
    );
    // Deleting asks first, and a judged campaign only goes with its judgments ticked.
    client.goto(&format!("{base}/campaigns/{campaign}")).await?;
    until(60, "the campaign's progress", || async {
        text_of(client, "#campaign-progress").await
    })
    .await?;
    client
        .find(Locator::Css("#delete-campaign"))
        .await?
        .click()
        .await?;
    client
        .wait()
        .for_element(Locator::Css("#confirm-delete"))
        .await?
        .click()
        .await?;
    let refused = until(30, "the refusal", || async {
        text_of(client, "#archive-or-delete .error").await
    })
    .await?;
    anyhow::ensure!(
        refused.contains("1 judgment"),
        "the refusal reads {refused:?}"
    );
    client
        .find(Locator::Css("#delete-judgments"))
        .await?
        .click()
        .await?;
    client
        .find(Locator::Css("#confirm-delete"))
        .await?
        .click()
        .await?;
    until(30, "the campaign list", || async {
        let url = client.current_url().await.ok()?;
        (url.path() == "/").then_some(())
    })
    .await?;
    Ok(())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_imports_browses_items_and_closes_a_campaign(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    let labeler = Api::new(&server, &user(&pool, "lab@x", Role::Labeler).await);
    let campaign = campaign_with_items(&admin, json!({"name": "Everyday"}), &[]).await;
    admin.add_member(&campaign, "lab@x", "labeler").await;
    let (driver, client) = browser().await;
    let outcome = administer_in_browser(&client, &server.base, &campaign, &labeler).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    outcome.unwrap_or_else(|e| panic!("administering in the browser: {e}; console: {log}"));
    assert_no_csp_violation(&log);
    let (campaigns, judgments): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM campaigns), (SELECT count(*) FROM judgments)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((campaigns, judgments), (0, 0), "deleted with its judgment");
    let audit: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'campaign.%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        audit.ends_with(&["campaign.delete".to_string()]),
        "{audit:?}"
    );
}

/// A long response scrolls in its box with the choices in view; then the admin pauses the
/// campaign under the labeler, whose page stops cleanly and never keeps a judged item.
async fn long_and_paused_in_browser(
    client: &Client,
    base: &str,
    campaign: &str,
    admin: &Api,
) -> anyhow::Result<usize> {
    log_in(client, base, "lab@x").await?;
    client
        .goto(&format!("{base}/campaigns/{campaign}/label"))
        .await?;
    until(60, "the first item", || shown_assignment(client)).await?;
    let left = text_of(client, "#left-for-you").await.unwrap_or_default();
    anyhow::ensure!(left == "3 of 3 left for you", "the page says {left:?}");
    let layout = client
        .execute(
            "const bodies = [...document.querySelectorAll('.response .body')];
             const boxes = [...document.querySelectorAll('.response')];
             const bar = document.querySelector('.choices').getBoundingClientRect();
             return {
               scrolls: bodies.some(b => b.scrollHeight > b.clientHeight + 10),
               heights: boxes.map(b => b.getBoundingClientRect().height),
               page: document.documentElement.scrollHeight,
               bar_visible: bar.bottom <= window.innerHeight && bar.top >= 0,
             };",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        layout["scrolls"] == json!(true),
        "no response scrolls in its box: {layout}"
    );
    let heights: Vec<f64> = layout["heights"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_f64())
        .collect();
    anyhow::ensure!(
        heights.len() == 2 && (heights[0] - heights[1]).abs() > 50.0,
        "the short response is stretched to the long one's height: {layout}"
    );
    anyhow::ensure!(
        layout["page"].as_f64().unwrap_or(1e9) < 3000.0,
        "the page is too tall: {layout}"
    );
    anyhow::ensure!(
        layout["bar_visible"] == json!(true),
        "the choices are out of view: {layout}"
    );
    // Code blocks come highlighted from the server, as classes the stylesheet colours.
    let colours = client
        .execute(
            "const s = document.querySelector('.response code.hl-code .hl-string');
             return s ? getComputedStyle(s).color : null;",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        colours.as_str().is_some_and(|c| c != "rgb(29, 35, 48)"),
        "the code block is not highlighted: {colours}"
    );
    press(client, 'j').await?;
    until(10, "J to scroll the long response", || async {
        let top = client
            .execute("return Math.max(...[...document.querySelectorAll('.response .body')].map(b => b.scrollTop));", vec![])
            .await
            .ok()?;
        (top.as_f64()? > 0.0).then_some(())
    })
    .await?;
    screenshots(client, "labeling").await?;
    accessible(client, "labeling").await?;
    // The admin pauses; the answers the labeler gives still count, then the page stops.
    let (status, body) = admin
        .patch(
            &format!("/api/v1/campaigns/{campaign}"),
            json!({"status": "paused"}),
        )
        .await;
    anyhow::ensure!(status == 200, "{body}");
    let mut answered = 0;
    let stopped = loop {
        if let Some(why) = text_of(client, "#label-stopped").await {
            break why;
        }
        anyhow::ensure!(answered < 3, "the page never stopped");
        let shown = until(20, "an item or the stop", || async {
            match shown_assignment(client).await {
                Some(a) => Some(Some(a)),
                None => text_of(client, "#label-stopped").await.map(|_| None),
            }
        })
        .await?;
        let Some(shown) = shown else { continue };
        press(client, 'a').await?;
        answered += 1;
        until(20, "the answer to land", || async {
            (shown_assignment(client).await.as_deref() != Some(shown.as_str())).then_some(())
        })
        .await?;
    };
    anyhow::ensure!(stopped.contains("paused"), "the page says {stopped:?}");
    anyhow::ensure!(
        shown_assignment(client).await.is_none(),
        "an item stays on screen after the stop"
    );
    anyhow::ensure!(
        text_of(client, "#label-message").await.is_none(),
        "the stop came with an error"
    );
    client
        .find(Locator::LinkText("Back to the campaign list"))
        .await?;
    Ok(answered)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn labeling_scrolls_long_responses_and_stops_when_paused(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    user(&pool, "lab@x", Role::Labeler).await;
    let long: String = (1..=40)
        .map(|n| format!("Paragraph {n} of a long answer.\n\n"))
        .collect();
    let lines: Vec<_> = (0..3)
        .map(|n| json!({"prompt": format!("question {n}"), "responses": [long.clone(), "A short answer:\n\n```python\nprint('hi')  # greet\n```"]}))
        .collect();
    let campaign = campaign_with_items(&admin, json!({"name": "Long"}), &lines).await;
    admin.add_member(&campaign, "lab@x", "labeler").await;
    let (driver, client) = browser().await;
    let outcome = long_and_paused_in_browser(&client, &server.base, &campaign, &admin).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    let answered =
        outcome.unwrap_or_else(|e| panic!("labeling in the browser: {e}; console: {log}"));
    assert_no_csp_violation(&log);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        stored, answered as i64,
        "every answer given while pausing was stored"
    );
}

/// The models page: the admin sees a registered model's file and size, registers a fine-tuned
/// one from the form, and a researcher sees the list without the form.
async fn models_in_browser(client: &Client, base: &str, model_path: &str) -> anyhow::Result<()> {
    log_in(client, base, "admin@x").await?;
    client.goto(&format!("{base}/models")).await?;
    let files = until(60, "the base model's files", || async {
        text_of(client, "tr.model[data-name='smol'] .files")
            .await
            .filter(|t| t.contains("1 file"))
    })
    .await?;
    anyhow::ensure!(files.contains("MiB"), "the files read {files:?}");
    for (field, value) in [
        ("#model-name", "smol-tuned"),
        ("#model-path", model_path),
        ("#model-parent", "smol"),
    ] {
        client
            .find(Locator::Css(field))
            .await?
            .send_keys(value)
            .await?;
    }
    client
        .find(Locator::Css("#register"))
        .await?
        .click()
        .await?;
    until(30, "the new model with its parent", || async {
        text_of(client, "tr.model[data-name='smol-tuned'] .parent")
            .await
            .filter(|t| t == "smol")
    })
    .await?;
    screenshots(client, "models").await?;
    accessible(client, "models").await?;
    client.delete_all_cookies().await?;
    log_in(client, base, "res@x").await?;
    client.goto(&format!("{base}/models")).await?;
    until(30, "the model list", || async {
        client.find(Locator::Css("tr.model")).await.ok()
    })
    .await?;
    anyhow::ensure!(
        client.find(Locator::Css("#register-model")).await.is_err(),
        "a researcher is offered the admins' form"
    );
    Ok(())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_registers_a_model_on_the_models_page(pool: PgPool) {
    let server = spawn(pool.clone()).await;
    let admin = Api::new(&server, &user(&pool, "admin@x", Role::Admin).await);
    user(&pool, "res@x", Role::Researcher).await;
    let model_path = std::env::var("PAIRWISE_DEFAULT_MODEL")
        .expect("PAIRWISE_DEFAULT_MODEL (scripts/with-env.sh sets it)");
    let (status, body) = admin
        .post(
            "/api/v1/models",
            json!({"name": "smol", "path": model_path}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (driver, client) = browser().await;
    let outcome = models_in_browser(&client, &server.base, &model_path).await;
    let log = console_log(&driver, &client).await;
    let _ = client.close().await;
    outcome.unwrap_or_else(|e| panic!("the models page: {e}; console: {log}"));
    assert_no_csp_violation(&log);
    // The API lists the same: the file with its size on disk, and the lineage.
    let (_, models) = admin.get("/api/v1/models").await;
    let bytes = std::fs::metadata(&model_path).unwrap().len();
    assert_eq!(models[0]["files"][0]["bytes"], bytes, "{models}");
    assert_eq!(models[1]["name"], "smol-tuned");
    assert_eq!(models[1]["parent"], "smol");
    assert_eq!(models[1]["parent_id"], models[0]["id"]);
}
