//! Server settings from flags, `CHURN_`-prefixed environment variables and a TOML file.
//!
//! Precedence, highest first: command-line flags, environment variables, the config file
//! (`--config` or `CHURN_CONFIG`), built-in defaults. Paths in the file are relative to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use churn_core::AlertPolicy;
use serde::Deserialize;

use crate::alerts::Synchronous;
use crate::error::{Result, ServeError};
use crate::grpc::gate::Reflection;
use crate::net::TlsFiles;

/// Everything the server needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Model folder or model.json.
    pub model: PathBuf,
    /// gRPC address.
    pub addr: SocketAddr,
    /// HTTP address of `/metrics`.
    pub metrics_addr: SocketAddr,
    /// Most profiles in one ScoreBatch call.
    pub max_batch: usize,
    /// Most reasons returned each way.
    pub max_top_k: usize,
    /// Largest request message, in bytes.
    pub max_message_bytes: usize,
    /// How often the model file is checked for changes; zero turns watching off.
    pub watch_interval: Duration,
    /// Alerts, unless turned off with `alerts_db = "off"`.
    pub alerts: Option<AlertsConfig>,
    /// The agent console on the metrics port: on when alerts are, unless `console = false`.
    pub console: Option<ConsoleConfig>,
    /// TLS, callers and who may reach what.
    pub security: SecurityConfig,
    /// Caps on connections, calls and time.
    pub limits: Limits,
}

/// TLS, callers, and the checks of who may reach what.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// TLS on both ports; `None`: plaintext (refused off the loopback unless
    /// `allow_insecure_network`).
    pub tls: Option<TlsFiles>,
    /// The credentials file listing callers; `None`: no authentication.
    pub credentials: Option<PathBuf>,
    /// Serve off the loopback without TLS or credentials, for a network trusted end to end.
    pub allow_insecure_network: bool,
    /// `/metrics` needs a caller with the `metrics` (or `admin`) role.
    pub metrics_require_token: bool,
    /// Who may use server reflection.
    pub reflection: Reflection,
}

/// Caps on what clients may hold, each a setting with a default sized for one server.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Connections open at once on each port; past it a new one is closed at once.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams one gRPC connection may open (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_streams_per_connection: u32,
    /// gRPC calls in flight at once, streams included; past it RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
    /// Longest a call may take before DEADLINE_EXCEEDED; a shorter `grpc-timeout` from the
    /// caller wins.
    pub request_timeout: Duration,
    /// How often an HTTP/2 ping checks a quiet gRPC connection is alive.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// A connection with no call in flight for this long is closed; zero never.
    pub idle_timeout: Duration,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Longest an HTTP request's headers may take to arrive on the HTTP port.
    pub header_read_timeout: Duration,
    /// Live alert feeds (`StreamAlerts`, console pages) one caller may hold open.
    pub max_alert_feeds_per_caller: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_streams_per_connection: 256,
            max_in_flight: 4096,
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_alert_feeds_per_caller: 16,
        }
    }
}

/// The agent console's settings. Who may use it is the credentials file's business: with one,
/// agents sign in with their own token; without one, the console answers loopback names only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsoleConfig {}

/// How the server raises and keeps alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// The SQLite file holding alerts and last scores.
    pub db: PathBuf,
    /// The policy deciding which scores raise alerts.
    pub policy: AlertPolicy,
    /// Where the policy was read from; `None` for the built-in default.
    pub policy_file: Option<PathBuf>,
    /// How durably each commit is written (`normal`, or `full` to fsync every commit).
    pub synchronous: Synchronous,
    /// How often open alerts are checked against their time to acknowledge.
    pub escalation_interval: Duration,
    /// Events buffered for live streams before a slow stream is cut off.
    pub stream_buffer: usize,
}

/// The alert store used when none is configured, relative to the working folder.
pub const DEFAULT_ALERTS_DB: &str = "churn-alerts.sqlite";
/// The policy file looked for next to the model when none is configured.
pub const POLICY_FILE_NAME: &str = "alert-policy.toml";

/// Reads an alert policy file (see [`AlertPolicy::from_toml`]), naming the file in any error.
pub fn read_alert_policy(file: &Path) -> Result<AlertPolicy> {
    let file_error = |reason: String| ServeError::ConfigFile {
        path: file.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(file).map_err(|error| file_error(error.to_string()))?;
    AlertPolicy::from_toml(&text).map_err(|error| file_error(error.to_string()))
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            model: PathBuf::from("models/telco"),
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            max_batch: 1000,
            max_top_k: 20,
            max_message_bytes: 4 * 1024 * 1024,
            watch_interval: Duration::from_secs(1),
            alerts: Some(AlertsConfig::default()),
            console: Some(ConsoleConfig::default()),
            security: SecurityConfig {
                tls: None,
                credentials: None,
                allow_insecure_network: false,
                metrics_require_token: false,
                reflection: Reflection::Open,
            },
            limits: Limits::default(),
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            db: PathBuf::from(DEFAULT_ALERTS_DB),
            policy: AlertPolicy::default(),
            policy_file: None,
            synchronous: Synchronous::Normal,
            escalation_interval: Duration::from_secs(30),
            stream_buffer: 4096,
        }
    }
}

/// Settings from one source; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// Model folder or model.json (default `models/telco`).
    pub model: Option<PathBuf>,
    /// gRPC address (default `127.0.0.1:50051`).
    pub addr: Option<SocketAddr>,
    /// HTTP address of `/metrics` and the console (default `127.0.0.1:9464`).
    pub metrics_addr: Option<SocketAddr>,
    /// Most profiles in one ScoreBatch.
    pub max_batch: Option<usize>,
    /// Most reasons asked for each way.
    pub max_top_k: Option<usize>,
    /// Largest request message, in bytes.
    pub max_message_bytes: Option<usize>,
    /// How often the model file is checked for a change, in milliseconds (0: never).
    pub watch_interval_ms: Option<u64>,
    /// SQLite file of alerts, or `off` to run without alerts.
    pub alerts_db: Option<PathBuf>,
    /// Alert policy TOML; by default `alert-policy.toml` next to the model, if there is one.
    pub alert_policy: Option<PathBuf>,
    /// `normal` or `full` (fsync every commit).
    pub alerts_sync: Option<String>,
    /// How often open alerts are checked against their time to acknowledge, in milliseconds.
    pub escalation_interval_ms: Option<u64>,
    /// Events buffered for a live stream before a slow one is cut off.
    pub alert_stream_buffer: Option<usize>,
    /// Serve the agent console on the metrics port (default true when alerts are on).
    pub console: Option<bool>,
    /// No longer accepted: agents sign in to the console with their own tokens from the
    /// credentials file. Kept so a setting left over is refused by name, not ignored.
    pub console_token: Option<String>,
    /// Certificate chain (PEM) for TLS on both ports.
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) client certificates must chain to: mutual TLS.
    pub tls_client_ca: Option<PathBuf>,
    /// Credentials file of callers and their roles (`churn token add` writes it).
    pub credentials: Option<PathBuf>,
    /// Serve off the loopback without TLS or credentials (a trusted network only).
    pub allow_insecure_network: Option<bool>,
    /// `/metrics` needs a `metrics` or `admin` token (default: true with credentials).
    pub metrics_require_token: Option<bool>,
    /// Server reflection: `open`, `callers` (default with credentials) or `off`.
    pub reflection: Option<String>,
    /// Connections open at once on each port.
    pub max_connections: Option<usize>,
    /// Concurrent streams one gRPC connection may open.
    pub max_streams_per_connection: Option<u32>,
    /// gRPC calls in flight at once.
    pub max_in_flight: Option<usize>,
    /// Longest a call may take, in milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// HTTP/2 keep-alive ping interval, in milliseconds.
    pub keepalive_interval_ms: Option<u64>,
    /// How long a keep-alive ping may go unanswered, in milliseconds.
    pub keepalive_timeout_ms: Option<u64>,
    /// Close a connection with no call in flight for this long, in milliseconds (0: never).
    pub idle_timeout_ms: Option<u64>,
    /// Longest a TLS handshake may take, in milliseconds.
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Longest request headers may take on the HTTP port, in milliseconds.
    pub header_read_timeout_ms: Option<u64>,
    /// Live alert feeds one caller may hold open.
    pub max_alert_feeds_per_caller: Option<usize>,
}

/// The environment variable naming the config file.
pub const CONFIG_ENV: &str = "CHURN_CONFIG";

impl ServeOptions {
    /// Reads a TOML config file; relative paths in it are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<Self> {
        let file_error = |reason: String| ServeError::ConfigFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|error| file_error(error.to_string()))?;
        let mut options: ServeOptions =
            toml::from_str(&text).map_err(|error| file_error(error.to_string()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        options.model = options.model.map(|model| base.join(model));
        options.alert_policy = options.alert_policy.map(|policy| base.join(policy));
        for path in [
            &mut options.tls_cert,
            &mut options.tls_key,
            &mut options.tls_client_ca,
            &mut options.credentials,
        ] {
            *path = path.take().map(|path| base.join(path));
        }
        options.alerts_db = options.alerts_db.map(|db| {
            if db == Path::new("off") {
                db
            } else {
                base.join(db)
            }
        });
        Ok(options)
    }

    /// Reads `CHURN_MODEL`, `CHURN_ADDR`, `CHURN_METRICS_ADDR`, `CHURN_MAX_BATCH`,
    /// `CHURN_MAX_TOP_K`, `CHURN_MAX_MESSAGE_BYTES`, `CHURN_WATCH_INTERVAL_MS`,
    /// `CHURN_ALERTS_DB`, `CHURN_ALERT_POLICY`, `CHURN_ALERTS_SYNC`,
    /// `CHURN_ESCALATION_INTERVAL_MS`, `CHURN_ALERT_STREAM_BUFFER`, `CHURN_CONSOLE` and
    /// `CHURN_CONSOLE_TOKEN`, and each security setting and limit as `CHURN_` and its name in
    /// capitals (`CHURN_TLS_CERT`, `CHURN_CREDENTIALS`, `CHURN_MAX_IN_FLIGHT`, …). Other
    /// variables are left alone (they may belong to other commands).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut options = ServeOptions::default();
        for (key, value) in vars {
            match key.as_str() {
                "CHURN_MODEL" => options.model = Some(PathBuf::from(value)),
                "CHURN_ADDR" => options.addr = Some(parse(&key, &value)?),
                "CHURN_METRICS_ADDR" => options.metrics_addr = Some(parse(&key, &value)?),
                "CHURN_MAX_BATCH" => options.max_batch = Some(parse(&key, &value)?),
                "CHURN_MAX_TOP_K" => options.max_top_k = Some(parse(&key, &value)?),
                "CHURN_MAX_MESSAGE_BYTES" => {
                    options.max_message_bytes = Some(parse(&key, &value)?);
                }
                "CHURN_WATCH_INTERVAL_MS" => {
                    options.watch_interval_ms = Some(parse(&key, &value)?);
                }
                "CHURN_ALERTS_DB" => options.alerts_db = Some(PathBuf::from(value)),
                "CHURN_ALERT_POLICY" => options.alert_policy = Some(PathBuf::from(value)),
                "CHURN_ALERTS_SYNC" => options.alerts_sync = Some(value),
                "CHURN_ESCALATION_INTERVAL_MS" => {
                    options.escalation_interval_ms = Some(parse(&key, &value)?);
                }
                "CHURN_ALERT_STREAM_BUFFER" => {
                    options.alert_stream_buffer = Some(parse(&key, &value)?);
                }
                "CHURN_CONSOLE" => options.console = Some(parse(&key, &value)?),
                "CHURN_CONSOLE_TOKEN" => options.console_token = Some(value),
                "CHURN_TLS_CERT" => options.tls_cert = Some(PathBuf::from(value)),
                "CHURN_TLS_KEY" => options.tls_key = Some(PathBuf::from(value)),
                "CHURN_TLS_CLIENT_CA" => options.tls_client_ca = Some(PathBuf::from(value)),
                "CHURN_CREDENTIALS" => options.credentials = Some(PathBuf::from(value)),
                "CHURN_ALLOW_INSECURE_NETWORK" => {
                    options.allow_insecure_network = Some(parse(&key, &value)?);
                }
                "CHURN_METRICS_REQUIRE_TOKEN" => {
                    options.metrics_require_token = Some(parse(&key, &value)?);
                }
                "CHURN_REFLECTION" => options.reflection = Some(value),
                "CHURN_MAX_CONNECTIONS" => options.max_connections = Some(parse(&key, &value)?),
                "CHURN_MAX_STREAMS_PER_CONNECTION" => {
                    options.max_streams_per_connection = Some(parse(&key, &value)?);
                }
                "CHURN_MAX_IN_FLIGHT" => options.max_in_flight = Some(parse(&key, &value)?),
                "CHURN_REQUEST_TIMEOUT_MS" => {
                    options.request_timeout_ms = Some(parse(&key, &value)?);
                }
                "CHURN_KEEPALIVE_INTERVAL_MS" => {
                    options.keepalive_interval_ms = Some(parse(&key, &value)?);
                }
                "CHURN_KEEPALIVE_TIMEOUT_MS" => {
                    options.keepalive_timeout_ms = Some(parse(&key, &value)?);
                }
                "CHURN_IDLE_TIMEOUT_MS" => options.idle_timeout_ms = Some(parse(&key, &value)?),
                "CHURN_TLS_HANDSHAKE_TIMEOUT_MS" => {
                    options.tls_handshake_timeout_ms = Some(parse(&key, &value)?);
                }
                "CHURN_HEADER_READ_TIMEOUT_MS" => {
                    options.header_read_timeout_ms = Some(parse(&key, &value)?);
                }
                "CHURN_MAX_ALERT_FEEDS_PER_CALLER" => {
                    options.max_alert_feeds_per_caller = Some(parse(&key, &value)?);
                }
                _ => {}
            }
        }
        Ok(options)
    }

    /// Returns these options with the gaps filled from `lower`.
    pub fn or(self, lower: ServeOptions) -> ServeOptions {
        ServeOptions {
            model: self.model.or(lower.model),
            addr: self.addr.or(lower.addr),
            metrics_addr: self.metrics_addr.or(lower.metrics_addr),
            max_batch: self.max_batch.or(lower.max_batch),
            max_top_k: self.max_top_k.or(lower.max_top_k),
            max_message_bytes: self.max_message_bytes.or(lower.max_message_bytes),
            watch_interval_ms: self.watch_interval_ms.or(lower.watch_interval_ms),
            alerts_db: self.alerts_db.or(lower.alerts_db),
            alert_policy: self.alert_policy.or(lower.alert_policy),
            alerts_sync: self.alerts_sync.or(lower.alerts_sync),
            escalation_interval_ms: self.escalation_interval_ms.or(lower.escalation_interval_ms),
            alert_stream_buffer: self.alert_stream_buffer.or(lower.alert_stream_buffer),
            console: self.console.or(lower.console),
            console_token: self.console_token.or(lower.console_token),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_client_ca: self.tls_client_ca.or(lower.tls_client_ca),
            credentials: self.credentials.or(lower.credentials),
            allow_insecure_network: self.allow_insecure_network.or(lower.allow_insecure_network),
            metrics_require_token: self.metrics_require_token.or(lower.metrics_require_token),
            reflection: self.reflection.or(lower.reflection),
            max_connections: self.max_connections.or(lower.max_connections),
            max_streams_per_connection: self
                .max_streams_per_connection
                .or(lower.max_streams_per_connection),
            max_in_flight: self.max_in_flight.or(lower.max_in_flight),
            request_timeout_ms: self.request_timeout_ms.or(lower.request_timeout_ms),
            keepalive_interval_ms: self.keepalive_interval_ms.or(lower.keepalive_interval_ms),
            keepalive_timeout_ms: self.keepalive_timeout_ms.or(lower.keepalive_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.or(lower.idle_timeout_ms),
            tls_handshake_timeout_ms: self
                .tls_handshake_timeout_ms
                .or(lower.tls_handshake_timeout_ms),
            header_read_timeout_ms: self.header_read_timeout_ms.or(lower.header_read_timeout_ms),
            max_alert_feeds_per_caller: self
                .max_alert_feeds_per_caller
                .or(lower.max_alert_feeds_per_caller),
        }
    }

    /// Fills what is still unset with the defaults and checks the limits.
    pub fn resolve(self) -> Result<ServeConfig> {
        let defaults = ServeConfig::default();
        let model = self.model.clone().unwrap_or(defaults.model.clone());
        let alerts = self.resolve_alerts(&model)?;
        let metrics_addr = self.metrics_addr.unwrap_or(defaults.metrics_addr);
        let console = self.resolve_console(alerts.is_some())?;
        let config = ServeConfig {
            model,
            addr: self.addr.unwrap_or(defaults.addr),
            metrics_addr,
            max_batch: self.max_batch.unwrap_or(defaults.max_batch),
            max_top_k: self.max_top_k.unwrap_or(defaults.max_top_k),
            max_message_bytes: self.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            watch_interval: self
                .watch_interval_ms
                .map_or(defaults.watch_interval, Duration::from_millis),
            alerts,
            console,
            security: self.resolve_security()?,
            limits: self.resolve_limits()?,
        };
        check_network_exposure(&config)?;
        let at_least_one = |key: &str, value: usize| {
            if value == 0 {
                return Err(ServeError::InvalidConfig {
                    key: key.to_string(),
                    value: value.to_string(),
                    reason: "must be at least 1".into(),
                });
            }
            Ok(())
        };
        at_least_one("max_batch", config.max_batch)?;
        at_least_one("max_top_k", config.max_top_k)?;
        if config.max_message_bytes < 1024 {
            return Err(ServeError::InvalidConfig {
                key: "max_message_bytes".into(),
                value: config.max_message_bytes.to_string(),
                reason: "must be at least 1024".into(),
            });
        }
        Ok(config)
    }
}

impl ServeOptions {
    /// Resolves TLS (both files or neither), the credentials file, and who may reach what.
    fn resolve_security(&self) -> Result<SecurityConfig> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            (None, None) if self.tls_client_ca.is_none() => None,
            (cert, _) => {
                return Err(ServeError::InvalidConfig {
                    key: if cert.is_none() {
                        "tls_cert"
                    } else {
                        "tls_key"
                    }
                    .into(),
                    value: String::new(),
                    reason: "TLS needs both tls_cert and tls_key (tls_client_ca needs them too)"
                        .into(),
                });
            }
        };
        let reflection = match &self.reflection {
            Some(text) => text.parse().map_err(|reason| ServeError::InvalidConfig {
                key: "reflection".into(),
                value: text.clone(),
                reason,
            })?,
            None if self.credentials.is_some() => Reflection::Callers,
            None => Reflection::Open,
        };
        let metrics_require_token = self
            .metrics_require_token
            .unwrap_or(self.credentials.is_some());
        if metrics_require_token && self.credentials.is_none() {
            return Err(ServeError::InvalidConfig {
                key: "metrics_require_token".into(),
                value: "true".into(),
                reason: "needs a credentials file holding a caller with the `metrics` role".into(),
            });
        }
        Ok(SecurityConfig {
            tls,
            credentials: self.credentials.clone(),
            allow_insecure_network: self.allow_insecure_network.unwrap_or(false),
            metrics_require_token,
            reflection,
        })
    }

    /// Resolves the limits, refusing zero where zero would refuse every client.
    fn resolve_limits(&self) -> Result<Limits> {
        let defaults = Limits::default();
        let millis =
            |value: Option<u64>, default: Duration| value.map_or(default, Duration::from_millis);
        let limits = Limits {
            max_connections: self.max_connections.unwrap_or(defaults.max_connections),
            max_streams_per_connection: self
                .max_streams_per_connection
                .unwrap_or(defaults.max_streams_per_connection),
            max_in_flight: self.max_in_flight.unwrap_or(defaults.max_in_flight),
            request_timeout: millis(self.request_timeout_ms, defaults.request_timeout),
            keepalive_interval: millis(self.keepalive_interval_ms, defaults.keepalive_interval),
            keepalive_timeout: millis(self.keepalive_timeout_ms, defaults.keepalive_timeout),
            idle_timeout: millis(self.idle_timeout_ms, defaults.idle_timeout),
            handshake_timeout: millis(self.tls_handshake_timeout_ms, defaults.handshake_timeout),
            header_read_timeout: millis(self.header_read_timeout_ms, defaults.header_read_timeout),
            max_alert_feeds_per_caller: self
                .max_alert_feeds_per_caller
                .unwrap_or(defaults.max_alert_feeds_per_caller),
        };
        let positive = [
            ("max_connections", limits.max_connections as u128),
            (
                "max_streams_per_connection",
                u128::from(limits.max_streams_per_connection),
            ),
            ("max_in_flight", limits.max_in_flight as u128),
            ("request_timeout_ms", limits.request_timeout.as_millis()),
            (
                "keepalive_interval_ms",
                limits.keepalive_interval.as_millis(),
            ),
            ("keepalive_timeout_ms", limits.keepalive_timeout.as_millis()),
            (
                "tls_handshake_timeout_ms",
                limits.handshake_timeout.as_millis(),
            ),
            (
                "header_read_timeout_ms",
                limits.header_read_timeout.as_millis(),
            ),
            (
                "max_alert_feeds_per_caller",
                limits.max_alert_feeds_per_caller as u128,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ServeError::InvalidConfig {
                    key: key.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(limits)
    }

    /// Resolves the console: served with alerts unless turned off. The shared `console_token`
    /// of old is refused: one secret for every agent said nothing of who acted.
    fn resolve_console(&self, alerts_on: bool) -> Result<Option<ConsoleConfig>> {
        if self.console_token.is_some() {
            return Err(ServeError::InvalidConfig {
                key: "console_token".into(),
                value: "(hidden)".into(),
                reason: "no longer used: agents sign in to the console with their own token from \
                         the credentials file (`churn token add`); remove it"
                    .into(),
            });
        }
        if !alerts_on || self.console == Some(false) {
            return Ok(None);
        }
        Ok(Some(ConsoleConfig {}))
    }

    /// Resolves the alert settings: the store, the policy (the configured file, else the model's
    /// own `alert-policy.toml`, else the built-in default) and the limits.
    fn resolve_alerts(&self, model: &Path) -> Result<Option<AlertsConfig>> {
        let defaults = AlertsConfig::default();
        let db = self.alerts_db.clone().unwrap_or(defaults.db);
        if db == Path::new("off") {
            return Ok(None);
        }
        let model_dir = if model
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            model.parent().unwrap_or(Path::new("")).to_path_buf()
        } else {
            model.to_path_buf()
        };
        let beside_model = model_dir.join(POLICY_FILE_NAME);
        let policy_file = match &self.alert_policy {
            Some(file) => Some(file.clone()),
            None => beside_model.is_file().then_some(beside_model),
        };
        let policy = match &policy_file {
            Some(file) => read_alert_policy(file)?,
            None => defaults.policy,
        };
        let synchronous = match &self.alerts_sync {
            Some(text) => text.parse().map_err(|reason| ServeError::InvalidConfig {
                key: "alerts_sync".into(),
                value: text.clone(),
                reason,
            })?,
            None => defaults.synchronous,
        };
        let stream_buffer = self.alert_stream_buffer.unwrap_or(defaults.stream_buffer);
        if stream_buffer == 0 {
            return Err(ServeError::InvalidConfig {
                key: "alert_stream_buffer".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Some(AlertsConfig {
            db,
            policy,
            policy_file,
            synchronous,
            escalation_interval: self
                .escalation_interval_ms
                .map_or(defaults.escalation_interval, |ms| {
                    Duration::from_millis(ms.max(1))
                }),
            stream_buffer,
        }))
    }
}

/// Refuses to serve a port off the loopback without TLS and credentials, unless
/// `allow_insecure_network` says the network is trusted: the error says how to set both up.
fn check_network_exposure(config: &ServeConfig) -> Result<()> {
    let security = &config.security;
    if security.allow_insecure_network {
        return Ok(());
    }
    for (key, addr) in [("addr", config.addr), ("metrics_addr", config.metrics_addr)] {
        if addr.ip().is_loopback() {
            continue;
        }
        let missing = match (&security.tls, &security.credentials) {
            (Some(_), Some(_)) => continue,
            (None, Some(_)) => "TLS",
            (Some(_), None) => "credentials",
            (None, None) => "TLS and credentials",
        };
        return Err(ServeError::InvalidConfig {
            key: key.into(),
            value: addr.to_string(),
            reason: format!(
                "not a loopback address, and {missing} are not set: anyone on the network could \
                 read alerts and act on them. Set tls_cert and tls_key (`churn tls dev-ca` makes \
                 development ones) and credentials (`churn token add`), see docs/deploying.md; \
                 or set allow_insecure_network = true for a network you trust end to end"
            ),
        });
    }
    Ok(())
}

fn parse<T: FromStr>(key: &str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|error: T::Err| ServeError::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn flags_beat_environment_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(
            &file,
            "model = \"models/churn\"\naddr = \"127.0.0.1:7001\"\nmax_batch = 10\nmax_top_k = 3\n",
        )
        .unwrap();
        let from_file = ServeOptions::from_file(&file).unwrap();
        let from_env = ServeOptions::from_env(env(&[
            ("CHURN_ADDR", "127.0.0.1:7002"),
            ("CHURN_MAX_BATCH", "20"),
            ("HOME", "/root"),
        ]))
        .unwrap();
        let from_flags = ServeOptions {
            addr: Some("127.0.0.1:7003".parse().unwrap()),
            ..ServeOptions::default()
        };
        let config = from_flags.or(from_env).or(from_file).resolve().unwrap();
        assert_eq!(config.addr, "127.0.0.1:7003".parse().unwrap()); // flag
        assert_eq!(config.max_batch, 20); // environment
        assert_eq!(config.max_top_k, 3); // file
        assert_eq!(config.model, dir.path().join("models/churn")); // file, relative to it
        assert_eq!(config.metrics_addr, ServeConfig::default().metrics_addr); // default
    }

    #[test]
    fn no_settings_serve_the_shipped_model_on_the_loopback() {
        let config = ServeOptions::default().resolve().unwrap();
        assert_eq!(config.model, PathBuf::from("models/telco"));
        assert_eq!(config.addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.max_batch, 1000);
        assert_eq!(config.console, Some(ConsoleConfig {}));
        assert_eq!(config.security.credentials, None);
    }

    #[test]
    fn the_console_follows_alerts_and_the_old_shared_token_is_refused() {
        let turned_off = ServeOptions {
            console: Some(false),
            ..ServeOptions::default()
        };
        assert_eq!(turned_off.resolve().unwrap().console, None);
        let no_alerts = ServeOptions {
            alerts_db: Some("off".into()),
            ..ServeOptions::default()
        };
        assert_eq!(no_alerts.resolve().unwrap().console, None);
        let shared = ServeOptions {
            console_token: Some("0123456789abcdef-secret".into()),
            ..ServeOptions::default()
        };
        let error = shared.resolve().unwrap_err().to_string();
        assert!(error.contains("config `console_token`"), "{error}");
        assert!(error.contains("credentials file"), "{error}");
        assert!(
            !error.contains("secret"),
            "a token never appears in an error: {error}"
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let error = ServeOptions::from_env(env(&[("CHURN_MAX_BATCH", "lots")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "config `CHURN_MAX_BATCH` = `lots`: invalid digit found in string"
        );
        let error = ServeOptions {
            max_batch: Some(0),
            ..ServeOptions::default()
        }
        .resolve()
        .unwrap_err();
        assert!(error.to_string().starts_with("config `max_batch` = `0`"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(&file, "max_batches = 5\n").unwrap();
        let error = ServeOptions::from_file(&file).unwrap_err();
        assert!(error.to_string().contains("max_batches"), "{error}");
    }
}
