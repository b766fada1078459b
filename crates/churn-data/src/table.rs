//! Reading CSV and Parquet files with polars into a [`Table`] of plain columns.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use churn_core::Value;
use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// The cells of one column, in the type the file gave them.
#[derive(Debug, Clone, PartialEq)]
pub enum Cells {
    /// Text cells (every CSV column arrives as text).
    Text(Vec<Option<String>>),
    /// Numbers.
    Number(Vec<Option<f64>>),
    /// Booleans.
    Bool(Vec<Option<bool>>),
}

impl Cells {
    /// Returns the cell at `row` as a raw value.
    pub fn value(&self, row: usize) -> Value<'_> {
        match self {
            Cells::Text(cells) => cells[row].as_deref().map_or(Value::Missing, Value::Text),
            Cells::Number(cells) => cells[row].map_or(Value::Missing, Value::Number),
            Cells::Bool(cells) => cells[row].map_or(Value::Missing, Value::Bool),
        }
    }

    /// Returns the number of cells.
    pub fn len(&self) -> usize {
        match self {
            Cells::Text(cells) => cells.len(),
            Cells::Number(cells) => cells.len(),
            Cells::Bool(cells) => cells.len(),
        }
    }

    /// Tells whether the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    /// The column's name in the header.
    pub name: String,
    /// Its cells, one per row.
    pub cells: Cells,
}

/// A table read from a file: CSV columns arrive as text, Parquet columns in their stored type.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file read.
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// The number of rows (the header is not a row).
    pub n_rows: usize,
    /// The columns, in file order.
    pub columns: Vec<TableColumn>,
}

impl Table {
    /// Returns the index of the column with this name.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|column| column.name == name)
            .ok_or_else(|| DataError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                available: self
                    .columns
                    .iter()
                    .map(|column| format!("`{}`", column.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Returns the column with this name.
    pub fn column(&self, name: &str) -> Result<&TableColumn> {
        Ok(&self.columns[self.column_index(name)?])
    }
}

/// Reads a `.csv` or `.parquet` file.
pub fn read_table(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase);
    let frame = match extension.as_deref() {
        Some("csv") => read_csv(path, bytes)?,
        Some("parquet") | Some("pq") => read_parquet(path, bytes)?,
        _ => {
            return Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
            });
        }
    };
    if frame.height() == 0 {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let columns = frame
        .columns()
        .iter()
        .map(|column| to_table_column(path, column.as_materialized_series()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Table {
        path: path.to_path_buf(),
        sha256,
        n_rows: frame.height(),
        columns,
    })
}

fn read_csv(path: &Path, mut bytes: Vec<u8>) -> Result<DataFrame> {
    // Spreadsheet exports often start with a UTF-8 byte order mark; it is not part of the header.
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..3);
    }
    let separator = sniff_separator(&bytes);
    // Polars pads short rows with nulls; a ragged file is a broken export, so refuse it by row.
    check_rectangular(path, &bytes, separator)?;
    parse_csv_text(path, bytes, separator, None)
}

/// The UTF-8 byte order mark spreadsheet exports often start with.
pub(crate) const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Parses CSV bytes (header first) with polars, every column as text: kinds are inferred by our
/// own rules (see `infer`), not polars'. `columns` keeps only those columns.
pub(crate) fn parse_csv_text(
    path: &Path,
    bytes: Vec<u8>,
    separator: u8,
    columns: Option<&[String]>,
) -> Result<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_columns(columns.map(|columns| {
            columns
                .iter()
                .map(|name| PlSmallStr::from_str(name))
                .collect()
        }))
        .map_parse_options(|options| {
            options
                .with_separator(separator)
                .with_encoding(CsvEncoding::LossyUtf8)
        })
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|error| DataError::Parse {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

/// Picks the field separator from the header line: the most frequent of `,` `;` tab `|` outside
/// quotes (European exports use `;`), comma when none occurs.
pub(crate) fn sniff_separator(bytes: &[u8]) -> u8 {
    const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
    let mut counts = [0usize; CANDIDATES.len()];
    let mut in_quotes = false;
    for &byte in bytes {
        if byte == b'\n' && !in_quotes {
            break;
        }
        if byte == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && let Some(index) = CANDIDATES.iter().position(|&c| c == byte) {
            counts[index] += 1;
        }
    }
    let best = (0..CANDIDATES.len())
        .max_by_key(|&index| (counts[index], std::cmp::Reverse(index)))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        CANDIDATES[best]
    }
}

fn read_parquet(path: &Path, bytes: Vec<u8>) -> Result<DataFrame> {
    ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(|error| DataError::Parse {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })
}

pub(crate) fn to_table_column(path: &Path, series: &Series) -> Result<TableColumn> {
    let name = series.name().to_string();
    let cast_error = |error: PolarsError| DataError::Parse {
        path: path.to_path_buf(),
        reason: format!("column `{name}`: {error}"),
    };
    let dtype = series.dtype();
    let cells = if dtype.is_bool() {
        Cells::Bool(series.bool().map_err(cast_error)?.iter().collect())
    } else if dtype.is_primitive_numeric() {
        let floats = series.cast(&DataType::Float64).map_err(cast_error)?;
        Cells::Number(floats.f64().map_err(cast_error)?.iter().collect())
    } else if dtype == &DataType::Date {
        // Dates (such as a profile's snapshot) read as ISO text, as they would from CSV.
        let days = series.cast(&DataType::Int32).map_err(cast_error)?;
        Cells::Text(
            days.i32()
                .map_err(cast_error)?
                .iter()
                .map(|day| day.map(crate::calendar::format_date))
                .collect(),
        )
    } else if dtype == &DataType::String {
        Cells::Text(
            series
                .str()
                .map_err(cast_error)?
                .iter()
                .map(|cell| cell.map(str::to_string))
                .collect(),
        )
    } else {
        return Err(DataError::UnsupportedColumnType {
            path: path.to_path_buf(),
            column: name,
            dtype: dtype.to_string(),
        });
    };
    Ok(TableColumn { name, cells })
}

/// Where a quote-aware scan of CSV bytes is, splitting fields as polars does: a quote opens a
/// quoted field only at the field's start, and `""` inside a quoted field is a literal quote
/// (RFC 4180). A quote anywhere else, or text right after a closing quote, is a stray quote:
/// polars' line splitter and field parser disagree on such a record, or refuse it, so it is
/// reported rather than parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuoteState {
    in_quotes: bool,
    at_field_start: bool,
    /// The last byte closed a quoted field, so a quote now is an escaped one.
    after_closing_quote: bool,
    stray_quote: bool,
}

impl QuoteState {
    pub(crate) fn new() -> Self {
        QuoteState {
            in_quotes: false,
            at_field_start: true,
            after_closing_quote: false,
            stray_quote: false,
        }
    }

    /// Tells whether the scan is inside a quoted field (where separators and newlines are data).
    pub(crate) fn in_quotes(&self) -> bool {
        self.in_quotes
    }

    /// Tells whether a stray quote was seen since the last call, and forgets it.
    pub(crate) fn take_stray_quote(&mut self) -> bool {
        std::mem::take(&mut self.stray_quote)
    }

    /// Reads one byte; returns true when it ends a field: a separator outside quotes.
    pub(crate) fn ends_field(&mut self, byte: u8, separator: u8) -> bool {
        if self.in_quotes {
            if byte == b'"' {
                self.in_quotes = false;
                self.after_closing_quote = true;
            }
            return false;
        }
        let escaped_quote = self.after_closing_quote;
        self.after_closing_quote = false;
        if escaped_quote && !matches!(byte, b'"' | b'\n' | b'\r') && byte != separator {
            self.stray_quote = true;
        }
        if byte == b'"' {
            if self.at_field_start || escaped_quote {
                self.in_quotes = true;
                self.at_field_start = false;
            } else {
                self.stray_quote = true;
            }
            return false;
        }
        self.at_field_start = byte == separator || byte == b'\n';
        byte == separator
    }
}

/// Refuses a CSV whose rows do not all have the header's number of fields, or that has a stray
/// quote, naming the first offending row. Quote-aware, as [`QuoteState`] splits fields.
fn check_rectangular(path: &Path, bytes: &[u8], separator: u8) -> Result<()> {
    let mut expected = None;
    let mut fields = 1;
    let mut quotes = QuoteState::new();
    let mut record_has_content = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut record = 0;
    let mut finish_record = |fields: usize, record_line: usize, record: &mut usize| {
        match expected {
            None => expected = Some(fields),
            Some(expected) if expected != fields => {
                return Err(DataError::RaggedRow {
                    path: path.to_path_buf(),
                    row: *record,
                    line: record_line,
                    expected,
                    found: fields,
                });
            }
            Some(_) => {}
        }
        *record += 1;
        Ok(())
    };
    for &byte in bytes {
        let was_in_quotes = quotes.in_quotes();
        if quotes.ends_field(byte, separator) {
            fields += 1;
            record_has_content = true;
            continue;
        }
        match byte {
            b'\n' => {
                line += 1;
                if was_in_quotes {
                    continue;
                }
                if quotes.take_stray_quote() {
                    return Err(stray_quote(path, record, record_line));
                }
                if record_has_content {
                    finish_record(fields, record_line, &mut record)?;
                }
                fields = 1;
                record_has_content = false;
                record_line = line;
            }
            b'\r' => {}
            _ => record_has_content = true,
        }
    }
    if quotes.take_stray_quote() {
        return Err(stray_quote(path, record, record_line));
    }
    if quotes.in_quotes() {
        // Polars would refuse it with advice for its Python API; say where the quote opens.
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            reason: format!("row {record} (line {record_line}): {UNCLOSED_QUOTE}"),
        });
    }
    if record_has_content {
        finish_record(fields, record_line, &mut record)?;
    }
    Ok(())
}

/// The error for a stray quote in row `row` (0 is the header) starting on `line`.
fn stray_quote(path: &Path, row: usize, line: usize) -> DataError {
    DataError::Parse {
        path: path.to_path_buf(),
        reason: format!("row {row} (line {line}): {STRAY_QUOTE}"),
    }
}

/// Why a record whose quote is never closed is refused.
pub(crate) const UNCLOSED_QUOTE: &str = "a quote opened here is never closed";

/// Why a record with a stray quote is refused.
pub(crate) const STRAY_QUOTE: &str =
    "a misplaced quote (quote whole fields, and double a quote inside one)";

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangular_csv_passes_including_quoted_commas_and_newlines() {
        let csv = b"a,b,c\n1,\"x,y\",3\r\n4,\"multi\nline\",6\n\n";
        assert!(check_rectangular(Path::new("t.csv"), csv, b',').is_ok());
    }

    #[test]
    fn quoted_fields_with_escaped_quotes_pass_and_stray_quotes_are_named() {
        // `"a""b,c"` is one field holding a quote and a comma.
        let csv = b"a,b,c\n1,\"a\"\"b,c\",y\n2,\"multi\nline\",z\n";
        assert!(check_rectangular(Path::new("t.csv"), csv, b',').is_ok());
        let frame = parse_csv_text(Path::new("t.csv"), csv.to_vec(), b',', None).unwrap();
        assert_eq!(frame.height(), 2);
        let b = frame.column("b").unwrap().str().unwrap().clone();
        assert_eq!(b.get(0), Some("a\"b,c"));
        // A quote in the middle of an unquoted field: polars would split it inconsistently.
        let csv = b"a,b,c\n1,2,3\n1,5\"10,x\n";
        let error = check_rectangular(Path::new("t.csv"), csv, b',').unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("`t.csv`: row 2 (line 3): {STRAY_QUOTE}")
        );
    }

    #[test]
    fn the_separator_is_sniffed_from_the_header() {
        assert_eq!(sniff_separator(b"a,b,c\n1;2;3\n"), b',');
        assert_eq!(sniff_separator(b"a;b;\"c,d\"\n1;2;3\n"), b';');
        assert_eq!(sniff_separator(b"a\tb\n"), b'\t');
        assert_eq!(sniff_separator(b"single\n1\n"), b',');
    }

    #[test]
    fn ragged_rows_are_named_by_row_and_line() {
        let csv = b"a,b,c\n1,2,3\n4,5\n7,8,9\n";
        let error = check_rectangular(Path::new("t.csv"), csv, b',').unwrap_err();
        assert_eq!(
            error.to_string(),
            "`t.csv` row 2 (line 3): expected 3 fields as in the header, found 2"
        );
        let csv = b"a,b\n1,2,3\n";
        assert!(matches!(
            check_rectangular(Path::new("t.csv"), csv, b','),
            Err(DataError::RaggedRow {
                row: 1,
                found: 3,
                ..
            })
        ));
    }
}
