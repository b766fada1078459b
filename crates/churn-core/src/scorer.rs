//! Scoring and reasons: probability of churn for a profile, and each raw feature's exact
//! contribution to the model's logit.

use serde::Serialize;

use crate::artifact::ModelArtifact;
use crate::compiled::CompiledTrees;
use crate::encoding::{Encoder, FeatureEncoding};
use crate::error::{CoreError, Result};
use crate::experience;
use crate::model::{Model, sigmoid};
use crate::risk::{RiskBand, RiskBands};
use crate::value::{Profile, RawValue, Value};

/// A loaded, validated model ready to score.
#[derive(Debug, Clone)]
pub struct Scorer {
    artifact: ModelArtifact,
    encoder: Encoder,
    /// The margin of the average training customer: where reasons start from.
    base_value: f64,
    /// The tree model compiled for scoring; `None` for linear models.
    trees: Option<CompiledTrees>,
    /// The artifact's band cut-offs, or ones derived from its training quantiles.
    bands: RiskBands,
    /// Schema feature indices in the order of their names, so that a profile (a map sorted by
    /// name) is matched to the schema in one merge of two sorted lists.
    features_by_name: Vec<usize>,
}

/// One raw feature's share of a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// The raw feature.
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
    /// Probability of churn, calibrated when the artifact has a calibration.
    pub probability: f64,
    /// The model's raw margin in log-odds (before calibration).
    pub logit: f64,
    /// The margin of the average training customer.
    pub base_value: f64,
    /// One reason per schema feature, in schema order.
    pub reasons: Vec<Reason>,
}

impl Explanation {
    /// Returns up to `k` reasons that raise risk, strongest first.
    pub fn raising(&self, k: usize) -> Vec<&Reason> {
        strongest(&self.contributions(), k, Direction::Raising)
            .into_iter()
            .map(|index| &self.reasons[index])
            .collect()
    }

    /// Returns up to `k` reasons that lower risk, strongest first.
    pub fn lowering(&self, k: usize) -> Vec<&Reason> {
        strongest(&self.contributions(), k, Direction::Lowering)
            .into_iter()
            .map(|index| &self.reasons[index])
            .collect()
    }

    fn contributions(&self) -> Vec<f64> {
        self.reasons
            .iter()
            .map(|reason| reason.contribution)
            .collect()
    }
}

/// A score with only its strongest reasons each way, which is what a score response or a batch
/// row shows. The same numbers and reasons as [`Explanation::raising`] and
/// [`Explanation::lowering`], for less work: only these reasons are put into words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopReasons {
    /// Probability of churn, calibrated when the artifact has a calibration.
    pub probability: f64,
    /// The model's raw margin in log-odds (before calibration).
    pub logit: f64,
    /// The margin of the average training customer.
    pub base_value: f64,
    /// Up to `k` reasons that raise risk, strongest first.
    pub raising: Vec<Reason>,
    /// Up to `k` reasons that lower risk, strongest first.
    pub lowering: Vec<Reason>,
}

#[derive(Clone, Copy)]
enum Direction {
    Raising,
    Lowering,
}

/// Returns the indices of up to `k` contributions pointing `direction`, strongest first; equal
/// ones keep schema order.
fn strongest(contributions: &[f64], k: usize, direction: Direction) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..contributions.len())
        .filter(|&index| match direction {
            Direction::Raising => contributions[index] > 0.0,
            Direction::Lowering => contributions[index] < 0.0,
        })
        .collect();
    // Stable, so ties stay in schema order.
    indices.sort_by(|&a, &b| match direction {
        Direction::Raising => contributions[b].total_cmp(&contributions[a]),
        Direction::Lowering => contributions[a].total_cmp(&contributions[b]),
    });
    indices.truncate(k);
    indices
}

/// A row's margin, its probability and each raw feature's contribution, before any words.
struct Decomposition {
    probability: f64,
    logit: f64,
    contributions: Vec<f64>,
}

impl Scorer {
    /// Checks the artifact's parts against each other and prepares it for scoring.
    pub fn new(artifact: ModelArtifact) -> Result<Self> {
        let encoder = artifact.preprocessor.encoder(&artifact.schema)?;
        let categorical = encoder.categorical_columns();
        let (base_value, trees) = match &artifact.model {
            Model::Logistic(linear) => {
                linear.validate(categorical.len())?;
                (linear.intercept, None)
            }
            Model::Gbdt(ensemble) => {
                let trees = CompiledTrees::new(ensemble, &categorical)?;
                (trees.expected_margin(), Some(trees))
            }
        };
        if let Some(calibration) = &artifact.calibration {
            calibration.validate()?;
        }
        let bands = artifact
            .bands
            .unwrap_or_else(|| RiskBands::from_quantiles(&artifact.score_quantiles));
        bands.validate()?;
        let mut features_by_name: Vec<usize> = (0..artifact.schema.features.len()).collect();
        features_by_name.sort_by(|&a, &b| {
            artifact.schema.features[a]
                .name
                .cmp(&artifact.schema.features[b].name)
        });
        Ok(Scorer {
            artifact,
            encoder,
            base_value,
            trees,
            bands,
            features_by_name,
        })
    }

    /// Returns the artifact being served.
    pub fn artifact(&self) -> &ModelArtifact {
        &self.artifact
    }

    /// Returns the encoder, to encode whole tables exactly as profiles are.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Returns the risk band cut-offs in use.
    pub fn bands(&self) -> RiskBands {
        self.bands
    }

    /// Returns the risk band of a probability.
    pub fn band(&self, probability: f64) -> RiskBand {
        self.bands.band(probability)
    }

    /// Returns the profile's value of every schema feature, in schema order (missing when the
    /// profile lacks it). A name the model does not know is an error, so a misspelt feature is
    /// reported instead of silently scored as missing.
    pub fn profile_values<'a>(&self, profile: &'a Profile) -> Result<Vec<Value<'a>>> {
        let features = &self.artifact.schema.features;
        let mut values = vec![Value::Missing; features.len()];
        // Both sides are sorted by name: one merge instead of a search per name.
        let mut candidates = self.features_by_name.iter().peekable();
        for (name, value) in profile {
            // Usually the next feature is this name: test equality, which compares bytes only
            // between names of one length, before skipping features the profile lacks.
            if candidates
                .peek()
                .is_none_or(|&&index| features[index].name != *name)
            {
                while candidates
                    .next_if(|&&index| features[index].name < *name)
                    .is_some()
                {}
            }
            match candidates.next_if(|&&index| features[index].name == *name) {
                Some(&index) => values[index] = value.as_value(),
                None => {
                    return Err(CoreError::UnknownFeature {
                        name: name.clone(),
                        known: features
                            .iter()
                            .map(|feature| format!("`{}`", feature.name))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        Ok(values)
    }

    /// Encodes a profile into the model's feature vector. A feature the profile lacks is
    /// missing; a name the model does not know is an error.
    pub fn encode(&self, profile: &Profile) -> Result<Vec<f64>> {
        let values = self.profile_values(profile)?;
        let mut row = vec![0.0; self.encoder.columns().len()];
        self.encoder
            .encode_into(|index| Some(values[index]), &mut row)?;
        Ok(row)
    }

    /// Returns the model's margin (log-odds, before calibration) for an encoded row.
    pub fn logit_of_encoded(&self, row: &[f64]) -> f64 {
        match &self.trees {
            Some(trees) => trees.margin(row),
            None => self.artifact.model.margin(row),
        }
    }

    /// Returns the probability for a margin, through the calibration when there is one.
    pub fn probability_of_logit(&self, logit: f64) -> f64 {
        match &self.artifact.calibration {
            Some(calibration) => calibration.probability(logit),
            None => sigmoid(logit),
        }
    }

    /// Returns the probability of churn for a profile.
    pub fn score(&self, profile: &Profile) -> Result<f64> {
        let row = self.encode(profile)?;
        Ok(self.probability_of_logit(self.logit_of_encoded(&row)))
    }

    /// Returns the probability of churn for a row given feature by feature (for tables).
    pub fn score_values<'a>(
        &self,
        value_of: impl FnMut(usize) -> Option<Value<'a>>,
    ) -> Result<f64> {
        let mut row = vec![0.0; self.encoder.columns().len()];
        self.encoder.encode_into(value_of, &mut row)?;
        Ok(self.probability_of_logit(self.logit_of_encoded(&row)))
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

    /// Returns the probability with each raw feature's exact contribution. A feature the
    /// profile lacks is missing; a name the model does not know is an error.
    pub fn explain(&self, profile: &Profile) -> Result<Explanation> {
        let values = self.profile_values(profile)?;
        self.explain_values(|index| Some(values[index]))
    }

    /// Returns the explanation of a row given feature by feature (for tables).
    pub fn explain_values<'a>(
        &self,
        value_of: impl Fn(usize) -> Option<Value<'a>>,
    ) -> Result<Explanation> {
        let decomposition = self.decompose(&value_of)?;
        let reasons = (0..decomposition.contributions.len())
            .map(|index| self.reason(&value_of, index, decomposition.contributions[index]))
            .collect();
        Ok(Explanation {
            probability: decomposition.probability,
            logit: decomposition.logit,
            base_value: self.base_value,
            reasons,
        })
    }

    /// Returns the probability with the `k` strongest reasons each way. A feature the profile
    /// lacks is missing; a name the model does not know is an error.
    pub fn explain_top(&self, profile: &Profile, k: usize) -> Result<TopReasons> {
        let values = self.profile_values(profile)?;
        self.explain_values_top(|index| Some(values[index]), k)
    }

    /// Returns the `k` strongest reasons each way of a row given feature by feature (for tables).
    pub fn explain_values_top<'a>(
        &self,
        value_of: impl Fn(usize) -> Option<Value<'a>>,
        k: usize,
    ) -> Result<TopReasons> {
        let decomposition = self.decompose(&value_of)?;
        let contributions = &decomposition.contributions;
        let reasons = |direction| {
            strongest(contributions, k, direction)
                .into_iter()
                .map(|index| self.reason(&value_of, index, contributions[index]))
                .collect()
        };
        Ok(TopReasons {
            probability: decomposition.probability,
            logit: decomposition.logit,
            base_value: self.base_value,
            raising: reasons(Direction::Raising),
            lowering: reasons(Direction::Lowering),
        })
    }

    /// Encodes a row and splits its margin into each raw feature's exact contribution.
    fn decompose<'a>(
        &self,
        value_of: &impl Fn(usize) -> Option<Value<'a>>,
    ) -> Result<Decomposition> {
        let mut row = vec![0.0; self.encoder.columns().len()];
        self.encoder.encode_into(value_of, &mut row)?;
        let columns = self.encoder.columns();
        let mut contributions = vec![0.0; self.encoder.features().len()];
        match (&self.trees, &self.artifact.model) {
            (Some(trees), _) => {
                let mut phi = vec![0.0; columns.len()];
                trees.shap_into(&row, &mut phi, &mut trees.scratch());
                for (column, value) in columns.iter().zip(phi) {
                    contributions[column.source] += value;
                }
            }
            (None, Model::Logistic(linear)) => {
                for (k, column) in columns.iter().enumerate() {
                    contributions[column.source] += linear.term(k, row[k]);
                }
            }
            (None, Model::Gbdt(_)) => unreachable!("tree models are compiled in Scorer::new"),
        }
        // The margin itself, so `explain` and `score` give the same probability to the bit; the
        // contributions add up to it within rounding.
        let logit = self.logit_of_encoded(&row);
        Ok(Decomposition {
            probability: self.probability_of_logit(logit),
            logit,
            contributions,
        })
    }

    /// Returns schema feature `index`'s reason: the value as given, and the sentence.
    fn reason<'a>(
        &self,
        value_of: &impl Fn(usize) -> Option<Value<'a>>,
        index: usize,
        contribution: f64,
    ) -> Reason {
        let features = self.encoder.features();
        let encoding = &features[index];
        let value = value_of(index).map_or(RawValue::Missing, Value::to_raw);
        // Event-built features speak the language of customer experience.
        let other = |name: &str| {
            let other = features.iter().position(|feature| feature.name() == name)?;
            value_of(other).and_then(number_of)
        };
        let sentence = match encoding {
            FeatureEncoding::Categorical { .. } => None,
            _ => experience::sentence(encoding.name(), number_of(value.as_value()), &other),
        };
        let text = match sentence {
            Some(sentence) => format!("{sentence}; {}", direction_text(contribution)),
            None => reason_text(encoding, &value, contribution),
        };
        Reason {
            feature: encoding.name().to_string(),
            text,
            value,
            contribution,
        }
    }
}

/// Reads a numeric or boolean value as a number (booleans as 0/1); `None` when missing.
fn number_of(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Missing => None,
        Value::Number(number) => Some(number).filter(|number| number.is_finite()),
        Value::Bool(flag) => Some(f64::from(u8::from(flag))),
        Value::Text(text) => crate::value::parse_number_token(text)
            .or_else(|| crate::value::parse_bool_token(text).map(|flag| f64::from(u8::from(flag)))),
    }
}

fn direction_text(contribution: f64) -> &'static str {
    if contribution > 0.0 {
        "customers like this churn more"
    } else if contribution < 0.0 {
        "customers like this churn less"
    } else {
        "no effect on risk"
    }
}

/// Writes a reason as a sentence: "Contract is Month-to-month; customers like this churn more".
fn reason_text(encoding: &FeatureEncoding, value: &RawValue, contribution: f64) -> String {
    let direction = direction_text(contribution);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::TrainingMetadata;
    use crate::model::LinearModel;
    use proptest::prelude::*;

    /// A hand-made artifact over the encoding tests' fixture.
    fn artifact() -> ModelArtifact {
        let (schema, preprocessor) = crate::encoding::tests::fixture();
        ModelArtifact {
            name: "fixture".into(),
            schema,
            preprocessor,
            // Columns: tenure, tenure missing, Partner, M2M, Two year, other, Contract missing.
            model: Model::Logistic(LinearModel {
                intercept: -1.2,
                coefficients: vec![-0.9, 0.3, -0.2, 0.7, -0.6, 0.1, 0.05],
                centers: vec![32.0, 0.01, 0.48, 0.55, 0.24, 0.2, 0.01],
                scales: vec![24.5, 0.1, 0.5, 0.5, 0.43, 0.4, 0.1],
            }),
            calibration: None,
            score_quantiles: (0..=100).map(|step| f64::from(step) / 100.0).collect(),
            bands: None,
            metadata: TrainingMetadata {
                churn_version: "0.1.0".into(),
                data_source: "fixture.csv".into(),
                data_sha256: "0".repeat(64),
                rows: 100,
                positives: 26,
                seed: 42,
                params: serde_json::json!({"model": "logistic"}),
                metrics: Default::default(),
                excluded_columns: Default::default(),
            },
        }
    }

    /// The fixture's features in the codes style (tenure, Partner, Contract code) under a small
    /// tree ensemble with a categorical split, calibrated with Platt scaling.
    fn tree_artifact() -> ModelArtifact {
        use crate::tree::{Tree, TreeEnsemble};
        let mut artifact = artifact();
        artifact.preprocessor.style = crate::EncodingStyle::Codes;
        // Root: Contract code in {0 (Month-to-month)} → node 1, else node 2 (missing goes left).
        // Node 1: tenure <= 12 → +0.8 else -0.1 (missing right). Node 2: Partner <= 0.5 → 0.1 else -0.6.
        let first = Tree {
            feature: vec![2, 0, 1, 0, 0, 0, 0],
            threshold: vec![0.0, 12.0, 0.5, 0.0, 0.0, 0.0, 0.0],
            left_categories: vec![0b1, 0, 0, 0, 0, 0, 0],
            default_left: vec![true, false, true, false, false, false, false],
            left: vec![1, 3, 5, 0, 0, 0, 0],
            right: vec![2, 4, 6, 0, 0, 0, 0],
            value: vec![0.0, 0.0, 0.0, 0.8, -0.1, 0.1, -0.6],
            cover: vec![100.0, 55.0, 45.0, 20.0, 35.0, 25.0, 20.0],
        };
        // A second tree on tenure alone: tenure <= 30 → 0.2 else -0.3 (missing left).
        let second = Tree {
            feature: vec![0, 0, 0],
            threshold: vec![30.0, 0.0, 0.0],
            left_categories: vec![0; 3],
            default_left: vec![true, false, false],
            left: vec![1, 0, 0],
            right: vec![2, 0, 0],
            value: vec![0.0, 0.2, -0.3],
            cover: vec![100.0, 48.0, 52.0],
        };
        artifact.model = Model::Gbdt(TreeEnsemble {
            base_score: -1.0,
            trees: vec![first, second],
        });
        artifact.calibration = Some(crate::Calibration::Platt {
            slope: 0.9,
            intercept: 0.1,
        });
        artifact
    }

    #[test]
    fn tree_models_score_explain_and_round_trip() {
        let scorer = Scorer::new(tree_artifact()).unwrap();
        let profile = profile(
            RawValue::Number(5.0),
            RawValue::Bool(true),
            RawValue::from("Month-to-month"),
        );
        // Margin: -1 + 0.8 (M2M, tenure <= 12) + 0.2 (tenure <= 30) = 0.0.
        let explanation = scorer.explain(&profile).unwrap();
        assert!(explanation.logit.abs() < 1e-15);
        assert_eq!(explanation.probability, sigmoid(0.1));
        assert_eq!(scorer.score(&profile).unwrap(), explanation.probability);
        // Partner is split on only off this customer's path, yet it has a Shapley value: by hand,
        // v(∅) = 0.03, v(P) = -0.145, v(T) = 0.345, v(T,P) = 0.17, and with Contract known P
        // changes nothing, so φ_P = (1/3)(-0.175) + (1/6)(-0.175) = -0.0875.
        assert!((explanation.reasons[1].contribution + 0.0875).abs() < 1e-12);
        assert_eq!(explanation.raising(1)[0].feature, "tenure");
        let json = tree_artifact().to_json();
        assert_eq!(ModelArtifact::from_json(&json).unwrap(), tree_artifact());
        // A version 1 file cannot hold a tree model.
        let relabelled = json.replace("\"format_version\": \"2\"", "\"format_version\": \"1\"");
        assert!(matches!(
            ModelArtifact::from_json(&relabelled),
            Err(crate::CoreError::InvalidArtifact { .. })
        ));
    }

    fn profile(tenure: RawValue, partner: RawValue, contract: RawValue) -> Profile {
        [
            ("tenure".to_string(), tenure),
            ("Partner".to_string(), partner),
            ("Contract".to_string(), contract),
        ]
        .into_iter()
        .collect()
    }

    fn tenure_value() -> impl Strategy<Value = RawValue> {
        prop_oneof![
            Just(RawValue::Missing),
            (0.0f64..100.0).prop_map(RawValue::Number),
            (0u32..100).prop_map(|months| RawValue::Text(months.to_string())),
        ]
    }

    fn partner_value() -> impl Strategy<Value = RawValue> {
        prop_oneof![
            Just(RawValue::Missing),
            any::<bool>().prop_map(RawValue::Bool),
            prop::sample::select(vec!["Yes", "No", "1", "0"]).prop_map(RawValue::from),
        ]
    }

    fn contract_value() -> impl Strategy<Value = RawValue> {
        prop_oneof![
            Just(RawValue::Missing),
            prop::sample::select(vec!["Month-to-month", "One year", "Two year"])
                .prop_map(RawValue::from),
        ]
    }

    proptest! {
        /// base value + Σ contributions = the model's logit, computed independently by the dot
        /// product path, and the probability is in [0, 1].
        #[test]
        fn reasons_add_up_to_the_logit(
            tenure in tenure_value(),
            partner in partner_value(),
            contract in contract_value(),
        ) {
            let scorer = Scorer::new(artifact()).unwrap();
            let profile = profile(tenure, partner, contract);
            let explanation = scorer.explain(&profile).unwrap();
            let logit = scorer.logit_of_encoded(&scorer.encode(&profile).unwrap());
            let sum = explanation.base_value
                + explanation.reasons.iter().map(|reason| reason.contribution).sum::<f64>();
            prop_assert!((sum - logit).abs() < 1e-9, "{sum} vs {logit}");
            let probability = scorer.score(&profile).unwrap();
            prop_assert!((0.0..=1.0).contains(&probability));
            prop_assert!((probability - explanation.probability).abs() < 1e-12);
        }

        /// The same for tree models: TreeSHAP per encoded column, summed back to raw features.
        #[test]
        fn tree_reasons_add_up_to_the_margin(
            tenure in tenure_value(),
            partner in partner_value(),
            contract in contract_value(),
        ) {
            let scorer = Scorer::new(tree_artifact()).unwrap();
            let profile = profile(tenure, partner, contract);
            let explanation = scorer.explain(&profile).unwrap();
            let sum = explanation.base_value
                + explanation.reasons.iter().map(|reason| reason.contribution).sum::<f64>();
            prop_assert!((sum - explanation.logit).abs() < 1e-9, "{sum} vs {}", explanation.logit);
            prop_assert_eq!(scorer.score(&profile).unwrap(), explanation.probability);
        }

        /// The top-k explanation gives exactly the full explanation's strongest reasons, for both
        /// model kinds and any k.
        #[test]
        fn top_reasons_equal_the_strongest_of_the_full_explanation(
            tenure in tenure_value(),
            partner in partner_value(),
            contract in contract_value(),
            k in 0usize..5,
            trees in any::<bool>(),
        ) {
            let scorer = Scorer::new(if trees { tree_artifact() } else { artifact() }).unwrap();
            let profile = profile(tenure, partner, contract);
            let full = scorer.explain(&profile).unwrap();
            let top = scorer.explain_top(&profile, k).unwrap();
            prop_assert_eq!(top.probability.to_bits(), full.probability.to_bits());
            prop_assert_eq!(top.logit.to_bits(), full.logit.to_bits());
            prop_assert_eq!(top.base_value, full.base_value);
            prop_assert_eq!(top.raising.iter().collect::<Vec<_>>(), full.raising(k));
            prop_assert_eq!(top.lowering.iter().collect::<Vec<_>>(), full.lowering(k));
        }

        /// NaN and infinities are refused by name, never scored.
        #[test]
        fn non_finite_numbers_are_refused(bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY])) {
            let scorer = Scorer::new(artifact()).unwrap();
            let profile = profile(RawValue::Number(bad), RawValue::Bool(true), RawValue::from("Two year"));
            let error = scorer.score(&profile).unwrap_err();
            let named_tenure = matches!(error, crate::CoreError::NonFinite { ref feature, .. } if feature == "tenure");
            prop_assert!(named_tenure, "{}", error);
        }
    }

    #[test]
    fn reasons_are_sorted_by_direction_and_strength() {
        let scorer = Scorer::new(artifact()).unwrap();
        let explanation = scorer
            .explain(&profile(
                RawValue::Number(2.0),
                RawValue::Bool(true),
                RawValue::from("Month-to-month"),
            ))
            .unwrap();
        let raising = explanation.raising(5);
        assert_eq!(raising[0].feature, "tenure");
        assert_eq!(
            raising[0].text,
            "tenure is 2 (typical 29); customers like this churn more"
        );
        assert!(
            raising
                .windows(2)
                .all(|pair| pair[0].contribution >= pair[1].contribution)
        );
        let lowering = explanation.lowering(5);
        assert!(lowering.iter().all(|reason| reason.contribution < 0.0));
        assert_eq!(explanation.raising(1).len(), 1);
    }

    #[test]
    fn artifact_round_trips_through_json_and_scores_identically() {
        let original = artifact();
        let json = original.to_json();
        assert!(json.starts_with("{\n  \"format_version\": \"2\""));
        let loaded = ModelArtifact::from_json(&json).unwrap();
        assert_eq!(loaded, original);
        assert_eq!(loaded.to_json(), json);
        let profile = profile(
            RawValue::Number(7.5),
            RawValue::from("No"),
            RawValue::from("One year"),
        );
        let before = Scorer::new(original).unwrap().score(&profile).unwrap();
        let after = Scorer::new(loaded).unwrap().score(&profile).unwrap();
        assert_eq!(before.to_bits(), after.to_bits());
    }

    #[test]
    fn unknown_versions_and_broken_artifacts_are_refused() {
        let json = artifact()
            .to_json()
            .replace("\"format_version\": \"2\"", "\"format_version\": \"9\"");
        assert_eq!(
            ModelArtifact::from_json(&json).unwrap_err(),
            crate::CoreError::UnsupportedFormatVersion {
                version: "9".into()
            }
        );
        assert!(ModelArtifact::from_json("{\"format_version\": \"1\"").is_err());
        let mut broken = artifact();
        let Model::Logistic(linear) = &mut broken.model else {
            panic!("the fixture is logistic")
        };
        linear.coefficients.pop();
        assert!(matches!(
            Scorer::new(broken),
            Err(crate::CoreError::InvalidArtifact { .. })
        ));
    }

    /// Profiles are matched to the schema by merging two sorted name lists: an unknown name is
    /// found wherever it sorts (before, between or after the features, or as a prefix of one),
    /// and a feature the profile lacks reads as missing.
    #[test]
    fn profile_names_are_matched_to_the_schema_wherever_they_sort() {
        let scorer = Scorer::new(artifact()).unwrap();
        // The schema's names sort as `Contract`, `Partner`, `tenure`.
        for unknown in ["Age", "Con", "Contracts", "Rating", "ten", "zip"] {
            let mut named = profile(
                RawValue::Number(5.0),
                RawValue::Bool(true),
                RawValue::from("Two year"),
            );
            named.insert(unknown.into(), RawValue::Number(1.0));
            match scorer.encode(&named) {
                Err(CoreError::UnknownFeature { name, known }) => {
                    assert_eq!(name, unknown);
                    assert_eq!(known, "`tenure`, `Partner`, `Contract`");
                }
                other => panic!("{unknown}: {other:?}"),
            }
        }
        let partial: Profile = [("tenure".to_string(), RawValue::Number(5.0))].into();
        let values = scorer.profile_values(&partial).unwrap();
        assert_eq!(values, [Value::Number(5.0), Value::Missing, Value::Missing]);
        let explicit = profile(RawValue::Number(5.0), RawValue::Missing, RawValue::Missing);
        assert_eq!(
            scorer.encode(&partial).unwrap(),
            scorer.encode(&explicit).unwrap()
        );
    }

    #[test]
    fn percentile_ranks_against_training_scores() {
        let scorer = Scorer::new(artifact()).unwrap();
        assert_eq!(scorer.percentile(0.0), 0.0);
        assert_eq!(scorer.percentile(0.505), 51.0);
        assert_eq!(scorer.percentile(1.5), 100.0);
    }
}
