//! A training dataset: the feature columns typed by kind, the labels, and what was left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::encoding::read_bool;
use churn_core::value::{is_missing_token, parse_number_token};
use churn_core::{FeatureKind, FeatureSchema, FeatureSpec, Value};

use crate::error::{DataError, Result};
use crate::infer::{Inferred, infer_kind};
use crate::labels::{Labels, resolve_labels};
use crate::table::{Cells, Table, TableColumn, read_table};

/// What to learn from a table: the target and how to treat the other columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingSpec {
    /// The column saying whether the customer churned.
    pub target: String,
    /// The target value that means churn; inferred when the target has two values.
    pub positive: Option<String>,
    /// The customer id column, when there is one; never a feature.
    pub id: Option<String>,
    /// Columns that are not features.
    pub ignore: Vec<String>,
    /// When given, the only columns considered as features (an explicit schema); kinds are still
    /// inferred unless forced in `kinds`.
    pub features: Option<Vec<String>>,
    /// Kinds forced for some columns, overriding inference.
    pub kinds: BTreeMap<String, FeatureKind>,
}

/// Where the data came from.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    /// The file (or folder of event tables) read.
    pub path: PathBuf,
    /// SHA-256 of the bytes read, hex.
    pub sha256: String,
    /// The number of rows.
    pub rows: usize,
}

/// Feature columns typed by kind (numeric as numbers, boolean as booleans, categorical as
/// trimmed text), in schema order, with the labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The features, in column order.
    pub schema: FeatureSchema,
    /// One column of cells per schema feature.
    pub columns: Vec<Cells>,
    /// Per row: whether the customer churned.
    pub labels: Labels,
    /// Customer ids, when the spec names an id column.
    pub ids: Option<Vec<String>>,
    /// Columns that are not features, with why.
    pub excluded: BTreeMap<String, String>,
    /// Where the data came from.
    pub source: DataSource,
}

impl Dataset {
    /// Returns the number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.churned.len()
    }

    /// Returns the value of schema feature `feature` at `row`.
    pub fn value(&self, feature: usize, row: usize) -> Value<'_> {
        self.columns[feature].value(row)
    }
}

/// Reads a file and prepares it for training.
pub fn load_training_data(path: &Path, spec: &TrainingSpec) -> Result<Dataset> {
    let table = read_table(path)?;
    prepare_dataset(&table, spec)
}

/// Prepares a table for training: labels, kinds, typed columns.
pub fn prepare_dataset(table: &Table, spec: &TrainingSpec) -> Result<Dataset> {
    let target = table.column(&spec.target)?;
    let labels = resolve_labels(&table.path, target, spec.positive.as_deref())?;
    let listed = spec.features.iter().flatten();
    for name in spec
        .id
        .iter()
        .chain(&spec.ignore)
        .chain(spec.kinds.keys())
        .chain(listed)
    {
        table.column_index(name)?;
    }
    let ids = spec
        .id
        .as_deref()
        .map(|id| -> Result<Vec<String>> {
            let cells = &table.column(id)?.cells;
            Ok((0..table.n_rows)
                .map(|row| match cells.value(row) {
                    Value::Missing => String::new(),
                    value => value.to_string().trim().to_string(),
                })
                .collect())
        })
        .transpose()?;

    let mut features = Vec::new();
    let mut columns = Vec::new();
    let mut excluded = BTreeMap::new();
    for column in &table.columns {
        let name = column.name.as_str();
        if name == spec.target || spec.id.as_deref() == Some(name) {
            continue;
        }
        if spec.ignore.iter().any(|ignored| ignored == name) {
            excluded.insert(name.to_string(), "ignored as asked".to_string());
            continue;
        }
        if let Some(listed) = &spec.features
            && !listed.iter().any(|feature| feature == name)
        {
            excluded.insert(
                name.to_string(),
                "not in the given feature list".to_string(),
            );
            continue;
        }
        let (kind, forced) = match spec.kinds.get(name) {
            Some(kind) => (*kind, true),
            None => match infer_kind(&column.cells) {
                Inferred::Feature(kind) => (kind, false),
                Inferred::Excluded(reason) => {
                    tracing::warn!(column = name, reason, "column is not used as a feature");
                    excluded.insert(name.to_string(), reason);
                    continue;
                }
            },
        };
        columns.push(typed_cells(&table.path, column, kind, forced)?);
        features.push(FeatureSpec {
            name: name.to_string(),
            kind,
        });
    }
    if features.is_empty() {
        return Err(DataError::NoFeatures {
            path: table.path.clone(),
            excluded: excluded
                .iter()
                .map(|(name, reason)| format!("`{name}`: {reason}"))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(Dataset {
        schema: FeatureSchema {
            target: spec.target.clone(),
            positive_class: labels.positive_class.clone(),
            id: spec.id.clone(),
            features,
        },
        columns,
        labels,
        ids,
        excluded,
        source: DataSource {
            path: table.path.clone(),
            sha256: table.sha256.clone(),
            rows: table.n_rows,
        },
    })
}

/// Converts a column to its kind's cell type. Text that is not a number in an inferred numeric
/// column becomes missing (inference allowed up to 2% of it); in a column whose kind was forced,
/// and for infinities anywhere, it is an error naming the row.
fn typed_cells(
    path: &Path,
    column: &TableColumn,
    kind: FeatureKind,
    forced: bool,
) -> Result<Cells> {
    let invalid = |row: usize, reason: String| DataError::InvalidValue {
        path: path.to_path_buf(),
        row: row + 1,
        column: column.name.clone(),
        reason,
    };
    let n_rows = column.cells.len();
    match kind {
        FeatureKind::Numeric => {
            let mut numbers = Vec::with_capacity(n_rows);
            let mut dropped = 0;
            for row in 0..n_rows {
                let number = match column.cells.value(row) {
                    Value::Missing => None,
                    Value::Bool(flag) => Some(f64::from(u8::from(flag))),
                    Value::Number(number) if number.is_nan() => None,
                    Value::Number(number) => Some(number),
                    Value::Text(text) if is_missing_token(text) => None,
                    Value::Text(text) => match parse_number_token(text) {
                        Some(number) => Some(number),
                        None if forced => {
                            return Err(invalid(row, format!("`{text}` is not a number")));
                        }
                        None => {
                            dropped += 1;
                            None
                        }
                    },
                };
                if let Some(number) = number
                    && !number.is_finite()
                {
                    return Err(invalid(row, format!("`{number}` is not a finite number")));
                }
                numbers.push(number);
            }
            if dropped > 0 {
                tracing::warn!(
                    column = column.name,
                    dropped,
                    "non-numeric values in a numeric column are treated as missing"
                );
            }
            Ok(Cells::Number(numbers))
        }
        FeatureKind::Boolean => (0..n_rows)
            .map(|row| match column.cells.value(row) {
                // A NaN in a typed Parquet column is a missing value, as for numeric columns.
                Value::Number(number) if number.is_nan() => Ok(None),
                value => read_bool(&column.name, value)
                    .map_err(|_| invalid(row, format!("`{value}` is not a boolean"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Cells::Bool),
        FeatureKind::Categorical => Ok(Cells::Text(
            (0..n_rows)
                .map(|row| match column.cells.value(row) {
                    Value::Missing => None,
                    Value::Text(text) if is_missing_token(text) => None,
                    Value::Number(number) if number.is_nan() => None,
                    value => Some(value.to_string().trim().to_string()),
                })
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Booleans written as `1.0`/`0.0` or `True.`/`False.` were inferred boolean (or could be
    /// forced so) but then refused when the column was read; they read through core's parser now.
    #[test]
    fn boolean_columns_in_every_spelling_are_read() {
        let text = |values: &[&str]| {
            Cells::Text(values.iter().map(|value| Some(value.to_string())).collect())
        };
        let table = Table {
            path: PathBuf::from("t.csv"),
            sha256: String::new(),
            n_rows: 4,
            columns: vec![
                TableColumn {
                    name: "autopay".into(),
                    cells: text(&["1.0", "0.0", "", "1.0"]),
                },
                TableColumn {
                    name: "paperless".into(),
                    cells: text(&["True.", "False.", "True.", "False."]),
                },
                TableColumn {
                    name: "Churn".into(),
                    cells: text(&["Yes", "No", "No", "Yes"]),
                },
            ],
        };
        let spec = TrainingSpec {
            target: "Churn".into(),
            ..TrainingSpec::default()
        };
        let dataset = prepare_dataset(&table, &spec).unwrap();
        let kinds: Vec<FeatureKind> = dataset.schema.features.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FeatureKind::Boolean, FeatureKind::Boolean]);
        assert_eq!(
            dataset.columns[0],
            Cells::Bool(vec![Some(true), Some(false), None, Some(true)])
        );
        assert_eq!(
            dataset.columns[1],
            Cells::Bool(vec![Some(true), Some(false), Some(true), Some(false)])
        );
    }
}
