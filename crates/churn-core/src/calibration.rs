//! Calibration: the map from a model's margin (log-odds) to a probability that matches observed
//! churn rates. Fitted in training on predictions the model did not learn from.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::model::sigmoid;

/// A monotone map from margin to probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// Platt scaling: `probability = sigmoid(slope · margin + intercept)`.
    Platt {
        /// The margin's factor.
        slope: f64,
        /// The shift added after it.
        intercept: f64,
    },
    /// Isotonic regression: linear interpolation between knots (margins ascending, probabilities
    /// non-decreasing), constant beyond the first and last knot.
    Isotonic {
        /// Knot margins, ascending.
        margins: Vec<f64>,
        /// Knot probabilities, non-decreasing.
        probabilities: Vec<f64>,
    },
}

impl Calibration {
    /// Returns the calibrated probability of a margin.
    pub fn probability(&self, margin: f64) -> f64 {
        match self {
            Calibration::Platt { slope, intercept } => sigmoid(slope * margin + intercept),
            Calibration::Isotonic {
                margins,
                probabilities,
            } => {
                let after = margins.partition_point(|&knot| knot <= margin);
                if after == 0 {
                    return probabilities[0];
                }
                if after == margins.len() {
                    return probabilities[margins.len() - 1];
                }
                let (x0, x1) = (margins[after - 1], margins[after]);
                let (y0, y1) = (probabilities[after - 1], probabilities[after]);
                y0 + (y1 - y0) * (margin - x0) / (x1 - x0)
            }
        }
    }

    /// Returns the method's name as written in the artifact.
    pub fn method_name(&self) -> &'static str {
        match self {
            Calibration::Platt { .. } => "platt",
            Calibration::Isotonic { .. } => "isotonic",
        }
    }

    /// Checks the parameters: finite, knots sorted, probabilities in [0, 1] and non-decreasing.
    pub fn validate(&self) -> Result<()> {
        let valid = match self {
            Calibration::Platt { slope, intercept } => {
                slope.is_finite() && intercept.is_finite() && *slope > 0.0
            }
            Calibration::Isotonic {
                margins,
                probabilities,
            } => {
                !margins.is_empty()
                    && margins.len() == probabilities.len()
                    && margins.iter().all(|x| x.is_finite())
                    && margins.windows(2).all(|pair| pair[0] < pair[1])
                    && probabilities.iter().all(|p| (0.0..=1.0).contains(p))
                    && probabilities.windows(2).all(|pair| pair[0] <= pair[1])
            }
        };
        if valid {
            Ok(())
        } else {
            Err(CoreError::InvalidArtifact {
                reason: format!("{} calibration is not a monotone map", self.method_name()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_is_a_sigmoid_of_the_scaled_margin() {
        let platt = Calibration::Platt {
            slope: 2.0,
            intercept: -1.0,
        };
        assert!(platt.validate().is_ok());
        assert_eq!(platt.probability(0.5), 0.5);
        assert!((platt.probability(1.0) - sigmoid(1.0)).abs() < 1e-15);
    }

    #[test]
    fn isotonic_interpolates_and_clamps() {
        let isotonic = Calibration::Isotonic {
            margins: vec![-1.0, 0.0, 2.0],
            probabilities: vec![0.1, 0.2, 0.6],
        };
        assert!(isotonic.validate().is_ok());
        assert_eq!(isotonic.probability(-5.0), 0.1);
        assert_eq!(isotonic.probability(0.0), 0.2);
        assert!((isotonic.probability(1.0) - 0.4).abs() < 1e-15);
        assert_eq!(isotonic.probability(9.0), 0.6);
    }

    #[test]
    fn non_monotone_maps_are_refused() {
        let decreasing = Calibration::Isotonic {
            margins: vec![0.0, 1.0],
            probabilities: vec![0.5, 0.4],
        };
        assert!(decreasing.validate().is_err());
        let flipped = Calibration::Platt {
            slope: -1.0,
            intercept: 0.0,
        };
        assert!(flipped.validate().is_err());
    }
}
