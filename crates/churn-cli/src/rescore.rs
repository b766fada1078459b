//! `churn rescore`: the nightly batch job. Scores every customer of CSV or Parquet files with the
//! same reasons as the service, with a progress bar on a terminal and log lines elsewhere, and
//! exits non-zero only when too many rows were rejected.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use churn_core::{AlertPolicy, ModelArtifact, Scorer};
use churn_data::{OutputFormat, Progress, RescoreOptions, RescoreSummary};
use indicatif::{ProgressBar, ProgressStyle};

use crate::read_model;

#[derive(Debug, clap::Args)]
pub struct RescoreArgs {
    /// Model folder (holding model.json) or the model.json file itself.
    #[arg(long, default_value = "models/telco")]
    pub model: PathBuf,
    /// Customers to score: .csv or .parquet files, folders of them, or glob patterns such as
    /// 'data/part-*.parquet' (quoted, so the shell leaves it alone). Repeatable.
    #[arg(long, num_args = 1.., required = true)]
    pub input: Vec<PathBuf>,
    /// Scored output: Parquet, or CSV when the name ends in .csv (or with --format).
    #[arg(long)]
    pub output: PathBuf,
    /// Output format, when the file name should not decide it.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Reasons to keep in each direction.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// CSV of the rows that could not be scored (default: beside the output, `NAME.rejects.csv`).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Exit with code 1 when more than this share of rows (0–1) is rejected.
    #[arg(long, default_value_t = 0.01)]
    pub max_reject_share: f64,
    /// Customer id column (default: the model's id column).
    #[arg(long)]
    pub id: Option<String>,
    /// Rows read and scored at a time; memory grows with it.
    #[arg(long, default_value_t = churn_data::rescore::DEFAULT_CHUNK_ROWS)]
    pub chunk_rows: usize,
    /// Scoring threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the alerts the alert policy raises, ranked by revenue at risk (Parquet, or
    /// CSV when the name ends in .csv).
    #[arg(long)]
    pub alerts: Option<PathBuf>,
    /// Alert policy (TOML: min_band, min_probability, min_rise, cooldown_days, value_feature,
    /// value_periods and the table acknowledge_within_hours); the defaults when not given.
    #[arg(long, requires = "alerts")]
    pub alert_policy: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Parquet,
    Csv,
}

/// Runs `churn rescore`, printing the summary on `out`. Exit code 1 when the share of rejected
/// rows passes `--max-reject-share`.
pub fn rescore(args: RescoreArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.max_reject_share),
        "--max-reject-share {} is not a share between 0 and 1",
        args.max_reject_share
    );
    anyhow::ensure!(args.chunk_rows > 0, "--chunk-rows must be at least 1");
    let (file, json) = read_model(&args.model)?;
    let artifact =
        ModelArtifact::from_json(&json).with_context(|| format!("model `{}`", file.display()))?;
    let scorer = Scorer::new(artifact).with_context(|| format!("model `{}`", file.display()))?;
    let inputs = churn_data::expand_inputs(&args.input)?;
    let rejects = args.rejects.clone().unwrap_or_else(|| {
        let stem = args
            .output
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scores".into());
        args.output.with_file_name(format!("{stem}.rejects.csv"))
    });
    let alerts = match &args.alerts {
        None => None,
        Some(path) => Some(churn_data::rescore::AlertsOutput {
            path: path.clone(),
            format: OutputFormat::from_path(path)?,
            policy: match &args.alert_policy {
                Some(file) => read_alert_policy(file)?,
                None => AlertPolicy::default(),
            },
        }),
    };
    let options = RescoreOptions {
        inputs,
        output: args.output.clone(),
        format: match args.format {
            Some(FormatArg::Parquet) => OutputFormat::Parquet,
            Some(FormatArg::Csv) => OutputFormat::Csv,
            None => OutputFormat::from_path(&args.output)?,
        },
        rejects: rejects.clone(),
        top_k: args.top,
        chunk_rows: args.chunk_rows,
        id_column: args.id.clone(),
        model_version: ModelArtifact::version_of(&json),
        scored_at: SystemTime::now(),
        alerts,
    };
    let mut threads = rayon::ThreadPoolBuilder::new();
    if let Some(count) = args.threads {
        threads = threads.num_threads(count);
    }
    let pool = threads.build().context("starting the scoring threads")?;
    let mut reporter = ProgressReporter::new();
    let summary = pool
        .install(|| churn_data::rescore(&scorer, &options, |progress| reporter.report(progress)))
        .with_context(|| format!("rescoring into `{}`", args.output.display()))?;
    reporter.finish();
    write_summary(out, &summary, &options)?;
    if summary.reject_share() > args.max_reject_share {
        eprintln!(
            "error: {} of {} rows rejected ({:.2}%), more than --max-reject-share {}; see `{}`",
            summary.rows_rejected,
            summary.rows_scored + summary.rows_rejected,
            summary.reject_share() * 100.0,
            args.max_reject_share,
            rejects.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn write_summary(
    out: &mut impl Write,
    summary: &RescoreSummary,
    options: &RescoreOptions,
) -> anyhow::Result<()> {
    let [low, medium, high] = summary.bands;
    writeln!(
        out,
        "rescored {} file{} in {:.1} s: {} rows scored, {} rejected, {:.0} rows/s",
        summary.files,
        if summary.files == 1 { "" } else { "s" },
        summary.elapsed.as_secs_f64(),
        summary.rows_scored,
        summary.rows_rejected,
        summary.rows_per_second()
    )?;
    writeln!(out, "bands: HIGH {high}, MEDIUM {medium}, LOW {low}")?;
    writeln!(out, "scores: {}", options.output.display())?;
    writeln!(out, "rejects: {}", options.rejects.display())?;
    if let Some(alerts) = &options.alerts {
        let [low, medium, high] = summary.alerts;
        writeln!(
            out,
            "alerts: {} (HIGH {high}, MEDIUM {medium}, LOW {low}), revenue at risk {:.2}: {}",
            low + medium + high,
            summary.revenue_at_risk,
            alerts.path.display()
        )?;
    }
    Ok(())
}

/// A progress bar on a terminal; a log line every few seconds otherwise.
struct ProgressReporter {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

/// Steps of the bar, so that fractions of the input show as a smooth bar and an ETA.
const BAR_STEPS: u64 = 10_000;

impl ProgressReporter {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(BAR_STEPS);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}%  {msg}  eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        ProgressReporter {
            bar,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    fn report(&mut self, progress: &Progress) {
        let rows = progress.rows_scored + progress.rows_rejected;
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        match &self.bar {
            Some(bar) => {
                bar.set_position((progress.fraction * BAR_STEPS as f64) as u64);
                bar.set_message(format!(
                    "{rows} rows ({} rejected), {rate:.0} rows/s",
                    progress.rows_rejected
                ));
            }
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                let elapsed = self.started.elapsed().as_secs_f64();
                let eta = elapsed * (1.0 - progress.fraction) / progress.fraction.max(1e-9);
                tracing::info!(
                    rows,
                    rejected = progress.rows_rejected,
                    rows_per_second = rate.round(),
                    percent = (progress.fraction * 100.0).round(),
                    eta_seconds = eta.round(),
                    "rescoring"
                );
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Reads an alert policy file, naming it in any error.
fn read_alert_policy(file: &Path) -> anyhow::Result<AlertPolicy> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read alert policy `{}`", file.display()))?;
    AlertPolicy::from_toml(&text).with_context(|| format!("alert policy `{}`", file.display()))
}
