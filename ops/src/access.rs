//! Who may do what: every operation asks here before it acts. The campaign rule itself is
//! [`domain::decide`] (pure, tested as a matrix); this module loads what it needs and holds
//! the role rules that are not about one campaign.

use domain::{CurrentUser, Need, Role};
use uuid::Uuid;

use crate::{Error, Ops, Result};

/// The campaign, if the caller may do `need` with it. Callers who may not know it exists get
/// [`Error::NotFound`], exactly as for an id that does not exist.
pub async fn campaign(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
    need: Need,
) -> Result<domain::Campaign> {
    Ok(store::access::campaign_for(&ops.pool, user, id, need).await?)
}

/// As [`campaign`], through the in-memory copies the labeling loop uses.
pub async fn campaign_kept(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
    need: Need,
) -> Result<domain::Campaign> {
    Ok(ops.access.campaign(&ops.pool, user, id, need).await?)
}

/// What the caller may do with a campaign they can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub manage: bool,
    pub analyse: bool,
    pub label: bool,
}

pub async fn rights(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<Rights> {
    let membership = store::access::membership(&ops.pool, user.id, id).await?;
    Ok(Rights::of(user, membership))
}

impl Rights {
    /// What `user` may do in a campaign where they hold `membership`.
    pub fn of(user: &CurrentUser, membership: Option<domain::MemberRole>) -> Rights {
        let may = |need| domain::decide(user.role, membership, need) == domain::Decision::Allow;
        Rights {
            manage: may(Need::Manage),
            analyse: may(Need::Analyse),
            label: may(Need::Label),
        }
    }
}

pub fn admin(user: &CurrentUser) -> Result<()> {
    if user.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden("admins only".into()))
    }
}

/// Researchers and admins work with models, exports and training; labelers only label.
pub fn not_labeler(user: &CurrentUser, what: &str) -> Result<()> {
    if user.role == Role::Labeler {
        Err(Error::Forbidden(format!("labelers may not {what}")))
    } else {
        Ok(())
    }
}

/// A generation job of a campaign the caller may do `need` with; jobs without a campaign are
/// admins' only.
pub async fn job(ops: &Ops, user: &CurrentUser, id: Uuid, need: Need) -> Result<domain::JobRecord> {
    let job = store::jobs::get(&ops.pool, id).await?;
    match job.campaign_id {
        Some(campaign_id) => {
            campaign(ops, user, campaign_id, need).await?;
        }
        None if user.is_admin() => {}
        None => return Err(Error::NotFound),
    }
    Ok(job)
}

/// An export the caller may see: an admin's, or their own while they may still analyse every
/// campaign in it. Anything else is not found. Returns it with where its files are.
pub async fn export(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
) -> Result<(domain::ExportRecord, store::export::FilesAt)> {
    // Labelers see no export, not even one they made before their role changed.
    if user.role == Role::Labeler {
        return Err(Error::NotFound);
    }
    let (record, at) = store::export::get(&ops.pool, id).await?;
    if !user.is_admin() {
        if record.created_by != Some(user.id) {
            return Err(Error::NotFound);
        }
        for campaign_id in &record.spec.campaigns {
            campaign(ops, user, *campaign_id, Need::Analyse)
                .await
                .map_err(|_| Error::NotFound)?;
        }
    }
    Ok((record, at))
}

/// The exports the caller may list, by the rule of [`export`]: every one for admins; for
/// researchers their own, while they may still analyse every campaign in it.
pub async fn exports(ops: &Ops, user: &CurrentUser) -> Result<Vec<domain::ExportRecord>> {
    not_labeler(user, "export data")?;
    let mine = store::export::list(&ops.pool, (!user.is_admin()).then_some(user.id)).await?;
    if user.is_admin() {
        return Ok(mine);
    }
    let analysable: std::collections::HashSet<Uuid> =
        store::access::memberships(&ops.pool, user.id)
            .await?
            .into_iter()
            .filter(|(_, role)| {
                domain::decide(user.role, Some(*role), Need::Analyse) == domain::Decision::Allow
            })
            .map(|(id, _)| id)
            .collect();
    Ok(mine
        .into_iter()
        .filter(|e| e.spec.campaigns.iter().all(|c| analysable.contains(c)))
        .collect())
}

/// A training run whose export the caller may see; anything else is not found.
pub async fn training_run(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
) -> Result<domain::TrainingRecord> {
    let run = store::training::get(&ops.pool, id).await?;
    export(ops, user, run.export_id).await?;
    Ok(run)
}
