//! The labeling loop: a labeler's context, next item, judgment and progress. These take the
//! in-memory access copies ([`store::access_cache`]), so a judgment costs one round trip.

use domain::{
    Campaign, CurrentUser, JudgmentAck, JudgmentInput, Need, NextItem, Outlook, Progress,
};
use uuid::Uuid;

pub use store::queue::HandOut;

use crate::{access, Ops, Result};

/// The campaign a labeler works in, their progress in it and what is left.
pub async fn context(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
) -> Result<(Campaign, Progress, Outlook)> {
    let campaign = access::campaign_kept(ops, user, id, Need::Label).await?;
    let progress = store::queue::progress(&ops.pool, id, user.id).await?;
    let outlook = store::queue::outlook(&ops.pool, &campaign, user.id).await?;
    Ok((campaign, progress, outlook))
}

pub async fn progress(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<Progress> {
    access::campaign_kept(ops, user, id, Need::Label).await?;
    Ok(store::queue::progress(&ops.pool, id, user.id).await?)
}

/// The caller's next item (the lease they hold, if any), other than `exclude`; `None` when
/// nothing is left for them.
pub async fn next(
    ops: &Ops,
    user: &CurrentUser,
    id: Uuid,
    exclude: Option<Uuid>,
) -> Result<Option<NextItem>> {
    let campaign = access::campaign_kept(ops, user, id, Need::Label).await?;
    Ok(ops
        .access
        .next(&ops.pool, &campaign, user.id, exclude)
        .await?)
}

/// Stores the caller's judgment of their assignment (idempotent by its client request id)
/// and, with `hand_out`, hands out their next item in the same transaction.
pub async fn submit(
    ops: &Ops,
    user: &CurrentUser,
    assignment_id: Uuid,
    input: JudgmentInput,
    hand_out: Option<HandOut>,
) -> Result<(JudgmentAck, Option<NextItem>)> {
    Ok(ops
        .access
        .submit(&ops.pool, user, assignment_id, input, hand_out)
        .await?)
}

/// Changes the caller's last answer in its campaign while the campaign's undo window lasts
/// (idempotent by its client request id); the answer it replaces is kept.
pub async fn revise(
    ops: &Ops,
    user: &CurrentUser,
    judgment_id: Uuid,
    input: JudgmentInput,
) -> Result<JudgmentAck> {
    let campaign_id = store::revisions::campaign_of(&ops.pool, user.id, judgment_id).await?;
    let campaign = access::campaign_kept(ops, user, campaign_id, Need::Label).await?;
    Ok(store::revisions::revise(&ops.pool, user.id, &campaign, judgment_id, input).await?)
}
