//! Raw values → feature vector. The only place features are computed, for training, batch and
//! online scoring alike, so those paths cannot drift apart.
//!
//! Each raw feature expands to one or more encoded columns, in schema order:
//! - numeric: the value (blanks imputed with the training median), plus a missing indicator when
//!   training saw blanks;
//! - boolean: 0/1 (blanks imputed with the training mode), plus a missing indicator likewise;
//! - categorical: one column per frequent level, one `other` column for rare levels seen in
//!   training, and one missing column when training saw blanks. An unseen level is an error.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::schema::{FeatureKind, FeatureSchema};
use crate::tree::MAX_CATEGORY_CODES;
use crate::value::{Value, is_missing_token, parse_bool_token, parse_number_token, trim};

/// How one raw feature is encoded, with everything learned from training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureEncoding {
    /// A number, used as is.
    Numeric {
        /// The feature.
        name: String,
        /// Training median, used for blanks.
        impute: f64,
        /// Whether a missing-indicator column follows the value column.
        missing_indicator: bool,
        /// Smallest value seen in training, for range checks and drift.
        min: f64,
        /// Largest value seen in training.
        max: f64,
    },
    /// Yes/no, encoded as 1/0.
    Boolean {
        /// The feature.
        name: String,
        /// Training mode, used for blanks.
        impute: bool,
        /// Whether a missing-indicator column follows the value column.
        missing_indicator: bool,
    },
    /// Levels, one-hot or as category codes.
    Categorical {
        /// The feature.
        name: String,
        /// Levels with a column of their own, most frequent first.
        levels: Vec<String>,
        /// Levels seen in training too rarely for a column of their own; they share `other`.
        rare_levels: Vec<String>,
        /// Whether a missing column follows the level columns (and the `other` column).
        missing_indicator: bool,
    },
}

impl FeatureEncoding {
    /// Returns the raw feature's name.
    pub fn name(&self) -> &str {
        match self {
            FeatureEncoding::Numeric { name, .. }
            | FeatureEncoding::Boolean { name, .. }
            | FeatureEncoding::Categorical { name, .. } => name,
        }
    }

    /// Returns the feature's kind.
    pub fn kind(&self) -> FeatureKind {
        match self {
            FeatureEncoding::Numeric { .. } => FeatureKind::Numeric,
            FeatureEncoding::Boolean { .. } => FeatureKind::Boolean,
            FeatureEncoding::Categorical { .. } => FeatureKind::Categorical,
        }
    }

    /// Returns the names of the encoded columns this feature expands to.
    pub fn column_names(&self, style: EncodingStyle) -> Vec<String> {
        if style == EncodingStyle::Codes {
            return vec![self.name().to_string()];
        }
        match self {
            FeatureEncoding::Numeric {
                name,
                missing_indicator,
                ..
            }
            | FeatureEncoding::Boolean {
                name,
                missing_indicator,
                ..
            } => {
                let mut columns = vec![name.clone()];
                if *missing_indicator {
                    columns.push(format!("{name} is missing"));
                }
                columns
            }
            FeatureEncoding::Categorical {
                name,
                levels,
                rare_levels,
                missing_indicator,
            } => {
                let mut columns: Vec<String> = levels
                    .iter()
                    .map(|level| format!("{name}={level}"))
                    .collect();
                if !rare_levels.is_empty() {
                    columns.push(format!("{name}=other"));
                }
                if *missing_indicator {
                    columns.push(format!("{name} is missing"));
                }
                columns
            }
        }
    }
}

/// How raw features are laid out as encoded columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingStyle {
    /// For linear models: blanks imputed (plus missing-indicator columns), categories one-hot.
    #[default]
    OneHot,
    /// For trees: one column per feature, blanks missing (NaN), categories as codes.
    Codes,
}

impl EncodingStyle {
    fn is_one_hot(&self) -> bool {
        *self == EncodingStyle::OneHot
    }
}

/// Turns profiles into encoded feature vectors, exactly as in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    /// Absent in artifacts written before trees existed, which are all one-hot.
    #[serde(default, skip_serializing_if = "EncodingStyle::is_one_hot")]
    pub style: EncodingStyle,
    /// One encoding per feature of the schema, in its order.
    pub features: Vec<FeatureEncoding>,
    /// Features whose training data had no blanks: a missing value for them is refused, since
    /// nothing was learned about it. Absent in older artifacts, which accept blanks everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_refused: Vec<String>,
}

/// Where each encoded column comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedColumn {
    /// The column's name: the feature's, or `feature=level` for one-hot columns.
    pub name: String,
    /// Index of the raw feature in the schema.
    pub source: usize,
    /// Whether the column holds categorical codes (codes style) rather than numbers.
    pub categorical: bool,
}

/// A `Preprocessor` with lookup tables built once, ready to encode many rows.
#[derive(Debug, Clone)]
pub struct Encoder {
    preprocessor: Preprocessor,
    columns: Vec<EncodedColumn>,
    /// Offset of each raw feature's first encoded column.
    offsets: Vec<usize>,
    /// For categorical features: level → position among the feature's columns.
    level_index: Vec<Vec<(String, usize)>>,
    /// Per feature: whether a missing value is refused.
    refuses_missing: Vec<bool>,
}

impl Preprocessor {
    /// Checks the preprocessor against the schema and builds its lookup tables.
    pub fn encoder(&self, schema: &FeatureSchema) -> Result<Encoder> {
        if schema.features.len() != self.features.len() {
            return Err(CoreError::InvalidArtifact {
                reason: format!(
                    "schema has {} features but preprocessing has {}",
                    schema.features.len(),
                    self.features.len()
                ),
            });
        }
        let mut columns = Vec::new();
        let mut offsets = Vec::with_capacity(self.features.len());
        let mut level_index = Vec::with_capacity(self.features.len());
        for (source, (spec, encoding)) in schema.features.iter().zip(&self.features).enumerate() {
            if spec.name != encoding.name() || spec.kind != encoding.kind() {
                return Err(CoreError::InvalidArtifact {
                    reason: format!(
                        "schema feature `{}` ({}) does not match preprocessing of `{}` ({})",
                        spec.name,
                        spec.kind.as_str(),
                        encoding.name(),
                        encoding.kind().as_str()
                    ),
                });
            }
            offsets.push(columns.len());
            let categorical =
                self.style == EncodingStyle::Codes && spec.kind == FeatureKind::Categorical;
            columns.extend(encoding.column_names(self.style).into_iter().map(|name| {
                EncodedColumn {
                    name,
                    source,
                    categorical,
                }
            }));
            let mut index = Vec::new();
            if let FeatureEncoding::Categorical {
                levels,
                rare_levels,
                ..
            } = encoding
            {
                if categorical && levels.len() + 1 > MAX_CATEGORY_CODES {
                    return Err(CoreError::InvalidArtifact {
                        reason: format!(
                            "feature `{}` has {} levels; trees route at most {MAX_CATEGORY_CODES} codes",
                            spec.name,
                            levels.len()
                        ),
                    });
                }
                index.extend(levels.iter().cloned().zip(0..));
                index.extend(
                    rare_levels
                        .iter()
                        .map(|level| (level.clone(), levels.len())),
                );
                // A binary search over a few levels beats hashing the customer's text. A level
                // listed twice keeps its last position, as a map filled in this order would.
                index.sort_by(|a, b| by_length_then_bytes(&a.0, &b.0).then(b.1.cmp(&a.1)));
                index.dedup_by(|later, earlier| later.0 == earlier.0);
            }
            level_index.push(index);
        }
        if let Some(unknown) = self
            .missing_refused
            .iter()
            .find(|name| schema.feature(name).is_none())
        {
            return Err(CoreError::InvalidArtifact {
                reason: format!("`missing_refused` names `{unknown}`, which is not a feature"),
            });
        }
        let refuses_missing = schema
            .features
            .iter()
            .map(|spec| self.missing_refused.contains(&spec.name))
            .collect();
        Ok(Encoder {
            preprocessor: self.clone(),
            columns,
            offsets,
            level_index,
            refuses_missing,
        })
    }
}

impl Encoder {
    /// Returns the encoded columns, in order.
    pub fn columns(&self) -> &[EncodedColumn] {
        &self.columns
    }

    /// Returns the per-feature encodings.
    pub fn features(&self) -> &[FeatureEncoding] {
        &self.preprocessor.features
    }

    /// Tells whether schema feature `index` accepts a missing value (training saw blanks in it).
    pub fn allows_missing(&self, index: usize) -> bool {
        !self.refuses_missing[index]
    }

    /// Returns, per encoded column, whether it holds categorical codes.
    pub fn categorical_columns(&self) -> Vec<bool> {
        self.columns
            .iter()
            .map(|column| column.categorical)
            .collect()
    }

    /// Encodes one row. `value_of(i)` gives the raw value of schema feature `i`, or `None` when
    /// the row has no entry for it at all. `out` must have `columns().len()` slots.
    pub fn encode_into<'a>(
        &self,
        mut value_of: impl FnMut(usize) -> Option<Value<'a>>,
        out: &mut [f64],
    ) -> Result<()> {
        debug_assert_eq!(out.len(), self.columns.len());
        for (index, encoding) in self.preprocessor.features.iter().enumerate() {
            let value = value_of(index).ok_or_else(|| CoreError::MissingFeature {
                name: encoding.name().to_string(),
            })?;
            // Read once: a missing value reads as `None` and never fails to parse, so checking
            // it after reading refuses the same values as checking it first.
            let reading = self.read(index, encoding, value)?;
            if reading.is_none() && self.refuses_missing[index] {
                return Err(CoreError::MissingNotAllowed {
                    feature: encoding.name().to_string(),
                });
            }
            let offset = self.offsets[index];
            let width = self
                .offsets
                .get(index + 1)
                .copied()
                .unwrap_or(self.columns.len())
                - offset;
            write_columns(
                encoding,
                self.preprocessor.style,
                reading,
                &mut out[offset..][..width],
            );
        }
        Ok(())
    }

    /// Reads one feature's raw value: `None` when it is missing, an error naming the feature
    /// when it is not a value of the feature's kind.
    fn read(
        &self,
        index: usize,
        encoding: &FeatureEncoding,
        value: Value<'_>,
    ) -> Result<Option<Reading>> {
        Ok(match encoding {
            FeatureEncoding::Numeric { name, .. } => read_number(name, value)?.map(Reading::Number),
            FeatureEncoding::Boolean { name, .. } => read_bool(name, value)?.map(Reading::Flag),
            FeatureEncoding::Categorical {
                name,
                levels,
                rare_levels,
                ..
            } => match read_level(value) {
                Some(level) => Some(Reading::Level(self.level_position(
                    index,
                    name,
                    levels,
                    rare_levels,
                    &level,
                )?)),
                None => None,
            },
        })
    }

    /// Returns a level's position among categorical feature `index`'s columns (rare levels share
    /// the position after the frequent ones), or the unknown-category error listing known levels.
    fn level_position(
        &self,
        index: usize,
        name: &str,
        levels: &[String],
        rare_levels: &[String],
        level: &str,
    ) -> Result<usize> {
        let positions = &self.level_index[index];
        positions
            .binary_search_by(|(known, _)| by_length_then_bytes(known, level))
            .map(|found| positions[found].1)
            .map_err(|_| CoreError::UnknownCategory {
                feature: name.to_string(),
                value: level.to_string(),
                known: known_levels(levels, rare_levels),
            })
    }
}

/// A feature's value once read, before it is written into its columns.
#[derive(Debug, Clone, Copy)]
enum Reading {
    Number(f64),
    Flag(bool),
    /// The level's position among the feature's columns.
    Level(usize),
}

/// Writes one feature's reading (`None`: missing) into its encoded columns, `slots`.
fn write_columns(
    encoding: &FeatureEncoding,
    style: EncodingStyle,
    reading: Option<Reading>,
    slots: &mut [f64],
) {
    if style == EncodingStyle::Codes {
        // One column: the number, 0/1 or the level's code; missing stays missing.
        slots[0] = match reading {
            Some(Reading::Number(number)) => number,
            Some(Reading::Flag(flag)) => f64::from(u8::from(flag)),
            Some(Reading::Level(position)) => position as f64,
            None => f64::NAN,
        };
        return;
    }
    slots.fill(0.0);
    match (encoding, reading) {
        (_, Some(Reading::Number(number))) => slots[0] = number,
        (_, Some(Reading::Flag(flag))) => slots[0] = f64::from(u8::from(flag)),
        (_, Some(Reading::Level(position))) => slots[position] = 1.0,
        (
            FeatureEncoding::Numeric {
                impute,
                missing_indicator,
                ..
            },
            None,
        ) => {
            slots[0] = *impute;
            if *missing_indicator {
                slots[1] = 1.0;
            }
        }
        (
            FeatureEncoding::Boolean {
                impute,
                missing_indicator,
                ..
            },
            None,
        ) => {
            slots[0] = f64::from(u8::from(*impute));
            if *missing_indicator {
                slots[1] = 1.0;
            }
        }
        // Missing: the missing column if training saw blanks, else no level at all.
        (
            FeatureEncoding::Categorical {
                missing_indicator, ..
            },
            None,
        ) => {
            if *missing_indicator {
                slots[slots.len() - 1] = 1.0;
            }
        }
    }
}

/// Orders level names by length first: a binary search over them then compares bytes only
/// between names of the customer's text's length.
fn by_length_then_bytes(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Tells whether a raw value means "no value" (explicitly missing, or a blank-like text).
pub fn is_missing(value: Value<'_>) -> bool {
    match value {
        Value::Missing => true,
        Value::Text(text) => is_missing_token(text),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Reads a numeric feature's value: `None` for missing, an error naming the feature otherwise.
/// A yes/no flag is not a number: a caller sending one has the wrong feature or the wrong type.
pub fn read_number(feature: &str, value: Value<'_>) -> Result<Option<f64>> {
    let number = match value {
        Value::Missing => return Ok(None),
        Value::Number(number) => number,
        Value::Bool(flag) => {
            return Err(CoreError::NotNumeric {
                feature: feature.to_string(),
                value: flag.to_string(),
            });
        }
        Value::Text(text) if is_missing_token(text) => return Ok(None),
        Value::Text(text) => match parse_number_token(text) {
            Some(number) => number,
            None => {
                return Err(CoreError::NotNumeric {
                    feature: feature.to_string(),
                    value: text.to_string(),
                });
            }
        },
    };
    if !number.is_finite() {
        return Err(CoreError::NonFinite {
            feature: feature.to_string(),
            value: number.to_string(),
        });
    }
    Ok(Some(number))
}

/// Reads a boolean feature's value: `None` for missing, an error naming the feature otherwise.
pub fn read_bool(feature: &str, value: Value<'_>) -> Result<Option<bool>> {
    let not_boolean = |shown: String| CoreError::NotBoolean {
        feature: feature.to_string(),
        value: shown,
    };
    match value {
        Value::Missing => Ok(None),
        Value::Bool(flag) => Ok(Some(flag)),
        Value::Number(0.0) => Ok(Some(false)),
        Value::Number(1.0) => Ok(Some(true)),
        Value::Number(number) => Err(not_boolean(number.to_string())),
        Value::Text(text) if is_missing_token(text) => Ok(None),
        Value::Text(text) => parse_bool_token(text)
            .map(Some)
            .ok_or_else(|| not_boolean(text.to_string())),
    }
}

/// Reads a categorical feature's level: `None` for missing. Numbers and booleans are written out
/// as text, so a CRM sending `2` for a level `"2"` is understood.
pub fn read_level(value: Value<'_>) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match value {
        Value::Missing => None,
        Value::Text(text) if is_missing_token(text) => None,
        Value::Text(text) => Some(Cow::Borrowed(trim(text))),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        Value::Bool(flag) => Some(Cow::Owned(flag.to_string())),
    }
}

fn known_levels(levels: &[String], rare_levels: &[String]) -> String {
    const SHOWN: usize = 10;
    let all: Vec<&str> = levels
        .iter()
        .chain(rare_levels)
        .map(String::as_str)
        .collect();
    let mut known = all
        .iter()
        .take(SHOWN)
        .map(|level| format!("`{level}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if all.len() > SHOWN {
        known.push_str(&format!(" and {} more", all.len() - SHOWN));
    }
    known
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::FeatureSpec;

    /// tenure (numeric, missing indicator), Partner (boolean), Contract (categorical with a rare
    /// level and a missing column). Encoded columns: tenure, tenure missing, Partner,
    /// Contract=Month-to-month, Contract=Two year, Contract=other, Contract missing.
    pub(crate) fn fixture() -> (FeatureSchema, Preprocessor) {
        let schema = FeatureSchema {
            target: "Churn".into(),
            positive_class: "Yes".into(),
            id: None,
            features: vec![
                FeatureSpec {
                    name: "tenure".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureSpec {
                    name: "Partner".into(),
                    kind: FeatureKind::Boolean,
                },
                FeatureSpec {
                    name: "Contract".into(),
                    kind: FeatureKind::Categorical,
                },
            ],
        };
        let preprocessor = Preprocessor {
            style: EncodingStyle::OneHot,
            features: vec![
                FeatureEncoding::Numeric {
                    name: "tenure".into(),
                    impute: 29.0,
                    missing_indicator: true,
                    min: 0.0,
                    max: 72.0,
                },
                FeatureEncoding::Boolean {
                    name: "Partner".into(),
                    impute: false,
                    missing_indicator: false,
                },
                FeatureEncoding::Categorical {
                    name: "Contract".into(),
                    levels: vec!["Month-to-month".into(), "Two year".into()],
                    rare_levels: vec!["One year".into()],
                    missing_indicator: true,
                },
            ],
            missing_refused: vec![],
        };
        (schema, preprocessor)
    }

    fn encode(values: [Value<'_>; 3]) -> Result<Vec<f64>> {
        let (schema, preprocessor) = fixture();
        let encoder = preprocessor.encoder(&schema)?;
        let mut out = vec![f64::NAN; encoder.columns().len()];
        encoder.encode_into(|index| Some(values[index]), &mut out)?;
        Ok(out)
    }

    #[test]
    fn encodes_each_kind_into_its_columns() {
        let row = encode([
            Value::Text("12"),
            Value::Text("Yes"),
            Value::Text("One year"),
        ])
        .unwrap();
        assert_eq!(row, vec![12.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn blanks_are_imputed_and_flagged() {
        let row = encode([Value::Text(" "), Value::Missing, Value::Missing]).unwrap();
        assert_eq!(row, vec![29.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn bad_values_name_the_feature_and_value() {
        let error = encode([
            Value::Text("twelve"),
            Value::Bool(true),
            Value::Text("Two year"),
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "feature `tenure`: value `twelve` is not a number"
        );

        let error = encode([
            Value::Number(f64::INFINITY),
            Value::Bool(true),
            Value::Text("Two year"),
        ])
        .unwrap_err();
        assert!(matches!(error, CoreError::NonFinite { ref feature, .. } if feature == "tenure"));

        let error = encode([
            Value::Number(3.0),
            Value::Text("maybe"),
            Value::Text("Two year"),
        ])
        .unwrap_err();
        assert!(matches!(error, CoreError::NotBoolean { ref value, .. } if value == "maybe"));

        let error =
            encode([Value::Number(3.0), Value::Bool(true), Value::Text("Weekly")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "feature `Contract`: unknown category `Weekly` (known: `Month-to-month`, `Two year`, `One year`)"
        );
    }

    #[test]
    fn levels_are_found_whatever_their_length_and_order() {
        let (schema, mut preprocessor) = fixture();
        preprocessor.style = EncodingStyle::Codes;
        let levels = ["b", "aa", "a", "ab", "Month-to-month", "B", "ba", "bbb"];
        preprocessor.features[2] = FeatureEncoding::Categorical {
            name: "Contract".into(),
            levels: levels.iter().map(|level| level.to_string()).collect(),
            rare_levels: vec!["c".into(), "a".into()],
            missing_indicator: false,
        };
        let encoder = preprocessor.encoder(&schema).unwrap();
        let code_of = |level: &str| {
            let values = [Value::Number(1.0), Value::Bool(true), Value::Text(level)];
            let mut out = [0.0; 3];
            encoder
                .encode_into(|index| Some(values[index]), &mut out)
                .map(|()| out[2])
        };
        // `a` is also listed as rare, later: the later position wins, as it always has.
        let expected = [0.0, 1.0, 8.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        for (level, code) in levels.iter().zip(expected) {
            assert_eq!(code_of(level).unwrap(), code, "{level}");
            assert_eq!(
                code_of(&format!(" {level} ")).unwrap(),
                code,
                "{level} with spaces"
            );
        }
        assert_eq!(code_of("c").unwrap(), 8.0);
        assert!(code_of("").unwrap().is_nan(), "blank is missing");
        for unknown in ["bb", "abc", "A", "Month-to-mont", "Month-to-monthh"] {
            assert!(
                matches!(code_of(unknown), Err(CoreError::UnknownCategory { ref value, .. }) if value == unknown),
                "{unknown}"
            );
        }
    }

    #[test]
    fn codes_style_gives_one_column_per_feature_and_keeps_blanks_missing() {
        let (schema, mut preprocessor) = fixture();
        preprocessor.style = EncodingStyle::Codes;
        let encoder = preprocessor.encoder(&schema).unwrap();
        assert_eq!(encoder.categorical_columns(), vec![false, false, true]);
        let mut out = vec![0.0; 3];
        let values = [
            Value::Text("12"),
            Value::Text("yes"),
            Value::Text("One year"),
        ];
        encoder
            .encode_into(|index| Some(values[index]), &mut out)
            .unwrap();
        // `One year` is rare: it shares the code after the two levels.
        assert_eq!(out, vec![12.0, 1.0, 2.0]);
        encoder
            .encode_into(|_| Some(Value::Missing), &mut out)
            .unwrap();
        assert!(out.iter().all(|code| code.is_nan()));
        let values = [
            Value::Number(1.0),
            Value::Bool(false),
            Value::Text("Weekly"),
        ];
        let error = encoder
            .encode_into(|index| Some(values[index]), &mut out)
            .unwrap_err();
        assert!(matches!(error, CoreError::UnknownCategory { ref value, .. } if value == "Weekly"));
    }

    #[test]
    fn a_row_without_a_feature_is_refused() {
        let (schema, preprocessor) = fixture();
        let encoder = preprocessor.encoder(&schema).unwrap();
        let mut out = vec![0.0; encoder.columns().len()];
        let error = encoder
            .encode_into(|index| (index != 1).then_some(Value::Number(1.0)), &mut out)
            .unwrap_err();
        assert_eq!(
            error,
            CoreError::MissingFeature {
                name: "Partner".into()
            }
        );
    }

    #[test]
    fn a_blank_is_refused_where_training_never_had_one() {
        let (schema, mut preprocessor) = fixture();
        preprocessor.missing_refused = vec!["Contract".into()];
        let encoder = preprocessor.encoder(&schema).unwrap();
        assert!(encoder.allows_missing(0));
        assert!(!encoder.allows_missing(2));
        let mut out = vec![0.0; encoder.columns().len()];
        for blank in [Value::Missing, Value::Text(" NA ")] {
            let values = [Value::Missing, Value::Missing, blank];
            let error = encoder
                .encode_into(|index| Some(values[index]), &mut out)
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                "feature `Contract`: a value is required (training data always had one)"
            );
        }

        preprocessor.missing_refused = vec!["Plan".into()];
        let error = preprocessor.encoder(&schema).unwrap_err();
        assert!(
            matches!(error, CoreError::InvalidArtifact { ref reason } if reason.contains("`Plan`"))
        );
    }

    #[test]
    fn a_flag_is_not_a_number() {
        let error = encode([Value::Bool(true), Value::Bool(true), Value::Missing]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "feature `tenure`: value `true` is not a number"
        );
    }
}
