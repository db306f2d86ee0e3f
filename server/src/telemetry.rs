//! Logging and Prometheus metrics.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Handle to the process-wide Prometheus recorder.
#[derive(Clone)]
pub struct Metrics(PrometheusHandle);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder on first use; later calls (several servers in one test process)
/// share it.
pub fn metrics() -> Metrics {
    Metrics(
        HANDLE
            .get_or_init(|| {
                let recorder = PrometheusBuilder::new()
                    .set_buckets(&[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ])
                    .map(|b| b.build_recorder())
                    .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
                let handle = recorder.handle();
                // Fails only if another recorder is installed, which this process never does.
                let _ = metrics::set_global_recorder(recorder);
                handle
            })
            .clone(),
    )
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PAIRWISE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Counts requests and their latency per route pattern (never per raw path: ids would
/// explode the label set).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let method = request.method().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("pairwise_http_requests_total", &labels).increment(1);
    metrics::histogram!("pairwise_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.0.render(),
    )
}
