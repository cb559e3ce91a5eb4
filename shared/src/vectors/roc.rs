//! ROC statistics over the pairs a cross match scored. A match only scores each
//! reference's top candidates, so the caller also passes how many positive and negative
//! pairs exist in all: the ones never scored are treated as accepted at no threshold,
//! like a score below every real one (scikit-learn, fed them with score -1, draws the same
//! curve). The curve is built by one sort and one walk with integer counts, so the area
//! is computed exactly from the counts (one division at the end) rather than summed from
//! rounded rates.
//!
//! Conventions, chosen to match scikit-learn's `roc_curve(drop_intermediate=False)` and
//! `roc_auc_score` point for point:
//! - the curve starts at (0, 0) with threshold `1 + max similarity` (scikit-learn before
//!   1.3; later versions write +inf, which JSON cannot carry), or 1 with no scored pairs;
//! - one point per distinct similarity, thresholds descending, accepting every pair with
//!   similarity >= the threshold;
//! - when some expected pairs were never scored, a last point (1, 1) with threshold -1,
//!   the score scikit-learn is given for them, accepts them all.
//!
//! With no expected positives (or negatives) the true (false) positive rate is 0/0: it is
//! NaN, as in scikit-learn's curve, and so are the area, the EER and the key points.

use serde::Serialize;

use super::decimal::{one_plus, shown};

/// One scored (reference, candidate) pair and whether both carry the same label.
#[derive(Debug, Clone, Copy)]
pub struct ScoredPair {
    /// The pair's similarity (never NaN).
    pub similarity: f32,
    /// Whether the pair is expected to match.
    pub positive: bool,
}

/// One operating point: accepting pairs with similarity >= `threshold` gives these rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    /// False positive rate: accepted negatives over all expected negatives.
    pub fpr: f64,
    /// True positive rate: accepted positives over all expected positives.
    pub tpr: f64,
    /// The similarity threshold of the point: a similarity as shown (the shortest text
    /// of its f32), or between two of them for an interpolated point.
    pub threshold: f64,
}

/// A ROC curve with the summary numbers reports show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RocCurve {
    /// Every point, from (0, 0) to (1, 1), thresholds descending.
    pub points: Vec<RocPoint>,
    /// Area under the curve by the trapezoid rule.
    pub auc: f64,
    /// Equal error rate point: where FPR = 1 - TPR, interpolated linearly (FPR, TPR and
    /// threshold alike) on the segment of the curve that crosses that line. Its `fpr` is
    /// the EER.
    pub eer: RocPoint,
    /// The curve at each requested FPR, in the order requested.
    pub key_points: Vec<RocPoint>,
}

const NAN_POINT: RocPoint = RocPoint {
    fpr: f64::NAN,
    tpr: f64::NAN,
    threshold: f64::NAN,
};

/// ROC of the scored pairs, where `positives` and `negatives` are the numbers of ALL
/// expected positive and negative pairs (>= those among `pairs`): pairs not among
/// `pairs` (outside a reference's top-`limit`) are never accepted at any threshold,
/// exactly as if their similarity were below every threshold (so scikit-learn gives the
/// same AUC when fed those pairs with score -1). Points: one per distinct threshold,
/// descending thresholds, starting at (0, 0) with threshold 1 + max similarity and ending
/// at (1, 1) (the final segment covers the never-accepted pairs; see the module doc).
/// AUC by the trapezoid rule over those points. EER: the point where FPR = 1 - TPR, by
/// linear interpolation on the segment that crosses it. key_points: for each key FPR
/// (clamped to [0, 1]), the point of the curve at that FPR by linear interpolation (TPR
/// interpolated, threshold of the last point with fpr <= key). Pairs are sorted in place,
/// best first. Panics when `pairs` holds more positives or negatives than declared.
pub fn roc(pairs: &mut [ScoredPair], positives: u64, negatives: u64, key_fprs: &[f64]) -> RocCurve {
    let scored_positives = pairs.iter().filter(|p| p.positive).count() as u64;
    let scored_negatives = pairs.len() as u64 - scored_positives;
    assert!(
        scored_positives <= positives && scored_negatives <= negatives,
        "{scored_positives} positive and {scored_negatives} negative pairs scored, \
         more than the {positives} and {negatives} declared"
    );
    pairs.sort_unstable_by(|a, b| b.similarity.total_cmp(&a.similarity));

    let (p, n) = (positives as f64, negatives as f64);
    let point = |tp: u64, fp: u64, threshold: f64| RocPoint {
        fpr: fp as f64 / n,
        tpr: tp as f64 / p,
        threshold,
    };
    // Thresholds are the similarities as results show them (see `decimal`): 0.7, not the
    // f32's exact 0.699999988079071.
    let start = pairs.first().map_or(1.0, |q| one_plus(q.similarity));
    let mut points = vec![point(0, 0, start)];
    // Twice the area in units of one positive × one negative: each step adds
    // Δfp · (tp_before + tp_after), an exact integer.
    let mut double_area: u128 = 0;
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut step = |tp: u64, fp: u64, before: (u64, u64)| {
        double_area += u128::from(fp - before.1) * u128::from(tp + before.0);
    };
    let mut i = 0;
    while i < pairs.len() {
        let s = pairs[i].similarity;
        let before = (tp, fp);
        // `==` rather than bit equality, so -0.0 and 0.0 are one threshold.
        while i < pairs.len() && pairs[i].similarity == s {
            if pairs[i].positive {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        step(tp, fp, before);
        points.push(point(tp, fp, shown(s)));
    }
    if tp < positives || fp < negatives {
        step(positives, negatives, (tp, fp));
        points.push(point(positives, negatives, -1.0));
    }

    if positives == 0 || negatives == 0 {
        return RocCurve {
            points,
            auc: f64::NAN,
            eer: NAN_POINT,
            key_points: vec![NAN_POINT; key_fprs.len()],
        };
    }
    let auc = double_area as f64 / (2.0 * p * n);
    let eer = equal_error(&points);
    let key_points = key_fprs.iter().map(|&k| at_fpr(&points, k)).collect();
    RocCurve {
        points,
        auc,
        eer,
        key_points,
    }
}

/// Where FPR + TPR - 1 turns from negative to non-negative: -1 at the start, +1 at the
/// end, and never falling in between, since both rates only grow.
fn equal_error(points: &[RocPoint]) -> RocPoint {
    let gap = |q: &RocPoint| q.fpr + q.tpr - 1.0;
    let k = points
        .iter()
        .position(|q| gap(q) >= 0.0)
        .expect("the curve ends at (1, 1)");
    let b = points[k];
    if k == 0 || gap(&b) == 0.0 {
        return b;
    }
    let a = points[k - 1];
    let t = -gap(&a) / (gap(&b) - gap(&a));
    RocPoint {
        fpr: a.fpr + t * (b.fpr - a.fpr),
        tpr: a.tpr + t * (b.tpr - a.tpr),
        threshold: a.threshold + t * (b.threshold - a.threshold),
    }
}

/// The curve at FPR `key`: on a vertical run (several points at that FPR) the highest
/// TPR, as a threshold choice would take it.
fn at_fpr(points: &[RocPoint], key: f64) -> RocPoint {
    let key = key.clamp(0.0, 1.0);
    // The first point has fpr 0, so at least one point is at or left of the key.
    let last = points.partition_point(|q| q.fpr <= key) - 1;
    let a = points[last];
    match points.get(last + 1) {
        Some(b) if a.fpr < key => RocPoint {
            fpr: key,
            tpr: a.tpr + (key - a.fpr) / (b.fpr - a.fpr) * (b.tpr - a.tpr),
            threshold: a.threshold,
        },
        _ => RocPoint { fpr: key, ..a },
    }
}

impl RocCurve {
    /// At most `max_points` of the curve's points (at least 2), spread evenly along its
    /// length (FPR + TPR), first and last always kept: a curve has one point per distinct
    /// similarity, millions for a large match, far more than a plot or a result needs.
    pub fn thinned(&self, max_points: usize) -> Vec<RocPoint> {
        let max_points = max_points.max(2);
        if self.points.len() <= max_points {
            return self.points.clone();
        }
        let along = |q: &RocPoint| q.fpr + q.tpr;
        let (first, last) = (self.points[0], self.points[self.points.len() - 1]);
        let total = along(&last);
        // Interior points go to `inner` evenly spaced marks along the curve: a point is
        // kept when it reaches the next mark, and a jump past several marks uses one.
        let inner = max_points - 2;
        let mark = |k: usize| total * k as f64 / (inner + 1) as f64;
        let mut kept = Vec::with_capacity(max_points);
        kept.push(first);
        let mut next = 1;
        for q in &self.points[1..self.points.len() - 1] {
            if next > inner {
                break;
            }
            if along(q) >= mark(next) {
                kept.push(*q);
                while next <= inner && along(q) >= mark(next) {
                    next += 1;
                }
            }
        }
        kept.push(last);
        kept
    }
}

/// Top-N hit probability: for each N in 1..=limit, the fraction of groups (one group per
/// reference that has at least one expected positive) whose first positive candidate is
/// at rank <= N with similarity >= threshold. `groups`: per reference, its candidates best
/// first as (similarity, positive). With no groups every fraction is NaN (0/0).
pub fn hit_top(groups: &[Vec<(f32, bool)>], limit: usize, threshold: f32) -> Vec<f64> {
    // hits[r] counts groups whose first positive is at rank r + 1.
    let mut hits = vec![0u64; limit];
    for group in groups {
        let first = group.iter().take(limit).position(|&(_, positive)| positive);
        if let Some(rank) = first
            && group[rank].0 >= threshold
        {
            hits[rank] += 1;
        }
    }
    let total = groups.len() as f64;
    let mut running = 0u64;
    hits.iter()
        .map(|&h| {
            running += h;
            running as f64 / total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rates straight from the definition, for one threshold: accepted pairs are the
    /// scored ones at or above it.
    fn rates_at(pairs: &[ScoredPair], p: u64, n: u64, threshold: f64) -> (f64, f64) {
        let accepted = |positive: bool| {
            pairs
                .iter()
                .filter(|q| q.positive == positive && shown(q.similarity) >= threshold)
                .count() as f64
        };
        (accepted(false) / n as f64, accepted(true) / p as f64)
    }

    /// AUC as the probability that a random positive outranks a random negative (ties
    /// and two never-scored pairs count one half): the Mann-Whitney form, independent of
    /// any curve walking.
    fn auc_by_ranks(pairs: &[ScoredPair], p: u64, n: u64) -> f64 {
        let score = |q: Option<&ScoredPair>| q.map_or(-1.0, |q| f64::from(q.similarity));
        let pos: Vec<f64> = pairs
            .iter()
            .filter(|q| q.positive)
            .map(|q| score(Some(q)))
            .collect();
        let neg: Vec<f64> = pairs
            .iter()
            .filter(|q| !q.positive)
            .map(|q| score(Some(q)))
            .collect();
        let (unscored_pos, unscored_neg) = (p - pos.len() as u64, n - neg.len() as u64);
        let mut wins = 0.0;
        for &a in pos
            .iter()
            .chain(std::iter::repeat_n(&-1.0, unscored_pos as usize))
        {
            for &b in neg
                .iter()
                .chain(std::iter::repeat_n(&-1.0, unscored_neg as usize))
            {
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        wins / (p as f64 * n as f64)
    }

    fn pairs_strategy() -> impl Strategy<Value = (Vec<ScoredPair>, u64, u64)> {
        let pair = (0u8..=20, any::<bool>()).prop_map(|(s, positive)| ScoredPair {
            // Few distinct values in [0, 1]: many ties.
            similarity: f32::from(s) / 20.0,
            positive,
        });
        (prop::collection::vec(pair, 0..60), 0u64..5, 0u64..5).prop_map(|(pairs, ep, en)| {
            let pos = pairs.iter().filter(|q| q.positive).count() as u64;
            let neg = pairs.len() as u64 - pos;
            (pairs, pos + ep, neg + en)
        })
    }

    proptest! {
        #[test]
        fn curve_matches_the_definition((pairs, p, n) in pairs_strategy()) {
            prop_assume!(p > 0 && n > 0);
            let mut sorted = pairs.clone();
            let curve = roc(&mut sorted, p, n, &[0.0, 0.1, 0.5, 1.0]);
            prop_assert_eq!(curve.points[0].fpr, 0.0);
            prop_assert_eq!(curve.points[0].tpr, 0.0);
            prop_assert_eq!(*curve.points.last().unwrap(), RocPoint {
                fpr: 1.0, tpr: 1.0, threshold: curve.points.last().unwrap().threshold,
            });
            let mut distinct: Vec<f64> = pairs.iter().map(|q| shown(q.similarity)).collect();
            distinct.sort_by(|a, b| b.total_cmp(a));
            distinct.dedup();
            let unscored = pairs.len() as u64 != p + n;
            prop_assert_eq!(curve.points.len(), 1 + distinct.len() + usize::from(unscored));
            for (q, &t) in curve.points[1..].iter().zip(&distinct) {
                prop_assert_eq!(q.threshold, t);
                prop_assert_eq!((q.fpr, q.tpr), rates_at(&pairs, p, n, t));
            }
            prop_assert!((curve.auc - auc_by_ranks(&pairs, p, n)).abs() < 1e-12);
            let trapezoid: f64 = curve.points.windows(2)
                .map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0)
                .sum();
            prop_assert!((curve.auc - trapezoid).abs() < 1e-12);
        }

        #[test]
        fn eer_lies_on_the_curve_where_rates_balance((pairs, p, n) in pairs_strategy()) {
            prop_assume!(p > 0 && n > 0);
            let curve = roc(&mut pairs.clone(), p, n, &[]);
            let e = curve.eer;
            prop_assert!((e.fpr - (1.0 - e.tpr)).abs() < 1e-12, "{:?}", e);
            // It is on one of the curve's segments.
            let on_segment = curve.points.windows(2).any(|w| {
                let (a, b) = (w[0], w[1]);
                let cross = (b.fpr - a.fpr) * (e.tpr - a.tpr) - (b.tpr - a.tpr) * (e.fpr - a.fpr);
                cross.abs() < 1e-12
                    && e.fpr >= a.fpr - 1e-12 && e.fpr <= b.fpr + 1e-12
                    && e.tpr >= a.tpr - 1e-12 && e.tpr <= b.tpr + 1e-12
            });
            prop_assert!(on_segment, "{:?} not on {:?}", e, curve.points);
        }

        #[test]
        fn key_points_interpolate_the_curve((pairs, p, n) in pairs_strategy(), key in 0.0f64..=1.0) {
            prop_assume!(p > 0 && n > 0);
            let curve = roc(&mut pairs.clone(), p, n, &[key]);
            let got = curve.key_points[0];
            let last = curve.points.iter().rposition(|q| q.fpr <= key).unwrap();
            prop_assert_eq!(got.fpr, key);
            prop_assert_eq!(got.threshold, curve.points[last].threshold);
            // Never below the best TPR reached at that FPR, never above the next point's.
            prop_assert!(got.tpr >= curve.points[last].tpr - 1e-12);
            if let Some(next) = curve.points.get(last + 1) {
                prop_assert!(got.tpr <= next.tpr + 1e-12);
            }
        }

        #[test]
        fn thinned_keeps_ends_and_bound((pairs, p, n) in pairs_strategy(), max in 0usize..12) {
            prop_assume!(p > 0 && n > 0);
            let curve = roc(&mut pairs.clone(), p, n, &[]);
            let thin = curve.thinned(max);
            prop_assert!(thin.len() <= max.max(2));
            prop_assert_eq!(thin[0], curve.points[0]);
            prop_assert_eq!(thin.last(), curve.points.last());
            prop_assert!(thin.windows(2).all(|w| w[0].threshold > w[1].threshold));
        }

        #[test]
        fn hit_top_matches_ranks(
            groups in prop::collection::vec(
                prop::collection::vec((0u8..=10, any::<bool>()), 0..8).prop_map(|g| {
                    let mut g: Vec<(f32, bool)> =
                        g.into_iter().map(|(s, l)| (f32::from(s) / 10.0, l)).collect();
                    g.sort_by(|a, b| b.0.total_cmp(&a.0));
                    g
                }),
                1..12,
            ),
            limit in 0usize..10,
            threshold in prop::sample::select(vec![0.0f32, 0.5, 0.9]),
        ) {
            let got = hit_top(&groups, limit, threshold);
            prop_assert_eq!(got.len(), limit);
            for (k, &fraction) in got.iter().enumerate() {
                let hits = groups.iter().filter(|g| {
                    g.iter().take(k + 1).find(|q| q.1).is_some_and(|q| q.0 >= threshold)
                }).count();
                prop_assert_eq!(fraction, hits as f64 / groups.len() as f64);
            }
        }
    }

    #[test]
    fn small_curve_by_hand() {
        // Two positives (0.9 and 0.5), two negatives (0.7 and one never scored).
        let mut pairs = [
            ScoredPair {
                similarity: 0.5,
                positive: true,
            },
            ScoredPair {
                similarity: 0.9,
                positive: true,
            },
            ScoredPair {
                similarity: 0.7,
                positive: false,
            },
        ];
        let curve = roc(&mut pairs, 2, 2, &[0.25, 0.5]);
        let pts: Vec<(f64, f64, f64)> = curve
            .points
            .iter()
            .map(|q| (q.fpr, q.tpr, q.threshold))
            .collect();
        // Thresholds are the similarities as shown (0.7, not the widened f32
        // 0.699999988079071), and the first is 1 + the highest as shown.
        let (t9, t7, t5) = (0.9, 0.7, 0.5);
        assert_eq!(
            pts,
            vec![
                (0.0, 0.0, 1.9),
                (0.0, 0.5, t9),
                (0.5, 0.5, t7),
                (0.5, 1.0, t5),
                (1.0, 1.0, -1.0)
            ]
        );
        // Rectangles: 0.5 × 0.5 + 0.5 × 1.
        assert_eq!(curve.auc, 0.75);
        // The line fpr = 1 - tpr crosses the flat segment (0, .5) → (.5, .5) at its end.
        assert_eq!(
            curve.eer,
            RocPoint {
                fpr: 0.5,
                tpr: 0.5,
                threshold: t7
            }
        );
        assert_eq!(
            curve.key_points[0],
            RocPoint {
                fpr: 0.25,
                tpr: 0.5,
                threshold: t9
            }
        );
        assert_eq!(
            curve.key_points[1],
            RocPoint {
                fpr: 0.5,
                tpr: 1.0,
                threshold: t5
            }
        );
        let text = serde_json::to_string(&curve).unwrap();
        assert!(
            text.contains("\"threshold\":0.7}") && !text.contains("0.69999"),
            "{text}"
        );
    }

    #[test]
    fn one_sided_inputs_are_nan() {
        let mut pairs = [ScoredPair {
            similarity: 0.3,
            positive: true,
        }];
        let curve = roc(&mut pairs, 1, 0, &[0.1]);
        assert!(curve.auc.is_nan() && curve.eer.fpr.is_nan() && curve.key_points[0].tpr.is_nan());
        let empty = roc(&mut [], 0, 0, &[]);
        assert_eq!(empty.points.len(), 1);
        assert_eq!(empty.points[0].threshold, 1.0);
        assert!(hit_top(&[], 2, 0.0).iter().all(|f| f.is_nan()));
    }

    #[test]
    #[should_panic(expected = "more than the")]
    fn undercounted_expectations_panic() {
        let mut pairs = [ScoredPair {
            similarity: 0.3,
            positive: true,
        }];
        roc(&mut pairs, 0, 5, &[]);
    }

    /// scikit-learn's numbers for ~2,000 pairs (written by bench/vectors.py): its curve
    /// (drop_intermediate=False, never-scored pairs fed with score -1), roc_auc_score, and
    /// the EER and key points computed from that curve by the interpolation above.
    #[test]
    fn equals_scikit_learn_on_the_fixture() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/roc_sklearn.json")).unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        let mut pairs: Vec<ScoredPair> = fixture["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| ScoredPair {
                similarity: num(&q[0]) as f32,
                positive: q[1].as_u64().unwrap() == 1,
            })
            .collect();
        let keys: Vec<f64> = fixture["key_fprs"]
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let curve = roc(
            &mut pairs,
            fixture["positives"].as_u64().unwrap(),
            fixture["negatives"].as_u64().unwrap(),
            &keys,
        );
        assert!((curve.auc - num(&fixture["auc"])).abs() < 1e-6);
        let points = fixture["points"].as_array().unwrap();
        assert_eq!(curve.points.len(), points.len());
        for (q, want) in curve.points.iter().zip(points).skip(1) {
            assert!((q.fpr - num(&want[0])).abs() < 1e-6, "{q:?} vs {want}");
            assert!((q.tpr - num(&want[1])).abs() < 1e-6, "{q:?} vs {want}");
            assert!(
                (q.threshold - num(&want[2])).abs() < 1e-6,
                "{q:?} vs {want}"
            );
        }
        let eer = &fixture["eer"];
        assert!((curve.eer.fpr - num(&eer[0])).abs() < 1e-6);
        assert!((curve.eer.tpr - num(&eer[1])).abs() < 1e-6);
        assert!((curve.eer.threshold - num(&eer[2])).abs() < 1e-6);
        for (q, want) in curve
            .key_points
            .iter()
            .zip(fixture["key_points"].as_array().unwrap())
        {
            assert!((q.tpr - num(&want[1])).abs() < 1e-6, "{q:?} vs {want}");
            assert!(
                (q.threshold - num(&want[2])).abs() < 1e-6,
                "{q:?} vs {want}"
            );
        }
    }
}
