//! One model fitted on some rows, and the artifact built from it.

use std::collections::BTreeMap;
use std::path::Path;

use churn_core::{
    Calibration, EncodingStyle, Model, ModelArtifact, Preprocessor, RiskBands, TrainingMetadata,
    sigmoid,
};
use churn_data::Dataset;
use churn_data::calendar::format_date;

use super::{ModelKind, TrainingRows, ValidTrainConfig};
use crate::calibrate::{CalibrationMethod, fit_isotonic, fit_platt};
use crate::error::Result;
use crate::gbdt::ValidGbdtParams;
use crate::logistic::ValidLogisticParams;
use crate::metrics::Metrics;
use crate::preprocess::{encode_rows, fit_preprocessor};

/// Checked parameters of every model kind.
#[derive(Debug, Clone)]
pub(super) struct Params {
    pub(super) logistic: ValidLogisticParams,
    pub(super) gbdt: ValidGbdtParams,
    pub(super) calibration: CalibrationMethod,
    pub(super) seed: u64,
    /// Customers recur across snapshots: validation rows are whole customers.
    pub(super) group_by_customer: bool,
}

/// A preprocessor, model and calibration fitted on some rows.
pub(super) struct FittedModel {
    preprocessor: Preprocessor,
    encoder: churn_core::Encoder,
    model: Model,
    calibration: Option<Calibration>,
    trees_grown: Option<usize>,
}

/// Fits a model of `kind` on `rows` of `dataset`: its preprocessor, the model and, for trees,
/// a calibration on the early-stopping validation rows.
pub(super) fn fit_model(
    kind: ModelKind,
    dataset: &Dataset,
    rows: &[usize],
    params: &Params,
) -> Result<FittedModel> {
    let style = match kind {
        ModelKind::Logistic => EncodingStyle::OneHot,
        ModelKind::Gbdt => EncodingStyle::Codes,
    };
    let preprocessor = fit_preprocessor(dataset, rows, style);
    let encoder = preprocessor.encoder(&dataset.schema)?;
    let x = encode_rows(&encoder, dataset, rows)?;
    let y: Vec<bool> = rows
        .iter()
        .map(|&row| dataset.labels.churned[row])
        .collect();
    let (model, calibration, trees_grown) = match kind {
        ModelKind::Logistic => (Model::Logistic(params.logistic.fit(&x, &y)?), None, None),
        ModelKind::Gbdt => {
            let groups: Option<Vec<String>> = params
                .group_by_customer
                .then_some(dataset.ids.as_ref())
                .flatten()
                .map(|ids| rows.iter().map(|&row| ids[row].clone()).collect());
            let fitted = params.gbdt.fit_grouped(
                &x,
                &encoder.categorical_columns(),
                &y,
                groups.as_deref(),
                params.seed,
            )?;
            let margins = &fitted.validation_margins;
            let validation_labels = &fitted.validation_labels;
            let calibration = match params.calibration {
                CalibrationMethod::None => None,
                // No validation rows without early stopping (an explicit method is refused up front).
                _ if margins.is_empty() => None,
                CalibrationMethod::Auto | CalibrationMethod::Platt => {
                    fit_platt(margins, validation_labels)
                }
                CalibrationMethod::Isotonic => fit_isotonic(margins, validation_labels),
            };
            (
                Model::Gbdt(fitted.ensemble),
                calibration,
                Some(fitted.trees_grown),
            )
        }
    };
    Ok(FittedModel {
        preprocessor,
        encoder,
        model,
        calibration,
        trees_grown,
    })
}

impl FittedModel {
    /// Returns the model's (calibrated) probabilities for `rows`.
    fn probabilities(&self, dataset: &Dataset, rows: &[usize]) -> Result<Vec<f64>> {
        let x = encode_rows(&self.encoder, dataset, rows)?;
        Ok(x.rows()
            .into_iter()
            .map(|row| {
                let margin = self.model.margin(&row.to_vec());
                match &self.calibration {
                    Some(calibration) => calibration.probability(margin),
                    None => sigmoid(margin),
                }
            })
            .collect())
    }

    /// Returns the metrics of the model's probabilities on `rows`.
    pub(super) fn evaluate(&self, dataset: &Dataset, rows: &[usize]) -> Result<Metrics> {
        let probabilities = self.probabilities(dataset, rows)?;
        let labels: Vec<bool> = rows
            .iter()
            .map(|&row| dataset.labels.churned[row])
            .collect();
        Ok(Metrics::compute(&labels, &probabilities))
    }
}

impl ValidTrainConfig {
    /// Builds the artifact of a model of `kind` fitted on `fitted_rows` of `rows`: its score
    /// quantiles and default risk bands come from those rows, and its metadata records the
    /// data, the parameters and the seed. `name` is the model's name.
    pub(super) fn build_artifact(
        &self,
        name: &str,
        rows: &TrainingRows,
        kind: ModelKind,
        fitted: &FittedModel,
        fitted_rows: &[usize],
    ) -> Result<ModelArtifact> {
        let config = self.config();
        let dataset = &rows.dataset;
        let probabilities = fitted.probabilities(dataset, fitted_rows)?;
        let score_quantiles = quantiles(&probabilities, 100);
        Ok(ModelArtifact {
            name: name.to_string(),
            schema: dataset.schema.clone(),
            preprocessor: fitted.preprocessor.clone(),
            model: fitted.model.clone(),
            calibration: fitted.calibration.clone(),
            bands: Some(
                config
                    .bands
                    .unwrap_or_else(|| RiskBands::from_quantiles(&score_quantiles)),
            ),
            score_quantiles,
            metadata: TrainingMetadata {
                churn_version: env!("CARGO_PKG_VERSION").to_string(),
                data_source: file_name(&dataset.source.path),
                data_sha256: dataset.source.sha256.clone(),
                rows: dataset.n_rows(),
                positives: dataset.labels.positives(),
                seed: config.seed,
                params: self.recorded_params(rows, kind, fitted, fitted_rows.len()),
                metrics: BTreeMap::new(),
                excluded_columns: dataset.excluded.clone(),
            },
        })
    }

    /// Returns the parameters an artifact records.
    fn recorded_params(
        &self,
        rows: &TrainingRows,
        kind: ModelKind,
        fitted: &FittedModel,
        trained_on_rows: usize,
    ) -> serde_json::Value {
        let config = self.config();
        let params = self.params();
        let mut recorded = serde_json::json!({
            "model": kind.name(),
            "logistic": params.logistic.params(),
            "gbdt": params.gbdt.params(),
            "calibration": fitted.calibration.as_ref().map(Calibration::method_name),
            "trees_grown": fitted.trees_grown,
            "test_fraction": config.test_fraction,
            "refit": config.refit,
            "trained_on_rows": trained_on_rows,
        });
        // Only when trained on events, so flat-file artifacts keep their bytes.
        if let Some(events) = &config.events {
            recorded["events"] = serde_json::json!({
                "snapshots": rows.snapshots.iter().copied().map(format_date).collect::<Vec<_>>(),
                "horizon_days": events.horizon_days,
                "operational_only": events.operational_only,
                "test": "latest snapshot",
            });
        }
        recorded
    }
}

/// Returns the 0th to `steps`th quantiles (linear interpolation, numpy's default).
fn quantiles(values: &[f64], steps: usize) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Vec::new();
    }
    let last = (sorted.len() - 1) as f64;
    (0..=steps)
        .map(|step| {
            let position = last * step as f64 / steps as f64;
            let lower = position.floor() as usize;
            let upper = position.ceil() as usize;
            let weight = position - lower as f64;
            sorted[lower] + (sorted[upper] - sorted[lower]) * weight
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // np.quantile([1, 2, 3, 4, 10], [0, .25, .5, .75, 1]) = [1, 2, 3, 4, 10]
        assert_eq!(
            quantiles(&[10.0, 1.0, 3.0, 2.0, 4.0], 4),
            vec![1.0, 2.0, 3.0, 4.0, 10.0]
        );
        // np.quantile([0, 1], 0.25) = 0.25
        assert_eq!(quantiles(&[0.0, 1.0], 4)[1], 0.25);
    }
}
