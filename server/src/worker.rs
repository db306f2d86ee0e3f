//! Generation workers: claim prompts from the job queue, run the engine off the async runtime,
//! and commit each prompt's candidates and items as soon as they are made. They run inside
//! `pairwise serve` (`PAIRWISE_WORKERS`, default 1) and as `pairwise worker` processes, e.g. on
//! GPU hosts, all against the same database.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use domain::{GenerationPayload, JobModel, Message};
use engine::{ChatMessage, EngineHandle, GenerateRequest, LoadOptions, PromptInput};
use store::jobs::{Claim, Completion, NewCandidate};
use store::PgPool;
use uuid::Uuid;

/// How long a claim stays valid without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(120);
const HEARTBEAT: Duration = Duration::from_secs(20);
const IDLE_POLL: Duration = Duration::from_millis(1000);

/// Engines loaded in this process, by model path: loading takes seconds and memory, so every
/// worker of the process shares one engine per model (each engine runs on its own thread).
fn engines() -> &'static Mutex<HashMap<PathBuf, EngineHandle>> {
    static ENGINES: OnceLock<Mutex<HashMap<PathBuf, EngineHandle>>> = OnceLock::new();
    ENGINES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The process's engine for a model, loading it on first use.
pub async fn shared_engine(model: &JobModel) -> anyhow::Result<EngineHandle> {
    let path = PathBuf::from(&model.path);
    if let Some(handle) = engines()
        .lock()
        .map_err(|_| anyhow!("engine cache poisoned"))?
        .get(&path)
    {
        return Ok(handle.clone());
    }
    let load_path = path.clone();
    let handle =
        tokio::task::spawn_blocking(move || EngineHandle::spawn(load_path, LoadOptions::default()))
            .await
            .map_err(|e| anyhow!("the loader thread failed: {e}"))?
            .map_err(|e| {
                anyhow!(
                    "cannot load model {:?} from {}: {e}",
                    model.name,
                    model.path
                )
            })?;
    engines()
        .lock()
        .map_err(|_| anyhow!("engine cache poisoned"))?
        .insert(path, handle.clone());
    Ok(handle)
}

/// A unique name for a worker: host, process and a counter.
pub fn worker_name(index: usize) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{index}", std::process::id())
}

/// Runs until `stop` turns true: claims, generates, commits; sleeps when there is nothing.
pub async fn run(pool: PgPool, name: String, stop: tokio::sync::watch::Receiver<bool>) {
    poll(&name, stop, || work_once(&pool, &name)).await
}

/// A worker's loop: `work` once per turn (true: it found work, go again at once), sleeping
/// [`IDLE_POLL`] when there was nothing or it failed, until `stop` turns true.
pub async fn poll<F, Fut>(name: &str, stop: tokio::sync::watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        match work().await {
            Ok(true) => {}
            Ok(false) => {
                let mut stop = stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!("worker {name}: {e:#}");
                tokio::time::sleep(IDLE_POLL).await;
            }
        }
    }
}

/// Works until no prompt is claimable (tests and batch use); returns prompts stored.
pub async fn drain(pool: &PgPool, name: &str) -> anyhow::Result<u64> {
    let mut stored = 0;
    while let Some(n) = claim_and_generate(pool, name).await? {
        stored += n;
    }
    Ok(stored)
}

/// One claim: true when there was work.
async fn work_once(pool: &PgPool, name: &str) -> anyhow::Result<bool> {
    Ok(claim_and_generate(pool, name).await?.is_some())
}

async fn claim_and_generate(pool: &PgPool, name: &str) -> anyhow::Result<Option<u64>> {
    let Some(claim) = store::jobs::claim(pool, name, LEASE)
        .await
        .map_err(|e| anyhow!("claiming work: {e}"))?
    else {
        return Ok(None);
    };
    let heartbeat = {
        let pool = pool.clone();
        let name = name.to_string();
        let job = claim.job_id;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(e) = store::jobs::heartbeat(&pool, job, &name, LEASE).await {
                    tracing::warn!("job {job}: heartbeat failed: {e}");
                }
            }
        })
    };
    let result = generate_claim(pool, name, &claim).await;
    heartbeat.abort();
    // Whatever this worker still holds (it stopped early) goes back to the queue.
    store::jobs::release(pool, claim.job_id, name)
        .await
        .map_err(|e| anyhow!("releasing prompts: {e}"))?;
    result.map(Some)
}

async fn generate_claim(pool: &PgPool, name: &str, claim: &Claim) -> anyhow::Result<u64> {
    let mut engines = Vec::with_capacity(claim.payload.models.len());
    for model in &claim.payload.models {
        match shared_engine(model).await {
            Ok(handle) => engines.push((model.clone(), handle)),
            Err(e) => {
                // A model that does not load will not load on retry either.
                tracing::error!("job {}: {e:#}", claim.job_id);
                store::jobs::fail_job(pool, claim.job_id, &format!("{e:#}"))
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                return Ok(0);
            }
        }
    }
    let mut stored = 0;
    for (prompt_id, messages, attempt) in &claim.prompts {
        if !store::jobs::job_is_open(pool, claim.job_id)
            .await
            .map_err(|e| anyhow!("{e}"))?
        {
            break;
        }
        match generate_prompt(&claim.payload, &engines, *prompt_id, messages).await {
            Ok((candidates, tokens, ms)) => {
                let outcome = store::jobs::complete_prompt(
                    pool,
                    claim,
                    *prompt_id,
                    name,
                    &candidates,
                    tokens,
                    ms,
                )
                .await
                .map_err(|e| anyhow!("storing candidates: {e}"))?;
                match outcome {
                    Completion::Stored => {
                        stored += 1;
                        metrics::counter!("pairwise_generated_prompts_total").increment(1);
                    }
                    Completion::LostLease => {
                        tracing::warn!("job {}: prompt {prompt_id} was taken over", claim.job_id)
                    }
                    Completion::JobClosed => break,
                }
            }
            Err(e) => {
                tracing::warn!("job {}: prompt {prompt_id}: {e:#}", claim.job_id);
                store::jobs::fail_prompt(
                    pool,
                    claim,
                    *prompt_id,
                    name,
                    *attempt,
                    &format!("{e:#}"),
                )
                .await
                .map_err(|e| anyhow!("{e}"))?;
            }
        }
    }
    Ok(stored)
}

/// Candidates for one prompt: one model sampled K times in one batch, or one per model.
async fn generate_prompt(
    payload: &GenerationPayload,
    engines: &[(JobModel, EngineHandle)],
    prompt_id: Uuid,
    messages: &[Message],
) -> anyhow::Result<(Vec<NewCandidate>, i64, f64)> {
    let spec = &payload.spec;
    let seed = payload.prompt_seed(prompt_id);
    let chat: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage {
            role: m.role.clone(),
            content: m.content.clone(),
        })
        .collect();
    let per_model = if engines.len() == 1 {
        spec.k as usize
    } else {
        1
    };
    let mut out = Vec::new();
    let mut tokens = 0i64;
    let mut ms = 0.0;
    for (model, engine) in engines {
        let temperature = model.temperature.unwrap_or(spec.temperature);
        let top_p = model.top_p.unwrap_or(spec.top_p);
        let max_new_tokens = model.max_new_tokens.unwrap_or(spec.max_new_tokens);
        let request = GenerateRequest {
            prompt: PromptInput::Chat(chat.clone()),
            n: per_model,
            max_new_tokens: max_new_tokens as usize,
            temperature: temperature as f32,
            top_k: None,
            top_p: Some(top_p as f32),
            repetition_penalty: None,
            seed: Some(seed),
            stop: Vec::new(),
        };
        let engine = engine.clone();
        let started = Instant::now();
        let candidates = tokio::task::spawn_blocking(move || engine.generate(request))
            .await
            .map_err(|e| anyhow!("the engine thread failed: {e}"))?
            .map_err(|e| anyhow!("generating with {:?}: {e}", model.name))?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        ms += elapsed;
        for (index, candidate) in candidates.into_iter().enumerate() {
            tokens += candidate.n_tokens as i64;
            out.push(NewCandidate {
                text: candidate.text,
                metadata: serde_json::json!({
                    "model": model.name,
                    "model_id": model.id,
                    "temperature": temperature,
                    "top_p": top_p,
                    "max_new_tokens": max_new_tokens,
                    "seed": seed,
                    "sample_index": index,
                    "tokens": candidate.n_tokens,
                    "finish_reason": candidate.finish_reason.as_str(),
                    "generation_ms": elapsed,
                }),
            });
        }
    }
    Ok((out, tokens, ms))
}

/// Starts `count` generation workers on this runtime, and one training worker when `count`
/// is not 0 (its checkpoints go under `data_dir/models/`); send `true` to stop them.
pub fn spawn_workers(
    pool: &PgPool,
    count: usize,
    data_dir: &std::path::Path,
) -> tokio::sync::watch::Sender<bool> {
    let (stop, receiver) = tokio::sync::watch::channel(false);
    for index in 0..count {
        tokio::spawn(run(pool.clone(), worker_name(index), receiver.clone()));
    }
    if count > 0 {
        tokio::spawn(crate::training::run(
            pool.clone(),
            format!("{}:train", worker_name(count)),
            data_dir.to_path_buf(),
            receiver,
        ));
    }
    stop
}
