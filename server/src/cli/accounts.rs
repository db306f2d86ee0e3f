//! `pairwise user` and `pairwise token`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use domain::Role;

use crate::config;
use crate::passwords::hash_password;

pub async fn add_user(url: &str, email: &str, role: Role) -> anyhow::Result<()> {
    let pool = config::connect(url, 2).await?;
    config::migrate(&pool).await?;
    let password = read_password()?;
    domain::validate_password(&password)?;
    let hash = hash_password(password).await?;
    let id = store::accounts::create_user(&pool, None, email, role, Some(&hash))
        .await
        .context("creating the user")?;
    println!("created {role} {} ({id})", email.trim().to_lowercase());
    Ok(())
}

pub async fn create_token(url: &str, email: &str, name: &str) -> anyhow::Result<()> {
    let pool = config::connect(url, 2).await?;
    let token = store::accounts::create_api_token(&pool, email, name)
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound => {
                anyhow::anyhow!("no enabled user has the e-mail {email}")
            }
            other => anyhow::Error::new(other).context("creating the token"),
        })?;
    println!("API token for {email} (shown once): {token}");
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("PAIRWISE_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password given: set PAIRWISE_PASSWORD or pipe it on standard input");
    }
    Ok(password)
}
