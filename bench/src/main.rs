//! `pairwise-bench`: Pairwise's benchmarks, a binary of their own beside `pairwise`.
//!
//! `pairwise-bench ingest`: simulated labelers against a real server over loopback.
//! `pairwise-bench export`: export speed and memory beside `psql \copy` of the same query.
//! `pairwise-bench queue`: generation through the job queue beside the engine alone.
//! `pairwise-bench soak`: a fixed number of judgments from many retrying labelers, with the
//! server's memory and an exact database check (see `soak.rs`).
//!
//! Creates a scratch database, starts `pairwise serve` (the binary beside this one) on it as a
//! child process, imports
//! items, then lets N labelers fetch `next` and submit judgments (either as two requests, or
//! one judgment request that brings the next item, as the labeling page does): a warm-up from
//! empty tables, `ANALYZE`, then the measured run. Prints throughput, latency percentiles and
//! the CPU time per judgment of the server, of local PostgreSQL processes and of the load
//! generator, and checks that the database holds exactly the judgments the server acknowledged.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use sqlx::Connection;

mod soak;

/// How a simulated labeler gets its next item.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Flow {
    Separate,
    Advance,
}

#[derive(Parser)]
#[command(name = "pairwise-bench", about = "Pairwise's benchmarks")]
struct Cli {
    /// PostgreSQL URL; the benchmark creates a scratch database beside it.
    #[arg(long, env = "PAIRWISE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Labeling throughput: next + judgment over HTTP.
    Ingest {
        #[arg(long, default_value_t = 32)]
        labelers: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seconds of labeling from empty tables before `ANALYZE` and the measured run.
        #[arg(long, default_value_t = 10)]
        warmup: u64,
        #[arg(long, default_value_t = 60_000)]
        items: usize,
        #[arg(long, default_value_t = 3)]
        overlap: i32,
        #[arg(long, default_value = "127.0.0.1:3917")]
        addr: String,
        /// `separate`: `GET next`, then the judgment; `advance`: the judgment asks for the
        /// next item too (`?next=true`), as the labeling page does: one request per item.
        #[arg(long, value_enum, default_value_t = Flow::Advance)]
        flow: Flow,
    },
    /// Generation through the job queue (claim, engine, commit) beside the engine alone on
    /// the same prompts and settings.
    Queue {
        #[arg(long, default_value_t = 12)]
        prompts: usize,
        #[arg(long, default_value_t = 2)]
        k: u32,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: u32,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// A GGUF file or Hugging Face directory (default: the default model).
        #[arg(long)]
        model: Option<std::path::PathBuf>,
    },
    /// Soak: many labelers submit a fixed number of judgments, one request per item,
    /// retrying as the labeling page does; latency, the server's memory over the run, and
    /// a check that the database holds each acknowledged judgment exactly once.
    Soak {
        #[arg(long, default_value_t = 200)]
        labelers: usize,
        /// Judgments in all: the campaign gets judgments / overlap items, so exactly this
        /// many slots, and the labelers stop when they are filled.
        #[arg(long, default_value_t = 100_000)]
        judgments: u64,
        #[arg(long, default_value_t = 2)]
        overlap: i32,
        /// Judgments on a separate warm-up campaign before `ANALYZE` and the starting RSS.
        #[arg(long, default_value_t = 5_000)]
        warmup: usize,
        /// Per-request timeout; a request that runs past it is sent again.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Attempts per request before a labeler gives up (and the run fails).
        #[arg(long, default_value_t = 10)]
        max_attempts: u32,
        /// Seconds between samples of the server's RSS.
        #[arg(long, default_value_t = 2)]
        sample_secs: u64,
        #[arg(long, default_value = "127.0.0.1:3918")]
        addr: String,
    },
    /// Export speed and memory: synthetic judgments to TRL JSONL and Parquet, beside
    /// `psql \copy` of the same query.
    Export {
        /// Judgment counts to measure (three labelers per item), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        judgments: Vec<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    server::telemetry::init_logging();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli.command, cli.database_url))
}

/// The `pairwise` binary, built beside this one.
fn pairwise_exe() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()
        .context("locating this binary")?
        .with_file_name("pairwise");
    if !exe.is_file() {
        bail!(
            "{} is missing: build the pairwise binary too",
            exe.display()
        );
    }
    Ok(exe)
}

async fn run(command: BenchCommand, database_url: Option<String>) -> anyhow::Result<()> {
    let Some(url) = database_url else {
        bail!("set PAIRWISE_DATABASE_URL: the benchmark creates a scratch database beside it");
    };
    match command {
        BenchCommand::Ingest {
            labelers,
            seconds,
            warmup,
            items,
            overlap,
            addr,
            flow,
        } => {
            with_scratch_database(&url, |bench_url| async move {
                let run = IngestRun {
                    labelers,
                    seconds,
                    warmup,
                    items,
                    overlap,
                    flow,
                };
                ingest_on(&bench_url, run, &addr).await
            })
            .await
        }
        BenchCommand::Soak {
            labelers,
            judgments,
            overlap,
            warmup,
            timeout_ms,
            max_attempts,
            sample_secs,
            addr,
        } => {
            with_scratch_database(&url, |bench_url| async move {
                let run = soak::SoakRun {
                    labelers,
                    judgments,
                    overlap,
                    warmup,
                    timeout: Duration::from_millis(timeout_ms),
                    max_attempts: max_attempts.max(1),
                    sample: Duration::from_secs(sample_secs.max(1)),
                };
                soak::soak_on(&bench_url, run, &addr).await
            })
            .await
        }
        BenchCommand::Export { judgments } => export(&url, &judgments).await,
        BenchCommand::Queue {
            prompts,
            k,
            max_new_tokens,
            runs,
            model,
        } => {
            let model = model.unwrap_or_else(engine::default_model_path);
            queue(&url, prompts, k, max_new_tokens, runs, &model).await
        }
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base
        .rfind('/')
        .filter(|&i| i > base.find("://").map_or(0, |s| s + 2))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..cut]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks * 1000.0 / hz)
}

/// CPU time of every process on this machine named `postgres` (server and backends), when
/// PostgreSQL runs here; `None` when none is visible (a remote database).
fn postgres_cpu_ms() -> Option<f64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == "postgres");
        if is_postgres {
            if let Ok(ms) = cpu_ms(pid) {
                *total.get_or_insert(0.0) += ms;
            }
        }
    }
    total
}

/// Creates a scratch database, runs `body` on its URL, and drops it whatever happened.
async fn with_scratch_database<F, Fut>(url: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let db_name = format!("pairwise_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin_conn)
        .await?;
    let result = body(with_database(url, &db_name)).await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&mut admin_conn)
        .await?;
    result
}

/// Runs a child process to the end; its wall time and the start of its stdout.
fn measure(command: &mut std::process::Command) -> anyhow::Result<(f64, String)> {
    let started = Instant::now();
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a measured command")?;
    let mut child = child;
    let mut stdout = child.stdout.take().context("child stdout")?;
    // Count what the child writes, keeping only the start (COPY output is large).
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut stdout, &mut buf)?;
        if n == 0 {
            break;
        }
        if head.len() < 1 << 16 {
            head.extend_from_slice(&buf[..n]);
        }
    }
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "{:?} failed: {}",
            command.get_program(),
            String::from_utf8_lossy(&head)
        );
    }
    Ok((seconds, String::from_utf8_lossy(&head).into_owned()))
}

async fn export(url: &str, sizes: &[u64]) -> anyhow::Result<()> {
    with_scratch_database(url, |bench_url| async move {
        let pool = server::config::connect(&bench_url, 2).await?;
        server::config::migrate(&pool).await?;
        seed_labelers(&pool).await?;
        let exe = pairwise_exe()?;
        let out = std::env::temp_dir().join(format!("pairwise-bench-export-{}", std::process::id()));
        println!("| judgments | export | rows | seconds | judgments/s | rows/s | peak RSS | rate vs COPY |");
        println!("|---|---|---|---|---|---|---|---|");
        for &judgments in sizes {
            let campaign = uuid::Uuid::new_v4();
            let seeding = Instant::now();
            let items = seed_judgments(&pool, campaign, judgments).await?;
            eprintln!("seeded {judgments} judgments on {items} items in {:.1} s", seeding.elapsed().as_secs_f64());
            sqlx::query("VACUUM ANALYZE").execute(&pool).await?;
            let sql = store::export::ITEM_VOTES_SQL
                .replace("$1", &format!("ARRAY['{campaign}']::uuid[]"))
                .replace("$2", "NULL")
                .replace("$3", "NULL")
                .replace("$4", "false")
                .replace("$5", "false")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let (copy_seconds, _) = measure(
                std::process::Command::new("psql")
                    .arg(&bench_url)
                    .arg("-qAt")
                    .arg("-c")
                    .arg(format!("\\copy ({sql}) to stdout")),
            )?;
            println!(
                "| {judgments} | psql \\copy (same query) | {items} | {copy_seconds:.2} | {:.0} | {:.0} | – | 1.00 |",
                judgments as f64 / copy_seconds,
                items as f64 / copy_seconds
            );
            for file_type in ["jsonl", "parquet"] {
                let dir = out.join(format!("{judgments}-{file_type}"));
                let (seconds, stdout) = measure(
                    std::process::Command::new(&exe)
                        .arg("export")
                        .arg("--campaign")
                        .arg(campaign.to_string())
                        .arg("--format")
                        .arg("trl")
                        .arg("--file-type")
                        .arg(file_type)
                        .arg("--out")
                        .arg(&dir)
                        .env("PAIRWISE_DATABASE_URL", &bench_url)
                        .env("PAIRWISE_LOG", "warn"),
                )?;
                let rows: u64 = stdout
                    .lines()
                    .find(|l| l.starts_with("train."))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
                    .context("the export printed no row count")?;
                // The export's own peak (VmHWM, which counts the libtorch the binary links).
                let rss = stdout
                    .lines()
                    .find_map(|l| l.split("peak memory ").nth(1))
                    .unwrap_or("unknown")
                    .trim()
                    .to_string();
                // Both read the same judgments; the export writes fewer rows (it drops ties,
                // both-bad and split votes), so the comparison is on judgments per second.
                println!(
                    "| {judgments} | pairwise export trl {file_type} | {rows} | {seconds:.2} | {:.0} | {:.0} | {rss} | {:.2} |",
                    judgments as f64 / seconds,
                    rows as f64 / seconds,
                    copy_seconds / seconds
                );
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        let _ = std::fs::remove_dir_all(&out);
        Ok(())
    })
    .await
}

/// Times the same generation work twice per run: the engine called directly, prompt after
/// prompt, and a job through the PostgreSQL queue (claims, leases, one commit per prompt).
async fn queue(
    url: &str,
    prompts: usize,
    k: u32,
    max_new_tokens: u32,
    runs: usize,
    model_path: &std::path::Path,
) -> anyhow::Result<()> {
    let model_path = model_path.to_path_buf();
    with_scratch_database(url, |bench_url| async move {
        let pool = server::config::connect(&bench_url, 4).await?;
        server::config::migrate(&pool).await?;
        let hash = server::passwords::hash_password("bench-password-not-secret".into())
            .await
            .context("setting up the benchmark")?;
        let admin_id = store::accounts::create_user(
            &pool,
            None,
            "bench-admin@localhost",
            domain::Role::Admin,
            Some(&hash),
        )
        .await
        .context("setting up the benchmark")?;
        let admin = domain::CurrentUser {
            id: admin_id,
            email: "bench-admin@localhost".into(),
            role: domain::Role::Admin,
        };
        let model = store::models::create(
            &pool,
            None,
            domain::NewModel {
                name: "bench".into(),
                path: model_path.to_string_lossy().into_owned(),
                notes: String::new(),
                parent: None,
            },
        )
        .await
        .context("setting up the benchmark")?;
        let job_model = domain::JobModel {
            id: model.id,
            name: model.name.clone(),
            path: model.path.clone(),
            stored_at: None,
            temperature: None,
            top_p: None,
            max_new_tokens: None,
        };
        // The worker's data folder and storage: generation writes no files there.
        let scratch = tempfile::tempdir().context("setting up the benchmark")?;
        let files = server::workers::Files {
            storage: storage::Storage::folder(scratch.path())?,
            data_dir: scratch.path().to_path_buf(),
        };
        let engine = server::workers::generation::shared_engine(&files, &job_model).await?;
        let spec = domain::GenerateSpec {
            model: Some("bench".into()),
            k,
            max_new_tokens,
            seed: Some(1),
            ..domain::GenerateSpec::default()
        };
        let texts: Vec<String> = (0..prompts)
            .map(|i| format!("Write one sentence about the number {i}."))
            .collect();
        let mut direct = Vec::new();
        let mut queued = Vec::new();
        let mut tokens_direct = 0usize;
        let mut tokens_queued = 0i64;
        let payload = domain::GenerationPayload {
            spec: spec.clone(),
            models: vec![job_model.clone()],
            seed: 1,
        };
        for run in 0..runs {
            let campaign = store::campaigns::create(
                &pool,
                &admin,
                domain::NewCampaign::named(format!("bench run {run}")),
            )
            .await
            .context("setting up the benchmark")?;
            let lines: Vec<(u64, domain::PromptLine)> = texts
                .iter()
                .zip(1..)
                .map(|(t, n)| {
                    domain::parse_prompt_line(&serde_json::Value::String(t.clone()).to_string())
                        .map(|line| (n, line))
                })
                .collect::<Result<_, _>>()?;
            store::prompts::add(&pool, campaign.id, &lines, &mut domain::ImportReport::default())
                .await
                .context("setting up the benchmark")?;
            let stored_prompts: Vec<(uuid::Uuid, String)> = sqlx::query_as(
                "SELECT id, messages->0->>'content' FROM prompts WHERE campaign_id = $1 ORDER BY id",
            )
            .bind(campaign.id)
            .fetch_all(&pool)
            .await?;

            // The same prompts and per-prompt seeds as the job will use: identical work.
            let started = Instant::now();
            for (id, text) in &stored_prompts {
                let request = engine::GenerateRequest {
                    prompt: engine::PromptInput::Chat(vec![domain::Message {
                        role: "user".into(),
                        content: text.clone(),
                    }]),
                    n: k as usize,
                    max_new_tokens: max_new_tokens as usize,
                    temperature: spec.temperature as f32,
                    top_k: None,
                    top_p: Some(spec.top_p as f32),
                    repetition_penalty: None,
                    seed: Some(payload.prompt_seed(*id)),
                    stop: Vec::new(),
                };
                let engine = engine.clone();
                let out = tokio::task::spawn_blocking(move || engine.generate(request))
                    .await??;
                tokens_direct += out.iter().map(|c| c.n_tokens).sum::<usize>();
            }
            direct.push(started.elapsed().as_secs_f64());

            let started = Instant::now();
            let (job, _) = store::jobs::start_generation(
                &pool,
                &admin,
                campaign.id,
                spec.clone(),
                store::jobs::JobScope::Ungenerated,
            )
                .await
                .context("setting up the benchmark")?;
            let stored = server::workers::generation::drain(&pool, &files, "bench").await?;
            queued.push(started.elapsed().as_secs_f64());
            if stored != prompts as u64 {
                bail!("the queue stored {stored} of {prompts} prompts");
            }
            tokens_queued += store::jobs::get(&pool, job)
                .await
                .context("setting up the benchmark")?
                .tokens;
        }
        direct.sort_by(f64::total_cmp);
        queued.sort_by(f64::total_cmp);
        let (d, q) = (percentile(&direct, 50.0), percentile(&queued, 50.0));
        println!(
            "SmolLM2 generation, {prompts} prompts × K={k}, {max_new_tokens} new tokens, median of {runs} runs\n"
        );
        println!("| path | seconds | prompts/s | tokens generated (all runs) |");
        println!("|---|---|---|---|");
        println!("| engine alone | {d:.2} | {:.2} | {tokens_direct} |", prompts as f64 / d);
        println!("| through the job queue | {q:.2} | {:.2} | {tokens_queued} |", prompts as f64 / q);
        println!("\nqueue overhead: {:+.1}% of the engine-alone time", (q / d - 1.0) * 100.0);
        Ok(())
    })
    .await
}

async fn seed_labelers(pool: &store::PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO users (id, email, role)
         SELECT gen_random_uuid(), 'bench-labeler' || g || '@localhost', 'labeler'
         FROM generate_series(0, 9) g",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Writes a labeled campaign straight into the tables: judgments / 3 items of realistic
/// text sizes, each judged by three of ten labelers with a mix of choices.
async fn seed_judgments(
    pool: &store::PgPool,
    campaign: uuid::Uuid,
    judgments: u64,
) -> anyhow::Result<u64> {
    let items = (judgments / 3).max(1) as i64;
    let c = campaign.to_string();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO campaigns (id, name, overlap, status) VALUES ($1, $2, 3, 'active')")
        .bind(campaign)
        .bind(format!("bench {judgments}"))
        .execute(&mut *tx)
        .await?;
    let statements = [
        "INSERT INTO prompts (id, campaign_id, messages)
         SELECT md5($1 || 'p' || g)::uuid, $1::uuid,
                jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                    'Question ' || g || ': ' || repeat('why is the sky blue at noon? ', 4)))
         FROM generate_series(1, $2) g",
        "INSERT INTO candidates (id, prompt_id, position, text)
         SELECT md5($1 || side || g)::uuid, md5($1 || 'p' || g)::uuid, pos,
                'Answer ' || side || ' to ' || g || ': ' || repeat('Rayleigh scattering favours short wavelengths. ', 8)
         FROM generate_series(1, $2) g, (VALUES ('a', 0), ('b', 1)) AS s(side, pos)",
        "INSERT INTO items (id, campaign_id, prompt_id, candidate_ids, remaining)
         SELECT md5($1 || 'i' || g)::uuid, $1::uuid, md5($1 || 'p' || g)::uuid,
                ARRAY[md5($1 || 'a' || g)::uuid, md5($1 || 'b' || g)::uuid], 0
         FROM generate_series(1, $2) g",
        "INSERT INTO assignments (id, item_id, campaign_id, user_id, shown_order, status, expires_at, completed_at)
         SELECT md5($1 || 's' || g || '-' || k)::uuid, md5($1 || 'i' || g)::uuid, $1::uuid,
                l.ids[1 + (g + k) % 10],
                CASE WHEN (g + k) % 2 = 0
                     THEN ARRAY[md5($1 || 'a' || g)::uuid, md5($1 || 'b' || g)::uuid]
                     ELSE ARRAY[md5($1 || 'b' || g)::uuid, md5($1 || 'a' || g)::uuid] END,
                'done', now(), now()
         FROM generate_series(1, $2) g, generate_series(0, 2) k,
              (SELECT array_agg(id ORDER BY email) AS ids FROM users WHERE email LIKE 'bench-labeler%') l",
        "INSERT INTO judgments (id, assignment_id, item_id, campaign_id, user_id, choice,
                                winner_candidate_id, shown_order, client_request_id)
         SELECT md5($1 || 'j' || a.id)::uuid, a.id, a.item_id, a.campaign_id, a.user_id, c.choice,
                CASE c.choice WHEN 'a' THEN a.shown_order[1] WHEN 'b' THEN a.shown_order[2] END,
                a.shown_order, 'bench-' || a.id
         FROM assignments a,
              LATERAL (SELECT CASE WHEN h < 5 THEN 'a' WHEN h < 8 THEN 'b' WHEN h = 8 THEN 'tie'
                                   ELSE 'both_bad' END AS choice
                       FROM (SELECT abs(hashtext(a.id::text)) % 10 AS h) x) c
         WHERE a.campaign_id = $1::uuid",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(&c)
            .bind(items)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(items as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A table row: the median and 99th percentile of `sorted` latencies in ms.
fn latency_row(what: &str, sorted: &[f64]) {
    println!(
        "| {what} p50 / p99 | {:.2} / {:.2} ms |",
        percentile(sorted, 50.0),
        percentile(sorted, 99.0)
    );
}

struct IngestRun {
    labelers: usize,
    seconds: u64,
    warmup: u64,
    items: usize,
    overlap: i32,
    flow: Flow,
}

/// What the simulated labelers saw in one phase.
#[derive(Default)]
struct Phase {
    acked: u64,
    errors: u64,
    seconds: f64,
    next_ms: Vec<f64>,
    submit_ms: Vec<f64>,
}

/// Every labeler fetches `next` and answers it, in a loop, until `seconds` have passed.
async fn label_for(
    client: &reqwest::Client,
    base: &str,
    campaign_id: &str,
    tokens: &[String],
    seconds: u64,
    phase: &str,
    flow: Flow,
) -> anyhow::Result<Phase> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (n, token) in tokens.iter().cloned().enumerate() {
        let (client, base, campaign_id) =
            (client.clone(), base.to_string(), campaign_id.to_string());
        let phase = phase.to_string();
        tasks.push(tokio::spawn(async move {
            let mut mine = Phase::default();
            let mut k = 0u64;
            // The item the last judgment's answer brought (advance flow).
            let mut handed: Option<serde_json::Value> = None;
            while Instant::now() < deadline {
                let item = if let Some(item) = handed.take() {
                    item
                } else {
                    let t = Instant::now();
                    let response = client
                        .get(format!("{base}/api/v1/campaigns/{campaign_id}/next"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    mine.next_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    match response {
                        Ok(r) if r.status() == reqwest::StatusCode::OK => r.json().await.unwrap_or_default(),
                        Ok(r) if r.status() == reqwest::StatusCode::NO_CONTENT => break,
                        _ => {
                            mine.errors += 1;
                            continue;
                        }
                    }
                };
                let Some(assignment) = item["assignment_id"].as_str() else {
                    mine.errors += 1;
                    continue;
                };
                k += 1;
                let choice = ["a", "b", "tie", "a", "b"][(k as usize + n) % 5];
                let t = Instant::now();
                let query = if flow == Flow::Advance { "?next=true" } else { "" };
                let response = client
                    .post(format!("{base}/api/v1/assignments/{assignment}/judgment{query}"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "choice": choice, "client_request_id": format!("bench-{phase}-{n}-{k}"), "time_on_task_ms": 1500
                    }))
                    .send()
                    .await;
                mine.submit_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                match response {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        mine.acked += 1;
                        if flow == Flow::Advance {
                            let answer: serde_json::Value = r.json().await.unwrap_or_default();
                            match &answer["next"] {
                                serde_json::Value::Null if answer.get("next").is_some() => break,
                                next if next.is_object() => handed = Some(next.clone()),
                                _ => {}
                            }
                        }
                    }
                    _ => mine.errors += 1,
                }
            }
            mine
        }));
    }
    let mut all = Phase::default();
    for task in tasks {
        let mine = task.await?;
        all.acked += mine.acked;
        all.errors += mine.errors;
        all.next_ms.extend(mine.next_ms);
        all.submit_ms.extend(mine.submit_ms);
    }
    all.seconds = start.elapsed().as_secs_f64();
    all.next_ms.sort_by(f64::total_cmp);
    all.submit_ms.sort_by(f64::total_cmp);
    Ok(all)
}

/// A `pairwise serve` child on a migrated scratch database, with an admin and labelers who
/// hold API tokens; what `ingest` and `soak` share.
struct Served {
    pool: store::PgPool,
    child: tokio::process::Child,
    pid: u32,
    base: String,
    client: reqwest::Client,
    admin_token: String,
    /// One API token per labeler, `labeler{i}@localhost`.
    tokens: Vec<String>,
}

impl Served {
    /// Migrates the database at `url`, creates the accounts and starts the server on `addr`,
    /// returning once it answers `/healthz`.
    async fn start(url: &str, labelers: usize, addr: &str) -> anyhow::Result<Self> {
        let pool = server::config::connect(url, 4).await?;
        server::config::migrate(&pool).await?;
        let hash = server::passwords::hash_password("bench-password-not-secret".into())
            .await
            .context("setting up the benchmark")?;
        let admin_email = "bench-admin@localhost";
        store::accounts::create_user(&pool, None, admin_email, domain::Role::Admin, Some(&hash))
            .await
            .context("setting up the benchmark")?;
        let admin_token = store::accounts::create_api_token(&pool, admin_email, "bench")
            .await
            .context("setting up the benchmark")?;
        let mut tokens = Vec::new();
        for i in 0..labelers {
            let email = format!("labeler{i}@localhost");
            store::accounts::create_user(&pool, None, &email, domain::Role::Labeler, Some(&hash))
                .await
                .context("setting up the benchmark")?;
            tokens.push(
                store::accounts::create_api_token(&pool, &email, "bench")
                    .await
                    .context("setting up the benchmark")?,
            );
        }

        let exe = pairwise_exe()?;
        let child = tokio::process::Command::new(exe)
            .arg("serve")
            .env("PAIRWISE_DATABASE_URL", url)
            .env("PAIRWISE_ADDR", addr)
            .env("PAIRWISE_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        let pid = child.id().context("server pid")?;
        let base = format!("http://{addr}");
        // Every labeler keeps its connection alive between items, as a browser tab does.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(labelers * 2)
            .build()?;
        let started = Instant::now();
        loop {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the server did not come up on {addr}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            pool,
            child,
            pid,
            base,
            client,
            admin_token,
            tokens,
        })
    }

    /// An active campaign of `items` two-response items, `overlap` judgments each, with every
    /// labeler a member: its id and the seconds its import took.
    async fn campaign(
        &self,
        name: &str,
        items: usize,
        overlap: i32,
    ) -> anyhow::Result<(String, f64)> {
        let (client, base, admin_token) = (&self.client, &self.base, &self.admin_token);
        let campaign: serde_json::Value = client
            .post(format!("{base}/api/v1/campaigns"))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({ "name": name, "overlap": overlap }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let campaign_id = campaign["id"].as_str().context("campaign id")?.to_string();
        let mut body = String::with_capacity(items * 120);
        for i in 0..items {
            body.push_str(&format!(
                "{{\"prompt\":\"Question {i}: what is {i} + {i}?\",\"responses\":[\"It is {}.\",\"Probably {}.\"]}}\n",
                2 * i,
                2 * i + 1
            ));
        }
        let import_start = Instant::now();
        client
            .post(format!("{base}/api/v1/campaigns/{campaign_id}/items"))
            .bearer_auth(admin_token)
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        let import_secs = import_start.elapsed().as_secs_f64();
        client
            .patch(format!("{base}/api/v1/campaigns/{campaign_id}"))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({ "status": "active" }))
            .send()
            .await?
            .error_for_status()?;
        for i in 0..self.tokens.len() {
            client
                .post(format!("{base}/api/v1/campaigns/{campaign_id}/members"))
                .bearer_auth(admin_token)
                .json(
                    &serde_json::json!({ "email": format!("labeler{i}@localhost"), "role": "labeler" }),
                )
                .send()
                .await?
                .error_for_status()?;
        }
        Ok((campaign_id, import_secs))
    }

    /// Stops the server and waits for it to exit.
    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn ingest_on(url: &str, run: IngestRun, addr: &str) -> anyhow::Result<()> {
    let IngestRun {
        labelers,
        seconds,
        warmup,
        items,
        overlap,
        flow,
    } = run;
    let served = Served::start(url, labelers, addr).await?;
    let (campaign_id, import_secs) = served.campaign("bench", items, overlap).await?;
    let Served {
        pool,
        pid,
        base,
        client,
        tokens,
        ..
    } = &served;
    let pid = *pid;

    // From empty `assignments` and `judgments` tables PostgreSQL plans for tiny tables (and
    // keeps those plans) until autovacuum first analyzes them, which takes up to a minute. The
    // warm-up runs in that state; ANALYZE then stands in for autovacuum's first pass, which
    // any campaign older than a minute has had.
    let cold = label_for(client, base, &campaign_id, tokens, warmup, "warmup", flow).await?;
    sqlx::query("ANALYZE").execute(pool).await?;

    let cpu_before = cpu_ms(pid)?;
    let client_before = cpu_ms(std::process::id())?;
    let postgres_before = postgres_cpu_ms();
    let warm = label_for(client, base, &campaign_id, tokens, seconds, "run", flow).await?;
    let cpu = cpu_ms(pid)? - cpu_before;
    let client_cpu = cpu_ms(std::process::id())? - client_before;
    // Backends that exited during the run are missed, so this is a lower bound.
    let postgres_cpu = postgres_cpu_ms()
        .zip(postgres_before)
        .map(|(after, before)| after - before);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM judgments")
        .fetch_one(pool)
        .await?;
    served.stop().await;

    let (acked, errors) = (warm.acked, warm.errors);
    let mut both: Vec<f64> = warm
        .next_ms
        .iter()
        .chain(&warm.submit_ms)
        .copied()
        .collect();
    both.sort_by(f64::total_cmp);
    println!("| metric | value |");
    println!("|---|---|");
    println!("| labelers (concurrent clients) | {labelers} |");
    println!(
        "| flow | {} |",
        match flow {
            Flow::Separate => "separate: GET next, then POST judgment",
            Flow::Advance => "advance: POST judgment?next=true (one request per item)",
        }
    );
    println!(
        "| import of {items} items | {import_secs:.2} s ({:.0} items/s) |",
        items as f64 / import_secs
    );
    println!(
        "| warm-up from empty tables ({:.1} s, before ANALYZE) | {:.0} judgments/s, {} errors |",
        cold.seconds,
        cold.acked as f64 / cold.seconds,
        cold.errors
    );
    println!("| duration | {:.1} s |", warm.seconds);
    println!("| judgments acknowledged | {acked} |");
    println!("| errors | {errors} |");
    println!("| judgments/s | {:.0} |", acked as f64 / warm.seconds);
    if !warm.next_ms.is_empty() {
        latency_row("next", &warm.next_ms);
    }
    latency_row("judgment", &warm.submit_ms);
    latency_row("any request", &both);
    println!(
        "| server CPU per judgment | {:.2} ms |",
        cpu / acked.max(1) as f64
    );
    match postgres_cpu {
        Some(ms) => println!(
            "| PostgreSQL CPU per judgment | {:.2} ms |",
            ms / acked.max(1) as f64
        ),
        None => println!("| PostgreSQL CPU per judgment | not measured (remote database) |"),
    }
    println!(
        "| load generator CPU per judgment | {:.2} ms |",
        client_cpu / acked.max(1) as f64
    );
    println!("| judgments in database | {stored} |");
    if stored as u64 != cold.acked + acked {
        bail!(
            "the database holds {stored} judgments but {} were acknowledged",
            cold.acked + acked
        );
    }
    println!("database check: exactly the acknowledged judgments are stored");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/db", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 51.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
    }
}
