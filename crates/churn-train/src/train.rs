//! The training pipeline: data → holdout split (and optional CV) → fitted model → artifact,
//! metrics and model card.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::{
    FeatureKind, LinearModel, Model, ModelArtifact, Preprocessor, Scorer, TrainingMetadata, sigmoid,
};
use churn_data::{Dataset, TrainingSpec, load_training_data, stratified_k_fold, stratified_split};
use serde::{Deserialize, Serialize};

use crate::card::model_card;
use crate::error::{Result, TrainError};
use crate::logistic::LogisticParams;
use crate::metrics::{Metrics, mean_and_std};
use crate::preprocess::{encode_rows, fit_preprocessor};

/// Which model to fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    #[default]
    Logistic,
}

/// Everything `churn train` needs; read from a TOML file or built from flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Model name written into the artifact; defaults to the output folder's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Training data, CSV or Parquet.
    pub data: PathBuf,
    pub target: String,
    #[serde(default)]
    pub positive: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
    /// An explicit feature list: only these columns are features.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Feature kinds forced by name, overriding inference.
    #[serde(default)]
    pub kinds: BTreeMap<String, FeatureKind>,
    #[serde(default)]
    pub model: ModelChoice,
    /// Number of cross-validation folds; none when absent.
    #[serde(default)]
    pub cv: Option<usize>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Share of rows held out to measure the fitted model.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default)]
    pub logistic: LogisticParams,
    /// Output folder.
    #[serde(default)]
    pub out: Option<PathBuf>,
}

fn default_seed() -> u64 {
    42
}

fn default_test_fraction() -> f64 {
    0.2
}

impl TrainConfig {
    /// Returns a configuration with defaults for everything but the data and target.
    pub fn new(data: PathBuf, target: String) -> Self {
        TrainConfig {
            name: None,
            data,
            target,
            positive: None,
            id: None,
            ignore: Vec::new(),
            features: None,
            kinds: BTreeMap::new(),
            model: ModelChoice::default(),
            cv: None,
            seed: default_seed(),
            test_fraction: default_test_fraction(),
            logistic: LogisticParams::default(),
            out: None,
        }
    }

    fn spec(&self) -> TrainingSpec {
        TrainingSpec {
            target: self.target.clone(),
            positive: self.positive.clone(),
            id: self.id.clone(),
            ignore: self.ignore.clone(),
            features: self.features.clone(),
            kinds: self.kinds.clone(),
        }
    }
}

/// Cross-validation results, one entry per fold.
#[derive(Debug, Clone, PartialEq)]
pub struct CvReport {
    pub folds: Vec<Metrics>,
}

impl CvReport {
    /// Returns the mean and standard deviation of one metric over the folds.
    pub fn summary(&self, metric: &str) -> (f64, f64) {
        let values: Vec<f64> = self
            .folds
            .iter()
            .filter_map(|fold| {
                fold.named()
                    .into_iter()
                    .find(|(name, _)| *name == metric)
                    .map(|(_, value)| value)
            })
            .collect();
        mean_and_std(&values)
    }
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub artifact: ModelArtifact,
    pub holdout: Metrics,
    pub cv: Option<CvReport>,
    pub train_rows: usize,
    pub test_rows: usize,
    /// Mean |contribution| of each raw feature over the training rows, largest first.
    pub importance: Vec<(String, f64)>,
    pub card: String,
}

impl TrainOutcome {
    /// Returns `metrics.json`'s content: holdout metrics, and CV mean and std when run.
    pub fn metrics_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, value) in self.holdout.named() {
            map.insert(name.into(), value.into());
        }
        map.insert("train_rows".into(), self.train_rows.into());
        map.insert("test_rows".into(), self.test_rows.into());
        if let Some(cv) = &self.cv {
            map.insert("cv_folds".into(), cv.folds.len().into());
            for (name, _) in self.holdout.named() {
                let (mean, std) = cv.summary(name);
                map.insert(format!("cv_{name}_mean"), mean.into());
                map.insert(format!("cv_{name}_std"), std.into());
            }
        }
        serde_json::Value::Object(map)
    }

    /// Writes `model.json`, `metrics.json` and `card.md` into `out`.
    pub fn write(&self, out: &Path) -> Result<()> {
        let write = |name: &str, content: String| {
            let path = out.join(name);
            std::fs::write(&path, content).map_err(|source| TrainError::Write { path, source })
        };
        std::fs::create_dir_all(out).map_err(|source| TrainError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        write("model.json", self.artifact.to_json())?;
        let mut metrics = serde_json::to_string_pretty(&self.metrics_json()).unwrap_or_default();
        metrics.push('\n');
        write("metrics.json", metrics)?;
        write("card.md", self.card.clone())
    }
}

/// Trains a model as configured. `name` is the model's name in the artifact.
pub fn train(config: &TrainConfig, name: &str) -> Result<TrainOutcome> {
    let logistic = config.logistic.clone().check()?;
    if !(0.0 < config.test_fraction && config.test_fraction < 1.0) {
        return Err(TrainError::InvalidParam {
            name: "test_fraction",
            value: config.test_fraction.to_string(),
            reason: "must be between 0 and 1",
        });
    }
    let dataset = load_training_data(&config.data, &config.spec())?;
    let labels = &dataset.labels.churned;
    tracing::info!(
        rows = dataset.n_rows(),
        features = dataset.schema.features.len(),
        positive = dataset.labels.positive_class,
        "data loaded"
    );

    let cv = match config.cv {
        Some(k) => {
            let folds = stratified_k_fold(labels, k, config.seed)?
                .iter()
                .enumerate()
                .map(|(fold, split)| {
                    let fitted = fit_logistic(&dataset, &split.train, &logistic)?;
                    let metrics = fitted.evaluate(&dataset, &split.test)?;
                    tracing::info!(fold, roc_auc = metrics.roc_auc, "cross-validation fold");
                    Ok(metrics)
                })
                .collect::<Result<Vec<_>>>()?;
            Some(CvReport { folds })
        }
        None => None,
    };

    let split = stratified_split(labels, config.test_fraction, config.seed)?;
    let fitted = fit_logistic(&dataset, &split.train, &logistic)?;
    let importance = fitted.importance(&dataset, &split.train)?;
    let train_probabilities = fitted.probabilities(&dataset, &split.train)?;
    let mut artifact = ModelArtifact {
        name: name.to_string(),
        schema: dataset.schema.clone(),
        preprocessor: fitted.preprocessor,
        model: Model::Logistic(fitted.model),
        calibration: None,
        score_quantiles: quantiles(&train_probabilities, 100),
        metadata: TrainingMetadata {
            churn_version: env!("CARGO_PKG_VERSION").to_string(),
            data_source: file_name(&dataset.source.path),
            data_sha256: dataset.source.sha256.clone(),
            rows: dataset.n_rows(),
            positives: dataset.labels.positives(),
            seed: config.seed,
            params: serde_json::json!({
                "model": "logistic",
                "logistic": logistic.params(),
                "test_fraction": config.test_fraction,
            }),
            metrics: BTreeMap::new(),
            excluded_columns: dataset.excluded.clone(),
        },
    };
    // Measure the holdout through the serving path: the artifact's own scorer.
    let scorer = Scorer::new(artifact.clone())?;
    let test_probabilities = split
        .test
        .iter()
        .map(|&row| {
            scorer
                .score_values(|feature| Some(dataset.value(feature, row)))
                .map_err(|source| TrainError::Row {
                    row: row + 1,
                    source,
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let test_labels: Vec<bool> = split.test.iter().map(|&row| labels[row]).collect();
    let holdout = Metrics::compute(&test_labels, &test_probabilities);
    artifact.metadata.metrics = holdout.to_map();

    let mut outcome = TrainOutcome {
        artifact,
        holdout,
        cv,
        train_rows: split.train.len(),
        test_rows: split.test.len(),
        importance,
        card: String::new(),
    };
    outcome.card = model_card(&outcome, &dataset);
    Ok(outcome)
}

/// A preprocessor and logistic model fitted on some rows.
struct FittedLogistic {
    preprocessor: Preprocessor,
    encoder: churn_core::Encoder,
    model: LinearModel,
}

fn fit_logistic(
    dataset: &Dataset,
    rows: &[usize],
    params: &crate::logistic::ValidLogisticParams,
) -> Result<FittedLogistic> {
    let preprocessor = fit_preprocessor(dataset, rows, churn_core::EncodingStyle::OneHot);
    let encoder = preprocessor.encoder(&dataset.schema)?;
    let x = encode_rows(&encoder, dataset, rows)?;
    let y: Vec<bool> = rows
        .iter()
        .map(|&row| dataset.labels.churned[row])
        .collect();
    let model = params.fit(&x, &y)?;
    Ok(FittedLogistic {
        preprocessor,
        encoder,
        model,
    })
}

impl FittedLogistic {
    fn probabilities(&self, dataset: &Dataset, rows: &[usize]) -> Result<Vec<f64>> {
        let x = encode_rows(&self.encoder, dataset, rows)?;
        Ok(x.rows()
            .into_iter()
            .map(|row| sigmoid(self.model.logit(&row.to_vec())))
            .collect())
    }

    fn evaluate(&self, dataset: &Dataset, rows: &[usize]) -> Result<Metrics> {
        let probabilities = self.probabilities(dataset, rows)?;
        let labels: Vec<bool> = rows
            .iter()
            .map(|&row| dataset.labels.churned[row])
            .collect();
        Ok(Metrics::compute(&labels, &probabilities))
    }

    /// Mean |contribution| per raw feature over `rows`, largest first.
    fn importance(&self, dataset: &Dataset, rows: &[usize]) -> Result<Vec<(String, f64)>> {
        let x = encode_rows(&self.encoder, dataset, rows)?;
        let mut totals = vec![0.0; dataset.schema.features.len()];
        for row in x.rows() {
            let mut per_feature = vec![0.0; totals.len()];
            for (k, column) in self.encoder.columns().iter().enumerate() {
                per_feature[column.source] += self.model.term(k, row[k]);
            }
            for (total, contribution) in totals.iter_mut().zip(per_feature) {
                *total += contribution.abs();
            }
        }
        let mut importance: Vec<(String, f64)> = dataset
            .schema
            .features
            .iter()
            .zip(totals)
            .map(|(spec, total)| (spec.name.clone(), total / rows.len() as f64))
            .collect();
        importance.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(importance)
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
