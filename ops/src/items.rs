//! The item browser: a campaign's items and one item with its judgments, for those who may
//! analyse the campaign (admins, its researchers). Labelers appear by pseudonym; admins also
//! see their e-mails.

use domain::{CurrentUser, ItemDetail, ItemPage, ItemQuery, Need, Role};
use uuid::Uuid;

use crate::{access, Ops, Result};

pub async fn list(
    ops: &Ops,
    user: &CurrentUser,
    campaign_id: Uuid,
    query: &ItemQuery,
) -> Result<ItemPage> {
    let campaign = access::campaign(ops, user, campaign_id, Need::Analyse).await?;
    Ok(store::items::page(&ops.pool, campaign.id, campaign.overlap, query).await?)
}

/// An item of a campaign the caller may analyse; an item of any other is not found.
pub async fn get(ops: &Ops, user: &CurrentUser, item_id: Uuid) -> Result<ItemDetail> {
    let campaign_id = store::items::campaign_of(&ops.pool, item_id).await?;
    let campaign = access::campaign(ops, user, campaign_id, Need::Analyse).await?;
    Ok(store::items::detail(
        &ops.pool,
        item_id,
        campaign.overlap,
        user.role == Role::Admin,
    )
    .await?)
}
