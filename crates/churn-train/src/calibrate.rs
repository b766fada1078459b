//! Fitting a [`Calibration`] from margins the model did not learn from.

use churn_core::{Calibration, sigmoid};
use serde::{Deserialize, Serialize};

/// How to calibrate probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationMethod {
    /// Platt scaling for tree models; none for logistic regression, calibrated by its own loss.
    #[default]
    Auto,
    /// No calibration: the sigmoid of the margin.
    None,
    /// Platt scaling: a logistic regression on the margin.
    Platt,
    /// Isotonic regression: a monotone, piecewise-linear function of the margin.
    Isotonic,
}

impl CalibrationMethod {
    /// Returns the method's name as in configs.
    pub fn name(self) -> &'static str {
        match self {
            CalibrationMethod::Auto => "auto",
            CalibrationMethod::None => "none",
            CalibrationMethod::Platt => "platt",
            CalibrationMethod::Isotonic => "isotonic",
        }
    }

    /// Tells whether a calibration map was asked for by name (rather than left to the model kind).
    pub fn is_explicit(self) -> bool {
        matches!(self, CalibrationMethod::Platt | CalibrationMethod::Isotonic)
    }
}

/// Fits Platt scaling, `sigmoid(slope · margin + intercept)`, by Newton's method on log loss
/// against Platt's smoothed targets, `(N₊ + 1) / (N₊ + 2)` for churners and `1 / (N₋ + 2)` for
/// the others: with 0 and 1, margins that separate a small validation set drive the slope to
/// infinity and every probability to 0 or 1 (scikit-learn's sigmoid calibration does the same).
/// Returns `None` when the margins do not rank churners higher (no monotone map fits).
pub fn fit_platt(margins: &[f64], labels: &[bool]) -> Option<Calibration> {
    let positives = labels.iter().filter(|&&label| label).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let targets = [
        1.0 / (negatives + 2.0),
        (positives + 1.0) / (positives + 2.0),
    ];
    let (mut slope, mut intercept) = (1.0, 0.0);
    for _ in 0..100 {
        // Gradient and Hessian of the summed log loss in (slope, intercept).
        let (mut g_slope, mut g_intercept) = (0.0, 0.0);
        let (mut h_ss, mut h_si, mut h_ii) = (0.0, 0.0, 0.0);
        for (&margin, &label) in margins.iter().zip(labels) {
            let probability = sigmoid(slope * margin + intercept);
            let residual = probability - targets[usize::from(label)];
            let weight = (probability * (1.0 - probability)).max(1e-12);
            g_slope += residual * margin;
            g_intercept += residual;
            h_ss += weight * margin * margin;
            h_si += weight * margin;
            h_ii += weight;
        }
        let determinant = h_ss * h_ii - h_si * h_si;
        if determinant.abs() < 1e-12 {
            break;
        }
        let step_slope = (h_ii * g_slope - h_si * g_intercept) / determinant;
        let step_intercept = (h_ss * g_intercept - h_si * g_slope) / determinant;
        slope -= step_slope;
        intercept -= step_intercept;
        if step_slope.abs() + step_intercept.abs() < 1e-12 {
            break;
        }
    }
    let calibration = Calibration::Platt { slope, intercept };
    calibration.validate().ok().map(|()| calibration)
}

/// Fits isotonic regression of the labels on the margins (pool adjacent violators), kept as the
/// knots where the fitted step function changes.
pub fn fit_isotonic(margins: &[f64], labels: &[bool]) -> Option<Calibration> {
    let mut order: Vec<usize> = (0..margins.len()).collect();
    order.sort_by(|&a, &b| margins[a].total_cmp(&margins[b]));
    // Blocks of (first margin, last margin, label sum, rows), tied margins pooled up front.
    let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
    for &row in &order {
        let (margin, label) = (margins[row], f64::from(u8::from(labels[row])));
        match blocks.last_mut() {
            Some(block) if block.1 == margin => {
                block.2 += label;
                block.3 += 1.0;
            }
            _ => blocks.push((margin, margin, label, 1.0)),
        }
        while blocks.len() >= 2 {
            let last = blocks[blocks.len() - 1];
            let previous = blocks[blocks.len() - 2];
            if previous.2 / previous.3 <= last.2 / last.3 {
                break;
            }
            blocks.pop();
            let merged = blocks.last_mut()?;
            merged.1 = last.1;
            merged.2 += last.2;
            merged.3 += last.3;
        }
    }
    let mut knots: Vec<(f64, f64)> = Vec::new();
    for (first, last, sum, rows) in blocks {
        let rate = sum / rows;
        knots.push((first, rate));
        if last > first {
            knots.push((last, rate));
        }
    }
    if knots.len() < 2 {
        return None;
    }
    let calibration = Calibration::Isotonic {
        margins: knots.iter().map(|knot| knot.0).collect(),
        probabilities: knots.iter().map(|knot| knot.1).collect(),
    };
    calibration.validate().ok().map(|()| calibration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_matches_scikit_learn() {
        // sklearn 1.9.1: sklearn.calibration._sigmoid_calibration(m, y) (what
        // CalibratedClassifierCV(method="sigmoid") fits, Platt's smoothed targets) returns
        // (a, b) for 1 / (1 + exp(a m + b)), so slope −a and intercept −b.
        let cases: [(&[f64], &[bool], f64, f64); 2] = [
            (
                &[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, -3.0, 1.5],
                &[
                    false, false, true, false, true, false, true, true, false, true,
                ],
                0.6547349331146408,
                -0.11729095267664966,
            ),
            // Separable: with 0/1 targets the slope would grow without bound.
            (
                &[-2.0, -1.0, 1.0, 2.0, 3.0],
                &[false, false, true, true, true],
                0.6341876215173106,
                0.03287016200787628,
            ),
        ];
        for (margins, labels, want_slope, want_intercept) in cases {
            let Some(Calibration::Platt { slope, intercept }) = fit_platt(margins, labels) else {
                panic!("no fit");
            };
            assert!((slope - want_slope).abs() < 1e-5, "{slope} {want_slope}");
            assert!((intercept - want_intercept).abs() < 1e-5, "{intercept}");
        }
    }

    #[test]
    fn isotonic_matches_scikit_learn() {
        // sklearn 1.9.1: IsotonicRegression().fit(m, y).predict(m) =
        // [0, 0.5, 0.5, 0.5, 0.5, 1] for m = [0, 1, 2, 3, 4, 5], y = [0, 1, 0, 1, 0, 1].
        let margins = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let labels = [false, true, false, true, false, true];
        let calibration = fit_isotonic(&margins, &labels).unwrap();
        let fitted: Vec<f64> = margins
            .iter()
            .map(|&m| calibration.probability(m))
            .collect();
        assert_eq!(fitted, vec![0.0, 0.5, 0.5, 0.5, 0.5, 1.0]);
    }

    #[test]
    fn anti_correlated_margins_get_no_platt_map() {
        assert!(fit_platt(&[1.0, 2.0, -1.0, -2.0], &[false, false, true, true]).is_none());
    }
}
