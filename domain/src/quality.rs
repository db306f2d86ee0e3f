//! How far labelers agree: Krippendorff's α (nominal), raw pairwise agreement and the share of
//! split votes, over each item's labels in the item's own candidate order (not the order a
//! labeler saw). Skips are not labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Choice;

/// A judgment as a label of its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    FirstBetter,
    SecondBetter,
    Tie,
    BothBad,
}

impl Label {
    pub const ALL: [Label; 4] = [
        Label::FirstBetter,
        Label::SecondBetter,
        Label::Tie,
        Label::BothBad,
    ];

    /// The label of an answer whose preferred response is (or is not) the item's first
    /// candidate; `None` for a skip.
    pub fn of(choice: Choice, first_won: bool) -> Option<Label> {
        match choice {
            Choice::A | Choice::B if first_won => Some(Label::FirstBetter),
            Choice::A | Choice::B => Some(Label::SecondBetter),
            Choice::Tie => Some(Label::Tie),
            Choice::BothBad => Some(Label::BothBad),
            Choice::Skip => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The items the agreement figures are about: those with two or more labels (one label
/// agrees or disagrees with nothing).
pub fn compared(items: &[Vec<Label>]) -> impl Iterator<Item = &Vec<Label>> {
    items.iter().filter(|labels| labels.len() >= 2)
}

/// The coincidence matrix of items with two or more labels: `o[c][k]` counts the ordered
/// pairs of labels (c, k) from different labelers of one item, each item weighted by one over
/// its labels minus one (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
fn coincidences(items: &[Vec<Label>]) -> [[f64; 4]; 4] {
    let mut o = [[0.0; 4]; 4];
    for labels in compared(items) {
        let mut counts = [0.0f64; 4];
        for label in labels {
            counts[label.index()] += 1.0;
        }
        let weight = 1.0 / (labels.len() as f64 - 1.0);
        for c in 0..4 {
            for k in 0..4 {
                let pairs = if c == k {
                    counts[c] * (counts[c] - 1.0)
                } else {
                    counts[c] * counts[k]
                };
                o[c][k] += pairs * weight;
            }
        }
    }
    o
}

/// Krippendorff's α for nominal labels; `None` when it is undefined (fewer than two pairable
/// labels, or every label the same so that no disagreement could be expected).
pub fn alpha_nominal(items: &[Vec<Label>]) -> Option<f64> {
    let o = coincidences(items);
    let n_c: Vec<f64> = o.iter().map(|row| row.iter().sum()).collect();
    let n: f64 = n_c.iter().sum();
    if n < 2.0 {
        return None;
    }
    let observed: f64 = (0..4)
        .flat_map(|c| (0..4).map(move |k| (c, k)))
        .filter(|(c, k)| c != k)
        .map(|(c, k)| o[c][k])
        .sum();
    let expected: f64 = (0..4)
        .flat_map(|c| (0..4).map(move |k| (c, k)))
        .filter(|(c, k)| c != k)
        .map(|(c, k)| n_c[c] * n_c[k])
        .sum();
    if expected == 0.0 {
        return None;
    }
    Some(1.0 - (n - 1.0) * observed / expected)
}

/// The share of pairs of labelers of one item who gave the same label, over items with two or
/// more labels; `None` without such items.
pub fn pairwise_agreement(items: &[Vec<Label>]) -> Option<f64> {
    let (mut agreeing, mut pairs) = (0.0, 0.0);
    for labels in compared(items) {
        let m = labels.len() as f64;
        pairs += m * (m - 1.0);
        for label in Label::ALL {
            let same = labels.iter().filter(|l| **l == label).count() as f64;
            agreeing += same * (same - 1.0);
        }
    }
    (pairs > 0.0).then(|| agreeing / pairs)
}

/// The share of items with two or more labels whose labels are not all the same.
pub fn split_share(items: &[Vec<Label>]) -> Option<f64> {
    let judged: Vec<&Vec<Label>> = compared(items).collect();
    if judged.is_empty() {
        return None;
    }
    let split = judged
        .iter()
        .filter(|labels| labels.iter().any(|l| *l != labels[0]))
        .count();
    Some(split as f64 / judged.len() as f64)
}

/// Per labeler (keyed by `K`): on the items where the other labelers' most common label is
/// one label (not a tie between two), how many of theirs match it, of how many such items:
/// agreement with a leave-one-out majority.
pub fn agreement_with_others<K: Ord + Clone>(items: &[Vec<(K, Label)>]) -> BTreeMap<K, (i64, i64)> {
    let mut figures: BTreeMap<K, (i64, i64)> = BTreeMap::new();
    for labels in items {
        for (who, mine) in labels {
            let mut counts = [0usize; 4];
            for (other, label) in labels {
                if other != who {
                    counts[label.index()] += 1;
                }
            }
            let top = counts.iter().copied().max().unwrap_or(0);
            if top == 0 || counts.iter().filter(|c| **c == top).count() > 1 {
                continue;
            }
            let entry = figures.entry(who.clone()).or_default();
            entry.1 += 1;
            if counts[mine.index()] == top {
                entry.0 += 1;
            }
        }
    }
    figures
}

/// α with its bootstrap interval (2.5th and 97.5th percentiles over items resampled with
/// replacement); the interval is absent when too few resamples define α.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Alpha {
    pub value: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// One point of the throughput series: judgments (skips apart) in an hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throughput {
    pub hour: String,
    pub judgments: i64,
    pub skips: i64,
}

/// A labeler's figures on the quality endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelerQuality {
    /// The pseudonym (admins also get the e-mail).
    pub labeler: String,
    pub email: Option<String>,
    pub judgments: i64,
    pub skips: i64,
    pub median_time_ms: Option<f64>,
    /// Correct answers on gold items, of `gold_n`.
    pub gold_accuracy: Option<f64>,
    pub gold_n: i64,
    /// Share of decisive answers that picked the left response as shown.
    pub left_share: Option<f64>,
    /// How often their label matches the other labelers' majority, over `agreement_n` items
    /// where the others have one.
    pub agreement: Option<f64>,
    pub agreement_n: i64,
}

/// `GET /api/v1/campaigns/{id}/quality`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignQuality {
    pub alpha: Alpha,
    pub pairwise_agreement: Option<f64>,
    pub split_share: Option<f64>,
    /// Items with two or more labels: what the three figures above are computed over.
    pub items_compared: i64,
    pub labelers: Vec<LabelerQuality>,
    pub throughput: Vec<Throughput>,
}

#[cfg(test)]
mod tests {
    use super::Label::*;
    use super::*;

    #[test]
    fn all_agreeing_gives_one() {
        let items = vec![vec![FirstBetter; 3], vec![SecondBetter; 3], vec![Tie, Tie]];
        assert_eq!(alpha_nominal(&items), Some(1.0));
        assert_eq!(pairwise_agreement(&items), Some(1.0));
        assert_eq!(split_share(&items), Some(0.0));
    }

    #[test]
    fn systematic_disagreement_is_negative() {
        // Two labelers who always answer opposite ways.
        let items = vec![
            vec![FirstBetter, SecondBetter],
            vec![SecondBetter, FirstBetter],
            vec![FirstBetter, SecondBetter],
        ];
        let alpha = alpha_nominal(&items).unwrap();
        assert!(alpha < 0.0, "{alpha}");
        // n = 6, o(1,2) = o(2,1) = 3, n_1 = n_2 = 3: 1 - 5 * 6 / 18.
        assert!((alpha - (1.0 - 5.0 * 6.0 / 18.0)).abs() < 1e-12, "{alpha}");
        assert_eq!(pairwise_agreement(&items), Some(0.0));
        assert_eq!(split_share(&items), Some(1.0));
    }

    #[test]
    fn single_labels_and_one_value_leave_alpha_undefined() {
        assert_eq!(alpha_nominal(&[vec![Tie], vec![FirstBetter]]), None);
        assert_eq!(alpha_nominal(&[vec![Tie, Tie], vec![Tie, Tie]]), None);
        assert_eq!(pairwise_agreement(&[vec![Tie]]), None);
    }

    #[test]
    fn agreement_is_with_the_others_majority() {
        let items = vec![
            vec![
                ("a", FirstBetter),
                ("b", FirstBetter),
                ("c", FirstBetter),
                ("d", SecondBetter),
            ],
            vec![("a", Tie), ("b", Tie), ("c", BothBad), ("d", BothBad)],
            // Each one's other is a single label: a majority of one.
            vec![("a", FirstBetter), ("b", SecondBetter)],
            // The others tie (one each): not counted for anyone.
            vec![("a", Tie), ("b", FirstBetter), ("c", SecondBetter)],
        ];
        let figures = agreement_with_others(&items);
        assert_eq!(figures["a"], (1, 3));
        assert_eq!(figures["b"], (1, 3));
        assert_eq!(figures["c"], (1, 2));
        assert_eq!(figures["d"], (0, 2));
    }

    #[test]
    fn skips_are_not_labels() {
        assert_eq!(Label::of(Choice::Skip, true), None);
        assert_eq!(Label::of(Choice::A, false), Some(SecondBetter));
        assert_eq!(Label::of(Choice::B, true), Some(FirstBetter));
    }
}
