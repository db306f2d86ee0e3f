//! The lease that background work is claimed with: a worker takes the oldest queued row, or a
//! running one whose lease ran out (its worker died), with `FOR UPDATE SKIP LOCKED`, and
//! renews the lease while it works; after the last allowed attempt a lapsed row is failed.
//! Training runs and exports are claimed through this one mechanism.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::Result;

/// A table of leased work. Its rows have `id`, `created_at`, `status` (`queued`, `running`,
/// `failed`, ...), `attempts`, `worker`, `lease_expires_at`, `error` and `finished_at`.
pub(crate) struct Leased {
    pub table: &'static str,
    /// A worker dies at most this many times on one row before the row is failed.
    pub max_attempts: i32,
    /// Extra `column = value` assignments that restart a row's progress on each claim.
    pub restart: &'static str,
    /// Which rows a worker may take at all (`true` for every row); a lapsed row that is not
    /// claimable is failed instead of taken over.
    pub claimable: &'static str,
}

impl Leased {
    /// Claims the oldest claimable row for `worker`; returns its id.
    pub async fn claim(
        &self,
        pool: &PgPool,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Uuid>> {
        let (table, claimable) = (self.table, self.claimable);
        sqlx::query(&format!(
            "UPDATE {table} SET status = 'failed', finished_at = now(), lease_expires_at = NULL,
                    error = CASE WHEN {claimable}
                        THEN 'the worker running it stopped ' || attempts || ' times; start it again'
                        ELSE 'the process running it stopped; start it again' END
             WHERE status = 'running' AND lease_expires_at < now()
               AND (attempts >= $1 OR NOT ({claimable}))"
        ))
        .bind(self.max_attempts)
        .execute(pool)
        .await?;
        let restart = self.restart;
        let claimed = sqlx::query_scalar(&format!(
            "WITH next AS (
                 SELECT id FROM {table}
                 WHERE ({claimable})
                   AND (status = 'queued'
                        OR (status = 'running' AND lease_expires_at < now() AND attempts < $3))
                 ORDER BY created_at
                 FOR UPDATE SKIP LOCKED
                 LIMIT 1
             )
             UPDATE {table} t
             SET status = 'running', attempts = attempts + 1, worker = $1, error = NULL,
                 lease_expires_at = now() + make_interval(secs => $2) {restart}
             FROM next WHERE t.id = next.id
             RETURNING t.id"
        ))
        .bind(worker)
        .bind(lease.as_secs_f64())
        .bind(self.max_attempts)
        .fetch_optional(pool)
        .await?;
        Ok(claimed)
    }

    /// Renews `worker`'s lease on a running row; false when the row is no longer theirs to
    /// work on (taken over, cancelled or finished).
    pub async fn renew(
        &self,
        pool: &PgPool,
        id: Uuid,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let table = self.table;
        let renewed = sqlx::query(&format!(
            "UPDATE {table} SET lease_expires_at = now() + make_interval(secs => $3)
             WHERE id = $1 AND worker = $2 AND status = 'running'"
        ))
        .bind(id)
        .bind(worker)
        .bind(lease.as_secs_f64())
        .execute(pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }
}
