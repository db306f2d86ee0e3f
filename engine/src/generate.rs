//! Generation: `n` candidates for one prompt. One prefill of the prompt (batch 1), its cache
//! row replicated to the candidates' rows, then every candidate decoded together, one forward
//! per step, finished candidates dropped from the batch. Sampling happens on the host per
//! candidate (`crate::sample`); the transformer itself is `crate::model`.

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::model::KvCache;
use crate::sample::{self, Rng, SamplingParams};
use domain::Message;
use serde::{Deserialize, Serialize};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tch::{Device, Kind, Tensor};

/// The prompt of a generation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptInput {
    /// Raw text, tokenized as is (no BOS added, special-token literals parsed).
    Text(String),
    /// Messages rendered through the model's chat template with the generation prompt.
    Chat(Vec<Message>),
    /// Pre-tokenized ids.
    Ids(Vec<u32>),
}

/// A generation request: `n` candidates for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: PromptInput,
    pub n: usize,
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    /// Same seed, same request, same model => same candidates.
    pub seed: Option<u64>,
    /// Generation stops when the decoded text contains one of these; the
    /// text is cut before it.
    pub stop: Vec<String>,
}

impl Default for GenerateRequest {
    fn default() -> Self {
        GenerateRequest {
            prompt: PromptInput::Text(String::new()),
            n: 1,
            max_new_tokens: 128,
            temperature: 0.7,
            top_k: None,
            top_p: Some(0.9),
            repetition_penalty: None,
            seed: None,
            stop: vec![],
        }
    }
}

/// Why a candidate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// EOS token or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Timing of one generate call (shared by its candidates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub prompt_tokens: usize,
    /// Prefill forward + first logits on the host: time to first token.
    pub prefill_ms: f64,
    /// Decode steps after the first token.
    pub decode_ms: f64,
    /// Tokens generated after the first, all candidates, per second of decode.
    pub decode_tokens_per_s: f64,
    pub total_ms: f64,
}

/// One generated candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Decoded text (special tokens skipped, cut before a stop string).
    pub text: String,
    /// Generated ids, including the final EOS id when it stopped on EOS.
    pub token_ids: Vec<u32>,
    pub finish_reason: FinishReason,
    pub n_tokens: usize,
    pub timing: Timing,
}

/// Extra generation knobs not part of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Keep going past EOS until `max_new_tokens` (benchmarks).
    pub ignore_eos: bool,
}

impl Engine {
    /// Token ids of a prompt.
    pub fn prompt_ids(&self, prompt: &PromptInput) -> Result<Vec<u32>> {
        match prompt {
            PromptInput::Text(t) => self.encode(t),
            PromptInput::Chat(m) => self.encode(&self.apply_chat_template(m, true)?),
            PromptInput::Ids(ids) => Ok(ids.clone()),
        }
    }

    /// Generate `req.n` candidates: one prefill, the prompt's cache shared
    /// (expanded to the candidates' rows), candidates decoded as one batch.
    pub fn generate(&self, req: &GenerateRequest) -> Result<Vec<Candidate>> {
        self.generate_with_options(req, &GenerateOptions::default())
    }

    /// [`Engine::generate`] with extra knobs (benchmarks).
    pub fn generate_with_options(
        &self,
        req: &GenerateRequest,
        gopts: &GenerateOptions,
    ) -> Result<Vec<Candidate>> {
        let _g = tch::no_grad_guard();
        let t0 = Instant::now();
        if req.n == 0 {
            return Ok(vec![]);
        }
        check_request(req)?;
        let prompt = self.prompt_ids(&req.prompt)?;
        if prompt.is_empty() {
            return Err(EngineError::InvalidRequest("empty prompt".into()));
        }
        if req.max_new_tokens == 0 {
            let nothing = Candidate {
                text: String::new(),
                token_ids: vec![],
                finish_reason: FinishReason::Length,
                n_tokens: 0,
                timing: Timing {
                    prompt_tokens: prompt.len(),
                    ..Default::default()
                },
            };
            return Ok(vec![nothing; req.n]);
        }
        let (mut cache, first) = self.prefill(&prompt, req.max_new_tokens)?;
        let prefill_ms = ms_since(t0);
        let t1 = Instant::now();
        let mut batch = Batch::new(self, req, gopts, &prompt);
        let decoded_after_first = batch.decode(&mut cache, first)?;
        let decode_ms = ms_since(t1);
        let timing = Timing {
            prompt_tokens: prompt.len(),
            prefill_ms,
            decode_ms,
            decode_tokens_per_s: if decode_ms > 0.0 {
                decoded_after_first as f64 / (decode_ms / 1e3)
            } else {
                0.0
            },
            total_ms: ms_since(t0),
        };
        batch.into_candidates(timing)
    }

    /// Run the prompt (batch 1) into a new cache with room for `max_new` more tokens;
    /// returns the cache and the last position's logits on the host.
    fn prefill(&self, prompt: &[u32], max_new: usize) -> Result<(KvCache, Vec<f32>)> {
        let capacity = prompt.len().saturating_add(max_new);
        let mut cache = self.model().new_cache(1, capacity)?;
        let (ids, _) = self.ids_tensor(&[prompt], 0)?;
        let logits = self.model().forward(&ids, Some(&mut cache), None, true)?;
        Ok((cache, to_host(&logits)?))
    }
}

/// What a request may not ask for (beyond what tokenizing the prompt checks).
fn check_request(req: &GenerateRequest) -> Result<()> {
    if req.n > 256 {
        return Err(EngineError::InvalidRequest("n must be <= 256".into()));
    }
    if !req.temperature.is_finite() || req.temperature < 0.0 {
        return Err(EngineError::InvalidRequest("bad temperature".into()));
    }
    Ok(())
}

/// The candidates of one request while they decode.
struct Batch<'a> {
    engine: &'a Engine,
    req: &'a GenerateRequest,
    ignore_eos: bool,
    prompt: &'a [u32],
    params: SamplingParams,
    /// Per candidate, so its tokens depend only on the seed and its index.
    rngs: Vec<Rng>,
    /// Per candidate: the ids generated so far.
    tokens: Vec<Vec<u32>>,
    /// Per candidate: why it ended, `None` while it runs.
    finish: Vec<Option<FinishReason>>,
    /// Per candidate: its text, when a stop string cut it.
    cut_texts: Vec<Option<String>>,
    /// Scratch for the repetition penalty: prompt + the candidate's ids.
    context: Vec<u32>,
}

impl<'a> Batch<'a> {
    fn new(
        engine: &'a Engine,
        req: &'a GenerateRequest,
        gopts: &GenerateOptions,
        prompt: &'a [u32],
    ) -> Self {
        let n = req.n;
        let seed = req.seed.unwrap_or_else(clock_seed);
        Batch {
            engine,
            req,
            ignore_eos: gopts.ignore_eos,
            prompt,
            params: SamplingParams {
                temperature: req.temperature,
                top_k: req.top_k,
                top_p: req.top_p,
                repetition_penalty: req.repetition_penalty,
            },
            rngs: (0..n).map(|i| Rng::for_candidate(seed, i)).collect(),
            tokens: vec![Vec::new(); n],
            finish: vec![None; n],
            cut_texts: vec![None; n],
            context: Vec::new(),
        }
    }

    /// Decode until every candidate has finished, starting from the prompt's logits
    /// `first` and its single-row `cache`. Returns how many tokens were decoded after each
    /// candidate's first (all candidates together), for the throughput figure.
    fn decode(&mut self, cache: &mut KvCache, first: Vec<f32>) -> Result<usize> {
        let n = self.req.n;
        // `active[r]` = candidate in cache row r.
        let mut active: Vec<usize> = (0..n).collect();
        // Every candidate draws its first token from the prompt's logits.
        let mut rows: Vec<Vec<f32>> = vec![first; n];
        let mut cache_rows_expanded = false;
        let mut decoded_after_first = 0usize;
        loop {
            for (r, &ci) in active.iter().enumerate() {
                self.sample_next(ci, &mut rows[r])?;
            }
            let keep: Vec<i64> = active
                .iter()
                .enumerate()
                .filter(|(_, &ci)| self.finish[ci].is_none())
                .map(|(r, _)| r as i64)
                .collect();
            if keep.is_empty() {
                break;
            }
            if !cache_rows_expanded {
                // Share the prompt's cache: replicate its single row.
                cache.select_rows(&vec![0i64; keep.len()])?;
                cache_rows_expanded = true;
            } else if keep.len() != active.len() {
                cache.select_rows(&keep)?;
            }
            active = keep.iter().map(|&r| active[r as usize]).collect();
            rows = self.step(cache, &active)?;
            decoded_after_first += active.len();
        }
        Ok(decoded_after_first)
    }

    /// Sample candidate `ci`'s next token from its logits `row` (modified in place) and
    /// record whether it ends there: EOS, a stop string, or `max_new_tokens`.
    fn sample_next(&mut self, ci: usize, row: &mut [f32]) -> Result<()> {
        if self.params.repetition_penalty.is_some() {
            self.context.clear();
            self.context.extend_from_slice(self.prompt);
            self.context.extend_from_slice(&self.tokens[ci]);
        }
        let tok = sample::sample(row, &self.context, &self.params, &mut self.rngs[ci]);
        self.tokens[ci].push(tok);
        if !self.ignore_eos && self.engine.eos_ids().contains(&tok) {
            self.finish[ci] = Some(FinishReason::Stop);
        } else if !self.req.stop.is_empty() {
            let text = self.engine.decode(&self.tokens[ci])?;
            if let Some(cut) = earliest_stop(&text, &self.req.stop) {
                self.cut_texts[ci] = Some(text[..cut].to_string());
                self.finish[ci] = Some(FinishReason::Stop);
            }
        }
        if self.finish[ci].is_none() && self.tokens[ci].len() >= self.req.max_new_tokens {
            self.finish[ci] = Some(FinishReason::Length);
        }
        Ok(())
    }

    /// One decode step: each active candidate's last token in (cache row order), each
    /// row's next-token logits out, on the host.
    fn step(&self, cache: &mut KvCache, active: &[usize]) -> Result<Vec<Vec<f32>>> {
        let model = self.engine.model();
        let last: Vec<i64> = active
            .iter()
            .map(|&ci| *self.tokens[ci].last().unwrap_or(&0) as i64)
            .collect();
        let x = Tensor::from_slice(&last)
            .f_view([active.len() as i64, 1])?
            .f_to_device(model.device)?;
        let logits = model.forward(&x, Some(cache), None, true)?;
        let flat = to_host(&logits)?;
        Ok(flat
            .chunks(model.config.vocab_size)
            .map(|c| c.to_vec())
            .collect())
    }

    fn into_candidates(self, timing: Timing) -> Result<Vec<Candidate>> {
        let engine = self.engine;
        self.tokens
            .into_iter()
            .zip(self.finish)
            .zip(self.cut_texts)
            .map(|((ids, finish), cut_text)| {
                let text = match cut_text {
                    Some(t) => t,
                    None => engine.decode(&ids)?,
                };
                Ok(Candidate {
                    text,
                    n_tokens: ids.len(),
                    token_ids: ids,
                    finish_reason: finish.unwrap_or(FinishReason::Length),
                    timing,
                })
            })
            .collect()
    }
}

/// Where the earliest non-empty stop string starts in `text`.
fn earliest_stop(text: &str, stop: &[String]) -> Option<usize> {
    stop.iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Logits as one flat f32 vector on the host: the only device sync of a decode step.
fn to_host(logits: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        logits
            .f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_flatten(0, -1)?,
    )?)
}

/// A seed for requests without one.
fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
