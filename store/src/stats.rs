//! Campaign figures: size, completion, choices and per-labeler quality.

use domain::{completion, CampaignStats, ChoiceCounts, LabelerStats};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Result, PSEUDONYM, PSEUDONYM_KEY};

/// A campaign's judgments by kind.
#[derive(sqlx::FromRow)]
struct TotalsRow {
    judgments: i64,
    skips: i64,
    /// Non-skip judgments of regular (not gold) items.
    regular: i64,
    a: i64,
    b: i64,
    tie: i64,
    both_bad: i64,
}

#[derive(sqlx::FromRow)]
struct LabelerRow {
    labeler: String,
    user_id: Uuid,
    email: String,
    judgments: i64,
    skips: i64,
    gold_seen: i64,
    gold_correct: i64,
    median_time_ms: Option<f64>,
    left_share: Option<f64>,
}

impl LabelerRow {
    fn into_stats(self, reveal: bool) -> LabelerStats {
        let row = self;
        LabelerStats {
            labeler: row.labeler,
            user_id: reveal.then_some(row.user_id),
            email: reveal.then_some(row.email),
            judgments: row.judgments,
            skips: row.skips,
            gold_seen: row.gold_seen,
            gold_correct: row.gold_correct,
            median_time_ms: row.median_time_ms,
            left_share: row.left_share,
        }
    }
}

/// Joins each item `i` of campaign `$1` to `j.n`, its judgments other than skips (NULL for
/// none): what "complete" (as many as the overlap) is counted from, here and for labelers.
pub(crate) const ITEM_JUDGMENTS: &str = "
         LEFT JOIN (SELECT item_id, count(*) AS n FROM judgments
                    WHERE campaign_id = $1 AND choice <> 'skip' GROUP BY item_id) j
                ON j.item_id = i.id";

/// The campaign's figures; labelers by pseudonym, with their e-mails and ids only when
/// `reveal_labelers` (admins).
pub async fn campaign_stats(
    pool: &PgPool,
    campaign: &domain::Campaign,
    reveal_labelers: bool,
) -> Result<CampaignStats> {
    let (items, gold_items, items_complete): (i64, i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(*) FILTER (WHERE i.is_gold),
                count(*) FILTER (WHERE NOT i.is_gold AND coalesce(j.n, 0) >= $2)
         FROM items i {ITEM_JUDGMENTS}
         WHERE i.campaign_id = $1"
    ))
    .bind(campaign.id)
    .bind(campaign.overlap)
    .fetch_one(pool)
    .await?;
    let totals = sqlx::query_as::<_, TotalsRow>(
        "SELECT count(*) FILTER (WHERE j.choice <> 'skip') AS judgments,
                count(*) FILTER (WHERE j.choice = 'skip') AS skips,
                count(*) FILTER (WHERE j.choice <> 'skip' AND NOT i.is_gold) AS regular,
                count(*) FILTER (WHERE j.choice = 'a') AS a,
                count(*) FILTER (WHERE j.choice = 'b') AS b,
                count(*) FILTER (WHERE j.choice = 'tie') AS tie,
                count(*) FILTER (WHERE j.choice = 'both_bad') AS both_bad
         FROM judgments j JOIN items i ON i.id = j.item_id
         WHERE j.campaign_id = $1",
    )
    .bind(campaign.id)
    .fetch_one(pool)
    .await?;
    let labelers_sql = format!(
        "SELECT {PSEUDONYM} AS labeler, u.id AS user_id, u.email,
                count(*) FILTER (WHERE j.choice <> 'skip') AS judgments,
                count(*) FILTER (WHERE j.choice = 'skip') AS skips,
                count(*) FILTER (WHERE i.is_gold AND j.choice <> 'skip') AS gold_seen,
                count(*) FILTER (WHERE i.is_gold AND (
                    (p.gold = '\"tie\"'::jsonb AND j.choice = 'tie')
                    OR (jsonb_typeof(p.gold) = 'number'
                        AND j.winner_candidate_id = i.candidate_ids[(p.gold)::int + 1]))) AS gold_correct,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY j.time_on_task_ms)
                    FILTER (WHERE j.choice <> 'skip') AS median_time_ms,
                avg(CASE WHEN j.choice = 'a' THEN 1.0 WHEN j.choice = 'b' THEN 0.0 END)::float8 AS left_share
         FROM judgments j
         JOIN users u ON u.id = j.user_id
         JOIN items i ON i.id = j.item_id
         JOIN prompts p ON p.id = i.prompt_id
         {PSEUDONYM_KEY}
         WHERE j.campaign_id = $1
         GROUP BY u.id, u.email, k.value
         ORDER BY judgments DESC, labeler"
    );
    let labelers = sqlx::query_as::<_, LabelerRow>(&labelers_sql)
        .bind(campaign.id)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|row| row.into_stats(reveal_labelers))
        .collect();
    Ok(CampaignStats {
        campaign_id: campaign.id,
        status: campaign.status,
        items,
        gold_items,
        items_complete,
        judgments: totals.judgments,
        skips: totals.skips,
        choices: ChoiceCounts {
            a: totals.a,
            b: totals.b,
            tie: totals.tie,
            both_bad: totals.both_bad,
        },
        completion: completion(totals.regular, items - gold_items, campaign.overlap),
        labelers,
    })
}
