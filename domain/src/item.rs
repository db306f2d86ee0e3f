//! The item browser: a campaign's items with their judgments, filtered and paged by cursor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{text_enum, Choice, Invalid, Message};

text_enum! {
    /// How far an item is: no judgment yet, some, or as many as the campaign's overlap
    /// (skips do not count).
    ItemStatus { Unjudged => "unjudged", Partial => "partial", Complete => "complete" }
}

impl ItemStatus {
    pub fn of(judgments: i64, overlap: i32) -> Self {
        if judgments == 0 {
            ItemStatus::Unjudged
        } else if judgments < i64::from(overlap) {
            ItemStatus::Partial
        } else {
            ItemStatus::Complete
        }
    }
}

text_enum! {
    /// Items judged at least twice: all judgments the same, or not.
    AgreementFilter { Unanimous => "unanimous", Disputed => "disputed" }
}

/// Most items one page of the browser holds.
pub const MAX_ITEMS_PAGE: u32 = 200;
/// Items a page holds unless the caller says otherwise.
pub const DEFAULT_ITEMS_PAGE: u32 = 50;

/// `GET /api/v1/campaigns/{id}/items`: every field optional; an empty one (`status=`) is
/// the same as a missing one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    /// Text to find in the prompt or any response, case-insensitively.
    #[serde(default)]
    pub q: Option<String>,
    #[serde(default, deserialize_with = "blank_as_none")]
    pub status: Option<ItemStatus>,
    #[serde(default, deserialize_with = "blank_as_none")]
    pub agreement: Option<AgreementFilter>,
    #[serde(default, deserialize_with = "blank_as_none")]
    pub gold: Option<bool>,
    /// The `next_cursor` of the page before.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "blank_as_none")]
    pub limit: Option<u32>,
}

/// A query parameter read from its text, where an empty value means "not given".
fn blank_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use serde::de::Error;
    match Option::<String>::deserialize(d)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(D::Error::custom),
    }
}

impl ItemQuery {
    /// The search text, trimmed; `None` when empty.
    pub fn search(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }

    /// The position after which this page starts (0: from the first item).
    pub fn after(&self) -> Result<i64, Invalid> {
        match self.cursor.as_deref().map(str::trim) {
            None | Some("") => Ok(0),
            Some(cursor) => cursor
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| Invalid(format!("cursor {cursor:?} is not one this API gave"))),
        }
    }

    pub fn page_size(&self) -> Result<u32, Invalid> {
        match self.limit {
            None => Ok(DEFAULT_ITEMS_PAGE),
            Some(n) if (1..=MAX_ITEMS_PAGE).contains(&n) => Ok(n),
            Some(n) => Err(Invalid(format!(
                "limit {n} is outside 1..={MAX_ITEMS_PAGE}"
            ))),
        }
    }
}

/// One row of the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemSummary {
    pub id: Uuid,
    /// The prompt's last user turn, cut to [`PROMPT_EXCERPT_CHARS`].
    pub prompt: String,
    pub is_gold: bool,
    pub status: ItemStatus,
    /// Judgments other than skips.
    pub judgments: i64,
    pub skips: i64,
    /// The share of judgments that agree with the most common answer; `None` below two.
    pub agreement: Option<f64>,
    pub created_at: String,
}

pub const PROMPT_EXCERPT_CHARS: usize = 200;

/// The last user turn of a conversation (else its last turn), cut to `chars` characters.
pub fn prompt_excerpt(messages: &[Message], chars: usize) -> String {
    let turn = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .or(messages.last())
        .map(|m| m.content.trim())
        .unwrap_or_default();
    match turn.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &turn[..end]),
        None => turn.to_string(),
    }
}

/// The share of `total` answers that agree with the most common one (`top` of them);
/// `None` below two answers.
pub fn agreement(top: i64, total: i64) -> Option<f64> {
    (total >= 2).then(|| top as f64 / total as f64)
}

/// `GET /api/v1/campaigns/{id}/items` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemPage {
    pub items: Vec<ItemSummary>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A response of an item, in the item's own order (labelers each saw their shown order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResponse {
    pub id: Uuid,
    pub text: String,
    /// What the import or the generation recorded (the model, for instance).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// One judgment on an item, the labeler by pseudonym (admins also see the e-mail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemJudgment {
    pub id: Uuid,
    pub labeler: String,
    pub email: Option<String>,
    pub choice: Choice,
    /// The preferred response (A or B resolved through the order the labeler saw).
    pub winner_candidate_id: Option<Uuid>,
    /// Response ids left to right as this labeler saw them.
    pub shown_order: Vec<Uuid>,
    pub strength: Option<i32>,
    pub rationale: Option<String>,
    pub time_on_task_ms: Option<i32>,
    pub created_at: String,
    /// When the labeler last changed the answer (within the campaign's undo window).
    pub revised_at: Option<String>,
    /// The answers it replaced, oldest first.
    pub revisions: Vec<ReplacedAnswer>,
}

/// An answer its labeler changed afterwards, as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplacedAnswer {
    pub choice: Choice,
    pub winner_candidate_id: Option<Uuid>,
    pub strength: Option<i32>,
    pub rationale: Option<String>,
    pub answered_at: String,
    pub replaced_at: String,
}

/// `GET /api/v1/items/{id}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemDetail {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub prompt: Vec<Message>,
    pub responses: Vec<ItemResponse>,
    pub is_gold: bool,
    /// A gold item's known answer: the better response's id, or `None` for a tie.
    pub gold_candidate_id: Option<Uuid>,
    pub status: ItemStatus,
    pub agreement: Option<f64>,
    pub judgments: Vec<ItemJudgment>,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Message {
        Message {
            role: "user".into(),
            content: text.into(),
        }
    }

    #[test]
    fn status_counts_judgments_against_the_overlap() {
        assert_eq!(ItemStatus::of(0, 3), ItemStatus::Unjudged);
        assert_eq!(ItemStatus::of(2, 3), ItemStatus::Partial);
        assert_eq!(ItemStatus::of(3, 3), ItemStatus::Complete);
        assert_eq!(ItemStatus::of(5, 3), ItemStatus::Complete);
    }

    #[test]
    fn agreement_is_the_top_answers_share_from_two_judgments() {
        assert_eq!(agreement(0, 0), None);
        assert_eq!(agreement(1, 1), None);
        assert_eq!(agreement(2, 2), Some(1.0));
        assert_eq!(agreement(3, 4), Some(0.75));
        // Split three ways, the top answer holds a third, not the rest's two thirds.
        assert_eq!(agreement(1, 3), Some(1.0 / 3.0));
    }

    #[test]
    fn excerpt_takes_the_last_user_turn_and_cuts_on_characters() {
        let assistant = Message {
            role: "assistant".into(),
            content: "earlier answer".into(),
        };
        let messages = [user("first"), assistant, user("  ünïcode question  ")];
        assert_eq!(prompt_excerpt(&messages, 200), "ünïcode question");
        assert_eq!(prompt_excerpt(&messages, 3), "ünï…");
        assert_eq!(prompt_excerpt(&[], 10), "");
    }

    #[test]
    fn blank_parameters_are_missing_ones() {
        let query: ItemQuery = serde_json::from_str(
            r#"{"q": "", "status": "", "gold": "true", "limit": "20", "agreement": "disputed"}"#,
        )
        .unwrap();
        assert_eq!(query.search(), None);
        assert_eq!(query.status, None);
        assert_eq!(query.gold, Some(true));
        assert_eq!(query.limit, Some(20));
        assert_eq!(query.agreement, Some(AgreementFilter::Disputed));
        assert!(serde_json::from_str::<ItemQuery>(r#"{"status": "done"}"#).is_err());
    }

    #[test]
    fn cursor_and_limit_are_checked() {
        let mut query = ItemQuery::default();
        assert_eq!(query.after(), Ok(0));
        assert_eq!(query.page_size(), Ok(DEFAULT_ITEMS_PAGE));
        query.cursor = Some("41".into());
        assert_eq!(query.after(), Ok(41));
        query.cursor = Some("abc".into());
        assert!(query.after().is_err());
        query.limit = Some(0);
        assert!(query.page_size().is_err());
        query.limit = Some(MAX_ITEMS_PAGE + 1);
        assert!(query.page_size().is_err());
    }
}
