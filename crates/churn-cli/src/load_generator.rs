//! The load generator of `churn loadtest`: many concurrent Score calls over real gRPC
//! connections, at a fixed rate (open loop) or as fast as answers come (closed loop).
//!
//! At a fixed rate each latency is measured from when the request was *due*, not when a task
//! got round to sending it, so a stalled server cannot hide its backlog (no coordinated
//! omission).
//!
//! The calls go out over HTTP/2 (the `h2` crate) with gRPC's framing written here, not through
//! tonic's client: that one writes a call's headers, message and end of stream in three
//! syscalls and hops through two tasks, which on a machine shared with the server under test
//! took as much CPU as the server itself. Here a call is one write, the way grpc-go and
//! grpc-java send it, so the figures measure the server rather than the generator.
//!
//! Over TLS (tokio-rustls, ALPN `h2`) and with the caller's token on every request, as any
//! client's calls would be, so that what TLS and the token check cost shows in the figures.

use std::fmt;
#[cfg(target_os = "linux")]
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use churn_api::client::{ConnectOptions, Target};
use churn_api::{ApiError, proto};
use prost::Message;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

/// The full name of the method called, as a path.
const SCORE_PATH: &str = "/churn.v1.ChurnService/Score";

/// What load to put on which server.
#[derive(Debug, Clone)]
pub struct LoadTest {
    /// Server address, e.g. `127.0.0.1:50051` or `https://churn.example.com:50051`.
    pub addr: String,
    /// TLS and the token sent on every request.
    pub connection: ConnectOptions,
    /// Requests in flight at once (one task each).
    pub concurrency: usize,
    /// HTTP/2 connections the tasks share.
    pub connections: usize,
    /// How long to measure.
    pub duration: Duration,
    /// Unmeasured run-in before measuring starts.
    pub warmup: Duration,
    /// Total requests per second; `None` sends as fast as answers come.
    pub rate: Option<f64>,
    /// Reasons asked for each way.
    pub top_k: u32,
    /// Give every request a customer id never sent before, as a CRM rescoring its whole base
    /// does (otherwise the ids of `profiles` repeat, and alerts are updated, not raised).
    pub fresh_customers: bool,
}

/// What a load test measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    /// Answers reporting an alert raised or updated.
    pub alerts: u64,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub target_rate: Option<f64>,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
    /// The same quantiles over the answers that reported an alert, and over the others, when
    /// some did: alert answers wait for a commit, so they show what the alert store costs.
    pub by_alert: Option<[Quantiles; 2]>,
}

/// Latency quantiles of a set of answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Quantiles {
    fn of(mut latencies: Vec<Duration>) -> Quantiles {
        latencies.sort_unstable();
        let at = |quantile: f64| quantile_of(&latencies, quantile);
        Quantiles {
            count: latencies.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

impl LoadReport {
    /// Returns answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self
            .target_rate
            .map_or_else(|| "max".to_string(), |rate| format!("{rate:.0}"));
        writeln!(
            f,
            "| target rps | achieved rps | requests | errors | p50 | p90 | p99 | p99.9 | max |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|")?;
        writeln!(
            f,
            "| {target} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            self.throughput(),
            self.requests,
            self.errors,
            micros(self.p50),
            micros(self.p90),
            micros(self.p99),
            micros(self.p999),
            micros(self.max)
        )?;
        if self.alerts > 0 {
            writeln!(
                f,
                "alerts raised or updated: {} ({:.1}% of answers)",
                self.alerts,
                100.0 * self.alerts as f64 / self.requests.max(1) as f64
            )?;
        }
        if let Some([alerting, quiet]) = &self.by_alert {
            writeln!(
                f,
                "\n| answers | requests | p50 | p90 | p99 | p99.9 | max |"
            )?;
            writeln!(f, "|---|---|---|---|---|---|---|")?;
            for (name, quantiles) in [("with an alert", alerting), ("without", quiet)] {
                writeln!(
                    f,
                    "| {name} | {} | {} | {} | {} | {} | {} |",
                    quantiles.count,
                    micros(quantiles.p50),
                    micros(quantiles.p90),
                    micros(quantiles.p99),
                    micros(quantiles.p999),
                    micros(quantiles.max)
                )?;
            }
        }
        if let Some(error) = &self.first_error {
            writeln!(f, "first error: {}", crate::client::terminal_safe(error))?;
        }
        Ok(())
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

/// Builds the runtime a load test runs on: one thread, as the generator shares the machine with
/// the server it measures, and threads of its own waking each other would take cores from it.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs the load test, cycling through `profiles`.
pub async fn run(test: &LoadTest, profiles: Vec<proto::Profile>) -> Result<LoadReport> {
    if profiles.is_empty() || test.concurrency == 0 || test.connections == 0 {
        bail!(
            "a load test needs at least one profile, task and connection; it has {} profiles, \
             concurrency {} and {} connections",
            profiles.len(),
            test.concurrency,
            test.connections
        );
    }
    let dialer = Dialer::new(&test.addr, &test.connection)?;
    let uri: http::Uri = format!("{}{SCORE_PATH}", dialer.url)
        .parse()
        .map_err(|error: http::uri::InvalidUri| ApiError::connect(&test.addr, error))?;
    let authorization = dialer.authorization.clone();
    let mut connections = Vec::with_capacity(test.connections);
    for _ in 0..test.connections {
        connections.push(dialer.open().await?);
    }
    // Each request's message is encoded once here, unless every request needs an id of its own.
    let requests: Arc<Vec<(proto::ScoreRequest, Bytes)>> = Arc::new(
        profiles
            .into_iter()
            .map(|profile| {
                let request = proto::ScoreRequest {
                    profile: Some(profile),
                    top_k: test.top_k,
                };
                let frame = grpc_frame(&request);
                (request, frame)
            })
            .collect(),
    );
    let start = Instant::now();
    let measure_from = start + test.warmup;
    let deadline = measure_from + test.duration;
    // At a fixed rate a pacer thread issues due times (std's sleep is precise to tens of
    // microseconds; tokio's timer ticks by the millisecond and would send in bursts) and the
    // tasks take them in turn: a due time waiting for a free task is backlog, and counts.
    let schedule = test.rate.map(|rate| {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let period = Duration::from_secs_f64(1.0 / rate);
        std::thread::spawn(move || {
            // Linux lets a sleep end up to 50 µs late by default (timer slack), lateness that
            // would be counted against the server: ask for wake-ups as precise as it can.
            #[cfg(target_os = "linux")]
            if let Err(error) = rustix::thread::set_current_timer_slack(NonZeroU64::new(1)) {
                tracing::debug!(%error, "cannot make the pacer's sleeps precise");
            }
            let mut due = start;
            while due < deadline {
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if sender.send(due).is_err() {
                    break;
                }
                due += period;
            }
        });
        Arc::new(tokio::sync::Mutex::new(receiver))
    });
    let mut tasks = Vec::with_capacity(test.concurrency);
    for worker in 0..test.concurrency {
        let mut connection = connections[worker % connections.len()].clone();
        let uri = uri.clone();
        let requests = requests.clone();
        let schedule = schedule.clone();
        let fresh_customers = test.fresh_customers;
        let authorization = authorization.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sent: usize = 0;
            loop {
                let due = match &schedule {
                    Some(schedule) => match schedule.lock().await.recv().await {
                        Some(due) => due,
                        None => break,
                    },
                    None => Instant::now(),
                };
                if due >= deadline {
                    break;
                }
                let (request, frame) = &requests[(worker + sent * 7919) % requests.len()];
                let frame = if fresh_customers {
                    let mut request = request.clone();
                    if let Some(profile) = &mut request.profile {
                        profile.customer_id = format!("{}-{worker}-{sent}", profile.customer_id);
                    }
                    grpc_frame(&request)
                } else {
                    frame.clone()
                };
                let outcome = call(&mut connection, &uri, authorization.as_ref(), frame).await;
                sent += 1;
                if due >= measure_from {
                    let latency = due.elapsed();
                    match outcome {
                        Ok(response) if response.alert.is_some() => {
                            tally.alert_latencies.push(latency);
                        }
                        Ok(_) => tally.record(latency, None),
                        Err(error) => tally.record(latency, Some(error)),
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task
            .await
            .map_err(|error| anyhow::anyhow!("a load test task stopped: {error}"))?;
        total.merge(tally);
    }
    Ok(total.report(test.duration, test.rate))
}

/// Opens an HTTP/2 connection to `authority` (`host:port`; `addr` names the server in errors),
/// over TLS when `tls` is given; its connection task runs in the background until every sender
/// is dropped.
/// Opens HTTP/2 connections to one server, over TLS when its options say so, and holds the
/// `authorization` header its requests carry. The abusers of `--abuse` dial through it too.
pub(crate) struct Dialer {
    addr: String,
    /// The server's URL, `http://…` or `https://…`, without a path.
    pub(crate) url: String,
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The token as a header value, when there is one.
    pub(crate) authorization: Option<http::HeaderValue>,
}

impl Dialer {
    /// Reads the TLS files and the token of `options` for the server at `addr`.
    pub(crate) fn new(addr: &str, options: &ConnectOptions) -> Result<Self> {
        let target = Target::resolve(addr, options)?;
        let tls = match &target.tls {
            Some(tls) => Some((
                TlsConnector::from(Arc::new(tls.rustls_config()?)),
                tls.server_name().clone(),
            )),
            None => None,
        };
        let authorization = match &options.token {
            Some(token) => {
                let mut value = http::HeaderValue::from_str(token.header_value())
                    .map_err(|_| anyhow::anyhow!("the token is not a valid header value"))?;
                // HTTP/2 then never keeps it in a header compression table.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Dialer {
            addr: addr.to_string(),
            url: target.url,
            authority: target.authority,
            tls,
            authorization,
        })
    }

    /// Opens one HTTP/2 connection.
    pub(crate) async fn open(&self) -> Result<h2::client::SendRequest<Bytes>> {
        let addr = &self.addr;
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|error| ApiError::connect(addr, error))?;
        tcp.set_nodelay(true)
            .map_err(|error| ApiError::connect(addr, error))?;
        match &self.tls {
            Some((connector, server_name)) => {
                let stream = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|error| ApiError::connect(addr, format!("TLS: {error}")))?;
                handshake_h2(addr, stream).await
            }
            None => handshake_h2(addr, tcp).await,
        }
    }
}

/// Starts HTTP/2 on an open connection, plain or TLS.
async fn handshake_h2<Io>(addr: &str, io: Io) -> Result<h2::client::SendRequest<Bytes>>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = h2::client::handshake(io)
        .await
        .map_err(|error| ApiError::connect(addr, error))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "load test connection closed");
        }
    });
    Ok(sender)
}

/// Returns a request as a gRPC message: uncompressed, its length, then its bytes.
fn grpc_frame(request: &proto::ScoreRequest) -> Bytes {
    let length = request.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + length);
    frame.put_u8(0);
    frame.put_u32(length as u32);
    request
        .encode(&mut frame)
        .expect("the buffer has room for the message");
    frame.freeze()
}

/// Makes one Score call: headers, message and end of stream in one go, then the answer and its
/// status. Any failure, of the transport or a gRPC status other than OK, comes back as text.
async fn call(
    connection: &mut h2::client::SendRequest<Bytes>,
    uri: &http::Uri,
    authorization: Option<&http::HeaderValue>,
    frame: Bytes,
) -> std::result::Result<proto::ScoreResponse, String> {
    let mut request = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|error| error.to_string())?;
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.clone());
    }
    std::future::poll_fn(|cx| connection.poll_ready(cx))
        .await
        .map_err(|error| error.to_string())?;
    let (response, mut body) = connection
        .send_request(request, false)
        .map_err(|error| error.to_string())?;
    body.send_data(frame, true)
        .map_err(|error| error.to_string())?;
    let (head, mut answer) = response
        .await
        .map_err(|error| error.to_string())?
        .into_parts();
    if head.status != http::StatusCode::OK {
        return Err(format!("HTTP status {}", head.status));
    }
    // A call refused outright has its status in the headers, and no message ("trailers only").
    grpc_status(&head.headers)?;
    let mut message = BytesMut::new();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk.map_err(|error| error.to_string())?;
        // Given back at once, so that the connection's window never closes.
        let _ = answer.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
    }
    let trailers = answer
        .trailers()
        .await
        .map_err(|error| error.to_string())?
        .ok_or("the answer has no trailers, so no gRPC status")?;
    grpc_status(&trailers)?;
    decode_message(&message)
}

/// Fails with the call's gRPC status and message unless it is OK or absent; tonic reads them
/// (percent-decoding the message) as its own client does.
fn grpc_status(headers: &http::HeaderMap) -> std::result::Result<(), String> {
    match tonic::Status::from_header_map(headers) {
        Some(status) if status.code() != tonic::Code::Ok => Err(format!(
            "status: {:?}, message: {:?}",
            status.code(),
            status.message()
        )),
        _ => Ok(()),
    }
}

/// Decodes the one uncompressed gRPC message of an answer.
fn decode_message(message: &[u8]) -> std::result::Result<proto::ScoreResponse, String> {
    let Some((&[compressed, a, b, c, d], body)) = message.split_first_chunk::<5>() else {
        return Err("the answer has no gRPC message".into());
    };
    if compressed != 0 {
        return Err("the answer is compressed, which was not asked for".into());
    }
    let length = u32::from_be_bytes([a, b, c, d]) as usize;
    if body.len() != length {
        return Err(format!(
            "the answer's message says {length} bytes and has {}",
            body.len()
        ));
    }
    proto::ScoreResponse::decode(body).map_err(|error| error.to_string())
}

/// Latencies and errors of one task, merged at the end.
#[derive(Debug, Default)]
struct Tally {
    /// Latencies of the answers that reported no alert, and of failed calls.
    latencies: Vec<Duration>,
    /// Latencies of the answers that reported an alert.
    alert_latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, latency: Duration, error: Option<String>) {
        self.latencies.push(latency);
        if let Some(error) = error {
            self.errors += 1;
            self.first_error.get_or_insert(error);
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.alert_latencies.extend(other.alert_latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn report(self, elapsed: Duration, target_rate: Option<f64>) -> LoadReport {
        let all = Quantiles::of([&self.latencies[..], &self.alert_latencies].concat());
        let alerts = self.alert_latencies.len() as u64;
        let by_alert = (!self.alert_latencies.is_empty()).then(|| {
            [
                Quantiles::of(self.alert_latencies),
                Quantiles::of(self.latencies),
            ]
        });
        LoadReport {
            requests: all.count as u64,
            errors: self.errors,
            alerts,
            first_error: self.first_error,
            elapsed,
            target_rate,
            p50: all.p50,
            p90: all.p90,
            p99: all.p99,
            p999: all.p999,
            max: all.max,
            by_alert,
        }
    }
}

/// Returns the nearest-rank quantile of sorted latencies (zero when there are none).
fn quantile_of(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile_of(&sorted, 0.5), Duration::from_micros(50));
        assert_eq!(quantile_of(&sorted, 0.99), Duration::from_micros(99));
        assert_eq!(quantile_of(&sorted, 0.999), Duration::from_micros(100));
        assert_eq!(quantile_of(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn answers_with_an_alert_are_reported_apart_and_in_the_whole() {
        let mut tally = Tally::default();
        for micros in 1..=90 {
            tally.record(Duration::from_micros(micros), None);
        }
        for micros in 91..=100 {
            tally
                .alert_latencies
                .push(Duration::from_micros(micros * 10));
        }
        let report = tally.report(Duration::from_secs(1), None);
        assert_eq!(report.requests, 100);
        assert_eq!(report.p90, Duration::from_micros(90));
        assert_eq!(report.p99, Duration::from_micros(990));
        let [alerting, quiet] = report.by_alert.expect("some answers alerted");
        assert_eq!((alerting.count, quiet.count), (10, 90));
        assert_eq!(alerting.p50, Duration::from_micros(950));
        assert_eq!(alerting.max, Duration::from_micros(1000));
        assert_eq!(quiet.max, Duration::from_micros(90));
        assert!(format!("{report}").contains("| with an alert | 10 | 950 µs |"));
    }
}
