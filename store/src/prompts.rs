//! Prompts without responses, for generation to answer, and a look at what it answered.

use domain::PromptLine;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Result, StoreError};

/// Adds prompts without responses to a campaign, all or nothing.
pub async fn add(pool: &PgPool, campaign_id: Uuid, lines: &[PromptLine]) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let status: String = sqlx::query_scalar("SELECT status FROM campaigns WHERE id = $1 FOR SHARE")
        .bind(campaign_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
    if status == "closed" {
        return Err(StoreError::Conflict("the campaign is closed".into()));
    }
    for chunk in lines.chunks(500) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let messages: Vec<serde_json::Value> = chunk
            .iter()
            .map(|l| serde_json::to_value(&l.messages).unwrap_or_default())
            .collect();
        let metadata: Vec<serde_json::Value> = chunk
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
    }
    tx.commit().await?;
    Ok(lines.len() as u64)
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
