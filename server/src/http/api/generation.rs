//! Models, prompts without responses, and generation jobs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use domain::{JobRecord, ModelRecord, NewModel};
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

pub async fn list_models(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<domain::ModelEntry>>> {
    Ok(Json(ops::models::list(&state.ops, &user).await?))
}

/// Admins register a GGUF file or a Hugging Face directory that exists on this server.
pub async fn register_model(
    State(state): State<AppState>,
    User(user): User,
    ApiJson(new): ApiJson<NewModel>,
) -> ApiResult<(StatusCode, Json<ModelRecord>)> {
    let model = ops::models::register(&state.ops, &user, new).await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// Prompts without responses, one per line; all or nothing, with line-numbered errors.
pub async fn import_prompts(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    body: String,
) -> ApiResult<Response> {
    let report = ops::imports::prompts(&state.ops, &user, id, &body).await?;
    Ok(super::import_answer(report))
}

/// Queues generation for the campaign's prompts that have no candidates. An empty body
/// reuses the campaign's saved settings.
pub async fn start(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let spec = match body {
        serde_json::Value::Object(map) if map.is_empty() => None,
        other => Some(
            serde_json::from_value::<domain::GenerateSpec>(other)
                .map_err(|e| domain::Invalid(format!("invalid generation settings: {e}")))?,
        ),
    };
    let (job_id, prompts) = ops::generation::start(&state.ops, &user, id, spec).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job_id": job_id, "prompts": prompts })),
    ))
}

/// `POST /api/v1/campaigns/{id}/regenerate`: samples again, with a fresh seed, the prompts
/// whose candidates all read the same.
pub async fn regenerate(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (job_id, prompts) = ops::generation::regenerate_identical(&state.ops, &user, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job_id": job_id, "prompts": prompts })),
    ))
}

pub async fn jobs(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<JobRecord>>> {
    Ok(Json(ops::generation::jobs(&state.ops, &user, id).await?))
}

pub async fn job(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<JobRecord>> {
    Ok(Json(ops::generation::job(&state.ops, &user, id).await?))
}

pub async fn cancel(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<JobRecord>> {
    Ok(Json(ops::generation::cancel(&state.ops, &user, id).await?))
}
