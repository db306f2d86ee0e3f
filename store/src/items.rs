//! Reading a campaign's items for the item browser: pages in creation order behind a cursor,
//! filtered by text, status, agreement and gold, and one item with every judgment on it.

use domain::{
    agreement, prompt_excerpt, AgreementFilter, ItemDetail, ItemJudgment, ItemPage, ItemQuery,
    ItemResponse, ItemStatus, ItemSummary, Message, ReplacedAnswer, PROMPT_EXCERPT_CHARS,
};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::{rfc3339, stored, Result, StoreError, PSEUDONYM, PSEUDONYM_KEY};

/// Per item: judgments other than skips, those agreeing with the most common answer (a
/// preferred response, a tie or "both bad"), and skips.
const ITEM_FIGURES: &str = "
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(g.n), 0)::bigint AS judgments, coalesce(max(g.n), 0)::bigint AS top
        FROM (SELECT count(*) AS n FROM judgments j
              WHERE j.item_id = i.id AND j.choice <> 'skip'
              GROUP BY coalesce(j.winner_candidate_id::text, j.choice)) g
    ) f
    CROSS JOIN LATERAL (
        SELECT count(*) AS skips FROM judgments j WHERE j.item_id = i.id AND j.choice = 'skip'
    ) s";

#[derive(FromRow)]
struct SummaryRow {
    id: Uuid,
    seq: i64,
    messages: serde_json::Value,
    is_gold: bool,
    judgments: i64,
    top: i64,
    skips: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

fn messages(value: serde_json::Value) -> Result<Vec<Message>> {
    serde_json::from_value(value)
        .map_err(|e| StoreError::Corrupt(format!("a prompt's messages: {e}")))
}

/// `text` as a LIKE pattern that matches it literally anywhere.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of a campaign's items, oldest first. `overlap` decides which count as complete.
pub async fn page(
    pool: &PgPool,
    campaign_id: Uuid,
    overlap: i32,
    query: &ItemQuery,
) -> Result<ItemPage> {
    let after = query.after()?;
    let size = query.page_size()?;
    let sql = format!(
        "SELECT i.id, i.seq, p.messages, i.is_gold, f.judgments, f.top, s.skips, i.created_at
         FROM items i
         JOIN prompts p ON p.id = i.prompt_id
         {ITEM_FIGURES}
         WHERE i.campaign_id = $1 AND i.seq > $2
           AND ($3::bool IS NULL OR i.is_gold = $3)
           AND ($4::text IS NULL
                OR EXISTS (SELECT 1 FROM jsonb_array_elements(p.messages) m
                           WHERE m->>'content' ILIKE $4)
                OR EXISTS (SELECT 1 FROM candidates c
                           WHERE c.id = ANY (i.candidate_ids) AND c.text ILIKE $4))
           AND ($5::text IS NULL
                OR ($5 = 'unjudged' AND f.judgments = 0)
                OR ($5 = 'partial' AND f.judgments > 0 AND f.judgments < $6)
                OR ($5 = 'complete' AND f.judgments >= $6))
           AND ($7::text IS NULL
                OR ($7 = 'unanimous' AND f.judgments >= 2 AND f.top = f.judgments)
                OR ($7 = 'disputed' AND f.judgments >= 2 AND f.top < f.judgments))
         ORDER BY i.seq
         LIMIT $8"
    );
    let mut rows = sqlx::query_as::<_, SummaryRow>(&sql)
        .bind(campaign_id)
        .bind(after)
        .bind(query.gold)
        .bind(query.search().map(contains_pattern))
        .bind(query.status.map(ItemStatus::as_str))
        .bind(overlap)
        .bind(query.agreement.map(AgreementFilter::as_str))
        .bind(i64::from(size) + 1)
        .fetch_all(pool)
        .await?;
    // One row beyond the page tells whether another page follows.
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    let items = rows
        .into_iter()
        .map(|row| {
            Ok(ItemSummary {
                id: row.id,
                prompt: prompt_excerpt(&messages(row.messages)?, PROMPT_EXCERPT_CHARS),
                is_gold: row.is_gold,
                status: ItemStatus::of(row.judgments, overlap),
                judgments: row.judgments,
                skips: row.skips,
                agreement: agreement(row.top, row.judgments),
                created_at: rfc3339(row.created_at),
            })
        })
        .collect::<Result<_>>()?;
    Ok(ItemPage { items, next_cursor })
}

/// The campaign an item belongs to, so that the caller's right to it can be checked first.
pub async fn campaign_of(pool: &PgPool, item_id: Uuid) -> Result<Uuid> {
    sqlx::query_scalar("SELECT campaign_id FROM items WHERE id = $1")
        .bind(item_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

#[derive(FromRow)]
struct DetailRow {
    campaign_id: Uuid,
    messages: serde_json::Value,
    gold: Option<serde_json::Value>,
    is_gold: bool,
    candidate_ids: Vec<Uuid>,
    judgments: i64,
    top: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(FromRow)]
struct JudgmentRow {
    id: Uuid,
    labeler: String,
    email: String,
    choice: String,
    winner_candidate_id: Option<Uuid>,
    shown_order: Vec<Uuid>,
    strength: Option<i32>,
    rationale: Option<String>,
    time_on_task_ms: Option<i32>,
    created_at: chrono::DateTime<chrono::Utc>,
    revised_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(FromRow)]
struct RevisionRow {
    judgment_id: Uuid,
    choice: String,
    winner_candidate_id: Option<Uuid>,
    strength: Option<i32>,
    rationale: Option<String>,
    answered_at: chrono::DateTime<chrono::Utc>,
    replaced_at: chrono::DateTime<chrono::Utc>,
}

/// An item with its responses and every judgment on it, oldest first; labelers by pseudonym,
/// with their e-mails only when `reveal_labelers` (admins).
pub async fn detail(
    pool: &PgPool,
    item_id: Uuid,
    overlap: i32,
    reveal_labelers: bool,
) -> Result<ItemDetail> {
    let sql = format!(
        "SELECT i.campaign_id, p.messages, p.gold, i.is_gold, i.candidate_ids,
                f.judgments, f.top, i.created_at
         FROM items i
         JOIN prompts p ON p.id = i.prompt_id
         {ITEM_FIGURES}
         WHERE i.id = $1"
    );
    let item = sqlx::query_as::<_, DetailRow>(&sql)
        .bind(item_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    let responses: Vec<(Uuid, String, serde_json::Value, i32)> = sqlx::query_as(
        "SELECT c.id, c.text, c.metadata, c.position FROM candidates c
         WHERE c.id = ANY ($1) ORDER BY array_position($1, c.id)",
    )
    .bind(&item.candidate_ids)
    .fetch_all(pool)
    .await?;
    // The gold answer is a response's position in its import line (or "tie").
    let gold_candidate_id = match item.gold.as_ref().and_then(serde_json::Value::as_i64) {
        Some(position) => responses
            .iter()
            .find(|r| i64::from(r.3) == position)
            .map(|r| r.0),
        None => None,
    };
    let judgments_sql = format!(
        "SELECT j.id, {PSEUDONYM} AS labeler, u.email, j.choice, j.winner_candidate_id,
                j.shown_order, j.strength, j.rationale, j.time_on_task_ms, j.created_at,
                j.revised_at
         FROM judgments j
         JOIN users u ON u.id = j.user_id
         {PSEUDONYM_KEY}
         WHERE j.item_id = $1
         ORDER BY j.created_at, j.id"
    );
    let revisions = sqlx::query_as::<_, RevisionRow>(
        "SELECT r.judgment_id, r.choice, r.winner_candidate_id, r.strength, r.rationale,
                r.answered_at, r.replaced_at
         FROM judgment_revisions r JOIN judgments j ON j.id = r.judgment_id
         WHERE j.item_id = $1
         ORDER BY r.replaced_at, r.id",
    )
    .bind(item_id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        let answer = ReplacedAnswer {
            choice: stored(&r.choice)?,
            winner_candidate_id: r.winner_candidate_id,
            strength: r.strength,
            rationale: r.rationale,
            answered_at: rfc3339(r.answered_at),
            replaced_at: rfc3339(r.replaced_at),
        };
        Ok((r.judgment_id, answer))
    })
    .collect::<Result<Vec<_>>>()?;
    let judgments = sqlx::query_as::<_, JudgmentRow>(&judgments_sql)
        .bind(item_id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|j| {
            let replaced = revisions
                .iter()
                .filter(|(judgment, _)| *judgment == j.id)
                .map(|(_, answer)| answer.clone())
                .collect();
            Ok(ItemJudgment {
                id: j.id,
                labeler: j.labeler,
                email: reveal_labelers.then_some(j.email),
                choice: stored(&j.choice)?,
                winner_candidate_id: j.winner_candidate_id,
                shown_order: j.shown_order,
                strength: j.strength,
                rationale: j.rationale,
                time_on_task_ms: j.time_on_task_ms,
                created_at: rfc3339(j.created_at),
                revised_at: j.revised_at.map(rfc3339),
                revisions: replaced,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ItemDetail {
        id: item_id,
        campaign_id: item.campaign_id,
        prompt: messages(item.messages)?,
        responses: responses
            .into_iter()
            .map(|(id, text, metadata, _)| ItemResponse {
                id,
                text,
                metadata: match metadata {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                },
            })
            .collect(),
        is_gold: item.is_gold,
        gold_candidate_id,
        status: ItemStatus::of(item.judgments, overlap),
        agreement: agreement(item.top, item.judgments),
        judgments,
        created_at: rfc3339(item.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn search_text_is_matched_literally() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
