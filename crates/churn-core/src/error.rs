//! Errors of the core crate: caller faults (a bad profile, a bad artifact) kept apart from internal faults.

/// Result alias of `churn-core`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Everything that can go wrong while encoding, scoring or loading an artifact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// The profile has no entry at all for a feature of the schema.
    #[error("missing feature `{name}`")]
    MissingFeature {
        /// The feature.
        name: String,
    },
    /// A profile names a feature the model does not have.
    #[error("unknown feature `{name}` (the model's features: {known})")]
    UnknownFeature {
        /// The name the profile gave.
        name: String,
        /// The model's features, listed.
        known: String,
    },
    /// A feature is missing but training never saw it missing, so there is nothing to impute.
    #[error("feature `{feature}`: a value is required (training data always had one)")]
    MissingNotAllowed {
        /// The feature.
        feature: String,
    },
    /// A numeric feature got a value that is not a number.
    #[error("feature `{feature}`: value `{value}` is not a number")]
    NotNumeric {
        /// The feature.
        feature: String,
        /// The value given.
        value: String,
    },
    /// A numeric feature got NaN or an infinity.
    #[error("feature `{feature}`: value `{value}` is not finite")]
    NonFinite {
        /// The feature.
        feature: String,
        /// The value given.
        value: String,
    },
    /// A boolean feature got a value that is not one of yes/no, true/false, 1/0.
    #[error(
        "feature `{feature}`: value `{value}` is not a boolean (expected yes/no, true/false or 1/0)"
    )]
    NotBoolean {
        /// The feature.
        feature: String,
        /// The value given.
        value: String,
    },
    /// A categorical feature got a level never seen in training.
    #[error("feature `{feature}`: unknown category `{value}` (known: {known})")]
    UnknownCategory {
        /// The feature.
        feature: String,
        /// The value given.
        value: String,
        /// The levels seen in training, listed.
        known: String,
    },
    /// A setting (such as an alert policy's) is out of its range.
    #[error("setting `{setting}`: {value} is not {expected}")]
    InvalidSetting {
        /// The setting, as named in its file.
        setting: String,
        /// Its value.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// An alert policy's text is not valid TOML or names a setting that does not exist.
    #[error("{}{reason}", at.map(|(line, column)| format!("line {line}, column {column}: ")).unwrap_or_default())]
    InvalidPolicy {
        /// What the parser said.
        reason: String,
        /// The line and column (from 1) it points at, when it points at one.
        at: Option<(usize, usize)>,
    },
    /// The artifact could not be parsed or is internally inconsistent.
    #[error("invalid model artifact: {reason}")]
    InvalidArtifact {
        /// What is wrong, naming the tree, node, feature or value concerned.
        reason: String,
    },
    /// The artifact was written by a format this build does not know.
    #[error("unsupported model artifact format version `{version}`")]
    UnsupportedFormatVersion {
        /// The version the artifact gives.
        version: String,
    },
}

impl CoreError {
    /// Returns the feature the error is about, if it is about one.
    pub fn feature(&self) -> Option<&str> {
        match self {
            CoreError::MissingFeature { name } | CoreError::UnknownFeature { name, .. } => {
                Some(name)
            }
            CoreError::MissingNotAllowed { feature }
            | CoreError::NotNumeric { feature, .. }
            | CoreError::NonFinite { feature, .. }
            | CoreError::NotBoolean { feature, .. }
            | CoreError::UnknownCategory { feature, .. } => Some(feature),
            CoreError::InvalidArtifact { .. }
            | CoreError::UnsupportedFormatVersion { .. }
            | CoreError::InvalidSetting { .. }
            | CoreError::InvalidPolicy { .. } => None,
        }
    }

    /// Tells whether the error is the caller's fault (bad input) rather than a broken model.
    pub fn is_caller_fault(&self) -> bool {
        !matches!(
            self,
            CoreError::InvalidArtifact { .. }
                | CoreError::UnsupportedFormatVersion { .. }
                | CoreError::InvalidSetting { .. }
                | CoreError::InvalidPolicy { .. }
        )
    }
}
