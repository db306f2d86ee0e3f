//! Who may do what with a campaign. The store looks up the membership; this decides.

use serde::{Deserialize, Serialize};

use crate::{MemberRole, Role};

/// What the caller wants to do with a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Need {
    /// Read its settings and guidelines.
    View,
    /// Change it: settings, status, members, data.
    Manage,
    /// See statistics and (later) export its data.
    Analyse,
    /// Receive items and submit judgments.
    Label,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The caller may see the campaign but not do this.
    Forbidden,
    /// The caller may not even know the campaign exists.
    Hidden,
}

/// Admins see everything and may manage; everyone else sees only campaigns they belong to.
/// Labeling needs a labeler membership, whatever the account's role.
pub fn decide(role: Role, membership: Option<MemberRole>, need: Need) -> Decision {
    let admin = role == Role::Admin;
    if !admin && membership.is_none() {
        return Decision::Hidden;
    }
    let allowed = match need {
        Need::View => true,
        Need::Manage => admin,
        Need::Analyse => admin || membership == Some(MemberRole::Researcher),
        Need::Label => membership == Some(MemberRole::Labeler),
    };
    if allowed {
        Decision::Allow
    } else {
        Decision::Forbidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix() {
        use Decision::*;
        use Need::*;
        let labeler = Some(MemberRole::Labeler);
        let researcher = Some(MemberRole::Researcher);
        assert_eq!(decide(Role::Labeler, None, View), Hidden);
        assert_eq!(decide(Role::Researcher, None, Analyse), Hidden);
        assert_eq!(decide(Role::Labeler, labeler, Label), Allow);
        assert_eq!(decide(Role::Labeler, labeler, Analyse), Forbidden);
        assert_eq!(decide(Role::Labeler, labeler, Manage), Forbidden);
        assert_eq!(decide(Role::Researcher, researcher, Analyse), Allow);
        assert_eq!(decide(Role::Researcher, researcher, Label), Forbidden);
        assert_eq!(decide(Role::Admin, None, Manage), Allow);
        assert_eq!(decide(Role::Admin, None, Label), Forbidden);
        assert_eq!(decide(Role::Admin, labeler, Label), Allow);
    }
}
