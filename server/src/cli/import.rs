//! `pairwise import`: a JSONL or CSV file of prompts with responses, into a campaign.

use std::path::Path;

use anyhow::{bail, Context};
use uuid::Uuid;

use crate::config;

pub async fn import(url: &str, campaign: Uuid, file: &Path) -> anyhow::Result<()> {
    let pool = config::connect(url, 2).await?;
    let format = ops::imports::Format::guess(&file.to_string_lossy());
    let reader = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let report =
        ops::imports::items_by_operator(&pool, campaign, format, tokio::io::BufReader::new(reader))
            .await
            .context("importing")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.error_count > 0 {
        bail!("{} invalid lines; nothing was imported", report.error_count);
    }
    Ok(())
}
