//! In-memory copies of who a caller is and what they may do in a campaign, so that a labeling
//! request costs one database round trip (the queue function) instead of three.
//!
//! Staleness is bounded three ways: every change to users, sessions, tokens, campaigns or
//! memberships makes PostgreSQL announce itself on the `pairwise_access` channel (migration
//! `20261204000002_access_notify.sql`) and every server that hears it drops its copies; a
//! state-changing request to this server drops them before it answers (see
//! [`forget_after_changes`]), so its own caller's next request never races the notification;
//! and while the listening connection is down, nothing is kept or read from memory at all.
//! Entries also expire after [`TIME_TO_LIVE`]. What the queue functions re-check under their
//! locks (an assignment's owner, the campaign's status) never depends on these copies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use domain::{CurrentUser, Need};
use moka::sync::Cache;
use sqlx::postgres::PgListener;
use store::access::CampaignAccess;
use store::accounts::Caller;
use store::{PgPool, StoreError};
use uuid::Uuid;

use crate::AppState;

/// The channel the triggers of `20261204000002_access_notify.sql` notify.
const CHANNEL: &str = "pairwise_access";
/// How long any copy lives, whatever happens.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(300);
const CAPACITY: u64 = 100_000;

/// An assignment as handed out: whose it is, its campaign and the order its labeler sees.
pub struct HandedOut {
    pub user_id: Uuid,
    pub campaign_id: Uuid,
    pub shown_order: Vec<Uuid>,
}

/// Cheap to clone; all clones share the same copies.
#[derive(Clone)]
pub struct AccessCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// True while the listening connection is up; copies are used only then.
    live: AtomicBool,
    /// Held for reading while a copy is stored and for writing while all are dropped, so a
    /// copy read from the database before a change can never be stored after it was dropped.
    epoch: RwLock<u64>,
    /// By the SHA-256 of the session or token secret.
    callers: Cache<Vec<u8>, Caller>,
    /// By (campaign, user).
    campaigns: Cache<(Uuid, Uuid), CampaignAccess>,
    /// Assignments this server handed out, by id: facts that never change.
    assignments: Cache<Uuid, Arc<HandedOut>>,
}

impl AccessCache {
    /// A cache that keeps nothing until [`AccessCache::listen`] has subscribed.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                live: AtomicBool::new(false),
                epoch: RwLock::new(0),
                callers: bounded(),
                campaigns: bounded(),
                assignments: bounded(),
            }),
        }
    }

    /// A cache whose copies are dropped whenever the database announces an access change;
    /// the subscription runs (and reconnects) on a background task.
    pub fn listen(pool: &PgPool) -> Self {
        let cache = Self::new();
        tokio::spawn(cache.clone().subscribe(pool.clone()));
        cache
    }

    /// Runs until the pool is closed (the listener's connection comes from it, so closing
    /// the pool also ends the wait for a message).
    async fn subscribe(self, pool: PgPool) {
        while !pool.is_closed() {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen(CHANNEL).await {
                    Ok(()) => {
                        // Anything kept before the subscription may have missed a change.
                        self.forget();
                        self.inner.live.store(true, Ordering::SeqCst);
                        // `try_recv` answers `None` when the connection dropped (messages may
                        // have been lost) and an error when the pool closed.
                        while let Ok(Some(_)) = listener.try_recv().await {
                            self.forget();
                        }
                    }
                    Err(e) => tracing::warn!("cannot listen for access changes: {e}"),
                },
                Err(e) if !pool.is_closed() => {
                    tracing::warn!("cannot connect to listen for access changes: {e}")
                }
                Err(_) => {}
            }
            self.inner.live.store(false, Ordering::SeqCst);
            self.forget();
            tokio::select! {
                _ = pool.close_event() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Whether copies are kept and used (the server listens for changes).
    pub fn live(&self) -> bool {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Drops every copy of callers and campaign rights.
    pub fn forget(&self) {
        let mut epoch = self
            .inner
            .epoch
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *epoch += 1;
        self.inner.callers.invalidate_all();
        self.inner.campaigns.invalidate_all();
    }

    fn epoch(&self) -> u64 {
        *self
            .inner
            .epoch
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `store` unless copies were dropped since `epoch` was read.
    fn keep_if_current(&self, epoch: u64, store: impl FnOnce()) {
        let current = self
            .inner
            .epoch
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current == epoch && self.live() {
            store();
        }
    }

    /// The enabled user behind a session cookie or an API token, if any.
    pub async fn caller(&self, pool: &PgPool, secret: &str) -> store::Result<Option<CurrentUser>> {
        let key = store::accounts::secret_hash(secret);
        if self.live() {
            if let Some(caller) = self.inner.callers.get(&key) {
                if caller.expires_at.is_none_or(|at| at > chrono::Utc::now()) {
                    return Ok(Some(caller.user));
                }
            }
        }
        let epoch = self.epoch();
        let found = store::accounts::user_for_secret(pool, secret).await?;
        if let Some(caller) = &found {
            self.keep_if_current(epoch, || self.inner.callers.insert(key, caller.clone()));
        }
        Ok(found.map(|caller| caller.user))
    }

    /// The campaign, if `user` may do `need` with it; as [`store::access::campaign_for`].
    pub async fn campaign(
        &self,
        pool: &PgPool,
        user: &CurrentUser,
        campaign_id: Uuid,
        need: Need,
    ) -> store::Result<domain::Campaign> {
        let key = (campaign_id, user.id);
        if self.live() {
            if let Some(access) = self.inner.campaigns.get(&key) {
                return access.check(user, need);
            }
        }
        let epoch = self.epoch();
        let access = store::access::campaign_access(pool, campaign_id, user.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let campaign = access.check(user, need);
        self.keep_if_current(epoch, || self.inner.campaigns.insert(key, access));
        campaign
    }

    /// Remembers an assignment this server just handed out.
    pub fn handed_out(&self, assignment_id: Uuid, assignment: HandedOut) {
        self.inner
            .assignments
            .insert(assignment_id, Arc::new(assignment));
    }

    /// The caller's assignment: its campaign, if they may label in it, and its shown order.
    /// Unknown ids and others' assignments are not found.
    pub async fn assignment(
        &self,
        pool: &PgPool,
        user: &CurrentUser,
        assignment_id: Uuid,
    ) -> store::Result<(domain::Campaign, Vec<Uuid>)> {
        if let Some(assignment) = self.inner.assignments.get(&assignment_id) {
            if assignment.user_id == user.id {
                let campaign = self
                    .campaign(pool, user, assignment.campaign_id, Need::Label)
                    .await?;
                return Ok((campaign, assignment.shown_order.clone()));
            }
        }
        store::queue::assignment_for(pool, user, assignment_id).await
    }

    /// Forgets an assignment that was judged.
    pub fn judged(&self, assignment_id: Uuid) {
        self.inner.assignments.invalidate(&assignment_id);
    }
}

fn bounded<K, V>() -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TIME_TO_LIVE)
        .build()
}

impl Default for AccessCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Drops the copies after every API or form request that may change who may do what, before
/// its answer leaves, so a client's next request never races the database's notification.
/// Left out: judgments, which change no rights, and the UI's server functions (every one of
/// them is a POST, reads included), whose changes arrive through the notification a few
/// milliseconds later.
pub async fn forget_after_changes(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && may_change_access(request.uri().path());
    let response = next.run(request).await;
    if changes {
        state.access.forget();
    }
    response
}

fn may_change_access(path: &str) -> bool {
    if let Some(rest) = path.strip_prefix("/api/v1/assignments/") {
        let judgment = rest.ends_with("/judgment") && rest.matches('/').count() == 1;
        return !judgment;
    }
    // The labeling page's server functions (`app::api`, endpoints under `label/`) change no
    // access; every other state-changing request may (the admin pages' server functions too).
    !path.starts_with("/api/label/")
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
    }
}
