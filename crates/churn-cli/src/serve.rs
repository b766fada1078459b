//! `churn serve`, `churn client` and `churn loadtest`: the gRPC service and its callers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use churn_core::RiskBand;
use churn_serve::convert::band_from_proto;
use churn_serve::proto;
use churn_serve::proto::admin_service_client::AdminServiceClient;
use churn_serve::proto::alert_service_client::AlertServiceClient;
use churn_serve::proto::churn_service_client::ChurnServiceClient;
use churn_serve::{ServeOptions, config::CONFIG_ENV};

/// Flags of `churn serve`; each is also a `CHURN_…` variable and a key of the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (or CHURN_CONFIG); flags and CHURN_ variables take precedence over it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model folder or model.json [CHURN_MODEL; default models/telco].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// gRPC address [CHURN_ADDR; default 127.0.0.1:50051].
    #[arg(long)]
    pub addr: Option<std::net::SocketAddr>,
    /// Address of the HTTP /metrics endpoint [CHURN_METRICS_ADDR; default 127.0.0.1:9464].
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Most profiles per ScoreBatch call [CHURN_MAX_BATCH; default 1000].
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Most reasons returned each way [CHURN_MAX_TOP_K; default 20].
    #[arg(long)]
    pub max_top_k: Option<usize>,
    /// Largest request message in bytes [CHURN_MAX_MESSAGE_BYTES; default 4194304].
    #[arg(long)]
    pub max_message_bytes: Option<usize>,
    /// How often to check the model file for changes, in ms; 0 = never
    /// [CHURN_WATCH_INTERVAL_MS; default 1000].
    #[arg(long)]
    pub watch_interval_ms: Option<u64>,
    /// SQLite file keeping alerts and last scores, or `off` for no alerts
    /// [CHURN_ALERTS_DB; default churn-alerts.sqlite].
    #[arg(long)]
    pub alerts_db: Option<PathBuf>,
    /// Alert policy TOML [CHURN_ALERT_POLICY; default alert-policy.toml next to the model, else
    /// built-in: HIGH band or a rise of 0.2, 14-day cool-down].
    #[arg(long)]
    pub alert_policy: Option<PathBuf>,
    /// `normal` (a commit survives the process being killed) or `full` (also a power cut:
    /// fsync per commit) [CHURN_ALERTS_SYNC; default normal].
    #[arg(long)]
    pub alerts_sync: Option<String>,
    /// How often open alerts are checked against their time to acknowledge, in ms
    /// [CHURN_ESCALATION_INTERVAL_MS; default 30000].
    #[arg(long)]
    pub escalation_interval_ms: Option<u64>,
    /// Alert events buffered for live streams before a slow StreamAlerts client is cut off
    /// [CHURN_ALERT_STREAM_BUFFER; default 4096].
    #[arg(long)]
    pub alert_stream_buffer: Option<usize>,
    /// Serve the agent console at /console on the metrics port, `true` or `false`
    /// [CHURN_CONSOLE; default true when alerts are on].
    #[arg(long)]
    pub console: Option<bool>,
    /// Token the console requires (prefer CHURN_CONSOLE_TOKEN: flags show in `ps`); required
    /// when --metrics-addr is not a loopback address [CHURN_CONSOLE_TOKEN].
    #[arg(long)]
    pub console_token: Option<String>,
}

/// Resolves the server settings: flags, then `CHURN_` variables, then the config file.
pub fn serve_config(
    args: ServeArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<churn_serve::ServeConfig> {
    let env: Vec<(String, String)> = env.into_iter().collect();
    let config_file = args.config.clone().or_else(|| {
        env.iter()
            .find(|(key, _)| key == CONFIG_ENV)
            .map(|(_, value)| PathBuf::from(value))
    });
    let from_flags = ServeOptions {
        model: args.model,
        addr: args.addr,
        metrics_addr: args.metrics_addr,
        max_batch: args.max_batch,
        max_top_k: args.max_top_k,
        max_message_bytes: args.max_message_bytes,
        watch_interval_ms: args.watch_interval_ms,
        alerts_db: args.alerts_db,
        alert_policy: args.alert_policy,
        alerts_sync: args.alerts_sync,
        escalation_interval_ms: args.escalation_interval_ms,
        alert_stream_buffer: args.alert_stream_buffer,
        console: args.console,
        console_token: args.console_token,
    };
    let from_file = match &config_file {
        Some(path) => ServeOptions::from_file(path)?,
        None => ServeOptions::default(),
    };
    Ok(from_flags
        .or(ServeOptions::from_env(env)?)
        .or(from_file)
        .resolve()?)
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(args, std::env::vars())?;
    churn_serve::avoid_huge_page_stalls();
    let runtime = churn_serve::runtime().context("cannot start the async runtime")?;
    runtime.block_on(churn_serve::serve(config))?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    #[command(subcommand)]
    pub call: ClientCall,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCall {
    /// Scores one customer of a CSV or Parquet file and prints the risk and its reasons.
    Score {
        /// File holding the customer (columns named as the model's features).
        #[arg(long)]
        data: PathBuf,
        /// Customer id to look up in the model's id column.
        #[arg(long, conflicts_with = "row")]
        customer: Option<String>,
        /// 1-based row number instead of an id (default 1).
        #[arg(long)]
        row: Option<usize>,
        /// Reasons each way.
        #[arg(long, default_value_t = 5)]
        top: u32,
    },
    /// Prints the loaded model's name, version, kind, metrics and features.
    Model,
    /// Prints the open alert queue, most urgent first, and the alert statistics.
    Alerts {
        /// Only alerts of this band or above (low, medium, high).
        #[arg(long)]
        min_band: Option<String>,
        /// Only alerts of this assignee.
        #[arg(long)]
        assignee: Option<String>,
        /// Most alerts to print.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Asks the server to reload its model file.
    Reload,
}

/// Calls the server once and prints the answer.
pub fn client(args: ClientArgs, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let runtime = churn_serve::runtime().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let channel = churn_serve::loadtest::connect(&args.addr).await?;
        match args.call {
            ClientCall::Score {
                data,
                customer,
                row,
                top,
            } => {
                let mut scoring = ChurnServiceClient::new(channel);
                let model = scoring
                    .get_model(proto::GetModelRequest {})
                    .await?
                    .into_inner();
                let profiles = profiles_for(&model, &data)?;
                let profile = match (customer, row) {
                    (Some(id), _) => profiles
                        .into_iter()
                        .find(|profile| profile.customer_id == id)
                        .with_context(|| format!("no customer `{id}` in `{}`", data.display()))?,
                    (None, row) => {
                        let row = row.unwrap_or(1);
                        let count = profiles.len();
                        profiles
                            .into_iter()
                            .nth(row.saturating_sub(1))
                            .with_context(|| {
                                format!("row {row} not in `{}` ({count} rows)", data.display())
                            })?
                    }
                };
                let response = scoring
                    .score(proto::ScoreRequest {
                        profile: Some(profile),
                        top_k: top,
                    })
                    .await?
                    .into_inner();
                write_score(&response, out)?;
            }
            ClientCall::Alerts {
                min_band,
                assignee,
                limit,
            } => {
                let min_band = match min_band.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None => proto::RiskBand::Unspecified,
                    Some("low") => proto::RiskBand::Low,
                    Some("medium") => proto::RiskBand::Medium,
                    Some("high") => proto::RiskBand::High,
                    Some(other) => bail!("--min-band `{other}`: expected low, medium or high"),
                };
                let mut alerts = AlertServiceClient::new(channel);
                let page = alerts
                    .list_alerts(proto::ListAlertsRequest {
                        filter: Some(proto::AlertFilter {
                            min_band: min_band.into(),
                            assignee: assignee.unwrap_or_default(),
                            states: vec![
                                proto::AlertState::Open.into(),
                                proto::AlertState::Acknowledged.into(),
                            ],
                            ..Default::default()
                        }),
                        page_size: limit,
                        page_token: String::new(),
                    })
                    .await?
                    .into_inner();
                let stats = alerts
                    .alert_stats(proto::AlertStatsRequest {})
                    .await?
                    .into_inner();
                write_alerts(&page, &stats, out)?;
            }
            ClientCall::Model => {
                let mut scoring = ChurnServiceClient::new(channel);
                let model = scoring
                    .get_model(proto::GetModelRequest {})
                    .await?
                    .into_inner();
                write_model(&model, out)?;
            }
            ClientCall::Reload => {
                let mut admin = AdminServiceClient::new(channel);
                let reloaded = admin
                    .reload_model(proto::ReloadModelRequest {})
                    .await?
                    .into_inner();
                let model = reloaded.model.unwrap_or_default();
                let what = if reloaded.changed {
                    "reloaded"
                } else {
                    "unchanged"
                };
                writeln!(out, "{what}: {} {}", model.name, model.version)?;
            }
        }
        Ok(())
    })
}

/// Reads a file's rows as protobuf profiles of a served model's features, with their ids.
pub fn profiles_for(model: &proto::ModelInfo, data: &Path) -> anyhow::Result<Vec<proto::Profile>> {
    let table = churn_data::read_table(data)?;
    let features: Vec<String> = model
        .features
        .iter()
        .map(|feature| feature.name.clone())
        .collect();
    let id_column = (!model.id_column.is_empty()).then_some(model.id_column.as_str());
    Ok(churn_data::table_profiles(&table, &features, id_column)?
        .iter()
        .map(|(id, profile)| churn_serve::convert::profile_to_proto(id, profile))
        .collect())
}

fn write_score(
    response: &proto::ScoreResponse,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let model = response.model.clone().unwrap_or_default();
    writeln!(
        out,
        "customer {}: churn probability {:.3}, {} risk, {:.0}th percentile (model {} {})",
        response.customer_id,
        response.probability,
        band_from_proto(response.band()).map_or("unknown", RiskBand::as_str),
        response.percentile,
        model.name,
        model.version
    )?;
    for (title, reasons) in [
        ("raising risk", &response.raising),
        ("lowering risk", &response.lowering),
    ] {
        writeln!(out, "{title}:")?;
        for reason in reasons {
            writeln!(out, "  {:+.3}  {}", reason.contribution, reason.message)?;
        }
    }
    if let Some(alert) = &response.alert {
        let kind = match alert.kind() {
            proto::AlertEventKind::Raised => "raised",
            _ => "updated",
        };
        writeln!(
            out,
            "alert #{} {kind} (`churn client alerts` lists the queue)",
            alert.alert_id
        )?;
    }
    Ok(())
}

fn write_alerts(
    page: &proto::ListAlertsResponse,
    stats: &proto::AlertStatsResponse,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let plural = if page.total == 1 { "" } else { "s" };
    writeln!(
        out,
        "{} unresolved alert{plural}, most urgent first (showing {}):",
        page.total,
        page.alerts.len()
    )?;
    for alert in &page.alerts {
        let revenue = alert
            .revenue_at_risk
            .map_or_else(|| "unknown".to_string(), |revenue| format!("{revenue:.0}"));
        let escalated = match alert.escalation_level {
            0 => String::new(),
            level => format!(", escalated ×{level}"),
        };
        writeln!(
            out,
            "  #{} {} {} {:.2} at risk {revenue}, {} since {}, acknowledge by {}{escalated}",
            alert.id,
            alert.customer_id,
            band_from_proto(alert.band()).map_or("unknown", RiskBand::as_str),
            alert.probability,
            state_name(alert.state()),
            alert.raised_at,
            alert.acknowledge_by,
        )?;
        if let Some(reason) = alert.reasons.first() {
            writeln!(out, "      {}", reason.message)?;
        }
    }
    let counts = |counts: &[proto::AlertCount]| {
        counts
            .iter()
            .map(|count| format!("{} {}", count.label, count.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        out,
        "all alerts: {} ({})",
        stats.total,
        counts(&stats.by_state)
    )?;
    writeln!(out, "outcomes: {}", counts(&stats.by_outcome))?;
    if let Some(seconds) = stats.median_seconds_to_acknowledge {
        writeln!(out, "median time to acknowledge: {seconds:.0} s")?;
    }
    if let (Some(retained), Some(churned)) = (stats.retained_share, stats.churned_share) {
        writeln!(
            out,
            "of resolved alerts: {:.0}% retained, {:.0}% churned",
            retained * 100.0,
            churned * 100.0
        )?;
    }
    Ok(())
}

fn state_name(state: proto::AlertState) -> &'static str {
    match state {
        proto::AlertState::Open => "open",
        proto::AlertState::Acknowledged => "acknowledged",
        proto::AlertState::Resolved => "resolved",
        proto::AlertState::Unspecified => "unknown",
    }
}

fn write_model(model: &proto::ModelInfo, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let reference = model.model.clone().unwrap_or_default();
    let bands = model.bands.unwrap_or_default();
    writeln!(
        out,
        "model {} {} ({}, calibration {}), trained on {} rows ({} churned), written {}",
        reference.name,
        reference.version,
        model.kind,
        model.calibration,
        model.training_rows,
        model.training_positives,
        model.trained_at
    )?;
    writeln!(
        out,
        "bands: MEDIUM from {:.3}, HIGH from {:.3}",
        bands.medium, bands.high
    )?;
    for (name, value) in &model.metrics {
        writeln!(out, "  {name}: {value:.4}")?;
    }
    writeln!(out, "features:")?;
    for feature in &model.features {
        let kind = match feature.kind() {
            proto::FeatureKind::Numeric => format!(
                "numeric, {} to {} in training",
                feature.training_min, feature.training_max
            ),
            proto::FeatureKind::Boolean => "boolean".to_string(),
            proto::FeatureKind::Categorical => {
                format!("categorical: {}", feature.categories.join(", "))
            }
            proto::FeatureKind::Unspecified => "unspecified".to_string(),
        };
        let missing = if feature.missing_allowed {
            ", may be missing"
        } else {
            ""
        };
        writeln!(out, "  {} ({kind}{missing})", feature.name)?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// Server URL.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// Customers to send, cycled (columns named as the model's features).
    #[arg(long, default_value = "notebooks-data/telco/Telco-Customer-Churn.csv")]
    pub data: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// HTTP/2 connections shared by the requests.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// How long to measure, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unmeasured run-in first, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Requests per second in total; without it, as fast as the server answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Reasons asked for each way.
    #[arg(long, default_value_t = 5)]
    pub top: u32,
    /// Give every request a new customer id, so the server's alert policy sees new customers
    /// (raising alerts) rather than the same ones again (updating them).
    #[arg(long)]
    pub fresh_customers: bool,
}

/// Runs a load test and prints its table; fails if any request failed.
pub fn loadtest(args: LoadtestArgs, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        bail!("--rate must be a positive number of requests per second");
    }
    // The generator's latencies are the figures: its own memory must not stall it either.
    churn_serve::avoid_huge_page_stalls();
    let runtime = churn_serve::loadtest::runtime().context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let channel = churn_serve::loadtest::connect(&args.addr).await?;
        let model = ChurnServiceClient::new(channel)
            .get_model(proto::GetModelRequest {})
            .await?
            .into_inner();
        let profiles = profiles_for(&model, &args.data)?;
        let test = churn_serve::loadtest::LoadTest {
            addr: args.addr.clone(),
            concurrency: args.concurrency,
            connections: args.connections,
            duration: args.duration,
            warmup: args.warmup,
            rate: args.rate,
            top_k: args.top,
            fresh_customers: args.fresh_customers,
        };
        anyhow::Ok(churn_serve::loadtest::run(&test, profiles).await?)
    })?;
    write!(out, "{report}")?;
    if report.errors > 0 {
        bail!("{} of {} requests failed", report.errors, report.requests);
    }
    Ok(())
}
