//! Scoring and reasons: probability of churn for a profile, and each raw feature's exact
//! contribution to the model's logit.

use serde::Serialize;

use crate::artifact::ModelArtifact;
use crate::encoding::{Encoder, FeatureEncoding};
use crate::error::Result;
use crate::model::{Model, sigmoid};
use crate::value::{Profile, RawValue, Value};

/// A loaded, validated model ready to score.
#[derive(Debug, Clone)]
pub struct Scorer {
    artifact: ModelArtifact,
    encoder: Encoder,
}

/// One raw feature's share of a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub feature: String,
    /// The customer's value as given.
    pub value: RawValue,
    /// Contribution to the logit, in log-odds; positive raises risk.
    pub contribution: f64,
    /// The reason in words an agent can act on.
    pub text: String,
}

/// A score with its exact decomposition: `base_value + Σ reasons.contribution = logit`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub probability: f64,
    pub logit: f64,
    /// The logit of the average training customer.
    pub base_value: f64,
    /// One reason per schema feature, in schema order.
    pub reasons: Vec<Reason>,
}

impl Explanation {
    /// Returns up to `k` reasons that raise risk, strongest first.
    pub fn raising(&self, k: usize) -> Vec<&Reason> {
        let mut raising: Vec<&Reason> = self
            .reasons
            .iter()
            .filter(|reason| reason.contribution > 0.0)
            .collect();
        raising.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        raising.truncate(k);
        raising
    }

    /// Returns up to `k` reasons that lower risk, strongest first.
    pub fn lowering(&self, k: usize) -> Vec<&Reason> {
        let mut lowering: Vec<&Reason> = self
            .reasons
            .iter()
            .filter(|reason| reason.contribution < 0.0)
            .collect();
        lowering.sort_by(|a, b| a.contribution.total_cmp(&b.contribution));
        lowering.truncate(k);
        lowering
    }
}

impl Scorer {
    /// Checks the artifact's parts against each other and prepares it for scoring.
    pub fn new(artifact: ModelArtifact) -> Result<Self> {
        let encoder = artifact.preprocessor.encoder(&artifact.schema)?;
        artifact.model.validate(encoder.columns().len())?;
        Ok(Scorer { artifact, encoder })
    }

    /// Returns the artifact being served.
    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }

    /// Returns the encoder, to encode whole tables exactly as profiles are.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Encodes a profile into the model's feature vector.
    pub fn encode(&self, profile: &Profile) -> Result<Vec<f64>> {
        let features = self.encoder.features();
        let mut row = vec![0.0; self.encoder.columns().len()];
        self.encoder.encode_into(
            |index| profile.get(features[index].name()).map(RawValue::as_value),
            &mut row,
        )?;
        Ok(row)
    }

    /// Returns the model's logit for an encoded row.
    pub fn logit_of_encoded(&self, row: &[f64]) -> f64 {
        match &self.artifact.model {
            Model::Logistic(linear) => linear.logit(row),
        }
    }

    /// Returns the probability of churn for a profile.
    pub fn score(&self, profile: &Profile) -> Result<f64> {
        let row = self.encode(profile)?;
        Ok(sigmoid(self.logit_of_encoded(&row)))
    }

    /// Returns the probability of churn for a row given feature by feature (for tables).
    pub fn score_values<'a>(
        &self,
        value_of: impl FnMut(usize) -> Option<Value<'a>>,
    ) -> Result<f64> {
        let mut row = vec![0.0; self.encoder.columns().len()];
        self.encoder.encode_into(value_of, &mut row)?;
        Ok(sigmoid(self.logit_of_encoded(&row)))
    }

    /// Returns the rank of `probability` among training customers, in percent (0–100).
    pub fn percentile(&self, probability: f64) -> f64 {
        let quantiles = &self.artifact.score_quantiles;
        if quantiles.len() < 2 {
            return 50.0;
        }
        let below = quantiles.partition_point(|&q| q < probability);
        let last = (quantiles.len() - 1) as f64;
        (below as f64 / last * 100.0).clamp(0.0, 100.0)
    }

    /// Returns the probability with each raw feature's exact contribution.
    pub fn explain(&self, profile: &Profile) -> Result<Explanation> {
        let features = self.encoder.features();
        self.explain_values(|index| profile.get(features[index].name()).map(RawValue::as_value))
    }

    /// Returns the explanation of a row given feature by feature (for tables).
    pub fn explain_values<'a>(
        &self,
        value_of: impl Fn(usize) -> Option<Value<'a>>,
    ) -> Result<Explanation> {
        let mut row = vec![0.0; self.encoder.columns().len()];
        self.encoder.encode_into(&value_of, &mut row)?;
        let features = self.encoder.features();
        let mut contributions = vec![0.0; features.len()];
        let base_value = match &self.artifact.model {
            Model::Logistic(linear) => {
                for (k, column) in self.encoder.columns().iter().enumerate() {
                    contributions[column.source] += linear.term(k, row[k]);
                }
                linear.intercept
            }
        };
        let logit = base_value + contributions.iter().sum::<f64>();
        let reasons = features
            .iter()
            .zip(contributions)
            .enumerate()
            .map(|(index, (encoding, contribution))| {
                let value = value_of(index).map_or(RawValue::Missing, Value::to_raw);
                Reason {
                    feature: encoding.name().to_string(),
                    text: reason_text(encoding, &value, contribution),
                    value,
                    contribution,
                }
            })
            .collect();
        Ok(Explanation {
            probability: sigmoid(logit),
            logit,
            base_value,
            reasons,
        })
    }
}

/// Writes a reason as a sentence: "Contract is Month-to-month; customers like this churn more".
fn reason_text(encoding: &FeatureEncoding, value: &RawValue, contribution: f64) -> String {
    let direction = if contribution > 0.0 {
        "customers like this churn more"
    } else if contribution < 0.0 {
        "customers like this churn less"
    } else {
        "no effect on risk"
    };
    let name = encoding.name();
    let missing = matches!(value, RawValue::Missing)
        || matches!(value, RawValue::Text(text) if crate::value::is_missing_token(text));
    if missing {
        return format!("{name} is unknown; {direction}");
    }
    match encoding {
        FeatureEncoding::Numeric { impute, .. } => {
            format!("{name} is {value} (typical {impute}); {direction}")
        }
        FeatureEncoding::Boolean { .. } => {
            let flag = crate::encoding::read_bool(name, value.as_value())
                .ok()
                .flatten();
            let said = match flag {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            format!("{name}: {said}; {direction}")
        }
        FeatureEncoding::Categorical { .. } => format!("{name} is {value}; {direction}"),
    }
}
