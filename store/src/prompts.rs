//! Prompts without responses, for generation to answer, and a look at what it answered.

use domain::{ImportReport, PromptLine};
use sqlx::PgPool;
use uuid::Uuid;

use crate::import::LineIds;
use crate::Result;

/// Adds prompts without responses (numbered by their input line) to a campaign, all or
/// nothing; a line whose `id` the campaign already holds is skipped and reported. Returns how
/// many were added.
pub async fn add(
    pool: &PgPool,
    campaign_id: Uuid,
    lines: &[(u64, PromptLine)],
    report: &mut ImportReport,
) -> Result<u64> {
    let mut tx = pool.begin().await?;
    crate::import::lock_open_campaign(&mut tx, campaign_id).await?;
    let mut ids = LineIds::default();
    let mut added = 0;
    for chunk in lines.chunks(500) {
        let line_ids: Vec<_> = chunk.iter().map(|(_, l)| l.metadata.get("id")).collect();
        let repeated = ids.repeated(&mut tx, campaign_id, &line_ids).await?;
        let mut kept = Vec::with_capacity(chunk.len());
        for ((number, line), skip) in chunk.iter().zip(repeated) {
            match line.metadata.get("id") {
                Some(id) if skip => report.record_skipped(*number, id),
                _ => kept.push(line),
            }
        }
        let ids: Vec<Uuid> = kept.iter().map(|_| Uuid::now_v7()).collect();
        let messages: Vec<serde_json::Value> = kept
            .iter()
            .map(|l| serde_json::to_value(&l.messages).unwrap_or_default())
            .collect();
        let metadata: Vec<serde_json::Value> = kept
            .iter()
            .map(|l| serde_json::Value::Object(l.metadata.clone()))
            .collect();
        sqlx::query(
            "INSERT INTO prompts (id, campaign_id, messages, metadata)
             SELECT u.id, $1, u.messages, u.metadata
             FROM UNNEST($2::uuid[], $3::jsonb[], $4::jsonb[]) AS u(id, messages, metadata)",
        )
        .bind(campaign_id)
        .bind(&ids)
        .bind(&messages)
        .bind(&metadata)
        .execute(&mut *tx)
        .await?;
        added += ids.len() as u64;
    }
    tx.commit().await?;
    Ok(added)
}

/// A few generated candidates of a campaign, newest first, for the admin's preview.
pub async fn sample_outputs(
    pool: &PgPool,
    campaign_id: Uuid,
    limit: i64,
) -> Result<Vec<(String, String, String)>> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT p.messages->-1->>'content', c.text, c.metadata->>'model'
         FROM candidates c JOIN prompts p ON p.id = c.prompt_id
         WHERE p.campaign_id = $1 AND c.metadata ? 'model_id'
         ORDER BY c.created_at DESC, c.position LIMIT $2",
    )
    .bind(campaign_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, t, m)| (p, t, m.unwrap_or_default()))
        .collect())
}
