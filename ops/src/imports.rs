//! Imports: prompts with responses (labeling items, JSONL or CSV, streamed) and prompts alone
//! (for generation). Both are all or nothing and report every bad line by number, whichever
//! front end the input came through.

use domain::{CurrentUser, ImportReport, Need};
use store::PgPool;
use tokio::io::AsyncRead;
use uuid::Uuid;

use crate::{access, Ops, Result};

pub use store::import::Format;

/// Imports items into a campaign the caller manages. A report with errors imported nothing.
pub async fn items<R: AsyncRead + Unpin + Send>(
    ops: &Ops,
    user: &CurrentUser,
    campaign_id: Uuid,
    format: Format,
    reader: R,
) -> Result<ImportReport> {
    access::campaign(ops, user, campaign_id, Need::Manage).await?;
    items_unchecked(&ops.pool, campaign_id, format, reader).await
}

/// [`items`] for the operator at the console (`pairwise import`), who holds the database's
/// rights already.
pub async fn items_by_operator<R: AsyncRead + Unpin + Send>(
    pool: &PgPool,
    campaign_id: Uuid,
    format: Format,
    reader: R,
) -> Result<ImportReport> {
    items_unchecked(pool, campaign_id, format, reader).await
}

async fn items_unchecked<R: AsyncRead + Unpin + Send>(
    pool: &PgPool,
    campaign_id: Uuid,
    format: Format,
    reader: R,
) -> Result<ImportReport> {
    let report = store::import::import_reader(pool, campaign_id, format, reader).await?;
    metrics::counter!("pairwise_imported_items_total").increment(report.items);
    Ok(report)
}

/// Prompts without responses, one per line: JSON (a string, a message list, or
/// `{"prompt", "metadata"?, "id"?}`) when the line starts with `"`, `[` or `{`, else the line
/// itself as the user's turn. Blank lines are skipped, and so are lines whose `id` the
/// campaign already holds (reported).
pub async fn prompts(
    ops: &Ops,
    user: &CurrentUser,
    campaign_id: Uuid,
    text: &str,
) -> Result<ImportReport> {
    access::campaign(ops, user, campaign_id, Need::Manage).await?;
    let mut report = ImportReport::default();
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = if line.starts_with(['"', '[', '{']) {
            domain::parse_prompt_line(line)
        } else {
            domain::parse_prompt_line(&serde_json::Value::String(line.into()).to_string())
        };
        match parsed {
            Ok(prompt) => lines.push((index as u64 + 1, prompt)),
            Err(e) => report.record_error(index as u64 + 1, e.0),
        }
    }
    if report.error_count == 0 && lines.is_empty() {
        report.record_error(0, "the input holds no prompts");
    }
    if report.error_count == 0 {
        let added = store::prompts::add(&ops.pool, campaign_id, &lines, &mut report).await?;
        report.imported = added;
    }
    Ok(report)
}
