//! The `churn` command line: `train`, `score`, `rescore`, `serve`, `client`, `loadtest`,
//! `generate`, `profiles`, `token` and `tls`, over the library crates. All logic lives here
//! rather than in `main.rs`, so tests can run commands in-process.

pub mod abuse;
pub mod client;
pub mod events;
pub mod load_generator;
pub mod loadtest;
pub mod rescore;
pub mod serve;
pub mod tls;
pub mod token;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use churn_core::{FeatureKind, ModelArtifact, Reason, Scorer};
use churn_train::{CalibrationMethod, EventsConfig, ModelChoice, TrainConfig};
use clap::{Parser, Subcommand};
use serde::Serialize;

/// Churn early warning: train churn models and score customers with reasons.
#[derive(Debug, Parser)]
#[command(name = "churn", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trains a model on a CSV or Parquet file and writes model.json, metrics.json, card.md and
    /// card.html.
    Train(TrainArgs),
    /// Scores every customer of a file: one JSON line each, with reasons.
    Score(ScoreArgs),
    /// Rescores every customer of CSV or Parquet files (the nightly batch job): scores with
    /// reasons to Parquet or CSV, rejected rows to their own file, a summary at the end.
    Rescore(rescore::RescoreArgs),
    /// Serves the model over gRPC (default: models/telco on 127.0.0.1:50051).
    Serve(serve::ServeArgs),
    /// Calls a running server: score a customer, describe the model, reload it.
    Client(client::ClientArgs),
    /// Puts Score load on a running server and reports throughput and latency percentiles.
    Loadtest(loadtest::LoadtestArgs),
    /// Writes a seeded synthetic company as event tables: customers, subscriptions, surveys,
    /// tickets, usage and billing.
    Generate(events::GenerateArgs),
    /// Builds one profile per active customer as of a date from event tables, with the churn
    /// label over a horizon.
    Profiles(events::ProfilesArgs),
    /// Adds, revokes and lists the callers of the server's credentials file.
    Token(token::TokenArgs),
    /// Writes TLS certificates for development: `churn tls dev-ca`.
    Tls(tls::TlsArgs),
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// TOML file with the same settings as the flags; flags given too take precedence.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Training data (.csv or .parquet).
    #[arg(long, conflicts_with = "events")]
    pub data: Option<PathBuf>,
    /// A directory of event tables (as `churn generate` writes) to build snapshot profiles
    /// from; the model is tested on the latest snapshot.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// With --events: churn is a subscription ending within this long after a snapshot.
    #[arg(long, value_parser = parse_days)]
    pub horizon: Option<i32>,
    /// With --events: how many monthly snapshots to stack (default 6).
    #[arg(long)]
    pub snapshots: Option<usize>,
    /// With --events: explicit snapshot dates instead, comma-separated YYYY-MM-DD.
    #[arg(long, value_delimiter = ',', conflicts_with = "snapshots")]
    pub as_of: Vec<String>,
    /// With --events: leave out survey and support features (the operational baseline).
    #[arg(long)]
    pub operational_only: bool,
    /// Column holding the churn label.
    #[arg(long, conflicts_with = "events")]
    pub target: Option<String>,
    /// Target value that means churn (needed when the target has more than two values).
    #[arg(long, conflicts_with = "events")]
    pub positive: Option<String>,
    /// Customer id column (kept out of the features).
    #[arg(long, conflicts_with = "events")]
    pub id: Option<String>,
    /// Columns to leave out, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Force a column's kind: NAME=numeric|boolean|categorical (repeatable).
    #[arg(long = "kind", value_parser = parse_kind_override, conflicts_with = "events")]
    pub kinds: Vec<(String, FeatureKind)>,
    /// Model to fit: gradient-boosted trees, logistic regression, or auto (both compared by
    /// cross-validated ROC-AUC, the better one kept; the default).
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Calibration of tree-model probabilities (auto = Platt for trees, none for logistic).
    #[arg(long, value_enum)]
    pub calibration: Option<CalibrationArg>,
    /// Cross-validation folds to report (e.g. 5).
    #[arg(long)]
    pub cv: Option<usize>,
    /// Seed for splits and anything random.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModelArg {
    Auto,
    Logistic,
    Gbdt,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CalibrationArg {
    Auto,
    None,
    Platt,
    Isotonic,
}

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Model folder (holding model.json) or the model.json file itself.
    #[arg(long)]
    pub model: PathBuf,
    /// Customers to score (.csv or .parquet).
    #[arg(long)]
    pub data: PathBuf,
    /// Reasons to list in each direction.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
}

/// Runs a command. Returns exit code 1 when some rows could not be scored.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(args) => train(args).map(|()| ExitCode::SUCCESS),
        Command::Score(args) => score(args, &mut std::io::stdout().lock()),
        Command::Rescore(args) => rescore::rescore(args, &mut std::io::stdout().lock()),
        Command::Serve(args) => serve::serve(args).map(|()| ExitCode::SUCCESS),
        Command::Client(args) => {
            client::client(args, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Loadtest(args) => {
            loadtest::loadtest(args, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            events::generate(args, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Profiles(args) => {
            events::profiles(args, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Token(args) => token::token(
            args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
        .map(|()| ExitCode::SUCCESS),
        Command::Tls(args) => tls::tls(
            args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
        .map(|()| ExitCode::SUCCESS),
    }
}

/// The longest label horizon: ten years.
pub const MAX_HORIZON_DAYS: i32 = 3_650;

/// Parses a duration of whole days: `90d`, `12w`, `90` (days).
pub fn parse_days(text: &str) -> Result<i32, String> {
    let text = text.trim();
    let days = match text.parse::<i32>() {
        Ok(days) => days,
        Err(_) => {
            let duration = humantime::parse_duration(text)
                .map_err(|error| format!("`{text}`: {error} (e.g. 90d)"))?;
            if duration.as_secs() % 86_400 != 0 {
                return Err(format!("`{text}`: not a whole number of days"));
            }
            i32::try_from(duration.as_secs() / 86_400).map_err(|_| format!("`{text}`: too long"))?
        }
    };
    if !(1..=MAX_HORIZON_DAYS).contains(&days) {
        return Err(format!(
            "`{text}`: must be at least one day and at most {MAX_HORIZON_DAYS}"
        ));
    }
    Ok(days)
}

fn parse_kind_override(text: &str) -> Result<(String, FeatureKind), String> {
    let (name, kind) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected NAME=numeric|boolean|categorical"))?;
    let kind = match kind.trim() {
        "numeric" => FeatureKind::Numeric,
        "boolean" => FeatureKind::Boolean,
        "categorical" => FeatureKind::Categorical,
        other => {
            return Err(format!(
                "`{other}`: expected numeric, boolean or categorical"
            ));
        }
    };
    Ok((name.trim().to_string(), kind))
}

/// Builds the training configuration from the config file (paths relative to it) and flags.
pub fn train_config(args: TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config `{}`", path.display()))?;
            let mut config: TrainConfig = toml::from_str(&text)
                .with_context(|| format!("invalid config `{}`", path.display()))?;
            let base = path.parent().unwrap_or(Path::new(""));
            config.data = base.join(&config.data);
            config.out = config.out.map(|out| base.join(out));
            config
        }
        None => match (&args.events, &args.data, &args.target) {
            (Some(events), _, _) => {
                TrainConfig::new(events.clone(), churn_data::profiles::LABEL.to_string())
            }
            (None, Some(data), Some(target)) => TrainConfig::new(data.clone(), target.clone()),
            _ => bail!("`churn train` needs --data and --target, --events, or --config"),
        },
    };
    if let Some(events) = args.events {
        config.data = events;
        config.target = churn_data::profiles::LABEL.to_string();
        config.events.get_or_insert_with(EventsConfig::default);
    }
    let event_flags = args.horizon.is_some()
        || args.snapshots.is_some()
        || !args.as_of.is_empty()
        || args.operational_only;
    match &mut config.events {
        Some(events) => {
            if let Some(horizon) = args.horizon {
                events.horizon_days = horizon;
            }
            // A count on the command line replaces dates from the config, and dates a count.
            if let Some(count) = args.snapshots {
                events.snapshot_count = count;
                events.snapshots.clear();
            }
            if !args.as_of.is_empty() {
                events.snapshots = args.as_of;
            }
            events.operational_only |= args.operational_only;
        }
        None if event_flags => {
            bail!("--horizon, --snapshots, --as-of and --operational-only need --events")
        }
        None => {}
    }
    if let Some(data) = args.data {
        config.data = data;
    }
    if let Some(target) = args.target {
        config.target = target;
    }
    if args.positive.is_some() {
        config.positive = args.positive;
    }
    if args.id.is_some() {
        config.id = args.id;
    }
    config.ignore.extend(args.ignore);
    config.kinds.extend(args.kinds);
    if let Some(model) = args.model {
        config.model = match model {
            ModelArg::Auto => ModelChoice::Auto,
            ModelArg::Logistic => ModelChoice::Logistic,
            ModelArg::Gbdt => ModelChoice::Gbdt,
        };
    }
    if let Some(calibration) = args.calibration {
        config.calibration = match calibration {
            CalibrationArg::Auto => CalibrationMethod::Auto,
            CalibrationArg::None => CalibrationMethod::None,
            CalibrationArg::Platt => CalibrationMethod::Platt,
            CalibrationArg::Isotonic => CalibrationMethod::Isotonic,
        };
    }
    if args.cv.is_some() {
        config.cv = args.cv;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if args.out.is_some() {
        config.out = args.out;
    }
    Ok(config)
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let config = train_config(args)?;
    let Some(out) = config.out.clone() else {
        bail!("`churn train` needs --out (or `out` in the config)");
    };
    let name = config.name.clone().unwrap_or_else(|| {
        std::fs::canonicalize(&out)
            .unwrap_or_else(|_| out.clone())
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let outcome = churn_train::train(&config, &name)
        .with_context(|| format!("training on `{}`", config.data.display()))?;
    outcome
        .write(&out)
        .with_context(|| format!("writing the model to `{}`", out.display()))?;
    let metrics = outcome.metrics_json();
    tracing::info!(out = %out.display(), %metrics, "model written");
    Ok(())
}

/// Reads the artifact from a model folder or a model.json path.
pub fn load_model(path: &Path) -> anyhow::Result<ModelArtifact> {
    let (file, json) = read_model(path)?;
    ModelArtifact::from_json(&json).with_context(|| format!("model `{}`", file.display()))
}

/// Returns the model.json path of a model folder or file, and its text.
pub fn read_model(path: &Path) -> anyhow::Result<(PathBuf, String)> {
    let file = if path.is_dir() {
        path.join("model.json")
    } else {
        path.to_path_buf()
    };
    let json = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read model `{}`", file.display()))?;
    Ok((file, json))
}

#[derive(Serialize)]
struct ScoreLine<'a> {
    id: &'a str,
    probability: f64,
    band: &'static str,
    percentile: f64,
    logit: f64,
    base_value: f64,
    raising: Vec<&'a Reason>,
    lowering: Vec<&'a Reason>,
}

/// Scores a file, one JSON line per customer on `out`; bad rows are reported on stderr.
pub fn score(args: ScoreArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let scorer = Scorer::new(load_model(&args.model)?)
        .with_context(|| format!("model `{}`", args.model.display()))?;
    let table = churn_data::read_table(&args.data)?;
    let mut failed = 0;
    for scored in churn_data::score_table(&scorer, &table)? {
        match scored.outcome {
            Ok(explanation) => {
                let line = ScoreLine {
                    id: &scored.id,
                    probability: explanation.probability,
                    band: scorer.band(explanation.probability).as_str(),
                    percentile: scorer.percentile(explanation.probability),
                    logit: explanation.logit,
                    base_value: explanation.base_value,
                    raising: explanation.raising(args.top),
                    lowering: explanation.lowering(args.top),
                };
                serde_json::to_writer(&mut *out, &line)?;
                writeln!(out)?;
            }
            Err(error) => {
                failed += 1;
                eprintln!(
                    "error: `{}` row {} (id {}): {error}",
                    args.data.display(),
                    scored.row,
                    scored.id
                );
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "error: {failed} of {} rows could not be scored",
            table.n_rows
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks Linux not to back this process's memory with transparent huge pages, for a process
/// whose answers must not stall: the allocator (mimalloc) marks its arenas for huge pages, and
/// the first touch of each fresh 2 MiB then clears it whole, in the thread that touched it.
/// On a virtual machine that took 6-7 ms (measured with 5,000 Score calls/s of new customers:
/// the alert store's memory grew under the lock every call takes, and every call waited), where
/// 4 KiB pages spread the same cost thin. Best effort: a refusal is logged and changes nothing.
pub fn avoid_huge_page_stalls() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(%error, "cannot turn transparent huge pages off");
    }
}
