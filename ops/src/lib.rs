//! The operations of Pairwise: one function for each thing a user can do, below both front
//! ends (the JSON API and the pages' server functions) and the CLI. Each function holds the
//! operation's policy: who may do it (through [`access`]), validation, and its metrics. The
//! front ends only parse their input, call the operation and map [`Error`] to their answer.

pub mod access;
pub mod campaigns;
mod error;
pub mod exports;
pub mod generation;
pub mod imports;
pub mod items;
pub mod labeling;
pub mod models;
pub mod quality;
pub mod training;
pub mod users;

pub use error::{cause_chain, Error, Result};
use store::access_cache::AccessCache;
use store::PgPool;

/// What every operation runs against. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    pub pool: PgPool,
    /// Callers and campaign rights kept in memory for the labeling requests.
    pub access: AccessCache,
    /// Where the files of exports and checkpoints are kept (`exports/<id>/`, `models/<id>/`).
    pub storage: storage::Storage,
}
