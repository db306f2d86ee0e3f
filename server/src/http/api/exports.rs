//! Dataset exports and their files.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{ExportRecord, ExportSpec};
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

pub async fn start(
    State(state): State<AppState>,
    User(user): User,
    ApiJson(spec): ApiJson<ExportSpec>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let id = ops::exports::start(&state.ops, &user, spec).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))))
}

pub async fn cancel(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ExportRecord>> {
    Ok(Json(ops::exports::cancel(&state.ops, &user, id).await?))
}

pub async fn list(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<ExportRecord>>> {
    Ok(Json(ops::exports::list(&state.ops, &user).await?))
}

pub async fn get(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ExportRecord>> {
    Ok(Json(ops::exports::get(&state.ops, &user, id).await?))
}

/// Streams one file of a finished export.
pub async fn download(
    State(state): State<AppState>,
    User(user): User,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
) -> ApiResult<Response> {
    let (file, bytes) = ops::exports::download(&state.ops, &user, id, &name).await?;
    let content_type = if name.ends_with(".md") {
        "text/markdown; charset=utf-8"
    } else if name.ends_with(".jsonl") {
        "application/jsonl"
    } else {
        "application/octet-stream"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, file.bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-{}\"", id, file.name),
            ),
        ],
        Body::from_stream(bytes),
    )
        .into_response())
}
