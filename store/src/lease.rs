//! The lease that all background work is claimed with: generation prompts, training runs
//! and exports. A worker takes the oldest queued rows, or running ones whose lease ran out
//! (their worker died), with `FOR UPDATE SKIP LOCKED`; it renews the lease while it works
//! and gives back what it did not finish. A lapsed row is taken over until its last allowed
//! attempt, and failed after that.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// A table of leased work. Its rows have `status` (`queued`, `running`, `failed`, ...),
/// `attempts`, `worker`, `lease_expires_at`, `error` and `finished_at`.
pub(crate) struct Leased {
    pub table: &'static str,
    /// The column rows are claimed under: `id` where each row is a job of its own, `job_id`
    /// where a job's rows (its prompts) are claimed a batch at a time.
    pub scope: &'static str,
    /// The column that tells a row apart within its scope (`id` again, or `prompt_id`).
    pub key: &'static str,
    /// The order rows are claimed in.
    pub order: &'static str,
    /// SQL for how many times a row may be started (a number, or a column).
    pub max_attempts: &'static str,
    /// Extra `column = value` assignments that restart a row's progress on each claim.
    pub restart: &'static str,
    /// Which rows a worker may take at all (`true` for every row); a lapsed row that is not
    /// claimable is failed instead of taken over.
    pub claimable: &'static str,
}

impl Leased {
    fn in_scope(&self, scope: Option<Uuid>, n: usize) -> String {
        match scope {
            Some(_) => format!(" AND {} = ${n}", self.scope),
            None => String::new(),
        }
    }

    /// Fails the lapsed rows (of `scope`, or all) that may not be taken over; returns the
    /// scope of each, so that the caller can count them against their job.
    pub async fn fail_lapsed(
        &self,
        conn: &mut PgConnection,
        scope: Option<Uuid>,
    ) -> Result<Vec<Uuid>> {
        let (table, claimable, max) = (self.table, self.claimable, self.max_attempts);
        let in_scope = self.in_scope(scope, 1);
        let sql = format!(
            "UPDATE {table} SET status = 'failed', finished_at = now(), lease_expires_at = NULL,
                    error = CASE WHEN {claimable}
                        THEN 'the worker running it stopped ' || attempts || ' times; start it again'
                        ELSE 'the process running it stopped; start it again' END
             WHERE status = 'running' AND lease_expires_at < now()
               AND (attempts >= {max} OR NOT ({claimable})){in_scope}
             RETURNING {}",
            self.scope
        );
        let mut query = sqlx::query_scalar(&sql);
        if let Some(scope) = scope {
            query = query.bind(scope);
        }
        Ok(query.fetch_all(conn).await?)
    }

    /// Claims up to `limit` rows (of `scope`, or of any) for `worker`, oldest first; returns
    /// their keys. Lapsed rows past their last attempt are failed first.
    pub async fn claim(
        &self,
        conn: &mut PgConnection,
        scope: Option<Uuid>,
        limit: i64,
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<Uuid>> {
        let (table, claimable, max) = (self.table, self.claimable, self.max_attempts);
        let (scope_column, key, order, restart) = (self.scope, self.key, self.order, self.restart);
        let in_scope = self.in_scope(scope, 4);
        let sql = format!(
            "WITH next AS (
                 SELECT {scope_column} AS lease_scope, {key} AS lease_key FROM {table}
                 WHERE ({claimable}){in_scope}
                   AND (status = 'queued'
                        OR (status = 'running' AND lease_expires_at < now() AND attempts < {max}))
                 ORDER BY {order}
                 FOR UPDATE SKIP LOCKED
                 LIMIT $3
             )
             UPDATE {table} t
             SET status = 'running', attempts = attempts + 1, worker = $1, error = NULL,
                 lease_expires_at = now() + make_interval(secs => $2) {restart}
             FROM next WHERE t.{scope_column} = next.lease_scope AND t.{key} = next.lease_key
             RETURNING t.{key}"
        );
        let mut query = sqlx::query_scalar(&sql)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .bind(limit);
        if let Some(scope) = scope {
            query = query.bind(scope);
        }
        Ok(query.fetch_all(conn).await?)
    }

    /// Claims the oldest claimable row of the table for `worker`.
    pub async fn claim_one(
        &self,
        conn: &mut PgConnection,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<Uuid>> {
        self.fail_lapsed(conn, None).await?;
        Ok(self
            .claim(conn, None, 1, worker, lease)
            .await?
            .into_iter()
            .next())
    }

    /// Renews `worker`'s lease on its running rows of `scope`; false when it holds none
    /// any more (taken over, cancelled or finished).
    pub async fn renew(
        &self,
        conn: &mut PgConnection,
        scope: Uuid,
        worker: &str,
        lease: Duration,
    ) -> Result<bool> {
        let (table, scope_column) = (self.table, self.scope);
        let renewed = sqlx::query(&format!(
            "UPDATE {table} SET lease_expires_at = now() + make_interval(secs => $3)
             WHERE {scope_column} = $1 AND worker = $2 AND status = 'running'"
        ))
        .bind(scope)
        .bind(worker)
        .bind(lease.as_secs_f64())
        .execute(conn)
        .await?;
        Ok(renewed.rows_affected() > 0)
    }

    /// Gives back `worker`'s running rows of `scope` (it stops early) without counting the
    /// attempt.
    pub async fn release(&self, conn: &mut PgConnection, scope: Uuid, worker: &str) -> Result<()> {
        let (table, scope_column) = (self.table, self.scope);
        sqlx::query(&format!(
            "UPDATE {table} SET status = 'queued', attempts = greatest(attempts - 1, 0),
                    lease_expires_at = NULL
             WHERE {scope_column} = $1 AND worker = $2 AND status = 'running'"
        ))
        .bind(scope)
        .bind(worker)
        .execute(conn)
        .await?;
        Ok(())
    }
}
