//! What a model expects: the target, the id column and each feature's kind.

use serde::{Deserialize, Serialize};

/// How a raw feature is read and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A number; blanks are imputed with the training median.
    Numeric,
    /// Yes/no, true/false or 1/0; encoded as 0/1.
    Boolean,
    /// A level out of a fixed set; one-hot encoded.
    Categorical,
}

impl FeatureKind {
    /// Returns the lowercase name used in schema files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::Numeric => "numeric",
            FeatureKind::Boolean => "boolean",
            FeatureKind::Categorical => "categorical",
        }
    }
}

/// One feature of the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// The feature's column name.
    pub name: String,
    /// How its values are read.
    pub kind: FeatureKind,
}

/// The columns a model was trained on: target, id, and features in a fixed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// The column holding the churn label in training data.
    pub target: String,
    /// The target value that means "churned".
    pub positive_class: String,
    /// The customer id column, if the data has one.
    pub id: Option<String>,
    /// The features, in the order of the model's inputs.
    pub features: Vec<FeatureSpec>,
}

impl FeatureSchema {
    /// Returns the feature names, in model order.
    pub fn feature_names(&self) -> Vec<String> {
        self.features
            .iter()
            .map(|feature| feature.name.clone())
            .collect()
    }

    /// Returns the feature with this name, if the schema has it.
    pub fn feature(&self, name: &str) -> Option<&FeatureSpec> {
        self.features.iter().find(|feature| feature.name == name)
    }
}
