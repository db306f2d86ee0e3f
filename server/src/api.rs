//! The JSON API under `/api/v1`. Each handler checks the caller's role and campaign
//! membership through `store::access::campaign_for` before touching anything.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use domain::{CampaignPatch, JudgmentInput, Need, NewCampaign, NewMember, Role};
use serde::{Deserialize, Serialize};
use store::access::campaign_for;
use uuid::Uuid;

use crate::auth::{Admin, User};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;
use futures::TryStreamExt;
use store::import::{import_reader, Format};

/// Largest JSON body the API takes.
pub const JSON_LIMIT: usize = 1 << 20;
/// Largest prompt-only import.
pub const PROMPTS_LIMIT: usize = 64 << 20;
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
        .route("/models", get(list_models).post(create_model))
        .route("/campaigns/{id}/generate", post(start_generation))
        .route("/campaigns/{id}/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/exports", get(list_exports).post(create_export))
        .route("/exports/{id}", get(get_export))
        .route("/exports/{id}/files/{name}", get(download_export_file))
        .route("/exports/{id}/train", post(start_training))
        .route("/training", get(list_training))
        .route("/training/{id}", get(get_training))
        .route("/training/{id}/cancel", post(cancel_training))
        .route("/users", get(list_users).post(invite_user))
        .route("/users/{id}", patch(patch_user))
        .merge(
            // Imports stream: the JSON limit does not apply, a much larger one does.
            Router::new()
                .route("/campaigns/{id}/items", post(import_items))
                .layer(DefaultBodyLimit::disable())
                .layer(tower_http::limit::RequestBodyLimitLayer::new(IMPORT_LIMIT)),
        )
        .merge(
            // Prompt lists are read whole, so they get a smaller limit than item imports.
            Router::new()
                .route("/campaigns/{id}/prompts", post(import_prompts))
                .layer(DefaultBodyLimit::max(PROMPTS_LIMIT)),
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
    let campaign = state
        .access
        .campaign(&state.pool, &user, id, Need::Label)
        .await?;
    Ok(
        match state
            .access
            .next(&state.pool, &campaign, user.id, query.exclude)
            .await?
        {
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
    state
        .access
        .campaign(&state.pool, &user, id, Need::Label)
        .await?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JudgmentQuery {
    /// Answer with the labeler's next item too, saving a request per item.
    #[serde(default)]
    next: bool,
    /// With `next`: an assignment the client already holds in reserve; the answer is another.
    exclude: Option<Uuid>,
}

#[derive(Serialize)]
struct JudgmentAnswer {
    #[serde(flatten)]
    ack: domain::JudgmentAck,
    /// When asked for: the next item, or null when nothing is left to hand out.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Option<domain::NextItem>>,
}

async fn submit_judgment(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<JudgmentQuery>,
    ApiJson(input): ApiJson<JudgmentInput>,
) -> ApiResult<Response> {
    let hand_out = query.next.then_some(store::queue::HandOut {
        exclude: query.exclude,
    });
    let (ack, next) = state
        .access
        .submit(&state.pool, &user, id, input, hand_out)
        .await?;
    let status = if ack.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let next = query.next.then_some(next);
    Ok((status, Json(JudgmentAnswer { ack, next })).into_response())
}

async fn list_models(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<domain::ModelRecord>>> {
    if user.role == Role::Labeler {
        return Err(store::StoreError::Forbidden("labelers may not list models".into()).into());
    }
    Ok(Json(store::jobs::list_models(&state.pool).await?))
}

/// Admins register a GGUF file or a Hugging Face directory that exists on this server.
async fn create_model(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(new): ApiJson<domain::NewModel>,
) -> ApiResult<(StatusCode, Json<domain::ModelRecord>)> {
    let new = new.validated()?;
    let path = std::path::Path::new(&new.path);
    let usable = match new.format() {
        domain::ModelFormat::Gguf => path.is_file(),
        domain::ModelFormat::Hf => path.join("config.json").is_file(),
    };
    if !usable {
        return Err(domain::Invalid(format!(
            "{} is neither a .gguf file nor a folder with config.json on this server",
            new.path
        ))
        .into());
    }
    let model = store::jobs::create_model(&state.pool, Some(admin.id), new).await?;
    Ok((StatusCode::CREATED, Json(model)))
}

/// Prompts without responses, one JSON value per line: a string, a message list, or
/// `{"prompt", "metadata"?, "id"?}`. All or nothing, with line-numbered errors.
async fn import_prompts(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    body: String,
) -> ApiResult<Response> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    let mut report = domain::ImportReport::default();
    let mut lines = Vec::new();
    for (index, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match domain::parse_prompt_line(line) {
            Ok(prompt) => lines.push(prompt),
            Err(e) => report.record_error(index as u64 + 1, e.0),
        }
    }
    if report.error_count == 0 && lines.is_empty() {
        report.record_error(0, "the input holds no prompts");
    }
    if report.error_count > 0 {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(report)).into_response());
    }
    report.imported = store::jobs::add_prompts(&state.pool, id, &lines).await?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

/// Queues generation for the campaign's prompts that have no candidates. An empty body
/// reuses the campaign's saved settings.
async fn start_generation(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    campaign_for(&state.pool, &user, id, Need::Manage).await?;
    let spec = match body {
        serde_json::Value::Object(map) if map.is_empty() => {
            store::jobs::saved_spec(&state.pool, id)
                .await?
                .unwrap_or_default()
        }
        other => serde_json::from_value::<domain::GenerateSpec>(other)
            .map_err(|e| domain::Invalid(format!("invalid generation settings: {e}")))?,
    };
    let (job_id, prompts) = store::jobs::start_generation(&state.pool, &user, id, spec).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job_id": job_id, "prompts": prompts })),
    ))
}

async fn list_jobs(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Vec<domain::JobRecord>>> {
    campaign_for(&state.pool, &user, id, Need::Analyse).await?;
    Ok(Json(store::jobs::list_for_campaign(&state.pool, id).await?))
}

/// A job of a campaign the caller may analyse (admins: every job).
async fn visible_job(
    state: &AppState,
    user: &domain::CurrentUser,
    id: Uuid,
    need: Need,
) -> ApiResult<domain::JobRecord> {
    let job = store::jobs::get(&state.pool, id).await?;
    match job.campaign_id {
        Some(campaign) => {
            campaign_for(&state.pool, user, campaign, need).await?;
        }
        None if user.is_admin() => {}
        None => return Err(store::StoreError::NotFound.into()),
    }
    Ok(job)
}

async fn get_job(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::JobRecord>> {
    Ok(Json(visible_job(&state, &user, id, Need::Analyse).await?))
}

async fn cancel_job(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::JobRecord>> {
    visible_job(&state, &user, id, Need::Manage).await?;
    Ok(Json(store::jobs::cancel(&state.pool, user.id, id).await?))
}

async fn create_export(
    State(state): State<AppState>,
    User(user): User,
    ApiJson(spec): ApiJson<domain::ExportSpec>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let id = start_export(&state, &user, spec).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))))
}

/// Researchers and admins only; every campaign must be one the caller may analyse, and only
/// admins may reveal who labeled what. The export runs in the background of this server.
pub async fn start_export(
    state: &AppState,
    user: &domain::CurrentUser,
    spec: domain::ExportSpec,
) -> Result<Uuid, store::StoreError> {
    if user.role == Role::Labeler {
        return Err(store::StoreError::Forbidden(
            "labelers may not export data".into(),
        ));
    }
    let spec = spec.validated()?;
    for campaign in &spec.campaigns {
        campaign_for(&state.pool, user, *campaign, Need::Analyse).await?;
    }
    if spec.reveal_labelers && !user.is_admin() {
        return Err(store::StoreError::Forbidden(
            "only admins may export labelers' e-mails".into(),
        ));
    }
    let id = Uuid::now_v7();
    let dir = state.data_dir.join("exports").join(id.to_string());
    store::export::create(
        &state.pool,
        id,
        Some(user.id),
        &spec,
        &dir.to_string_lossy(),
    )
    .await?;
    crate::export::spawn(state.pool.clone(), id, spec, dir);
    Ok(id)
}

async fn visible_export(
    state: &AppState,
    user: &domain::CurrentUser,
    id: Uuid,
) -> ApiResult<(domain::ExportRecord, String)> {
    Ok(store::training::visible_export(&state.pool, user, id).await?)
}

/// Queues a reward-model or DPO run on a finished export; a worker picks it up.
async fn start_training(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(new): ApiJson<domain::NewTrainingRun>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let run = store::training::create(&state.pool, &user, id, new).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": run }))))
}

async fn list_training(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<domain::TrainingRecord>>> {
    Ok(Json(store::training::list_for(&state.pool, &user).await?))
}

async fn get_training(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::TrainingRecord>> {
    Ok(Json(
        store::training::get_visible(&state.pool, &user, id).await?,
    ))
}

async fn cancel_training(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::TrainingRecord>> {
    Ok(Json(store::training::cancel(&state.pool, &user, id).await?))
}

async fn list_exports(
    State(state): State<AppState>,
    User(user): User,
) -> ApiResult<Json<Vec<domain::ExportRecord>>> {
    Ok(Json(store::export::list_for(&state.pool, &user).await?))
}

async fn get_export(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<domain::ExportRecord>> {
    Ok(Json(visible_export(&state, &user, id).await?.0))
}

/// Streams one file of a finished export; only names the export recorded are served.
async fn download_export_file(
    State(state): State<AppState>,
    User(user): User,
    ApiPath((id, name)): ApiPath<(Uuid, String)>,
) -> ApiResult<Response> {
    let (record, dir) = visible_export(&state, &user, id).await?;
    if record.status != domain::ExportStatus::Done {
        return Err(store::StoreError::Conflict("the export has not finished".into()).into());
    }
    let file = record
        .files
        .iter()
        .find(|f| f.name == name)
        .ok_or(store::StoreError::NotFound)?;
    let path = std::path::Path::new(&dir).join(&file.name);
    let handle = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::error!("export {id}: cannot open {}: {e}", path.display());
        store::StoreError::Conflict("the export's files are gone from the server".into())
    })?;
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
        Body::from_stream(tokio_util::io::ReaderStream::new(handle)),
    )
        .into_response())
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
