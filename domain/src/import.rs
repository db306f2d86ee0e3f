//! The import format: one prompt with two or more responses per JSONL line or CSV row.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Invalid;

/// Most responses one line may carry; pairwise mode makes C(K, 2) items of them.
pub const MAX_RESPONSES: usize = 8;
/// Largest single prompt message or response text, in bytes.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Errors listed in an import report; the count covers the rest.
pub const MAX_REPORTED_ERRORS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A prompt as written in an import: plain text (one user turn) or a whole conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Messages(Vec<Message>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum ResponseInput {
    Text(String),
    Object {
        text: String,
        #[serde(flatten)]
        metadata: Map<String, Value>,
    },
}

/// The known answer of a gold item: the index of the better response, or a tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Gold {
    Better(usize),
    #[serde(with = "tie_literal")]
    Tie,
}

mod tie_literal {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("tie")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "tie" => Ok(()),
            other => Err(D::Error::custom(format!("{other:?} is not \"tie\""))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    prompt: PromptInput,
    responses: Vec<ResponseInput>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    gold: Option<Gold>,
    #[serde(default)]
    id: Option<Value>,
}

/// One validated line of an import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportItem {
    pub messages: Vec<Message>,
    pub responses: Vec<ImportResponse>,
    pub metadata: Map<String, Value>,
    pub gold: Option<Gold>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportResponse {
    pub text: String,
    pub metadata: Map<String, Value>,
}

impl ImportItem {
    /// The index pairs to label: the C(K, 2) pairs of responses, in order, less those whose
    /// two responses are the same text ([`same_response`]); and how many those were.
    pub fn pairs(&self) -> (Vec<(usize, usize)>, u64) {
        let texts: Vec<&str> = self.responses.iter().map(|r| r.text.as_str()).collect();
        distinct_pairs(&texts)
    }
}

/// Whether two responses read the same once runs of whitespace are made one space and the
/// ends trimmed: such a pair shows the labeler nothing to choose between.
pub fn same_response(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The pairs of `texts` worth labeling (see [`same_response`]) and how many were not.
pub fn distinct_pairs(texts: &[&str]) -> (Vec<(usize, usize)>, u64) {
    let (kept, identical): (Vec<_>, Vec<_>) = pairs(texts.len())
        .into_iter()
        .partition(|&(i, j)| !same_response(texts[i], texts[j]));
    (kept, identical.len() as u64)
}

/// All unordered pairs (i < j) of `k` things, lexicographically.
pub fn pairs(k: usize) -> Vec<(usize, usize)> {
    (0..k)
        .flat_map(|i| (i + 1..k).map(move |j| (i, j)))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportError {
    pub line: u64,
    pub message: String,
}

/// `POST /api/v1/campaigns/{id}/items` answer. Nothing is written unless `errors` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Prompts (lines) imported; 0 when any line failed.
    pub imported: u64,
    /// Labeling items made from them.
    pub items: u64,
    /// The first errors, with line numbers (1-based, the header of a CSV is line 1).
    pub errors: Vec<ImportError>,
    /// All errors, including those not listed.
    pub error_count: u64,
    /// Lines skipped because their `id` is already in the campaign (or came earlier in the
    /// same input): importing a file again adds nothing twice.
    #[serde(default)]
    pub skipped: u64,
    /// The first skipped lines, by number, with the id.
    #[serde(default)]
    pub skipped_lines: Vec<ImportError>,
    /// Pairs not made into items because their two responses were the same text.
    #[serde(default)]
    pub identical_pairs: u64,
}

impl ImportReport {
    pub fn record_error(&mut self, line: u64, message: impl Into<String>) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(ImportError {
                line,
                message: message.into(),
            });
        }
    }

    pub fn record_skipped(&mut self, line: u64, id: &Value) {
        self.skipped += 1;
        if self.skipped_lines.len() < MAX_REPORTED_ERRORS {
            self.skipped_lines.push(ImportError {
                line,
                message: format!("id {id} is already in this campaign"),
            });
        }
    }

    /// Nothing was written: every count but the errors' goes back to zero.
    pub fn discard(&mut self) {
        self.imported = 0;
        self.items = 0;
        self.skipped = 0;
        self.skipped_lines.clear();
        self.identical_pairs = 0;
    }
}

const ROLES: [&str; 3] = ["system", "user", "assistant"];

fn check_text(what: &str, text: &str) -> Result<(), Invalid> {
    if text.trim().is_empty() {
        return Err(Invalid(format!("{what} is empty")));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Invalid(format!(
            "{what} is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Validates a prompt and turns it into the conversation that is stored.
pub fn prompt_messages(prompt: PromptInput) -> Result<Vec<Message>, Invalid> {
    let messages = match prompt {
        PromptInput::Text(text) => vec![Message {
            role: "user".into(),
            content: text,
        }],
        PromptInput::Messages(messages) => messages,
    };
    if messages.is_empty() {
        return Err(Invalid::new("prompt has no messages"));
    }
    for (i, m) in messages.iter().enumerate() {
        if !ROLES.contains(&m.role.as_str()) {
            return Err(Invalid(format!(
                "prompt message {} has role {:?}; expected system, user or assistant",
                i + 1,
                m.role
            )));
        }
        check_text(&format!("prompt message {}", i + 1), &m.content)?;
    }
    Ok(messages)
}

fn build_item(
    prompt: PromptInput,
    responses: Vec<ImportResponse>,
    mut metadata: Map<String, Value>,
    gold: Option<Gold>,
    id: Option<Value>,
) -> Result<ImportItem, Invalid> {
    let messages = prompt_messages(prompt)?;
    if responses.len() < 2 {
        return Err(Invalid(format!(
            "needs at least 2 responses, found {}",
            responses.len()
        )));
    }
    if responses.len() > MAX_RESPONSES {
        return Err(Invalid(format!(
            "has {} responses; at most {MAX_RESPONSES} are allowed",
            responses.len()
        )));
    }
    for (i, r) in responses.iter().enumerate() {
        check_text(&format!("response {}", i + 1), &r.text)?;
    }
    match gold {
        Some(_) if responses.len() != 2 => {
            return Err(Invalid::new("gold items must have exactly 2 responses"))
        }
        Some(Gold::Better(i)) if i >= responses.len() => {
            return Err(Invalid(format!(
                "gold is {i} but responses are numbered 0 to {}",
                responses.len() - 1
            )))
        }
        _ => {}
    }
    if let Some(id) = id {
        metadata.insert("id".into(), id);
    }
    Ok(ImportItem {
        messages,
        responses,
        metadata,
        gold,
    })
}

/// Parses one JSONL line.
pub fn parse_jsonl_line(line: &str) -> Result<ImportItem, Invalid> {
    let raw: RawLine =
        serde_json::from_str(line).map_err(|e| Invalid(format!("invalid JSON: {e}")))?;
    let responses = raw
        .responses
        .into_iter()
        .map(|r| match r {
            ResponseInput::Text(text) => ImportResponse {
                text,
                metadata: Map::new(),
            },
            ResponseInput::Object { text, metadata } => ImportResponse { text, metadata },
        })
        .collect();
    build_item(
        raw.prompt,
        responses,
        raw.metadata.unwrap_or_default(),
        raw.gold,
        raw.id,
    )
}

/// Which CSV column holds what, read from the header row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLayout {
    prompt: usize,
    responses: Vec<usize>,
    metadata: Option<usize>,
    gold: Option<usize>,
    id: Option<usize>,
}

impl CsvLayout {
    /// Columns: `prompt`, `response_*` (two or more, in header order), optional `metadata`
    /// (a JSON object), `gold` (a response index or `tie`) and `id`.
    pub fn from_header<S: AsRef<str>>(header: &[S]) -> Result<Self, Invalid> {
        let find = |name: &str| header.iter().position(|h| h.as_ref().trim() == name);
        let prompt =
            find("prompt").ok_or_else(|| Invalid::new("CSV header has no prompt column"))?;
        let responses: Vec<usize> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| h.as_ref().trim().starts_with("response"))
            .map(|(i, _)| i)
            .collect();
        if responses.len() < 2 {
            return Err(Invalid::new(
                "CSV header needs two or more response columns (response_a, response_b, ...)",
            ));
        }
        for (i, h) in header.iter().enumerate() {
            let h = h.as_ref().trim();
            let known =
                ["prompt", "metadata", "gold", "id"].contains(&h) || h.starts_with("response");
            if !known {
                return Err(Invalid(format!(
                    "CSV column {} ({h:?}) is not known",
                    i + 1
                )));
            }
        }
        Ok(Self {
            prompt,
            responses,
            metadata: find("metadata"),
            gold: find("gold"),
            id: find("id"),
        })
    }

    pub fn parse_record<S: AsRef<str>>(&self, record: &[S]) -> Result<ImportItem, Invalid> {
        let cell = |i: usize| record.get(i).map(|s| s.as_ref()).unwrap_or("");
        let metadata = match self.metadata.map(cell).filter(|s| !s.trim().is_empty()) {
            None => Map::new(),
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                _ => return Err(Invalid::new("metadata is not a JSON object")),
            },
        };
        let gold = match self.gold.map(cell).map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some("tie") => Some(Gold::Tie),
            Some(text) => Some(Gold::Better(text.parse().map_err(|_| {
                Invalid(format!(
                    "gold {text:?} is neither a response index nor \"tie\""
                ))
            })?)),
        };
        let responses = self
            .responses
            .iter()
            .map(|&i| cell(i))
            .filter(|text| !text.is_empty())
            .map(|text| ImportResponse {
                text: text.to_string(),
                metadata: Map::new(),
            })
            .collect();
        let id = self
            .id
            .map(cell)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_string()));
        build_item(
            PromptInput::Text(cell(self.prompt).to_string()),
            responses,
            metadata,
            gold,
            id,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_conversation_prompts() {
        let item = parse_jsonl_line(r#"{"prompt":"hi","responses":["a","b"]}"#).unwrap();
        assert_eq!(
            item.messages,
            vec![Message {
                role: "user".into(),
                content: "hi".into()
            }]
        );
        let item = parse_jsonl_line(
            r#"{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"u"}],
                "responses":[{"text":"a","model":"m1"},"b","c"],"metadata":{"k":1},"id":7}"#,
        )
        .unwrap();
        assert_eq!(item.messages.len(), 2);
        assert_eq!(item.responses[0].metadata["model"], "m1");
        assert_eq!(item.metadata["id"], 7);
        assert_eq!(item.pairs(), (vec![(0, 1), (0, 2), (1, 2)], 0));
    }

    #[test]
    fn pairs_of_the_same_text_are_left_out() {
        assert!(same_response(
            "A poem\n\nof  two lines ",
            " A poem of two\tlines"
        ));
        assert!(!same_response("A poem", "a poem"));
        let (pairs, identical) = distinct_pairs(&["one", "two", " one\n", "three"]);
        assert_eq!(pairs, vec![(0, 1), (0, 3), (1, 2), (1, 3), (2, 3)]);
        assert_eq!(identical, 1);
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("{", "invalid JSON"),
            (
                r#"{"prompt":"p","responses":["a"]}"#,
                "at least 2 responses",
            ),
            (
                r#"{"prompt":"","responses":["a","b"]}"#,
                "prompt message 1 is empty",
            ),
            (
                r#"{"prompt":"p","responses":["a",""]}"#,
                "response 2 is empty",
            ),
            (
                r#"{"prompt":[{"role":"bot","content":"x"}],"responses":["a","b"]}"#,
                "role",
            ),
            (
                r#"{"prompt":"p","responses":["a","b"],"gold":2}"#,
                "gold is 2",
            ),
            (
                r#"{"prompt":"p","responses":["a","b"],"extra":1}"#,
                "unknown field",
            ),
            (
                r#"{"prompt":"p","responses":["a","b","c"],"gold":0}"#,
                "exactly 2",
            ),
        ];
        for (line, expected) in cases {
            let err = parse_jsonl_line(line).unwrap_err().0;
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn gold_tie_and_index() {
        let tie = parse_jsonl_line(r#"{"prompt":"p","responses":["a","b"],"gold":"tie"}"#).unwrap();
        assert_eq!(tie.gold, Some(Gold::Tie));
        let one = parse_jsonl_line(r#"{"prompt":"p","responses":["a","b"],"gold":1}"#).unwrap();
        assert_eq!(one.gold, Some(Gold::Better(1)));
        assert_eq!(serde_json::to_value(Gold::Tie).unwrap(), "tie");
        assert_eq!(serde_json::to_value(Gold::Better(1)).unwrap(), 1);
    }

    #[test]
    fn csv_layout() {
        let layout =
            CsvLayout::from_header(&["id", "prompt", "response_a", "response_b", "gold"]).unwrap();
        let item = layout.parse_record(&["x1", "p", "a", "b", "1"]).unwrap();
        assert_eq!(item.responses.len(), 2);
        assert_eq!(item.gold, Some(Gold::Better(1)));
        assert_eq!(item.metadata["id"], "x1");
        assert!(CsvLayout::from_header(&["prompt", "response_a"]).is_err());
        assert!(CsvLayout::from_header(&["prompt", "response_a", "response_b", "colour"]).is_err());
        assert!(layout.parse_record(&["x", "p", "a", "b", "best"]).is_err());
    }

    #[test]
    fn report_caps_listed_errors() {
        let mut report = ImportReport::default();
        for line in 0..(MAX_REPORTED_ERRORS as u64 + 5) {
            report.record_error(line, "bad");
        }
        assert_eq!(report.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(report.error_count, MAX_REPORTED_ERRORS as u64 + 5);
    }
}
