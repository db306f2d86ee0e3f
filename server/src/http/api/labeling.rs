//! The labeling loop: next item, judgment (optionally with the next item), progress.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{JudgmentInput, Progress};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http::auth::User;
use crate::http::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// An assignment the client already shows; the answer is another one (prefetch).
    exclude: Option<Uuid>,
}

pub async fn next(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<NextQuery>,
) -> ApiResult<Response> {
    Ok(
        match ops::labeling::next(&state.ops, &user, id, query.exclude).await? {
            Some(item) => Json(item).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

pub async fn progress(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Progress>> {
    Ok(Json(ops::labeling::progress(&state.ops, &user, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgmentQuery {
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

pub async fn submit(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<JudgmentQuery>,
    ApiJson(input): ApiJson<JudgmentInput>,
) -> ApiResult<Response> {
    let hand_out = query.next.then_some(ops::labeling::HandOut {
        exclude: query.exclude,
    });
    let (ack, next) = ops::labeling::submit(&state.ops, &user, id, input, hand_out).await?;
    let status = if ack.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let next = query.next.then_some(next);
    Ok((status, Json(JudgmentAnswer { ack, next })).into_response())
}

/// `PUT /api/v1/judgments/{id}`: the labeler's new answer to their last judgment, within
/// the campaign's undo window.
pub async fn revise(
    State(state): State<AppState>,
    User(user): User,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<JudgmentInput>,
) -> ApiResult<Json<domain::JudgmentAck>> {
    Ok(Json(
        ops::labeling::revise(&state.ops, &user, id, input).await?,
    ))
}
