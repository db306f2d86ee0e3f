//! The training worker: claims reward-model and DPO runs queued on exports, trains on a
//! dedicated thread, reports every step's figures to the database (the page's live chart),
//! stops when the run is cancelled, and registers a finished DPO checkpoint as a model.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::{TrainKind, TrainPoint, TrainSettings};
use engine::train::{self, dpo, reward, Control, Event, TrainConfig};
use storage::Storage;
use store::training::{Report, TrainClaim};
use store::PgPool;

const LEASE: Duration = Duration::from_secs(120);
/// Figures reach the database at most this often (and a report also renews the lease).
const REPORT_EVERY: Duration = Duration::from_millis(700);

/// The engine's settings for a run.
pub fn config(kind: TrainKind, s: &TrainSettings) -> TrainConfig {
    let defaults = TrainConfig::default();
    TrainConfig {
        epochs: s.epochs.map_or(defaults.epochs, |v| v as usize),
        batch_size: s.batch_size.map_or(defaults.batch_size, |v| v as usize),
        lr: s.lr.unwrap_or(match kind {
            TrainKind::Dpo => dpo::DEFAULT_LR,
            TrainKind::Reward => reward::DEFAULT_LR,
        }),
        max_length: s.max_length.map_or(defaults.max_length, |v| v as usize),
        max_steps: s.max_steps.map(|v| v as usize),
        eval_split: s.eval_split.unwrap_or(0.1),
        seed: s.seed.unwrap_or(defaults.seed),
        bf16: s.bf16.unwrap_or(false),
        ..defaults
    }
}

fn dpo_settings(s: &TrainSettings) -> dpo::DpoConfig {
    let defaults = dpo::DpoConfig::default();
    dpo::DpoConfig {
        beta: s.beta.unwrap_or(defaults.beta),
        loss: s.loss.unwrap_or(defaults.loss),
        label_smoothing: s.label_smoothing.unwrap_or(defaults.label_smoothing),
    }
}

/// What the training thread tells the async side.
enum Message {
    Report(Report),
    Finished(Result<Box<train::Metrics>, String>),
}

fn point(r: &train::StepRecord) -> TrainPoint {
    TrainPoint {
        step: r.step as u32,
        epoch: r.epoch,
        values: r.values.clone(),
    }
}

/// Runs on its own thread: load, read, train, save.
fn train_blocking(
    claim: &TrainClaim,
    data_dir: &Path,
    out: &Path,
    cancel: &AtomicBool,
    send: &dyn Fn(Report),
) -> Result<train::Metrics, String> {
    let fail = |e: engine::EngineError| format!("{e}");
    send(Report {
        phase: Some("loading the data and the model".into()),
        ..Report::default()
    });
    let files = train::data::data_files(&[data_dir.to_path_buf()]).map_err(fail)?;
    let data = train::data::read_preferences(&files).map_err(fail)?;
    let base = PathBuf::from(&claim.base_model_path);
    let mut engine = train::load_for_training(&base, engine::DeviceChoice::Auto, None)
        .map_err(|e| format!("cannot load model {:?}: {e}", claim.base_model_name))?;
    let cfg = config(claim.kind, &claim.settings);
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
        if cancel.load(Ordering::Relaxed) {
            Control::Break(())
        } else {
            Control::Continue(())
        }
    };
    let base_name = claim.base_model_name.as_str();
    match claim.kind {
        TrainKind::Dpo => dpo::train(
            &mut engine,
            None,
            &data,
            &dpo_settings(&claim.settings),
            &cfg,
            out,
            base_name,
            &mut on_event,
        ),
        TrainKind::Reward => reward::train(
            &mut engine,
            &data,
            &reward::RewardConfig {
                center_rewards_coefficient: claim.settings.center_rewards,
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
    storage: &Storage,
    name: &str,
    claim: TrainClaim,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let renewal = {
        let (pool, name, id) = (pool.clone(), name.to_string(), claim.id);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 4).await;
                let renewed =
                    store::training::report(&pool, id, &name, LEASE, &Report::default()).await;
                if let Err(e) = renewed {
                    tracing::warn!("training run {id}: renewing the lease: {e}");
                }
            }
        })
    };
    let data =
        data_dir
            .join("staging")
            .join(format!("{}-{}", claim.id, name.replace([':', '/'], "_")));
    let result = train_leased(pool, storage, name, claim, &data, data_dir).await;
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
    storage: &Storage,
    name: &str,
    claim: TrainClaim,
    data: &Path,
    data_dir: &Path,
) -> anyhow::Result<()> {
    // The export's files come from the storage into a scratch folder of this host.
    if let Err(e) = storage.download_dir(&claim.export_key, data).await {
        let message = format!("cannot read the export's files: {e}");
        store::training::fail(pool, claim.id, name, &message)
            .await
            .context("recording the failed run")?;
        return Ok(());
    }
    let out = std::path::absolute(data_dir.join("models").join(claim.id.to_string()))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    {
        let (claim, data, out, cancel) = (
            claim.clone(),
            data.to_path_buf(),
            out.clone(),
            cancel.clone(),
        );
        std::thread::Builder::new()
            .name("pairwise-train".into())
            .spawn(move || {
                let report_tx = tx.clone();
                let send = move |r: Report| {
                    let _ = report_tx.send(Message::Report(r));
                };
                let result = train_blocking(&claim, &data, &out, &cancel, &send).map(Box::new);
                let _ = tx.send(Message::Finished(result));
            })?;
    }
    let mut pending = Report::default();
    let mut ticker = tokio::time::interval(REPORT_EVERY);
    let outcome = loop {
        tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Report(r)) => merge(&mut pending, r),
                Some(Message::Finished(result)) => break result,
                None => break Err("the training thread stopped".into()),
            },
            _ = ticker.tick() => {
                let report = std::mem::take(&mut pending);
                match store::training::report(pool, claim.id, name, LEASE, &report).await {
                    Ok(true) => {}
                    Ok(false) => cancel.store(true, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!("training run {}: report failed: {e}", claim.id);
                        pending = report;
                    }
                }
            }
        }
    };
    store::training::report(pool, claim.id, name, LEASE, &pending)
        .await
        .context("reporting progress")?;
    // A copy of the checkpoint goes to the storage, where every host can fetch it.
    let outcome = match outcome {
        Ok(metrics) => storage
            .upload_dir(&out, &format!("models/{}", claim.id))
            .await
            .map(|()| metrics)
            .map_err(|e| format!("cannot store the checkpoint: {e}")),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(metrics) => {
            let model = store::training::finish(
                pool,
                &claim,
                name,
                &out.to_string_lossy(),
                &metrics.summary,
            )
            .await
            .context("recording the finished run")?;
            tracing::info!(
                "training run {} done in {}{}",
                claim.id,
                out.display(),
                model.map_or(String::new(), |m| format!(", registered as model {m}"))
            );
        }
        Err(e) if cancel.load(Ordering::Relaxed) => {
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

/// One claim: true when there was a run to train.
async fn claim_and_train(
    pool: &PgPool,
    storage: &Storage,
    name: &str,
    data_dir: &Path,
) -> anyhow::Result<bool> {
    let Some(claim) = store::training::claim(pool, name, LEASE)
        .await
        .context("claiming a training run")?
    else {
        return Ok(false);
    };
    train_claim(pool, storage, name, claim, data_dir).await?;
    Ok(true)
}

/// Trains every claimable run, then returns how many (tests and batch use).
pub async fn drain(
    pool: &PgPool,
    storage: &Storage,
    name: &str,
    data_dir: &Path,
) -> anyhow::Result<u64> {
    let mut n = 0;
    while claim_and_train(pool, storage, name, data_dir).await? {
        n += 1;
    }
    Ok(n)
}

/// Runs until `stop` turns true.
pub async fn run(
    pool: PgPool,
    storage: Storage,
    name: String,
    data_dir: PathBuf,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    super::poll::poll(&name, stop, || {
        claim_and_train(&pool, &storage, &name, &data_dir)
    })
    .await
}
