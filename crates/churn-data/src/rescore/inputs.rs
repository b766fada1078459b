//! What a run reads: input arguments expanded to files, and the columns read from each.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use churn_core::Scorer;

use super::RescoreOptions;
use crate::error::{DataError, Result};

/// Expands input arguments: a file as is, a folder to its `.csv` and `.parquet` files, a glob
/// pattern to its matches, each folder and pattern in sorted order, a file named twice kept
/// once. Fails on an argument that matches nothing, so a mistyped partition path does not
/// silently score nothing.
pub fn expand_inputs(arguments: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut inputs = Vec::new();
    let mut seen = HashSet::new();
    for argument in arguments {
        let text = argument.to_string_lossy();
        let mut matches: Vec<PathBuf> = if argument.is_dir() {
            let io_error = |source| DataError::Io {
                path: argument.clone(),
                source,
            };
            let mut files = Vec::new();
            for entry in std::fs::read_dir(argument).map_err(io_error)? {
                let path = entry.map_err(io_error)?.path();
                if path.is_file() && is_table_file(&path) {
                    files.push(path);
                }
            }
            files
        } else if text.contains(['*', '?', '[']) {
            let pattern = glob::glob(&text).map_err(|error| DataError::BadPattern {
                pattern: argument.clone(),
                reason: error.to_string(),
            })?;
            let mut files = Vec::new();
            for entry in pattern {
                let path = entry.map_err(|error| DataError::BadPattern {
                    pattern: argument.clone(),
                    reason: error.to_string(),
                })?;
                if path.is_file() {
                    files.push(path);
                }
            }
            files
        } else {
            vec![argument.clone()]
        };
        if matches.is_empty() {
            return Err(DataError::NoInput {
                pattern: argument.clone(),
            });
        }
        matches.sort();
        for path in matches {
            let identity = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(identity) {
                inputs.push(path);
            }
        }
    }
    Ok(inputs)
}

fn is_table_file(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            ["csv", "parquet", "pq"]
                .iter()
                .any(|known| extension.eq_ignore_ascii_case(known))
        })
}

/// The columns a run reads from each input: the model's features in schema order, then the
/// customer id, then the alert policy's value column (each only once).
pub(super) struct ColumnPlan {
    pub(super) columns: Vec<String>,
    pub(super) id_column: String,
    /// Where the id column is in `columns`.
    pub(super) id: usize,
    /// Where the policy's value column is in `columns`, when there is one.
    pub(super) value: Option<usize>,
}

impl ColumnPlan {
    pub(super) fn new(scorer: &Scorer, options: &RescoreOptions) -> Result<Self> {
        let schema = &scorer.artifact().schema;
        let id_column = options
            .id_column
            .clone()
            .or_else(|| schema.id.clone())
            .ok_or_else(|| DataError::NoIdColumn {
                model: scorer.artifact().name.clone(),
            })?;
        let mut columns: Vec<String> = schema
            .features
            .iter()
            .map(|feature| feature.name.clone())
            .collect();
        let id = position_or_push(&mut columns, &id_column);
        let value = options
            .alerts
            .as_ref()
            .and_then(|alerts| alerts.policy.value_feature.as_ref())
            .map(|value| position_or_push(&mut columns, value));
        Ok(ColumnPlan {
            columns,
            id_column,
            id,
            value,
        })
    }
}

/// Returns the position of `name` in `columns`, appending it first if absent.
fn position_or_push(columns: &mut Vec<String>, name: &str) -> usize {
    match columns.iter().position(|column| column == name) {
        Some(position) => position,
        None => {
            columns.push(name.to_string());
            columns.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_expand_folders_and_patterns_in_order_once_and_refuse_empty_matches() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["part-2.csv", "part-1.csv", "notes.txt", "x.parquet"] {
            std::fs::write(dir.path().join(name), "a\n1\n").unwrap();
        }
        let expanded =
            expand_inputs(&[dir.path().to_path_buf(), dir.path().join("part-1.csv")]).unwrap();
        let names: Vec<_> = expanded
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["part-1.csv", "part-2.csv", "x.parquet"]);
        let pattern = dir.path().join("part-*.csv");
        assert_eq!(expand_inputs(&[pattern]).unwrap().len(), 2);
        let nothing = dir.path().join("nope-*.csv");
        let error = expand_inputs(&[nothing]).unwrap_err();
        assert!(error.to_string().contains("matches no file"), "{error}");
    }
}
