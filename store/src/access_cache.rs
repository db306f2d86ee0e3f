//! In-memory copies of who a caller is and what they may do in a campaign, so that a labeling
//! request costs one database round trip (the queue function) instead of three.
//!
//! Staleness is bounded three ways: every change to users, sessions, tokens, campaigns or
//! memberships makes PostgreSQL announce itself on the `pairwise_access` channel (migration
//! `20261204000002_access_notify.sql`) and every server that hears it drops its copies; a
//! server drops them before answering a request that may change access (its middleware calls
//! [`AccessCache::forget`]), so its own caller's next request never races the notification;
//! and while the listening connection is down, nothing is kept or read from memory at all.
//! Entries also expire after [`TIME_TO_LIVE`]. What the queue functions re-check under their
//! locks (an assignment's owner, the campaign's status) never depends on these copies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use domain::{CurrentUser, JudgmentAck, JudgmentInput, Need, NextItem};
use moka::sync::Cache;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::CampaignAccess;
use crate::accounts::Caller;
use crate::queue::HandOut;
use crate::{Result, StoreError};

/// The channel the triggers of `20261204000002_access_notify.sql` notify.
const CHANNEL: &str = "pairwise_access";
/// How long any copy lives, whatever happens.
pub const TIME_TO_LIVE: Duration = Duration::from_secs(300);
const CAPACITY: u64 = 100_000;

/// An assignment as handed out: whose it is, its campaign and the order its labeler sees.
struct HandedOut {
    user_id: Uuid,
    campaign_id: Uuid,
    shown_order: Vec<Uuid>,
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

    /// How many times the copies were dropped so far.
    pub fn drops(&self) -> u64 {
        *self.epoch()
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

    fn epoch(&self) -> std::sync::RwLockReadGuard<'_, u64> {
        self.inner
            .epoch
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `store` unless copies were dropped since `epoch` was read.
    fn keep_if_current(&self, epoch: u64, store: impl FnOnce()) {
        // The read guard is held while storing, so a `forget` cannot slip in between.
        let current = self.epoch();
        if *current == epoch && self.live() {
            store();
        }
    }

    /// The enabled user behind a session cookie or an API token, if any.
    pub async fn caller(&self, pool: &PgPool, secret: &str) -> Result<Option<CurrentUser>> {
        let key = crate::accounts::secret_hash(secret);
        if self.live() {
            if let Some(caller) = self.inner.callers.get(&key) {
                if caller.expires_at.is_none_or(|at| at > chrono::Utc::now()) {
                    return Ok(Some(caller.user));
                }
            }
        }
        let epoch = *self.epoch();
        let found = crate::accounts::user_for_secret(pool, secret).await?;
        if let Some(caller) = &found {
            self.keep_if_current(epoch, || self.inner.callers.insert(key, caller.clone()));
        }
        Ok(found.map(|caller| caller.user))
    }

    /// The campaign, if `user` may do `need` with it; as [`crate::access::campaign_for`].
    pub async fn campaign(
        &self,
        pool: &PgPool,
        user: &CurrentUser,
        campaign_id: Uuid,
        need: Need,
    ) -> Result<domain::Campaign> {
        let key = (campaign_id, user.id);
        if self.live() {
            if let Some(access) = self.inner.campaigns.get(&key) {
                return access.check(user, need);
            }
        }
        let epoch = *self.epoch();
        let access = crate::access::campaign_access(pool, campaign_id, user.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let campaign = access.check(user, need);
        self.keep_if_current(epoch, || self.inner.campaigns.insert(key, access));
        campaign
    }

    /// The labeler's next item in `campaign` (which they may label in), as
    /// [`crate::queue::next`]; remembered, so that its judgment needs no access query.
    pub async fn next(
        &self,
        pool: &PgPool,
        campaign: &domain::Campaign,
        user_id: Uuid,
        exclude: Option<Uuid>,
    ) -> Result<Option<NextItem>> {
        let item = crate::queue::next(pool, campaign, user_id, exclude).await?;
        if let Some(item) = &item {
            self.handed_out(user_id, item);
        }
        Ok(item)
    }

    /// Stores the caller's judgment of an assignment, as [`crate::queue::submit`], and with
    /// `hand_out` hands out (and remembers) their next item in the same transaction.
    pub async fn submit(
        &self,
        pool: &PgPool,
        user: &CurrentUser,
        assignment_id: Uuid,
        input: JudgmentInput,
        hand_out: Option<HandOut>,
    ) -> Result<(JudgmentAck, Option<NextItem>)> {
        let (campaign, shown_order) = self.assignment(pool, user, assignment_id).await?;
        let (ack, next) = crate::queue::submit_checked(
            pool,
            user.id,
            assignment_id,
            &campaign,
            &shown_order,
            input,
            hand_out,
        )
        .await?;
        self.inner.assignments.invalidate(&assignment_id);
        if let Some(item) = &next {
            self.handed_out(user.id, item);
        }
        Ok((ack, next))
    }

    fn handed_out(&self, user_id: Uuid, item: &NextItem) {
        let assignment = HandedOut {
            user_id,
            campaign_id: item.campaign_id,
            shown_order: item.responses.iter().map(|r| r.id).collect(),
        };
        self.inner
            .assignments
            .insert(item.assignment_id, Arc::new(assignment));
    }

    /// The caller's assignment: its campaign, if they may label in it, and its shown order.
    /// Unknown ids and others' assignments are not found.
    async fn assignment(
        &self,
        pool: &PgPool,
        user: &CurrentUser,
        assignment_id: Uuid,
    ) -> Result<(domain::Campaign, Vec<Uuid>)> {
        if let Some(assignment) = self.inner.assignments.get(&assignment_id) {
            if assignment.user_id == user.id {
                let campaign = self
                    .campaign(pool, user, assignment.campaign_id, Need::Label)
                    .await?;
                return Ok((campaign, assignment.shown_order.clone()));
            }
        }
        crate::queue::assignment_for(pool, user, assignment_id).await
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
