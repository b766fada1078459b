//! Scoring a whole table with a model: columns matched to the schema once, rows explained one by
//! one through `churn-core`, so a table scores exactly as the same profiles would online.

use churn_core::{Explanation, Scorer, Value};

use crate::error::Result;
use crate::table::Table;

/// One scored row: its 1-based row number, its id, and its explanation or why it failed.
#[derive(Debug)]
pub struct ScoredRow {
    /// 1-based row number in the table.
    pub row: usize,
    /// The customer id, or the 1-based row number when the row has none.
    pub id: String,
    /// The explanation, or why the row could not be scored.
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
        let id = row_id(table, id_column, row);
        let outcome =
            scorer.explain_values(|feature| Some(table.columns[columns[feature]].cells.value(row)));
        ScoredRow {
            row: row + 1,
            id,
            outcome,
        }
    }))
}

/// Returns each row of `table` as a profile of the named features, with its id (the id column's
/// value, or the 1-based row number). Fails up front if the table lacks one of the features.
pub fn table_profiles(
    table: &Table,
    features: &[String],
    id_column: Option<&str>,
) -> Result<Vec<(String, churn_core::Profile)>> {
    let columns = features
        .iter()
        .map(|name| table.column_index(name))
        .collect::<Result<Vec<_>>>()?;
    let id_column = id_column.and_then(|id| table.column_index(id).ok());
    Ok((0..table.n_rows)
        .map(|row| {
            let id = row_id(table, id_column, row);
            let profile = features
                .iter()
                .zip(&columns)
                .map(|(name, &column)| {
                    (
                        name.clone(),
                        table.columns[column].cells.value(row).to_raw(),
                    )
                })
                .collect();
            (id, profile)
        })
        .collect())
}

/// Returns a row's id: the id column's value, or the 1-based row number when there is none.
fn row_id(table: &Table, id_column: Option<usize>, row: usize) -> String {
    match id_column.map(|column| table.columns[column].cells.value(row)) {
        Some(Value::Missing) | None => (row + 1).to_string(),
        Some(value) => value.to_string().trim().to_string(),
    }
}
