//! The scored rows' file, written batch by batch, and the rejects file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use churn_core::{Reason, Scorer};
use polars::prelude::*;

use super::RescoreOptions;
use super::score::{Reject, ScoredRow};
use crate::error::{DataError, Result};
use crate::writers::{FrameFile, PartialFile, quote};

/// Returns a UTC timestamp column from microseconds since the epoch.
pub(super) fn timestamp_column(name: &str, micros: Vec<i64>) -> Column {
    Series::new(name.into(), micros)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into()
}

/// The output file, written batch by batch.
pub(super) struct OutputFile {
    file: FrameFile,
    columns: OutputColumns,
}

impl OutputFile {
    /// Starts the output file (under its partial name) with the columns of `options`.
    pub(super) fn create(
        options: &RescoreOptions,
        scorer: &Scorer,
        scored_at: Duration,
    ) -> Result<Self> {
        let columns = OutputColumns {
            top_k: options.top_k,
            model_name: scorer.artifact().name.clone(),
            model_version: options.model_version.clone(),
            scored_at_micros: i64::try_from(scored_at.as_micros()).unwrap_or(i64::MAX),
        };
        let empty = columns.frame(&[]).map_err(|error| DataError::Write {
            path: options.output.clone(),
            reason: error.to_string(),
        })?;
        let file = FrameFile::create(&options.output, options.format, empty.schema())?;
        Ok(OutputFile { file, columns })
    }

    /// Appends scored rows.
    pub(super) fn write(&mut self, rows: &[(String, ScoredRow)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let frame = self
            .columns
            .frame(rows)
            .map_err(|error| self.file.write_error(error))?;
        self.file.write(&frame)
    }

    /// Completes the file; returns it, not yet renamed.
    pub(super) fn finish(self) -> Result<PartialFile> {
        self.file.finish()
    }
}

/// What every output row carries besides its score.
struct OutputColumns {
    top_k: usize,
    model_name: String,
    model_version: String,
    scored_at_micros: i64,
}

impl OutputColumns {
    /// Builds the output columns for `rows`: id, score, `raising_1_feature` …
    /// `lowering_K_text` (null past a row's last reason), model and time.
    fn frame(&self, rows: &[(String, ScoredRow)]) -> PolarsResult<DataFrame> {
        let height = rows.len();
        let number = |name: &str, of: fn(&ScoredRow) -> f64| {
            Column::new(
                name.into(),
                rows.iter().map(|(_, row)| of(row)).collect::<Vec<_>>(),
            )
        };
        let mut columns = vec![
            Column::new(
                "customer_id".into(),
                rows.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ),
            number("probability", |row| row.top.probability),
            Column::new(
                "band".into(),
                rows.iter()
                    .map(|(_, row)| row.band.as_str())
                    .collect::<Vec<_>>(),
            ),
            number("percentile", |row| row.percentile),
            number("logit", |row| row.top.logit),
            number("base_value", |row| row.top.base_value),
        ];
        type ReasonsOf = fn(&ScoredRow) -> &[Reason];
        let directions: [(&str, ReasonsOf); 2] = [
            ("raising", |row| &row.top.raising),
            ("lowering", |row| &row.top.lowering),
        ];
        for (direction, reasons_of) in directions {
            for rank in 0..self.top_k {
                let reasons: Vec<Option<&Reason>> = rows
                    .iter()
                    .map(|(_, row)| reasons_of(row).get(rank))
                    .collect();
                let name =
                    |part: &str| PlSmallStr::from(format!("{direction}_{}_{part}", rank + 1));
                columns.push(Column::new(
                    name("feature"),
                    reasons
                        .iter()
                        .map(|reason| reason.map(|reason| reason.feature.as_str()))
                        .collect::<Vec<_>>(),
                ));
                columns.push(Column::new(
                    name("value"),
                    reasons
                        .iter()
                        .map(|reason| {
                            reason.and_then(|reason| match &reason.value {
                                churn_core::RawValue::Missing => None,
                                value => Some(value.to_string()),
                            })
                        })
                        .collect::<Vec<_>>(),
                ));
                columns.push(Column::new(
                    name("contribution"),
                    reasons
                        .iter()
                        .map(|reason| reason.map(|reason| reason.contribution))
                        .collect::<Vec<_>>(),
                ));
                columns.push(Column::new(
                    name("text"),
                    reasons
                        .iter()
                        .map(|reason| reason.map(|reason| reason.text.as_str()))
                        .collect::<Vec<_>>(),
                ));
            }
        }
        columns.push(Column::new(
            "model_name".into(),
            vec![self.model_name.as_str(); height],
        ));
        columns.push(Column::new(
            "model_version".into(),
            vec![self.model_version.as_str(); height],
        ));
        columns.push(timestamp_column(
            "scored_at",
            vec![self.scored_at_micros; height],
        ));
        DataFrame::new(height, columns)
    }
}

/// The rejects CSV: `file,row,customer_id,feature,reason`, every text field quoted.
pub(super) struct RejectsFile {
    file: PartialFile,
    writer: BufWriter<File>,
}

impl RejectsFile {
    /// Starts the rejects file (under its partial name) with its header.
    pub(super) fn create(path: &Path) -> Result<Self> {
        let (file, handle) = PartialFile::create(path)?;
        let mut rejects = RejectsFile {
            file,
            writer: BufWriter::new(handle),
        };
        rejects
            .writer
            .write_all(b"file,row,customer_id,feature,reason\n")
            .map_err(|error| rejects.file.write_error(error))?;
        Ok(rejects)
    }

    /// Appends a rejected row of `input`.
    pub(super) fn write(&mut self, input: &Path, reject: &Reject) -> Result<()> {
        let line = [
            quote(&input.display().to_string()),
            reject.row.to_string(),
            quote(&reject.customer_id),
            quote(reject.feature.as_deref().unwrap_or_default()),
            quote(&reject.reason),
        ]
        .join(",");
        writeln!(self.writer, "{line}").map_err(|error| self.file.write_error(error))
    }

    /// Completes the file; returns it, not yet renamed.
    pub(super) fn finish(mut self) -> Result<PartialFile> {
        self.writer
            .flush()
            .map_err(|error| self.file.write_error(error))?;
        Ok(self.file)
    }
}
