//! What `churn train` is told, and the `check()` that turns it into a [`ValidTrainConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::{FeatureKind, RiskBands};
use churn_data::calendar::parse_date;
use churn_data::{Dataset, EventTables, Split, TrainingSpec, load_snapshot_training_data};
use serde::{Deserialize, Serialize};

use super::fit::Params;
use crate::calibrate::CalibrationMethod;
use crate::error::{Result, TrainError};
use crate::gbdt::GbdtParams;
use crate::logistic::LogisticParams;

/// Which model to fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// Both kinds compared by cross-validated ROC-AUC; the better one is kept.
    #[default]
    Auto,
    /// L2-regularised logistic regression.
    Logistic,
    /// Histogram gradient-boosted trees.
    Gbdt,
}

/// A concrete kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// L2-regularised logistic regression.
    Logistic,
    /// Histogram gradient-boosted trees.
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
    /// The label value meaning churn, when the target has more than two.
    pub positive: Option<String>,
    #[serde(default)]
    /// A customer id column, kept out of the features.
    pub id: Option<String>,
    #[serde(default)]
    /// Columns left out of the features.
    pub ignore: Vec<String>,
    /// An explicit feature list: only these columns are features.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Feature kinds forced by name, overriding inference.
    #[serde(default)]
    pub kinds: BTreeMap<String, FeatureKind>,
    #[serde(default)]
    /// Which model to fit.
    pub model: ModelChoice,
    /// Number of cross-validation folds; none when absent.
    #[serde(default)]
    pub cv: Option<usize>,
    #[serde(default = "default_seed")]
    /// Seed of every split and sample.
    pub seed: u64,
    /// Share of rows held out to measure the fitted model.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Once measured, fit the model shipped on every row, held-out ones included (the
    /// default); off, the model shipped is the one measured.
    #[serde(default = "default_refit")]
    pub refit: bool,
    #[serde(default)]
    /// Parameters of logistic regression.
    pub logistic: LogisticParams,
    #[serde(default)]
    /// Parameters of the tree booster.
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
    /// Monthly snapshots taken when `snapshots` is empty.
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
    /// Checks the horizon and the number of snapshots.
    fn check(&self) -> Result<()> {
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
        Ok(())
    }

    /// Builds the stacked training set from the event tables in `dir`, split by time.
    pub(super) fn load(&self, dir: &Path, ignore: &[String]) -> Result<(Dataset, Split, Vec<i32>)> {
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

    /// Checks every setting, the models' parameters included (linfa's `ParamGuard`): only a
    /// checked configuration trains. An error names the setting and its value.
    pub fn check(self) -> Result<ValidTrainConfig> {
        let params = Params {
            logistic: self.logistic.clone().check()?,
            gbdt: self.gbdt.clone().check()?,
            calibration: self.calibration,
            seed: self.seed,
            group_by_customer: self.events.is_some(),
        };
        self.check_bands()?;
        if !(0.0 < self.test_fraction && self.test_fraction < 1.0) {
            return Err(TrainError::InvalidParam {
                name: "test_fraction",
                value: self.test_fraction.to_string(),
                reason: "must be between 0 and 1",
            });
        }
        self.check_calibration()?;
        self.check_source()?;
        Ok(ValidTrainConfig {
            config: self,
            params,
        })
    }

    fn check_bands(&self) -> Result<()> {
        match self.bands {
            Some(bands) if bands.validate().is_err() => Err(TrainError::InvalidParam {
                name: "bands",
                value: format!("medium = {}, high = {}", bands.medium, bands.high),
                reason: "must satisfy 0 <= medium <= high <= 1",
            }),
            _ => Ok(()),
        }
    }

    /// An explicit calibration applies to tree models fitted with validation rows.
    fn check_calibration(&self) -> Result<()> {
        if !self.calibration.is_explicit() {
            return Ok(());
        }
        let invalid = |reason| TrainError::InvalidParam {
            name: "calibration",
            value: self.calibration.name().to_string(),
            reason,
        };
        if self.model == ModelChoice::Logistic {
            return Err(invalid(
                "applies to gbdt; logistic regression is calibrated by its own loss",
            ));
        }
        if self.gbdt.early_stopping_rounds == 0 {
            return Err(invalid("needs validation rows: turn early stopping on"));
        }
        Ok(())
    }

    /// Event tables and flat files take different settings: each must get only its own.
    fn check_source(&self) -> Result<()> {
        let Some(events) = &self.events else {
            if self.target.is_empty() {
                return Err(TrainError::InvalidParam {
                    name: "target",
                    value: String::new(),
                    reason: "a flat file needs the churn label column named",
                });
            }
            return Ok(());
        };
        let flat_only = [
            ("positive", self.positive.is_some()),
            ("id", self.id.is_some()),
            ("features", self.features.is_some()),
            ("kinds", !self.kinds.is_empty()),
        ];
        if let Some((name, _)) = flat_only.iter().find(|(_, given)| *given) {
            return Err(TrainError::InvalidParam {
                name,
                value: format!("set with events (horizon {} days)", events.horizon_days),
                reason: "applies to a flat file; event profiles have `churned` and `customer_id`",
            });
        }
        events.check()
    }

    /// Returns what `churn-data` needs to read a flat file.
    pub(super) fn spec(&self) -> TrainingSpec {
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

/// A [`TrainConfig`] that passed [`TrainConfig::check`], with its models' checked parameters:
/// the only kind of configuration that trains.
#[derive(Debug, Clone)]
pub struct ValidTrainConfig {
    config: TrainConfig,
    params: Params,
}

impl ValidTrainConfig {
    /// Returns the configuration as given.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Returns the checked parameters of every model kind.
    pub(super) fn params(&self) -> &Params {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the message `check` refuses `config` with.
    fn refusal(config: TrainConfig) -> String {
        match config.check() {
            Ok(_) => panic!("the configuration was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn check_names_the_setting_and_its_value_before_reading_any_data() {
        let flat = || TrainConfig::new("no-such-file.csv".into(), "Churn".into());
        let mut config = flat();
        config.test_fraction = 1.5;
        assert_eq!(
            refusal(config),
            "invalid parameter `test_fraction` = 1.5: must be between 0 and 1"
        );
        let mut config = flat();
        config.model = ModelChoice::Logistic;
        config.calibration = CalibrationMethod::Isotonic;
        assert_eq!(
            refusal(config),
            "invalid parameter `calibration` = isotonic: applies to gbdt; logistic regression is \
             calibrated by its own loss"
        );
        let mut config = TrainConfig::new("no-such-dir".into(), String::new());
        config.events = Some(EventsConfig {
            horizon_days: 0,
            ..EventsConfig::default()
        });
        assert_eq!(
            refusal(config),
            "invalid parameter `horizon_days` = 0: must be between 1 and 3650 days"
        );
        assert!(flat().check().is_ok());
    }
}
