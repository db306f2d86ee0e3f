//! Campaigns, their members, statistics and item imports.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use domain::{Campaign, CampaignPatch, CampaignStats, Member, NewCampaign, NewMember};
use futures::TryStreamExt;
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub async fn list(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<Campaign>>> {
    Ok(Json(ops::campaigns::list(&state.ops, &user).await?))
}

pub async fn create(
    State(state): State<AppState>,
    User(user): User,
    ApiJson(new): ApiJson<NewCampaign>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    let campaign = ops::campaigns::create(&state.ops, &user, new).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

pub async fn get(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(ops::campaigns::get(&state.ops, &user, id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<CampaignPatch>,
) -> ApiResult<Json<Campaign>> {
    Ok(Json(
        ops::campaigns::update(&state.ops, &user, id, patch).await?,
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    #[serde(default)]
    with_judgments: bool,
}

pub async fn delete(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    ops::campaigns::delete(&state.ops, &user, id, query.with_judgments).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stats(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<CampaignStats>> {
    Ok(Json(ops::campaigns::stats(&state.ops, &user, id).await?))
}

/// `GET /api/v1/campaigns/{id}/quality`: agreement, per-labeler figures and throughput.
pub async fn quality(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::quality::CampaignQuality>> {
    Ok(Json(ops::quality::campaign(&state.ops, &user, id).await?))
}

pub async fn members(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(ops::campaigns::members(&state.ops, &user, id).await?))
}

pub async fn add_member(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(new): ApiJson<NewMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let member = ops::campaigns::add_member(&state.ops, &user, id, new).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

pub async fn remove_member(
    State(state): State<AppState>,
    User(user): User,
    ApiPath((id, member)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    ops::campaigns::remove_member(&state.ops, &user, id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// JSONL by default; CSV when the Content-Type says so. Streams the body.
pub async fn import_items(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    request: Request,
) -> ApiResult<Response> {
    let format = ops::imports::Format::guess(
        request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let report = ops::imports::items(&state.ops, &user, id, format, reader).await?;
    Ok(super::import_answer(report))
}
