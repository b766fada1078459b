//! The model artifact: everything scoring needs, in one versioned JSON document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::calibration::Calibration;
use crate::encoding::Preprocessor;
use crate::error::{CoreError, Result};
use crate::model::Model;
use crate::risk::RiskBands;
use crate::schema::FeatureSchema;

/// The format version this build writes. Version 2 added tree models, the codes encoding style
/// and calibration; version 1 files (logistic, one-hot, uncalibrated) load unchanged.
pub const CURRENT_FORMAT_VERSION: &str = "2";

/// A trained model with its schema, preprocessing and training facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// The model's name.
    pub name: String,
    /// The raw features the model expects.
    pub schema: FeatureSchema,
    /// How raw values become encoded columns.
    pub preprocessor: Preprocessor,
    /// The fitted model over the encoded columns.
    pub model: Model,
    /// Margin → probability map; without one the probability is the sigmoid of the margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Training probabilities at the 0th, 1st, …, 100th percentile, for percentile ranks.
    pub score_quantiles: Vec<f64>,
    /// Risk band cut-offs; artifacts without them band by the training quantiles
    /// ([`RiskBands::from_quantiles`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bands: Option<RiskBands>,
    /// How and on what the model was trained.
    pub metadata: TrainingMetadata,
}

/// Facts about how the model was made. Holds no wall-clock time, so the same data and seed give
/// the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingMetadata {
    /// Version of churn that trained the model.
    pub churn_version: String,
    /// File name of the training data.
    pub data_source: String,
    /// SHA-256 of the training data file.
    pub data_sha256: String,
    /// Rows of the training data.
    pub rows: usize,
    /// Churners among them.
    pub positives: usize,
    /// The seed of splits and sampling.
    pub seed: u64,
    /// Model parameters as given to training.
    pub params: serde_json::Value,
    /// Holdout metrics of this very model.
    pub metrics: BTreeMap<String, f64>,
    /// Columns of the data that are not features, with why.
    pub excluded_columns: BTreeMap<String, String>,
}

/// The on-disk shape: the artifact tagged with its format version, so old files keep loading.
#[derive(Serialize, Deserialize)]
#[serde(tag = "format_version")]
enum VersionedArtifact {
    #[serde(rename = "1")]
    V1(ModelArtifact),
    #[serde(rename = "2")]
    V2(ModelArtifact),
}

impl ModelArtifact {
    /// Returns the version that online and batch results report for the artifact read from
    /// `json`: the first 16 hex digits of the text's SHA-256, so the same file has the same
    /// version everywhere and any change to it a new one.
    pub fn version_of(json: &str) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(json.as_bytes())[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Returns the artifact as pretty JSON, tagged with the current format version.
    pub fn to_json(&self) -> String {
        let versioned = VersionedArtifact::V2(self.clone());
        // Serialising plain data with string keys cannot fail.
        let mut json = serde_json::to_string_pretty(&versioned).unwrap_or_default();
        json.push('\n');
        json
    }

    /// Reads an artifact of any known format version.
    pub fn from_json(json: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|error| CoreError::InvalidArtifact {
                reason: error.to_string(),
            })?;
        let version = match value.get("format_version") {
            Some(serde_json::Value::String(version)) => version.clone(),
            Some(other) => other.to_string(),
            None => {
                return Err(CoreError::InvalidArtifact {
                    reason: "no `format_version` field".into(),
                });
            }
        };
        if !["1", "2"].contains(&version.as_str()) {
            return Err(CoreError::UnsupportedFormatVersion { version });
        }
        let versioned: VersionedArtifact =
            serde_json::from_value(value).map_err(|error| CoreError::InvalidArtifact {
                reason: error.to_string(),
            })?;
        match versioned {
            VersionedArtifact::V1(artifact) => {
                // Version 1 knew only one-hot logistic models without calibration.
                if artifact.preprocessor.style != crate::EncodingStyle::OneHot
                    || artifact.calibration.is_some()
                    || !matches!(artifact.model, Model::Logistic(_))
                {
                    return Err(CoreError::InvalidArtifact {
                        reason: "format version 1 holds only uncalibrated logistic models".into(),
                    });
                }
                Ok(artifact)
            }
            VersionedArtifact::V2(artifact) => Ok(artifact),
        }
    }
}
