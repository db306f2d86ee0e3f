//! What an operation can answer instead of a result. Each front end maps these to its own
//! shape (an HTTP status, a server-function error); internal faults keep their cause for the
//! log and show the caller nothing of it.

use store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// A fault of ours (the database, corrupt stored data, the storage): logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Error::NotFound,
            StoreError::Forbidden(m) => Error::Forbidden(m),
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::Invalid(e) => Error::Invalid(e),
            StoreError::Input(e) => Error::Input(e),
            StoreError::RateLimited => Error::RateLimited,
            internal @ (StoreError::Db(_) | StoreError::Corrupt(_)) => {
                Error::Internal(internal.into())
            }
        }
    }
}

impl Error {
    /// What the caller may read: internal faults say nothing about internals.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "internal server error".into(),
            other => other.to_string(),
        }
    }

    /// Logs an internal fault with its whole chain of causes; other errors are the caller's.
    pub fn log_if_internal(&self, context: &str) {
        if let Error::Internal(cause) = self {
            tracing::error!(error = %cause_chain(cause.as_ref()), "{context} failed");
        }
    }
}

/// An error and every cause under it, for the log.
pub fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
