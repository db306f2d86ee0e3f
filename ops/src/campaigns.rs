//! Campaigns and their members.

use domain::{
    Campaign, CampaignPatch, CampaignStats, CurrentUser, Member, Need, NewCampaign, NewMember,
    Outlook, Progress, Role,
};
use uuid::Uuid;

use crate::access::{self, Rights};
use crate::{Ops, Result};

/// The campaigns the caller can see: all for admins, their memberships for everyone else.
pub async fn list(ops: &Ops, user: &CurrentUser) -> Result<Vec<Campaign>> {
    Ok(store::campaigns::list_for(&ops.pool, user).await?)
}

/// The caller's campaigns, each with what they may do there (a page offers only that): two
/// queries however many campaigns there are.
pub async fn list_with_rights(ops: &Ops, user: &CurrentUser) -> Result<Vec<(Campaign, Rights)>> {
    let memberships: std::collections::HashMap<Uuid, domain::MemberRole> =
        store::access::memberships(&ops.pool, user.id)
            .await?
            .into_iter()
            .collect();
    Ok(list(ops, user)
        .await?
        .into_iter()
        .map(|c| {
            let rights = Rights::of(user, memberships.get(&c.id).copied());
            (c, rights)
        })
        .collect())
}

pub async fn create(ops: &Ops, user: &CurrentUser, new: NewCampaign) -> Result<Campaign> {
    access::admin(user)?;
    Ok(store::campaigns::create(&ops.pool, user, new).await?)
}

pub async fn get(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<Campaign> {
    access::campaign(ops, user, id, Need::View).await
}

pub async fn update(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
    patch: CampaignPatch,
) -> Result<Campaign> {
    access::campaign(ops, user, id, Need::Manage).await?;
    Ok(store::campaigns::update(&ops.pool, user, id, patch).await?)
}

/// Deletes a campaign the caller manages; one holding judgments only `with_judgments`.
/// Returns how many judgments were deleted with it.
pub async fn delete(ops: &Ops, user: &CurrentUser, id: Uuid, with_judgments: bool) -> Result<i64> {
    access::campaign(ops, user, id, Need::Manage).await?;
    Ok(store::campaigns::delete(&ops.pool, user, id, with_judgments).await?)
}

/// A campaign with what the caller may see of it: members for managers, statistics for
/// analysts, their own progress for labelers.
#[derive(Debug, Clone)]
pub struct Overview {
    pub campaign: Campaign,
    pub rights: Rights,
    pub members: Vec<Member>,
    pub stats: Option<CampaignStats>,
    pub progress: Option<(Progress, Outlook)>,
}

pub async fn overview(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<Overview> {
    let campaign = access::campaign(ops, user, id, Need::View).await?;
    let rights = access::rights(ops, user, id).await?;
    let members = if rights.manage {
        store::campaigns::members(&ops.pool, id).await?
    } else {
        Vec::new()
    };
    let stats = if rights.analyse {
        Some(store::stats::campaign_stats(&ops.pool, &campaign, user.role == Role::Admin).await?)
    } else {
        None
    };
    let progress = if rights.label {
        Some((
            store::queue::progress(&ops.pool, id, user.id).await?,
            store::queue::outlook(&ops.pool, &campaign, user.id).await?,
        ))
    } else {
        None
    };
    Ok(Overview {
        campaign,
        rights,
        members,
        stats,
        progress,
    })
}

/// Agreement and counts per labeler; analysts only.
pub async fn stats(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<CampaignStats> {
    let campaign = access::campaign(ops, user, id, Need::Analyse).await?;
    Ok(store::stats::campaign_stats(&ops.pool, &campaign, user.role == Role::Admin).await?)
}

pub async fn members(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<Vec<Member>> {
    access::campaign(ops, user, id, Need::Manage).await?;
    Ok(store::campaigns::members(&ops.pool, id).await?)
}

pub async fn add_member(ops: &Ops, user: &CurrentUser, id: Uuid, new: NewMember) -> Result<Member> {
    access::campaign(ops, user, id, Need::Manage).await?;
    Ok(store::campaigns::add_member(&ops.pool, user, id, new).await?)
}

pub async fn remove_member(ops: &Ops, user: &CurrentUser, id: Uuid, member: Uuid) -> Result<()> {
    access::campaign(ops, user, id, Need::Manage).await?;
    Ok(store::campaigns::remove_member(&ops.pool, user, id, member).await?)
}
