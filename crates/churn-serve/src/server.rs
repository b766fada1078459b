//! Starting, running and stopping the server: gRPC with health and reflection, `/metrics` over
//! HTTP, model reload on SIGHUP, on `ReloadModel` and when the file changes, and a graceful stop
//! on SIGTERM or Ctrl-C that lets in-flight requests finish.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use churn_api::proto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codegen::http;
use tonic_health::ServingStatus;

use crate::alerts::{AlertHub, HubSettings, SqliteStore};
use crate::audit::AuditLog;
use crate::auth::Callers;
use crate::config::{AlertsConfig, ServeConfig};
use crate::error::{Result, ServeError};
use crate::grpc::gate::{Gate, Reflection};
use crate::grpc::{AlertApi, ChurnApi};
use crate::http::Console;
use crate::metrics::Metrics;
use crate::model::{ModelSlot, Reloaded};
use crate::net::{AcceptSettings, Alpn, Tls};
use crate::requests::FeedLimiter;

/// Largest block of request headers a gRPC client may send (hyper's default is 16 MiB).
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// How often the credentials and TLS files are checked for a change: a revoked token must stop
/// working within seconds, whatever the model's watch interval.
const SECURITY_FILES_INTERVAL: Duration = Duration::from_secs(1);

/// Stack size of the runtime's threads. TreeSHAP recurses once per tree level (at most
/// `churn_core::compiled::MAX_TREE_DEPTH`), so give it room beyond the 2 MiB default.
pub const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Builds the multi-threaded runtime the server runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
}

/// A server that is accepting requests.
#[derive(Debug)]
pub struct RunningServer {
    grpc_addr: SocketAddr,
    metrics_addr: SocketAddr,
    slot: Arc<ModelSlot>,
    metrics: Metrics,
    alerts: Option<AlertHub>,
    audit: AuditLog,
    callers: Option<Callers>,
    tls: Vec<Tls>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

/// Loads the model, binds both ports and starts serving in the background.
pub async fn start(config: ServeConfig) -> Result<RunningServer> {
    let slot = Arc::new(ModelSlot::load(&config.model)?);
    let metrics = Metrics::new();
    let security = &config.security;
    let limits = &config.limits;
    let callers = match &security.credentials {
        Some(file) => Some(
            Callers::open(file).map_err(|reason| ServeError::ConfigFile {
                path: file.clone(),
                reason,
            })?,
        ),
        None => None,
    };
    let grpc_tls = match &security.tls {
        Some(files) => Some(Tls::load(files, Alpn::Grpc)?),
        None => None,
    };
    let http_tls = match &security.tls {
        Some(files) => Some(Tls::load(files, Alpn::Http1)?),
        None => None,
    };
    let alerts = match &config.alerts {
        Some(settings) => Some(open_alerts(settings, &metrics)?),
        None => None,
    };
    let audit = AuditLog::new(
        alerts.as_ref().map(|hub| hub.store().clone()),
        metrics.clone(),
    );
    let api = ChurnApi::new(slot.clone(), metrics.clone(), &config, alerts.clone())
        .with_audit(audit.clone());

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<proto::churn_service_server::ChurnServiceServer<ChurnApi>>()
        .await;
    health.set_service_status("", ServingStatus::Serving).await;
    // v1 for current grpcurl and grpcui, v1alpha for older clients.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let (reflection_v1, reflection_v1alpha) = if security.reflection == Reflection::Off {
        (None, None)
    } else {
        (
            Some(reflection().build_v1().map_err(reflection_error)?),
            Some(reflection().build_v1alpha().map_err(reflection_error)?),
        )
    };

    let grpc_listener = bind(config.addr).await?;
    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_listener = bind(config.metrics_addr).await?;
    let metrics_addr = metrics_listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);

    let scoring = proto::churn_service_server::ChurnServiceServer::new(api.clone())
        .max_decoding_message_size(config.max_message_bytes);
    let admin = proto::admin_service_server::AdminServiceServer::new(api)
        .max_decoding_message_size(config.max_message_bytes);
    let alert_service = alerts.clone().map(|hub| {
        proto::alert_service_server::AlertServiceServer::new(AlertApi::new(
            hub,
            metrics.clone(),
            audit.clone(),
            stopped.clone(),
        ))
        .max_decoding_message_size(config.max_message_bytes)
    });
    // StreamAlerts and the console's live pages count against one limit per caller.
    let feeds = FeedLimiter::new(limits.max_alert_feeds_per_caller);
    let gate = Gate::new(
        callers.clone(),
        security.reflection,
        limits.max_in_flight,
        feeds.clone(),
        metrics.clone(),
        audit.clone(),
    );
    let grpc = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_streams_per_connection)
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .layer(tower::util::MapResponseLayer::new(
            oversized_message_is_invalid_argument::<tonic::body::Body>,
        ))
        .layer(gate)
        .add_service(health_service)
        .add_optional_service(reflection_v1)
        .add_optional_service(reflection_v1alpha)
        .add_service(scoring)
        .add_service(admin)
        .add_optional_service(alert_service);
    let accept_settings = |port| AcceptSettings {
        max_connections: limits.max_connections,
        handshake_timeout: limits.handshake_timeout,
        idle_timeout: limits.idle_timeout,
        port,
    };
    let incoming = crate::net::accept(
        grpc_listener,
        grpc_tls.clone(),
        accept_settings("grpc"),
        metrics.clone(),
        stopped.clone(),
    );
    let grpc_stopped = stopped.clone();
    let grpc_task = tokio::spawn(async move {
        grpc.serve_with_incoming_shutdown(incoming, async move {
            until_stopped(grpc_stopped).await;
            // Tell load balancers to stop sending while in-flight requests finish.
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            health
                .set_not_serving::<proto::churn_service_server::ChurnServiceServer<ChurnApi>>()
                .await;
        })
        .await?;
        Ok(())
    });

    let console = match (alerts.clone(), &config.console) {
        (Some(hub), Some(_)) => Some(Console::new(
            hub,
            slot.clone(),
            callers.clone(),
            audit.clone(),
            feeds.clone(),
            stopped.clone(),
        )),
        _ => None,
    };
    let scrapers = callers.clone().filter(|_| security.metrics_require_token);
    let router = crate::http::router(metrics.clone(), scrapers, console);
    let http_connections = crate::net::accept(
        metrics_listener,
        http_tls.clone(),
        accept_settings("http"),
        metrics.clone(),
        stopped.clone(),
    );
    let header_read_timeout = limits.header_read_timeout;
    let http_stopped = stopped.clone();
    let metrics_task = tokio::spawn(async move {
        crate::net::http1::serve(http_connections, router, header_read_timeout, http_stopped).await;
        Ok(())
    });

    let mut tasks = vec![grpc_task, metrics_task];
    if !config.watch_interval.is_zero() {
        tasks.push(tokio::spawn(watch_model_file(
            slot.clone(),
            metrics.clone(),
            audit.clone(),
            config.watch_interval,
            stopped.clone(),
        )));
    }
    let tls: Vec<Tls> = grpc_tls.into_iter().chain(http_tls).collect();
    if callers.is_some() || !tls.is_empty() {
        tasks.push(tokio::spawn(watch_security_files(
            callers.clone(),
            tls.clone(),
            stopped.clone(),
        )));
    }
    if security.allow_insecure_network
        && !(grpc_addr.ip().is_loopback() && metrics_addr.ip().is_loopback())
        && (security.tls.is_none() || callers.is_none())
    {
        tracing::warn!(
            grpc = %grpc_addr,
            http = %metrics_addr,
            tls = security.tls.is_some(),
            credentials = callers.is_some(),
            "INSECURE: serving off the loopback without TLS and credentials because \
             allow_insecure_network is set; anyone on this network can read alerts and act on them"
        );
    }
    if let (Some(hub), Some(settings)) = (alerts.clone(), &config.alerts) {
        tasks.push(tokio::spawn(escalate_overdue(
            hub,
            settings.escalation_interval,
            stopped.clone(),
        )));
    }
    tracing::info!(
        grpc = %grpc_addr,
        metrics = %metrics_addr,
        console = %match (&alerts, &config.console) {
            (Some(_), Some(_)) => format!(
                "{}://{metrics_addr}/console",
                if security.tls.is_some() { "https" } else { "http" }
            ),
            _ => "off".to_string(),
        },
        model = %slot.file().display(),
        version = %slot.current().version,
        tls = %match &security.tls {
            Some(files) if files.client_ca.is_some() => "mutual",
            Some(_) => "on",
            None => "off",
        },
        credentials = %security
            .credentials
            .as_ref()
            .map_or_else(|| "off".to_string(), |file| file.display().to_string()),
        "serving"
    );
    Ok(RunningServer {
        grpc_addr,
        metrics_addr,
        slot,
        metrics,
        alerts,
        audit,
        callers,
        tls,
        stop,
        tasks,
    })
}

impl RunningServer {
    /// Returns the address gRPC listens on (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Returns the address `/metrics` is served on.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Returns the live credentials, when a credentials file is configured.
    pub fn callers(&self) -> Option<&Callers> {
        self.callers.as_ref()
    }

    /// Reloads the model, as SIGHUP does.
    pub async fn reload(&self, trigger: &'static str) -> Result<Reloaded> {
        reload(
            &self.slot,
            &self.metrics,
            &self.audit,
            trigger,
            trigger,
            None,
        )
        .await
    }

    /// Reads the credentials and TLS files again, as SIGHUP does; a file that is refused leaves
    /// what was read before in place (and is logged).
    pub fn reload_security(&self, trigger: &'static str) {
        if let Some(callers) = &self.callers {
            match callers.reload() {
                Ok(count) => tracing::info!(callers = count, trigger, "credentials read again"),
                Err(reason) => tracing::error!(
                    file = %callers.file().display(),
                    %reason,
                    trigger,
                    "credentials refused; the callers read before stay"
                ),
            }
        }
        for tls in &self.tls {
            tls.reload_logged(trigger);
        }
    }

    /// Stops accepting connections, lets in-flight requests finish, and returns.
    pub async fn shutdown(self) -> Result<()> {
        // Nobody may be listening any more, which is fine: the tasks are stopping anyway.
        let _ = self.stop.send(true);
        for task in self.tasks {
            task.await
                .map_err(|error| ServeError::Io(std::io::Error::other(error)))??;
        }
        self.audit.flush();
        if let Some(hub) = &self.alerts
            && let Err(error) = hub.flush()
        {
            tracing::error!(%error, "cannot write the last scores before stopping");
        }
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Runs the server until SIGTERM or Ctrl-C, reloading the model on SIGHUP.
pub async fn serve(config: ServeConfig) -> Result<()> {
    let server = start(config).await?;
    let terminate = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hangups = signal(SignalKind::hangup())?;
            let mut terminations = signal(SignalKind::terminate())?;
            loop {
                tokio::select! {
                    _ = hangups.recv() => {
                        // A refused reload is logged; the old model keeps serving.
                        let _ = server.reload("SIGHUP").await;
                        server.reload_security("SIGHUP");
                    }
                    _ = terminations.recv() => break,
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        Ok::<(), std::io::Error>(())
    };
    terminate.await?;
    tracing::info!("stopping: finishing in-flight requests");
    server.shutdown().await
}

/// Reloads the slot's model, counts the outcome, and writes it to the audit log as done by
/// `actor` (the caller, or the trigger for the server's own reloads) from `peer`.
pub(crate) async fn reload(
    slot: &ModelSlot,
    metrics: &Metrics,
    audit: &AuditLog,
    trigger: &'static str,
    actor: &str,
    peer: Option<SocketAddr>,
) -> Result<Reloaded> {
    let outcome = slot.reload(trigger).await;
    audit.model_reload(actor, &slot.file(), &outcome, peer);
    metrics.observe_reload(match &outcome {
        Ok(Reloaded { changed: true, .. }) => "swapped",
        Ok(Reloaded { changed: false, .. }) => "unchanged",
        Err(_) => "refused",
    });
    outcome
}

/// Opens the alert store and starts its writer.
fn open_alerts(settings: &AlertsConfig, metrics: &Metrics) -> Result<AlertHub> {
    let store = SqliteStore::open(&settings.db, settings.synchronous)?;
    tracing::info!(
        store = %settings.db.display(),
        policy = %settings
            .policy_file
            .as_ref()
            .map_or_else(|| "built-in default".to_string(), |file| file.display().to_string()),
        "alerts on"
    );
    Ok(AlertHub::new(
        Arc::new(store),
        HubSettings {
            policy: settings.policy.clone(),
            stream_buffer: settings.stream_buffer,
        },
        metrics.clone(),
    ))
}

/// Escalates overdue alerts every `interval` until the server stops.
async fn escalate_overdue(
    hub: AlertHub,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return Ok(()),
        }
        let sweeping = hub.clone();
        let swept =
            tokio::task::spawn_blocking(move || sweeping.escalate_overdue(crate::requests::now()))
                .await
                .map_err(|error| ServeError::Io(std::io::Error::other(error)))?;
        match swept {
            Ok(events) if !events.is_empty() => {
                tracing::info!(alerts = events.len(), "escalated overdue alerts");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "cannot escalate overdue alerts"),
        }
    }
}

/// Polls the model file and reloads when its size or modification time changes. A refused
/// artifact is not retried until the file changes again.
async fn watch_model_file(
    slot: Arc<ModelSlot>,
    metrics: Metrics,
    audit: AuditLog,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    let file = slot.file();
    let mut seen = file_signature(&file);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.wait_for(|stop| *stop) => return Ok(()),
        }
        let now = file_signature(&file);
        if now != seen {
            seen = now;
            // A file being rewritten may be caught half-written: it is refused, and the
            // write's end changes the signature again, so it is loaded then.
            let _ = reload(&slot, &metrics, &audit, "file change", "file change", None).await;
        }
    }
}

/// Reads the credentials and TLS files again when they change, until the server stops.
async fn watch_security_files(
    callers: Option<Callers>,
    tls: Vec<Tls>,
    mut stopped: watch::Receiver<bool>,
) -> Result<()> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SECURITY_FILES_INTERVAL) => {}
            _ = stopped.wait_for(|stop| *stop) => return Ok(()),
        }
        if let Some(callers) = &callers {
            callers.reload_if_changed();
        }
        for tls in &tls {
            tls.reload_if_changed();
        }
    }
}

fn file_signature(file: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(file).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| ServeError::Bind { addr, cause })
}

fn reflection_error(error: tonic_reflection::server::Error) -> ServeError {
    ServeError::Io(std::io::Error::other(error.to_string()))
}

/// tonic refuses a request message over the size limit before any handler sees it, with
/// OUT_OF_RANGE and its own wording. Callers get INVALID_ARGUMENT naming the size and the
/// setting instead, like every other bad request.
fn oversized_message_is_invalid_argument<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|status| status == "11");
    let Some(message) = headers
        .get("grpc-message")
        .and_then(|message| message.to_str().ok())
    else {
        return response;
    };
    // The header is percent-encoded (spaces as %20).
    let message = message.replace("%20", " ");
    if !out_of_range || !message.contains("decoded message length too large") {
        return response;
    }
    let numbers: Vec<&str> = message
        .split(|character: char| !character.is_ascii_digit())
        .filter(|digits| !digits.is_empty())
        .collect();
    if let [found, limit] = numbers[..] {
        let text = format!(
            "request message is {found} bytes; the limit is {limit} bytes (max_message_bytes)"
        );
        if let Ok(value) = http::HeaderValue::from_str(&text.replace(' ', "%20")) {
            headers.insert("grpc-message", value);
            headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        }
    }
    response
}
