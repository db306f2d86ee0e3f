//! The `pairwise` server: configuration, authentication, the JSON API, the Leptos UI and the
//! command-line tools, wired onto the `store` and `domain` crates.

pub mod access_cache;
pub mod api;
pub mod auth;
pub mod bench;
pub mod config;
pub mod error;
pub mod export;
pub mod generate;
pub mod telemetry;
pub mod train;
pub mod training;
pub mod web;
pub mod worker;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use store::PgPool;

/// What every request handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub leptos_options: LeptosOptions,
    pub metrics: telemetry::Metrics,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Where exports write their files (`exports/<id>/`).
    pub data_dir: std::path::PathBuf,
    /// Callers and campaign rights kept in memory for the labeling requests.
    pub access: store::access_cache::AccessCache,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
