//! Errors of the data crate. Each names the file, and the column and row where there is one.

use std::path::PathBuf;

/// Result alias of `churn-data`.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading a table or deriving labels and splits from it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}`: unsupported file type (expected .csv or .parquet)")]
    UnsupportedFormat { path: PathBuf },
    #[error("`{path}`: the file is empty")]
    EmptyFile { path: PathBuf },
    #[error("`{path}`: the file has a header but no rows")]
    NoRows { path: PathBuf },
    #[error(
        "`{path}` row {row} (line {line}): expected {expected} fields as in the header, found {found}"
    )]
    RaggedRow {
        path: PathBuf,
        row: usize,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("`{path}`: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("`{path}`: column `{column}` has unsupported type {dtype}")]
    UnsupportedColumnType {
        path: PathBuf,
        column: String,
        dtype: String,
    },
    #[error("`{path}`: no column `{column}` (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("`{path}` row {row}, column `{column}`: {reason}")]
    InvalidValue {
        path: PathBuf,
        row: usize,
        column: String,
        reason: String,
    },
    #[error(
        "target `{column}` has only one class `{value}`: a model needs churned and retained customers"
    )]
    SingleClassTarget { column: String, value: String },
    #[error(
        "target `{column}` has {count} values ({values}); name the churn value with --positive"
    )]
    AmbiguousTarget {
        column: String,
        count: usize,
        values: String,
    },
    #[error("target `{column}`: positive value `{positive}` never occurs (values: {values})")]
    UnknownPositive {
        column: String,
        positive: String,
        values: String,
    },
    #[error("`{path}`: no usable feature columns left (excluded: {excluded})")]
    NoFeatures { path: PathBuf, excluded: String },
    #[error("alert policy: {source}")]
    Policy { source: churn_core::CoreError },
    #[error("`{pattern}` matches no file")]
    NoInput { pattern: PathBuf },
    #[error("`{pattern}`: bad pattern: {reason}")]
    BadPattern { pattern: PathBuf, reason: String },
    #[error("the model names no customer id column; name it with --id COLUMN")]
    NoIdColumn,
    #[error("cannot write `{path}`: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("`{dir}`: no `{table}` table (expected {table}.parquet or {table}.csv)")]
    MissingTable { dir: PathBuf, table: &'static str },
    #[error("`{name}` = {value}: {reason}")]
    InvalidOption {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot split {rows} rows: {reason}")]
    Split { rows: usize, reason: String },
}
