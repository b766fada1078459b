//! Classification metrics in f64: ROC-AUC, PR-AUC (average precision), Brier score, log loss and
//! lift in the top decile. Each follows scikit-learn's definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The metrics of one set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Area under the precision-recall curve (average precision).
    pub pr_auc: f64,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// Mean negative log-likelihood.
    pub log_loss: f64,
    /// Churn rate among the riskiest 10% over the overall churn rate.
    pub lift_at_10: f64,
    /// Expected calibration error over 10 equal-width probability bins.
    pub ece: f64,
}

impl Metrics {
    /// Computes every metric of `probabilities` against `labels`.
    pub fn compute(labels: &[bool], probabilities: &[f64]) -> Metrics {
        Metrics {
            roc_auc: roc_auc(labels, probabilities),
            pr_auc: average_precision(labels, probabilities),
            brier: brier_score(labels, probabilities),
            log_loss: log_loss(labels, probabilities),
            lift_at_10: lift_at(labels, probabilities, 0.1),
            ece: expected_calibration_error(labels, probabilities, 10),
        }
    }

    /// Returns the metrics by name, in a fixed order.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("roc_auc", self.roc_auc),
            ("pr_auc", self.pr_auc),
            ("brier", self.brier),
            ("log_loss", self.log_loss),
            ("lift_at_10", self.lift_at_10),
            ("ece", self.ece),
        ]
    }

    /// Returns the metrics as a sorted map.
    pub fn to_map(&self) -> BTreeMap<String, f64> {
        self.named()
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect()
    }
}

/// Indices sorted by descending score; ties keep row order.
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Area under the ROC curve, ties counted half (the Mann–Whitney statistic); NaN with one class.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let positives = labels.iter().filter(|&&label| label).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (average, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        let tied_positives = order[start..=end]
            .iter()
            .filter(|&&row| labels[row])
            .count();
        rank_sum += average_rank * tied_positives as f64;
        start = end + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Average precision: Σ (recall_n − recall_{n−1}) · precision_n over distinct thresholds.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> f64 {
    let positives = labels.iter().filter(|&&label| label).count() as f64;
    if positives == 0.0 {
        return f64::NAN;
    }
    let order = descending(scores);
    let (mut true_positives, mut seen, mut previous_recall, mut precision_sum) =
        (0.0, 0.0, 0.0, 0.0);
    let mut index = 0;
    while index < order.len() {
        let threshold = scores[order[index]];
        while index < order.len() && scores[order[index]] == threshold {
            seen += 1.0;
            if labels[order[index]] {
                true_positives += 1.0;
            }
            index += 1;
        }
        let recall = true_positives / positives;
        precision_sum += (recall - previous_recall) * (true_positives / seen);
        previous_recall = recall;
    }
    precision_sum
}

/// Mean squared difference between probability and outcome.
pub fn brier_score(labels: &[bool], probabilities: &[f64]) -> f64 {
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&label, &p)| (p - f64::from(u8::from(label))).powi(2))
        .sum();
    total / labels.len() as f64
}

/// Mean negative log-likelihood, probabilities clipped to [ε, 1 − ε] as scikit-learn does.
pub fn log_loss(labels: &[bool], probabilities: &[f64]) -> f64 {
    let total: f64 = labels
        .iter()
        .zip(probabilities)
        .map(|(&label, &p)| {
            let p = p.clamp(f64::EPSILON, 1.0 - f64::EPSILON);
            if label { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / labels.len() as f64
}

/// Churn rate among the top `fraction` of scores (rounded up; ties in row order) divided by the
/// overall churn rate.
pub fn lift_at(labels: &[bool], scores: &[f64], fraction: f64) -> f64 {
    let positives = labels.iter().filter(|&&label| label).count() as f64;
    if positives == 0.0 {
        return f64::NAN;
    }
    let top = ((labels.len() as f64 * fraction).ceil() as usize).max(1);
    let top_positives = descending(scores)[..top]
        .iter()
        .filter(|&&row| labels[row])
        .count() as f64;
    (top_positives / top as f64) / (positives / labels.len() as f64)
}

/// Per equal-width probability bin: (mean probability, churn rate, rows); empty bins left out.
pub fn reliability(labels: &[bool], probabilities: &[f64], bins: usize) -> Vec<(f64, f64, usize)> {
    let mut sums = vec![(0.0, 0.0, 0usize); bins];
    for (&label, &probability) in labels.iter().zip(probabilities) {
        let bin = ((probability * bins as f64) as usize).min(bins - 1);
        sums[bin].0 += probability;
        sums[bin].1 += f64::from(u8::from(label));
        sums[bin].2 += 1;
    }
    sums.into_iter()
        .filter(|&(_, _, rows)| rows > 0)
        .map(|(probability, churned, rows)| {
            (probability / rows as f64, churned / rows as f64, rows)
        })
        .collect()
}

/// Expected calibration error: Σ over bins of (rows share) × |mean probability − churn rate|.
pub fn expected_calibration_error(labels: &[bool], probabilities: &[f64], bins: usize) -> f64 {
    let total = labels.len().max(1) as f64;
    reliability(labels, probabilities, bins)
        .into_iter()
        .map(|(probability, rate, rows)| rows as f64 / total * (probability - rate).abs())
        .sum()
}

/// Mean and population standard deviation (numpy's default), as reported for CV folds.
pub fn mean_and_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|value| (value - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixture with ties at 0.8, 0.5, 0.3, 0.2 and 0.05.
    fn fixture() -> (Vec<bool>, Vec<f64>) {
        let y = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        let p = [
            0.9, 0.8, 0.8, 0.7, 0.6, 0.55, 0.5, 0.5, 0.4, 0.35, 0.3, 0.3, 0.25, 0.2, 0.2, 0.15,
            0.1, 0.05, 0.05, 0.02,
        ];
        (y.iter().map(|&label| label == 1).collect(), p.to_vec())
    }

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    /// Reference values from scikit-learn 1.9.1 on the fixture: `roc_auc_score`,
    /// `average_precision_score`, `brier_score_loss`, `log_loss`; lift by numpy as
    /// `y[np.argsort(-p, kind="stable")[:ceil(0.1 n)]].mean() / y.mean()`.
    #[test]
    fn metrics_match_scikit_learn() {
        let (y, p) = fixture();
        let metrics = Metrics::compute(&y, &p);
        close(metrics.roc_auc, 0.7440476190476191);
        close(metrics.pr_auc, 0.6180555555555556);
        close(metrics.brier, 0.18427);
        close(metrics.log_loss, 0.5378602486198164);
        close(metrics.lift_at_10, 1.6666666666666667);
    }

    #[test]
    fn perfect_and_one_class_rankings() {
        let y = [true, false, true, false];
        let p = [0.9, 0.1, 0.8, 0.2];
        close(roc_auc(&y, &p), 1.0);
        close(average_precision(&y, &p), 1.0);
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).is_nan());
    }

    #[test]
    fn calibration_error_by_hand() {
        // Bin [0.1, 0.2): p = 0.1, 0.1, churned 1 of 2 → |0.1 − 0.5| × 2/4;
        // bin [0.9, 1.0]: p = 0.9, 0.9, churned 2 of 2 → |0.9 − 1| × 2/4. ECE = 0.2 + 0.05.
        let labels = [true, false, true, true];
        let probabilities = [0.1, 0.1, 0.9, 0.9];
        let ece = expected_calibration_error(&labels, &probabilities, 10);
        assert!((ece - 0.25).abs() < 1e-12, "{ece}");
    }

    #[test]
    fn population_standard_deviation() {
        let (mean, std) = mean_and_std(&[1.0, 2.0, 3.0, 4.0]);
        close(mean, 2.5);
        close(std, 1.118033988749895); // np.std([1, 2, 3, 4])
    }
}
