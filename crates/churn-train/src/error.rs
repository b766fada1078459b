//! Errors of the training crate.
//!
//! A message names its cause once: where an error wraps another (`#[source]`), the message says
//! what it is about (the row, the file) and the cause follows in the source chain, which
//! `{:#}` (anyhow) prints after it.

/// Result alias of `churn-train`.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Everything that can go wrong while training or evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The training data could not be read or split.
    #[error(transparent)]
    Data(#[from] churn_data::DataError),
    /// A model could not be built or scored.
    #[error(transparent)]
    Core(#[from] churn_core::CoreError),
    /// A parameter or setting is out of its range.
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        /// The parameter, as named in the configuration.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// A training row could not be encoded or explained.
    #[error("row {row}")]
    Row {
        /// The row, counted from 1.
        row: usize,
        /// What is wrong with it.
        source: churn_core::CoreError,
    },
    /// Fitting a model failed.
    #[error("fitting the {model} model failed: {reason}")]
    Fit {
        /// The kind of model: `logistic`, `gbdt`, or `any`.
        model: &'static str,
        /// Why, with the value concerned.
        reason: String,
    },
    /// An output file could not be written.
    #[error("cannot write `{path}`")]
    Write {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
