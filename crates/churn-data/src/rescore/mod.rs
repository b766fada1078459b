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

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use churn_core::{AlertPolicy, Scorer};

use crate::chunks::{Chunk, ChunkedReader};
use crate::error::{DataError, Result};
use crate::writers::PartialFile;

mod alerts;
mod inputs;
mod output;
mod score;

use alerts::{BatchAlert, batch_alert, write_alerts};
use inputs::ColumnPlan;
pub use inputs::expand_inputs;
use output::{OutputFile, RejectsFile};
use score::{Reject, ScoredRow, band_index, number_of, score_chunk};

/// The file kind of the scored output (defined with the other output writers).
pub use crate::writers::OutputFormat;

/// Rows read and scored per chunk unless told otherwise: large enough to keep both cores busy,
/// small enough that a chunk's text stays in the tens of megabytes.
pub const DEFAULT_CHUNK_ROWS: usize = 50_000;

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
    /// Rows scored and written.
    pub rows_scored: usize,
    /// Rows written to the rejects file.
    pub rows_rejected: usize,
    /// Scored rows per band: LOW, MEDIUM, HIGH.
    pub bands: [usize; 3],
    /// Alerts raised per band: LOW, MEDIUM, HIGH (all zero without an alerts output).
    pub alerts: [usize; 3],
    /// Sum of the alerts' revenue at risk, over those whose customer value is known.
    pub revenue_at_risk: f64,
    /// Wall time of the run.
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
            let sorted = sort_chunk(scorer, &chunk, &plan, options.top_k, policy, scored_at);
            for reject in &sorted.rejected {
                rejects.write(&options.inputs[file], reject)?;
            }
            for (_, scored) in &sorted.scored {
                summary.bands[band_index(scored.band)] += 1;
            }
            alerts.extend(sorted.alerts);
            summary.rows_rejected += sorted.rejected.len();
            summary.rows_scored += sorted.scored.len();
            if rows_out.send(sorted.scored).is_err() {
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

/// A chunk's rows sorted out: those scored (with the alerts they raise) and those rejected.
struct SortedChunk {
    scored: Vec<(String, ScoredRow)>,
    /// Malformed and unscorable rows, in file order.
    rejected: Vec<Reject>,
    alerts: Vec<BatchAlert>,
}

/// Scores a chunk and sorts its rows into scored and rejected ones; with a policy, collects the
/// alerts the scored rows raise at `scored_at`.
fn sort_chunk(
    scorer: &Scorer,
    chunk: &Chunk,
    plan: &ColumnPlan,
    top_k: usize,
    policy: Option<&AlertPolicy>,
    scored_at: Duration,
) -> SortedChunk {
    let mut sorted = SortedChunk {
        scored: Vec::with_capacity(chunk.rows.len()),
        rejected: chunk
            .malformed
            .iter()
            .map(|malformed| Reject {
                row: malformed.row,
                customer_id: String::new(),
                feature: None,
                reason: malformed.reason.clone(),
            })
            .collect(),
        alerts: Vec::new(),
    };
    let outcomes = score_chunk(scorer, chunk, plan, top_k);
    for (index, (row, outcome)) in chunk.rows.iter().zip(outcomes).enumerate() {
        let (customer_id, scored) = match outcome {
            Ok(scored) => scored,
            Err(reject) => {
                sorted.rejected.push(Reject {
                    row: *row,
                    ..reject
                });
                continue;
            }
        };
        if let Some(policy) = policy {
            let value = plan
                .value
                .and_then(|column| number_of(chunk.table.columns[column].cells.value(index)));
            if let Some(alert) =
                batch_alert(policy, &customer_id, &scored, value, scored_at.as_secs())
            {
                sorted.alerts.push(alert);
            }
        }
        sorted.scored.push((customer_id, scored));
    }
    // Malformed and unscorable rows are found apart: put them back in file order.
    sorted.rejected.sort_by_key(|reject| reject.row);
    sorted
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
