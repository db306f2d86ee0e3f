//! The JSON API under `/api/v1`: one module per resource. Every handler is an adapter: it
//! parses the request, calls the operation in `ops` (which checks who may do it) and maps
//! the answer or the error to HTTP.

mod campaigns;
mod exports;
mod generation;
mod labeling;
mod training;
mod users;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};

use super::auth::User;
use crate::AppState;

/// Largest JSON body the API takes.
pub const JSON_LIMIT: usize = 1 << 20;
/// Largest prompt-only import.
pub const PROMPTS_LIMIT: usize = 64 << 20;
/// Largest import upload.
pub const IMPORT_LIMIT: usize = 512 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route(
            "/campaigns/{id}",
            get(campaigns::get).patch(campaigns::update),
        )
        .route(
            "/campaigns/{id}/members",
            get(campaigns::members).post(campaigns::add_member),
        )
        .route(
            "/campaigns/{id}/members/{user_id}",
            delete(campaigns::remove_member),
        )
        .route("/campaigns/{id}/next", get(labeling::next))
        .route("/campaigns/{id}/progress", get(labeling::progress))
        .route("/campaigns/{id}/stats", get(campaigns::stats))
        .route("/assignments/{id}/judgment", post(labeling::submit))
        .route(
            "/models",
            get(generation::list_models).post(generation::register_model),
        )
        .route("/campaigns/{id}/generate", post(generation::start))
        .route("/campaigns/{id}/jobs", get(generation::jobs))
        .route("/jobs/{id}", get(generation::job))
        .route("/jobs/{id}/cancel", post(generation::cancel))
        .route("/exports", get(exports::list).post(exports::start))
        .route("/exports/{id}", get(exports::get))
        .route("/exports/{id}/files/{name}", get(exports::download))
        .route("/exports/{id}/cancel", post(exports::cancel))
        .route("/exports/{id}/train", post(training::start))
        .route("/training", get(training::list))
        .route("/training/{id}", get(training::get))
        .route("/training/{id}/cancel", post(training::cancel))
        .route("/users", get(users::list).post(users::invite))
        .route("/users/{id}", patch(users::update))
        .merge(
            // Imports stream: the JSON limit does not apply, a much larger one does.
            Router::new()
                .route("/campaigns/{id}/items", post(campaigns::import_items))
                .layer(DefaultBodyLimit::disable())
                .layer(tower_http::limit::RequestBodyLimitLayer::new(IMPORT_LIMIT)),
        )
        .merge(
            // Prompt lists are read whole, so they get a smaller limit than item imports.
            Router::new()
                .route("/campaigns/{id}/prompts", post(generation::import_prompts))
                .layer(DefaultBodyLimit::max(PROMPTS_LIMIT)),
        )
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
}

async fn me(User(user): User) -> Json<domain::CurrentUser> {
    Json(user)
}

/// An import's answer: 201 when everything was imported, 422 with the line-numbered report
/// when nothing was.
fn import_answer(report: domain::ImportReport) -> axum::response::Response {
    let status = if report.error_count == 0 {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, Json(report)).into_response()
}

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../../openapi.json");

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(OPENAPI),
    )
}
