//! Preference data for training: TRL "standard" (strings) or
//! "conversational" (lists of `{role, content}`) rows with `chosen` and
//! `rejected` (and `prompt`, explicit or implicit), from JSONL (optionally
//! gzipped) or Parquet files, tokenized the way TRL's trainers tokenize them.

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use domain::Message;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// A prompt or a completion: plain text or chat messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turns {
    Text(String),
    Messages(Vec<Message>),
}

/// One preference pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    pub prompt: Turns,
    pub chosen: Turns,
    pub rejected: Turns,
    /// Optional `margin` column (reward model loss).
    pub margin: Option<f32>,
    /// "file:row" for messages about this pair.
    pub source: String,
}

/// A row that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    pub source: String,
    pub reason: String,
}

/// Rows read from the data files.
#[derive(Debug, Default)]
pub struct PreferenceData {
    pub pairs: Vec<Preference>,
    pub skipped: Vec<Skipped>,
}

/// Expand `--data` arguments: files as given; a directory (an export folder)
/// contributes its `train.*` data files.
pub fn data_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| EngineError::io(p, e))?;
        if !meta.is_dir() {
            out.push(p.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| EngineError::io(p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with("train") && is_data_file(name)
            })
            .collect();
        if found.is_empty() {
            return Err(EngineError::InvalidRequest(format!(
                "{}: no train.jsonl, train.jsonl.gz or train.parquet in this folder",
                p.display()
            )));
        }
        found.sort();
        out.extend(found);
    }
    if out.is_empty() {
        return Err(EngineError::InvalidRequest("no data files given".into()));
    }
    Ok(out)
}

fn is_data_file(name: &str) -> bool {
    [".jsonl", ".jsonl.gz", ".json", ".parquet"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Read every row of every file. A file with no rows, or whose rows lack
/// `chosen`/`rejected`, is an error; a row with a null or malformed field is
/// a counted skip.
pub fn read_preferences(files: &[PathBuf]) -> Result<PreferenceData> {
    let mut data = PreferenceData::default();
    for f in files {
        let rows = read_rows(f)?;
        if rows.is_empty() {
            return Err(EngineError::InvalidRequest(format!(
                "{}: the file holds no rows",
                f.display()
            )));
        }
        let columns: Vec<String> = match &rows[0].1 {
            Json::Object(m) => m.keys().cloned().collect(),
            _ => vec![],
        };
        for needed in ["chosen", "rejected"] {
            if !columns.iter().any(|c| c == needed) {
                return Err(EngineError::InvalidRequest(format!(
                    "{}: rows need `chosen` and `rejected` columns (and optionally `prompt`); found {:?}",
                    f.display(),
                    columns
                )));
            }
        }
        for (row, value) in rows {
            let source = format!("{}:{row}", f.display());
            match parse_row(&value) {
                Ok(pair) => data.pairs.push(Preference { source, ..pair }),
                Err(reason) => data.skipped.push(Skipped { source, reason }),
            }
        }
    }
    Ok(data)
}

/// (1-based row number, row) for JSONL (plain or gzip) and Parquet.
fn read_rows(path: &Path) -> Result<Vec<(usize, Json)>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    if name.ends_with(".parquet") {
        return read_parquet(path, file);
    }
    let reader: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line = line.map_err(|e| EngineError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Json = serde_json::from_str(&line).map_err(|e| {
            EngineError::InvalidRequest(format!("{}:{}: not JSON: {e}", path.display(), i + 1))
        })?;
        out.push((i + 1, value));
    }
    Ok(out)
}

fn read_parquet(path: &Path, file: std::fs::File) -> Result<Vec<(usize, Json)>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bad = |e: parquet::errors::ParquetError| {
        EngineError::InvalidRequest(format!("{}: {e}", path.display()))
    };
    let reader = SerializedFileReader::new(file).map_err(bad)?;
    let mut out = Vec::new();
    for (i, row) in reader.get_row_iter(None).map_err(bad)?.enumerate() {
        out.push((i + 1, row.map_err(bad)?.to_json_value()));
    }
    Ok(out)
}

fn parse_turns(v: &Json, field: &str) -> std::result::Result<Turns, String> {
    match v {
        Json::String(s) => Ok(Turns::Text(s.clone())),
        Json::Array(items) => items
            .iter()
            .map(|m| {
                let role = m.get("role").and_then(Json::as_str);
                let content = m.get("content").and_then(Json::as_str);
                match (role, content) {
                    (Some(r), Some(c)) => Ok(Message {
                        role: r.to_string(),
                        content: c.to_string(),
                    }),
                    _ => Err(format!(
                        "`{field}` holds a message without role and content"
                    )),
                }
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Turns::Messages),
        Json::Null => Err(format!("`{field}` is null")),
        _ => Err(format!("`{field}` is neither text nor a list of messages")),
    }
}

fn parse_row(v: &Json) -> std::result::Result<Preference, String> {
    let field = |name: &str| parse_turns(v.get(name).unwrap_or(&Json::Null), name);
    let chosen = field("chosen")?;
    let rejected = field("rejected")?;
    let margin = match v.get("margin") {
        None | Some(Json::Null) => None,
        Some(m) => Some(m.as_f64().ok_or("`margin` is not a number")? as f32),
    };
    let (prompt, chosen, rejected) = match v.get("prompt") {
        Some(p) if !p.is_null() => (field("prompt")?, chosen, rejected),
        _ => extract_prompt(chosen, rejected),
    };
    let conversational = |t: &Turns| matches!(t, Turns::Messages(_));
    if conversational(&prompt) != conversational(&chosen)
        || conversational(&chosen) != conversational(&rejected)
    {
        return Err("`prompt`, `chosen` and `rejected` mix text and messages".into());
    }
    Ok(Preference {
        prompt,
        chosen,
        rejected,
        margin,
        source: String::new(),
    })
}

/// The implicit prompt: the shared leading messages (or text) of `chosen`
/// and `rejected`, as TRL's `extract_prompt` takes it.
fn extract_prompt(chosen: Turns, rejected: Turns) -> (Turns, Turns, Turns) {
    match (chosen, rejected) {
        (Turns::Messages(c), Turns::Messages(r)) => {
            let n = c.iter().zip(&r).take_while(|(a, b)| a == b).count();
            (
                Turns::Messages(c[..n].to_vec()),
                Turns::Messages(c[n..].to_vec()),
                Turns::Messages(r[n..].to_vec()),
            )
        }
        (Turns::Text(c), Turns::Text(r)) => {
            let mut n = c
                .char_indices()
                .zip(r.chars())
                .find(|((_, a), b)| a != b)
                .map_or(c.len().min(r.len()), |((i, _), _)| i);
            // A space before the point of divergence belongs to the completions.
            if c[..n].ends_with(' ') {
                n -= 1;
            }
            (
                Turns::Text(c[..n].to_string()),
                Turns::Text(c[n..].to_string()),
                Turns::Text(r[n..].to_string()),
            )
        }
        (c, r) => (Turns::Text(String::new()), c, r),
    }
}

/// Token ids of one pair: the prompt, and the chosen and rejected
/// completions that follow it (ending with EOS).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    pub margin: Option<f32>,
}

impl TokenizedPair {
    /// Longest of prompt+chosen and prompt+rejected.
    pub fn max_len(&self) -> usize {
        self.prompt.len() + self.chosen.len().max(self.rejected.len())
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Tokenize as TRL does: plain text gets the EOS token appended to each
/// completion and is tokenized as prompt+completion; messages go through the
/// chat template (the prompt with the generation prompt). The completion
/// starts where the prompt's ids and the full sequence's ids diverge.
pub fn tokenize(engine: &Engine, pair: &Preference) -> Result<TokenizedPair> {
    let (prompt, chosen, rejected) = match (&pair.prompt, &pair.chosen, &pair.rejected) {
        (Turns::Text(p), Turns::Text(c), Turns::Text(r)) => {
            let eos = engine.eos_token().map_or("", |t| t.text.as_str());
            let full = |completion: &str| -> Result<Vec<u32>> {
                let mut text = format!("{p}{completion}");
                if !eos.is_empty() && !text.ends_with(eos) {
                    text.push_str(eos);
                }
                engine.encode(&text)
            };
            (engine.encode(p)?, full(c)?, full(r)?)
        }
        (Turns::Messages(p), Turns::Messages(c), Turns::Messages(r)) => {
            let full = |completion: &[Message]| -> Result<Vec<u32>> {
                let all: Vec<Message> = p.iter().chain(completion).cloned().collect();
                engine.encode(&engine.apply_chat_template(&all, false)?)
            };
            let prompt = if p.is_empty() {
                vec![]
            } else {
                engine.encode(&engine.apply_chat_template(p, true)?)?
            };
            (prompt, full(c)?, full(r)?)
        }
        _ => {
            return Err(EngineError::InvalidRequest(format!(
                "{}: mixes text and messages",
                pair.source
            )))
        }
    };
    let n = common_prefix(&prompt, &chosen).min(common_prefix(&prompt, &rejected));
    Ok(TokenizedPair {
        prompt: prompt[..n].to_vec(),
        chosen: chosen[n..].to_vec(),
        rejected: rejected[n..].to_vec(),
        margin: pair.margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Turns {
        Turns::Text(s.into())
    }

    #[test]
    fn implicit_prompts_are_the_shared_prefix() {
        let v: Json =
            serde_json::json!({"chosen": "Q: sky? A: blue", "rejected": "Q: sky? A: green"});
        let p = parse_row(&v).unwrap();
        assert_eq!(
            (p.prompt, p.chosen, p.rejected),
            (text("Q: sky? A:"), text(" blue"), text(" green"))
        );
        let m = |r: &str, c: &str| serde_json::json!({"role": r, "content": c});
        let v = serde_json::json!({
            "chosen": [m("user", "hi"), m("assistant", "hello")],
            "rejected": [m("user", "hi"), m("assistant", "go away")],
        });
        let p = parse_row(&v).unwrap();
        let msg = |r: &str, c: &str| Message {
            role: r.into(),
            content: c.into(),
        };
        assert_eq!(p.prompt, Turns::Messages(vec![msg("user", "hi")]));
        assert_eq!(
            p.rejected,
            Turns::Messages(vec![msg("assistant", "go away")])
        );
    }

    #[test]
    fn malformed_rows_say_why() {
        let bad = |v: Json| parse_row(&v).unwrap_err();
        assert!(
            bad(serde_json::json!({"prompt": "p", "chosen": null, "rejected": "r"}))
                .contains("`chosen` is null")
        );
        assert!(
            bad(serde_json::json!({"prompt": "p", "chosen": 3, "rejected": "r"}))
                .contains("neither text")
        );
        assert!(bad(serde_json::json!({"prompt": "p", "chosen": [{"role": "assistant", "content": "x"}], "rejected": "r"}))
            .contains("mix"));
        assert!(bad(
            serde_json::json!({"prompt": "p", "chosen": "c", "rejected": "r", "margin": "big"})
        )
        .contains("margin"));
    }
}
