//! Loads a campaign together with the caller's right to it.

use std::sync::LazyLock;

use domain::{decide, CurrentUser, Decision, MemberRole, Need};
use sqlx::PgPool;
use uuid::Uuid;

use crate::campaigns::{campaign_from_row, CAMPAIGN_COLUMNS};
use crate::{Result, StoreError};

/// A campaign with the caller's membership.
static CAMPAIGN_ACCESS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {CAMPAIGN_COLUMNS}, m.role AS member_role FROM campaigns c
         LEFT JOIN campaign_members m ON m.campaign_id = c.id AND m.user_id = $2
         WHERE c.id = $1"
    )
});

/// A campaign and one user's membership of it: everything [`CampaignAccess::check`] needs to
/// decide what that user may do with it.
#[derive(Debug, Clone)]
pub struct CampaignAccess {
    pub campaign: domain::Campaign,
    pub member_role: Option<MemberRole>,
}

impl CampaignAccess {
    /// The campaign, if `user` (whose membership this is) may do `need` with it. Callers who
    /// are not allowed to know it exists get [`StoreError::NotFound`], exactly as for an id
    /// that does not exist.
    pub fn check(&self, user: &CurrentUser, need: Need) -> Result<domain::Campaign> {
        match decide(user.role, self.member_role, need) {
            Decision::Allow => Ok(self.campaign.clone()),
            Decision::Hidden => Err(StoreError::NotFound),
            Decision::Forbidden => Err(StoreError::Forbidden(format!(
                "your role may not {} this campaign",
                match need {
                    Need::View => "view",
                    Need::Manage => "change",
                    Need::Analyse => "analyse",
                    Need::Label => "label in",
                }
            ))),
        }
    }

    /// Reads the campaign columns plus `member_role` (the membership) from `row`.
    pub(crate) fn from_row(row: &sqlx::postgres::PgRow) -> Result<Self> {
        let member_role: Option<String> = sqlx::Row::try_get(row, "member_role")?;
        Ok(Self {
            campaign: campaign_from_row(row)?,
            member_role: member_role.map(|r| r.parse()).transpose()?,
        })
    }
}

/// The campaign with `user_id`'s membership, or `None` when no such campaign exists.
pub async fn campaign_access(
    pool: &PgPool,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<Option<CampaignAccess>> {
    sqlx::query(&CAMPAIGN_ACCESS)
        .bind(campaign_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(CampaignAccess::from_row)
        .transpose()
}

/// The campaign, if the caller may do `need` with it. Callers who are not allowed to know it
/// exists get [`StoreError::NotFound`], exactly as for an id that does not exist.
pub async fn campaign_for(
    pool: &PgPool,
    user: &CurrentUser,
    campaign_id: Uuid,
    need: Need,
) -> Result<domain::Campaign> {
    campaign_access(pool, campaign_id, user.id)
        .await?
        .ok_or(StoreError::NotFound)?
        .check(user, need)
}

/// The caller's role in a campaign, if they are a member.
pub async fn membership(
    pool: &PgPool,
    user_id: Uuid,
    campaign_id: Uuid,
) -> Result<Option<MemberRole>> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM campaign_members WHERE campaign_id = $1 AND user_id = $2",
    )
    .bind(campaign_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(role.map(|r| r.parse()).transpose()?)
}
