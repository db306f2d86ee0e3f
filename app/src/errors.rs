//! What a page says when something fails: every server function answers [`AppError`], which
//! keeps the kind of failure across the wire, so the page can say it as a sentence and offer
//! a way forward (sign in, back to the campaigns, ask an admin) instead of a raw error text.

use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// No session, or it ran out.
    SignedOut,
    /// Missing, or not shared with the caller (the two look the same on purpose).
    NotFound,
    /// The caller may see this but not do it.
    Forbidden(String),
    /// The request clashes with the current state: a paused campaign, a judged item.
    Conflict(String),
    /// The input was refused, with why.
    Invalid(String),
    RateLimited,
    /// A fault on the server; the detail is in its log.
    Internal,
    /// The request did not reach the server or its answer did not come back.
    Unreachable(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Request(e) => AppError::Unreachable(e),
            ServerFnErrorErr::Args(e) | ServerFnErrorErr::MissingArg(e) => AppError::Invalid(e),
            _ => AppError::Internal,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence())
    }
}

#[cfg(feature = "ssr")]
impl From<ops::Error> for AppError {
    fn from(e: ops::Error) -> Self {
        e.log_if_internal("server function");
        match e {
            ops::Error::NotFound => AppError::NotFound,
            ops::Error::Forbidden(m) => AppError::Forbidden(m),
            ops::Error::Conflict(m) => AppError::Conflict(m),
            ops::Error::Invalid(e) => AppError::Invalid(e.0),
            ops::Error::Input(e) => AppError::Invalid(format!("could not read the input: {e}")),
            ops::Error::RateLimited => AppError::RateLimited,
            ops::Error::Internal(_) => AppError::Internal,
        }
    }
}

impl From<domain::Invalid> for AppError {
    fn from(e: domain::Invalid) -> Self {
        AppError::Invalid(e.0)
    }
}

/// `text` as the start of a sentence: capital first letter, a full stop at the end.
fn as_sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let mut sentence: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !sentence.ends_with(['.', '!', '?']) {
        sentence.push('.');
    }
    sentence
}

impl AppError {
    /// What happened, in plain words.
    pub fn sentence(&self) -> String {
        match self {
            AppError::SignedOut => "You are signed out.".into(),
            AppError::NotFound => "This does not exist, or it is not shared with you.".into(),
            AppError::Forbidden(why) => {
                format!("You do not have access to this ({}).", why.trim_end_matches('.'))
            }
            AppError::Conflict(why) | AppError::Invalid(why) => as_sentence(why),
            AppError::RateLimited => {
                "Too many attempts. Wait a few minutes and try again.".into()
            }
            AppError::Internal => {
                "Something went wrong on the server. Try again; if it keeps happening, tell your admin.".into()
            }
            AppError::Unreachable(_) => {
                "The server could not be reached. Check your connection and try again.".into()
            }
        }
    }
}

/// The path and query of the page on screen, to come back to after signing in.
pub fn here() -> String {
    let location = leptos_router::hooks::use_location();
    let (path, query) = (
        location.pathname.get_untracked(),
        location.search.get_untracked(),
    );
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.trim_start_matches('?'))
    }
}

/// The sign-in page, coming back to `next` afterwards.
pub fn login_path(next: &str) -> String {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/login?next={next}")
}

/// An error as a page shows it: the sentence and what the reader can do next.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    let way_forward = match &error {
        AppError::SignedOut => Some(view! { <a href=login_path(&here())>"Sign in again"</a> }.into_any()),
        AppError::NotFound | AppError::Forbidden(_) => Some(
            view! {
                <a href="/">"Back to the campaign list"</a>
                {matches!(error, AppError::Forbidden(_)).then_some(" · Ask an admin if you need this.")}
            }
            .into_any(),
        ),
        _ => None,
    };
    view! {
        <div class="error" role="alert">
            <p>{error.sentence()}</p>
            {way_forward.map(|w| view! { <p class="way-forward">{w}</p> })}
        </div>
    }
}

pub fn error_notice(error: &AppError) -> AnyView {
    view! { <ErrorNotice error=error.clone()/> }.into_any()
}

/// The error of a failed action, or nothing.
pub fn action_error<T>(result: &Option<Result<T, AppError>>) -> Option<AnyView> {
    match result {
        Some(Err(e)) => Some(error_notice(e)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            AppError::Conflict("the campaign is paused".into()).sentence(),
            "The campaign is paused."
        );
        assert_eq!(
            AppError::Forbidden("admins only".into()).sentence(),
            "You do not have access to this (admins only)."
        );
        assert_eq!(
            AppError::Invalid("Name is empty!".into()).sentence(),
            "Name is empty!"
        );
        assert_eq!(as_sentence("  "), "");
    }

    #[test]
    fn the_way_back_is_encoded() {
        assert_eq!(
            login_path("/campaigns/x?a=1&b=2"),
            "/login?next=%2Fcampaigns%2Fx%3Fa%3D1%26b%3D2"
        );
    }
}
