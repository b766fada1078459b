//! Reading the churn label out of the target column.
//!
//! With `--positive` the label is "target equals that value". Without it the target must have
//! exactly two values, and the churn value is, in order: the one reading as yes/true/1; the one
//! that names leaving (churn, churned, attrited, exited, left, cancelled, lost); else the rarer
//! one (churn is the minority in practice), with a warning.

use std::collections::BTreeMap;
use std::path::Path;

use churn_core::value::{is_missing_token, parse_bool_token};

use crate::error::{DataError, Result};
use crate::table::TableColumn;

const LEAVING_WORDS: [&str; 9] = [
    "churn",
    "churned",
    "attrited",
    "attrited customer",
    "exited",
    "left",
    "cancelled",
    "canceled",
    "lost",
];

/// The labels of a table and the target value that means churn.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    /// Per row: whether the customer churned.
    pub churned: Vec<bool>,
    /// The target value that means churn.
    pub positive_class: String,
}

impl Labels {
    /// Returns how many rows churned.
    pub fn positives(&self) -> usize {
        self.churned.iter().filter(|&&churned| churned).count()
    }
}

/// Derives churn labels from the target column.
pub fn resolve_labels(path: &Path, target: &TableColumn, positive: Option<&str>) -> Result<Labels> {
    let mut texts = Vec::with_capacity(target.cells.len());
    for row in 0..target.cells.len() {
        let value = target.cells.value(row);
        let text = value.to_string();
        let missing = matches!(value, churn_core::Value::Missing) || is_missing_token(&text);
        if missing {
            return Err(DataError::InvalidValue {
                path: path.to_path_buf(),
                row: row + 1,
                column: target.name.clone(),
                reason: "the target is missing; every training row needs a label".into(),
            });
        }
        texts.push(text.trim().to_string());
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for text in &texts {
        *counts.entry(text.as_str()).or_default() += 1;
    }
    let listed = || {
        counts
            .iter()
            .map(|(value, count)| format!("`{value}` ×{count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let positive_class = match positive {
        Some(wanted) => {
            let wanted = wanted.trim();
            let found = counts.keys().find(|value| **value == wanted).or_else(|| {
                counts
                    .keys()
                    .find(|value| value.eq_ignore_ascii_case(wanted))
            });
            match found {
                Some(value) => value.to_string(),
                None => {
                    return Err(DataError::UnknownPositive {
                        column: target.name.clone(),
                        positive: wanted.to_string(),
                        values: listed(),
                    });
                }
            }
        }
        None => infer_positive(&target.name, &counts, listed)?,
    };
    if counts.len() == 1 {
        return Err(DataError::SingleClassTarget {
            column: target.name.clone(),
            value: positive_class,
        });
    }
    let churned = texts.iter().map(|text| *text == positive_class).collect();
    Ok(Labels {
        churned,
        positive_class,
    })
}

fn infer_positive(
    column: &str,
    counts: &BTreeMap<&str, usize>,
    listed: impl Fn() -> String,
) -> Result<String> {
    let values: Vec<&str> = counts.keys().copied().collect();
    match values.as_slice() {
        [only] => Err(DataError::SingleClassTarget {
            column: column.to_string(),
            value: only.to_string(),
        }),
        [first, second] => {
            let truth = |value: &str| parse_bool_token(value);
            match (truth(first), truth(second)) {
                (Some(true), Some(false)) => return Ok(first.to_string()),
                (Some(false), Some(true)) => return Ok(second.to_string()),
                _ => {}
            }
            let leaving = |value: &str| {
                LEAVING_WORDS
                    .iter()
                    .any(|word| value.eq_ignore_ascii_case(word))
            };
            match (leaving(first), leaving(second)) {
                (true, false) => return Ok(first.to_string()),
                (false, true) => return Ok(second.to_string()),
                _ => {}
            }
            let (first_count, second_count) = (counts[first], counts[second]);
            if first_count == second_count {
                return Err(DataError::AmbiguousTarget {
                    column: column.to_string(),
                    count: 2,
                    values: listed(),
                });
            }
            let rarer = if first_count < second_count {
                first
            } else {
                second
            };
            tracing::warn!(
                target_column = column,
                positive = rarer,
                "no --positive given; taking the rarer target value as churn"
            );
            Ok(rarer.to_string())
        }
        _ => Err(DataError::AmbiguousTarget {
            column: column.to_string(),
            count: values.len(),
            values: listed(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Cells;

    fn column(values: &[&str]) -> TableColumn {
        TableColumn {
            name: "Churn".into(),
            cells: Cells::Text(values.iter().map(|value| Some(value.to_string())).collect()),
        }
    }

    fn positive_of(values: &[&str]) -> Result<String> {
        resolve_labels(Path::new("t.csv"), &column(values), None)
            .map(|labels| labels.positive_class)
    }

    #[test]
    fn the_churn_value_is_found_without_being_named() {
        assert_eq!(positive_of(&["No", "Yes", "No"]).unwrap(), "Yes");
        assert_eq!(positive_of(&["0", "1", "0"]).unwrap(), "1");
        assert_eq!(positive_of(&["False.", "True."]).unwrap(), "True.");
        assert_eq!(positive_of(&["1.0", "0.0", "1.0"]).unwrap(), "1.0");
        assert_eq!(
            positive_of(&[
                "Existing Customer",
                "Attrited Customer",
                "Existing Customer"
            ])
            .unwrap(),
            "Attrited Customer"
        );
        assert_eq!(positive_of(&["stay", "go", "stay"]).unwrap(), "go");
    }

    #[test]
    fn bad_targets_are_refused_with_their_values() {
        assert!(matches!(
            positive_of(&["No", "No"]),
            Err(DataError::SingleClassTarget { .. })
        ));
        let error = positive_of(&["a", "b", "c"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "target `Churn` has 3 values (`a` ×1, `b` ×1, `c` ×1); name the churn value with --positive"
        );
        let error =
            resolve_labels(Path::new("t.csv"), &column(&["Yes", "", "No"]), None).unwrap_err();
        assert!(matches!(error, DataError::InvalidValue { row: 2, .. }));
        let error = resolve_labels(Path::new("t.csv"), &column(&["Yes", "No"]), Some("Churned"))
            .unwrap_err();
        assert!(matches!(error, DataError::UnknownPositive { .. }));
    }

    #[test]
    fn an_explicit_positive_turns_many_values_into_one_versus_rest() {
        let labels = resolve_labels(
            Path::new("t.csv"),
            &column(&["a", "b", "c", "b"]),
            Some("b"),
        )
        .unwrap();
        assert_eq!(labels.churned, vec![false, true, false, true]);
    }
}
