//! Batch rescoring: every customer of one or many CSV or Parquet files scored with reasons and
//! written to Parquet or CSV, a chunk at a time so memory stays bounded however many rows there
//! are. Rows are explained by the same `churn-core` [`Scorer`] call as the gRPC service's, so a
//! customer gets the same probability, band, percentile and reasons on both paths, to the bit.
//!
//! Reading, scoring and writing overlap: one thread reads and parses the next chunk, the scoring
//! pool explains the current one on every core, and one thread encodes and writes the last.
//!
//! A row that cannot be scored (a malformed record, a bad value, an unknown category, a missing
//! customer id) goes to the rejects file with its file, row, customer id and reason, and the run
//! goes on. Every file is written beside its final name and renamed only once the whole run has
//! succeeded, so a failed run leaves no half file and keeps the previous run's files.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use churn_core::{
    AlertDecision, AlertDraft, AlertPolicy, CustomerHistory, Reason, RiskBand, ScoreEvent, Scorer,
    Timestamp, TopReasons, Value,
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
}

/// What to rescore and where to write it.
#[derive(Debug, Clone)]
pub struct RescoreOptions {
    /// Input files, in the order their rows are written.
    pub inputs: Vec<PathBuf>,
    /// The scored rows' file.
    pub output: PathBuf,
    /// Format of `output`.
    pub format: OutputFormat,
    /// CSV of the rows that could not be scored.
    pub rejects: PathBuf,
    /// Reasons kept in each direction.
    pub top_k: usize,
    /// Rows read and scored at a time.
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
    /// The alerts' file.
    pub path: PathBuf,
    /// Format of `path`.
    pub format: OutputFormat,
    /// The policy deciding which scores raise alerts.
    pub policy: AlertPolicy,
}

/// Where a run is, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Rows scored so far.
    pub rows_scored: usize,
    /// Rows rejected so far.
    pub rows_rejected: usize,
    /// Share of the input bytes consumed, from 0 to 1.
    pub fraction: f64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RescoreSummary {
    /// Input files read.
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
struct ColumnPlan {
    columns: Vec<String>,
    id_column: String,
    id: usize,
    value: Option<usize>,
}

impl ColumnPlan {
    fn new(scorer: &Scorer, options: &RescoreOptions) -> Result<Self> {
        let schema = &scorer.artifact().schema;
        let id_column = options
            .id_column
            .clone()
            .or_else(|| schema.id.clone())
            .ok_or(DataError::NoIdColumn)?;
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

/// Scores every row of `options.inputs` with `scorer`, writing the output and the rejects file,
/// and the alerts file when asked; `progress` is called after each chunk. Every input is opened
/// and checked for the model's columns, the id column and the policy's value column before
/// anything is scored.
///
/// A batch run has no score history, so its alerts are those the policy raises for a customer
/// seen for the first time: by band and probability thresholds, not by rises or cool-downs.
pub fn rescore(
    scorer: &Scorer,
    options: &RescoreOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<RescoreSummary> {
    let started = Instant::now();
    let plan = ColumnPlan::new(scorer, options)?;
    if let Some(alerts) = &options.alerts {
        alerts
            .policy
            .validate()
            .map_err(|source| DataError::Policy { source })?;
    }
    // Every input is checked before anything is written; each is opened again when its turn
    // comes, so that thousands of partitions do not hold thousands of read buffers at once.
    for path in &options.inputs {
        ChunkedReader::open(path, &plan.columns, options.chunk_rows)?;
    }
    let sizes: Vec<f64> = options
        .inputs
        .iter()
        .map(|path| std::fs::metadata(path).map_or(1.0, |metadata| metadata.len() as f64))
        .collect();
    let total_size: f64 = sizes.iter().sum::<f64>().max(1.0);

    let scored_at = options
        .scored_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let output = OutputFile::create(options, scorer, scored_at)?;
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
    let mut alerts = Vec::new();
    let policy = options.alerts.as_ref().map(|alerts| &alerts.policy);

    let output = std::thread::scope(|scope| -> Result<PartialFile> {
        let (chunks_in, chunks) = sync_channel(1);
        let (rows_out, rows_to_write) = sync_channel(1);
        let (inputs, columns) = (&options.inputs, &plan.columns);
        scope.spawn(move || read_chunks(inputs, columns, options.chunk_rows, chunks_in));
        let writer = scope.spawn(move || write_rows(output, rows_to_write));
        for message in chunks {
            let (file, chunk) = message?;
            let path = &options.inputs[file];
            let mut scored_rows = Vec::with_capacity(chunk.rows.len());
            let mut rejected: Vec<Reject> = chunk
                .malformed
                .iter()
                .map(|malformed| Reject {
                    row: malformed.row,
                    customer_id: String::new(),
                    feature: None,
                    reason: malformed.reason.clone(),
                })
                .collect();
            let outcomes = score_chunk(scorer, &chunk, &plan, options.top_k);
            for (index, (row, outcome)) in chunk.rows.iter().zip(outcomes).enumerate() {
                let (customer_id, scored) = match outcome {
                    Ok(scored) => scored,
                    Err(reject) => {
                        rejected.push(Reject {
                            row: *row,
                            ..reject
                        });
                        continue;
                    }
                };
                if let Some(policy) = policy {
                    let value = plan.value.and_then(|column| {
                        number_of(chunk.table.columns[column].cells.value(index))
                    });
                    if let Some(alert) =
                        batch_alert(policy, &customer_id, &scored, value, scored_at.as_secs())
                    {
                        alerts.push(alert);
                    }
                }
                summary.bands[band_index(scored.band)] += 1;
                scored_rows.push((customer_id, scored));
            }
            // Malformed and unscorable rows are found apart: put them back in file order.
            rejected.sort_by_key(|reject| reject.row);
            for reject in &rejected {
                rejects.write(path, reject)?;
            }
            summary.rows_rejected += rejected.len();
            summary.rows_scored += scored_rows.len();
            if rows_out.send(scored_rows).is_err() {
                // The writer stopped on an error, which its join below returns.
                break;
            }
            progress(&Progress {
                rows_scored: summary.rows_scored,
                rows_rejected: summary.rows_rejected,
                fraction: (sizes[..file].iter().sum::<f64>() + chunk.progress * sizes[file])
                    / total_size,
            });
        }
        drop(rows_out);
        writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    let rejects = rejects.finish()?;
    let alerts_file = match &options.alerts {
        Some(target) => {
            for alert in &alerts {
                summary.alerts[band_index(alert.draft.band)] += 1;
                summary.revenue_at_risk += alert.draft.revenue_at_risk.unwrap_or(0.0);
            }
            Some(write_alerts(target, &mut alerts, options.top_k)?)
        }
        None => None,
    };
    // Only now, with every file complete, do they take their names.
    output.commit()?;
    rejects.commit()?;
    if let Some(alerts_file) = alerts_file {
        alerts_file.commit()?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads every input chunk by chunk into `chunks`, tagged with the input's index; stops at the
/// first error (sent on) or when the receiver is gone.
fn read_chunks(
    inputs: &[PathBuf],
    columns: &[String],
    chunk_rows: usize,
    chunks: SyncSender<Result<(usize, Chunk)>>,
) {
    for (file, path) in inputs.iter().enumerate() {
        let mut reader = match ChunkedReader::open(path, columns, chunk_rows) {
            Ok(reader) => reader,
            Err(error) => {
                let _ = chunks.send(Err(error));
                return;
            }
        };
        loop {
            let message = match reader.next_chunk() {
                Ok(Some(chunk)) => Ok((file, chunk)),
                Ok(None) => break,
                Err(error) => Err(error),
            };
            let failed = message.is_err();
            if chunks.send(message).is_err() || failed {
                return;
            }
        }
    }
}

/// Writes scored rows as they come; returns the output, complete but not yet renamed.
fn write_rows(
    mut output: OutputFile,
    rows: Receiver<Vec<(String, ScoredRow)>>,
) -> Result<PartialFile> {
    for batch in rows {
        output.write(&batch)?;
    }
    output.finish()
}

/// A scored row as written: its score, band, percentile and strongest reasons each way.
#[derive(Debug)]
struct ScoredRow {
    band: RiskBand,
    percentile: f64,
    top: TopReasons,
}

/// A row that could not be scored.
#[derive(Debug)]
struct Reject {
    /// 1-based row number in its file.
    row: usize,
    customer_id: String,
    feature: Option<String>,
    reason: String,
}

/// Explains the rows of a chunk on all cores, in row order: each row's customer id and score, or
/// why it could not be scored (with its row number still to fill in).
fn score_chunk(
    scorer: &Scorer,
    chunk: &Chunk,
    plan: &ColumnPlan,
    top_k: usize,
) -> Vec<std::result::Result<(String, ScoredRow), Reject>> {
    let table = &chunk.table;
    (0..table.n_rows)
        .into_par_iter()
        .map(|row| {
            let customer_id = match table.columns[plan.id].cells.value(row) {
                Value::Missing => String::new(),
                value => value.to_string().trim().to_string(),
            };
            if customer_id.is_empty() {
                return Err(Reject {
                    row: 0,
                    customer_id,
                    feature: Some(plan.id_column.clone()),
                    reason: format!("the customer id (column `{}`) is missing", plan.id_column),
                });
            }
            // The chunk's columns are the schema's features in order, then the others.
            match scorer.explain_values_top(
                |feature| Some(table.columns[feature].cells.value(row)),
                top_k,
            ) {
                Ok(top) => Ok((
                    customer_id,
                    ScoredRow {
                        band: scorer.band(top.probability),
                        percentile: scorer.percentile(top.probability),
                        top,
                    },
                )),
                Err(error) => Err(Reject {
                    row: 0,
                    feature: error.feature().map(str::to_string),
                    reason: error.to_string(),
                    customer_id,
                }),
            }
        })
        .collect()
}

/// Reads a customer value: a number, or text holding one.
fn number_of(value: Value<'_>) -> Option<f64> {
    match value {
        Value::Number(number) => Some(number),
        Value::Text(text) => text.trim().parse().ok(),
        Value::Bool(_) | Value::Missing => None,
    }
    .filter(|number: &f64| number.is_finite())
}

fn band_index(band: RiskBand) -> usize {
    match band {
        RiskBand::Low => 0,
        RiskBand::Medium => 1,
        RiskBand::High => 2,
    }
}

/// An alert of a batch run, with what an agent reads first.
#[derive(Debug)]
struct BatchAlert {
    customer_id: String,
    percentile: f64,
    /// The reasons raising risk in words, strongest first.
    reasons: Vec<String>,
    draft: AlertDraft,
}

/// Returns the alert the policy raises for a scored row; a batch has no history, so it is a
/// raise or nothing.
fn batch_alert(
    policy: &AlertPolicy,
    customer_id: &str,
    scored: &ScoredRow,
    customer_value: Option<f64>,
    at: u64,
) -> Option<BatchAlert> {
    let event = ScoreEvent {
        probability: scored.top.probability,
        band: scored.band,
        customer_value,
        at: at as Timestamp,
    };
    match policy.evaluate(&event, &CustomerHistory::default()) {
        AlertDecision::Raise(draft) => Some(BatchAlert {
            customer_id: customer_id.to_string(),
            percentile: scored.percentile,
            reasons: scored
                .top
                .raising
                .iter()
                .map(|reason| reason.text.clone())
                .collect(),
            draft,
        }),
        AlertDecision::Update(_) | AlertDecision::Quiet => None,
    }
}

/// Writes the alerts ranked by revenue at risk (unknown values last), then probability, then id:
/// `rank, customer_id, probability, band, percentile, revenue_at_risk, triggers, acknowledge_by,
/// reason_1 … reason_K`. They are held in memory to be ranked: a few hundred bytes each.
fn write_alerts(
    target: &AlertsOutput,
    alerts: &mut [BatchAlert],
    top_k: usize,
) -> Result<PartialFile> {
    alerts.sort_by(|a, b| {
        let value = |alert: &BatchAlert| alert.draft.revenue_at_risk.unwrap_or(f64::NEG_INFINITY);
        value(b)
            .total_cmp(&value(a))
            .then(b.draft.probability.total_cmp(&a.draft.probability))
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    let (file, handle) = PartialFile::create(&target.path)?;
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
        timestamp_column(
            "acknowledge_by",
            alerts
                .iter()
                .map(|a| a.draft.acknowledge_by.saturating_mul(1_000_000))
                .collect(),
        ),
    ];
    for rank in 0..top_k {
        columns.push(Column::new(
            format!("reason_{}", rank + 1).into(),
            alerts
                .iter()
                .map(|a| a.reasons.get(rank).map(String::as_str))
                .collect::<Vec<_>>(),
        ));
    }
    let write_error = |error: PolarsError| file.write_error(error);
    let mut frame = DataFrame::new(height, columns).map_err(write_error)?;
    match target.format {
        OutputFormat::Parquet => ParquetWriter::new(handle).finish(&mut frame).map(drop),
        OutputFormat::Csv => CsvWriter::new(handle).finish(&mut frame),
    }
    .map_err(write_error)?;
    Ok(file)
}

/// Returns a UTC timestamp column from microseconds since the epoch.
fn timestamp_column(name: &str, micros: Vec<i64>) -> Column {
    Series::new(name.into(), micros)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into()
}

/// A file written under `NAME.partial` and given its name only when the run commits it, so a
/// failed run leaves neither a half-written file nor a clobbered previous one.
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
        let handle = File::create(&partial).map_err(|source| DataError::Io {
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
        std::fs::rename(&self.partial, &self.path).map_err(|source| DataError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }

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

/// The output file, written batch by batch.
struct OutputFile {
    writer: OutputWriter,
    file: PartialFile,
    columns: OutputColumns,
}

pub(crate) enum OutputWriter {
    // Boxed: the Parquet writer is several times the CSV one's size.
    Parquet(Box<polars::io::parquet::write::BatchedWriter<File>>),
    Csv(polars::io::csv::write::BatchedWriter<File>),
}

impl OutputWriter {
    /// Starts a Parquet or CSV file of frames with this schema.
    pub(crate) fn create(
        format: OutputFormat,
        handle: File,
        schema: &Schema,
    ) -> PolarsResult<Self> {
        Ok(match format {
            OutputFormat::Parquet => {
                OutputWriter::Parquet(Box::new(ParquetWriter::new(handle).batched(schema)?))
            }
            OutputFormat::Csv => OutputWriter::Csv(CsvWriter::new(handle).batched(schema)?),
        })
    }

    /// Appends a frame.
    pub(crate) fn write_batch(&mut self, frame: &DataFrame) -> PolarsResult<()> {
        match self {
            OutputWriter::Parquet(writer) => writer.write_batch(frame),
            OutputWriter::Csv(writer) => writer.write_batch(frame),
        }
    }

    /// Completes the file.
    pub(crate) fn finish(&mut self) -> PolarsResult<()> {
        match self {
            OutputWriter::Parquet(writer) => writer.finish().map(drop),
            OutputWriter::Csv(writer) => writer.finish(),
        }
    }
}

impl OutputFile {
    fn create(options: &RescoreOptions, scorer: &Scorer, scored_at: Duration) -> Result<Self> {
        let columns = OutputColumns {
            top_k: options.top_k,
            model_name: scorer.artifact().name.clone(),
            model_version: options.model_version.clone(),
            scored_at_micros: i64::try_from(scored_at.as_micros()).unwrap_or(i64::MAX),
        };
        let (file, handle) = PartialFile::create(&options.output)?;
        let write_error = |error: PolarsError| file.write_error(error);
        let schema = columns.frame(&[]).map_err(write_error)?.schema().clone();
        let writer = OutputWriter::create(options.format, handle, &schema).map_err(write_error)?;
        Ok(OutputFile {
            writer,
            file,
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
            .map_err(|error| self.file.write_error(error))?;
        self.writer
            .write_batch(&frame)
            .map_err(|error| self.file.write_error(error))
    }

    /// Completes the file; returns it, not yet renamed.
    fn finish(mut self) -> Result<PartialFile> {
        self.writer
            .finish()
            .map_err(|error| self.file.write_error(error))?;
        Ok(self.file)
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
struct RejectsFile {
    file: PartialFile,
    writer: BufWriter<File>,
}

impl RejectsFile {
    fn create(path: &Path) -> Result<Self> {
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

    fn write(&mut self, input: &Path, reject: &Reject) -> Result<()> {
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
    fn finish(mut self) -> Result<PartialFile> {
        self.writer
            .flush()
            .map_err(|error| self.file.write_error(error))?;
        Ok(self.file)
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
