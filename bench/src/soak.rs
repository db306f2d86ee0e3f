//! `pairwise-bench soak`: many labelers submit a fixed number of judgments to a real server,
//! one request per item, retrying as the labeling page does, while the server's memory is
//! sampled; then the database must hold exactly the acknowledged judgments, none twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use reqwest::StatusCode;

use crate::{cpu_ms, label_for, latency_row, Flow, Served};

pub struct SoakRun {
    pub labelers: usize,
    pub judgments: u64,
    pub overlap: i32,
    pub warmup: usize,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub sample: Duration,
}

/// How a simulated page sends its requests.
#[derive(Clone, Copy)]
struct Retry {
    timeout: Duration,
    max_attempts: u32,
}

/// Which latency list a request's attempts go to.
#[derive(Clone, Copy)]
enum Request {
    Next,
    Judgment,
}

/// What one labeler (or, summed, all of them) saw.
#[derive(Default)]
struct Tally {
    acked: u64,
    /// Acknowledged with 200: an earlier attempt had stored it and its answer was lost.
    replayed: u64,
    /// Attempts after the first, for any reason below.
    retries: u64,
    timeouts: u64,
    transport_errors: u64,
    /// 5xx and 429 answers, which the page retries.
    server_errors: u64,
    /// Refused requests (other 4xx), unusable answers and labelers that gave up.
    errors: u64,
    next_ms: Vec<f64>,
    /// Each judgment attempt's time.
    submit_ms: Vec<f64>,
    /// Each judgment from its first attempt to its answer, retries and pauses included:
    /// what a labeler waits.
    answered_ms: Vec<f64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.acked += other.acked;
        self.replayed += other.replayed;
        self.retries += other.retries;
        self.timeouts += other.timeouts;
        self.transport_errors += other.transport_errors;
        self.server_errors += other.server_errors;
        self.errors += other.errors;
        self.next_ms.extend(other.next_ms);
        self.submit_ms.extend(other.submit_ms);
        self.answered_ms.extend(other.answered_ms);
    }
}

/// A `kB` field of `/proc/<pid>/status`: `VmRSS` (resident now) or `VmHWM` (its peak).
fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .with_context(|| format!("no {field} in {path}"))
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// Sends a request until it gets an answer worth acting on, as the labeling page does: a
/// timeout, a connection error, a 5xx or a 429 is retried (the same request, so a judgment
/// keeps its `client_request_id`) after a growing pause. Returns the status and, for a 2xx
/// with a body, the parsed JSON (`Null` otherwise); fails after `max_attempts`.
async fn send_retrying(
    make: impl Fn() -> reqwest::RequestBuilder,
    retry: Retry,
    kind: Request,
    jitter_ms: u64,
    tally: &mut Tally,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let mut last = String::new();
    for attempt in 1..=retry.max_attempts {
        if attempt > 1 {
            tally.retries += 1;
            // 50 ms doubling up to 2 s, shifted per labeler so retries do not arrive together.
            let pause = (50u64 << (attempt - 2).min(6)).min(2_000) + jitter_ms;
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let t = Instant::now();
        let answer = match make().timeout(retry.timeout).send().await {
            // The body is read under the same timeout; losing it is as retryable as the rest.
            Ok(r) => {
                let status = r.status();
                r.bytes().await.map(|body| (status, body))
            }
            Err(e) => Err(e),
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match kind {
            Request::Next => tally.next_ms.push(ms),
            Request::Judgment => tally.submit_ms.push(ms),
        }
        match answer {
            Ok((status, _))
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                tally.server_errors += 1;
                last = format!("HTTP {status}");
            }
            Ok((status, body)) => {
                let value = if status.is_success() && !body.is_empty() {
                    serde_json::from_slice(&body)
                        .with_context(|| format!("an HTTP {status} answer that is not JSON"))?
                } else {
                    serde_json::Value::Null
                };
                return Ok((status, value));
            }
            Err(e) => {
                if e.is_timeout() {
                    tally.timeouts += 1;
                } else {
                    tally.transport_errors += 1;
                }
                last = e.to_string();
            }
        }
    }
    bail!("gave up after {} attempts: {last}", retry.max_attempts)
}

/// One simulated labeler's page: where it sends requests and as whom.
struct Labeler {
    client: reqwest::Client,
    base: String,
    campaign_id: String,
    token: String,
    n: usize,
    retry: Retry,
    /// Judgments acknowledged by all labelers, for the progress line.
    progress: Arc<AtomicU64>,
}

impl Labeler {
    fn jitter_ms(&self) -> u64 {
        (self.n as u64 * 7) % 50
    }

    /// `GET next` (other than `exclude`): the item, or `None` when nothing is left.
    async fn next(
        &self,
        exclude: Option<&str>,
        tally: &mut Tally,
    ) -> anyhow::Result<Option<serde_json::Value>> {
        let url = match exclude {
            Some(a) => format!(
                "{}/api/v1/campaigns/{}/next?exclude={a}",
                self.base, self.campaign_id
            ),
            None => format!("{}/api/v1/campaigns/{}/next", self.base, self.campaign_id),
        };
        let make = || self.client.get(&url).bearer_auth(&self.token);
        let (status, item) =
            send_retrying(make, self.retry, Request::Next, self.jitter_ms(), tally).await?;
        match status {
            StatusCode::OK => Ok(Some(item)),
            StatusCode::NO_CONTENT => Ok(None),
            other => bail!("GET next answered HTTP {other}"),
        }
    }

    /// Judges items until the campaign has nothing left for this labeler.
    async fn label(&self, tally: &mut Tally) -> anyhow::Result<()> {
        let Some(mut item) = self.next(None, tally).await? else {
            return Ok(());
        };
        for k in 1u64.. {
            let assignment = item["assignment_id"]
                .as_str()
                .context("an item without assignment_id")?
                .to_string();
            let url = format!(
                "{}/api/v1/assignments/{assignment}/judgment?next=true",
                self.base
            );
            let choice = ["a", "b", "tie", "a", "b"][(k as usize + self.n) % 5];
            let body = serde_json::json!({
                "choice": choice,
                "client_request_id": format!("soak-{}-{k}", self.n),
                "time_on_task_ms": 1500,
            });
            let make = || self.client.post(&url).bearer_auth(&self.token).json(&body);
            let asked = Instant::now();
            let (status, answer) =
                send_retrying(make, self.retry, Request::Judgment, self.jitter_ms(), tally).await?;
            tally
                .answered_ms
                .push(asked.elapsed().as_secs_f64() * 1000.0);
            let next = match status {
                StatusCode::CREATED | StatusCode::OK => {
                    tally.acked += 1;
                    if status == StatusCode::OK {
                        tally.replayed += 1;
                    }
                    self.progress.fetch_add(1, Ordering::Relaxed);
                    match answer.get("next") {
                        Some(serde_json::Value::Null) => None,
                        Some(next) if next.is_object() => Some(next.clone()),
                        _ => bail!("a judgment answer without `next`"),
                    }
                }
                other => {
                    // A refused judgment: the page moves on to another item.
                    tally.errors += 1;
                    eprintln!("labeler {}: judgment answered HTTP {other}", self.n);
                    self.next(Some(&assignment), tally).await?
                }
            };
            match next {
                Some(next) => item = next,
                None => break,
            }
        }
        Ok(())
    }
}

/// Samples the server's RSS every `every` until `stop`, printing progress to stderr.
async fn sample_rss(
    pid: u32,
    every: Duration,
    progress: Arc<AtomicU64>,
    target: u64,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Vec<u64> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Ok(kb) = status_kb(pid, "VmRSS") {
                    samples.push(kb);
                    eprintln!(
                        "soak: {} / {target} judgments, server RSS {}",
                        progress.load(Ordering::Relaxed),
                        mib(kb)
                    );
                }
            }
            _ = &mut stop => break,
        }
    }
    samples
}

pub async fn soak_on(url: &str, run: SoakRun, addr: &str) -> anyhow::Result<()> {
    let SoakRun {
        labelers,
        judgments,
        overlap,
        warmup,
        timeout,
        max_attempts,
        sample,
    } = run;
    // Exactly `judgments` slots, all fillable: labelers stop when the campaign is exhausted.
    if overlap < 1 || judgments % overlap as u64 != 0 {
        bail!("--judgments ({judgments}) must be a multiple of --overlap ({overlap})");
    }
    if labelers < overlap as usize {
        bail!("--labelers ({labelers}) must be at least --overlap ({overlap})");
    }
    let items = (judgments / overlap as u64) as usize;
    let served = Served::start(url, labelers, addr).await?;
    let pid = served.pid;
    let rss_idle = status_kb(pid, "VmRSS")?;

    // A separate campaign warms the server and gives ANALYZE realistic tables (as in
    // `ingest`), without taking slots from the measured one.
    let mut warmed = None;
    if warmup > 0 {
        let (warm_id, _) = served.campaign("soak warm-up", warmup, 1).await?;
        let warm = label_for(
            &served.client,
            &served.base,
            &warm_id,
            &served.tokens,
            300,
            "warmup",
            Flow::Advance,
        )
        .await?;
        warmed = Some(warm);
    }
    let (campaign_id, import_secs) = served.campaign("soak", items, overlap).await?;
    let campaign = uuid::Uuid::parse_str(&campaign_id).context("campaign id")?;
    sqlx::query("ANALYZE").execute(&served.pool).await?;
    let rss_start = status_kb(pid, "VmRSS")?;

    let progress = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_rss(
        pid,
        sample,
        progress.clone(),
        judgments,
        stopped,
    ));
    let retry = Retry {
        timeout,
        max_attempts,
    };
    let cpu_before = cpu_ms(pid)?;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(labelers);
    for (n, token) in served.tokens.iter().enumerate() {
        let labeler = Labeler {
            client: served.client.clone(),
            base: served.base.clone(),
            campaign_id: campaign_id.clone(),
            token: token.clone(),
            n,
            retry,
            progress: progress.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            if let Err(e) = labeler.label(&mut tally).await {
                tally.errors += 1;
                eprintln!("labeler {n} stopped: {e:#}");
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        all.add(task.await.context("a labeler task panicked")?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_ms(pid)? - cpu_before;
    let _ = stop.send(());
    let samples = sampler.await.context("the RSS sampler panicked")?;
    let rss_end = status_kb(pid, "VmRSS")?;
    let rss_peak = status_kb(pid, "VmHWM")?;

    // Each submission is acknowledged once (the retries carry its request id), so the
    // database must hold one row per acknowledgment: none lost, none twice.
    let (stored, by_request, by_assignment, by_labeler_item): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT count(*), count(DISTINCT client_request_id), count(DISTINCT assignment_id),
                    count(DISTINCT (user_id, item_id))
             FROM judgments WHERE campaign_id = $1",
        )
        .bind(campaign)
        .fetch_one(&served.pool)
        .await?;
    let over_filled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT item_id FROM judgments WHERE campaign_id = $1
                               GROUP BY item_id HAVING count(*) > $2) o",
    )
    .bind(campaign)
    .bind(i64::from(overlap))
    .fetch_one(&served.pool)
    .await?;
    let open_leases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM assignments WHERE campaign_id = $1 AND status = 'leased'",
    )
    .bind(campaign)
    .fetch_one(&served.pool)
    .await?;
    served.stop().await;

    all.next_ms.sort_by(f64::total_cmp);
    all.submit_ms.sort_by(f64::total_cmp);
    all.answered_ms.sort_by(f64::total_cmp);
    let mut any: Vec<f64> = all.next_ms.iter().chain(&all.submit_ms).copied().collect();
    any.sort_by(f64::total_cmp);
    let acked = all.acked;
    println!("| metric | value |");
    println!("|---|---|");
    println!("| labelers (concurrent clients) | {labelers} |");
    println!(
        "| flow | POST judgment?next=true (one request per item); timeout {} ms, retried with the same client_request_id on timeout, connection error, 429 and 5xx |",
        timeout.as_millis()
    );
    println!(
        "| import of {items} items (overlap {overlap}) | {import_secs:.2} s ({:.0} items/s) |",
        items as f64 / import_secs
    );
    if let Some(warm) = &warmed {
        println!(
            "| warm-up (separate campaign, before ANALYZE) | {} judgments in {:.1} s, {} errors |",
            warm.acked, warm.seconds, warm.errors
        );
    }
    println!("| judgments target | {judgments} |");
    println!(
        "| judgments acknowledged | {acked} ({} of them replayed: stored by an attempt whose answer was lost) |",
        all.replayed
    );
    println!("| duration | {seconds:.1} s |");
    println!("| judgments/s | {:.0} |", acked as f64 / seconds);
    latency_row("judgment attempt", &all.submit_ms);
    latency_row(
        "judgment as the labeler waits (retries included)",
        &all.answered_ms,
    );
    latency_row("any request", &any);
    println!(
        "| retries | {} ({} timeouts, {} connection errors, {} 5xx/429) |",
        all.retries, all.timeouts, all.transport_errors, all.server_errors
    );
    println!("| errors | {} |", all.errors);
    println!(
        "| server CPU per judgment | {:.2} ms |",
        cpu / acked.max(1) as f64
    );
    println!("| server RSS idle, after start | {} |", mib(rss_idle));
    println!(
        "| server RSS at start (after warm-up, before load) | {} |",
        mib(rss_start)
    );
    if let (Some(min), Some(max)) = (samples.iter().min(), samples.iter().max()) {
        println!(
            "| server RSS during the run ({} samples, every {:.0} s) | min {} / max {} (first {}, last {}) |",
            samples.len(),
            sample.as_secs_f64(),
            mib(*min),
            mib(*max),
            mib(samples[0]),
            mib(samples[samples.len() - 1])
        );
    }
    println!("| server RSS at end | {} |", mib(rss_end));
    println!(
        "| server peak RSS since it started (VmHWM; the import included) | {} |",
        mib(rss_peak)
    );
    println!("| judgments in database | {stored} |");
    println!(
        "| duplicates: assignment / client_request_id / labeler+item / items over overlap | {} / {} / {} / {over_filled} |",
        stored - by_assignment,
        stored - by_request,
        stored - by_labeler_item
    );
    println!("| leases left open | {open_leases} |");
    if stored as u64 != acked {
        bail!("the database holds {stored} judgments but {acked} were acknowledged");
    }
    if stored != by_assignment
        || stored != by_request
        || stored != by_labeler_item
        || over_filled != 0
    {
        bail!("the database holds duplicate judgments");
    }
    if acked != judgments {
        bail!("{acked} judgments were acknowledged, not the {judgments} the campaign holds");
    }
    println!(
        "database check: exactly the {judgments} acknowledged judgments are stored, none twice"
    );
    Ok(())
}
