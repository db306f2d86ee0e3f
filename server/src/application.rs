//! Start-up: the one way to assemble a serving Pairwise from a migrated database and its
//! settings, used by `pairwise serve` and by the tests alike.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use store::PgPool;

use crate::{http, telemetry, workers, AppState};

pub struct Settings {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Folder with the built site (`pkg/`, assets), as cargo-leptos writes it.
    pub site_root: String,
    /// Scratch folders and checkpoints of the workers are written under it.
    pub data_dir: PathBuf,
    /// Where exports and checkpoints are kept for every process (by default `data_dir`).
    pub storage: storage::Storage,
    /// Mark cookies `Secure` (serve behind HTTPS).
    pub secure_cookies: bool,
    /// Behind a reverse proxy: the header it sets to the client's address (e.g.
    /// `X-Forwarded-For`). Unset, the connection's peer is the client.
    pub trusted_proxy_header: Option<String>,
    /// The workers that run inside the server.
    pub workers: workers::Counts,
    /// How long finished exports keep their files (for ever when unset).
    pub export_retention: Option<std::time::Duration>,
}

/// A bound listener, the shared state, and the workers running beside it.
pub struct Application {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    state: AppState,
    stop_workers: tokio::sync::watch::Sender<bool>,
}

impl Application {
    pub async fn build(pool: PgPool, settings: Settings) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let stop_workers = workers::spawn(
            &pool,
            &settings.storage,
            settings.workers,
            &settings.data_dir,
            settings.export_retention,
        );
        let state = AppState {
            ops: ops::Ops {
                access: store::access_cache::AccessCache::listen(&pool),
                pool,
                storage: settings.storage,
            },
            leptos_options: http::leptos_options(addr, &settings.site_root),
            metrics: telemetry::metrics(),
            secure_cookies: settings.secure_cookies,
            trusted_proxy_header: settings.trusted_proxy_header,
        };
        Ok(Self {
            addr,
            listener,
            state,
            stop_workers,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or Ctrl-C, lets requests in flight finish, then stops the workers.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = http::serve(self.listener, self.state).await;
        let _ = self.stop_workers.send(true);
        served
    }
}
