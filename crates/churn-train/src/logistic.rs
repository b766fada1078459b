//! L2-regularised logistic regression through `linfa-logistic`, on standardised columns.

use churn_core::LinearModel;
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Parameters of the logistic model, as given (see [`LogisticParams::check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogisticParams {
    /// L2 penalty on the summed log loss: `alpha = 1 / C` in scikit-learn's terms.
    pub l2: f64,
    /// Most iterations of the solver.
    pub max_iterations: u64,
    /// L-BFGS stops once the gradient norm falls below this.
    pub gradient_tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            l2: 1.0,
            max_iterations: 500,
            gradient_tolerance: 1e-6,
        }
    }
}

/// Checked logistic parameters; only these can fit.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidLogisticParams(LogisticParams);

impl LogisticParams {
    /// Checks the parameters.
    pub fn check(self) -> Result<ValidLogisticParams> {
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return Err(TrainError::InvalidParam {
                name: "l2",
                value: self.l2.to_string(),
                reason: "must be a finite number ≥ 0",
            });
        }
        if self.max_iterations == 0 {
            return Err(TrainError::InvalidParam {
                name: "max_iterations",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0) {
            return Err(TrainError::InvalidParam {
                name: "gradient_tolerance",
                value: self.gradient_tolerance.to_string(),
                reason: "must be a finite number > 0",
            });
        }
        Ok(ValidLogisticParams(self))
    }
}

impl ValidLogisticParams {
    /// Returns the parameters.
    pub fn params(&self) -> &LogisticParams {
        &self.0
    }

    /// Fits on encoded rows `x` with churn labels `y`. Columns are standardised first (mean 0,
    /// population standard deviation 1, like scikit-learn's `StandardScaler`).
    pub fn fit(&self, x: &Array2<f64>, y: &[bool]) -> Result<LinearModel> {
        let fit_error = |reason: String| TrainError::Fit {
            model: "logistic",
            reason,
        };
        let centers = x
            .mean_axis(Axis(0))
            .ok_or_else(|| fit_error("no rows".into()))?;
        let scales = x
            .std_axis(Axis(0), 0.0)
            .mapv(|scale| if scale > 1e-12 { scale } else { 1.0 });
        let z = (x - &centers) / &scales;
        let targets = Array1::from(y.to_vec());
        let dataset = Dataset::new(z, targets);
        let fitted = LogisticRegression::default()
            .alpha(self.0.l2)
            .max_iterations(self.0.max_iterations)
            .gradient_tolerance(self.0.gradient_tolerance)
            .fit(&dataset)
            .map_err(|error| fit_error(error.to_string()))?;
        // linfa models the log-odds of its "positive" class, which is the more frequent label
        // (usually "retained"); flip so the model always gives the log-odds of churn.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        Ok(LinearModel {
            intercept: sign * fitted.intercept(),
            coefficients: fitted.params().iter().map(|w| sign * w).collect(),
            centers: centers.to_vec(),
            scales: scales.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use churn_core::sigmoid;

    /// Reference: scikit-learn 1.9.1 `make_pipeline(StandardScaler(), LogisticRegression(C=1.0,
    /// tol=1e-10, max_iter=10000))` fitted on this exact data (x, y below) gives
    /// intercept_ = -0.5452783061, coef_ = [1.3284455806, -0.5266351505] on the standardised
    /// columns, and predict_proba(x)[:3, 1] = [0.0808369286, 0.097495234, 0.4541581936].
    #[test]
    fn matches_scikit_learn_on_a_small_fixture() {
        let x = ndarray::array![
            [1.0, 3.0],
            [2.0, 5.0],
            [3.0, 1.0],
            [4.0, 4.0],
            [5.0, 2.0],
            [6.0, 6.0],
            [2.5, 2.0],
            [3.5, 5.5],
            [1.5, 1.0],
            [5.5, 3.0]
        ];
        let y = [
            false, false, true, false, true, true, false, false, false, true,
        ];
        let model = LogisticParams::default()
            .check()
            .unwrap()
            .fit(&x, &y)
            .unwrap();
        let expected_coefficients = [1.3284455806, -0.5266351505];
        assert!(
            (model.intercept - -0.5452783061).abs() < 1e-5,
            "{}",
            model.intercept
        );
        for (got, want) in model.coefficients.iter().zip(expected_coefficients) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        let probabilities: Vec<f64> = (0..3)
            .map(|row| sigmoid(model.logit(x.row(row).as_slice().unwrap())))
            .collect();
        for (got, want) in probabilities
            .iter()
            .zip([0.0808369286, 0.097495234, 0.4541581936])
        {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let params = LogisticParams {
            l2: -1.0,
            ..LogisticParams::default()
        };
        assert!(matches!(
            params.check(),
            Err(TrainError::InvalidParam { name: "l2", .. })
        ));
    }
}
