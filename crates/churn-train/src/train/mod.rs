//! The training pipeline: data → holdout split (and optional CV) → fitted model → artifact,
//! metrics and model card.
//!
//! [`train`] checks its [`TrainConfig`] ([`TrainConfig::check`]) and runs
//! [`ValidTrainConfig::train`], one named step after another: load the rows, choose the kind of
//! model (`selection`), measure a model fitted without the holdout (`fit`), fit the model
//! shipped, and rank its drivers for the model card (`outcome`).

mod config;
mod fit;
mod outcome;
mod selection;

use churn_core::{Explanation, Scorer, sigmoid};
use churn_data::{Dataset, Split, load_training_data, stratified_split};

pub use config::{EventsConfig, ModelChoice, ModelKind, TrainConfig, ValidTrainConfig};
pub use outcome::{CvReport, Driver, Selection, TrainOutcome};

use crate::card::{model_card, model_card_html};
use crate::error::{Result, TrainError};
use crate::metrics::Metrics;
use fit::fit_model;
use outcome::drivers;

/// Trains a model as configured. `name` is the model's name in the artifact.
pub fn train(config: &TrainConfig, name: &str) -> Result<TrainOutcome> {
    config.clone().check()?.train(name)
}

/// The rows training learns from and is measured on.
struct TrainingRows {
    dataset: Dataset,
    /// With event tables: the split by time, which tests on the latest snapshot.
    time_split: Option<Split>,
    /// With event tables: the snapshots' dates.
    snapshots: Vec<i32>,
}

impl TrainingRows {
    /// Returns the rows cross-validation sees: the training rows only, so with snapshots never
    /// the latest one.
    fn cv_rows(&self) -> Vec<usize> {
        match &self.time_split {
            Some(split) => split.train.clone(),
            None => (0..self.dataset.n_rows()).collect(),
        }
    }
}

/// The measured model's results on the holdout rows.
struct Holdout {
    metrics: Metrics,
    labels: Vec<bool>,
    probabilities: Vec<f64>,
    /// Metrics of the uncalibrated probabilities, when a calibration was fitted.
    uncalibrated: Option<Metrics>,
}

impl ValidTrainConfig {
    /// Trains a model as configured; `name` is the model's name in the artifact.
    pub fn train(&self, name: &str) -> Result<TrainOutcome> {
        let config = self.config();
        let rows = self.load()?;
        let dataset = &rows.dataset;
        let chosen = self.select_model(&rows)?;
        let split = self.holdout_split(&rows)?;
        // The holdout measures a model fitted without it; the model shipped then learns from
        // every row (unless `refit` is off), like the one cross-validation and the holdout
        // estimated.
        let measured = fit_model(chosen.kind, dataset, &split.train, self.params())?;
        let measured_artifact =
            self.build_artifact(name, &rows, chosen.kind, &measured, &split.train)?;
        // Measure the holdout through the serving path: the artifact's own scorer.
        let measured_scorer = Scorer::new(measured_artifact.clone())?;
        let calibrated = measured_artifact.calibration.is_some();
        let holdout = measure_holdout(&measured_scorer, dataset, &split.test, calibrated)?;

        let trained_on: Vec<usize> = if config.refit {
            (0..dataset.n_rows()).collect()
        } else {
            split.train.clone()
        };
        let (mut artifact, scorer) = if config.refit {
            let shipped = fit_model(chosen.kind, dataset, &trained_on, self.params())?;
            let artifact = self.build_artifact(name, &rows, chosen.kind, &shipped, &trained_on)?;
            let scorer = Scorer::new(artifact.clone())?;
            (artifact, scorer)
        } else {
            (measured_artifact, measured_scorer)
        };
        artifact.metadata.metrics = holdout.metrics.to_map();
        let drivers = rank_drivers(&scorer, dataset, &trained_on)?;

        let mut outcome = TrainOutcome {
            artifact,
            kind: chosen.kind,
            holdout: holdout.metrics,
            holdout_labels: holdout.labels,
            holdout_probabilities: holdout.probabilities,
            holdout_uncalibrated: holdout.uncalibrated,
            cv: chosen.cv,
            selection: chosen.selection,
            train_rows: split.train.len(),
            test_rows: split.test.len(),
            trained_on_rows: trained_on.len(),
            drivers,
            card: String::new(),
            card_html: String::new(),
        };
        outcome.card = model_card(&outcome, dataset);
        outcome.card_html = model_card_html(&outcome, dataset);
        Ok(outcome)
    }

    /// Loads the flat file or the event tables' snapshots.
    fn load(&self) -> Result<TrainingRows> {
        let config = self.config();
        let rows = match &config.events {
            None => TrainingRows {
                dataset: load_training_data(&config.data, &config.spec())?,
                time_split: None,
                snapshots: Vec::new(),
            },
            Some(events) => {
                let (dataset, split, snapshots) = events.load(&config.data, &config.ignore)?;
                TrainingRows {
                    dataset,
                    time_split: Some(split),
                    snapshots,
                }
            }
        };
        tracing::info!(
            rows = rows.dataset.n_rows(),
            features = rows.dataset.schema.features.len(),
            positive = rows.dataset.labels.positive_class,
            "data loaded"
        );
        Ok(rows)
    }

    /// Returns the rows the measured model learns from and is measured on: the split by time
    /// with event tables, else a stratified split of `test_fraction`.
    fn holdout_split(&self, rows: &TrainingRows) -> Result<Split> {
        let config = self.config();
        match &rows.time_split {
            Some(split) => Ok(split.clone()),
            None => Ok(stratified_split(
                &rows.dataset.labels.churned,
                config.test_fraction,
                config.seed,
            )?),
        }
    }
}

/// Explains row `row` of `dataset`; an error names the row, counted from 1.
fn explain_row(scorer: &Scorer, dataset: &Dataset, row: usize) -> Result<Explanation> {
    scorer
        .explain_values(|feature| Some(dataset.value(feature, row)))
        .map_err(|source| TrainError::Row {
            row: row + 1,
            source,
        })
}

/// Measures the holdout rows `test` with the measured model's scorer; `calibrated` tells
/// whether its artifact has a calibration, whose effect is then measured too.
fn measure_holdout(
    scorer: &Scorer,
    dataset: &Dataset,
    test: &[usize],
    calibrated: bool,
) -> Result<Holdout> {
    let explanations = test
        .iter()
        .map(|&row| explain_row(scorer, dataset, row))
        .collect::<Result<Vec<_>>>()?;
    let probabilities: Vec<f64> = explanations
        .iter()
        .map(|explanation| explanation.probability)
        .collect();
    let labels: Vec<bool> = test
        .iter()
        .map(|&row| dataset.labels.churned[row])
        .collect();
    let metrics = Metrics::compute(&labels, &probabilities);
    let uncalibrated = calibrated.then(|| {
        let raw: Vec<f64> = explanations
            .iter()
            .map(|explanation| sigmoid(explanation.logit))
            .collect();
        Metrics::compute(&labels, &raw)
    });
    Ok(Holdout {
        metrics,
        labels,
        probabilities,
        uncalibrated,
    })
}

/// Ranks the shipped model's drivers from exact contributions over (up to 2,000 evenly
/// spread) customers it was trained on.
fn rank_drivers(scorer: &Scorer, dataset: &Dataset, trained_on: &[usize]) -> Result<Vec<Driver>> {
    let step = trained_on.len().div_ceil(2000).max(1);
    let sample: Vec<usize> = trained_on.iter().step_by(step).copied().collect();
    let explanations = sample
        .iter()
        .map(|&row| explain_row(scorer, dataset, row))
        .collect::<Result<Vec<_>>>()?;
    Ok(drivers(dataset, &sample, &explanations))
}
