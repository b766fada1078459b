//! Training for churn: the [`Preprocessor`](churn_core::Preprocessor) learned from training rows,
//! L2-regularised logistic regression through `linfa-logistic`, seeded holdout and
//! cross-validation, metrics checked against scikit-learn, and the model card.
//!
//! This crate knows no tonic and no serving: what it produces is a `churn_core::ModelArtifact`.
//!
//! ```no_run
//! use churn_train::TrainConfig;
//! # fn demo() -> churn_train::Result<()> {
//! let mut config = TrainConfig::new(
//!     "notebooks-data/telco/Telco-Customer-Churn.csv".into(),
//!     "Churn".into(),
//! );
//! config.id = Some("customerID".into());
//! config.cv = Some(5);
//! // Only a checked configuration trains; `churn_train::train` does both steps.
//! let outcome = config.check()?.train("telco")?;
//! outcome.write("models/telco".as_ref())?;
//! println!("holdout ROC-AUC {:.3}", outcome.holdout.roc_auc);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod calibrate;
pub mod card;
pub mod error;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod plots;
pub mod preprocess;
pub mod train;

pub use calibrate::CalibrationMethod;
pub use error::{Result, TrainError};
pub use gbdt::{FittedGbdt, GbdtParams, ValidGbdtParams};
pub use logistic::{LogisticParams, ValidLogisticParams};
pub use metrics::Metrics;
pub use train::{
    CvReport, Driver, EventsConfig, ModelChoice, ModelKind, Selection, TrainConfig, TrainOutcome,
    ValidTrainConfig, train,
};
