//! The JSON API under `/api/v1`. Each handler checks the caller's role and campaign
//! membership through `store::access::campaign_for` before touching anything.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use domain::{CampaignPatch, JudgmentInput, Need, NewCampaign, NewMember, Role};
use serde::Deserialize;
use store::access::campaign_for;
use uuid::Uuid;

use crate::auth::{Admin, User};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;
use futures::TryStreamExt;
use store::import::{import_reader, Format};

/// Largest JSON body the API takes.
pub const JSON_LIMIT: usize = 1 << 20;
/// Largest import upload.
pub const IMPORT_LIMIT: usize = 512 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/campaigns", get(list_campaigns).post(create_campaign))
        .route("/campaigns/{id}", get(get_campaign).patch(patch_campaign))
        .route(
            "/campaigns/{id}/members",
            get(list_members).post(add_member),
        )
        .route("/campaigns/{id}/members/{user_id}", delete(remove_member))
        .route("/campaigns/{id}/next", get(next_item))
        .route("/campaigns/{id}/progress", get(progress))
        .route("/campaigns/{id}/stats", get(stats))
        .route("/assignments/{id}/judgment", post(submit_judgment))
        .route("/users", get(list_users).post(invite_user))
        .route("/users/{id}", patch(patch_user))
        .merge(
            // Imports stream: the JSON limit does not apply, a much larger one does.
            Router::new()
                .route("/campaigns/{id}/items", post(import_items))
                .layer(DefaultBodyLimit::disable())
                .layer(tower_http::limit::RequestBodyLimitLayer::new(IMPORT_LIMIT)),
        )
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
}

async fn me(User(user): User) -> Json<domain::CurrentUser> {
    Json(user)
}

async fn list_campaigns(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<domain::Campaign>>> {
    Ok(Json(store::campaigns::list_for(&state.pool, &user).await?))
}

async fn create_campaign(
    State(state): State<AppState>,
    Admin(user): Admin,
    ApiJson(new): ApiJson<NewCampaign>,
) -> ApiResult<(StatusCode, Json<domain::Campaign>)> {
    let campaign = store::campaigns::create(&state.pool, &user, new).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

async fn get_campaign(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::Campaign>> {
    Ok(Json(
        campaign_for(&state.pool, &user, id, Need::View).await?,
    ))
}

async fn patch_campaign(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<CampaignPatch>,
) -> ApiResult<Json<domain::Campaign>> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    Ok(Json(
        store::campaigns::update(&state.pool, &user, id, patch).await?,
    ))
}

async fn list_members(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<domain::Member>>> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    Ok(Json(store::campaigns::members(&state.pool, id).await?))
}

async fn add_member(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(new): ApiJson<NewMember>,
) -> ApiResult<(StatusCode, Json<domain::Member>)> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    let member = store::campaigns::add_member(&state.pool, &user, id, new).await?;
    Ok((StatusCode::CREATED, Json(member)))
}

async fn remove_member(
    State(state): State<AppState>,
    User(user): User,
    ApiPath((id, member)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    store::campaigns::remove_member(&state.pool, &user, id, member).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// JSONL by default; CSV when the Content-Type says so. Streams the body.
async fn import_items(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    request: Request,
) -> ApiResult<Response> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    let format = Format::guess(
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
    let report = import_reader(&state.pool, id, format, reader).await?;
    metrics::counter!("pairwise_imported_items_total").increment(report.items);
    let status = if report.error_count == 0 {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(report)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NextQuery {
    /// An assignment the client already shows; the answer is another one (prefetch).
    exclude: Option<Uuid>,
}

async fn next_item(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<NextQuery>,
) -> ApiResult<Response> {
    let campaign = campaign_for(&state.pool, &user, id, Need::Label).await?;
    Ok(
        match store::queue::next(&state.pool, &campaign, user.id, query.exclude).await? {
            Some(item) => Json(item).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

async fn progress(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::Progress>> {
    campaign_for(&state.pool, &user, id, Need::Label).await?;
    Ok(Json(
        store::queue::progress(&state.pool, id, user.id).await?,
    ))
}

async fn stats(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::CampaignStats>> {
    let campaign = campaign_for(&state.pool, &user, id, Need::Analyse).await?;
    Ok(Json(
        store::stats::campaign_stats(&state.pool, &campaign).await?,
    ))
}

async fn submit_judgment(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<JudgmentInput>,
) -> ApiResult<Response> {
    let campaign_id = store::queue::assignment_campaign(&state.pool, id, user.id).await?;
    campaign_for(&state.pool, &user, campaign_id, Need::Label).await?;
    let ack = store::queue::submit(&state.pool, user.id, id, input).await?;
    if ack.created {
        metrics::counter!("pairwise_judgments_total").increment(1);
    }
    let status = if ack.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ack)).into_response())
}

async fn list_users(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> ApiResult<Json<Vec<domain::UserSummary>>> {
    Ok(Json(store::accounts::list_users(&state.pool).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    email: String,
    role: Role,
}

/// Creates an account without a password; the answer carries the one-time invitation path.
async fn invite_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(invite): ApiJson<Invite>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let (id, secret) =
        store::accounts::invite_user(&state.pool, admin.id, &invite.email, invite.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "invite_path": format!("/invite/{secret}") })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    disabled: bool,
}

async fn patch_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<StatusCode> {
    store::accounts::set_disabled(&state.pool, admin.id, id, patch.disabled).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(OPENAPI),
    )
}
