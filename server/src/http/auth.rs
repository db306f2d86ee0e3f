//! Sessions (cookie) and API tokens (bearer), the request guard that resolves them, and the
//! login, logout and invitation form handlers (passwords are `crate::passwords`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, request::Parts, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use domain::CurrentUser;
use serde::Deserialize;

use super::error::ApiError;
use crate::passwords::{hash_password, verify_password, PasswordError};
use crate::AppState;

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => ApiError::Op(ops::Error::RateLimited),
            PasswordError::Hashing(_) => ApiError::Internal(e.into()),
        }
    }
}

/// The client's address: the connection's peer, or, behind a reverse proxy, the last entry
/// of the header that proxy sets (`PAIRWISE_TRUSTED_PROXY_HEADER`; the last entry is the one
/// the proxy itself added, so a client cannot forge it). Without that setting the header is
/// ignored, so clients cannot choose their address.
pub fn client_address(
    parts: &Parts,
    peer: SocketAddr,
    trusted_header: Option<&str>,
) -> std::net::IpAddr {
    trusted_header
        .and_then(|name| parts.headers.get_all(name).iter().next_back())
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .map(str::trim)
        .and_then(|last| last.parse().ok())
        .unwrap_or_else(|| peer.ip())
}

/// The address login attempts are counted under: an IPv6 client holds a whole /64, so
/// that is what counts, or it could rotate addresses past every limit.
fn throttle_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(ip, std::net::IpAddr::V4)
            .to_string(),
        std::net::IpAddr::V4(_) => ip.to_string(),
    }
}

pub const SESSION_COOKIE: &str = "pairwise_session";

/// Declares the form routes once: the router ([`routes`]) and [`ROUTES`], the list the
/// authorization tests check themselves against, so that a form route cannot be added
/// without them noticing.
macro_rules! forms {
    ($( $method:ident $path:literal => $handler:path ),* $(,)?) => {
        /// Every route of the login, logout and invitation forms as (method, path).
        pub const ROUTES: &[(&str, &str)] = &[ $( (stringify!($method), $path), )* ];

        /// The login, logout and invitation forms.
        pub fn routes() -> axum::Router<AppState> {
            axum::Router::new() $( .route($path, axum::routing::$method($handler)) )*
        }
    };
}

forms! {
    post "/auth/login" => login,
    post "/auth/logout" => logout,
    post "/auth/invite/{secret}" => accept_invite,
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// How the caller proved who they are; cookie requests get the CSRF check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Token,
}

/// Cross-site request forgery guard for cookie-authenticated writes: the session cookie is
/// SameSite=Lax, and a state-changing request that names an origin must name ours.
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return true;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/') == host)
        .unwrap_or(false)
}

/// Resolves the caller once per request and leaves it in the request extensions, where the
/// API handlers and the Leptos server functions both find it.
pub async fn resolve_user(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let (secret, via) = match bearer(&parts) {
        Some(token) => (Some(token.to_string()), Via::Token),
        None => (
            CookieJar::from_headers(&parts.headers)
                .get(SESSION_COOKIE)
                .map(|c| c.value().to_string()),
            Via::Cookie,
        ),
    };
    if let Some(secret) = secret {
        match state.ops.access.caller(&state.ops.pool, &secret).await {
            Ok(Some(user)) => {
                let unsafe_method =
                    !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
                if via == Via::Cookie && unsafe_method && !same_origin(&parts) {
                    return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
                }
                parts.extensions.insert(user);
                parts.extensions.insert(via);
            }
            Ok(None) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The signed-in caller; requests without one get 401.
pub struct User(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .map(User)
            .ok_or(ApiError::Unauthenticated)
    }
}

fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time_days(store::accounts::SESSION_DAYS))
        .build()
}

fn time_days(days: i64) -> time::Duration {
    time::Duration::days(days)
}

#[derive(Deserialize)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub next: Option<String>,
}

/// Only same-site paths are followed after login (no open redirects): ASCII (a redirect's
/// header takes nothing else), one leading `/`, and no backslash or control character anywhere, since browsers drop tabs and newlines and
/// read `\` as `/` (`/\t/evil.example` would become `//evil.example`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.is_ascii()
                && path.starts_with('/')
                && !path.starts_with("//")
                && !path.chars().any(|c| c == '\\' || c.is_control()) =>
        {
            path
        }
        _ => "/",
    }
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&parts) {
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    let ip = throttle_key(client_address(
        &parts,
        peer,
        state.trusted_proxy_header.as_deref(),
    ));
    match try_login(&state, &form, &ip).await {
        Ok(secret) => (
            jar.add(session_cookie(secret, state.secure_cookies)),
            Redirect::to(safe_next(form.next.as_deref())),
        )
            .into_response(),
        Err(ApiError::Op(ops::Error::RateLimited)) => {
            Redirect::to(&login_again("throttled", &form)).into_response()
        }
        Err(ApiError::Unauthenticated) => {
            Redirect::to(&login_again("invalid", &form)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The sign-in page again after a failure: why, the e-mail that was typed (so it need not be
/// typed again) and where the user was going.
fn login_again(error: &str, form: &LoginForm) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", error)
        .append_pair("email", &form.email)
        .append_pair("next", safe_next(form.next.as_deref()))
        .finish();
    format!("/login?{query}")
}

async fn try_login(state: &AppState, form: &LoginForm, ip: &str) -> Result<String, ApiError> {
    let pool = &state.ops.pool;
    // Counted as a failure from here on, unless the password turns out right.
    let attempt = store::accounts::begin_login(pool, &form.email, ip).await?;
    let credentials = store::accounts::credentials(pool, &form.email).await?;
    let ok = match &credentials {
        Some(c) if !c.disabled => match &c.password_hash {
            Some(hash) => verify_password(form.password.clone(), hash.clone()).await?,
            None => false,
        },
        _ => false,
    };
    match credentials {
        Some(c) if ok => {
            store::accounts::login_succeeded(pool, attempt).await?;
            Ok(store::accounts::create_session(pool, c.user.id).await?)
        }
        _ => Err(ApiError::Unauthenticated),
    }
}

pub async fn logout(State(state): State<AppState>, parts: Parts, jar: CookieJar) -> Response {
    if !same_origin(&parts) {
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        if let Err(e) = store::accounts::delete_session(&state.ops.pool, cookie.value()).await {
            return ApiError::from(e).into_response();
        }
    }
    (
        jar.remove(Cookie::build(SESSION_COOKIE).path("/").build()),
        Redirect::to("/login"),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct InviteForm {
    pub password: String,
}

/// Sets the invited user's password and signs them in.
pub async fn accept_invite(
    State(state): State<AppState>,
    axum::extract::Path(secret): axum::extract::Path<String>,
    jar: CookieJar,
    parts: Parts,
    Form(form): Form<InviteForm>,
) -> Response {
    if !same_origin(&parts) {
        return (StatusCode::FORBIDDEN, "cross-origin request refused").into_response();
    }
    let result = async {
        domain::validate_password(&form.password)?;
        // Only an open invitation is worth the cost of a hash.
        store::accounts::invite_email(&state.ops.pool, &secret).await?;
        let hash = hash_password(form.password).await?;
        let user_id = store::accounts::accept_invite(&state.ops.pool, &secret, &hash).await?;
        Ok::<_, ApiError>(store::accounts::create_session(&state.ops.pool, user_id).await?)
    }
    .await;
    match result {
        Ok(session) => (
            jar.add(session_cookie(session, state.secure_cookies)),
            Redirect::to("/"),
        )
            .into_response(),
        Err(ApiError::Op(ops::Error::Invalid(_))) => {
            Redirect::to(&format!("/invite/{secret}?error=weak")).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(throttle_key(a), throttle_key(b));
        assert_eq!(throttle_key("203.0.113.9".parse().unwrap()), "203.0.113.9");
        assert_eq!(
            throttle_key("::ffff:203.0.113.9".parse().unwrap()),
            "203.0.113.9"
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/campaigns/x")), "/campaigns/x");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/\u{7f}/evil.example")), "/");
        assert_eq!(safe_next(Some("/a?b=c#d")), "/a?b=c#d");
        assert_eq!(safe_next(Some("/caf\u{e9}")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
