//! The core of churn: what a model expects ([`FeatureSchema`]), how raw values become a feature
//! vector ([`Preprocessor`], [`Encoder`]), the versioned [`ModelArtifact`], and the [`Scorer`] that
//! turns a profile into a probability with exact, additive [`Reason`]s, and the [`AlertPolicy`]
//! that decides which scores raise alerts.
//!
//! Features are computed here and nowhere else, so training, batch and online scoring agree.
//! This crate knows no polars, linfa, tokio, tonic, files or clocks: it is pure computation.
//!
//! ```
//! use churn_core::{ModelArtifact, Profile, RawValue, Scorer};
//! # fn demo(json: &str) -> churn_core::Result<()> {
//! let scorer = Scorer::new(ModelArtifact::from_json(json)?)?;
//! let mut profile = Profile::new();
//! profile.insert("tenure".into(), RawValue::Number(2.0));
//! let explanation = scorer.explain(&profile)?;
//! for reason in explanation.raising(5) {
//!     println!("{}: {:+.3}", reason.text, reason.contribution);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod alert;
pub mod artifact;
pub mod calibration;
pub mod compiled;
pub mod encoding;
pub mod error;
pub mod experience;
pub mod model;
pub mod risk;
pub mod schema;
pub mod scorer;
pub mod tree;
#[cfg(test)]
mod tree_shap_reference;
pub mod value;

pub use alert::{
    AlertDecision, AlertDraft, AlertPolicy, BandHours, CustomerHistory, PastAlert, PastScore,
    ScoreEvent, Timestamp, Trigger,
};
pub use artifact::{CURRENT_FORMAT_VERSION, ModelArtifact, TrainingMetadata};
pub use calibration::Calibration;
pub use compiled::{CompiledTrees, ShapScratch};
pub use encoding::{EncodedColumn, Encoder, EncodingStyle, FeatureEncoding, Preprocessor};
pub use error::{CoreError, Result};
pub use model::{LinearModel, Model, sigmoid};
pub use risk::{RiskBand, RiskBands};
pub use schema::{FeatureKind, FeatureSchema, FeatureSpec};
pub use scorer::{Explanation, Reason, Scorer, TopReasons};
pub use tree::{Tree, TreeEnsemble};
pub use value::{Profile, RawValue, Value};
