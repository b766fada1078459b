//! A server safe to expose, over real sockets: TLS on both ports (a real rustls client), callers
//! with roles by bearer token or client certificate, revocation without a restart, refusals of
//! plaintext and of a non-loopback bind without TLS, and the limits on connections, idle time,
//! slow headers and alert feeds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use churn_api::proto;
use churn_api::proto::admin_service_client::AdminServiceClient;
use churn_api::proto::alert_service_client::AlertServiceClient;
use churn_api::proto::churn_service_client::ChurnServiceClient;
use churn_serve::auth::credentials::token_sha256;
use churn_serve::{RunningServer, ServeOptions};
use tokio_stream::StreamExt;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const SCORER: &str = "churn_scorer-token-for-tests";
const AGENT: &str = "churn_agent-token-for-tests";
const ADMIN: &str = "churn_admin-token-for-tests";
const SCRAPER: &str = "churn_metrics-token-for-tests";

/// A development CA, a server certificate for localhost, and a client certificate named
/// `batch-job`, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: String,
    client_key: String,
}

fn pki(dir: &Path) -> anyhow::Result<Pki> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "churn test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let server_key = KeyPair::generate()?;
    let server_params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
    let server_cert = server_params.signed_by(&server_key, &ca)?;
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "batch-job");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca)?;
    let write = |name: &str, text: String| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    };
    Ok(Pki {
        ca: write("ca.pem", ca.pem())?,
        server_cert: write("server.pem", server_cert.pem())?,
        server_key: write("server-key.pem", server_key.serialize_pem())?,
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

fn credentials_text(callers: &[(&str, &str, Option<&str>)]) -> String {
    callers
        .iter()
        .map(|(name, role, token)| {
            let hash = token.map_or(String::new(), |token| {
                format!("token_sha256 = \"{}\"\n", token_sha256(token))
            });
            format!("[[caller]]\nname = \"{name}\"\nroles = [\"{role}\"]\n{hash}")
        })
        .collect()
}

fn all_callers() -> String {
    credentials_text(&[
        ("crm-prod", "scorer", Some(SCORER)),
        ("ana", "agent", Some(AGENT)),
        ("ops", "admin", Some(ADMIN)),
        ("prometheus", "metrics", Some(SCRAPER)),
        ("batch-job", "scorer", None),
    ])
}

fn shipped_model() -> PathBuf {
    churn_e2e::repo_root().join("models/telco")
}

async fn start_secure(
    dir: &Path,
    pki: &Pki,
    mutual: bool,
    extra: ServeOptions,
) -> anyhow::Result<(RunningServer, PathBuf)> {
    let credentials = dir.join("credentials.toml");
    std::fs::write(&credentials, all_callers())?;
    let options = ServeOptions {
        model: Some(shipped_model()),
        addr: Some("127.0.0.1:0".parse()?),
        metrics_addr: Some("127.0.0.1:0".parse()?),
        alerts_db: Some(dir.join("alerts.sqlite")),
        tls_cert: Some(pki.server_cert.clone()),
        tls_key: Some(pki.server_key.clone()),
        tls_client_ca: mutual.then(|| pki.ca.clone()),
        credentials: Some(credentials.clone()),
        ..extra
    };
    let server = churn_serve::start(options.resolve()?).await?;
    Ok((server, credentials))
}

async fn tls_channel(
    addr: SocketAddr,
    pki: &Pki,
    identity: Option<Identity>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read(&pki.ca).unwrap_or_default(),
        ))
        .domain_name("localhost");
    if let Some(identity) = identity {
        tls = tls.identity(identity);
    }
    Channel::from_shared(format!("https://{addr}"))
        .expect("an address is a URI")
        .tls_config(tls)?
        .connect()
        .await
}

fn with_token<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("ASCII token");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn a_profile(channel: &Channel) -> anyhow::Result<proto::Profile> {
    let model = ChurnServiceClient::new(channel.clone())
        .get_model(with_token(proto::GetModelRequest {}, Some(SCORER)))
        .await?
        .into_inner();
    let profiles =
        churn_cli::client::profiles_for(&model, &churn_e2e::fixture("telco-sample.csv"))?;
    Ok(profiles.into_iter().next().expect("the fixture has rows"))
}

async fn score(
    channel: &Channel,
    profile: &proto::Profile,
    token: Option<&str>,
) -> Result<proto::ScoreResponse, tonic::Status> {
    let request = proto::ScoreRequest {
        profile: Some(profile.clone()),
        top_k: 5,
    };
    ChurnServiceClient::new(channel.clone())
        .score(with_token(request, token))
        .await
        .map(tonic::Response::into_inner)
}

/// Sends one HTTP/1.1 request over TLS and returns the status code and body.
async fn https_get(
    addr: SocketAddr,
    pki: &Pki,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in churn_serve::net::tls::read_certificates(&pki.ca)? {
        roots.add(certificate)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = tokio::net::TcpStream::connect(addr).await?;
    let mut stream = connector
        .connect(rustls_pki_types::ServerName::try_from("localhost")?, socket)
        .await?;
    let authorization = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    // The server closes after the answer; a TLS close_notify may be missing, which is fine here.
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_tokens_let_each_caller_do_what_its_role_allows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = pki(dir.path())?;
    let (server, credentials) =
        start_secure(dir.path(), &pki, false, ServeOptions::default()).await?;
    let channel = tls_channel(server.grpc_addr(), &pki, None).await?;
    let profile = a_profile(&channel).await?;

    let scored = score(&channel, &profile, Some(SCORER)).await?;
    assert!((0.0..=1.0).contains(&scored.probability));

    let missing = score(&channel, &profile, None).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated, "{missing:?}");
    assert!(
        missing.message().contains("authorization: Bearer"),
        "{missing:?}"
    );
    let unknown = score(&channel, &profile, Some("churn_not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unauthenticated);

    let reload = AdminServiceClient::new(channel.clone())
        .reload_model(with_token(proto::ReloadModelRequest {}, Some(AGENT)))
        .await
        .unwrap_err();
    assert_eq!(reload.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        reload.message(),
        "caller `ana` lacks the `admin` role this call needs"
    );
    AdminServiceClient::new(channel.clone())
        .reload_model(with_token(proto::ReloadModelRequest {}, Some(ADMIN)))
        .await?;

    // Health stays open to load balancers.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await?
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    // A plaintext client gets nothing from the TLS port.
    let plaintext = async {
        let channel = churn_api::client::connect(&format!("http://{}", server.grpc_addr())).await?;
        score(&channel, &profile, Some(SCORER))
            .await
            .map_err(anyhow::Error::from)
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(20), plaintext)
            .await?
            .is_err(),
        "a plaintext call to the TLS port must fail"
    );

    // The HTTP port is TLS too, and /metrics takes a `metrics` token.
    let (status, _) = https_get(server.metrics_addr(), &pki, "/metrics", None).await?;
    assert_eq!(status, 401);
    let (status, _) = https_get(server.metrics_addr(), &pki, "/metrics", Some(SCORER)).await?;
    assert_eq!(status, 403);
    let (status, body) = https_get(server.metrics_addr(), &pki, "/metrics", Some(SCRAPER)).await?;
    assert_eq!(status, 200);
    assert!(body.contains("churn_requests_refused"), "{body}");

    // Revoking takes effect without a restart: the file is watched.
    std::fs::write(
        &credentials,
        credentials_text(&[("ops", "admin", Some(ADMIN))]),
    )?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match score(&channel, &profile, Some(SCORER)).await {
            Err(status) if status.code() == tonic::Code::Unauthenticated => break,
            _ if Instant::now() > deadline => panic!("the revoked token still works after 15 s"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // The connection made before still serves the callers that remain.
    AdminServiceClient::new(channel.clone())
        .reload_model(with_token(proto::ReloadModelRequest {}, Some(ADMIN)))
        .await?;
    server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_names_the_caller_by_it()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = pki(dir.path())?;
    let (server, _) = start_secure(dir.path(), &pki, true, ServeOptions::default()).await?;

    let anonymous = async {
        let channel = tls_channel(server.grpc_addr(), &pki, None).await?;
        ChurnServiceClient::new(channel)
            .get_model(with_token(proto::GetModelRequest {}, Some(SCORER)))
            .await?;
        anyhow::Ok(())
    };
    assert!(
        anonymous.await.is_err(),
        "a client without a certificate must be refused"
    );

    let identity = Identity::from_pem(&pki.client_cert, &pki.client_key);
    let channel = tls_channel(server.grpc_addr(), &pki, Some(identity.clone())).await?;
    // No token: the certificate's subject, `batch-job`, is the caller.
    let model = ChurnServiceClient::new(channel.clone())
        .get_model(proto::GetModelRequest {})
        .await?;
    assert!(!model.into_inner().features.is_empty());
    let denied = AlertServiceClient::new(channel.clone())
        .list_alerts(proto::ListAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(denied.message().contains("`batch-job`"), "{denied:?}");
    // A token of another caller on this certificate is refused.
    let mismatch = ChurnServiceClient::new(channel)
        .get_model(with_token(proto::GetModelRequest {}, Some(SCORER)))
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        mismatch.message(),
        "the token belongs to `crm-prod` but the client certificate names `batch-job`"
    );
    server.shutdown().await?;
    Ok(())
}

#[test]
fn a_non_loopback_bind_needs_tls_and_credentials_or_an_explicit_setting() {
    let everywhere = ServeOptions {
        addr: Some("0.0.0.0:50051".parse().expect("address")),
        alerts_db: Some("off".into()),
        ..ServeOptions::default()
    };
    let error = everywhere.clone().resolve().unwrap_err().to_string();
    assert!(
        error.starts_with(
            "config `addr` = `0.0.0.0:50051`: not a loopback address, and TLS and credentials \
             are not set"
        ),
        "{error}"
    );
    assert!(
        error.contains("churn tls dev-ca") && error.contains("churn token add"),
        "{error}"
    );
    let with_tls_only = ServeOptions {
        tls_cert: Some("server.pem".into()),
        tls_key: Some("server-key.pem".into()),
        ..everywhere.clone()
    };
    let error = with_tls_only.resolve().unwrap_err().to_string();
    assert!(error.contains("and credentials are not set"), "{error}");
    let trusted = ServeOptions {
        allow_insecure_network: Some(true),
        ..everywhere
    };
    assert!(trusted.resolve().is_ok());
}

/// A plaintext server on the loopback with tight limits.
async fn start_limited(dir: &Path, extra: ServeOptions) -> anyhow::Result<RunningServer> {
    let options = ServeOptions {
        model: Some(shipped_model()),
        addr: Some("127.0.0.1:0".parse()?),
        metrics_addr: Some("127.0.0.1:0".parse()?),
        alerts_db: Some(dir.join("alerts.sqlite")),
        ..extra
    };
    Ok(churn_serve::start(options.resolve()?).await?)
}

/// Waits until the server closes `socket` (a read returns end of file or an error).
fn closed_within(mut socket: TcpStream, limit: Duration) -> bool {
    socket
        .set_read_timeout(Some(limit))
        .expect("a read timeout");
    let mut buffer = [0u8; 1024];
    loop {
        match socket.read(&mut buffer) {
            Ok(0) => return true,
            // A 408 or other answer before the close is fine; keep reading to the close.
            Ok(_) => continue,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_slow_headers_and_extra_connections_are_closed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start_limited(
        dir.path(),
        ServeOptions {
            idle_timeout_ms: Some(300),
            header_read_timeout_ms: Some(300),
            max_connections: Some(3),
            ..ServeOptions::default()
        },
    )
    .await?;
    let grpc = server.grpc_addr();
    let http = server.metrics_addr();
    tokio::task::spawn_blocking(move || {
        // A connection that never sends a request is closed after the idle timeout.
        let idle = TcpStream::connect(grpc)?;
        assert!(
            closed_within(idle, Duration::from_secs(10)),
            "idle gRPC connection kept"
        );

        // A slowloris: half a request line, then nothing.
        let mut slow = TcpStream::connect(http)?;
        slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n")?;
        assert!(
            closed_within(slow, Duration::from_secs(10)),
            "slow headers kept"
        );

        // Past max_connections a new connection is closed at once, and a place frees when one
        // closes.
        let held: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(grpc))
            .collect::<Result<_, _>>()?;
        std::thread::sleep(Duration::from_millis(100));
        let extra = TcpStream::connect(grpc)?;
        assert!(
            closed_within(extra, Duration::from_secs(2)),
            "a fourth connection was kept"
        );
        drop(held);
        anyhow::Ok(())
    })
    .await??;
    // The server still serves.
    let channel = churn_api::client::connect(&format!("http://{grpc}")).await?;
    ChurnServiceClient::new(channel)
        .get_model(proto::GetModelRequest {})
        .await?;
    server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_feeds_are_capped_per_caller_and_calls_in_flight_overall() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let server = start_limited(
        dir.path(),
        ServeOptions {
            max_alert_feeds_per_caller: Some(2),
            ..ServeOptions::default()
        },
    )
    .await?;
    let channel = churn_api::client::connect(&format!("http://{}", server.grpc_addr())).await?;
    let mut alerts = AlertServiceClient::new(channel.clone());
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(
            alerts
                .stream_alerts(proto::StreamAlertsRequest::default())
                .await?
                .into_inner(),
        );
    }
    let refused = alerts
        .stream_alerts(proto::StreamAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        refused.message(),
        "`127.0.0.1` has 2 alert feeds open; the limit is 2 (max_alert_feeds_per_caller)"
    );
    // Closing a feed frees its place.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reopened = loop {
        match alerts
            .stream_alerts(proto::StreamAlertsRequest::default())
            .await
        {
            Ok(stream) => break stream.into_inner(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("a closed feed's place was not freed: {status:?}"),
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(200), reopened.next())
            .await
            .is_err(),
        "a live feed with no events stays open"
    );
    server.shutdown().await?;

    // Every call in flight counts against max_in_flight, live feeds too.
    let server = start_limited(
        dir.path(),
        ServeOptions {
            max_in_flight: Some(2),
            ..ServeOptions::default()
        },
    )
    .await?;
    let channel = churn_api::client::connect(&format!("http://{}", server.grpc_addr())).await?;
    let mut alerts = AlertServiceClient::new(channel.clone());
    let _first = alerts
        .stream_alerts(proto::StreamAlertsRequest::default())
        .await?;
    let _second = alerts
        .stream_alerts(proto::StreamAlertsRequest::default())
        .await?;
    let refused = ChurnServiceClient::new(channel)
        .get_model(proto::GetModelRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(
        refused.message(),
        "the server has 2 calls in flight, its limit (max_in_flight); retry with backoff"
    );
    server.shutdown().await?;
    Ok(())
}

/// Parses `churn ARGS` as the command line would.
fn cli(args: &[&str]) -> anyhow::Result<churn_cli::Command> {
    use clap::Parser;
    let parsed =
        churn_cli::Cli::try_parse_from(std::iter::once("churn").chain(args.iter().copied()))?;
    Ok(parsed.command)
}

#[test]
fn churn_client_and_loadtest_speak_tls_and_send_their_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = pki(dir.path())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (server, _) = runtime.block_on(start_secure(
        dir.path(),
        &pki,
        false,
        ServeOptions::default(),
    ))?;
    let addr = server.grpc_addr().to_string();
    let ca = pki.ca.to_string_lossy().to_string();
    let token_file = dir.path().join("crm.token");
    std::fs::write(&token_file, SCORER)?;
    let token = token_file.to_string_lossy().to_string();
    let tls = [
        "--addr",
        &addr,
        "--tls-ca",
        &ca,
        "--tls-server-name",
        "localhost",
    ];

    let churn_cli::Command::Client(args) =
        cli(&[&["client"], &tls[..], &["--token-file", &token, "model"]].concat())?
    else {
        anyhow::bail!("not a client command");
    };
    let mut out = Vec::new();
    churn_cli::client::client(args, &mut out)?;
    let text = String::from_utf8(out)?;
    assert!(text.contains("tenure"), "{text}");

    // Without the token the same call is refused, and says why.
    let churn_cli::Command::Client(args) = cli(&[&["client"], &tls[..], &["model"]].concat())?
    else {
        anyhow::bail!("not a client command");
    };
    let error = churn_cli::client::client(args, &mut Vec::new()).unwrap_err();
    assert!(format!("{error:#}").contains("no credentials"), "{error:#}");

    let data = churn_e2e::fixture("telco-sample.csv")
        .to_string_lossy()
        .to_string();
    let churn_cli::Command::Loadtest(args) = cli(&[
        &["loadtest"],
        &tls[..],
        &[
            "--token-file",
            &token,
            "--data",
            &data,
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--rate",
            "200",
            "--concurrency",
            "4",
        ],
    ]
    .concat())?
    else {
        anyhow::bail!("not a loadtest command");
    };
    let mut out = Vec::new();
    // Fails if any request failed: every one went over TLS with the token.
    churn_cli::loadtest::loadtest(args, &mut out)?;
    let report = String::from_utf8(out)?;
    assert!(report.starts_with("| target rps |"), "{report}");
    runtime.block_on(server.shutdown())?;
    Ok(())
}
