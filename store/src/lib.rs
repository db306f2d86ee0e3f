//! All SQL of Pairwise (PostgreSQL through sqlx): accounts, campaigns, import, the assignment
//! queue, statistics, the model registry, prompts, generation jobs, exports and training runs.
//! Every function takes a pool or a transaction; nothing here knows HTTP. Rows are read into
//! private `#[derive(sqlx::FromRow)]` structs, then turned into the domain's types.

pub mod access;
pub mod access_cache;
pub mod accounts;
pub mod campaigns;
pub mod export;
pub mod import;
pub mod items;
pub mod jobs;
mod lease;
pub mod models;
pub mod prompts;
pub mod quality;
pub mod queue;
pub mod revisions;
pub mod stats;
pub mod training;

pub use sqlx::PgPool;

/// The schema, from the workspace's `migrations/` folder.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Missing, or not visible to the caller: the two are deliberately indistinguishable.
    #[error("not found")]
    NotFound,
    /// Visible to the caller, who may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request clashes with the current state (a closed campaign, a judged item, ...).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] domain::Invalid),
    /// The input could not be read (the upload broke off, or went over the size limit).
    #[error("could not read the input: {0}")]
    Input(#[source] std::io::Error),
    #[error("too many attempts; try again later")]
    RateLimited,
    /// Stored data that no longer reads back (a bug or a hand edit): an internal fault.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    /// A value PostgreSQL refuses because it holds a NUL character, which neither `text`
    /// (22021, character_not_in_repertoire) nor `jsonb` (22P05, untranslatable_character:
    /// `\u0000`) can store, is the caller's mistake: Rust strings are valid UTF-8, so NUL is
    /// the only way input gets there. Every other database error is a fault of ours.
    fn from(e: sqlx::Error) -> Self {
        let nul = e
            .as_database_error()
            .and_then(|db| db.code())
            .is_some_and(|code| code == "22021" || code == "22P05");
        if nul {
            StoreError::Invalid(domain::Invalid(
                "text may not contain NUL characters (\\u0000)".into(),
            ))
        } else {
            StoreError::Db(e)
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Renders a timestamp the way the API shows every time: RFC 3339 in UTC.
pub(crate) fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Reads an enum stored as text. Text that no longer parses is corrupt stored data, not the
/// caller's mistake.
pub(crate) fn stored<T: std::str::FromStr<Err = domain::Invalid>>(text: &str) -> Result<T> {
    text.parse()
        .map_err(|domain::Invalid(e)| StoreError::Corrupt(e))
}

/// A labeler's pseudonym in SQL: a keyed hash of the user `u`'s id, so that the same labeler
/// reads the same in every export and statistic and only the installation can tell who it
/// is. The query joins [`PSEUDONYM_KEY`] as `k`.
pub(crate) const PSEUDONYM: &str =
    "('labeler-' || left(encode(sha256(k.value || uuid_send(u.id)), 'hex'), 16))";
pub(crate) const PSEUDONYM_KEY: &str =
    "CROSS JOIN (SELECT value FROM installation_secrets WHERE name = 'labeler_pseudonym_key') k";

/// Records an administrative action. Failures propagate: an unaudited change is rolled back.
pub async fn audit(
    conn: &mut sqlx::PgConnection,
    actor: Option<uuid::Uuid>,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (actor_id, action, subject, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}
