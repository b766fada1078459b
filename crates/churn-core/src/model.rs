//! Fitted models as stored in the artifact, and their raw margin (log-odds).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::tree::TreeEnsemble;

/// A fitted model of any supported kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Model {
    /// Logistic regression over one-hot encoded columns.
    Logistic(LinearModel),
    /// Gradient-boosted trees over category codes.
    Gbdt(TreeEnsemble),
}

impl Model {
    /// Returns the model's kind as written in the artifact.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Model::Logistic(_) => "logistic",
            Model::Gbdt(_) => "gbdt",
        }
    }

    /// Checks the model against the encoded columns it will be given: `categorical[k]` tells
    /// whether column `k` holds categorical codes.
    pub fn validate(&self, categorical: &[bool]) -> Result<()> {
        match self {
            Model::Logistic(linear) => linear.validate(categorical.len()),
            Model::Gbdt(ensemble) => ensemble.validate(categorical),
        }
    }

    /// Returns the raw margin (log-odds) for an encoded row.
    pub fn margin(&self, row: &[f64]) -> f64 {
        match self {
            Model::Logistic(linear) => linear.logit(row),
            Model::Gbdt(ensemble) => ensemble.margin(row),
        }
    }
}

/// Logistic regression on standardised encoded columns:
/// `logit = intercept + Σ coefficient_k · (x_k − center_k) / scale_k`.
///
/// Because every column is centred on its training mean, `intercept` is the logit of the average
/// customer and each term is that column's exact contribution (linear SHAP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// The log-odds when every encoded column is 0.
    pub intercept: f64,
    /// One weight per encoded column.
    pub coefficients: Vec<f64>,
    /// Training mean of each encoded column.
    pub centers: Vec<f64>,
    /// Training standard deviation of each encoded column (1 where it was constant).
    pub scales: Vec<f64>,
}

impl LinearModel {
    /// Returns the contribution of encoded column `k` with value `x` to the logit.
    #[inline]
    pub fn term(&self, k: usize, x: f64) -> f64 {
        self.coefficients[k] * (x - self.centers[k]) / self.scales[k]
    }

    /// Returns the logit of an encoded row.
    pub fn logit(&self, row: &[f64]) -> f64 {
        self.intercept + (0..row.len()).map(|k| self.term(k, row[k])).sum::<f64>()
    }

    pub(crate) fn validate(&self, n_columns: usize) -> Result<()> {
        let lengths = [
            self.coefficients.len(),
            self.centers.len(),
            self.scales.len(),
        ];
        if lengths.iter().any(|&length| length != n_columns) {
            return Err(CoreError::InvalidArtifact {
                reason: format!(
                    "logistic model has {lengths:?} coefficients/centers/scales for {n_columns} encoded columns"
                ),
            });
        }
        let all_finite = std::iter::once(&self.intercept)
            .chain(&self.coefficients)
            .chain(&self.centers)
            .chain(&self.scales)
            .all(|value| value.is_finite());
        if !all_finite || self.scales.iter().any(|&scale| scale <= 0.0) {
            return Err(CoreError::InvalidArtifact {
                reason: "logistic model has a non-finite number or a non-positive scale".into(),
            });
        }
        Ok(())
    }
}

/// Returns the logistic function of `logit`, without overflow for large magnitudes.
pub fn sigmoid(logit: f64) -> f64 {
    // exp of minus |logit| never overflows; the numerator picks 1/(1 + e^-x) for x >= 0 and
    // e^x/(1 + e^x) below, the same numbers as two branches but without a branch to mispredict
    // (boosting calls this for every row and round).
    let exp = (-logit.abs()).exp();
    let numerator = [exp, 1.0][usize::from(logit >= 0.0)];
    numerator / (1.0 + exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_stable_at_the_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(2.0) - 0.8807970779778823).abs() < 1e-15);
    }

    #[test]
    fn sigmoid_gives_the_two_sided_formula_to_the_bit() {
        // The textbook stable form, one branch per sign: trained models must not move.
        let two_sided = |x: f64| {
            if x >= 0.0 {
                1.0 / (1.0 + (-x).exp())
            } else {
                x.exp() / (1.0 + x.exp())
            }
        };
        let mut values = vec![-0.0, f64::MIN_POSITIVE, -f64::MIN_POSITIVE, 745.0, -745.0];
        values.extend((-4000..=4000).map(|step| f64::from(step) * 0.0137));
        for x in values {
            assert_eq!(sigmoid(x).to_bits(), two_sided(x).to_bits(), "{x}");
        }
        assert!(sigmoid(f64::NAN).is_nan());
    }

    #[test]
    fn a_model_with_the_wrong_width_is_refused() {
        let model = Model::Logistic(LinearModel {
            intercept: 0.0,
            coefficients: vec![1.0],
            centers: vec![0.0],
            scales: vec![1.0],
        });
        assert!(model.validate(&[false]).is_ok());
        assert!(matches!(
            model.validate(&[false, false]),
            Err(CoreError::InvalidArtifact { .. })
        ));
    }
}
