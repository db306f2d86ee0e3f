//! Generated candidates: the models registry, what a generation job asks for, and its state.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{text_enum, Invalid, Message, PromptInput};

text_enum! {
    /// How a model is stored on disk.
    ModelFormat { Gguf => "gguf", Hf => "hf" }
}

text_enum! {
    JobStatus {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    pub fn is_open(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: Uuid,
    pub name: String,
    pub path: String,
    pub format: ModelFormat,
    pub notes: String,
    pub parent_id: Option<Uuid>,
    /// Where the files are in the shared storage (checkpoints trained here), for hosts that
    /// do not have `path`.
    #[serde(default)]
    pub stored_at: Option<String>,
    pub created_at: String,
}

/// One file of a model and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFile {
    pub name: String,
    pub bytes: u64,
}

/// The training run a model came out of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOrigin {
    pub run_id: Uuid,
    pub kind: String,
    pub export_id: Uuid,
}

/// `GET /api/v1/models`: a registered model with its lineage and files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    #[serde(flatten)]
    pub model: ModelRecord,
    /// The name of the model it was fine-tuned from.
    pub parent: Option<String>,
    /// The run that trained it, for checkpoints made here.
    pub made_by: Option<ModelOrigin>,
    /// Training runs started from it.
    pub runs_from_it: i64,
    /// Its files with their sizes, as this server finds them (largest first; the largest 200
    /// when there are more).
    pub files: Vec<ModelFile>,
    /// How many files it has, and their bytes together (all of them, listed or not).
    pub file_count: u64,
    pub bytes: u64,
    /// Why `files` is empty, when it is.
    pub files_note: Option<String>,
}

/// `POST /api/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    pub name: String,
    /// A GGUF file or a Hugging Face directory on the workers' disk.
    pub path: String,
    #[serde(default)]
    pub notes: String,
    /// The name of the model this one was fine-tuned from.
    #[serde(default)]
    pub parent: Option<String>,
}

impl NewModel {
    pub fn validated(mut self) -> Result<Self, Invalid> {
        self.name = self.name.trim().to_string();
        if self.name.is_empty() || self.name.len() > 200 {
            return Err(Invalid::new("a model name has 1 to 200 characters"));
        }
        if self.path.trim().is_empty() {
            return Err(Invalid::new("give the model's path"));
        }
        if self.notes.len() > 10_000 {
            return Err(Invalid::new("notes are limited to 10,000 bytes"));
        }
        Ok(self)
    }

    /// GGUF for a `.gguf` file, a Hugging Face directory otherwise.
    pub fn format(&self) -> ModelFormat {
        if self.path.to_ascii_lowercase().ends_with(".gguf") {
            ModelFormat::Gguf
        } else {
            ModelFormat::Hf
        }
    }
}

fn default_k() -> u32 {
    2
}
fn default_temperature() -> f64 {
    0.7
}
fn default_top_p() -> f64 {
    0.9
}
fn default_max_new_tokens() -> u32 {
    256
}
fn default_batch() -> u32 {
    4
}
fn default_attempts() -> u32 {
    3
}

/// One candidate's model in a `models` list: a name, or a name with its own sampling settings
/// (the same model may appear twice with different settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelChoice {
    Name(String),
    Settings {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temperature: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        top_p: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_new_tokens: Option<u32>,
    },
}

impl ModelChoice {
    pub fn name(&self) -> &str {
        match self {
            ModelChoice::Name(name) | ModelChoice::Settings { name, .. } => name,
        }
    }

    /// (temperature, top_p, max_new_tokens) overrides.
    pub fn overrides(&self) -> (Option<f64>, Option<f64>, Option<u32>) {
        match self {
            ModelChoice::Name(_) => (None, None, None),
            ModelChoice::Settings {
                temperature,
                top_p,
                max_new_tokens,
                ..
            } => (*temperature, *top_p, *max_new_tokens),
        }
    }
}

impl From<&str> for ModelChoice {
    fn from(name: &str) -> Self {
        ModelChoice::Name(name.to_string())
    }
}

fn check_sampling(temperature: f64, top_p: f64, max_new_tokens: u32) -> Result<(), Invalid> {
    if !(0.0..=2.0).contains(&temperature) {
        return Err(Invalid::new("temperature must be between 0 and 2"));
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(Invalid::new("top_p must be above 0 and at most 1"));
    }
    if !(1..=4096).contains(&max_new_tokens) {
        return Err(Invalid::new("max_new_tokens must be 1 to 4096"));
    }
    Ok(())
}

/// `POST /api/v1/campaigns/{id}/generate`: one model sampled `k` times, or two or more models
/// (or settings of one model) with one candidate each ("new vs old").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// One model by name (default: the first registered).
    #[serde(default)]
    pub model: Option<String>,
    /// Two or more models, one candidate each, each optionally with its own `temperature`,
    /// `top_p` and `max_new_tokens`; overrides `model` and `k`.
    #[serde(default)]
    pub models: Vec<ModelChoice>,
    #[serde(default = "default_k")]
    pub k: u32,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "default_top_p")]
    pub top_p: f64,
    #[serde(default = "default_max_new_tokens")]
    pub max_new_tokens: u32,
    /// Makes the job reproducible; random when absent (and then recorded).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Prompts a worker claims at once.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// Tries per prompt (and per model load) before giving up.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

impl Default for GenerateSpec {
    fn default() -> Self {
        Self {
            model: None,
            models: Vec::new(),
            k: default_k(),
            temperature: default_temperature(),
            top_p: default_top_p(),
            max_new_tokens: default_max_new_tokens(),
            seed: None,
            batch_size: default_batch(),
            max_attempts: default_attempts(),
        }
    }
}

impl GenerateSpec {
    pub fn validated(self) -> Result<Self, Invalid> {
        if self.models.len() == 1 {
            return Err(Invalid::new(
                "`models` compares two or more models; use `model` for one",
            ));
        }
        if self.models.len() > crate::MAX_RESPONSES {
            return Err(Invalid(format!("at most {} models", crate::MAX_RESPONSES)));
        }
        if self.models.is_empty() && !(2..=crate::MAX_RESPONSES as u32).contains(&self.k) {
            return Err(Invalid(format!("k must be 2 to {}", crate::MAX_RESPONSES)));
        }
        check_sampling(self.temperature, self.top_p, self.max_new_tokens)?;
        for choice in &self.models {
            let (temperature, top_p, max_new_tokens) = choice.overrides();
            check_sampling(
                temperature.unwrap_or(self.temperature),
                top_p.unwrap_or(self.top_p),
                max_new_tokens.unwrap_or(self.max_new_tokens),
            )
            .map_err(|e| Invalid(format!("model {:?}: {e}", choice.name())))?;
        }
        if !(1..=64).contains(&self.batch_size) {
            return Err(Invalid::new("batch_size must be 1 to 64"));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err(Invalid::new("max_attempts must be 1 to 10"));
        }
        Ok(self)
    }

    /// Candidates per prompt.
    pub fn candidates(&self) -> u32 {
        if self.models.is_empty() {
            self.k
        } else {
            self.models.len() as u32
        }
    }
}

/// A model as a job uses it, with the settings that override the job's for its candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobModel {
    pub id: Uuid,
    pub name: String,
    pub path: String,
    /// The files' key prefix in the storage, when the model was trained here.
    #[serde(default)]
    pub stored_at: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub max_new_tokens: Option<u32>,
}

/// What a generation job runs: the spec with models resolved and the seed fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationPayload {
    pub spec: GenerateSpec,
    /// One entry sampled `k` times, or one candidate from each.
    pub models: Vec<JobModel>,
    pub seed: u64,
}

impl GenerationPayload {
    /// The seed for one prompt: the job's seed mixed with the prompt id, so a re-run of a
    /// prompt (after a crash) gives the same candidates.
    pub fn prompt_seed(&self, prompt_id: Uuid) -> u64 {
        let (high, low) = prompt_id.as_u64_pair();
        self.seed ^ high.rotate_left(17) ^ low
    }
}

/// A job as the API and the UI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: String,
    pub campaign_id: Option<Uuid>,
    pub status: JobStatus,
    /// Prompts in the job, finished, and given up on.
    pub total: i32,
    pub done: i32,
    pub failed: i32,
    pub tokens: i64,
    pub tokens_per_s: Option<f64>,
    /// Pairs of candidates not made into items because the two read the same.
    pub identical_pairs: i32,
    pub error: Option<String>,
    pub payload: serde_json::Value,
    pub created_at: String,
    pub finished_at: Option<String>,
}

/// A line of `POST /api/v1/campaigns/{id}/prompts`: a prompt string, or an object with
/// `prompt` (string or messages) and optional `metadata` and `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptLine {
    pub messages: Vec<Message>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromptLine {
    prompt: PromptInput,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

pub fn parse_prompt_line(line: &str) -> Result<PromptLine, Invalid> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| Invalid(format!("not JSON: {e}")))?;
    let raw: RawPromptLine = match value {
        serde_json::Value::String(text) => RawPromptLine {
            prompt: PromptInput::Text(text),
            metadata: None,
            id: None,
        },
        serde_json::Value::Array(_) => RawPromptLine {
            prompt: serde_json::from_value(value).map_err(|e| Invalid(e.to_string()))?,
            metadata: None,
            id: None,
        },
        other => serde_json::from_value(other).map_err(|e| Invalid(e.to_string()))?,
    };
    let mut metadata = raw.metadata.unwrap_or_default();
    if let Some(id) = raw.id {
        metadata.insert("id".into(), id);
    }
    Ok(PromptLine {
        messages: crate::prompt_messages(raw.prompt)?,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lines() {
        let line = parse_prompt_line(r#""Hello?""#).unwrap();
        assert_eq!(line.messages.len(), 1);
        assert_eq!(line.messages[0].role, "user");
        let line = parse_prompt_line(
            r#"[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]"#,
        )
        .unwrap();
        assert_eq!(line.messages.len(), 2);
        let line = parse_prompt_line(r#"{"prompt": "x", "id": 7, "metadata": {"a": 1}}"#).unwrap();
        assert_eq!(line.metadata["id"], 7);
        assert!(parse_prompt_line(r#"{"prompt": "x", "responses": []}"#).is_err());
        assert!(parse_prompt_line("{").is_err());
        assert!(parse_prompt_line(r#""""#).is_err());
    }

    #[test]
    fn specs() {
        assert!(GenerateSpec::default().validated().is_ok());
        let one = GenerateSpec {
            models: vec!["a".into()],
            ..GenerateSpec::default()
        };
        assert!(one.validated().is_err());
        let two = GenerateSpec {
            models: vec!["a".into(), "b".into()],
            k: 0,
            ..GenerateSpec::default()
        };
        assert_eq!(two.validated().unwrap().candidates(), 2);
        let spec: GenerateSpec = serde_json::from_str(
            r#"{"models": ["a", {"name": "a", "temperature": 1.2, "max_new_tokens": 8}]}"#,
        )
        .unwrap();
        assert_eq!(spec.models[1].overrides(), (Some(1.2), None, Some(8)));
        assert_eq!(spec.clone().validated().unwrap().candidates(), 2);
        let bad: GenerateSpec =
            serde_json::from_str(r#"{"models": ["a", {"name": "b", "top_p": 0}]}"#).unwrap();
        assert!(bad.validated().unwrap_err().0.contains("model \"b\""));
        let hot = GenerateSpec {
            temperature: 3.0,
            ..GenerateSpec::default()
        };
        assert!(hot.validated().is_err());
        let spec: GenerateSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec, GenerateSpec::default());
    }

    #[test]
    fn prompt_seeds_differ_and_repeat() {
        let payload = GenerationPayload {
            spec: GenerateSpec::default(),
            models: vec![],
            seed: 42,
        };
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(payload.prompt_seed(a), payload.prompt_seed(a));
        assert_ne!(payload.prompt_seed(a), payload.prompt_seed(b));
    }
}
