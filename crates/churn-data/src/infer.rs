//! Deciding each column's kind, and which columns are no features at all.
//!
//! Rules, in order, on the non-missing cells of a column:
//! - booleans, or text that all reads as yes/no, true/false, y/n or 1/0 (any case): **boolean**;
//! - at least 98% read as numbers (like Telco's `TotalCharges`, blank for new customers):
//!   **numeric**, with the rest treated as missing;
//! - anything else: **categorical**.
//!
//! Columns are excluded, with the reason kept for the model card, when they are all missing,
//! constant, or id-like (every value distinct: text with ≥ 20 values, or integers with ≥ 100).

use std::collections::HashSet;

use churn_core::FeatureKind;
use churn_core::value::{is_missing_token, parse_bool_token, parse_number_token};

use crate::table::Cells;

/// Share of non-missing cells that must read as numbers for a text column to be numeric.
pub const NUMERIC_SHARE: f64 = 0.98;
const ID_MIN_TEXT_VALUES: usize = 20;
const ID_MIN_INTEGER_VALUES: usize = 100;

/// What inference decided for one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Inferred {
    /// A feature of this kind.
    Feature(FeatureKind),
    /// Not a feature, with why.
    Excluded(String),
}

/// Infers a column's kind from its cells.
pub fn infer_kind(cells: &Cells) -> Inferred {
    match cells {
        Cells::Bool(values) => {
            if values.iter().all(Option::is_none) {
                return Inferred::Excluded("all values missing".into());
            }
            Inferred::Feature(FeatureKind::Boolean)
        }
        Cells::Number(values) => {
            let present: Vec<f64> = values.iter().flatten().copied().collect();
            infer_numbers(&present)
        }
        Cells::Text(values) => {
            let present: Vec<&str> = values
                .iter()
                .flatten()
                .map(String::as_str)
                .filter(|text| !is_missing_token(text))
                .collect();
            infer_texts(&present)
        }
    }
}

fn infer_numbers(present: &[f64]) -> Inferred {
    if present.is_empty() {
        return Inferred::Excluded("all values missing".into());
    }
    let distinct: HashSet<u64> = present.iter().map(|value| value.to_bits()).collect();
    if distinct.len() == 1 {
        return Inferred::Excluded("constant".into());
    }
    if present.iter().all(|&value| value == 0.0 || value == 1.0) {
        return Inferred::Feature(FeatureKind::Boolean);
    }
    let all_integers = present.iter().all(|value| value.fract() == 0.0);
    if all_integers && present.len() >= ID_MIN_INTEGER_VALUES && distinct.len() == present.len() {
        return Inferred::Excluded("id-like: every value is a distinct integer".into());
    }
    Inferred::Feature(FeatureKind::Numeric)
}

fn infer_texts(present: &[&str]) -> Inferred {
    if present.is_empty() {
        return Inferred::Excluded("all values missing".into());
    }
    let flags: Option<HashSet<bool>> = present.iter().map(|text| parse_bool_token(text)).collect();
    if let Some(flags) = flags {
        if flags.len() == 1 {
            return Inferred::Excluded("constant".into());
        }
        return Inferred::Feature(FeatureKind::Boolean);
    }
    let distinct: HashSet<&str> = present.iter().map(|text| text.trim()).collect();
    // Infinities count as numbers here so that the column stays numeric and the bad cell is
    // refused by row when the column is read (see `dataset::typed_cells`).
    let numbers: Vec<f64> = present
        .iter()
        .filter_map(|text| parse_number_token(text))
        .collect();
    if numbers.len() as f64 >= NUMERIC_SHARE * present.len() as f64 {
        return infer_numbers(&numbers);
    }
    if distinct.len() == 1 {
        return Inferred::Excluded("constant".into());
    }
    if present.len() >= ID_MIN_TEXT_VALUES && distinct.len() == present.len() {
        return Inferred::Excluded("id-like: every value is distinct".into());
    }
    Inferred::Feature(FeatureKind::Categorical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(values: &[&str]) -> Cells {
        Cells::Text(values.iter().map(|value| Some(value.to_string())).collect())
    }

    #[test]
    fn yes_no_and_zero_one_columns_are_boolean() {
        assert_eq!(
            infer_kind(&texts(&["Yes", "No", "", "yes"])),
            Inferred::Feature(FeatureKind::Boolean)
        );
        assert_eq!(
            infer_kind(&Cells::Number(vec![Some(0.0), Some(1.0), None])),
            Inferred::Feature(FeatureKind::Boolean)
        );
    }

    #[test]
    fn mostly_numeric_text_is_numeric() {
        // 99 numbers and a blank, like Telco's TotalCharges.
        let mut values: Vec<String> = (0..99).map(|i| format!("{}.5", i * 3)).collect();
        values.push(" ".into());
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        assert_eq!(
            infer_kind(&texts(&refs)),
            Inferred::Feature(FeatureKind::Numeric)
        );
        // 90% numbers is not enough.
        let mut values: Vec<String> = (0..9).map(|i| i.to_string()).collect();
        values.push("many".into());
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        assert_eq!(
            infer_kind(&texts(&refs)),
            Inferred::Feature(FeatureKind::Categorical)
        );
    }

    #[test]
    fn id_like_and_constant_columns_are_excluded() {
        let ids: Vec<String> = (0..25).map(|i| format!("{i:04}-ABCD")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert!(
            matches!(infer_kind(&texts(&refs)), Inferred::Excluded(reason) if reason.starts_with("id-like"))
        );

        let row_numbers = Cells::Number((1..=150).map(|i| Some(f64::from(i))).collect());
        assert!(
            matches!(infer_kind(&row_numbers), Inferred::Excluded(reason) if reason.starts_with("id-like"))
        );

        assert_eq!(
            infer_kind(&texts(&["a", "a", "a"])),
            Inferred::Excluded("constant".into())
        );
        assert_eq!(
            infer_kind(&texts(&["", "NA"])),
            Inferred::Excluded("all values missing".into())
        );
    }
}
