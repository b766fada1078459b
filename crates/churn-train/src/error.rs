//! Errors of the training crate.

/// Result alias of `churn-train`.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Everything that can go wrong while training or evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] churn_data::DataError),
    #[error(transparent)]
    Core(#[from] churn_core::CoreError),
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("row {row}: {source}")]
    Row {
        row: usize,
        source: churn_core::CoreError,
    },
    #[error("fitting the {model} model failed: {reason}")]
    Fit { model: &'static str, reason: String },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
