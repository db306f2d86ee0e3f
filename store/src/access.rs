//! Loads a campaign together with the caller's right to it.

use std::sync::LazyLock;

use domain::{decide, CurrentUser, Decision, MemberRole, Need};
use sqlx::PgPool;
use uuid::Uuid;

use crate::campaigns::{CampaignRow, CAMPAIGN_COLUMNS};
use crate::{stored, Result, StoreError};

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
}

/// The campaign columns plus `member_role`, the membership.
#[derive(sqlx::FromRow)]
pub(crate) struct CampaignAccessRow {
    #[sqlx(flatten)]
    campaign: CampaignRow,
    member_role: Option<String>,
}

impl TryFrom<CampaignAccessRow> for CampaignAccess {
    type Error = StoreError;

    fn try_from(row: CampaignAccessRow) -> Result<Self> {
        Ok(Self {
            campaign: row.campaign.try_into()?,
            member_role: row.member_role.as_deref().map(stored).transpose()?,
        })
    }
}

/// The campaign with `user_id`'s membership, or `None` when no such campaign exists.
pub async fn campaign_access(
    pool: &PgPool,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<Option<CampaignAccess>> {
    sqlx::query_as::<_, CampaignAccessRow>(&CAMPAIGN_ACCESS)
        .bind(campaign_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .map(CampaignAccess::try_from)
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
    role.as_deref().map(stored).transpose()
}

/// Every campaign the user belongs to, with their role in it.
pub async fn memberships(pool: &PgPool, user_id: Uuid) -> Result<Vec<(Uuid, MemberRole)>> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT campaign_id, role FROM campaign_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(id, role)| Ok((id, stored(&role)?)))
        .collect()
}
