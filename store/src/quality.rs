//! What the agreement figures are computed from: each item's labels in its own candidate
//! order, and the campaign's judgments per hour.

use domain::quality::{Label, Throughput};
use domain::Choice;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{rfc3339, stored, Result, PSEUDONYM, PSEUDONYM_KEY};

/// The labels of every item of the campaign that has any (skips left out), an item's labels
/// together, each with its labeler's pseudonym.
pub async fn labels(pool: &PgPool, campaign_id: Uuid) -> Result<Vec<Vec<(String, Label)>>> {
    let rows: Vec<(Uuid, String, String, bool)> = sqlx::query_as(&format!(
        "SELECT j.item_id, {PSEUDONYM} AS labeler, j.choice,
                coalesce(j.winner_candidate_id = i.candidate_ids[1], false) AS first_won
         FROM judgments j JOIN items i ON i.id = j.item_id JOIN users u ON u.id = j.user_id
         {PSEUDONYM_KEY}
         WHERE j.campaign_id = $1 AND j.choice <> 'skip'
         ORDER BY j.item_id"
    ))
    .bind(campaign_id)
    .fetch_all(pool)
    .await?;
    let mut items: Vec<Vec<(String, Label)>> = Vec::new();
    let mut last = None;
    for (item, labeler, choice, first_won) in rows {
        let choice: Choice = stored(&choice)?;
        let Some(label) = Label::of(choice, first_won) else {
            continue;
        };
        if last != Some(item) {
            items.push(Vec::new());
            last = Some(item);
        }
        if let Some(labels) = items.last_mut() {
            labels.push((labeler, label));
        }
    }
    Ok(items)
}

/// Judgments and skips per hour, oldest first.
pub async fn throughput(pool: &PgPool, campaign_id: Uuid) -> Result<Vec<Throughput>> {
    let rows: Vec<(chrono::DateTime<chrono::Utc>, i64, i64)> = sqlx::query_as(
        "SELECT date_trunc('hour', created_at) AS hour,
                count(*) FILTER (WHERE choice <> 'skip'), count(*) FILTER (WHERE choice = 'skip')
         FROM judgments WHERE campaign_id = $1
         GROUP BY 1 ORDER BY 1",
    )
    .bind(campaign_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(hour, judgments, skips)| Throughput {
            hour: rfc3339(hour),
            judgments,
            skips,
        })
        .collect())
}
