//! The training pipeline: data → holdout split (and optional CV) → fitted model → artifact,
//! metrics and model card.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::{
    Calibration, EncodingStyle, Explanation, FeatureKind, Model, ModelArtifact, Preprocessor,
    RiskBands, Scorer, TrainingMetadata, sigmoid,
};
use churn_data::calendar::{format_date, parse_date};
use churn_data::{
    Dataset, EventTables, Split, TrainingSpec, grouped_k_fold, load_snapshot_training_data,
    load_training_data, stratified_k_fold, stratified_split,
};
use serde::{Deserialize, Serialize};

use crate::calibrate::{CalibrationMethod, fit_isotonic, fit_platt};
use crate::card::{model_card, model_card_html};
use crate::error::{Result, TrainError};
use crate::gbdt::{GbdtParams, ValidGbdtParams};
use crate::logistic::{LogisticParams, ValidLogisticParams};
use crate::metrics::{Metrics, mean_and_std};
use crate::preprocess::{encode_rows, fit_preprocessor};

/// Which model to fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// Both kinds compared by cross-validated ROC-AUC; the better one is kept.
    #[default]
    Auto,
    Logistic,
    Gbdt,
}

/// A concrete kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Logistic,
    Gbdt,
}

impl ModelKind {
    /// Returns the kind's name as in configs and artifacts.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Logistic => "logistic",
            ModelKind::Gbdt => "gbdt",
        }
    }
}

/// Everything `churn train` needs; read from a TOML file or built from flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Model name written into the artifact; defaults to the output folder's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Training data, CSV or Parquet (or, with `events`, a directory of event tables).
    pub data: PathBuf,
    /// The churn label column of a flat file (with `events`, always `churned`).
    #[serde(default)]
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
    /// Once measured, fit the model shipped on every row, held-out ones included (the
    /// default); off, the model shipped is the one measured.
    #[serde(default = "default_refit")]
    pub refit: bool,
    #[serde(default)]
    pub logistic: LogisticParams,
    #[serde(default)]
    pub gbdt: GbdtParams,
    /// Calibration of tree models, fitted on their early-stopping validation rows.
    #[serde(default)]
    pub calibration: CalibrationMethod,
    /// Risk band cut-offs; by default the riskiest 10% of training customers are HIGH and the
    /// next 20% MEDIUM.
    #[serde(default)]
    pub bands: Option<RiskBands>,
    /// Output folder.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// When set, `data` is a directory of event tables: profiles are built at snapshots and
    /// the model is tested on the latest one.
    #[serde(default)]
    pub events: Option<EventsConfig>,
}

/// How to turn event tables into a training set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// A subscription that ends within this many days after a snapshot is churn.
    #[serde(default = "default_horizon_days")]
    pub horizon_days: i32,
    /// Snapshot dates (YYYY-MM-DD). By default, `snapshot_count` monthly snapshots ending
    /// where the horizon reaches the last event.
    #[serde(default)]
    pub snapshots: Vec<String>,
    #[serde(default = "default_snapshot_count")]
    pub snapshot_count: usize,
    /// Leaves out what customers said and lived with support (surveys, tickets, complaints,
    /// response times): the operational baseline that experience data is measured against.
    #[serde(default)]
    pub operational_only: bool,
}

fn default_horizon_days() -> i32 {
    90
}

fn default_snapshot_count() -> usize {
    6
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            horizon_days: default_horizon_days(),
            snapshots: Vec::new(),
            snapshot_count: default_snapshot_count(),
            operational_only: false,
        }
    }
}

/// Days of history a snapshot needs before it (the longest feature window).
const SNAPSHOT_HISTORY_DAYS: i32 = 90;

impl EventsConfig {
    /// Builds the stacked training set from the event tables in `dir`, split by time.
    fn load(&self, dir: &Path, ignore: &[String]) -> Result<(Dataset, Split, Vec<i32>)> {
        if !(1..=3_650).contains(&self.horizon_days) {
            return Err(TrainError::InvalidParam {
                name: "horizon_days",
                value: self.horizon_days.to_string(),
                reason: "must be between 1 and 3650 days",
            });
        }
        if self.snapshots.is_empty() && !(2..=120).contains(&self.snapshot_count) {
            return Err(TrainError::InvalidParam {
                name: "snapshot_count",
                value: self.snapshot_count.to_string(),
                reason: "must be between 2 (one to train on, one to test on) and 120",
            });
        }
        let tables = EventTables::open(dir)?;
        let snapshots = if self.snapshots.is_empty() {
            tables.monthly_snapshots(
                self.snapshot_count,
                self.horizon_days,
                SNAPSHOT_HISTORY_DAYS,
            )?
        } else {
            self.snapshots
                .iter()
                .map(|text| {
                    parse_date(text).ok_or_else(|| TrainError::InvalidParam {
                        name: "snapshots",
                        value: text.clone(),
                        reason: "not a date (YYYY-MM-DD)",
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        let mut left_out = ignore.to_vec();
        if self.operational_only {
            left_out.extend(churn_core::experience::EXPERIENCE_FEATURES.map(String::from));
        }
        let data = load_snapshot_training_data(&tables, &snapshots, self.horizon_days, &left_out)?;
        Ok((data.dataset, data.split, data.snapshots))
    }
}

fn default_seed() -> u64 {
    42
}

fn default_refit() -> bool {
    true
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
            refit: default_refit(),
            logistic: LogisticParams::default(),
            gbdt: GbdtParams::default(),
            calibration: CalibrationMethod::default(),
            bands: None,
            out: None,
            events: None,
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

/// How `auto` chose the model: each kind's cross-validated ROC-AUC (mean, std).
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub logistic: (f64, f64),
    pub gbdt: (f64, f64),
    pub folds: usize,
}

/// A raw feature's weight in the model and which way it moves risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub feature: String,
    /// Mean |contribution| to the log-odds over training customers.
    pub importance: f64,
    pub direction: String,
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub artifact: ModelArtifact,
    pub kind: ModelKind,
    pub holdout: Metrics,
    /// Holdout labels and probabilities, for the card's plots.
    pub holdout_labels: Vec<bool>,
    pub holdout_probabilities: Vec<f64>,
    /// Holdout metrics of the uncalibrated probabilities, when a calibration was fitted.
    pub holdout_uncalibrated: Option<Metrics>,
    pub cv: Option<CvReport>,
    pub selection: Option<Selection>,
    /// Rows the measured model was fitted on, and rows it was measured on.
    pub train_rows: usize,
    pub test_rows: usize,
    /// Rows the shipped model was fitted on: every row when refitted, else `train_rows`.
    pub trained_on_rows: usize,
    /// Raw features by importance, largest first.
    pub drivers: Vec<Driver>,
    pub card: String,
    pub card_html: String,
}

impl TrainOutcome {
    /// Returns `metrics.json`'s content: holdout metrics, and CV mean and std when run.
    pub fn metrics_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("model".into(), self.kind.name().into());
        for (name, value) in self.holdout.named() {
            map.insert(name.into(), value.into());
        }
        if let Some(uncalibrated) = &self.holdout_uncalibrated {
            map.insert("ece_uncalibrated".into(), uncalibrated.ece.into());
        }
        map.insert("train_rows".into(), self.train_rows.into());
        map.insert("test_rows".into(), self.test_rows.into());
        map.insert("trained_on_rows".into(), self.trained_on_rows.into());
        if let Some(cv) = &self.cv {
            map.insert("cv_folds".into(), cv.folds.len().into());
            for (name, _) in self.holdout.named() {
                let (mean, std) = cv.summary(name);
                map.insert(format!("cv_{name}_mean"), mean.into());
                map.insert(format!("cv_{name}_std"), std.into());
            }
        }
        if let Some(selection) = &self.selection {
            map.insert(
                "auto_cv_roc_auc_logistic".into(),
                selection.logistic.0.into(),
            );
            map.insert("auto_cv_roc_auc_gbdt".into(), selection.gbdt.0.into());
        }
        serde_json::Value::Object(map)
    }

    /// Writes `model.json`, `metrics.json`, `card.md` and `card.html` into `out`.
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
        write("card.md", self.card.clone())?;
        write("card.html", self.card_html.clone())
    }
}

/// Checked parameters of every model kind.
struct Params {
    logistic: ValidLogisticParams,
    gbdt: ValidGbdtParams,
    calibration: CalibrationMethod,
    seed: u64,
    /// Customers recur across snapshots: validation rows are whole customers.
    group_by_customer: bool,
}

/// Trains a model as configured. `name` is the model's name in the artifact.
pub fn train(config: &TrainConfig, name: &str) -> Result<TrainOutcome> {
    let params = Params {
        logistic: config.logistic.clone().check()?,
        gbdt: config.gbdt.clone().check()?,
        calibration: config.calibration,
        seed: config.seed,
        group_by_customer: config.events.is_some(),
    };
    if let Some(bands) = config.bands
        && bands.validate().is_err()
    {
        return Err(TrainError::InvalidParam {
            name: "bands",
            value: format!("medium = {}, high = {}", bands.medium, bands.high),
            reason: "must satisfy 0 <= medium <= high <= 1",
        });
    }
    if !(0.0 < config.test_fraction && config.test_fraction < 1.0) {
        return Err(TrainError::InvalidParam {
            name: "test_fraction",
            value: config.test_fraction.to_string(),
            reason: "must be between 0 and 1",
        });
    }
    if config.calibration.is_explicit() {
        let invalid = |reason| TrainError::InvalidParam {
            name: "calibration",
            value: config.calibration.name().to_string(),
            reason,
        };
        if config.model == ModelChoice::Logistic {
            return Err(invalid(
                "applies to gbdt; logistic regression is calibrated by its own loss",
            ));
        }
        if config.gbdt.early_stopping_rounds == 0 {
            return Err(invalid("needs validation rows: turn early stopping on"));
        }
    }
    if let Some(events) = &config.events {
        let flat_only = [
            ("positive", config.positive.is_some()),
            ("id", config.id.is_some()),
            ("features", config.features.is_some()),
            ("kinds", !config.kinds.is_empty()),
        ];
        if let Some((name, _)) = flat_only.iter().find(|(_, given)| *given) {
            return Err(TrainError::InvalidParam {
                name,
                value: format!("set with events (horizon {} days)", events.horizon_days),
                reason: "applies to a flat file; event profiles have `churned` and `customer_id`",
            });
        }
    } else if config.target.is_empty() {
        return Err(TrainError::InvalidParam {
            name: "target",
            value: String::new(),
            reason: "a flat file needs the churn label column named",
        });
    }
    let (dataset, time_split, snapshots) = match &config.events {
        None => (
            load_training_data(&config.data, &config.spec())?,
            None,
            Vec::new(),
        ),
        Some(events) => {
            let (dataset, split, snapshots) = events.load(&config.data, &config.ignore)?;
            (dataset, Some(split), snapshots)
        }
    };
    let labels = &dataset.labels.churned;
    // Cross-validation sees the training rows only: with snapshots, never the latest one.
    let cv_rows: Vec<usize> = match &time_split {
        Some(split) => split.train.clone(),
        None => (0..dataset.n_rows()).collect(),
    };
    let cv_labels: Vec<bool> = cv_rows.iter().map(|&row| labels[row]).collect();
    tracing::info!(
        rows = dataset.n_rows(),
        features = dataset.schema.features.len(),
        positive = dataset.labels.positive_class,
        "data loaded"
    );

    let cross_validate = |kind: ModelKind, k: usize| -> Result<CvReport> {
        let rows_of = |indices: &[usize]| -> Vec<usize> {
            indices.iter().map(|&index| cv_rows[index]).collect()
        };
        // Snapshots repeat customers: folds keep each customer whole, or CV would be tested
        // on customers it trained on.
        let folds = match (&time_split, &dataset.ids) {
            (Some(_), Some(ids)) => {
                let groups: Vec<String> = cv_rows.iter().map(|&row| ids[row].clone()).collect();
                grouped_k_fold(&groups, &cv_labels, k, config.seed)?
            }
            _ => stratified_k_fold(&cv_labels, k, config.seed)?,
        };
        let folds = folds
            .iter()
            .enumerate()
            .map(|(fold, split)| {
                let fitted = fit_model(kind, &dataset, &rows_of(&split.train), &params)?;
                let metrics = fitted.evaluate(&dataset, &rows_of(&split.test))?;
                tracing::info!(
                    model = kind.name(),
                    fold,
                    roc_auc = metrics.roc_auc,
                    "cross-validation fold"
                );
                Ok(metrics)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CvReport { folds })
    };
    let (kind, cv, selection) = match config.model {
        ModelChoice::Logistic | ModelChoice::Gbdt => {
            let kind = if config.model == ModelChoice::Logistic {
                ModelKind::Logistic
            } else {
                ModelKind::Gbdt
            };
            let cv = config.cv.map(|k| cross_validate(kind, k)).transpose()?;
            (kind, cv, None)
        }
        ModelChoice::Auto => {
            let k = config.cv.unwrap_or(5);
            let logistic = cross_validate(ModelKind::Logistic, k)?;
            let gbdt = cross_validate(ModelKind::Gbdt, k)?;
            let selection = Selection {
                logistic: logistic.summary("roc_auc"),
                gbdt: gbdt.summary("roc_auc"),
                folds: k,
            };
            // Ties go to the simpler model.
            let (kind, cv) = if selection.gbdt.0 > selection.logistic.0 {
                (ModelKind::Gbdt, gbdt)
            } else {
                (ModelKind::Logistic, logistic)
            };
            tracing::info!(
                chosen = kind.name(),
                logistic = selection.logistic.0,
                gbdt = selection.gbdt.0,
                "model selected by cross-validated ROC-AUC"
            );
            (kind, Some(cv), Some(selection))
        }
    };

    let split = match time_split {
        Some(split) => split,
        None => stratified_split(labels, config.test_fraction, config.seed)?,
    };
    // The holdout measures a model fitted without it; the model shipped then learns from every
    // row (unless `refit` is off), like the one cross-validation and the holdout estimated.
    let measured = fit_model(kind, &dataset, &split.train, &params)?;
    let build_artifact = |fitted: &FittedModel, rows: &[usize]| -> Result<ModelArtifact> {
        let probabilities = fitted.probabilities(&dataset, rows)?;
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
                params: {
                    let mut params = serde_json::json!({
                        "model": kind.name(),
                        "logistic": params.logistic.params(),
                        "gbdt": params.gbdt.params(),
                        "calibration": fitted.calibration.as_ref().map(Calibration::method_name),
                        "trees_grown": fitted.trees_grown,
                        "test_fraction": config.test_fraction,
                        "refit": config.refit,
                        "trained_on_rows": rows.len(),
                    });
                    // Only when trained on events, so flat-file artifacts keep their bytes.
                    if let Some(events) = &config.events {
                        params["events"] = serde_json::json!({
                            "snapshots": snapshots.iter().copied().map(format_date).collect::<Vec<_>>(),
                            "horizon_days": events.horizon_days,
                            "operational_only": events.operational_only,
                            "test": "latest snapshot",
                        });
                    }
                    params
                },
                metrics: BTreeMap::new(),
                excluded_columns: dataset.excluded.clone(),
            },
        })
    };
    // Measure the holdout through the serving path: the artifact's own scorer.
    let measured_artifact = build_artifact(&measured, &split.train)?;
    let explain_with = |scorer: &Scorer, row: usize| {
        scorer
            .explain_values(|feature| Some(dataset.value(feature, row)))
            .map_err(|source| TrainError::Row {
                row: row + 1,
                source,
            })
    };
    let measured_scorer = Scorer::new(measured_artifact.clone())?;
    let holdout_explanations = split
        .test
        .iter()
        .map(|&row| explain_with(&measured_scorer, row))
        .collect::<Result<Vec<_>>>()?;
    let test_probabilities: Vec<f64> = holdout_explanations
        .iter()
        .map(|explanation| explanation.probability)
        .collect();
    let test_labels: Vec<bool> = split.test.iter().map(|&row| labels[row]).collect();
    let holdout = Metrics::compute(&test_labels, &test_probabilities);
    let holdout_uncalibrated = measured_artifact.calibration.as_ref().map(|_| {
        let raw: Vec<f64> = holdout_explanations
            .iter()
            .map(|explanation| sigmoid(explanation.logit))
            .collect();
        Metrics::compute(&test_labels, &raw)
    });

    let trained_on: Vec<usize> = if config.refit {
        (0..dataset.n_rows()).collect()
    } else {
        split.train.clone()
    };
    let (mut artifact, scorer) = if config.refit {
        let artifact = build_artifact(
            &fit_model(kind, &dataset, &trained_on, &params)?,
            &trained_on,
        )?;
        let scorer = Scorer::new(artifact.clone())?;
        (artifact, scorer)
    } else {
        (measured_artifact, measured_scorer)
    };
    artifact.metadata.metrics = holdout.to_map();

    // Drivers from exact contributions over (up to 2,000 evenly spread) training customers.
    let step = trained_on.len().div_ceil(2000).max(1);
    let sample: Vec<usize> = trained_on.iter().step_by(step).copied().collect();
    let explanations = sample
        .iter()
        .map(|&row| explain_with(&scorer, row))
        .collect::<Result<Vec<_>>>()?;
    let drivers = drivers(&dataset, &sample, &explanations);

    let mut outcome = TrainOutcome {
        artifact,
        kind,
        holdout,
        holdout_labels: test_labels,
        holdout_probabilities: test_probabilities,
        holdout_uncalibrated,
        cv,
        selection,
        train_rows: split.train.len(),
        test_rows: split.test.len(),
        trained_on_rows: trained_on.len(),
        drivers,
        card: String::new(),
        card_html: String::new(),
    };
    outcome.card = model_card(&outcome, &dataset);
    outcome.card_html = model_card_html(&outcome, &dataset);
    Ok(outcome)
}

/// A preprocessor, model and calibration fitted on some rows.
struct FittedModel {
    preprocessor: Preprocessor,
    encoder: churn_core::Encoder,
    model: Model,
    calibration: Option<Calibration>,
    trees_grown: Option<usize>,
}

fn fit_model(
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

    fn evaluate(&self, dataset: &Dataset, rows: &[usize]) -> Result<Metrics> {
        let probabilities = self.probabilities(dataset, rows)?;
        let labels: Vec<bool> = rows
            .iter()
            .map(|&row| dataset.labels.churned[row])
            .collect();
        Ok(Metrics::compute(&labels, &probabilities))
    }
}

/// Ranks raw features by mean |contribution| and says which way each moves risk, from the exact
/// contributions of `explanations` (one per row of `rows`), so it holds for any model kind.
fn drivers(dataset: &Dataset, rows: &[usize], explanations: &[Explanation]) -> Vec<Driver> {
    let mut drivers: Vec<Driver> = dataset
        .schema
        .features
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            let contributions: Vec<f64> = explanations
                .iter()
                .map(|explanation| explanation.reasons[index].contribution)
                .collect();
            let importance = contributions.iter().map(|c| c.abs()).sum::<f64>()
                / contributions.len().max(1) as f64;
            // Mean contribution per value (numbers: above vs below the median).
            let values: Vec<churn_core::Value<'_>> =
                rows.iter().map(|&row| dataset.value(index, row)).collect();
            let direction = describe_direction(spec, &values, &contributions);
            Driver {
                feature: spec.name.clone(),
                importance,
                direction,
            }
        })
        .collect();
    drivers.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then_with(|| a.feature.cmp(&b.feature))
    });
    drivers
}

fn describe_direction(
    spec: &churn_core::FeatureSpec,
    values: &[churn_core::Value<'_>],
    contributions: &[f64],
) -> String {
    let name = &spec.name;
    let mut groups: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let numbers: Vec<Option<f64>> = values
        .iter()
        .map(|value| {
            churn_core::encoding::read_number(name, *value)
                .ok()
                .flatten()
        })
        .collect();
    let mut present: Vec<f64> = numbers.iter().flatten().copied().collect();
    present.sort_by(f64::total_cmp);
    let median = present.get(present.len() / 2).copied().unwrap_or(0.0);
    for ((value, number), &contribution) in values.iter().zip(&numbers).zip(contributions) {
        let key = match (spec.kind, number) {
            (FeatureKind::Numeric, Some(number)) if *number > median => "high".to_string(),
            (FeatureKind::Numeric, Some(_)) => "low".to_string(),
            (_, _) if matches!(value, churn_core::Value::Missing) => "missing".to_string(),
            (FeatureKind::Boolean, _) => {
                match churn_core::encoding::read_bool(name, *value).ok().flatten() {
                    Some(true) => "yes".to_string(),
                    _ => "no".to_string(),
                }
            }
            _ => value.to_string(),
        };
        let group = groups.entry(key).or_default();
        group.0 += contribution;
        group.1 += 1;
    }
    let mean = |key: &str| groups.get(key).map(|(sum, n)| sum / *n as f64);
    let raises = |up: bool| if up { "raises risk" } else { "lowers risk" };
    match spec.kind {
        FeatureKind::Numeric => match (mean("high"), mean("low")) {
            (Some(high), Some(low)) => {
                format!("higher `{name}` (above {median}) {}", raises(high > low))
            }
            _ => "too little variation to tell".into(),
        },
        FeatureKind::Boolean => match (mean("yes"), mean("no")) {
            (Some(yes), Some(no)) => format!("`{name}` = yes {}", raises(yes > no)),
            _ => "too little variation to tell".into(),
        },
        FeatureKind::Categorical => {
            let mut levels: Vec<(String, f64)> = groups
                .iter()
                .map(|(level, (sum, n))| (level.clone(), sum / *n as f64))
                .collect();
            levels.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            match (levels.first(), levels.last()) {
                (Some(most), Some(least)) if levels.len() > 1 => format!(
                    "`{name}={}` raises risk most, `{name}={}` lowers it most",
                    most.0, least.0
                ),
                _ => "a single level seen".into(),
            }
        }
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
