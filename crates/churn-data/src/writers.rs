//! Output writers shared by `churn generate`, `churn events profiles` and batch rescoring:
//! Parquet or CSV chosen by a file's name, frames written batch by batch, and every file written
//! as `NAME.partial` and renamed only once complete, so a failed run leaves neither a
//! half-written file nor a clobbered previous one.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{DataError, Result};

/// The file kind of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated text with a header row.
    Csv,
}

impl OutputFormat {
    /// Returns the format a file name asks for: `.parquet` (or `.pq`) or `.csv`. Any other name
    /// is refused, so that `scores.txt` does not silently become Parquet.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("csv") => Ok(OutputFormat::Csv),
            Some(extension)
                if extension.eq_ignore_ascii_case("parquet")
                    || extension.eq_ignore_ascii_case("pq") =>
            {
                Ok(OutputFormat::Parquet)
            }
            _ => Err(DataError::UnsupportedFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// Returns the file extension this format writes, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Csv => "csv",
        }
    }
}

/// A file written under `NAME.partial` and given its name only when committed, so a failed run
/// leaves neither a half-written file nor a clobbered previous one.
pub(crate) struct PartialFile {
    partial: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// Creates `path.partial`; returns it with the open file.
    pub(crate) fn create(path: &Path) -> Result<(Self, File)> {
        let mut partial = path.to_path_buf().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let handle = File::create(&partial).map_err(|source| DataError::Create {
            path: partial.clone(),
            source,
        })?;
        Ok((
            PartialFile {
                partial,
                path: path.to_path_buf(),
                committed: false,
            },
            handle,
        ))
    }

    /// Returns the name the file gets when committed.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the complete file its name.
    pub(crate) fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.partial, &self.path).map_err(|source| DataError::Rename {
            from: self.partial.clone(),
            to: self.path.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }

    /// Returns the error for a failed write to this file.
    pub(crate) fn write_error(&self, error: impl std::fmt::Display) -> DataError {
        DataError::Write {
            path: self.path.clone(),
            reason: error.to_string(),
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// A Parquet or CSV writer of frames of one schema, batch by batch.
enum BatchWriter {
    // Boxed: the Parquet writer is several times the CSV one's size.
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
    Csv(polars::io::csv::write::BatchedWriter<File>),
}

impl BatchWriter {
    fn create(format: OutputFormat, handle: File, schema: &Schema) -> PolarsResult<Self> {
        Ok(match format {
            OutputFormat::Parquet => {
                BatchWriter::Parquet(Box::new(ParquetWriter::new(handle).batched(schema)?))
            }
            OutputFormat::Csv => BatchWriter::Csv(CsvWriter::new(handle).batched(schema)?),
        })
    }

    fn write_batch(&mut self, frame: &DataFrame) -> PolarsResult<()> {
        match self {
            BatchWriter::Parquet(writer) => writer.write_batch(frame),
            BatchWriter::Csv(writer) => writer.write_batch(frame),
        }
    }

    fn finish(&mut self) -> PolarsResult<()> {
        match self {
            BatchWriter::Parquet(writer) => writer.finish().map(drop),
            BatchWriter::Csv(writer) => writer.finish(),
        }
    }
}

/// A Parquet or CSV file of frames with one schema, written batch by batch under its partial
/// name; errors name the file.
pub(crate) struct FrameFile {
    file: PartialFile,
    writer: BatchWriter,
}

impl FrameFile {
    /// Starts `path` (as `path.partial`) for frames with this schema.
    pub(crate) fn create(path: &Path, format: OutputFormat, schema: &Schema) -> Result<Self> {
        let (file, handle) = PartialFile::create(path)?;
        let writer =
            BatchWriter::create(format, handle, schema).map_err(|error| file.write_error(error))?;
        Ok(FrameFile { file, writer })
    }

    /// Returns the error for a failed write to this file, such as a frame that cannot be built.
    pub(crate) fn write_error(&self, error: impl std::fmt::Display) -> DataError {
        self.file.write_error(error)
    }

    /// Appends a frame.
    pub(crate) fn write(&mut self, frame: &DataFrame) -> Result<()> {
        self.writer
            .write_batch(frame)
            .map_err(|error| self.file.write_error(error))
    }

    /// Completes the file; returns it, not yet renamed.
    pub(crate) fn finish(mut self) -> Result<PartialFile> {
        self.writer
            .finish()
            .map_err(|error| self.file.write_error(error))?;
        Ok(self.file)
    }
}

/// Writes a whole frame at once to `path.partial`; returns the file, complete but not yet
/// renamed.
pub(crate) fn write_frame(
    path: &Path,
    format: OutputFormat,
    frame: &mut DataFrame,
) -> Result<PartialFile> {
    let (file, handle) = PartialFile::create(path)?;
    match format {
        OutputFormat::Parquet => ParquetWriter::new(handle).finish(frame).map(drop),
        OutputFormat::Csv => CsvWriter::new(handle).finish(frame),
    }
    .map_err(|error| file.write_error(error))?;
    Ok(file)
}

/// Quotes a CSV field (RFC 4180: a quote inside is doubled).
pub(crate) fn quote(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn output_format_follows_the_extension_and_refuses_others() {
        assert_eq!(
            OutputFormat::from_path(Path::new("a/b.CSV")).unwrap(),
            OutputFormat::Csv
        );
        assert_eq!(
            OutputFormat::from_path(Path::new("scores.parquet")).unwrap(),
            OutputFormat::Parquet
        );
        assert!(OutputFormat::from_path(Path::new("scores.txt")).is_err());
    }

    #[test]
    fn fields_are_quoted_with_doubled_quotes() {
        assert_eq!(quote(r#"a "b", c"#), r#""a ""b"", c""#);
    }

    #[test]
    fn a_partial_file_takes_its_name_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scores.csv");
        std::fs::write(&path, "previous run").unwrap();
        let (file, mut handle) = PartialFile::create(&path).unwrap();
        handle.write_all(b"half").unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous run");
        assert!(!dir.path().join("scores.csv.partial").exists());
        let (file, mut handle) = PartialFile::create(&path).unwrap();
        handle.write_all(b"complete").unwrap();
        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "complete");
    }
}
