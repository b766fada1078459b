//! `churn serve`: the gRPC service, with its settings from flags, `CHURN_…` variables and a
//! config file.

use std::path::PathBuf;

use anyhow::Context;
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
    /// when --metrics-addr is not a loopback address [CHURN_CONSOLE_TOKEN; no default].
    #[arg(long)]
    pub console_token: Option<String>,
    /// Certificate chain (PEM) for TLS on both ports [CHURN_TLS_CERT; default none: plaintext,
    /// allowed on loopback addresses only].
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert [CHURN_TLS_KEY; default none].
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to: mutual TLS, the certificate's subject
    /// names the caller [CHURN_TLS_CLIENT_CA; default none].
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// Credentials file of callers, roles and token hashes, written by `churn token add`
    /// [CHURN_CREDENTIALS; default none: no authentication, loopback addresses only].
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Serve off the loopback without TLS or credentials, for a network trusted end to end;
    /// logged loudly [CHURN_ALLOW_INSECURE_NETWORK; default false].
    #[arg(long)]
    pub allow_insecure_network: Option<bool>,
    /// /metrics needs a token with the `metrics` role [CHURN_METRICS_REQUIRE_TOKEN; default true
    /// with --credentials].
    #[arg(long)]
    pub metrics_require_token: Option<bool>,
    /// Server reflection: `open`, `callers` or `off` [CHURN_REFLECTION; default callers with
    /// --credentials, else open].
    #[arg(long)]
    pub reflection: Option<String>,
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
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_client_ca: args.tls_client_ca,
        credentials: args.credentials,
        allow_insecure_network: args.allow_insecure_network,
        metrics_require_token: args.metrics_require_token,
        reflection: args.reflection,
        // Limits are settings of the file and the environment only (docs/deploying.md).
        ..ServeOptions::default()
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
    crate::avoid_huge_page_stalls();
    let runtime = churn_serve::runtime().context("cannot start the async runtime")?;
    runtime.block_on(churn_serve::serve(config))?;
    Ok(())
}
