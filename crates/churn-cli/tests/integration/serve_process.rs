//! `churn serve` as a real process: settings from flags, environment and file; SIGHUP reloads
//! the model; SIGTERM lets an in-flight call finish before the process exits cleanly; alerts
//! reported to clients survive `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use churn_api::proto;
use churn_api::proto::alert_service_client::AlertServiceClient;
use churn_api::proto::churn_service_client::ChurnServiceClient;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `churn serve` child process and the gRPC address it printed.
struct ServerProcess {
    child: Child,
    addr: String,
    metrics_addr: String,
    log: mpsc::Receiver<String>,
    /// The alert store's folder when the test did not name one.
    _alerts_dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    fn start(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_churn"));
        // From the repository root, where the default `models/telco` is.
        command
            .current_dir(repo_root())
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        // Each server gets its own alert store unless the test names one.
        let alerts_dir = if args.contains(&"--alerts-db") {
            None
        } else {
            let dir = tempfile::tempdir()?;
            command
                .arg("--alerts-db")
                .arg(dir.path().join("alerts.sqlite"));
            Some(dir)
        };
        let mut child = command.spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let (sender, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = ServerProcess {
            child,
            addr: String::new(),
            metrics_addr: String::new(),
            log,
            _alerts_dir: alerts_dir,
        };
        let line = server.wait_for_log("serving")?;
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix(name))
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("no `{name}` in `{line}`"))
        };
        server.addr = format!("http://{}", field("grpc=")?);
        server.metrics_addr = field("metrics=")?;
        Ok(server)
    }

    /// Returns the first log line containing `text`, waiting up to 60 s.
    fn wait_for_log(&mut self, text: &str) -> anyhow::Result<String> {
        let mut seen = Vec::new();
        loop {
            let Ok(line) = self.log.recv_timeout(Duration::from_secs(60)) else {
                anyhow::bail!("no log line with `{text}` in:\n{}", seen.join("\n"));
            };
            if line.contains(text) {
                return Ok(line);
            }
            seen.push(line);
        }
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(
    server: &ServerProcess,
) -> anyhow::Result<ChurnServiceClient<tonic::transport::Channel>> {
    Ok(ChurnServiceClient::new(
        churn_api::client::connect(&server.addr).await?,
    ))
}

/// Telco customers as protobuf profiles of the shipped model's features.
fn telco_profiles(model: &proto::ModelInfo, count: usize) -> anyhow::Result<Vec<proto::Profile>> {
    let data = repo_root().join("notebooks-data/telco/Telco-Customer-Churn.csv");
    let mut profiles = churn_cli::client::profiles_for(model, &data)?;
    profiles.truncate(count);
    Ok(profiles)
}

fn copy_shipped_model(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::copy(
        repo_root().join("models/telco/model.json"),
        dir.join("model.json"),
    )?;
    Ok(dir.to_path_buf())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_flags_environment_and_file_and_sighup_reloads() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model = copy_shipped_model(dir.path())?;
    let config = dir.path().join("serve.toml");
    // The file sets the batch limit and top-k cap; the environment overrides the batch limit.
    std::fs::write(
        &config,
        "max_batch = 50\nmax_top_k = 2\nwatch_interval_ms = 0\n",
    )?;
    let model_arg = model.display().to_string();
    let server = ServerProcess::start(
        &["--model", &model_arg],
        &[
            ("CHURN_CONFIG", config.to_str().unwrap_or_default()),
            ("CHURN_MAX_BATCH", "3"),
            // The flag wins over this.
            ("CHURN_MODEL", "/nonexistent"),
        ],
    )?;
    let mut client = client(&server).await?;
    let info = client
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    assert_eq!(info.model.as_ref().map(|m| m.name.as_str()), Some("telco"));
    let profiles = telco_profiles(&info, 4)?;

    let response = client
        .score(proto::ScoreRequest {
            profile: Some(profiles[0].clone()),
            top_k: 5,
        })
        .await?
        .into_inner();
    assert!(
        response.raising.len() <= 2 && response.lowering.len() <= 2,
        "max_top_k from the file"
    );
    let status = client
        .score_batch(proto::ScoreBatchRequest {
            profiles: profiles.clone(),
            top_k: 5,
        })
        .await
        .expect_err("max_batch from the environment");
    assert_eq!(
        status.message(),
        "`profiles` has 4 profiles; the limit is 3 per batch"
    );

    // SIGHUP: a new artifact (renamed model) is loaded without a restart.
    let json = std::fs::read_to_string(model.join("model.json"))?;
    std::fs::write(
        model.join("model.json"),
        json.replacen("\"name\": \"telco\"", "\"name\": \"telco-v2\"", 1),
    )?;
    server.signal("HUP")?;
    let mut name = String::new();
    for _ in 0..100 {
        let info = client
            .get_model(proto::GetModelRequest {})
            .await?
            .into_inner();
        name = info.model.map(|m| m.name).unwrap_or_default();
        if name == "telco-v2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(name, "telco-v2");
    Ok(())
}

/// The server runs without transparent huge pages: a fresh 2 MiB page, cleared whole under the
/// alert store's lock, stalled every call for milliseconds. Linux says so in the process status.
#[cfg(target_os = "linux")]
#[test]
fn the_server_runs_without_transparent_huge_pages() -> anyhow::Result<()> {
    let server = ServerProcess::start(&[], &[])?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("THP_enabled:"))
        .ok_or_else(|| anyhow::anyhow!("no THP_enabled in:\n{status}"))?;
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    Ok(())
}

/// `churn loadtest` against a served model: it runs at the rate asked, every call answered,
/// and prints its table.
#[test]
fn loadtest_reports_every_call_answered_at_the_rate_asked() -> anyhow::Result<()> {
    let server = ServerProcess::start(&[], &[])?;
    let output = Command::new(env!("CARGO_BIN_EXE_churn"))
        .current_dir(repo_root())
        .args(["loadtest", "--addr", &server.addr])
        .args(["--rate", "400", "--duration", "1s", "--warmup", "200ms"])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // | target rps | achieved rps | requests | errors | p50 | ...
    let row: Vec<&str> = stdout
        .lines()
        .find(|line| line.starts_with("| 400 |"))
        .ok_or_else(|| anyhow::anyhow!("no result row in:\n{stdout}"))?
        .split('|')
        .map(str::trim)
        .collect();
    let requests: u64 = row[3].parse()?;
    assert!((300..=440).contains(&requests), "{stdout}");
    assert_eq!(row[4], "0", "{stdout}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_call_finish_then_exits_cleanly() -> anyhow::Result<()> {
    let mut server = ServerProcess::start(
        &["--max-batch", "7043", "--max-message-bytes", "16777216"],
        &[],
    )?;
    let mut client = client(&server).await?;
    let info = client
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    let profiles = telco_profiles(&info, 7043)?;
    // A window as large as the answer: the client then sends no WINDOW_UPDATE that the
    // stopping server would leave unread, which makes the kernel reset the connection and
    // drop the answer's tail (a race below hyper, noted on issue #5).
    let channel = tonic::transport::Endpoint::from_shared(server.addr.clone())?
        .initial_stream_window_size(Some(64 << 20))
        .initial_connection_window_size(Some(64 << 20))
        .connect()
        .await?;
    let mut batch_client = ChurnServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let batch = tokio::spawn(async move {
        batch_client
            .score_batch(proto::ScoreBatchRequest { profiles, top_k: 5 })
            .await
    });
    // Wait until the server is working on the batch, then ask it to stop.
    let mut in_flight = false;
    for _ in 0..400 {
        let metrics = http_get(&server.metrics_addr, "/metrics").await?;
        if metrics.contains("churn_grpc_requests_in_flight 1") {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(in_flight, "the batch reached the server");
    server.signal("TERM")?;
    server.wait_for_log("stopping")?;
    let outcome = batch.await?;
    let results = outcome?.into_inner().results;
    assert_eq!(results.len(), 7043);
    assert!(
        results
            .iter()
            .all(|result| matches!(result.outcome, Some(proto::score_result::Outcome::Score(_))))
    );
    let status = server.child.wait()?;
    assert!(status.success(), "{status}");
    // Once stopped, it takes no new calls.
    assert!(client.get_model(proto::GetModelRequest {}).await.is_err());
    Ok(())
}

/// A plain HTTP/1.1 GET, enough for `/metrics`.
async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// Pages through every alert matching `filter`.
async fn all_alerts(
    client: &mut AlertServiceClient<tonic::transport::Channel>,
    filter: proto::AlertFilter,
) -> anyhow::Result<Vec<proto::Alert>> {
    let mut alerts = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_alerts(proto::ListAlertsRequest {
                filter: Some(filter.clone()),
                page_size: 500,
                page_token,
            })
            .await?
            .into_inner();
        alerts.extend(page.alerts);
        if page.next_page_token.is_empty() {
            return Ok(alerts);
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_a_client_was_told_of_survives_kill_9_exactly_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("alerts.sqlite");
    let policy = dir.path().join("policy.toml");
    // Every score alerts, so every first score of a customer raises and the second updates.
    std::fs::write(&policy, "min_band = \"low\"\n")?;
    let args = [
        "--alerts-db",
        db.to_str().unwrap_or_default(),
        "--alert-policy",
        policy.to_str().unwrap_or_default(),
    ];
    let mut server = ServerProcess::start(&args, &[])?;
    let mut scoring = client(&server).await?;
    let info = scoring
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    let profiles = telco_profiles(&info, 500)?;

    // Four clients score customers twice each, recording every alert they are told of, until
    // the server is killed under them.
    let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|writer| {
            let mut scoring = scoring.clone();
            let profiles = profiles.clone();
            let told = told.clone();
            tokio::spawn(async move {
                for round in 0.. {
                    let mut profile = profiles[(writer * 131 + round) % profiles.len()].clone();
                    profile.customer_id = format!("k{writer}-{round}");
                    for _ in 0..2 {
                        let request = proto::ScoreRequest {
                            profile: Some(profile.clone()),
                            top_k: 2,
                        };
                        let Ok(response) = scoring.score(request).await else {
                            return;
                        };
                        if let Some(alert) = response.into_inner().alert {
                            let mut told = told.lock().unwrap_or_else(|e| e.into_inner());
                            told.push((profile.customer_id.clone(), alert.alert_id, alert.kind));
                        }
                    }
                }
            })
        })
        .collect();
    for _ in 0..600 {
        if told.lock().unwrap_or_else(|e| e.into_inner()).len() >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("KILL")?;
    let _ = server.child.wait()?;
    for client in clients {
        client.await?;
    }
    let told = told.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        told.len() >= 400,
        "only {} alerts before the kill",
        told.len()
    );

    let restarted = ServerProcess::start(&args, &[])?;
    let mut alerts = AlertServiceClient::new(churn_api::client::connect(&restarted.addr).await?);
    let stored = all_alerts(&mut alerts, proto::AlertFilter::default()).await?;
    let by_id: std::collections::HashMap<&str, &proto::Alert> = stored
        .iter()
        .map(|alert| (alert.id.as_str(), alert))
        .collect();
    assert_eq!(by_id.len(), stored.len(), "an alert id is listed twice");
    let customers: std::collections::HashSet<&str> = stored
        .iter()
        .map(|alert| alert.customer_id.as_str())
        .collect();
    assert_eq!(customers.len(), stored.len(), "a customer has two alerts");
    for (customer, id, kind) in &told {
        let alert = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("alert {id} of {customer} was lost"));
        assert_eq!(&alert.customer_id, customer);
        if *kind == i32::from(proto::AlertEventKind::Updated) {
            assert!(alert.score_count >= 2, "the update of {id} was lost");
        }
    }
    // The customers' history survived too: a known customer's next score updates its alert.
    let (customer, id, _) = &told[0];
    let mut profile = profiles[0].clone();
    profile.customer_id = customer.clone();
    let mut scoring = ChurnServiceClient::new(churn_api::client::connect(&restarted.addr).await?);
    let response = scoring
        .score(proto::ScoreRequest {
            profile: Some(profile),
            top_k: 1,
        })
        .await?
        .into_inner();
    let alert = response.alert.expect("an alert");
    assert_eq!(
        (&alert.alert_id, alert.kind()),
        (id, proto::AlertEventKind::Updated)
    );
    Ok(())
}
