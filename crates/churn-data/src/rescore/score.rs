//! Scoring a chunk's rows on every core: each row's customer id and score, or why it could not
//! be scored.

use churn_core::{RiskBand, Scorer, TopReasons, Value};
use rayon::prelude::*;

use super::inputs::ColumnPlan;
use crate::chunks::Chunk;

/// A scored row as written: its score, band, percentile and strongest reasons each way.
#[derive(Debug)]
pub(super) struct ScoredRow {
    pub(super) band: RiskBand,
    pub(super) percentile: f64,
    pub(super) top: TopReasons,
}

/// A row that could not be scored.
#[derive(Debug)]
pub(super) struct Reject {
    /// 1-based row number in its file.
    pub(super) row: usize,
    pub(super) customer_id: String,
    /// The column at fault, when one is.
    pub(super) feature: Option<String>,
    pub(super) reason: String,
}

/// Explains the rows of a chunk on all cores, in row order: each row's customer id and score, or
/// why it could not be scored (with its row number still to fill in).
pub(super) fn score_chunk(
    scorer: &Scorer,
    chunk: &Chunk,
    plan: &ColumnPlan,
    top_k: usize,
) -> Vec<std::result::Result<(String, ScoredRow), Reject>> {
    let table = &chunk.table;
    (0..table.n_rows)
        .into_par_iter()
        .map(|row| {
            let customer_id = match table.columns[plan.id].cells.value(row) {
                Value::Missing => String::new(),
                value => value.to_string().trim().to_string(),
            };
            if customer_id.is_empty() {
                return Err(Reject {
                    row: 0,
                    customer_id,
                    feature: Some(plan.id_column.clone()),
                    reason: format!("the customer id (column `{}`) is missing", plan.id_column),
                });
            }
            // The chunk's columns are the schema's features in order, then the others.
            match scorer.explain_values_top(
                |feature| Some(table.columns[feature].cells.value(row)),
                top_k,
            ) {
                Ok(top) => Ok((
                    customer_id,
                    ScoredRow {
                        band: scorer.band(top.probability),
                        percentile: scorer.percentile(top.probability),
                        top,
                    },
                )),
                Err(error) => Err(Reject {
                    row: 0,
                    feature: error.feature().map(str::to_string),
                    reason: error.to_string(),
                    customer_id,
                }),
            }
        })
        .collect()
}

/// Reads a customer value: a number, or text holding one.
pub(super) fn number_of(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Number(number) => Some(number),
        Value::Text(text) => text.trim().parse().ok(),
        Value::Bool(_) | Value::Missing => None,
    }
    .filter(|number: &f64| number.is_finite())
}

pub(super) fn band_index(band: RiskBand) -> usize {
    match band {
        RiskBand::Low => 0,
        RiskBand::Medium => 1,
        RiskBand::High => 2,
    }
}
