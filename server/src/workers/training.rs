//! The training worker: claims reward-model and DPO runs queued on exports, trains each in a
//! child process (`pairwise train-run`), reports every step's figures to the database (the
//! page's live chart), stops the child when the run is cancelled, and registers a finished
//! DPO checkpoint as a model.
//!
//! The child process is there so that nothing training does can take the worker down with
//! it, let alone the web server it may run in: when libtorch runs out of memory or the
//! kernel kills the child, the run fails with a message and the worker goes on.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use domain::{TrainKind, TrainPoint, TrainSettings};
use engine::train::{self, dpo, reward, Control, Event, TrainConfig};
use serde::{Deserialize, Serialize};
use store::training::{Report, TrainClaim};
use store::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::Files;

/// Figures reach the database at most this often (and a report also renews the lease).
const REPORT_EVERY: Duration = Duration::from_millis(700);

fn dpo_settings(s: &TrainSettings) -> dpo::DpoConfig {
    let defaults = dpo::DpoConfig::default();
    dpo::DpoConfig {
        beta: s.beta.unwrap_or(defaults.beta),
        loss: s.loss.unwrap_or(defaults.loss),
        label_smoothing: s.label_smoothing.unwrap_or(defaults.label_smoothing),
    }
}

/// What the training process is given, as JSON on its standard input.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainJob {
    pub kind: TrainKind,
    pub settings: TrainSettings,
    pub base: PathBuf,
    pub base_name: String,
    pub data: PathBuf,
    pub out: PathBuf,
}

/// What the training process tells its worker, one JSON line each on standard output.
#[derive(Debug, Serialize, Deserialize)]
enum FromTrainer {
    Report(Report),
    Finished(BTreeMap<String, f64>),
    Failed(String),
}

/// The program that trains: `PAIRWISE_TRAINER`, else this very binary (tests that run
/// workers inside a test binary point it at the built `pairwise`).
fn trainer_program() -> anyhow::Result<PathBuf> {
    match std::env::var_os("PAIRWISE_TRAINER") {
        Some(program) => Ok(PathBuf::from(program)),
        None => std::env::current_exe().context("finding this program"),
    }
}

/// Why the training process ended without saying how the run went.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(9) => "the training process was killed (SIGKILL), most often because the host \
                   ran out of memory; try a smaller batch size or max length"
            .into(),
        Some(6) => "the training process aborted (SIGABRT), most often because libtorch \
                   could not allocate memory; try a smaller batch size or max length"
            .into(),
        Some(signal) => format!("the training process was stopped by signal {signal}"),
        None => format!("the training process exited with {status} without a result"),
    }
}

/// `pairwise train-run`: trains the job read from standard input, writing reports and the
/// outcome to standard output. Runs in the child process the worker starts.
pub fn trainer_process() -> anyhow::Result<()> {
    let job: TrainJob =
        serde_json::from_reader(std::io::stdin().lock()).context("reading the training job")?;
    let say = |message: &FromTrainer| {
        if let Ok(line) = serde_json::to_string(message) {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // The worker is gone: nobody would record this run's result.
                std::process::exit(1);
            }
        }
    };
    let outcome = match train_blocking(&job, &|r| say(&FromTrainer::Report(r))) {
        Ok(metrics) => FromTrainer::Finished(metrics.summary),
        Err(e) => FromTrainer::Failed(e),
    };
    say(&outcome);
    Ok(())
}

fn point(r: &train::StepRecord) -> TrainPoint {
    TrainPoint {
        step: r.step as u32,
        epoch: r.epoch,
        values: r.values.clone(),
    }
}

/// Runs in the training process: load, read, train, save.
fn train_blocking(job: &TrainJob, send: &dyn Fn(Report)) -> Result<train::Metrics, String> {
    let fail = |e: engine::EngineError| format!("{e}");
    send(Report {
        phase: Some("loading the data and the model".into()),
        ..Report::default()
    });
    let files = train::data::data_files(std::slice::from_ref(&job.data)).map_err(fail)?;
    let data = train::data::read_preferences(&files).map_err(fail)?;
    let mut engine = train::load_for_training(&job.base, engine::DeviceChoice::Auto, None)
        .map_err(|e| format!("cannot load model {:?}: {e}", job.base_name))?;
    let cfg = TrainConfig::from_settings(job.kind, &job.settings);
    let mut on_event = |event: Event| -> Control {
        let report = match event {
            Event::Phase(what) => Report {
                phase: Some(what.into()),
                ..Report::default()
            },
            Event::Started {
                total_steps,
                train_pairs,
                eval_pairs,
            } => Report {
                phase: Some("training".into()),
                total_steps: Some(total_steps as u32),
                train_pairs: Some(train_pairs as u32),
                eval_pairs: Some(eval_pairs as u32),
                ..Report::default()
            },
            Event::Step(r) => Report {
                step: Some(r.step as u32),
                points: vec![point(r)],
                ..Report::default()
            },
            Event::Eval(r) => Report {
                eval: vec![point(r)],
                ..Report::default()
            },
        };
        send(report);
        // The worker stops a cancelled run by ending this process.
        Control::Continue(())
    };
    let (base_name, out) = (job.base_name.as_str(), job.out.as_path());
    match job.kind {
        TrainKind::Dpo => dpo::train(
            &mut engine,
            None,
            &data,
            &dpo_settings(&job.settings),
            &cfg,
            out,
            base_name,
            &mut on_event,
        ),
        TrainKind::Reward => reward::train(
            &mut engine,
            &data,
            &reward::RewardConfig {
                center_rewards_coefficient: job.settings.center_rewards,
            },
            &cfg,
            out,
            base_name,
            &mut on_event,
        ),
    }
    .map_err(fail)
}

/// Folds queued reports into one database update.
fn merge(into: &mut Report, r: Report) {
    into.phase = r.phase.or(into.phase.take());
    into.total_steps = r.total_steps.or(into.total_steps);
    into.train_pairs = r.train_pairs.or(into.train_pairs);
    into.eval_pairs = r.eval_pairs.or(into.eval_pairs);
    into.step = r.step.or(into.step);
    into.points.extend(r.points);
    into.eval.extend(r.eval);
}

/// Trains a claimed run, renewing its lease all along (the training loop's reports renew it
/// too, but fetching the export and storing the checkpoint happen outside that loop), and
/// removes the run's scratch copy of the export however it ends.
async fn train_claim(
    pool: &PgPool,
    files: &Files,
    name: &str,
    claim: TrainClaim,
) -> anyhow::Result<()> {
    let renewal = {
        let (pool, name, id) = (pool.clone(), name.to_string(), claim.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(super::lease() / 4).await;
                let renewed =
                    store::training::report(&pool, id, &name, super::lease(), &Report::default())
                        .await;
                if let Err(e) = renewed {
                    tracing::warn!("training run {id}: renewing the lease: {e}");
                }
            }
        })
    };
    let data = files.data_dir.join("staging").join(format!(
        "{}-{}",
        claim.id,
        name.replace([':', '/'], "_")
    ));
    let result = train_leased(pool, files, name, claim, &data).await;
    renewal.abort();
    if data.exists() {
        if let Err(e) = tokio::fs::remove_dir_all(&data).await {
            tracing::warn!("cannot remove {}: {e}", data.display());
        }
    }
    result
}

async fn train_leased(
    pool: &PgPool,
    files: &Files,
    name: &str,
    claim: TrainClaim,
    data: &Path,
) -> anyhow::Result<()> {
    // The export's files come from the storage into a scratch folder of this host, and so
    // does the base model when it was trained on another host.
    let inputs = match files.storage.download_dir(&claim.export_key, data).await {
        Ok(_) => super::checkpoints::local_path(
            files,
            &claim.base_model_path,
            claim.base_model_stored_at.as_deref(),
        )
        .await
        .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("cannot read the export's files: {e}")),
    };
    let base = match inputs {
        Ok(base) => base,
        Err(message) => {
            store::training::fail(pool, claim.id, name, &message)
                .await
                .context("recording the failed run")?;
            return Ok(());
        }
    };
    let key = format!("models/{}", claim.id);
    let out = std::path::absolute(files.data_dir.join("models").join(claim.id.to_string()))?;
    let job = TrainJob {
        kind: claim.kind,
        settings: claim.settings.clone(),
        base,
        base_name: claim.base_model_name.clone(),
        data: data.to_path_buf(),
        out: out.clone(),
    };
    let mut pending = Report::default();
    let mut cancelled = false;
    let outcome = match start_trainer() {
        Err(e) => Err(format!("{e:#}")),
        Ok(mut child) => {
            let outcome = follow_trainer(
                pool,
                name,
                claim.id,
                &job,
                &mut child,
                &mut pending,
                &mut cancelled,
            )
            .await;
            // However it ended, the child is gone before the run is recorded.
            let _ = child.start_kill();
            let _ = child.wait().await;
            outcome
        }
    };
    store::training::report(pool, claim.id, name, super::lease(), &pending)
        .await
        .context("reporting progress")?;
    // A copy of the checkpoint goes to the storage, where every host can fetch it.
    let outcome = match outcome {
        Ok(summary) => files
            .storage
            .upload_dir(&out, &key)
            .await
            .map(|()| summary)
            .map_err(|e| format!("cannot store the checkpoint: {e}")),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(summary) => {
            let model =
                store::training::finish(pool, &claim, name, &out.to_string_lossy(), &key, &summary)
                    .await
                    .context("recording the finished run")?;
            tracing::info!(
                "training run {} done in {}{}",
                claim.id,
                out.display(),
                model.map_or(String::new(), |m| format!(", registered as model {m}"))
            );
        }
        Err(e) if cancelled => {
            tracing::info!("training run {} stopped: {e}", claim.id);
        }
        Err(e) => {
            tracing::warn!("training run {} failed: {e}", claim.id);
            store::training::fail(pool, claim.id, name, &e)
                .await
                .context("recording the failed run")?;
        }
    }
    Ok(())
}

/// Starts the training process (its job comes from [`follow_trainer`]), within the memory
/// limit if one is set.
fn start_trainer() -> anyhow::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(trainer_program()?);
    command
        .arg("train-run")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let limit = train::memory::configured_limit()?;
    // SAFETY: between fork and exec only async-signal-safe calls run: prctl and setrlimit
    // are.
    unsafe {
        command.pre_exec(move || {
            // A worker killed outright takes its training process with it (the signal
            // follows the spawning thread: a runtime thread, which lives as long as the
            // worker does).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(bytes) = limit {
                let limit = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .context("cannot start the training process")?;
    Ok(child)
}

/// Feeds the job to the training process and relays its reports to the database (each
/// renews the lease) until it ends; kills it when the run was cancelled. Returns the
/// figures of a finished run, or why it failed.
async fn follow_trainer(
    pool: &PgPool,
    name: &str,
    run: uuid::Uuid,
    job: &TrainJob,
    child: &mut tokio::process::Child,
    pending: &mut Report,
    cancelled: &mut bool,
) -> Result<BTreeMap<String, f64>, String> {
    let input = serde_json::to_vec(job).map_err(|e| format!("cannot write the job: {e}"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the training process has no pipes".into());
    };
    if let Err(e) = stdin.write_all(&input).await {
        return Err(format!("cannot hand the job to the training process: {e}"));
    }
    drop(stdin);
    let mut lines = BufReader::new(stdout).lines();
    let mut ticker = tokio::time::interval(REPORT_EVERY);
    let mut outcome = None;
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => match serde_json::from_str::<FromTrainer>(&line) {
                    Ok(FromTrainer::Report(r)) => merge(pending, r),
                    Ok(FromTrainer::Finished(summary)) => outcome = Some(Ok(summary)),
                    Ok(FromTrainer::Failed(e)) => outcome = Some(Err(e)),
                    // Anything else on its standard output is the libraries' chatter.
                    Err(_) => tracing::debug!("training run {run}: {line}"),
                },
                Ok(None) | Err(_) => break,
            },
            _ = ticker.tick() => {
                let report = std::mem::take(pending);
                match store::training::report(pool, run, name, super::lease(), &report).await {
                    Ok(true) => {}
                    Ok(false) => {
                        *cancelled = true;
                        let _ = child.start_kill();
                    }
                    Err(e) => {
                        tracing::warn!("training run {run}: report failed: {e}");
                        *pending = report;
                    }
                }
            }
        }
    }
    match outcome {
        Some(outcome) => outcome,
        None => match child.wait().await {
            Ok(status) => Err(describe_exit(status)),
            Err(e) => Err(format!("the training process was lost: {e}")),
        },
    }
}

/// One claim: true when there was a run to train.
async fn claim_and_train(pool: &PgPool, files: &Files, name: &str) -> anyhow::Result<bool> {
    let Some(claim) = store::training::claim(pool, name, super::lease())
        .await
        .context("claiming a training run")?
    else {
        return Ok(false);
    };
    train_claim(pool, files, name, claim).await?;
    Ok(true)
}

/// Trains every claimable run, then returns how many (tests and batch use).
pub async fn drain(pool: &PgPool, files: &Files, name: &str) -> anyhow::Result<u64> {
    let mut n = 0;
    while claim_and_train(pool, files, name).await? {
        n += 1;
    }
    Ok(n)
}

/// Runs until `stop` turns true.
pub async fn run(
    pool: PgPool,
    files: Files,
    name: String,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    super::poll::poll(&name, stop, || claim_and_train(&pool, &files, &name)).await
}
