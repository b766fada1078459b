//! Errors of the core crate: caller faults (a bad profile, a bad artifact) kept apart from internal faults.

/// Result alias of `churn-core`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Everything that can go wrong while encoding, scoring or loading an artifact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The profile has no entry at all for a feature of the schema.
    #[error("missing feature `{name}`")]
    MissingFeature { name: String },
    /// A numeric feature got a value that is not a number.
    #[error("feature `{feature}`: value `{value}` is not a number")]
    NotNumeric { feature: String, value: String },
    /// A numeric feature got NaN or an infinity.
    #[error("feature `{feature}`: value `{value}` is not finite")]
    NonFinite { feature: String, value: String },
    /// A boolean feature got a value that is not one of yes/no, true/false, 1/0.
    #[error(
        "feature `{feature}`: value `{value}` is not a boolean (expected yes/no, true/false or 1/0)"
    )]
    NotBoolean { feature: String, value: String },
    /// A categorical feature got a level never seen in training.
    #[error("feature `{feature}`: unknown category `{value}` (known: {known})")]
    UnknownCategory {
        feature: String,
        value: String,
        known: String,
    },
    /// The artifact could not be parsed or is internally inconsistent.
    #[error("invalid model artifact: {reason}")]
    InvalidArtifact { reason: String },
    /// The artifact was written by a format this build does not know.
    #[error("unsupported model artifact format version `{version}`")]
    UnsupportedFormatVersion { version: String },
}

impl CoreError {
    /// Tells whether the error is the caller's fault (bad input) rather than a broken model.
    pub fn is_caller_fault(&self) -> bool {
        !matches!(
            self,
            CoreError::InvalidArtifact { .. } | CoreError::UnsupportedFormatVersion { .. }
        )
    }
}
