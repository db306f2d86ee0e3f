//! Generation workers: claim prompts from the job queue, run the engine off the async runtime,
//! and commit each prompt's candidates and items as soon as they are made.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use anyhow::{anyhow, Context};
use domain::{GenerationPayload, JobModel, Message};
use engine::{EngineHandle, GenerateRequest, LoadOptions, PromptInput};
use store::jobs::{Claim, Completion, NewCandidate};
use store::PgPool;
use uuid::Uuid;

use super::Files;

/// Engines loaded in this process, by model path: loading takes seconds and memory, so every
/// worker of the process shares one engine per model (each engine runs on its own thread).
fn engines() -> &'static Mutex<HashMap<PathBuf, EngineHandle>> {
    static ENGINES: OnceLock<Mutex<HashMap<PathBuf, EngineHandle>>> = OnceLock::new();
    ENGINES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The process's engine for a model, loading it on first use (from the storage when the
/// model was trained on another host).
pub async fn shared_engine(files: &Files, model: &JobModel) -> anyhow::Result<EngineHandle> {
    let path = super::checkpoints::local_path(files, &model.path, model.stored_at.as_deref())
        .await
        .with_context(|| format!("cannot load model {:?}", model.name))?;
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
            .context("the loader thread failed")?
            .with_context(|| format!("cannot load model {:?} from {}", model.name, model.path))?;
    engines()
        .lock()
        .map_err(|_| anyhow!("engine cache poisoned"))?
        .insert(path, handle.clone());
    Ok(handle)
}

/// Runs until `stop` turns true: claims, generates, commits; sleeps when there is nothing.
pub async fn run(
    pool: PgPool,
    files: Files,
    name: String,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    super::poll::poll(&name, stop, || work_once(&pool, &files, &name)).await
}

/// Works until no prompt is claimable (tests and batch use); returns prompts stored.
pub async fn drain(pool: &PgPool, files: &Files, name: &str) -> anyhow::Result<u64> {
    let mut stored = 0;
    while let Some(n) = claim_and_generate(pool, files, name).await? {
        stored += n;
    }
    Ok(stored)
}

/// One claim: true when there was work.
async fn work_once(pool: &PgPool, files: &Files, name: &str) -> anyhow::Result<bool> {
    Ok(claim_and_generate(pool, files, name).await?.is_some())
}

async fn claim_and_generate(
    pool: &PgPool,
    files: &Files,
    name: &str,
) -> anyhow::Result<Option<u64>> {
    let Some(claim) = store::jobs::claim(pool, name, super::lease())
        .await
        .context("claiming work")?
    else {
        return Ok(None);
    };
    let heartbeat = {
        let pool = pool.clone();
        let name = name.to_string();
        let job = claim.job_id;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(super::lease() / 6).await;
                if let Err(e) = store::jobs::heartbeat(&pool, job, &name, super::lease()).await {
                    tracing::warn!("job {job}: heartbeat failed: {e}");
                }
            }
        })
    };
    let result = generate_claim(pool, files, name, &claim).await;
    heartbeat.abort();
    // Whatever this worker still holds (it stopped early) goes back to the queue.
    store::jobs::release(pool, claim.job_id, name)
        .await
        .context("releasing prompts")?;
    result.map(Some)
}

async fn generate_claim(
    pool: &PgPool,
    files: &Files,
    name: &str,
    claim: &Claim,
) -> anyhow::Result<u64> {
    let mut engines = Vec::with_capacity(claim.payload.models.len());
    for model in &claim.payload.models {
        match shared_engine(files, model).await {
            Ok(handle) => engines.push((model.clone(), handle)),
            Err(e) => {
                // A model that does not load will not load on retry either.
                tracing::error!("job {}: {e:#}", claim.job_id);
                store::jobs::fail_job(pool, claim.job_id, &format!("{e:#}"))
                    .await
                    .context("failing the job")?;
                return Ok(0);
            }
        }
    }
    let mut stored = 0;
    for (prompt_id, messages, attempt) in &claim.prompts {
        if !store::jobs::job_is_open(pool, claim.job_id)
            .await
            .context("checking the job")?
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
                .context("storing candidates")?;
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
                .context("recording the failed prompt")?;
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
    let chat = messages.to_vec();
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
            .context("the engine thread failed")?
            .with_context(|| format!("generating with {:?}", model.name))?;
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
