//! Reward-model and DPO runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use domain::{NewTrainingRun, TrainingRecord};
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

/// Queues a reward-model or DPO run on a finished export; a worker picks it up.
pub async fn start(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(new): ApiJson<NewTrainingRun>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let run = ops::training::start(&state.ops, &user, id, new).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": run }))))
}

pub async fn list(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<TrainingRecord>>> {
    Ok(Json(ops::training::list(&state.ops, &user).await?))
}

pub async fn get(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TrainingRecord>> {
    Ok(Json(ops::training::get(&state.ops, &user, id).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TrainingRecord>> {
    Ok(Json(ops::training::cancel(&state.ops, &user, id).await?))
}
