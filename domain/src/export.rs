//! Preference dataset export: what a researcher asks for, how several labelers' votes on one
//! item become one preference pair, and how a pair is written in each trainer's format.

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{text_enum, Invalid, Message};

text_enum! {
    /// The row layout of an export.
    ExportFormat {
        Trl => "trl",
        TrlConversational => "trl-conversational",
        HhRlhf => "hh-rlhf",
        Raw => "raw",
    }
}

text_enum! {
    FileType { Jsonl => "jsonl", Parquet => "parquet" }
}

text_enum! {
    /// How the votes of several labelers on one item become one preference.
    Aggregation {
        /// The label most votes gave (A, B, tie or both bad); an even split at the top has no
        /// consensus and is dropped.
        Majority => "majority",
        /// Bradley–Terry-style: A's share of the A/B/tie votes, a tie counting half each way.
        VoteShare => "vote-share",
    }
}

text_enum! {
    /// What happens to items whose consensus is a tie, or both bad.
    Keep { Drop => "drop", Keep => "keep" }
}

text_enum! {
    /// Extra columns a pair format may carry.
    PairColumn {
        Margin => "margin",
        PromptId => "prompt_id",
        ItemId => "item_id",
        Agreement => "agreement",
        NJudgments => "n_judgments",
        ChosenModel => "chosen_model",
        RejectedModel => "rejected_model",
    }
}

fn default_min_judgments() -> u32 {
    1
}

fn default_license() -> String {
    "other".into()
}

/// Everything that decides which rows an export writes, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    pub campaigns: Vec<Uuid>,
    pub format: ExportFormat,
    #[serde(default = "FileType::default_type")]
    pub file_type: FileType,
    /// Gzip JSONL files (`.jsonl.gz`); Parquet compresses on its own.
    #[serde(default)]
    pub gzip: bool,
    #[serde(default = "Aggregation::default_method")]
    pub aggregation: Aggregation,
    #[serde(default = "Keep::default_drop")]
    pub ties: Keep,
    #[serde(default = "Keep::default_drop")]
    pub both_bad: Keep,
    /// Judgments made at or after this time.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Judgments made before this time.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Items with fewer (non-skip) judgments are left out.
    #[serde(default = "default_min_judgments")]
    pub min_judgments: u32,
    /// Items whose consensus has a lower agreement (0..=1) are left out.
    #[serde(default)]
    pub min_agreement: f64,
    #[serde(default)]
    pub exclude_gold: bool,
    /// Leave out judgments of labelers whose account is disabled.
    #[serde(default)]
    pub exclude_disabled: bool,
    /// Share of prompts (0..1) written to the test split; 0 writes one file.
    #[serde(default)]
    pub test_fraction: f64,
    #[serde(default)]
    pub split_seed: u64,
    #[serde(default)]
    pub columns: Vec<PairColumn>,
    /// Raw format: labelers by e-mail instead of a pseudonym (admins only).
    #[serde(default)]
    pub reveal_labelers: bool,
    /// The license field of the dataset card.
    #[serde(default = "default_license")]
    pub license: String,
}

impl FileType {
    fn default_type() -> Self {
        FileType::Jsonl
    }
}

impl Aggregation {
    fn default_method() -> Self {
        Aggregation::Majority
    }
}

impl Keep {
    fn default_drop() -> Self {
        Keep::Drop
    }
}

impl ExportSpec {
    /// A spec with every filter off.
    pub fn new(campaigns: Vec<Uuid>, format: ExportFormat) -> Self {
        Self {
            campaigns,
            format,
            file_type: FileType::Jsonl,
            gzip: false,
            aggregation: Aggregation::Majority,
            ties: Keep::Drop,
            both_bad: Keep::Drop,
            since: None,
            until: None,
            min_judgments: 1,
            min_agreement: 0.0,
            exclude_gold: false,
            exclude_disabled: false,
            test_fraction: 0.0,
            split_seed: 0,
            columns: Vec::new(),
            reveal_labelers: false,
            license: default_license(),
        }
    }

    pub fn validated(mut self) -> Result<Self, Invalid> {
        self.campaigns.sort();
        self.campaigns.dedup();
        if self.campaigns.is_empty() {
            return Err(Invalid::new("name at least one campaign"));
        }
        if self.campaigns.len() > 100 {
            return Err(Invalid::new("at most 100 campaigns per export"));
        }
        if !(0.0..=1.0).contains(&self.min_agreement) {
            return Err(Invalid::new("min_agreement must be between 0 and 1"));
        }
        if !(0.0..1.0).contains(&self.test_fraction) {
            return Err(Invalid::new("test_fraction must be at least 0 and below 1"));
        }
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if since >= until {
                return Err(Invalid::new("since must be before until"));
            }
        }
        if self.gzip && self.file_type == FileType::Parquet {
            return Err(Invalid::new(
                "gzip applies to JSONL; Parquet files are compressed already",
            ));
        }
        let mut seen = Vec::new();
        self.columns.retain(|c| {
            let new = !seen.contains(c);
            seen.push(*c);
            new
        });
        self.license = self.license.trim().to_string();
        if self.license.is_empty()
            || self.license.len() > 100
            || self.license.chars().any(|c| c.is_control())
        {
            return Err(Invalid::new(
                "license must be 1 to 100 printable characters",
            ));
        }
        Ok(self)
    }

    /// The file names this export writes, in order (without the dataset card).
    pub fn file_names(&self) -> Vec<String> {
        let ext = match (self.file_type, self.gzip) {
            (FileType::Parquet, _) => "parquet",
            (FileType::Jsonl, true) => "jsonl.gz",
            (FileType::Jsonl, false) => "jsonl",
        };
        self.splits()
            .iter()
            .map(|split| format!("{}.{ext}", split.as_str()))
            .collect()
    }

    pub fn splits(&self) -> Vec<Split> {
        if self.test_fraction > 0.0 {
            vec![Split::Train, Split::Test]
        } else {
            vec![Split::Train]
        }
    }

    /// Which split a prompt falls in: a hash of the seed and the prompt id, so every pair of
    /// one prompt lands in the same split and the same seed always splits the same way.
    pub fn split_of(&self, prompt_id: Uuid) -> Split {
        if self.test_fraction <= 0.0 {
            return Split::Train;
        }
        let mut hasher = Sha256::new();
        hasher.update(self.split_seed.to_le_bytes());
        hasher.update(prompt_id.as_bytes());
        let digest = hasher.finalize();
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        let unit = (u64::from_le_bytes(head) >> 11) as f64 / (1u64 << 53) as f64;
        if unit < self.test_fraction {
            Split::Test
        } else {
            Split::Train
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// The non-skip votes on one item, with responses in import order (first, second).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Votes {
    pub first: u32,
    pub second: u32,
    pub tie: u32,
    pub both_bad: u32,
    /// Sum and count of the strengths given with votes for the first response.
    pub first_strength: (f64, u32),
    pub second_strength: (f64, u32),
}

impl Votes {
    pub fn total(&self) -> u32 {
        self.first + self.second + self.tie + self.both_bad
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The first response (import order) is preferred.
    First,
    Second,
    Tie,
    BothBad,
}

/// The consensus on one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub outcome: Outcome,
    /// Share of the votes that agree with the outcome, 0..=1.
    pub agreement: f64,
    /// Mean strength of the votes for the preferred response, where strength was asked.
    pub margin: Option<f64>,
}

/// Why an item wrote no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    TooFewJudgments,
    NoConsensus,
    LowAgreement,
    Tie,
    BothBad,
    /// The two responses read the same once whitespace is normalised: no preference to learn.
    IdenticalResponses,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooFewJudgments => "too few judgments",
            DropReason::NoConsensus => "no consensus",
            DropReason::LowAgreement => "agreement below the minimum",
            DropReason::Tie => "tie (dropped)",
            DropReason::BothBad => "both bad (dropped)",
            DropReason::IdenticalResponses => "identical responses",
        }
    }
}

fn mean((sum, n): (f64, u32)) -> Option<f64> {
    (n > 0).then(|| sum / f64::from(n))
}

/// Combines the votes on one item. `None` when there is no vote or no consensus.
pub fn aggregate(votes: &Votes, method: Aggregation) -> Option<Verdict> {
    let n = votes.total();
    if n == 0 {
        return None;
    }
    let share = |count: u32| f64::from(count) / f64::from(n);
    let verdict = |outcome: Outcome, agreement: f64| {
        let margin = match outcome {
            Outcome::First => mean(votes.first_strength),
            Outcome::Second => mean(votes.second_strength),
            Outcome::Tie | Outcome::BothBad => None,
        };
        Some(Verdict {
            outcome,
            agreement,
            margin,
        })
    };
    match method {
        Aggregation::Majority => {
            let counts = [
                (Outcome::First, votes.first),
                (Outcome::Second, votes.second),
                (Outcome::Tie, votes.tie),
                (Outcome::BothBad, votes.both_bad),
            ];
            let top = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
            let mut leaders = counts.iter().filter(|(_, c)| *c == top);
            let (outcome, count) = leaders.next()?;
            if leaders.next().is_some() {
                return None;
            }
            verdict(*outcome, share(*count))
        }
        Aggregation::VoteShare => {
            let comparable = votes.first + votes.second + votes.tie;
            if votes.both_bad > comparable {
                return verdict(Outcome::BothBad, share(votes.both_bad));
            }
            if comparable == 0 {
                return None;
            }
            let first_share =
                (f64::from(votes.first) + 0.5 * f64::from(votes.tie)) / f64::from(comparable);
            if first_share > 0.5 {
                verdict(Outcome::First, first_share)
            } else if first_share < 0.5 {
                verdict(Outcome::Second, 1.0 - first_share)
            } else {
                verdict(Outcome::Tie, 0.5)
            }
        }
    }
}

/// Applies the spec's filters to an item's votes: the verdict to export, or why not.
pub fn judge_item(spec: &ExportSpec, votes: &Votes) -> Result<Verdict, DropReason> {
    if votes.total() < spec.min_judgments.max(1) {
        return Err(DropReason::TooFewJudgments);
    }
    let verdict = aggregate(votes, spec.aggregation).ok_or(DropReason::NoConsensus)?;
    if verdict.agreement + 1e-12 < spec.min_agreement {
        return Err(DropReason::LowAgreement);
    }
    match (verdict.outcome, spec.ties, spec.both_bad) {
        (Outcome::Tie, Keep::Drop, _) => Err(DropReason::Tie),
        (Outcome::BothBad, _, Keep::Drop) => Err(DropReason::BothBad),
        _ => Ok(verdict),
    }
}

/// One preference pair, ready to be written in any pair format.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRecord {
    pub prompt_id: Uuid,
    pub item_id: Uuid,
    pub messages: Vec<Message>,
    pub chosen: String,
    pub rejected: String,
    pub chosen_model: Option<String>,
    pub rejected_model: Option<String>,
    pub verdict: Verdict,
    pub n_judgments: u32,
}

impl PairRecord {
    /// Orients an item's two responses by its verdict; ties and both-bad keep import order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        prompt_id: Uuid,
        item_id: Uuid,
        messages: Vec<Message>,
        first: (String, Option<String>),
        second: (String, Option<String>),
        verdict: Verdict,
        n_judgments: u32,
    ) -> Self {
        let ((chosen, chosen_model), (rejected, rejected_model)) = match verdict.outcome {
            Outcome::Second => (second, first),
            _ => (first, second),
        };
        Self {
            prompt_id,
            item_id,
            messages,
            chosen,
            rejected,
            chosen_model,
            rejected_model,
            verdict,
            n_judgments,
        }
    }
}

/// A single user turn is written as its text; anything else as a role-labelled transcript.
pub fn plain_prompt(messages: &[Message]) -> String {
    match messages {
        [only] if only.role == "user" => only.content.clone(),
        _ => {
            let mut text = String::new();
            for message in messages {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&capitalised(&message.role));
                text.push_str(": ");
                text.push_str(&message.content);
            }
            text.push_str("\n\nAssistant:");
            text
        }
    }
}

fn capitalised(role: &str) -> String {
    let mut chars = role.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The Anthropic HH-RLHF transcript of a conversation followed by one assistant answer.
/// HH has only Human and Assistant turns: system text opens the first Human turn.
pub fn hh_transcript(messages: &[Message], answer: &str) -> String {
    let mut text = String::new();
    let mut pending_system = String::new();
    for message in messages {
        match message.role.as_str() {
            "system" => {
                if !pending_system.is_empty() {
                    pending_system.push_str("\n\n");
                }
                pending_system.push_str(&message.content);
            }
            "assistant" => {
                text.push_str("\n\nAssistant: ");
                text.push_str(&message.content);
            }
            _ => {
                text.push_str("\n\nHuman: ");
                if !pending_system.is_empty() {
                    text.push_str(&pending_system);
                    text.push_str("\n\n");
                    pending_system.clear();
                }
                text.push_str(&message.content);
            }
        }
    }
    text.push_str("\n\nAssistant: ");
    text.push_str(answer);
    text
}

/// The value of an optional column for a pair, as JSON.
pub fn column_value(record: &PairRecord, column: PairColumn) -> serde_json::Value {
    use serde_json::Value;
    match column {
        PairColumn::Margin => record
            .verdict
            .margin
            .map_or(Value::Null, |m| serde_json::json!(m)),
        PairColumn::PromptId => Value::String(record.prompt_id.to_string()),
        PairColumn::ItemId => Value::String(record.item_id.to_string()),
        PairColumn::Agreement => serde_json::json!(record.verdict.agreement),
        PairColumn::NJudgments => serde_json::json!(record.n_judgments),
        PairColumn::ChosenModel => record
            .chosen_model
            .clone()
            .map_or(Value::Null, Value::String),
        PairColumn::RejectedModel => record
            .rejected_model
            .clone()
            .map_or(Value::Null, Value::String),
    }
}

/// Whether pair rows carry an `outcome` column: only when ties or both-bad rows are kept,
/// so a trainer can tell them from real preferences.
pub fn has_outcome_column(spec: &ExportSpec) -> bool {
    spec.ties == Keep::Keep || spec.both_bad == Keep::Keep
}

/// A pair in one format, serialised with a fixed key order.
pub struct PairRow<'a> {
    pub spec: &'a ExportSpec,
    pub record: &'a PairRecord,
}

#[derive(Serialize)]
struct AssistantTurn<'a> {
    role: &'static str,
    content: &'a str,
}

impl Serialize for PairRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let record = self.record;
        let mut map = serializer.serialize_map(None)?;
        match self.spec.format {
            ExportFormat::Trl | ExportFormat::Raw => {
                map.serialize_entry("prompt", &plain_prompt(&record.messages))?;
                map.serialize_entry("chosen", &record.chosen)?;
                map.serialize_entry("rejected", &record.rejected)?;
            }
            ExportFormat::TrlConversational => {
                map.serialize_entry("prompt", &record.messages)?;
                map.serialize_entry(
                    "chosen",
                    &[AssistantTurn {
                        role: "assistant",
                        content: &record.chosen,
                    }],
                )?;
                map.serialize_entry(
                    "rejected",
                    &[AssistantTurn {
                        role: "assistant",
                        content: &record.rejected,
                    }],
                )?;
            }
            ExportFormat::HhRlhf => {
                map.serialize_entry("chosen", &hh_transcript(&record.messages, &record.chosen))?;
                map.serialize_entry(
                    "rejected",
                    &hh_transcript(&record.messages, &record.rejected),
                )?;
            }
        }
        if has_outcome_column(self.spec) {
            let outcome = match record.verdict.outcome {
                Outcome::First | Outcome::Second => "preferred",
                Outcome::Tie => "tie",
                Outcome::BothBad => "both_bad",
            };
            map.serialize_entry("outcome", outcome)?;
        }
        for column in &self.spec.columns {
            map.serialize_entry(column.as_str(), &column_value(record, *column))?;
        }
        map.end()
    }
}

/// One judgment in the `raw` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawJudgment {
    pub judgment_id: Uuid,
    pub campaign_id: Uuid,
    pub item_id: Uuid,
    pub prompt_id: Uuid,
    /// A stable pseudonym, or the e-mail when the export reveals labelers.
    pub labeler: String,
    pub created_at: String,
    pub choice: String,
    pub chosen_candidate_id: Option<Uuid>,
    /// Candidate ids left to right as the labeler saw them.
    pub shown_order: Vec<Uuid>,
    pub strength: Option<i32>,
    pub rationale: Option<String>,
    pub time_on_task_ms: Option<i32>,
    pub is_gold: bool,
    pub prompt: Vec<Message>,
    pub first_candidate_id: Uuid,
    pub first_text: String,
    /// The candidate's metadata (model, sampling, ...) as a JSON object in text.
    pub first_metadata: String,
    pub second_candidate_id: Uuid,
    pub second_text: String,
    pub second_metadata: String,
}

/// Counts a dataset card reports, gathered while the files are written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExportCounts {
    pub items_seen: u64,
    pub rows: u64,
    pub rows_by_split: Vec<(Split, u64)>,
    pub outcomes: Vec<(Outcome, u64)>,
    pub dropped: Vec<(DropReason, u64)>,
    /// Non-skip judgments behind the rows written (raw: every judgment written).
    pub judgments: u64,
    /// Decisive judgments behind the rows where the left-shown response won, and all of them.
    pub left_wins: u64,
    pub decisive: u64,
    pub agreement_sum: f64,
    pub prompts_by_split: Vec<(Split, u64)>,
}

fn bump<K: PartialEq + Copy>(list: &mut Vec<(K, u64)>, key: K, by: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += by,
        None => list.push((key, by)),
    }
}

impl ExportCounts {
    pub fn row(&mut self, split: Split, verdict: &Verdict, n_judgments: u32) {
        self.rows += 1;
        bump(&mut self.rows_by_split, split, 1);
        bump(&mut self.outcomes, verdict.outcome, 1);
        self.judgments += u64::from(n_judgments);
        self.agreement_sum += verdict.agreement;
    }

    pub fn raw_row(&mut self, split: Split) {
        self.rows += 1;
        self.judgments += 1;
        bump(&mut self.rows_by_split, split, 1);
    }

    pub fn dropped(&mut self, reason: DropReason) {
        bump(&mut self.dropped, reason, 1);
    }

    pub fn positions(&mut self, left_wins: u64, decisive: u64) {
        self.left_wins += left_wins;
        self.decisive += decisive;
    }

    pub fn prompt(&mut self, split: Split) {
        bump(&mut self.prompts_by_split, split, 1);
    }

    pub fn rows_in(&self, split: Split) -> u64 {
        self.rows_by_split
            .iter()
            .find(|(s, _)| *s == split)
            .map_or(0, |(_, n)| *n)
    }

    pub fn mean_agreement(&self) -> Option<f64> {
        let pairs: u64 = self.outcomes.iter().map(|(_, n)| n).sum();
        (pairs > 0).then(|| self.agreement_sum / pairs as f64)
    }

    /// Share of decisive judgments won by the response shown on the left (0.5 is unbiased).
    pub fn left_win_rate(&self) -> Option<f64> {
        (self.decisive > 0).then(|| self.left_wins as f64 / self.decisive as f64)
    }
}

/// A written file, as the card and the export record list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// What a dataset card says besides the counts.
pub struct CardFacts<'a> {
    pub title: &'a str,
    pub campaigns: &'a [(Uuid, String)],
    pub spec: &'a ExportSpec,
    pub files: &'a [ExportFile],
    pub counts: &'a ExportCounts,
    pub created_at: DateTime<Utc>,
    /// The `dataset_info.features` YAML list (two-space indented lines), so `load_dataset`
    /// casts every split to one schema even where a column is all null in one file.
    pub features_yaml: &'a str,
}

fn card_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn yaml_quoted(text: &str) -> String {
    serde_json::to_string(&card_line(text)).unwrap_or_else(|_| "\"\"".into())
}

/// The `README.md` beside the files: a Hugging Face dataset card (YAML header with the
/// license and the data files per split, so `load_dataset` on the folder finds them).
pub fn dataset_card(facts: &CardFacts) -> String {
    use std::fmt::Write;
    let spec = facts.spec;
    let counts = facts.counts;
    let mut card = String::new();
    let _ = writeln!(card, "---");
    let _ = writeln!(card, "license: {}", yaml_quoted(&spec.license));
    let _ = writeln!(card, "configs:\n- config_name: default\n  data_files:");
    for (split, file) in spec.splits().iter().zip(facts.files) {
        let _ = writeln!(
            card,
            "  - split: {}\n    path: {}",
            split.as_str(),
            yaml_quoted(&file.name)
        );
    }
    let _ = writeln!(card, "dataset_info:\n  features:");
    card.push_str(facts.features_yaml);
    let _ = writeln!(card, "tags:\n- pairwise\n- preference\n- rlhf\n---\n");
    let _ = writeln!(card, "# {}\n", card_line(facts.title));
    let _ = writeln!(
        card,
        "Preference data exported by Pairwise on {} in the `{}` format ({}).\n",
        facts.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        spec.format,
        match spec.format {
            ExportFormat::Trl => "TRL standard: prompt, chosen, rejected as text",
            ExportFormat::TrlConversational =>
                "TRL conversational: prompt as a message list, chosen and rejected as one assistant turn",
            ExportFormat::HhRlhf => "Anthropic HH-RLHF: chosen and rejected transcripts",
            ExportFormat::Raw => "every judgment, one per row",
        }
    );
    let _ = writeln!(card, "## Source campaigns\n");
    for (id, name) in facts.campaigns {
        let _ = writeln!(card, "- {} (`{id}`)", card_line(name));
    }
    let _ = writeln!(card, "\n## Filters\n");
    let _ = writeln!(card, "| setting | value |\n|---|---|");
    let rows: Vec<(&str, String)> = vec![
        ("aggregation", spec.aggregation.to_string()),
        ("ties", spec.ties.to_string()),
        ("both bad", spec.both_bad.to_string()),
        (
            "judged since",
            spec.since.map_or("any time".into(), |t| t.to_rfc3339()),
        ),
        (
            "judged before",
            spec.until.map_or("any time".into(), |t| t.to_rfc3339()),
        ),
        ("min judgments per item", spec.min_judgments.to_string()),
        ("min agreement", format!("{}", spec.min_agreement)),
        ("exclude gold items", spec.exclude_gold.to_string()),
        (
            "exclude disabled labelers",
            spec.exclude_disabled.to_string(),
        ),
        (
            "test split",
            if spec.test_fraction > 0.0 {
                format!(
                    "{} of prompts, seed {}",
                    spec.test_fraction, spec.split_seed
                )
            } else {
                "none".into()
            },
        ),
        (
            "extra columns",
            if spec.columns.is_empty() {
                "none".into()
            } else {
                spec.columns
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(card, "| {name} | {} |", card_line(&value));
    }
    let _ = writeln!(card, "\n## Counts\n");
    let _ = writeln!(card, "| | count |\n|---|---|");
    let _ = writeln!(card, "| rows | {} |", counts.rows);
    for split in spec.splits() {
        let _ = writeln!(
            card,
            "| rows in {} | {} |",
            split.as_str(),
            counts.rows_in(split)
        );
    }
    for (split, n) in &counts.prompts_by_split {
        let _ = writeln!(card, "| prompts in {} | {n} |", split.as_str());
    }
    let _ = writeln!(card, "| judgments behind the rows | {} |", counts.judgments);
    if spec.format != ExportFormat::Raw {
        let _ = writeln!(card, "| items considered | {} |", counts.items_seen);
        for (reason, n) in &counts.dropped {
            let _ = writeln!(card, "| items dropped: {} | {n} |", reason.as_str());
        }
        let _ = writeln!(card, "\n## Label distribution\n");
        let _ = writeln!(card, "| consensus | rows |\n|---|---|");
        for outcome in [
            Outcome::First,
            Outcome::Second,
            Outcome::Tie,
            Outcome::BothBad,
        ] {
            let n = counts
                .outcomes
                .iter()
                .find(|(o, _)| *o == outcome)
                .map_or(0, |(_, n)| *n);
            let label = match outcome {
                Outcome::First => "first response (import order) preferred",
                Outcome::Second => "second response (import order) preferred",
                Outcome::Tie => "tie",
                Outcome::BothBad => "both bad",
            };
            let _ = writeln!(card, "| {label} | {n} |");
        }
        let _ = writeln!(card, "\n## Agreement\n");
        match counts.mean_agreement() {
            Some(a) => {
                let _ = writeln!(
                    card,
                    "Mean share of votes agreeing with the exported consensus: {a:.4}."
                );
            }
            None => {
                let _ = writeln!(card, "No rows, so no agreement figure.");
            }
        }
    }
    let _ = writeln!(card, "\n## Position bias\n");
    match counts.left_win_rate() {
        Some(rate) => {
            let _ = writeln!(
                card,
                "Of {} decisive judgments, the response shown on the left won {:.4} \
                 (0.5 means no position bias; left/right order was randomised per assignment).",
                counts.decisive, rate
            );
        }
        None => {
            let _ = writeln!(card, "No decisive judgments.");
        }
    }
    let _ = writeln!(card, "\n## Files\n");
    let _ = writeln!(card, "| file | rows | bytes | sha256 |\n|---|---|---|---|");
    for file in facts.files {
        let _ = writeln!(
            card,
            "| {} | {} | {} | `{}` |",
            file.name, file.rows, file.bytes, file.sha256
        );
    }
    card
}

text_enum! {
    ExportStatus {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
        // Done once; its files were removed after the retention period.
        Expired => "expired",
    }
}

/// An export as the API and the UI show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: String,
    pub spec: ExportSpec,
    pub status: ExportStatus,
    /// Items (or judgments, for raw) processed so far, of about `total`.
    pub done: i64,
    pub total: Option<i64>,
    pub rows: Option<i64>,
    /// The data files and the dataset card, with their sha256.
    pub files: Vec<ExportFile>,
    pub error: Option<String>,
    pub finished_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn votes(first: u32, second: u32, tie: u32, both_bad: u32) -> Votes {
        Votes {
            first,
            second,
            tie,
            both_bad,
            ..Votes::default()
        }
    }

    fn user(text: &str) -> Message {
        Message {
            role: "user".into(),
            content: text.into(),
        }
    }

    #[test]
    fn majority_needs_a_unique_leader() {
        let v = aggregate(&votes(2, 1, 0, 0), Aggregation::Majority).unwrap();
        assert_eq!(v.outcome, Outcome::First);
        assert!((v.agreement - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(aggregate(&votes(1, 1, 0, 0), Aggregation::Majority), None);
        assert_eq!(
            aggregate(&votes(0, 1, 2, 0), Aggregation::Majority).map(|v| v.outcome),
            Some(Outcome::Tie)
        );
        assert_eq!(aggregate(&votes(0, 0, 0, 0), Aggregation::Majority), None);
    }

    #[test]
    fn vote_share_counts_ties_half() {
        // first: 1 + 0.5, second: 0 + 0.5 → 0.75 for the first.
        let v = aggregate(&votes(1, 0, 1, 0), Aggregation::VoteShare).unwrap();
        assert_eq!(v.outcome, Outcome::First);
        assert!((v.agreement - 0.75).abs() < 1e-12);
        let v = aggregate(&votes(1, 1, 0, 0), Aggregation::VoteShare).unwrap();
        assert_eq!(v.outcome, Outcome::Tie);
        let v = aggregate(&votes(0, 1, 0, 2), Aggregation::VoteShare).unwrap();
        assert_eq!(v.outcome, Outcome::BothBad);
        let v = aggregate(&votes(1, 3, 0, 0), Aggregation::VoteShare).unwrap();
        assert_eq!((v.outcome, v.agreement), (Outcome::Second, 0.75));
    }

    #[test]
    fn margin_is_the_winners_mean_strength() {
        let v = Votes {
            first: 2,
            second: 1,
            first_strength: (5.0, 2),
            second_strength: (3.0, 1),
            ..Votes::default()
        };
        assert_eq!(
            aggregate(&v, Aggregation::Majority).unwrap().margin,
            Some(2.5)
        );
    }

    #[test]
    fn filters_drop_with_a_reason() {
        let mut spec = ExportSpec::new(vec![Uuid::nil()], ExportFormat::Trl);
        spec.min_judgments = 2;
        assert_eq!(
            judge_item(&spec, &votes(1, 0, 0, 0)),
            Err(DropReason::TooFewJudgments)
        );
        spec.min_agreement = 0.7;
        assert_eq!(
            judge_item(&spec, &votes(2, 1, 0, 0)),
            Err(DropReason::LowAgreement)
        );
        spec.min_agreement = 0.0;
        assert_eq!(judge_item(&spec, &votes(0, 0, 2, 0)), Err(DropReason::Tie));
        assert_eq!(
            judge_item(&spec, &votes(0, 0, 0, 2)),
            Err(DropReason::BothBad)
        );
        spec.ties = Keep::Keep;
        assert_eq!(
            judge_item(&spec, &votes(0, 0, 2, 0)).map(|v| v.outcome),
            Ok(Outcome::Tie)
        );
    }

    #[test]
    fn split_is_deterministic_and_near_the_fraction() {
        let mut spec = ExportSpec::new(vec![Uuid::nil()], ExportFormat::Trl);
        spec.test_fraction = 0.2;
        spec.split_seed = 7;
        let ids: Vec<Uuid> = (0..5000u128).map(Uuid::from_u128).collect();
        let tests = ids
            .iter()
            .filter(|id| spec.split_of(**id) == Split::Test)
            .count();
        assert!((800..1200).contains(&tests), "{tests} of 5000 in test");
        assert!(ids
            .iter()
            .all(|id| spec.split_of(*id) == spec.split_of(*id)));
        let mut other = spec.clone();
        other.split_seed = 8;
        assert!(ids
            .iter()
            .any(|id| spec.split_of(*id) != other.split_of(*id)));
    }

    #[test]
    fn prompts_render_per_format() {
        assert_eq!(plain_prompt(&[user("Hi")]), "Hi");
        let convo = vec![
            Message {
                role: "system".into(),
                content: "Be brief.".into(),
            },
            user("Hi"),
            Message {
                role: "assistant".into(),
                content: "Hello".into(),
            },
            user("Bye?"),
        ];
        assert_eq!(
            plain_prompt(&convo),
            "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello\n\nUser: Bye?\n\nAssistant:"
        );
        assert_eq!(
            hh_transcript(&convo, "Bye."),
            "\n\nHuman: Be brief.\n\nHi\n\nAssistant: Hello\n\nHuman: Bye?\n\nAssistant: Bye."
        );
    }

    #[test]
    fn rows_serialise_in_key_order() {
        let mut spec = ExportSpec::new(vec![Uuid::nil()], ExportFormat::TrlConversational);
        spec.columns = vec![PairColumn::Margin, PairColumn::NJudgments];
        let record = PairRecord::new(
            Uuid::nil(),
            Uuid::nil(),
            vec![user("Q")],
            ("one".into(), None),
            ("two".into(), Some("m2".into())),
            Verdict {
                outcome: Outcome::Second,
                agreement: 1.0,
                margin: Some(2.0),
            },
            1,
        );
        let json = serde_json::to_string(&PairRow {
            spec: &spec,
            record: &record,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"prompt":[{"role":"user","content":"Q"}],"chosen":[{"role":"assistant","content":"two"}],"rejected":[{"role":"assistant","content":"one"}],"margin":2.0,"n_judgments":1}"#
        );
        spec.format = ExportFormat::HhRlhf;
        spec.ties = Keep::Keep;
        let json = serde_json::to_string(&PairRow {
            spec: &spec,
            record: &record,
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"chosen":"\n\nHuman: Q\n\nAssistant: two","rejected":"\n\nHuman: Q\n\nAssistant: one","outcome":"preferred","margin":2.0,"n_judgments":1}"#
        );
    }

    #[test]
    fn spec_validation() {
        let spec = ExportSpec::new(vec![], ExportFormat::Trl);
        assert!(spec.validated().is_err());
        let mut spec = ExportSpec::new(vec![Uuid::nil()], ExportFormat::Trl);
        spec.file_type = FileType::Parquet;
        spec.gzip = true;
        assert!(spec.validated().is_err());
        let mut spec = ExportSpec::new(vec![Uuid::nil()], ExportFormat::Trl);
        spec.test_fraction = 1.0;
        assert!(spec.validated().is_err());
        let spec: ExportSpec = serde_json::from_str(
            r#"{"campaigns":["00000000-0000-0000-0000-000000000000"],"format":"hh-rlhf"}"#,
        )
        .unwrap();
        assert_eq!(spec.format, ExportFormat::HhRlhf);
        assert_eq!(spec.min_judgments, 1);
        assert_eq!(spec.file_names(), vec!["train.jsonl"]);
    }
}
