//! Accounts (admins only).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use domain::{Role, UserSummary};
use serde::Deserialize;
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

pub async fn list(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<UserSummary>>> {
    Ok(Json(ops::users::list(&state.ops, &user).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    email: String,
    role: Role,
}

/// Creates an account without a password; the answer carries the one-time invitation path.
pub async fn invite(
    State(state): State<AppState>,
    User(user): User,
    ApiJson(invite): ApiJson<Invite>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (id, path) = ops::users::invite(&state.ops, &user, &invite.email, invite.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "invite_path": path })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    disabled: bool,
}

pub async fn update(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<StatusCode> {
    ops::users::set_disabled(&state.ops, &user, id, patch.disabled).await?;
    Ok(StatusCode::NO_CONTENT)
}
