//! The `pairwise` server: HTTP (the JSON API, the Leptos UI, auth), the background workers
//! and the command-line tools, over the operations in `ops`.

pub mod application;
pub mod cli;
pub mod config;
pub mod http;
pub mod passwords;
pub mod telemetry;
pub mod workers;

pub use application::{Application, Settings};

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

/// What every request handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The operations both front ends call, with the pool and access copies they run on.
    pub ops: ops::Ops,
    pub leptos_options: LeptosOptions,
    pub metrics: telemetry::Metrics,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// The header a trusted reverse proxy puts the client's address in, if any.
    pub trusted_proxy_header: Option<String>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
