//! What training produced: the artifact, its measurements, the drivers and the model card.

use std::collections::BTreeMap;
use std::path::Path;

use churn_core::{Explanation, FeatureKind, ModelArtifact};
use churn_data::Dataset;

use super::config::ModelKind;
use crate::error::{Result, TrainError};
use crate::metrics::{Metrics, mean_and_std};

/// Cross-validation results, one entry per fold.
#[derive(Debug, Clone, PartialEq)]
pub struct CvReport {
    /// Metrics of each fold, in fold order.
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
    /// Logistic regression's ROC-AUC.
    pub logistic: (f64, f64),
    /// The tree booster's ROC-AUC.
    pub gbdt: (f64, f64),
    /// Folds of the cross-validation.
    pub folds: usize,
}

/// A raw feature's weight in the model and which way it moves risk.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    /// The raw feature.
    pub feature: String,
    /// Mean |contribution| to the log-odds over training customers.
    pub importance: f64,
    /// Which of its values raise risk, in words.
    pub direction: String,
}

/// What training produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The model shipped.
    pub artifact: ModelArtifact,
    /// Its kind.
    pub kind: ModelKind,
    /// Metrics of the measured model on the holdout rows.
    pub holdout: Metrics,
    /// Holdout labels, for the card's plots.
    pub holdout_labels: Vec<bool>,
    /// The measured model's probabilities for them.
    pub holdout_probabilities: Vec<f64>,
    /// Holdout metrics of the uncalibrated probabilities, when a calibration was fitted.
    pub holdout_uncalibrated: Option<Metrics>,
    /// Cross-validation of the kind kept, when run.
    pub cv: Option<CvReport>,
    /// How `auto` chose the kind, when it did.
    pub selection: Option<Selection>,
    /// Rows the measured model was fitted on.
    pub train_rows: usize,
    /// Rows the measured model was measured on.
    pub test_rows: usize,
    /// Rows the shipped model was fitted on: every row when refitted, else `train_rows`.
    pub trained_on_rows: usize,
    /// Raw features by importance, largest first.
    pub drivers: Vec<Driver>,
    /// The model card, in Markdown.
    pub card: String,
    /// The model card, as one HTML page.
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

/// Ranks raw features by mean |contribution| and says which way each moves risk, from the exact
/// contributions of `explanations` (one per row of `rows`), so it holds for any model kind.
pub(super) fn drivers(
    dataset: &Dataset,
    rows: &[usize],
    explanations: &[Explanation],
) -> Vec<Driver> {
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
