//! Reading a CSV or Parquet file a chunk of rows at a time, so that a file of any size is scored
//! in bounded memory. Each chunk is a [`Table`] of only the columns asked for, with each row's
//! number in the file, so that a bad row can be reported by where it is.
//!
//! A CSV file is split into records here (quote-aware, as [`crate::read_table`] checks them) and
//! each chunk of whole records is parsed by polars: a record with the wrong number of fields is
//! set aside as a [`MalformedRow`] instead of failing the file, since one broken line of a
//! million must not stop a nightly run. A Parquet file is read by row ranges.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{DataError, Result};
use crate::table::{
    QuoteState, STRAY_QUOTE, Table, UNCLOSED_QUOTE, UTF8_BOM, parse_csv_text, sniff_separator,
    to_table_column,
};

/// Rows of a file, `columns` only, with where each row is in the file.
#[derive(Debug)]
pub struct Chunk {
    /// The rows read, with the requested columns in the requested order.
    pub table: Table,
    /// Per table row: its 1-based row number in the file (the header is not a row).
    pub rows: Vec<usize>,
    /// Rows in this stretch of the file that could not be read as records.
    pub malformed: Vec<MalformedRow>,
    /// Share of the file consumed once this chunk is read, from 0 to 1.
    pub progress: f64,
}

/// A row of a file that is not a well-formed record.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedRow {
    /// 1-based row number in the file (records, not counting the header and blank lines).
    pub row: usize,
    /// 1-based line of the file where the record starts.
    pub line: usize,
    /// What is wrong with it, with its line.
    pub reason: String,
}

/// Reads a `.csv` or `.parquet` file chunk by chunk.
#[derive(Debug)]
pub struct ChunkedReader {
    path: PathBuf,
    columns: Vec<String>,
    chunk_rows: usize,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Csv(CsvRecords),
    Parquet {
        file: File,
        rows: usize,
        next: usize,
    },
}

impl ChunkedReader {
    /// Opens `path` to read `columns` in chunks of up to `chunk_rows` rows. Fails up front when
    /// the file cannot be read or lacks one of the columns.
    pub fn open(path: &Path, columns: &[String], chunk_rows: usize) -> Result<Self> {
        let io_error = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let parse_error = |error: PolarsError| DataError::Parse {
            path: path.to_path_buf(),
            reason: error.to_string(),
        };
        let file = File::open(path).map_err(io_error)?;
        let extension = path
            .extension()
            .and_then(|extension| extension.to_str())
            .map(str::to_ascii_lowercase);
        let (source, names) = match extension.as_deref() {
            Some("csv") => {
                let records = CsvRecords::open(path, file)?;
                let names = records.names.clone();
                (Source::Csv(records), names)
            }
            Some("parquet") | Some("pq") => {
                let mut reader = ParquetReader::new(file.try_clone().map_err(io_error)?);
                let rows = reader.num_rows().map_err(parse_error)?;
                let names = reader
                    .schema()
                    .map_err(parse_error)?
                    .iter_names()
                    .map(|name| name.to_string())
                    .collect();
                (
                    Source::Parquet {
                        file,
                        rows,
                        next: 0,
                    },
                    names,
                )
            }
            _ => {
                return Err(DataError::UnsupportedFormat {
                    path: path.to_path_buf(),
                });
            }
        };
        if let Some(column) = columns.iter().find(|column| !names.contains(column)) {
            return Err(DataError::MissingColumn {
                path: path.to_path_buf(),
                column: column.clone(),
                available: names
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(ChunkedReader {
            path: path.to_path_buf(),
            columns: columns.to_vec(),
            chunk_rows: chunk_rows.max(1),
            source,
        })
    }

    /// Returns the file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the next chunk, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let parse_error = |error: PolarsError| DataError::Parse {
            path: self.path.clone(),
            reason: error.to_string(),
        };
        let (frame, rows, malformed, progress) = match &mut self.source {
            Source::Csv(records) => {
                let Some(batch) = records.next_batch(self.chunk_rows)? else {
                    return Ok(None);
                };
                let frame = if batch.rows.is_empty() {
                    DataFrame::empty()
                } else {
                    parse_csv_text(
                        &self.path,
                        batch.bytes,
                        records.separator,
                        Some(&self.columns),
                    )?
                };
                (frame, batch.rows, batch.malformed, records.progress())
            }
            Source::Parquet { file, rows, next } => {
                if *next >= *rows {
                    return Ok(None);
                }
                let length = self.chunk_rows.min(*rows - *next);
                let handle = file.try_clone().map_err(|source| DataError::Io {
                    path: self.path.clone(),
                    source,
                })?;
                let frame = ParquetReader::new(handle)
                    .with_columns(Some(self.columns.clone()))
                    .with_slice(Some((*next, length)))
                    .finish()
                    .map_err(parse_error)?;
                let numbers = (*next + 1..=*next + length).collect();
                *next += length;
                (frame, numbers, Vec::new(), *next as f64 / *rows as f64)
            }
        };
        if frame.height() != rows.len() {
            return Err(DataError::Parse {
                path: self.path.clone(),
                reason: format!(
                    "rows {} to {}: read {} records, expected {}",
                    rows.first().copied().unwrap_or(0),
                    rows.last().copied().unwrap_or(0),
                    frame.height(),
                    rows.len()
                ),
            });
        }
        let columns = if rows.is_empty() {
            Vec::new()
        } else {
            self.columns
                .iter()
                .map(|name| {
                    let column = frame.column(name).map_err(parse_error)?;
                    to_table_column(&self.path, column.as_materialized_series())
                })
                .collect::<Result<Vec<_>>>()?
        };
        Ok(Some(Chunk {
            table: Table {
                path: self.path.clone(),
                sha256: String::new(),
                n_rows: rows.len(),
                columns,
            },
            rows,
            malformed,
            progress,
        }))
    }
}

/// A CSV file read record by record.
#[derive(Debug)]
struct CsvRecords {
    path: PathBuf,
    reader: BufReader<File>,
    /// The header record, newline-terminated: every chunk handed to polars starts with it.
    header: Vec<u8>,
    names: Vec<String>,
    separator: u8,
    fields: usize,
    /// 1-based number of the next data row.
    next_row: usize,
    /// 1-based number of the next line of the file.
    next_line: usize,
    bytes_read: u64,
    file_bytes: u64,
}

/// Whole records of a CSV file, ready for polars.
struct CsvBatch {
    /// The header, then the well-formed records.
    bytes: Vec<u8>,
    rows: Vec<usize>,
    malformed: Vec<MalformedRow>,
}

/// One record's shape, as the quote-aware scan saw it.
struct RecordShape {
    fields: usize,
    /// A quote opened in the record is never closed.
    unterminated: bool,
    /// A quote inside an unquoted field.
    stray_quote: bool,
    /// 1-based line of the file where the record starts.
    line: usize,
}

impl CsvRecords {
    fn open(path: &Path, file: File) -> Result<Self> {
        let io_error = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file_bytes = file.metadata().map_err(io_error)?.len();
        let mut records = CsvRecords {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            header: Vec::new(),
            names: Vec::new(),
            separator: b',',
            fields: 0,
            next_row: 1,
            next_line: 1,
            bytes_read: 0,
            file_bytes,
        };
        let mut header = Vec::new();
        if records
            .read_record(&mut header)
            .map_err(io_error)?
            .is_none()
        {
            return Err(DataError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        if header.starts_with(UTF8_BOM) {
            header.drain(..UTF8_BOM.len());
        }
        records.separator = sniff_separator(&header);
        records.fields = count_fields(&header, records.separator);
        let names = parse_csv_text(path, header.clone(), records.separator, None)?
            .get_column_names()
            .iter()
            .map(|name| name.to_string())
            .collect();
        records.header = header;
        records.names = names;
        Ok(records)
    }

    fn progress(&self) -> f64 {
        if self.file_bytes == 0 {
            1.0
        } else {
            self.bytes_read as f64 / self.file_bytes as f64
        }
    }

    /// Reads up to `limit` well-formed records (and the malformed ones among them); `None` at
    /// the end of the file.
    fn next_batch(&mut self, limit: usize) -> Result<Option<CsvBatch>> {
        let mut batch = CsvBatch {
            bytes: self.header.clone(),
            rows: Vec::new(),
            malformed: Vec::new(),
        };
        while batch.rows.len() < limit {
            let start = batch.bytes.len();
            let shape = self
                .read_record(&mut batch.bytes)
                .map_err(|source| DataError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            let Some(shape) = shape else { break };
            let row = self.next_row;
            self.next_row += 1;
            let problem = if shape.unterminated {
                Some(UNCLOSED_QUOTE.to_string())
            } else if shape.stray_quote {
                Some(STRAY_QUOTE.to_string())
            } else if shape.fields != self.fields {
                Some(format!(
                    "expected {} fields as in the header, found {}",
                    self.fields, shape.fields
                ))
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    batch.bytes.truncate(start);
                    batch.malformed.push(MalformedRow {
                        row,
                        line: shape.line,
                        reason: format!("line {}: {problem}", shape.line),
                    });
                }
                None => batch.rows.push(row),
            }
        }
        if batch.rows.is_empty() && batch.malformed.is_empty() {
            return Ok(None);
        }
        Ok(Some(batch))
    }

    /// Appends the next record (which may span lines inside quotes) to `out`, newline-terminated,
    /// skipping blank lines; `None` at the end of the file.
    ///
    /// A record over several lines whose quotes turn out broken (left open to the end of the
    /// file, or closed before other text) would swallow the lines after its first, so then only
    /// its first line is returned, as broken, and reading goes on from the line after it.
    fn read_record(&mut self, out: &mut Vec<u8>) -> std::io::Result<Option<RecordShape>> {
        let start = out.len();
        let mut quotes = QuoteState::new();
        let mut fields = 1;
        let mut line = self.next_line;
        // Where the record's first line ends: in `out`, and in the file.
        let mut first_line_end = None;
        loop {
            let line_start = out.len();
            let read = self.reader.read_until(b'\n', out)?;
            let at_end = read == 0;
            if at_end && out.len() == start {
                return Ok(None);
            }
            if !at_end {
                self.bytes_read += read as u64;
                self.next_line += 1;
                // Only an empty line is blank; one of spaces or separators is a (ragged) record.
                let is_blank = out[line_start..]
                    .iter()
                    .all(|&byte| byte == b'\n' || byte == b'\r');
                if is_blank && line_start == start {
                    out.truncate(start);
                    line = self.next_line;
                    continue;
                }
                for &byte in &out[line_start..] {
                    if quotes.ends_field(byte, self.separator) {
                        fields += 1;
                    }
                }
                if first_line_end.is_none() {
                    first_line_end = Some((out.len(), self.bytes_read));
                }
                if quotes.in_quotes() {
                    continue;
                }
            }
            let unterminated = quotes.in_quotes();
            let stray_quote = quotes.take_stray_quote();
            let spans_lines = first_line_end.is_some_and(|(end, _)| end < out.len());
            if (unterminated || stray_quote)
                && spans_lines
                && let Some((end, offset)) = first_line_end
            {
                out.truncate(end);
                self.reader.seek(SeekFrom::Start(offset))?;
                self.bytes_read = offset;
                self.next_line = line + 1;
            }
            if out.last() != Some(&b'\n') {
                out.push(b'\n');
            }
            return Ok(Some(RecordShape {
                fields,
                unterminated,
                stray_quote,
                line,
            }));
        }
    }
}

/// Counts a record's fields as polars splits them ([`QuoteState`]).
fn count_fields(record: &[u8], separator: u8) -> usize {
    let mut quotes = QuoteState::new();
    1 + record
        .iter()
        .filter(|&&byte| quotes.ends_field(byte, separator))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Cells;

    fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    fn texts(chunk: &Chunk, column: usize) -> Vec<Option<String>> {
        match &chunk.table.columns[column].cells {
            Cells::Text(cells) => cells.clone(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn csv_chunks_keep_row_numbers_and_set_malformed_rows_aside() {
        let dir = tempfile::tempdir().unwrap();
        let csv = b"\xef\xbb\xbfid;a;b\n1;x;\"q;\nr\"\n2;y\n\n3;z;w\n4;v;u";
        let path = write(dir.path(), "t.csv", csv);
        let columns = ["b".to_string(), "id".to_string()];
        let mut reader = ChunkedReader::open(&path, &columns, 2).unwrap();
        let first = reader.next_chunk().unwrap().unwrap();
        assert_eq!(first.rows, vec![1, 3]);
        assert_eq!(
            first.malformed,
            vec![MalformedRow {
                row: 2,
                line: 4,
                reason: "line 4: expected 3 fields as in the header, found 2".into()
            }]
        );
        assert_eq!(
            texts(&first, 0),
            vec![Some("q;\nr".into()), Some("w".into())]
        );
        assert_eq!(texts(&first, 1), vec![Some("1".into()), Some("3".into())]);
        let second = reader.next_chunk().unwrap().unwrap();
        assert_eq!(second.rows, vec![4]);
        assert_eq!(texts(&second, 0), vec![Some("u".into())]);
        assert_eq!(second.progress, 1.0);
        assert!(reader.next_chunk().unwrap().is_none());
    }

    #[test]
    fn a_broken_quote_costs_only_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = b"id,a\n1,x\n2,\"never closed\n3,y\n\n   \n4,z\n5,6\"7\n";
        let path = write(dir.path(), "t.csv", csv);
        let mut reader = ChunkedReader::open(&path, &["a".to_string()], 10).unwrap();
        let chunk = reader.next_chunk().unwrap().unwrap();
        assert_eq!(chunk.rows, vec![1, 3, 5]);
        assert_eq!(
            texts(&chunk, 0),
            vec![Some("x".into()), Some("y".into()), Some("z".into())]
        );
        // The open quote on line 3, a line of spaces (a record of one field) on line 6, and a
        // stray quote on line 8.
        let malformed: Vec<(usize, usize)> = chunk
            .malformed
            .iter()
            .map(|row| (row.row, row.line))
            .collect();
        assert_eq!(malformed, vec![(2, 3), (4, 6), (6, 8)]);
        assert!(chunk.malformed.iter().all(|row| row.reason.contains("quote")
            || row.reason.contains("expected 2 fields")));
        assert!(chunk.malformed[2].reason.contains(STRAY_QUOTE));
        // Left open to the end of the file, a quote also costs only its line.
        let path = write(dir.path(), "open.csv", b"id,a\n1,\"open\n2,x\n");
        let mut reader = ChunkedReader::open(&path, &["a".to_string()], 10).unwrap();
        let chunk = reader.next_chunk().unwrap().unwrap();
        assert_eq!(chunk.rows, vec![2]);
        assert!(chunk.malformed[0].reason.contains("never closed"));
        assert!(reader.next_chunk().unwrap().is_none());
    }

    #[test]
    fn a_missing_column_is_named_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "t.csv", b"id,a\n1,x\n");
        let error = ChunkedReader::open(&path, &["b".to_string()], 10).unwrap_err();
        assert!(error.to_string().contains("no column `b`"), "{error}");
        let empty = write(dir.path(), "empty.csv", b"");
        assert!(matches!(
            ChunkedReader::open(&empty, &[], 10),
            Err(DataError::EmptyFile { .. })
        ));
    }

    #[test]
    fn parquet_is_read_by_row_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut frame = df!(
            "id" => ["a", "b", "c", "d", "e"],
            "x" => [1.0, 2.0, f64::NAN, 4.0, 5.0],
        )
        .unwrap();
        ParquetWriter::new(File::create(&path).unwrap())
            .finish(&mut frame)
            .unwrap();
        let mut reader = ChunkedReader::open(&path, &["x".to_string()], 2).unwrap();
        let mut seen = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            let Cells::Number(cells) = &chunk.table.columns[0].cells else {
                panic!("not numbers")
            };
            seen.extend(chunk.rows.iter().copied().zip(cells.iter().copied()));
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[3], (4, Some(4.0)));
        assert!(seen[2].1.is_some_and(f64::is_nan));

        std::fs::write(&path, &std::fs::read(&path).unwrap()[..40]).unwrap();
        assert!(ChunkedReader::open(&path, &["x".to_string()], 2).is_err());
    }
}
