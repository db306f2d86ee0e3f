//! The HTTP side of `store::access_cache`: requests that may change who may do what drop the
//! server's in-memory access copies before their answer leaves.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use domain::CurrentUser;

use crate::AppState;

/// Drops the copies after every signed-in, state-changing request that may change who may
/// do what and succeeded, before its answer leaves, so a client's next request never races
/// the database's notification. Left out: the labeling loop (judgments change no rights),
/// and refused or failed requests, which change nothing (else anyone could empty the cache
/// with unauthenticated posts).
pub async fn forget_after_changes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && request.extensions().get::<CurrentUser>().is_some()
        && may_change_access(request.uri().path());
    let response = next.run(request).await;
    // The form handlers (logout) answer with a redirect when they succeed.
    let succeeded = response.status().is_success() || response.status().is_redirection();
    if changes && succeeded {
        state.ops.access.forget();
    }
    response
}

fn may_change_access(path: &str) -> bool {
    if let Some(rest) = path.strip_prefix("/api/v1/assignments/") {
        let judgment = rest.ends_with("/judgment") && rest.matches('/').count() == 1;
        return !judgment;
    }
    // The labeling page's server functions (`app::api`, endpoints under `label/`) and the
    // login form change no access (a new session is not cached yet); every other
    // state-changing request may (the admin pages' server functions too).
    !path.starts_with("/api/label/") && path != "/auth/login"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_labeling_loop_does_not_count_as_changes() {
        assert!(!may_change_access("/api/v1/assignments/0193/judgment"));
        assert!(!may_change_access("/api/label/judgment"));
        assert!(!may_change_access("/api/label/next"));
        assert!(may_change_access("/api/set_campaign_status1234"));
        assert!(may_change_access("/api/add_member1234"));
        assert!(may_change_access("/api/v1/assignments/0193/x/judgment"));
        assert!(may_change_access("/api/v1/campaigns/0193/members"));
        assert!(may_change_access("/api/v1/campaigns/0193"));
        assert!(may_change_access("/auth/logout"));
        assert!(!may_change_access("/auth/login"));
    }
}
