//! Campaign rows and memberships.

use domain::{
    Campaign, CampaignPatch, CampaignStatus, CurrentUser, Member, NewCampaign, NewMember, Role,
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{audit, rfc3339, stored, Result, StoreError};

pub(crate) const CAMPAIGN_COLUMNS: &str =
    "c.id, c.name, c.guidelines, c.mode, c.overlap, c.allow_tie, \
     c.allow_both_bad, c.strength_scale, c.rationale, c.lease_seconds, c.undo_seconds, c.status, \
     c.archived_at IS NOT NULL AS archived, c.created_at";

/// The [`CAMPAIGN_COLUMNS`] of a row.
#[derive(sqlx::FromRow)]
pub(crate) struct CampaignRow {
    id: Uuid,
    name: String,
    guidelines: String,
    mode: String,
    overlap: i32,
    allow_tie: bool,
    allow_both_bad: bool,
    strength_scale: i32,
    rationale: String,
    lease_seconds: i32,
    undo_seconds: i32,
    status: String,
    archived: bool,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl TryFrom<CampaignRow> for Campaign {
    type Error = StoreError;

    fn try_from(row: CampaignRow) -> Result<Self> {
        Ok(Campaign {
            id: row.id,
            name: row.name,
            guidelines: row.guidelines,
            mode: stored(&row.mode)?,
            overlap: row.overlap,
            allow_tie: row.allow_tie,
            allow_both_bad: row.allow_both_bad,
            strength_scale: row.strength_scale,
            rationale: stored(&row.rationale)?,
            lease_seconds: row.lease_seconds,
            undo_seconds: row.undo_seconds,
            status: stored(&row.status)?,
            archived: row.archived,
            created_at: rfc3339(row.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: Uuid,
    email: String,
    role: String,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;

    fn try_from(row: MemberRow) -> Result<Self> {
        Ok(Member {
            user_id: row.id,
            email: row.email,
            role: stored(&row.role)?,
        })
    }
}

pub async fn create(pool: &PgPool, actor: &CurrentUser, new: NewCampaign) -> Result<Campaign> {
    let new = new.validated()?;
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let sql = format!(
        "INSERT INTO campaigns AS c (id, name, guidelines, mode, overlap, allow_tie, allow_both_bad,
             strength_scale, rationale, lease_seconds, undo_seconds, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         RETURNING {CAMPAIGN_COLUMNS}"
    );
    let row = sqlx::query_as::<_, CampaignRow>(&sql)
        .bind(id)
        .bind(&new.name)
        .bind(&new.guidelines)
        .bind(new.mode.as_str())
        .bind(new.overlap)
        .bind(new.allow_tie)
        .bind(new.allow_both_bad)
        .bind(new.strength_scale)
        .bind(new.rationale.as_str())
        .bind(new.lease_seconds)
        .bind(new.undo_seconds)
        .bind(actor.id)
        .fetch_one(&mut *tx)
        .await?;
    audit(
        &mut tx,
        Some(actor.id),
        "campaign.create",
        &id.to_string(),
        serde_json::json!({ "name": new.name }),
    )
    .await?;
    tx.commit().await?;
    row.try_into()
}

/// Campaigns the user may see, newest first.
pub async fn list_for(pool: &PgPool, user: &CurrentUser) -> Result<Vec<Campaign>> {
    let sql = format!(
        "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c
         WHERE $2 OR EXISTS (SELECT 1 FROM campaign_members m WHERE m.campaign_id = c.id AND m.user_id = $1)
         ORDER BY c.created_at DESC"
    );
    sqlx::query_as::<_, CampaignRow>(&sql)
        .bind(user.id)
        .bind(user.role == Role::Admin)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(Campaign::try_from)
        .collect()
}

/// Applies a patch; status moves must follow the life cycle, and a new overlap re-sizes the
/// open slots of every item (never below the labelers already holding one).
pub async fn update(
    pool: &PgPool,
    actor: &CurrentUser,
    campaign_id: Uuid,
    patch: CampaignPatch,
) -> Result<Campaign> {
    let mut tx = pool.begin().await?;
    let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns c WHERE c.id = $1 FOR UPDATE");
    let current: Campaign = sqlx::query_as::<_, CampaignRow>(&sql)
        .bind(campaign_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_into()?;
    let next = current.settings().patched(&patch).validated()?;
    let status = patch.status.unwrap_or(current.status);
    if status != current.status && !current.status.can_become(status) {
        return Err(StoreError::Conflict(format!(
            "a {} campaign cannot become {}",
            current.status, status
        )));
    }
    if patch.archived == Some(true) && status != CampaignStatus::Closed {
        return Err(StoreError::Conflict(
            "only a closed campaign can be archived".into(),
        ));
    }
    if next.overlap != current.overlap {
        sqlx::query(
            "UPDATE items SET remaining = GREATEST(0, remaining + $2) WHERE campaign_id = $1 AND NOT is_gold",
        )
        .bind(campaign_id)
        .bind(next.overlap - current.overlap)
        .execute(&mut *tx)
        .await?;
    }
    let sql = format!(
        "UPDATE campaigns AS c SET name = $2, guidelines = $3, overlap = $4, status = $5,
                allow_tie = $6, allow_both_bad = $7, strength_scale = $8, rationale = $9,
                lease_seconds = $10, undo_seconds = $12,
                archived_at = CASE WHEN $11::bool IS NULL THEN c.archived_at
                                   WHEN $11 THEN coalesce(c.archived_at, now()) END,
                updated_at = now()
         WHERE c.id = $1 RETURNING {CAMPAIGN_COLUMNS}"
    );
    let row = sqlx::query_as::<_, CampaignRow>(&sql)
        .bind(campaign_id)
        .bind(&next.name)
        .bind(&next.guidelines)
        .bind(next.overlap)
        .bind(status.as_str())
        .bind(next.allow_tie)
        .bind(next.allow_both_bad)
        .bind(next.strength_scale)
        .bind(next.rationale.as_str())
        .bind(next.lease_seconds)
        .bind(patch.archived)
        .bind(next.undo_seconds)
        .fetch_one(&mut *tx)
        .await?;
    audit(
        &mut tx,
        Some(actor.id),
        "campaign.update",
        &campaign_id.to_string(),
        serde_json::to_value(&patch).unwrap_or_default(),
    )
    .await?;
    tx.commit().await?;
    row.try_into()
}

/// Deletes a campaign with everything in it. One that holds judgments is refused unless
/// `with_judgments` says to delete them too (archiving keeps them instead). Returns how many
/// judgments went with it.
pub async fn delete(
    pool: &PgPool,
    actor: &CurrentUser,
    campaign_id: Uuid,
    with_judgments: bool,
) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let name: String = sqlx::query_scalar("SELECT name FROM campaigns WHERE id = $1 FOR UPDATE")
        .bind(campaign_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    let judgments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM judgments WHERE campaign_id = $1")
            .bind(campaign_id)
            .fetch_one(&mut *tx)
            .await?;
    // Its workers would lose the rows under them.
    let open_jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE campaign_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(campaign_id)
    .fetch_one(&mut *tx)
    .await?;
    if open_jobs > 0 {
        return Err(StoreError::Conflict(
            "a generation job of this campaign is still open: cancel it first".into(),
        ));
    }
    if judgments > 0 && !with_judgments {
        let noun = if judgments == 1 {
            "judgment"
        } else {
            "judgments"
        };
        return Err(StoreError::Conflict(format!(
            "the campaign holds {judgments} {noun}: delete them too (with_judgments), or archive it to keep them"
        )));
    }
    sqlx::query("DELETE FROM campaigns WHERE id = $1")
        .bind(campaign_id)
        .execute(&mut *tx)
        .await?;
    audit(
        &mut tx,
        Some(actor.id),
        "campaign.delete",
        &campaign_id.to_string(),
        serde_json::json!({ "name": name, "judgments": judgments }),
    )
    .await?;
    tx.commit().await?;
    Ok(judgments)
}

/// Adds (or changes the role of) a member; the user must exist, be enabled and hold a global
/// role that allows the membership.
pub async fn add_member(
    pool: &PgPool,
    actor: &CurrentUser,
    campaign_id: Uuid,
    new: NewMember,
) -> Result<Member> {
    let user = crate::accounts::user_by_email(pool, &new.email)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => StoreError::Invalid(domain::Invalid(format!(
                "no enabled user has the e-mail {}",
                new.email.trim()
            ))),
            other => other,
        })?;
    if !user.role.may_hold(new.role) {
        return Err(StoreError::Invalid(domain::Invalid(format!(
            "a {} account cannot be a {} of a campaign",
            user.role, new.role
        ))));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO campaign_members (campaign_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (campaign_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(campaign_id)
    .bind(user.id)
    .bind(new.role.as_str())
    .execute(&mut *tx)
    .await?;
    audit(
        &mut tx,
        Some(actor.id),
        "campaign.member",
        &campaign_id.to_string(),
        serde_json::json!({ "user": user.id, "role": new.role }),
    )
    .await?;
    tx.commit().await?;
    Ok(Member {
        user_id: user.id,
        email: user.email,
        role: new.role,
    })
}

pub async fn remove_member(
    pool: &PgPool,
    actor: &CurrentUser,
    campaign_id: Uuid,
    user_id: Uuid,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let deleted =
        sqlx::query("DELETE FROM campaign_members WHERE campaign_id = $1 AND user_id = $2")
            .bind(campaign_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    audit(
        &mut tx,
        Some(actor.id),
        "campaign.member.remove",
        &campaign_id.to_string(),
        serde_json::json!({ "user": user_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn members(pool: &PgPool, campaign_id: Uuid) -> Result<Vec<Member>> {
    sqlx::query_as::<_, MemberRow>(
        "SELECT u.id, u.email, m.role FROM campaign_members m JOIN users u ON u.id = m.user_id
         WHERE m.campaign_id = $1 ORDER BY u.email",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Member::try_from)
    .collect()
}
