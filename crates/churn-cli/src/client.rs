//! `churn client`: calls a running server (score a customer, describe the model, list the alert
//! queue, reload), through the wire contract of `churn-api` alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use churn_api::convert::band_from_proto;
use churn_api::proto;
use churn_api::proto::admin_service_client::AdminServiceClient;
use churn_api::proto::alert_service_client::AlertServiceClient;
use churn_api::proto::churn_service_client::ChurnServiceClient;
use churn_core::RiskBand;

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
    let runtime = crate::load_generator::runtime().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let channel = churn_api::client::connect(&args.addr).await?;
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
        .map(|(id, profile)| churn_api::convert::profile_to_proto(id, profile))
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
