//! What a labeler sees and what they answer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{text_enum, Invalid, Message, Progress, RationalePolicy};

text_enum! {
    /// A labeler's answer; `a` and `b` mean the left and right response as shown.
    Choice { A => "a", B => "b", Tie => "tie", BothBad => "both_bad", Skip => "skip" }
}

/// The campaign settings a judgment is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgmentRules {
    pub allow_tie: bool,
    pub allow_both_bad: bool,
    pub strength_scale: i32,
    pub rationale: RationalePolicy,
}

pub const MAX_RATIONALE_CHARS: usize = 10_000;

/// `POST /api/v1/assignments/{id}/judgment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgmentInput {
    pub choice: Choice,
    #[serde(default)]
    pub strength: Option<i32>,
    #[serde(default)]
    pub rationale: Option<String>,
    pub client_request_id: String,
    #[serde(default)]
    pub time_on_task_ms: Option<i32>,
}

impl JudgmentInput {
    /// Checks the answer against the campaign's rules and normalises it: a blank rationale
    /// becomes none, and strength is dropped where it means nothing (tie, both bad, skip).
    pub fn validated(mut self, rules: &JudgmentRules) -> Result<Self, Invalid> {
        let id_len = self.client_request_id.len();
        if id_len == 0 || id_len > 200 {
            return Err(Invalid::new("client_request_id must have 1 to 200 bytes"));
        }
        match self.choice {
            Choice::Tie if !rules.allow_tie => {
                return Err(Invalid::new("this campaign does not allow ties"))
            }
            Choice::BothBad if !rules.allow_both_bad => {
                return Err(Invalid::new("this campaign does not allow \"both bad\""))
            }
            _ => {}
        }
        let decisive = matches!(self.choice, Choice::A | Choice::B);
        match (self.strength, rules.strength_scale) {
            (Some(_), 0) => return Err(Invalid::new("this campaign does not ask for strength")),
            (Some(s), max) if !(1..=max).contains(&s) => {
                return Err(Invalid(format!("strength must be 1 to {max}")))
            }
            _ => {}
        }
        if !decisive {
            self.strength = None;
        }
        self.rationale = self
            .rationale
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        match (&self.rationale, rules.rationale) {
            (Some(_), RationalePolicy::Off) => {
                return Err(Invalid::new("this campaign does not take rationales"))
            }
            (None, RationalePolicy::Required) if self.choice != Choice::Skip => {
                return Err(Invalid::new("this campaign requires a rationale"))
            }
            (Some(r), _) if r.chars().count() > MAX_RATIONALE_CHARS => {
                return Err(Invalid(format!(
                    "rationale is longer than {MAX_RATIONALE_CHARS} characters"
                )))
            }
            _ => {}
        }
        if matches!(self.time_on_task_ms, Some(t) if t < 0) {
            return Err(Invalid::new("time_on_task_ms must not be negative"));
        }
        Ok(self)
    }
}

/// The candidate that won, from the answer and the order the labeler saw.
pub fn winner(choice: Choice, shown_order: &[Uuid]) -> Option<Uuid> {
    match choice {
        Choice::A => shown_order.first().copied(),
        Choice::B => shown_order.get(1).copied(),
        Choice::Tie | Choice::BothBad | Choice::Skip => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownResponse {
    pub id: Uuid,
    pub text: String,
}

/// `GET /api/v1/campaigns/{id}/next`: responses in the order this labeler sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextItem {
    pub assignment_id: Uuid,
    pub campaign_id: Uuid,
    pub item_id: Uuid,
    pub prompt: Vec<Message>,
    pub responses: Vec<ShownResponse>,
    pub expires_at: String,
    pub progress: Progress,
}

/// The answer to a judgment submit; a repeated submit gets the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgmentAck {
    pub judgment_id: Uuid,
    pub assignment_id: Uuid,
    pub choice: Choice,
    pub winner_candidate_id: Option<Uuid>,
    /// False when this request repeated one already stored.
    pub created: bool,
    pub progress: Progress,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> JudgmentRules {
        JudgmentRules {
            allow_tie: true,
            allow_both_bad: false,
            strength_scale: 3,
            rationale: RationalePolicy::Optional,
        }
    }

    fn input(choice: Choice) -> JudgmentInput {
        JudgmentInput {
            choice,
            strength: None,
            rationale: None,
            client_request_id: "r1".into(),
            time_on_task_ms: Some(1200),
        }
    }

    #[test]
    fn winner_follows_shown_order() {
        let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(winner(Choice::A, &[y, x]), Some(y));
        assert_eq!(winner(Choice::B, &[y, x]), Some(x));
        assert_eq!(winner(Choice::Tie, &[y, x]), None);
    }

    #[test]
    fn rules_are_enforced() {
        assert!(input(Choice::BothBad).validated(&rules()).is_err());
        assert!(input(Choice::Tie).validated(&rules()).is_ok());
        let mut strong = input(Choice::A);
        strong.strength = Some(4);
        assert!(strong.clone().validated(&rules()).is_err());
        strong.strength = Some(3);
        assert_eq!(strong.validated(&rules()).unwrap().strength, Some(3));
        let mut tie = input(Choice::Tie);
        tie.strength = Some(2);
        assert_eq!(tie.validated(&rules()).unwrap().strength, None);
    }

    #[test]
    fn rationale_policy() {
        let mut required = rules();
        required.rationale = RationalePolicy::Required;
        let mut blank = input(Choice::A);
        blank.rationale = Some("   ".into());
        assert!(blank.clone().validated(&required).is_err());
        assert!(input(Choice::Skip).validated(&required).is_ok());
        blank.rationale = Some(" because ".into());
        assert_eq!(
            blank.validated(&required).unwrap().rationale.as_deref(),
            Some("because")
        );
        let mut off = rules();
        off.rationale = RationalePolicy::Off;
        let mut said = input(Choice::A);
        said.rationale = Some("x".into());
        assert!(said.validated(&off).is_err());
    }

    #[test]
    fn request_id_is_required() {
        let mut i = input(Choice::A);
        i.client_request_id.clear();
        assert!(i.validated(&rules()).is_err());
    }
}
