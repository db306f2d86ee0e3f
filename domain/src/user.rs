//! Accounts and roles.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{text_enum, Invalid};

text_enum! {
    /// What a user may do across the whole installation.
    Role { Admin => "admin", Researcher => "researcher", Labeler => "labeler" }
}

text_enum! {
    /// What a user may do inside one campaign.
    MemberRole { Labeler => "labeler", Researcher => "researcher" }
}

impl Role {
    /// Whether a user with this role may hold `member` in a campaign. Labelers only label;
    /// researchers and admins may also be labelers.
    pub fn may_hold(self, member: MemberRole) -> bool {
        !matches!((self, member), (Role::Labeler, MemberRole::Researcher))
    }
}

/// The signed-in caller, as every handler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A user as admins see them in the user list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub has_password: bool,
}

/// Normalises and checks an e-mail address: trimmed, lower-case, one `@` with text both sides.
pub fn normalize_email(raw: &str) -> Result<String, Invalid> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 320
        && email.chars().all(|c| !c.is_whitespace() && !c.is_control())
        && matches!(email.split_once('@'), Some((local, host)) if !local.is_empty() && !host.is_empty() && !host.contains('@'));
    if valid {
        Ok(email)
    } else {
        Err(Invalid(format!(
            "{:?} is not an e-mail address",
            raw.trim()
        )))
    }
}

/// Minimum password length; NIST SP 800-63B asks for at least 8 and no composition rules.
pub const MIN_PASSWORD_LEN: usize = 10;

pub fn validate_password(password: &str) -> Result<(), Invalid> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(Invalid(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if len > 1024 {
        return Err(Invalid("password is longer than 1024 characters".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.ORG ").unwrap(),
            "ann@example.org"
        );
        for bad in ["", "ann", "@x", "ann@", "a b@c", "a@b@c"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn labelers_cannot_be_campaign_researchers() {
        assert!(!Role::Labeler.may_hold(MemberRole::Researcher));
        assert!(Role::Labeler.may_hold(MemberRole::Labeler));
        assert!(Role::Researcher.may_hold(MemberRole::Researcher));
        assert!(Role::Admin.may_hold(MemberRole::Labeler));
    }

    #[test]
    fn roles_round_trip_through_text() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), *role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
