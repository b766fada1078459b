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
    None,
    Platt,
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

/// Fits Platt scaling, `sigmoid(slope · margin + intercept)`, by Newton's method on log loss.
/// Returns `None` when the margins do not rank churners higher (no monotone map fits).
pub fn fit_platt(margins: &[f64], labels: &[bool]) -> Option<Calibration> {
    let (mut slope, mut intercept) = (1.0, 0.0);
    for _ in 0..100 {
        // Gradient and Hessian of the summed log loss in (slope, intercept).
        let (mut g_slope, mut g_intercept) = (0.0, 0.0);
        let (mut h_ss, mut h_si, mut h_ii) = (0.0, 0.0, 0.0);
        for (&margin, &label) in margins.iter().zip(labels) {
            let probability = sigmoid(slope * margin + intercept);
            let residual = probability - f64::from(u8::from(label));
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
        // sklearn 1.9.1: LogisticRegression(C=1e12, tol=1e-12).fit(m.reshape(-1, 1), y) on these
        // points gives coef 1.25546195, intercept -0.27130979 (unregularised log loss, as here).
        let margins = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, -3.0, 1.5];
        let labels = [
            false, false, true, false, true, false, true, true, false, true,
        ];
        let Some(Calibration::Platt { slope, intercept }) = fit_platt(&margins, &labels) else {
            panic!("no fit");
        };
        assert!((slope - 1.25546195).abs() < 1e-6, "{slope}");
        assert!((intercept + 0.27130979).abs() < 1e-6, "{intercept}");
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
