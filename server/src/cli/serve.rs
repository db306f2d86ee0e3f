//! `pairwise serve` and `pairwise worker`.

use std::path::Path;

use anyhow::Context;
use domain::Role;

use crate::config;
use crate::passwords::{generate_password, hash_password};
use crate::{http, workers, Application, Settings};

/// Migrates, creates the first admin on an empty database, registers the default model, and
/// serves until stopped.
pub async fn serve(
    url: &str,
    pool_size: u32,
    admin_email: Option<&str>,
    settings: Settings,
) -> anyhow::Result<()> {
    let pool = config::connect(url, pool_size).await?;
    config::migrate(&pool).await?;
    bootstrap_admin(&pool, admin_email).await?;
    register_default_model(&pool).await?;
    let app = Application::build(pool, settings).await?;
    tracing::info!("Pairwise is serving on http://{}", app.addr());
    app.run_until_stopped().await?;
    Ok(())
}

/// Workers only, against the same database as the servers (e.g. on GPU hosts).
pub async fn worker(
    url: &str,
    storage: &storage::Storage,
    count: usize,
    data_dir: &Path,
    export_retention: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let pool = config::connect(url, (count as u32 + 1).max(2)).await?;
    config::migrate(&pool).await?;
    let counts = workers::Counts::standard(count.max(1));
    let stop = workers::spawn(&pool, storage, counts, data_dir, export_retention);
    tracing::info!(
        "{} generation workers, an export and a training worker running; Ctrl-C or SIGTERM stops them",
        count.max(1)
    );
    http::shutdown_signal().await;
    let _ = stop.send(true);
    Ok(())
}

/// Registers the default model (when its file is here) on an empty registry.
async fn register_default_model(pool: &store::PgPool) -> anyhow::Result<()> {
    let path = engine::default_model_path();
    if !path.is_file() {
        tracing::info!(
            "no default model at {} (run scripts/fetch-model.sh); register models under /api/v1/models",
            path.display()
        );
        return Ok(());
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    if store::models::ensure_default(pool, &name, &path.to_string_lossy())
        .await
        .context("registering the default model")?
    {
        tracing::info!("registered the default model {name}");
    }
    Ok(())
}

/// On an empty database, creates the first admin with a generated password and prints it
/// once. There is no default password, and no guessable default e-mail: a known one would
/// let anyone probe or lock out the first admin.
async fn bootstrap_admin(pool: &store::PgPool, email: Option<&str>) -> anyhow::Result<()> {
    if store::accounts::count_users(pool)
        .await
        .context("counting users")?
        > 0
    {
        return Ok(());
    }
    let email = match email {
        Some(email) => email.to_string(),
        None => format!(
            "admin-{}@localhost",
            generate_password()[..8].to_lowercase()
        ),
    };
    let email = email.as_str();
    let password = generate_password();
    let hash = hash_password(password.clone()).await?;
    store::accounts::create_user(pool, None, email, Role::Admin, Some(&hash))
        .await
        .context("creating the first admin")?;
    println!("\n  First start: created the admin account.\n  Log in at the address below as\n    e-mail:   {email}\n    password: {password}\n  (shown only now; create more users under Users once logged in)\n");
    Ok(())
}
