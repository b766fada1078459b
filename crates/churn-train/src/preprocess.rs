//! Learning the [`Preprocessor`] from training rows, and encoding rows into a matrix with it.

use std::collections::{BTreeSet, HashMap};

use churn_core::{Encoder, EncodingStyle, FeatureEncoding, FeatureKind, Preprocessor};
use churn_data::{Cells, Dataset};
use ndarray::Array2;

use crate::error::{Result, TrainError};

/// Most levels a categorical feature gets columns for; the rest share `other`.
const MAX_LEVEL_COLUMNS: usize = 50;

/// Learns imputation values, ranges and category levels from the rows `rows` of `dataset`.
///
/// Every level present anywhere in the column is known (so evaluation rows never hit an unknown
/// category), but only levels frequent among `rows` get a column of their own; that uses no label.
pub fn fit_preprocessor(dataset: &Dataset, rows: &[usize], style: EncodingStyle) -> Preprocessor {
    // Trees see blanks as missing values, so they need no indicator columns.
    let indicators = style == EncodingStyle::OneHot;
    let min_level_count = (rows.len() / 100).clamp(1, 10);
    let features = dataset
        .schema
        .features
        .iter()
        .zip(&dataset.columns)
        .map(|(spec, cells)| {
            let name = spec.name.clone();
            match (spec.kind, cells) {
                (FeatureKind::Numeric, Cells::Number(values)) => {
                    let mut present: Vec<f64> =
                        rows.iter().filter_map(|&row| values[row]).collect();
                    present.sort_by(f64::total_cmp);
                    FeatureEncoding::Numeric {
                        name,
                        impute: median(&present),
                        missing_indicator: indicators && present.len() < rows.len(),
                        min: present.first().copied().unwrap_or(0.0),
                        max: present.last().copied().unwrap_or(0.0),
                    }
                }
                (FeatureKind::Boolean, Cells::Bool(values)) => {
                    let present: Vec<bool> = rows.iter().filter_map(|&row| values[row]).collect();
                    let trues = present.iter().filter(|&&flag| flag).count();
                    FeatureEncoding::Boolean {
                        name,
                        impute: 2 * trues > present.len(),
                        missing_indicator: indicators && present.len() < rows.len(),
                    }
                }
                (_, cells) => categorical_encoding(name, cells, rows, min_level_count, indicators),
            }
        })
        .collect();
    // Over every row, like the known levels: evaluation rows must not hit a refusal.
    let missing_refused = dataset
        .schema
        .features
        .iter()
        .zip(&dataset.columns)
        .filter(|(_, cells)| {
            !(0..cells.len()).any(|row| churn_core::encoding::is_missing(cells.value(row)))
        })
        .map(|(spec, _)| spec.name.clone())
        .collect();
    Preprocessor {
        style,
        features,
        missing_refused,
    }
}

fn categorical_encoding(
    name: String,
    cells: &Cells,
    rows: &[usize],
    min_level_count: usize,
    indicators: bool,
) -> FeatureEncoding {
    let level_at = |row: usize| match cells.value(row) {
        churn_core::Value::Missing => None,
        value => Some(value.to_string()),
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut missing = 0;
    for &row in rows {
        match level_at(row) {
            Some(level) => *counts.entry(level).or_default() += 1,
            None => missing += 1,
        }
    }
    let mut frequent: Vec<(String, usize)> = counts
        .iter()
        .filter(|(_, count)| **count >= min_level_count)
        .map(|(level, count)| (level.clone(), *count))
        .collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    frequent.truncate(MAX_LEVEL_COLUMNS);
    let levels: Vec<String> = frequent.into_iter().map(|(level, _)| level).collect();
    let rare_levels: BTreeSet<String> = (0..cells.len())
        .filter_map(level_at)
        .filter(|level| !levels.contains(level))
        .collect();
    FeatureEncoding::Categorical {
        name,
        levels,
        rare_levels: rare_levels.into_iter().collect(),
        missing_indicator: indicators && missing > 0,
    }
}

/// Returns the median of sorted values (0 for none), averaging the middle pair like numpy.
fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Encodes the rows `rows` of `dataset` into a matrix, through the same encoder scoring uses.
pub fn encode_rows(encoder: &Encoder, dataset: &Dataset, rows: &[usize]) -> Result<Array2<f64>> {
    let width = encoder.columns().len();
    if width == 0 {
        return Err(TrainError::Fit {
            model: "any",
            reason: "no encoded columns".into(),
        });
    }
    let mut data = vec![0.0; rows.len() * width];
    for (out, &row) in data.chunks_exact_mut(width).zip(rows) {
        encoder
            .encode_into(|feature| Some(dataset.value(feature, row)), out)
            .map_err(|source| TrainError::Row {
                row: row + 1,
                source,
            })?;
    }
    Array2::from_shape_vec((rows.len(), width), data).map_err(|error| TrainError::Fit {
        model: "any",
        reason: format!("encoded matrix: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_numpy() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[1.0, 2.0, 10.0, 20.0]), 6.0);
    }
}
