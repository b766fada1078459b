//! Scoring a whole table with a model: columns matched to the schema once, rows explained one by
//! one through `churn-core`, so a table scores exactly as the same profiles would online.

use churn_core::{Explanation, Scorer, Value};

use crate::error::Result;
use crate::table::Table;

/// One scored row: its 1-based row number, its id, and its explanation or why it failed.
#[derive(Debug)]
pub struct ScoredRow {
    pub row: usize,
    pub id: String,
    pub outcome: churn_core::Result<Explanation>,
}

/// Explains every row of `table`; a bad row is reported in its `ScoredRow`, the rest go on.
/// Fails up front if the table lacks a column the model needs.
pub fn score_table<'a>(
    scorer: &'a Scorer,
    table: &'a Table,
) -> Result<impl Iterator<Item = ScoredRow> + 'a> {
    let columns = scorer
        .artifact()
        .schema
        .features
        .iter()
        .map(|feature| table.column_index(&feature.name))
        .collect::<Result<Vec<_>>>()?;
    let id_column = scorer
        .artifact()
        .schema
        .id
        .as_deref()
        .and_then(|id| table.column_index(id).ok());
    Ok((0..table.n_rows).map(move |row| {
        let id = match id_column.map(|column| table.columns[column].cells.value(row)) {
            Some(Value::Missing) | None => (row + 1).to_string(),
            Some(value) => value.to_string().trim().to_string(),
        };
        let outcome =
            scorer.explain_values(|feature| Some(table.columns[columns[feature]].cells.value(row)));
        ScoredRow {
            row: row + 1,
            id,
            outcome,
        }
    }))
}
