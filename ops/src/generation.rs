//! Generation jobs: queued here, run by workers.

use domain::{CurrentUser, GenerateSpec, JobRecord, ModelRecord, Need};
use uuid::Uuid;

use store::jobs::JobScope;

use crate::{access, Ops, Result};

/// Queues generation for the campaign's prompts without candidates; `None` reuses the
/// campaign's saved settings. Returns the job and how many prompts it holds.
pub async fn start(
    ops: &Ops,
    user: &CurrentUser,
    campaign_id: Uuid,
    spec: Option<GenerateSpec>,
) -> Result<(Uuid, i64)> {
    access::campaign(ops, user, campaign_id, Need::Manage).await?;
    let spec = match spec {
        Some(spec) => spec,
        None => store::jobs::saved_spec(&ops.pool, campaign_id)
            .await?
            .unwrap_or_default(),
    };
    Ok(
        store::jobs::start_generation(&ops.pool, user, campaign_id, spec, JobScope::Ungenerated)
            .await?,
    )
}

/// Samples again the prompts whose generated candidates all read the same (they made no
/// item), with the campaign's saved settings and a fresh seed; their old candidates go in the
/// same transaction. Returns the job and how many prompts.
pub async fn regenerate_identical(
    ops: &Ops,
    user: &CurrentUser,
    campaign_id: Uuid,
) -> Result<(Uuid, i64)> {
    access::campaign(ops, user, campaign_id, Need::Manage).await?;
    let spec = store::jobs::saved_spec(&ops.pool, campaign_id)
        .await?
        .unwrap_or_default();
    Ok(
        store::jobs::start_generation(&ops.pool, user, campaign_id, spec, JobScope::IdenticalOnly)
            .await?,
    )
}

pub async fn jobs(ops: &Ops, user: &CurrentUser, campaign_id: Uuid) -> Result<Vec<JobRecord>> {
    access::campaign(ops, user, campaign_id, Need::Analyse).await?;
    Ok(store::jobs::list_for_campaign(&ops.pool, campaign_id).await?)
}

pub async fn job(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<JobRecord> {
    access::job(ops, user, id, Need::Analyse).await
}

/// Cancels a job of a campaign the caller manages; its workers stop after their prompt.
pub async fn cancel(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<JobRecord> {
    access::job(ops, user, id, Need::Manage).await?;
    Ok(store::jobs::cancel(&ops.pool, user.id, id).await?)
}

/// What a campaign's manager sees of its generation: models, saved settings, jobs and a few
/// recent outputs.
#[derive(Debug, Clone)]
pub struct Overview {
    pub status: domain::CampaignStatus,
    pub models: Vec<ModelRecord>,
    pub settings: GenerateSpec,
    pub jobs: Vec<JobRecord>,
    /// Prompts whose candidates all read the same, which "regenerate" samples again.
    pub identical_only_prompts: i64,
    /// Recent generated candidates: (last prompt turn, text, model).
    pub samples: Vec<(String, String, String)>,
}

pub async fn overview(ops: &Ops, user: &CurrentUser, campaign_id: Uuid) -> Result<Overview> {
    let campaign = access::campaign(ops, user, campaign_id, Need::Manage).await?;
    Ok(Overview {
        status: campaign.status,
        models: store::models::list(&ops.pool).await?,
        settings: store::jobs::saved_spec(&ops.pool, campaign_id)
            .await?
            .unwrap_or_default(),
        jobs: store::jobs::list_for_campaign(&ops.pool, campaign_id).await?,
        identical_only_prompts: store::jobs::identical_only_prompts(&ops.pool, campaign_id).await?,
        samples: store::prompts::sample_outputs(&ops.pool, campaign_id, 4).await?,
    })
}
