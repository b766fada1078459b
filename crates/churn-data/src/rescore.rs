//! Batch rescoring: every customer of one or many CSV or Parquet files scored with reasons and
//! written to Parquet or CSV, a chunk at a time so memory stays bounded however many rows there
//! are. Rows are explained by the same `churn-core` [`Scorer`] call as the gRPC service's, so a
//! customer gets the same probability, band, percentile and reasons on both paths, to the bit.
//!
//! A row that cannot be scored (a malformed record, a bad value, an unknown category) goes to the
//! rejects file with its file, row, customer id and reason, and the run goes on. The output is
//! written beside its final name and renamed at the end, so a failed run leaves no half file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use churn_core::{
    AlertDecision, AlertDraft, AlertPolicy, CustomerHistory, Reason, RiskBand, ScoreEvent, Scorer,
    Timestamp, TopReasons,
};
use polars::prelude::*;
use rayon::prelude::*;

use crate::chunks::{Chunk, ChunkedReader};
use crate::error::{DataError, Result};

/// Rows read and scored per chunk unless told otherwise: large enough to keep both cores busy,
/// small enough that a chunk's text stays in the tens of megabytes.
pub const DEFAULT_CHUNK_ROWS: usize = 50_000;

/// The file kind of the scored output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Csv,
}

impl OutputFormat {
    /// Returns the format named by a file's extension: `.csv` is CSV, anything else Parquet.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("csv") => OutputFormat::Csv,
            _ => OutputFormat::Parquet,
        }
    }
}

/// What to rescore and where to write it.
#[derive(Debug, Clone)]
pub struct RescoreOptions {
    /// Input files, in the order their rows are written.
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
    pub format: OutputFormat,
    /// CSV of the rows that could not be scored.
    pub rejects: PathBuf,
    /// Reasons kept in each direction.
    pub top_k: usize,
    pub chunk_rows: usize,
    /// Column holding the customer id; the model's id column when `None`.
    pub id_column: Option<String>,
    /// Version of the model (see `ModelArtifact::version_of`), written on every row.
    pub model_version: String,
    /// When the run scored, written on every row.
    pub scored_at: SystemTime,
    /// Where to write the alerts the policy raises, if anywhere.
    pub alerts: Option<AlertsOutput>,
}

/// The alerts of a run: the policy that raises them and the file they go to, ranked by revenue
/// at risk.
#[derive(Debug, Clone)]
pub struct AlertsOutput {
    pub path: PathBuf,
    pub format: OutputFormat,
    pub policy: AlertPolicy,
}

/// Where a run is, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub rows_scored: usize,
    pub rows_rejected: usize,
    /// Share of the input bytes consumed, from 0 to 1.
    pub fraction: f64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RescoreSummary {
    pub files: usize,
    pub rows_scored: usize,
    pub rows_rejected: usize,
    /// Scored rows per band: LOW, MEDIUM, HIGH.
    pub bands: [usize; 3],
    /// Alerts raised per band: LOW, MEDIUM, HIGH (all zero without an alerts output).
    pub alerts: [usize; 3],
    /// Sum of the alerts' revenue at risk, over those whose customer value is known.
    pub revenue_at_risk: f64,
    pub elapsed: Duration,
}

impl RescoreSummary {
    /// Returns the share of rows read that were rejected (0 when there were none).
    pub fn reject_share(&self) -> f64 {
        let read = self.rows_scored + self.rows_rejected;
        if read == 0 {
            0.0
        } else {
            self.rows_rejected as f64 / read as f64
        }
    }

    /// Returns scored and rejected rows per second of wall time.
    pub fn rows_per_second(&self) -> f64 {
        (self.rows_scored + self.rows_rejected) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Expands input arguments: a file as is, a folder to its `.csv` and `.parquet` files, a glob
/// pattern to its matches, each folder and pattern in sorted order. Fails on one that matches
/// nothing, so a mistyped partition path does not silently score nothing.
pub fn expand_inputs(arguments: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut inputs = Vec::new();
    for argument in arguments {
        let text = argument.to_string_lossy();
        let mut matches: Vec<PathBuf> = if argument.is_dir() {
            std::fs::read_dir(argument)
                .map_err(|source| DataError::Io {
                    path: argument.clone(),
                    source,
                })?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.is_file() && is_table_file(path))
                .collect()
        } else if text.contains(['*', '?', '[']) {
            glob::glob(&text)
                .map_err(|error| DataError::Parse {
                    path: argument.clone(),
                    reason: format!("bad pattern: {error}"),
                })?
                .filter_map(|entry| entry.ok())
                .filter(|path| path.is_file())
                .collect()
        } else {
            vec![argument.clone()]
        };
        if matches.is_empty() {
            return Err(DataError::NoInput {
                pattern: argument.clone(),
            });
        }
        matches.sort();
        inputs.extend(matches);
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

/// Scores every row of `options.inputs` with `scorer`, writing the output and the rejects file,
/// and the alerts file when asked; `progress` is called after each chunk. Every input is opened
/// and checked for the model's columns (and the policy's value column) before anything is
/// scored.
///
/// A batch run has no score history, so its alerts are those the policy raises for a customer
/// seen for the first time: by band and probability thresholds, not by rises or cool-downs.
pub fn rescore(
    scorer: &Scorer,
    options: &RescoreOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<RescoreSummary> {
    let started = Instant::now();
    let schema = &scorer.artifact().schema;
    let id_column = options.id_column.clone().or_else(|| schema.id.clone());
    let mut columns: Vec<String> = schema
        .features
        .iter()
        .map(|feature| feature.name.clone())
        .collect();
    let id_position = id_column.as_ref().map(|id| {
        columns
            .iter()
            .position(|name| name == id)
            .unwrap_or_else(|| {
                columns.push(id.clone());
                columns.len() - 1
            })
    });
    let policy = options.alerts.as_ref().map(|alerts| &alerts.policy);
    if let Some(policy) = policy {
        policy
            .validate()
            .map_err(|source| DataError::Policy { source })?;
    }
    let value_position = policy
        .and_then(|policy| policy.value_feature.as_ref())
        .map(|value| {
            columns
                .iter()
                .position(|name| name == value)
                .unwrap_or_else(|| {
                    columns.push(value.clone());
                    columns.len() - 1
                })
        });
    // Every input is checked before anything is written; each is opened again when its turn
    // comes, so that thousands of partitions do not hold thousands of read buffers at once.
    for path in &options.inputs {
        ChunkedReader::open(path, &columns, options.chunk_rows)?;
    }
    let sizes: Vec<f64> = options
        .inputs
        .iter()
        .map(|path| std::fs::metadata(path).map_or(1.0, |metadata| metadata.len() as f64))
        .collect();
    let total_size: f64 = sizes.iter().sum::<f64>().max(1.0);

    let mut output = OutputFile::create(options, scorer)?;
    let mut rejects = RejectsFile::create(&options.rejects)?;
    let mut summary = RescoreSummary {
        files: options.inputs.len(),
        rows_scored: 0,
        rows_rejected: 0,
        bands: [0; 3],
        alerts: [0; 3],
        revenue_at_risk: 0.0,
        elapsed: Duration::ZERO,
    };
    let scored_at = options
        .scored_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as Timestamp);
    let mut alerts = Vec::new();
    let mut done_size = 0.0;
    for (path, size) in options.inputs.iter().zip(&sizes) {
        let mut reader = ChunkedReader::open(path, &columns, options.chunk_rows)?;
        while let Some(chunk) = reader.next_chunk()? {
            let scored = score_chunk(scorer, &chunk, id_position, options.top_k);
            for malformed in &chunk.malformed {
                rejects.write(reader.path(), malformed.row, "", None, &malformed.reason)?;
                summary.rows_rejected += 1;
            }
            let mut good = Vec::with_capacity(scored.len());
            for ((index, row), (id, outcome)) in chunk.rows.iter().enumerate().zip(scored) {
                match outcome {
                    Ok(scored) => {
                        if let Some(policy) = policy {
                            let value = value_position.and_then(|column| {
                                number_of(chunk.table.columns[column].cells.value(index))
                            });
                            let event = ScoreEvent {
                                probability: scored.top.probability,
                                band: scored.band,
                                customer_value: value,
                                at: scored_at,
                            };
                            // No history in a batch: a raise or nothing.
                            if let AlertDecision::Raise(draft) =
                                policy.evaluate(&event, &CustomerHistory::default())
                            {
                                alerts.push(BatchAlert {
                                    customer_id: id.clone(),
                                    percentile: scored.percentile,
                                    reasons: scored.top.raising.clone(),
                                    draft,
                                });
                            }
                        }
                        good.push((id, scored));
                    }
                    Err(error) => {
                        rejects.write(
                            reader.path(),
                            *row,
                            &id,
                            error.feature(),
                            &error.to_string(),
                        )?;
                        summary.rows_rejected += 1;
                    }
                }
            }
            for (_, scored) in &good {
                summary.bands[band_index(scored.band)] += 1;
            }
            summary.rows_scored += good.len();
            output.write(&good)?;
            progress(&Progress {
                rows_scored: summary.rows_scored,
                rows_rejected: summary.rows_rejected,
                fraction: (done_size + chunk.progress * size) / total_size,
            });
        }
        done_size += size;
    }
    rejects.finish()?;
    if let Some(target) = &options.alerts {
        for alert in &alerts {
            summary.alerts[band_index(alert.draft.band)] += 1;
            summary.revenue_at_risk += alert.draft.revenue_at_risk.unwrap_or(0.0);
        }
        write_alerts(target, &mut alerts, options.top_k)?;
    }
    output.finish()?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads a customer value: a number, or text holding one.
fn number_of(value: churn_core::Value<'_>) -> Option<f64> {
    match value {
        churn_core::Value::Number(number) => Some(number),
        churn_core::Value::Text(text) => text.trim().parse().ok(),
        churn_core::Value::Bool(_) | churn_core::Value::Missing => None,
    }
    .filter(|number: &f64| number.is_finite())
}

/// An alert of a batch run, with what an agent reads first.
#[derive(Debug)]
struct BatchAlert {
    customer_id: String,
    percentile: f64,
    /// The reasons raising risk, strongest first.
    reasons: Vec<Reason>,
    draft: AlertDraft,
}

/// Writes the alerts ranked by revenue at risk (unknown values last), then probability, then id:
/// `rank, customer_id, probability, band, percentile, revenue_at_risk, triggers, acknowledge_by,
/// reason_1 … reason_K`.
fn write_alerts(target: &AlertsOutput, alerts: &mut [BatchAlert], top_k: usize) -> Result<()> {
    alerts.sort_by(|a, b| {
        let value = |alert: &BatchAlert| alert.draft.revenue_at_risk.unwrap_or(f64::NEG_INFINITY);
        value(b)
            .total_cmp(&value(a))
            .then(b.draft.probability.total_cmp(&a.draft.probability))
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    let polars_error = |error: PolarsError| DataError::Parse {
        path: target.path.clone(),
        reason: error.to_string(),
    };
    let height = alerts.len();
    let mut columns = vec![
        Column::new("rank".into(), (1..=height as u64).collect::<Vec<_>>()),
        Column::new(
            "customer_id".into(),
            alerts
                .iter()
                .map(|a| a.customer_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "probability".into(),
            alerts
                .iter()
                .map(|a| a.draft.probability)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "band".into(),
            alerts
                .iter()
                .map(|a| a.draft.band.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "percentile".into(),
            alerts.iter().map(|a| a.percentile).collect::<Vec<_>>(),
        ),
        Column::new(
            "revenue_at_risk".into(),
            alerts
                .iter()
                .map(|a| a.draft.revenue_at_risk)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "triggers".into(),
            alerts
                .iter()
                .map(|a| {
                    a.draft
                        .triggers
                        .iter()
                        .map(|trigger| trigger.describe(a.draft.probability))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .collect::<Vec<_>>(),
        ),
        Series::new(
            "acknowledge_by".into(),
            alerts
                .iter()
                .map(|a| a.draft.acknowledge_by * 1_000_000)
                .collect::<Vec<_>>(),
        )
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into(),
    ];
    for rank in 0..top_k {
        columns.push(Column::new(
            format!("reason_{}", rank + 1).into(),
            alerts
                .iter()
                .map(|a| a.reasons.get(rank).map(|reason| reason.text.as_str()))
                .collect::<Vec<_>>(),
        ));
    }
    let mut frame = DataFrame::new(height, columns).map_err(polars_error)?;
    let mut partial = target.path.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = File::create(&partial).map_err(|source| DataError::Io {
        path: partial.clone(),
        source,
    })?;
    match target.format {
        OutputFormat::Parquet => ParquetWriter::new(file).finish(&mut frame).map(drop),
        OutputFormat::Csv => CsvWriter::new(file).finish(&mut frame),
    }
    .map_err(polars_error)?;
    std::fs::rename(&partial, &target.path).map_err(|source| DataError::Io {
        path: target.path.clone(),
        source,
    })
}

/// A scored row as written: its score, band, percentile and strongest reasons each way.
#[derive(Debug)]
struct ScoredRow {
    band: RiskBand,
    percentile: f64,
    top: TopReasons,
}

/// Explains the rows of a chunk on all cores, in row order: each row's id and its top reasons
/// or why it could not be scored.
fn score_chunk(
    scorer: &Scorer,
    chunk: &Chunk,
    id_position: Option<usize>,
    top_k: usize,
) -> Vec<(String, churn_core::Result<ScoredRow>)> {
    let table = &chunk.table;
    (0..table.n_rows)
        .into_par_iter()
        .map(|row| {
            let id = match id_position.map(|column| table.columns[column].cells.value(row)) {
                Some(churn_core::Value::Missing) | None => chunk.rows[row].to_string(),
                Some(value) => value.to_string().trim().to_string(),
            };
            // The chunk's columns are the schema's features in order, then the id.
            let outcome = scorer
                .explain_values_top(
                    |feature| Some(table.columns[feature].cells.value(row)),
                    top_k,
                )
                .map(|top| ScoredRow {
                    band: scorer.band(top.probability),
                    percentile: scorer.percentile(top.probability),
                    top,
                });
            (id, outcome)
        })
        .collect()
}

fn band_index(band: RiskBand) -> usize {
    match band {
        RiskBand::Low => 0,
        RiskBand::Medium => 1,
        RiskBand::High => 2,
    }
}

/// The output file, written batch by batch under a temporary name.
struct OutputFile {
    writer: OutputWriter,
    partial: PathBuf,
    path: PathBuf,
    columns: OutputColumns,
}

enum OutputWriter {
    // Boxed: the Parquet writer is several times the CSV one's size.
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
    Csv(polars::io::csv::write::BatchedWriter<File>),
}

impl OutputFile {
    fn create(options: &RescoreOptions, scorer: &Scorer) -> Result<Self> {
        let mut partial = options.output.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let polars_error = |error: PolarsError| DataError::Parse {
            path: partial.clone(),
            reason: error.to_string(),
        };
        let columns = OutputColumns {
            top_k: options.top_k,
            model_name: scorer.artifact().name.clone(),
            model_version: options.model_version.clone(),
            scored_at_micros: options
                .scored_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_micros() as i64),
        };
        let schema = columns.frame(&[]).map_err(polars_error)?.schema().clone();
        let file = File::create(&partial).map_err(|source| DataError::Io {
            path: partial.clone(),
            source,
        })?;
        let writer = match options.format {
            OutputFormat::Parquet => OutputWriter::Parquet(Box::new(
                ParquetWriter::new(file)
                    .batched(&schema)
                    .map_err(polars_error)?,
            )),
            OutputFormat::Csv => OutputWriter::Csv(
                CsvWriter::new(file)
                    .batched(&schema)
                    .map_err(polars_error)?,
            ),
        };
        Ok(OutputFile {
            writer,
            partial,
            path: options.output.clone(),
            columns,
        })
    }

    fn write(&mut self, rows: &[(String, ScoredRow)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let frame = self
            .columns
            .frame(rows)
            .map_err(|error| self.error(error))?;
        match &mut self.writer {
            OutputWriter::Parquet(writer) => writer.write_batch(&frame),
            OutputWriter::Csv(writer) => writer.write_batch(&frame),
        }
        .map_err(|error| self.error(error))
    }

    fn finish(mut self) -> Result<()> {
        match &mut self.writer {
            OutputWriter::Parquet(writer) => writer.finish().map(drop),
            OutputWriter::Csv(writer) => writer.finish(),
        }
        .map_err(|error| self.error(error))?;
        std::fs::rename(&self.partial, &self.path).map_err(|source| DataError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn error(&self, error: PolarsError) -> DataError {
        DataError::Parse {
            path: self.partial.clone(),
            reason: error.to_string(),
        }
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        // A run that failed leaves no half-written output; after `finish` the name is gone anyway.
        let _ = std::fs::remove_file(&self.partial);
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
        columns.push(
            Series::new("scored_at".into(), vec![self.scored_at_micros; height])
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into(),
        );
        DataFrame::new(height, columns)
    }
}

/// The rejects CSV: `file,row,customer_id,feature,reason`, every field quoted.
struct RejectsFile {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl RejectsFile {
    fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut rejects = RejectsFile {
            path: path.to_path_buf(),
            writer: BufWriter::new(file),
        };
        rejects
            .writer
            .write_all(b"file,row,customer_id,feature,reason\n")
            .map_err(|source| rejects.io_error(source))?;
        Ok(rejects)
    }

    fn write(
        &mut self,
        file: &Path,
        row: usize,
        customer_id: &str,
        feature: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        let line = [
            quote(&file.display().to_string()),
            row.to_string(),
            quote(customer_id),
            quote(feature.unwrap_or_default()),
            quote(reason),
        ]
        .join(",");
        writeln!(self.writer, "{line}").map_err(|source| self.io_error(source))
    }

    fn finish(mut self) -> Result<()> {
        self.writer.flush().map_err(|source| self.io_error(source))
    }

    fn io_error(&self, source: std::io::Error) -> DataError {
        DataError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// Quotes a CSV field (RFC 4180: a quote inside is doubled).
fn quote(field: &str) -> String {
    format!("\"{}\"", field.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_format_follows_the_extension() {
        assert_eq!(
            OutputFormat::from_path(Path::new("a/b.CSV")),
            OutputFormat::Csv
        );
        assert_eq!(
            OutputFormat::from_path(Path::new("scores.parquet")),
            OutputFormat::Parquet
        );
    }

    #[test]
    fn fields_are_quoted_with_doubled_quotes() {
        assert_eq!(quote(r#"a "b", c"#), r#""a ""b"", c""#);
    }

    #[test]
    fn inputs_expand_folders_and_patterns_in_order_and_refuse_empty_matches() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["part-2.csv", "part-1.csv", "notes.txt", "x.parquet"] {
            std::fs::write(dir.path().join(name), "a\n1\n").unwrap();
        }
        let expanded = expand_inputs(&[dir.path().to_path_buf()]).unwrap();
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
