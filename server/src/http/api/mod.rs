//! The JSON API under `/api/v1`: one module per resource. Every handler is an adapter: it
//! parses the request, calls the operation in `ops` (which checks who may do it) and maps
//! the answer or the error to HTTP.

mod campaigns;
mod exports;
mod generation;
mod items;
mod labeling;
mod training;
mod users;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use axum::{Json, Router};

use super::auth::User;
use crate::AppState;

/// Largest JSON body the API takes.
pub const JSON_LIMIT: usize = 1 << 20;
/// Largest prompt-only import.
pub const PROMPTS_LIMIT: usize = 64 << 20;
/// Largest import upload.
pub const IMPORT_LIMIT: usize = 512 << 20;

/// Declares the API's routes once: the router, and [`ROUTES`], the list the authorization
/// matrix and the OpenAPI tests check themselves against (so that a route cannot be added
/// without them noticing). A route may name layers of its own after `with`.
macro_rules! api {
    ($( $path:literal $( with [$($layer:expr),+] )? => { $( $method:ident $handler:path ),+ } )*) => {
        /// Every route of the JSON API as (method, path under `/api/v1`).
        pub const ROUTES: &[(&str, &str)] = &[ $( $( (stringify!($method), $path), )+ )* ];

        pub fn routes() -> Router<AppState> {
            Router::new()
                $( .merge({
                    let route = Router::new()
                        .route($path, MethodRouter::new() $( .$method($handler) )+);
                    $( $( let route = route.layer($layer); )+ )?
                    route
                }) )*
                .layer(DefaultBodyLimit::max(JSON_LIMIT))
        }
    };
}

api! {
    "/me" => { get me }
    "/campaigns" => { get campaigns::list, post campaigns::create }
    "/campaigns/{id}" => { get campaigns::get, patch campaigns::update, delete campaigns::delete }
    "/campaigns/{id}/members" => { get campaigns::members, post campaigns::add_member }
    "/campaigns/{id}/members/{user_id}" => { delete campaigns::remove_member }
    "/campaigns/{id}/next" => { get labeling::next }
    "/campaigns/{id}/progress" => { get labeling::progress }
    "/campaigns/{id}/stats" => { get campaigns::stats }
    "/campaigns/{id}/quality" => { get campaigns::quality }
    "/assignments/{id}/judgment" => { post labeling::submit }
    "/judgments/{id}" => { put labeling::revise }
    "/models" => { get generation::list_models, post generation::register_model }
    "/campaigns/{id}/generate" => { post generation::start }
    "/campaigns/{id}/regenerate" => { post generation::regenerate }
    "/campaigns/{id}/jobs" => { get generation::jobs }
    "/jobs/{id}" => { get generation::job }
    "/jobs/{id}/cancel" => { post generation::cancel }
    "/exports" => { get exports::list, post exports::start }
    "/exports/{id}" => { get exports::get }
    "/exports/{id}/files/{name}" => { get exports::download }
    "/exports/{id}/cancel" => { post exports::cancel }
    "/exports/{id}/train" => { post training::start }
    "/training" => { get training::list }
    "/training/{id}" => { get training::get }
    "/training/{id}/cancel" => { post training::cancel }
    "/items/{id}" => { get items::get }
    "/users" => { get users::list, post users::invite }
    "/users/{id}" => { patch users::update }
    // Imports stream: the JSON limit does not apply, a much larger one does.
    "/campaigns/{id}/items" with [
        DefaultBodyLimit::disable(),
        tower_http::limit::RequestBodyLimitLayer::new(IMPORT_LIMIT)
    ] => { get items::list, post campaigns::import_items }
    // Prompt lists are read whole, so they get a smaller limit than item imports.
    "/campaigns/{id}/prompts" with [DefaultBodyLimit::max(PROMPTS_LIMIT)] => {
        post generation::import_prompts
    }
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
