//! The model being served, and its hot swap: a new artifact is loaded and checked off to the
//! side, then swapped in with one pointer write, so requests never wait on a reload and never
//! see a half-loaded model. A bad artifact is refused and the old model keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use churn_api::convert::kind_to_proto;
use churn_api::proto;
use churn_core::{FeatureEncoding, Model, ModelArtifact, Scorer};

use crate::error::{Result, ServeError};

/// A loaded, validated model with what the service reports about it.
#[derive(Debug)]
pub struct LoadedModel {
    /// Scores and explains profiles.
    pub scorer: Scorer,
    /// First 16 hex digits of the artifact file's SHA-256.
    pub version: String,
    /// The model.json that was read.
    pub file: PathBuf,
    /// When the artifact file was last written.
    pub written_at: SystemTime,
    /// When this server loaded it.
    pub loaded_at: SystemTime,
}

impl LoadedModel {
    /// Reads and checks an artifact from a model folder or a model.json path.
    pub fn load(path: &Path) -> Result<Self> {
        let file = model_file(path);
        let read_error = |cause| ServeError::ReadModel {
            path: file.clone(),
            cause,
        };
        let bytes = std::fs::read(&file).map_err(read_error)?;
        let written_at = std::fs::metadata(&file)
            .and_then(|metadata| metadata.modified())
            .map_err(read_error)?;
        let invalid = |cause| ServeError::InvalidModel {
            path: file.clone(),
            cause,
        };
        let json = String::from_utf8(bytes).map_err(|error| {
            invalid(churn_core::CoreError::InvalidArtifact {
                reason: format!("not UTF-8 text: {error}"),
            })
        })?;
        let artifact = ModelArtifact::from_json(&json).map_err(invalid)?;
        let scorer = Scorer::new(artifact).map_err(invalid)?;
        let version = ModelArtifact::version_of(&json);
        Ok(LoadedModel {
            scorer,
            version,
            file,
            written_at,
            loaded_at: SystemTime::now(),
        })
    }

    /// Returns the name and version of the model, as results carry them.
    pub fn model_ref(&self) -> proto::ModelRef {
        proto::ModelRef {
            name: self.scorer.artifact().name.clone(),
            version: self.version.clone(),
        }
    }

    /// Describes the model for `GetModel`.
    pub fn info(&self) -> proto::ModelInfo {
        let artifact = self.scorer.artifact();
        let encoder = self.scorer.encoder();
        let features = encoder
            .features()
            .iter()
            .enumerate()
            .map(|(index, encoding)| {
                let mut info = proto::FeatureInfo {
                    name: encoding.name().to_string(),
                    kind: kind_to_proto(encoding.kind()).into(),
                    missing_allowed: encoder.allows_missing(index),
                    ..Default::default()
                };
                match encoding {
                    FeatureEncoding::Numeric { min, max, .. } => {
                        info.training_min = *min;
                        info.training_max = *max;
                    }
                    FeatureEncoding::Boolean { .. } => {}
                    FeatureEncoding::Categorical {
                        levels,
                        rare_levels,
                        ..
                    } => info.categories = levels.iter().chain(rare_levels).cloned().collect(),
                }
                info
            })
            .collect();
        let bands = self.scorer.bands();
        proto::ModelInfo {
            model: Some(self.model_ref()),
            kind: match artifact.model {
                Model::Logistic(_) => "logistic",
                Model::Gbdt(_) => "gbdt",
            }
            .to_string(),
            features,
            metrics: artifact
                .metadata
                .metrics
                .iter()
                .map(|(name, value)| (name.clone(), *value))
                .collect(),
            trained_at: humantime::format_rfc3339_seconds(self.written_at).to_string(),
            loaded_at: humantime::format_rfc3339_seconds(self.loaded_at).to_string(),
            training_rows: artifact.metadata.rows as u64,
            training_positives: artifact.metadata.positives as u64,
            calibration: artifact
                .calibration
                .as_ref()
                .map_or("none", |calibration| calibration.method_name())
                .to_string(),
            bands: Some(proto::BandCutoffs {
                medium: bands.medium,
                high: bands.high,
            }),
            format_version: churn_core::CURRENT_FORMAT_VERSION.to_string(),
            churn_version: artifact.metadata.churn_version.clone(),
            id_column: artifact.schema.id.clone().unwrap_or_default(),
        }
    }
}

/// Returns the model.json of a model folder, or the path itself when it names a file.
pub fn model_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.json")
    } else {
        path.to_path_buf()
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The version serving after the reload.
    pub version: String,
    /// Whether a different artifact was swapped in.
    pub changed: bool,
}

/// The model in service, swappable while requests are in flight.
#[derive(Debug)]
pub struct ModelSlot {
    path: PathBuf,
    current: RwLock<Arc<LoadedModel>>,
    /// One reload at a time, so two triggers cannot race to swap.
    reloading: tokio::sync::Mutex<()>,
}

impl ModelSlot {
    /// Loads the model at `path`; the server does not start without one.
    pub fn load(path: &Path) -> Result<Self> {
        let model = LoadedModel::load(path)?;
        Ok(ModelSlot {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(model)),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Returns the model.json the slot reloads from.
    pub fn file(&self) -> PathBuf {
        model_file(&self.path)
    }

    /// Returns the model serving now. Requests hold their own `Arc`, so a swap never pulls a
    /// model out from under them.
    pub fn current(&self) -> Arc<LoadedModel> {
        // The lock only guards a pointer copy, so a poisoned lock still holds a valid model.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the artifact again and swaps it in if it changed. On error the old model stays.
    pub async fn reload(&self, trigger: &'static str) -> Result<Reloaded> {
        let _one_at_a_time = self.reloading.lock().await;
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || LoadedModel::load(&path))
            .await
            .map_err(|error| ServeError::Io(std::io::Error::other(error)))?;
        let model = match loaded {
            Ok(model) => model,
            Err(error) => {
                tracing::error!(trigger, %error, "model reload refused; the old model keeps serving");
                return Err(error);
            }
        };
        let old_version = self.current().version.clone();
        if model.version == old_version {
            tracing::info!(trigger, version = %old_version, "model unchanged");
            return Ok(Reloaded {
                version: old_version,
                changed: false,
            });
        }
        let version = model.version.clone();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(model);
        tracing::info!(trigger, from = %old_version, to = %version, "model reloaded");
        Ok(Reloaded {
            version,
            changed: true,
        })
    }
}
