//! Security headers on every answer: the Content-Security-Policy (pages send theirs, with
//! their nonce, as they render: `app::security`), no framing (clickjacking), no content
//! sniffing, no referrer beyond this site, and HSTS when the site is served over HTTPS.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// The policy of answers that are not pages (they run no inline script), made once.
static POLICY_WITHOUT_NONCE: std::sync::LazyLock<Option<HeaderValue>> =
    std::sync::LazyLock::new(|| {
        HeaderValue::from_str(&app::security::content_security_policy(None)).ok()
    });

pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Some(policy) = &*POLICY_WITHOUT_NONCE {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
        }
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Secure cookies mean the site is served over HTTPS: browsers should never use HTTP.
    if state.secure_cookies {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}
