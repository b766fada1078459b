//! `churn client`: calls a running server (score a customer, describe the model, list the alert
//! queue, reload), through the wire contract of `churn-api` alone.
//!
//! Text from the server is printed through [`terminal_safe`]: a server (or whoever stored a
//! customer id or note in it) must not be able to send escape sequences to the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use churn_api::client::{AuthorizedChannel, BearerToken, ConnectOptions, TlsOptions};
use churn_api::convert::band_from_proto;
use churn_api::proto;
use churn_api::proto::admin_service_client::AdminServiceClient;
use churn_api::proto::alert_service_client::AlertServiceClient;
use churn_api::proto::churn_service_client::ChurnServiceClient;
use churn_core::RiskBand;

/// The variable holding the token a client sends.
pub const TOKEN_ENV: &str = "CHURN_TOKEN";

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub connection: ConnectArgs,
    #[command(subcommand)]
    pub call: ClientCall,
}

/// Where the server is and how to reach it, for `churn client` and `churn loadtest`. The token
/// comes from a file or the environment, never from a flag: `ps` shows every process's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Server address: host:port (TLS with --tls-ca), http://host:port or https://host:port.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// CA certificates (PEM) the server's certificate must be signed by; turns TLS on.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the server's certificate must hold, when it is not the address's host.
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
    /// File holding the token sent on every call [default: the CHURN_TOKEN variable].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl ConnectArgs {
    /// Returns the connection options: the TLS files, and the token from `--token-file` or,
    /// without it, `CHURN_TOKEN`.
    pub fn options(&self) -> anyhow::Result<ConnectOptions> {
        let tls = self.tls_ca.clone().map(|ca| TlsOptions {
            ca,
            client_certificate: self.tls_cert.clone(),
            client_key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        });
        let token = match &self.token_file {
            Some(file) => Some(read_token_file(file)?),
            None => token_from_env(std::env::var(TOKEN_ENV))?,
        };
        Ok(ConnectOptions { tls, token })
    }

    /// Connects as these flags say.
    pub async fn connect(&self) -> anyhow::Result<AuthorizedChannel> {
        let options = self.options()?;
        Ok(churn_api::client::connect_with(&self.addr, &options).await?)
    }
}

/// Reads a token from a file (one line; surrounding white space is dropped).
fn read_token_file(file: &Path) -> anyhow::Result<BearerToken> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the token file `{}`", file.display()))?;
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(file) {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %file.display(), "the token file is readable by other users; chmod 600 it");
        }
    }
    BearerToken::new(&text).with_context(|| format!("token file `{}`", file.display()))
}

/// Returns the token of `CHURN_TOKEN`, if set and not blank.
fn token_from_env(
    value: Result<String, std::env::VarError>,
) -> anyhow::Result<Option<BearerToken>> {
    match value {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(BearerToken::new(&text).context(TOKEN_ENV)?)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{TOKEN_ENV} is not valid UTF-8"),
    }
}

/// Returns `text` with its control characters, and the invisible marks that reorder text,
/// escaped (`\u{1b}` becomes `\x1b`): text from a server must not move the cursor, recolour or
/// retitle the terminal it is printed on, or make one line read as another.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escaping) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        let code = u32::from(character);
        if !needs_escaping(character) {
            escaped.push(character);
        } else if code < 0x100 {
            let _ = write!(escaped, "\\x{code:02x}");
        } else {
            let _ = write!(escaped, "\\u{{{code:x}}}");
        }
    }
    Cow::Owned(escaped)
}

fn needs_escaping(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
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
        let channel = args.connection.connect().await?;
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
                writeln!(
                    out,
                    "{what}: {} {}",
                    terminal_safe(&model.name),
                    terminal_safe(&model.version)
                )?;
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
        terminal_safe(&response.customer_id),
        response.probability,
        band_from_proto(response.band()).map_or("unknown", RiskBand::as_str),
        response.percentile,
        terminal_safe(&model.name),
        terminal_safe(&model.version)
    )?;
    for (title, reasons) in [
        ("raising risk", &response.raising),
        ("lowering risk", &response.lowering),
    ] {
        writeln!(out, "{title}:")?;
        for reason in reasons {
            writeln!(
                out,
                "  {:+.3}  {}",
                reason.contribution,
                terminal_safe(&reason.message)
            )?;
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
            terminal_safe(&alert.customer_id),
            band_from_proto(alert.band()).map_or("unknown", RiskBand::as_str),
            alert.probability,
            state_name(alert.state()),
            terminal_safe(&alert.raised_at),
            terminal_safe(&alert.acknowledge_by),
        )?;
        if let Some(reason) = alert.reasons.first() {
            writeln!(out, "      {}", terminal_safe(&reason.message))?;
        }
    }
    let counts = |counts: &[proto::AlertCount]| {
        counts
            .iter()
            .map(|count| format!("{} {}", terminal_safe(&count.label), count.count))
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
        terminal_safe(&reference.name),
        terminal_safe(&reference.version),
        terminal_safe(&model.kind),
        terminal_safe(&model.calibration),
        model.training_rows,
        model.training_positives,
        terminal_safe(&model.trained_at)
    )?;
    writeln!(
        out,
        "bands: MEDIUM from {:.3}, HIGH from {:.3}",
        bands.medium, bands.high
    )?;
    for (name, value) in &model.metrics {
        writeln!(out, "  {}: {value:.4}", terminal_safe(name))?;
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
                let categories: Vec<Cow<'_, str>> = feature
                    .categories
                    .iter()
                    .map(|category| terminal_safe(category))
                    .collect();
                format!("categorical: {}", categories.join(", "))
            }
            proto::FeatureKind::Unspecified => "unspecified".to_string(),
        };
        let missing = if feature.missing_allowed {
            ", may be missing"
        } else {
            ""
        };
        writeln!(out, "  {} ({kind}{missing})", terminal_safe(&feature.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_the_server_are_escaped() {
        assert!(matches!(
            terminal_safe("c-1 NPS 3 (détracteur)"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_safe("c-1\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "c-1\\x1b]0;pwned\\x07\\x1b[2J"
        );
        assert_eq!(
            terminal_safe("a\r\nb\tc\u{7f}\u{9b}"),
            "a\\x0d\\x0ab\\x09c\\x7f\\x9b"
        );
        // A right-to-left override would make the rest of the line read backwards.
        assert_eq!(terminal_safe("id\u{202e}gpj.exe"), "id\\u{202e}gpj.exe");
    }

    #[test]
    fn server_text_is_escaped_in_every_line_printed() {
        let response = proto::ScoreResponse {
            customer_id: "c\u{1b}[31m".into(),
            raising: vec![proto::Reason {
                message: "NPS \u{1b}[2J3".into(),
                ..Default::default()
            }],
            model: Some(proto::ModelRef {
                name: "m\u{7}".into(),
                version: "v\u{1b}".into(),
            }),
            ..Default::default()
        };
        let mut out = Vec::new();
        write_score(&response, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
        assert!(text.contains("customer c\\x1b[31m:"), "{text}");
        assert!(text.contains("NPS \\x1b[2J3"), "{text}");
    }

    #[test]
    fn the_token_comes_from_the_file_or_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "churn_abc\n").unwrap();
        let token = read_token_file(&file).unwrap();
        assert_eq!(token.header_value(), "Bearer churn_abc");
        let error = read_token_file(&dir.path().join("none")).unwrap_err();
        assert!(
            error.to_string().contains("cannot read the token file"),
            "{error}"
        );
        assert_eq!(
            token_from_env(Ok("churn_x".into())).unwrap(),
            Some(BearerToken::new("churn_x").unwrap())
        );
        assert_eq!(token_from_env(Ok(" ".into())).unwrap(), None);
        assert_eq!(
            token_from_env(Err(std::env::VarError::NotPresent)).unwrap(),
            None
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_a_ca() {
        use clap::Parser;
        let parse = |args: &[&str]| {
            crate::Cli::try_parse_from(
                ["churn", "client"]
                    .iter()
                    .chain(args)
                    .chain(&["model"])
                    .copied(),
            )
        };
        assert!(parse(&["--tls-cert", "c.pem", "--tls-ca", "ca.pem"]).is_err());
        assert!(parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).is_err());
        assert!(parse(&["--tls-server-name", "x"]).is_err());
        assert!(
            parse(&[
                "--tls-ca",
                "ca.pem",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ])
            .is_ok()
        );
        // No flag takes the token itself.
        assert!(parse(&["--token", "churn_x"]).is_err());
    }
}
