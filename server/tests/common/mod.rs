//! Helpers of the tests that run the `pairwise` binary.

use std::process::{Command, Output};

use sqlx::PgPool;

/// The URL of the test's own database, for a `pairwise` process.
pub fn url_of(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres")
    )
}

/// Runs `pairwise <args>` on that database to its end; `password` is `PAIRWISE_PASSWORD`.
pub fn pairwise(url: &str, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pairwise"));
    command
        .args(args)
        .env("PAIRWISE_DATABASE_URL", url)
        .env("PAIRWISE_LOG", "warn");
    match password {
        Some(p) => command.env("PAIRWISE_PASSWORD", p),
        None => command.env_remove("PAIRWISE_PASSWORD"),
    };
    command.output().expect("run pairwise")
}
