//! Accounts, as admins manage them.

use domain::{CurrentUser, Role, UserSummary};
use uuid::Uuid;

use crate::{access, Error, Ops, Result};

pub async fn list(ops: &Ops, user: &CurrentUser) -> Result<Vec<UserSummary>> {
    access::admin(user)?;
    Ok(store::accounts::list_users(&ops.pool).await?)
}

/// Creates an account without a password; returns its id and one-time invitation path.
pub async fn invite(
    ops: &Ops,
    user: &CurrentUser,
    email: &str,
    role: Role,
) -> Result<(Uuid, String)> {
    access::admin(user)?;
    let (id, secret) = store::accounts::invite_user(&ops.pool, user.id, email, role).await?;
    Ok((id, format!("/invite/{secret}")))
}

pub async fn set_disabled(ops: &Ops, user: &CurrentUser, id: Uuid, disabled: bool) -> Result<()> {
    access::admin(user)?;
    Ok(store::accounts::set_disabled(&ops.pool, user.id, id, disabled).await?)
}

/// The e-mail an open invitation is for; anyone holding its secret may ask.
pub async fn invitation_email(ops: &Ops, secret: &str) -> Result<String> {
    store::accounts::invite_email(&ops.pool, secret)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound => {
                Error::Conflict("this invitation is unknown, used or expired".into())
            }
            other => other,
        })
}
