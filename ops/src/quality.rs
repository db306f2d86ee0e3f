//! Data quality of a campaign: how far its labelers agree (Krippendorff's α with a bootstrap
//! interval, pairwise agreement, split votes), each labeler's figures, and throughput.

use domain::quality::{self, Alpha, CampaignQuality, Label, LabelerQuality};
use domain::{CurrentUser, Need, Role};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::{access, Ops, Result};

/// Resamples for α's interval: enough for stable 2.5th/97.5th percentiles.
const BOOTSTRAP_ROUNDS: usize = 1000;

/// The campaign's quality figures; analysts only (labelers by pseudonym, admins also see
/// e-mails).
pub async fn campaign(ops: &Ops, user: &CurrentUser, id: Uuid) -> Result<CampaignQuality> {
    let campaign = access::campaign(ops, user, id, Need::Analyse).await?;
    let labeled = store::quality::labels(&ops.pool, id).await?;
    let agreement = quality::agreement_with_others(&labeled);
    let items: Vec<Vec<Label>> = labeled
        .into_iter()
        .map(|labels| labels.into_iter().map(|(_, label)| label).collect())
        .collect();
    let stats =
        store::stats::campaign_stats(&ops.pool, &campaign, user.role == Role::Admin).await?;
    let throughput = store::quality::throughput(&ops.pool, id).await?;
    // The same data gives the same interval: the resampling is seeded by the campaign.
    let seed = id.as_u64_pair().1;
    let items_for_alpha = items.clone();
    let alpha = tokio::task::spawn_blocking(move || bootstrap_alpha(&items_for_alpha, seed))
        .await
        .map_err(|e| crate::Error::Internal(Box::new(e)))?;
    Ok(CampaignQuality {
        alpha,
        pairwise_agreement: quality::pairwise_agreement(&items),
        split_share: quality::split_share(&items),
        items_compared: quality::compared(&items).count() as i64,
        labelers: stats
            .labelers
            .into_iter()
            .map(|l| {
                let (agreed, compared) = agreement.get(&l.labeler).copied().unwrap_or_default();
                LabelerQuality {
                    agreement: (compared > 0).then(|| agreed as f64 / compared as f64),
                    agreement_n: compared,
                    labeler: l.labeler,
                    email: l.email,
                    judgments: l.judgments,
                    skips: l.skips,
                    median_time_ms: l.median_time_ms,
                    gold_accuracy: (l.gold_seen > 0)
                        .then(|| l.gold_correct as f64 / l.gold_seen as f64),
                    gold_n: l.gold_seen,
                    left_share: l.left_share,
                }
            })
            .collect(),
        throughput,
    })
}

/// α over the items, with the 2.5th and 97.5th percentiles of α over items resampled with
/// replacement (resamples where α is undefined are left out; no interval when most are).
fn bootstrap_alpha(items: &[Vec<Label>], seed: u64) -> Alpha {
    let value = quality::alpha_nominal(items);
    let compared: Vec<&Vec<Label>> = quality::compared(items).collect();
    if value.is_none() || compared.is_empty() {
        return Alpha {
            value,
            ci_low: None,
            ci_high: None,
        };
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sample: Vec<Vec<Label>> = Vec::with_capacity(compared.len());
    let mut alphas: Vec<f64> = Vec::with_capacity(BOOTSTRAP_ROUNDS);
    for _ in 0..BOOTSTRAP_ROUNDS {
        sample.clear();
        sample.extend(
            (0..compared.len()).map(|_| compared[rng.gen_range(0..compared.len())].clone()),
        );
        if let Some(alpha) = quality::alpha_nominal(&sample) {
            alphas.push(alpha);
        }
    }
    if alphas.len() < BOOTSTRAP_ROUNDS / 2 {
        return Alpha {
            value,
            ci_low: None,
            ci_high: None,
        };
    }
    alphas.sort_by(f64::total_cmp);
    let at = |q: f64| alphas[((alphas.len() - 1) as f64 * q).round() as usize];
    Alpha {
        value,
        ci_low: Some(at(0.025)),
        ci_high: Some(at(0.975)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::quality::Label::*;

    #[test]
    fn the_interval_holds_alpha_and_repeats_for_a_seed() {
        let items: Vec<Vec<Label>> = (0..40)
            .map(|i| match i % 4 {
                0 => vec![FirstBetter, FirstBetter, FirstBetter],
                1 => vec![SecondBetter, SecondBetter, FirstBetter],
                2 => vec![Tie, SecondBetter, SecondBetter],
                _ => vec![SecondBetter, SecondBetter, SecondBetter],
            })
            .collect();
        let alpha = bootstrap_alpha(&items, 7);
        let (value, low, high) = (
            alpha.value.unwrap(),
            alpha.ci_low.unwrap(),
            alpha.ci_high.unwrap(),
        );
        assert!(low <= value && value <= high, "{alpha:?}");
        assert!(high - low > 0.0 && high - low < 1.0, "{alpha:?}");
        assert_eq!(bootstrap_alpha(&items, 7), alpha);
    }
}
