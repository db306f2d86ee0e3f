//! HTTP: the router (Leptos pages and server functions, the JSON API, auth forms, health and
//! metrics, static files), its middleware, and the serve loop with graceful shutdown.

pub mod api;
pub mod auth;
pub mod error;
mod forget_access;
mod headers;

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;

use crate::{telemetry, AppState};

/// Site options without reading Cargo.toml at run time, so the binary runs from anywhere:
/// `site_root` holds the built `pkg/` and assets.
pub fn leptos_options(addr: SocketAddr, site_root: &str) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("pairwise")
        .site_root(site_root)
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let ops = state.ops.clone();
    let options = state.leptos_options.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ops.clone()),
            move || app::shell(options.clone()),
        )
        .merge(auth::routes())
        .nest("/api/v1", api::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forget_access::forget_after_changes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::resolve_user,
        ));
    Router::new()
        .merge(pages)
        .route("/api/openapi.json", get(api::openapi))
        .route("/healthz", get(healthz))
        .route("/metrics", get(telemetry::render))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(axum::middleware::from_fn(telemetry::track))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            headers::security_headers,
        ))
        .layer(CompressionLayer::new())
        .with_state(state)
}

/// 200 while the database answers; 503 at once when it does not (a load balancer's probe
/// must not wait for the pool's acquire timeout).
async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::http::StatusCode {
    let probe = sqlx::query("SELECT 1").execute(&state.ops.pool);
    match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => axum::http::StatusCode::OK,
        _ => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Serves until SIGTERM or Ctrl-C, then lets requests in flight finish.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
