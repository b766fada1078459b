//! Errors of the data crate. Each names the file, and the column and row where there is one.
//!
//! A message names its cause once: an underlying error is the variant's `source`, which callers
//! show after the message (anyhow's `{:#}` prints `message: cause`), so no message repeats it.

use std::path::PathBuf;

/// Result alias of `churn-data`.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Everything that can go wrong while reading a table or deriving labels and splits from it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder cannot be read.
    #[error("cannot read `{path}`")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// A file or folder cannot be created.
    #[error("cannot create `{path}`")]
    Create {
        /// The file or folder.
        path: PathBuf,
        /// Why it cannot be created.
        source: std::io::Error,
    },
    /// A complete file cannot take its final name.
    #[error("cannot rename `{from}` to `{to}`")]
    Rename {
        /// The complete file, under its partial name.
        from: PathBuf,
        /// Its final name.
        to: PathBuf,
        /// Why it cannot be renamed.
        source: std::io::Error,
    },
    /// A file is neither CSV nor Parquet.
    #[error("`{path}`: unsupported file type (expected .csv or .parquet)")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// A file holds nothing but whitespace.
    #[error("`{path}`: the file is empty")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// A file has a header and no data row.
    #[error("`{path}`: the file has a header but no rows")]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// A CSV row has a different number of fields than the header.
    #[error(
        "`{path}` row {row} (line {line}): expected {expected} fields as in the header, found {found}"
    )]
    RaggedRow {
        /// The file.
        path: PathBuf,
        /// The row (1-based; the header is row 0).
        row: usize,
        /// The line of the file where the row starts (1-based).
        line: usize,
        /// The header's number of fields.
        expected: usize,
        /// The row's number of fields.
        found: usize,
    },
    /// A file cannot be parsed, or holds something it must not.
    #[error("`{path}`: {reason}")]
    Parse {
        /// The file (or the folder of event tables).
        path: PathBuf,
        /// What is wrong, with the row or column where there is one.
        reason: String,
    },
    /// A column has a type no feature can be read from.
    #[error("`{path}`: column `{column}` has unsupported type {dtype}")]
    UnsupportedColumnType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// Its type.
        dtype: String,
    },
    /// A column asked for is not in the file.
    #[error("`{path}`: no column `{column}` (columns: {available})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// The file's columns, quoted and comma-separated.
        available: String,
    },
    /// A cell holds a value its column cannot take.
    #[error("`{path}` row {row}, column `{column}`: {reason}")]
    InvalidValue {
        /// The file.
        path: PathBuf,
        /// The row (1-based).
        row: usize,
        /// The column.
        column: String,
        /// What is wrong with the value, naming it.
        reason: String,
    },
    /// The target column has a single value.
    #[error(
        "target `{column}` has only one class `{value}`: a model needs churned and retained customers"
    )]
    SingleClassTarget {
        /// The target column.
        column: String,
        /// Its only value.
        value: String,
    },
    /// The target column has more than two values and none is named the churn value.
    #[error(
        "target `{column}` has {count} values ({values}); name the churn value with --positive"
    )]
    AmbiguousTarget {
        /// The target column.
        column: String,
        /// How many values it has.
        count: usize,
        /// Its values, listed.
        values: String,
    },
    /// The churn value named does not occur in the target column.
    #[error("target `{column}`: positive value `{positive}` never occurs (values: {values})")]
    UnknownPositive {
        /// The target column.
        column: String,
        /// The churn value named.
        positive: String,
        /// The values that do occur.
        values: String,
    },
    /// Every column is the target, the id or ignored.
    #[error("`{path}`: no usable feature columns left (excluded: {excluded})")]
    NoFeatures {
        /// The file.
        path: PathBuf,
        /// The columns left out.
        excluded: String,
    },
    /// The alert policy of a rescoring run is out of range.
    #[error("invalid alert policy")]
    Policy {
        /// What is out of range.
        source: churn_core::CoreError,
    },
    /// An input argument matches no file.
    #[error("`{pattern}` matches no file")]
    NoInput {
        /// The argument: a file, folder or pattern.
        pattern: PathBuf,
    },
    /// An input pattern cannot be parsed or expanded.
    #[error("`{pattern}`: bad pattern: {reason}")]
    BadPattern {
        /// The pattern.
        pattern: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Rescoring needs a customer id column and neither the model nor the caller names one.
    #[error("model `{model}` names no customer id column; name it with --id COLUMN")]
    NoIdColumn {
        /// The model's name.
        model: String,
    },
    /// An output file cannot be written.
    #[error("cannot write `{path}`: {reason}")]
    Write {
        /// The file, by its final name.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A folder of event tables lacks one.
    #[error("`{dir}`: no `{table}` table (expected {table}.parquet or {table}.csv)")]
    MissingTable {
        /// The folder.
        dir: PathBuf,
        /// The table missing.
        table: &'static str,
    },
    /// An option is out of its range.
    #[error("`{name}` = {value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// Rows cannot be split as asked.
    #[error("cannot split {rows} rows: {reason}")]
    Split {
        /// How many rows there are.
        rows: usize,
        /// Why they cannot be split.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use crate::chunks::ChunkedReader;
    use crate::table::read_table;

    /// Shows an error as the binaries do: through anyhow, with `{:#}`, which appends the chain of
    /// sources.
    fn shown(error: super::DataError) -> String {
        format!("{:#}", anyhow::Error::from(error))
    }

    /// Issue 32: a missing file printed `cannot read `…`: No such file or directory (os error 2):
    /// No such file or directory (os error 2)`, its cause twice.
    #[test]
    fn an_unreadable_csv_says_its_file_and_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        let not_found = std::io::Error::from_raw_os_error(2).to_string();

        let missing = dir.path().join("missing.csv");
        let expected = format!("cannot read `{}`: {not_found}", missing.display());
        assert_eq!(shown(read_table(&missing).unwrap_err()), expected);
        let error = ChunkedReader::open(&missing, &[], 10).unwrap_err();
        assert_eq!(shown(error), expected);

        let truncated = dir.path().join("truncated.csv");
        std::fs::write(&truncated, "a,b,c\n1,2,3\n4,5").unwrap();
        assert_eq!(
            shown(read_table(&truncated).unwrap_err()),
            format!(
                "`{}` row 2 (line 3): expected 3 fields as in the header, found 2",
                truncated.display()
            )
        );

        let open_quote = dir.path().join("open_quote.csv");
        std::fs::write(&open_quote, "a,b\n1,\"x\n2,y\n").unwrap();
        assert_eq!(
            shown(read_table(&open_quote).unwrap_err()),
            format!(
                "`{}`: row 1 (line 2): a quote opened here is never closed",
                open_quote.display()
            )
        );
    }
}
