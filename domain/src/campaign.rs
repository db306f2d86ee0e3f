//! Campaigns: settings, status life cycle and the figures shown about them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{text_enum, Invalid, MemberRole};

text_enum! {
    /// draft → active ⇄ paused → closed; a draft may be closed unused.
    CampaignStatus { Draft => "draft", Active => "active", Paused => "paused", Closed => "closed" }
}

impl CampaignStatus {
    pub fn can_become(self, next: CampaignStatus) -> bool {
        use CampaignStatus::*;
        matches!(
            (self, next),
            (Draft, Active)
                | (Active, Paused)
                | (Paused, Active)
                | (Draft | Active | Paused, Closed)
        )
    }

    /// Whether labelers receive new items.
    pub fn hands_out_items(self) -> bool {
        self == CampaignStatus::Active
    }

    /// Whether judgments on already leased items are still taken (pausing loses no work).
    pub fn accepts_judgments(self) -> bool {
        matches!(self, CampaignStatus::Active | CampaignStatus::Paused)
    }
}

text_enum! {
    /// Whether labelers are asked to explain their choice.
    RationalePolicy { Off => "off", Optional => "optional", Required => "required" }
}

text_enum! {
    /// How candidates are compared. Only pairwise exists today.
    CampaignMode { Pairwise => "pairwise" }
}

pub const MAX_OVERLAP: i32 = 100;
pub const MAX_STRENGTH_SCALE: i32 = 10;

/// Everything an admin sets when creating a campaign; also the API body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    #[serde(default)]
    pub guidelines: String,
    #[serde(default = "default_mode")]
    pub mode: CampaignMode,
    #[serde(default = "default_overlap")]
    pub overlap: i32,
    #[serde(default = "yes")]
    pub allow_tie: bool,
    #[serde(default = "yes")]
    pub allow_both_bad: bool,
    /// 0 turns strength off; N asks for 1..=N.
    #[serde(default)]
    pub strength_scale: i32,
    #[serde(default = "default_rationale")]
    pub rationale: RationalePolicy,
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: i32,
    /// How long a labeler may change an answer after giving it; 0: never.
    #[serde(default = "default_undo_seconds")]
    pub undo_seconds: i32,
}

fn default_mode() -> CampaignMode {
    CampaignMode::Pairwise
}
fn default_overlap() -> i32 {
    1
}
fn yes() -> bool {
    true
}
fn default_rationale() -> RationalePolicy {
    RationalePolicy::Optional
}
fn default_lease_seconds() -> i32 {
    900
}
pub const DEFAULT_UNDO_SECONDS: i32 = 300;
pub const MAX_UNDO_SECONDS: i32 = 86_400;
fn default_undo_seconds() -> i32 {
    DEFAULT_UNDO_SECONDS
}

impl NewCampaign {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            guidelines: String::new(),
            mode: default_mode(),
            overlap: default_overlap(),
            allow_tie: true,
            allow_both_bad: true,
            strength_scale: 0,
            rationale: default_rationale(),
            lease_seconds: default_lease_seconds(),
            undo_seconds: DEFAULT_UNDO_SECONDS,
        }
    }

    /// These settings with whatever `patch` changes (its status and archiving aside).
    pub fn patched(self, patch: &CampaignPatch) -> Self {
        Self {
            name: patch.name.clone().unwrap_or(self.name),
            guidelines: patch.guidelines.clone().unwrap_or(self.guidelines),
            mode: self.mode,
            overlap: patch.overlap.unwrap_or(self.overlap),
            allow_tie: patch.allow_tie.unwrap_or(self.allow_tie),
            allow_both_bad: patch.allow_both_bad.unwrap_or(self.allow_both_bad),
            strength_scale: patch.strength_scale.unwrap_or(self.strength_scale),
            rationale: patch.rationale.unwrap_or(self.rationale),
            lease_seconds: patch.lease_seconds.unwrap_or(self.lease_seconds),
            undo_seconds: patch.undo_seconds.unwrap_or(self.undo_seconds),
        }
    }

    /// Trims the name and checks every bound the database also enforces.
    pub fn validated(mut self) -> Result<Self, Invalid> {
        self.name = self.name.trim().to_string();
        if self.name.is_empty() || self.name.chars().count() > 200 {
            return Err(Invalid::new("name must have 1 to 200 characters"));
        }
        if self.guidelines.len() > 200_000 {
            return Err(Invalid::new("guidelines are longer than 200,000 bytes"));
        }
        if !(1..=MAX_OVERLAP).contains(&self.overlap) {
            return Err(Invalid(format!("overlap must be 1 to {MAX_OVERLAP}")));
        }
        if !(0..=MAX_STRENGTH_SCALE).contains(&self.strength_scale) {
            return Err(Invalid(format!(
                "strength_scale must be 0 (off) to {MAX_STRENGTH_SCALE}"
            )));
        }
        if !(10..=86_400).contains(&self.lease_seconds) {
            return Err(Invalid::new("lease_seconds must be 10 to 86400"));
        }
        if !(0..=MAX_UNDO_SECONDS).contains(&self.undo_seconds) {
            return Err(Invalid(format!(
                "undo_seconds must be 0 (answers cannot be changed) to {MAX_UNDO_SECONDS}"
            )));
        }
        Ok(self)
    }
}

/// A campaign as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub guidelines: String,
    pub mode: CampaignMode,
    pub overlap: i32,
    pub allow_tie: bool,
    pub allow_both_bad: bool,
    pub strength_scale: i32,
    pub rationale: RationalePolicy,
    pub lease_seconds: i32,
    pub undo_seconds: i32,
    pub status: CampaignStatus,
    /// Put away: a closed campaign the lists show apart.
    #[serde(default)]
    pub archived: bool,
    pub created_at: String,
}

impl Campaign {
    /// The settings this campaign was made with, as they stand.
    pub fn settings(&self) -> NewCampaign {
        NewCampaign {
            name: self.name.clone(),
            guidelines: self.guidelines.clone(),
            mode: self.mode,
            overlap: self.overlap,
            allow_tie: self.allow_tie,
            allow_both_bad: self.allow_both_bad,
            strength_scale: self.strength_scale,
            rationale: self.rationale,
            lease_seconds: self.lease_seconds,
            undo_seconds: self.undo_seconds,
        }
    }

    /// What a judgment in this campaign may contain.
    pub fn judgment_rules(&self) -> crate::JudgmentRules {
        crate::JudgmentRules {
            allow_tie: self.allow_tie,
            allow_both_bad: self.allow_both_bad,
            strength_scale: self.strength_scale,
            rationale: self.rationale,
        }
    }
}

/// `PATCH /api/v1/campaigns/{id}`: any subset of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub status: Option<CampaignStatus>,
    pub name: Option<String>,
    pub guidelines: Option<String>,
    pub overlap: Option<i32>,
    pub allow_tie: Option<bool>,
    pub allow_both_bad: Option<bool>,
    pub strength_scale: Option<i32>,
    pub rationale: Option<RationalePolicy>,
    pub lease_seconds: Option<i32>,
    pub undo_seconds: Option<i32>,
    /// Only a closed campaign is archived; `false` takes it out of the archive.
    pub archived: Option<bool>,
}

/// `POST /api/v1/campaigns/{id}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub email: String,
    #[serde(default = "default_member_role")]
    pub role: MemberRole,
}

fn default_member_role() -> MemberRole {
    MemberRole::Labeler
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub role: MemberRole,
}

/// A labeler's own progress in a campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Judgments this labeler made (skips excluded).
    pub done: i64,
    /// Items this labeler skipped.
    pub skipped: i64,
}

/// How much work is left, as a labeler sees it when they open a campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outlook {
    /// Items this labeler has not answered that still want a judgment (or that they hold).
    pub left_for_you: i64,
    /// The campaign's regular (not gold) items, and those judged by as many as its overlap.
    pub items: i64,
    pub items_complete: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelerStats {
    /// The labeler's pseudonym, the same keyed hash the raw export uses.
    pub labeler: String,
    /// Admins only: researchers see labelers by pseudonym alone.
    pub user_id: Option<Uuid>,
    /// Admins only.
    pub email: Option<String>,
    pub judgments: i64,
    pub skips: i64,
    pub gold_seen: i64,
    pub gold_correct: i64,
    pub median_time_ms: Option<f64>,
    /// Share of a/b choices that picked the left response; 0.5 means no position bias.
    pub left_share: Option<f64>,
}

/// `GET /api/v1/campaigns/{id}/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignStats {
    pub campaign_id: Uuid,
    pub status: CampaignStatus,
    pub items: i64,
    pub gold_items: i64,
    /// Non-gold items that reached `overlap` judgments.
    pub items_complete: i64,
    pub judgments: i64,
    pub skips: i64,
    pub choices: ChoiceCounts,
    /// judgments on non-gold items / (non-gold items × overlap), 0..=1.
    pub completion: f64,
    pub labelers: Vec<LabelerStats>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceCounts {
    pub a: i64,
    pub b: i64,
    pub tie: i64,
    pub both_bad: i64,
}

/// Completion as a fraction, safe for empty campaigns.
pub fn completion(judgments_on_regular_items: i64, regular_items: i64, overlap: i32) -> f64 {
    let needed = regular_items * i64::from(overlap);
    if needed == 0 {
        0.0
    } else {
        (judgments_on_regular_items as f64 / needed as f64).min(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_life_cycle() {
        use CampaignStatus::*;
        assert!(Draft.can_become(Active));
        assert!(Active.can_become(Paused));
        assert!(Paused.can_become(Active));
        assert!(Active.can_become(Closed));
        assert!(!Closed.can_become(Active));
        assert!(!Draft.can_become(Paused));
        assert!(!Active.can_become(Active));
        assert!(Paused.accepts_judgments() && !Paused.hands_out_items());
    }

    #[test]
    fn new_campaign_bounds() {
        assert!(NewCampaign::named("  x ").validated().unwrap().name == "x");
        assert!(NewCampaign::named("   ").validated().is_err());
        let mut c = NewCampaign::named("c");
        c.overlap = 0;
        assert!(c.clone().validated().is_err());
        c.overlap = 3;
        c.strength_scale = 11;
        assert!(c.validated().is_err());
    }

    #[test]
    fn new_campaign_defaults_from_json() {
        let c: NewCampaign = serde_json::from_str(r#"{"name":"n"}"#).unwrap();
        assert_eq!(c, NewCampaign::named("n"));
        assert!(serde_json::from_str::<NewCampaign>(r#"{"name":"n","bogus":1}"#).is_err());
    }

    #[test]
    fn completion_is_bounded() {
        assert_eq!(completion(0, 0, 3), 0.0);
        assert_eq!(completion(3, 2, 3), 0.5);
        assert_eq!(completion(9, 2, 3), 1.0);
    }
}
