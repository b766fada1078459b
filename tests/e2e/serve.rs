//! `churn serve` end to end: a model trained on a fixture, served on 127.0.0.1:0, called over
//! real gRPC. Results must equal `churn score` on the same rows, bad input must be refused by
//! name while the server keeps serving, and reloads under load must lose no request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use churn_api::proto;
use churn_api::proto::admin_service_client::AdminServiceClient;
use churn_api::proto::churn_service_client::ChurnServiceClient;
use churn_serve::{RunningServer, ServeOptions};
use churn_train::{ModelChoice, train};
use tonic::transport::Channel;

use crate::{run_score, sample_config};

/// Trains a model of `kind` on the sample fixture into `dir`.
pub(crate) fn train_into(dir: &Path, kind: ModelChoice) -> anyhow::Result<PathBuf> {
    train_on(&churn_e2e::fixture("telco-sample.csv"), dir, kind)
}

/// Trains a model of `kind` on `data` (shaped like the sample fixture) into `dir`.
fn train_on(data: &Path, dir: &Path, kind: ModelChoice) -> anyhow::Result<PathBuf> {
    let mut config = sample_config();
    config.data = data.to_path_buf();
    config.model = kind;
    train(&config, "sample")?.write(dir)?;
    Ok(dir.to_path_buf())
}

pub(crate) async fn start(model: &Path, options: ServeOptions) -> anyhow::Result<RunningServer> {
    start_with_credentials(model, options, None).await
}

/// As [`start`], with authentication on when a credentials file is given.
pub(crate) async fn start_with_credentials(
    model: &Path,
    options: ServeOptions,
    credentials: Option<std::path::PathBuf>,
) -> anyhow::Result<RunningServer> {
    let config = ServeOptions {
        model: Some(model.to_path_buf()),
        addr: Some("127.0.0.1:0".parse()?),
        metrics_addr: Some("127.0.0.1:0".parse()?),
        // Tests about scoring run without an alert store; alert tests give one.
        alerts_db: options.alerts_db.clone().or(Some("off".into())),
        credentials: credentials.or(options.credentials.clone()),
        ..options
    }
    .resolve()?;
    Ok(churn_serve::start(config).await?)
}

pub(crate) async fn channel(server: &RunningServer) -> anyhow::Result<Channel> {
    Ok(churn_api::client::connect(&format!("http://{}", server.grpc_addr())).await?)
}

/// The fixture's rows as protobuf profiles of the model's features.
pub(crate) fn fixture_profiles(model: &proto::ModelInfo) -> anyhow::Result<Vec<proto::Profile>> {
    churn_cli::client::profiles_for(model, &churn_e2e::fixture("telco-sample.csv"))
}

/// Checks one gRPC result against the `churn score` JSON line of the same row, to the bit.
fn assert_same_as_cli(response: &proto::ScoreResponse, line: &serde_json::Value) {
    assert_eq!(
        response.customer_id,
        line["id"].as_str().unwrap_or_default()
    );
    let probability = line["probability"].as_f64().unwrap_or(f64::NAN);
    assert_eq!(
        response.probability.to_bits(),
        probability.to_bits(),
        "{line}"
    );
    assert_eq!(
        churn_api::convert::band_from_proto(response.band()).map_or("?", |band| band.as_str()),
        line["band"].as_str().unwrap_or_default()
    );
    assert_eq!(
        response.percentile,
        line["percentile"].as_f64().unwrap_or(f64::NAN)
    );
    for (reasons, key) in [
        (&response.raising, "raising"),
        (&response.lowering, "lowering"),
    ] {
        let expected = line[key].as_array().cloned().unwrap_or_default();
        assert_eq!(reasons.len(), expected.len(), "{key} of {line}");
        for (reason, want) in reasons.iter().zip(&expected) {
            assert_eq!(reason.feature, want["feature"].as_str().unwrap_or_default());
            let contribution = want["contribution"].as_f64().unwrap_or(f64::NAN);
            assert_eq!(reason.contribution.to_bits(), contribution.to_bits());
            assert_eq!(reason.message, want["text"].as_str().unwrap_or_default());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_scores_equal_churn_score_on_the_same_rows() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model_dir = train_into(dir.path(), ModelChoice::Gbdt)?;
    let (ok, lines) = run_score(&model_dir, &churn_e2e::fixture("telco-sample.csv"))?;
    assert!(ok);
    let server = start(&model_dir, ServeOptions::default()).await?;
    let mut client = ChurnServiceClient::new(channel(&server).await?);

    let model = client
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    assert_eq!(model.kind, "gbdt");
    assert_eq!(
        model.model.as_ref().map(|m| m.name.as_str()),
        Some("sample")
    );
    assert_eq!(model.model.as_ref().map(|m| m.version.len()), Some(16));
    assert_eq!(model.features.len(), 19);
    assert_eq!(model.id_column, "customerID");
    let contract = model
        .features
        .iter()
        .find(|feature| feature.name == "Contract")
        .expect("Contract feature");
    assert_eq!(contract.kind(), proto::FeatureKind::Categorical);
    assert!(contract.categories.contains(&"Month-to-month".to_string()));
    let bands = model.bands.expect("bands");
    assert!(0.0 < bands.medium && bands.medium <= bands.high && bands.high < 1.0);
    assert!(model.metrics["roc_auc"] > 0.7);
    assert_eq!(model.training_rows, 400);

    let profiles = fixture_profiles(&model)?;
    assert_eq!(profiles.len(), lines.len());
    for (profile, line) in profiles.iter().zip(&lines).take(25) {
        let response = client
            .score(proto::ScoreRequest {
                profile: Some(profile.clone()),
                top_k: 0, // the default, 5, as `churn score --top 5`
            })
            .await?
            .into_inner();
        assert_same_as_cli(&response, line);
    }

    let batch = client
        .score_batch(proto::ScoreBatchRequest {
            profiles: profiles.clone(),
            top_k: 5,
        })
        .await?
        .into_inner();
    assert_eq!(batch.results.len(), 400);
    for (index, (result, line)) in batch.results.iter().zip(&lines).enumerate() {
        assert_eq!(result.index, index as u64);
        match &result.outcome {
            Some(proto::score_result::Outcome::Score(response)) => {
                assert_same_as_cli(response, line)
            }
            other => panic!("row {index}: {other:?}"),
        }
    }

    let explained = client
        .explain(proto::ExplainRequest {
            profile: Some(profiles[0].clone()),
        })
        .await?
        .into_inner();
    assert_eq!(explained.contributions.len(), 19);
    let total: f64 = explained.contributions.iter().map(|c| c.contribution).sum();
    assert!((explained.base_value + total - explained.logit).abs() < 1e-9);
    assert_eq!(
        explained.probability.to_bits(),
        lines[0]["probability"]
            .as_f64()
            .unwrap_or(f64::NAN)
            .to_bits()
    );
    assert_eq!(
        explained.logit,
        lines[0]["logit"].as_f64().unwrap_or(f64::NAN)
    );

    // Streaming keeps request order.
    let requests: Vec<proto::ScoreRequest> = profiles[..50]
        .iter()
        .map(|profile| proto::ScoreRequest {
            profile: Some(profile.clone()),
            top_k: 5,
        })
        .collect();
    let mut stream = client
        .score_stream(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut index = 0;
    while let Some(result) = stream.message().await? {
        assert_eq!(result.index, index as u64);
        match &result.outcome {
            Some(proto::score_result::Outcome::Score(response)) => {
                assert_same_as_cli(response, &lines[index])
            }
            other => panic!("stream item {index}: {other:?}"),
        }
        index += 1;
    }
    assert_eq!(index, 50);

    // Health and reflection, as grpcurl would use them.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(&server).await?);
    for service in ["", "churn.v1.ChurnService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        assert_eq!(
            status.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    assert_eq!(
        reflected_services(&server).await?,
        [
            "churn.v1.AdminService",
            "churn.v1.AlertService",
            "churn.v1.ChurnService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    let metrics = http_get(server.metrics_addr(), "/metrics").await?;
    assert!(
        metrics.contains(r#"churn_grpc_requests_total{method="Score",code="OK"} 25"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"churn_profiles_total{outcome="scored"} 476"#));
    server.shutdown().await?;
    Ok(())
}

/// Lists services through server reflection (v1), as `grpcurl list` does.
async fn reflected_services(server: &RunningServer) -> anyhow::Result<Vec<String>> {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(server).await?);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    let mut names = Vec::new();
    if let Some(response) = responses.message().await?
        && let Some(MessageResponse::ListServicesResponse(list)) = response.message_response
    {
        names = list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect();
    }
    names.retain(|name| !name.ends_with("v1alpha.ServerReflection"));
    names.sort();
    Ok(names)
}

/// A plain HTTP/1.1 GET, enough for `/metrics`.
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    anyhow::ensure!(response.starts_with("HTTP/1.1 200"), "{response}");
    Ok(response)
}

/// The load generator speaks gRPC over h2 itself: its count of answers must be the server's,
/// and a refused call must come back as an error naming the server's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_counts_what_the_server_answered() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model_dir = train_into(&dir.path().join("model"), ModelChoice::Gbdt)?;
    let server = start(&model_dir, ServeOptions::default()).await?;
    let model = ChurnServiceClient::new(channel(&server).await?)
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    let profiles = fixture_profiles(&model)?;
    let test = churn_cli::load_generator::LoadTest {
        addr: format!("http://{}", server.grpc_addr()),
        connection: Default::default(),
        concurrency: 4,
        connections: 2,
        duration: Duration::from_millis(500),
        // Every call counts, so the report and the server see the same calls.
        warmup: Duration::ZERO,
        rate: None,
        top_k: 5,
        fresh_customers: false,
    };
    let report = churn_cli::load_generator::run(&test, profiles.clone()).await?;
    assert!(report.requests > 10, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(
        report.p50 <= report.p99 && report.p99 <= report.max,
        "{report}"
    );
    let metrics = http_get(server.metrics_addr(), "/metrics").await?;
    let answered = format!(
        r#"churn_grpc_requests_total{{method="Score",code="OK"}} {}"#,
        report.requests
    );
    assert!(metrics.contains(&answered), "{answered} not in {metrics}");

    // A fixed rate, every call refused: each one is an error carrying the server's message.
    let mut unknown = profiles[0].clone();
    unknown
        .features
        .insert("tenur".into(), value(proto::value::Kind::Number(3.0)));
    let refused = churn_cli::load_generator::LoadTest {
        rate: Some(200.0),
        ..test
    };
    let report = churn_cli::load_generator::run(&refused, vec![unknown]).await?;
    assert!(report.requests > 10, "{report}");
    assert_eq!(report.errors, report.requests, "{report}");
    let error = report.first_error.unwrap_or_default();
    assert!(
        error.contains("InvalidArgument") && error.contains("unknown feature `tenur`"),
        "{error}"
    );
    server.shutdown().await?;
    Ok(())
}

fn value(kind: proto::value::Kind) -> proto::Value {
    proto::Value { kind: Some(kind) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_by_name_and_the_server_keeps_serving() -> anyhow::Result<()> {
    use proto::value::Kind;
    let dir = tempfile::tempdir()?;
    // One blank TotalCharges in training, so that feature may be missing and Contract may not.
    let fixture = std::fs::read_to_string(churn_e2e::fixture("telco-sample.csv"))?;
    let data = crate::write_file(
        dir.path(),
        "blank.csv",
        &fixture.replacen("56.95,1889.5,No", "56.95, ,No", 1),
    );
    let model_dir = train_on(&data, &dir.path().join("model"), ModelChoice::Gbdt)?;
    let options = ServeOptions {
        max_batch: Some(10),
        max_message_bytes: Some(64 * 1024),
        ..ServeOptions::default()
    };
    let server = start(&model_dir, options).await?;
    let mut client = ChurnServiceClient::new(channel(&server).await?);
    let model = client
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    let good = fixture_profiles(&model)?.swap_remove(0);

    let with = |name: &str, value: Option<proto::Value>| {
        let mut profile = good.clone();
        match value {
            Some(value) => profile.features.insert(name.to_string(), value),
            None => profile.features.remove(name),
        };
        profile
    };
    let mut blank_id = good.clone();
    blank_id.customer_id = String::new();
    let cases: Vec<(&str, proto::Profile, &str)> = vec![
        (
            "unknown feature",
            with("tenur", Some(value(Kind::Number(3.0)))),
            "unknown feature `tenur`",
        ),
        (
            "text for a number",
            with("tenure", Some(value(Kind::Text("ten".into())))),
            "feature `tenure`: value `ten` is not a number",
        ),
        (
            "flag for a number",
            with("MonthlyCharges", Some(value(Kind::Flag(true)))),
            "feature `MonthlyCharges`: value `true` is not a number",
        ),
        (
            "number for a boolean",
            with("Partner", Some(value(Kind::Number(7.0)))),
            "feature `Partner`: value `7` is not a boolean",
        ),
        (
            "NaN",
            with("tenure", Some(value(Kind::Number(f64::NAN)))),
            "feature `tenure`: value `NaN` is not finite",
        ),
        (
            "infinity",
            with("MonthlyCharges", Some(value(Kind::Number(f64::INFINITY)))),
            "feature `MonthlyCharges`: value `inf` is not finite",
        ),
        (
            "unknown category",
            with("Contract", Some(value(Kind::Text("Weekly".into())))),
            "feature `Contract`: unknown category `Weekly`",
        ),
        (
            "missing feature without imputation",
            with("Contract", None),
            "feature `Contract`: a value is required",
        ),
        ("empty customer_id", blank_id, "`customer_id` is required"),
    ];
    for (case, profile, message) in cases {
        let status = client
            .score(proto::ScoreRequest {
                profile: Some(profile.clone()),
                top_k: 5,
            })
            .await
            .expect_err(case);
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{case}");
        assert!(
            status.message().starts_with(message),
            "{case}: {}",
            status.message()
        );
        // The same profile in a batch fails alone, between two good ones.
        let batch = client
            .score_batch(proto::ScoreBatchRequest {
                profiles: vec![good.clone(), profile, good.clone()],
                top_k: 1,
            })
            .await?
            .into_inner();
        let outcomes: Vec<bool> = batch
            .results
            .iter()
            .map(|result| matches!(result.outcome, Some(proto::score_result::Outcome::Score(_))))
            .collect();
        assert_eq!(outcomes, [true, false, true], "{case}");
        match &batch.results[1].outcome {
            Some(proto::score_result::Outcome::Error(error)) => {
                assert_eq!(error.code, "INVALID_ARGUMENT");
                assert!(
                    error.message.starts_with(message),
                    "{case}: {}",
                    error.message
                );
            }
            other => panic!("{case}: {other:?}"),
        }
        // And the server still answers.
        client
            .score(proto::ScoreRequest {
                profile: Some(good.clone()),
                top_k: 5,
            })
            .await?;
    }

    // A missing value where training saw blanks is imputed, not refused.
    let response = client
        .score(proto::ScoreRequest {
            profile: Some(with("TotalCharges", None)),
            top_k: 5,
        })
        .await?
        .into_inner();
    assert!((0.0..=1.0).contains(&response.probability));

    let status = client
        .score(proto::ScoreRequest {
            profile: None,
            top_k: 5,
        })
        .await
        .expect_err("no profile");
    assert_eq!(status.message(), "`profile` is required");

    let status = client
        .score_batch(proto::ScoreBatchRequest {
            profiles: vec![good.clone(); 11],
            top_k: 5,
        })
        .await
        .expect_err("batch over the limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "`profiles` has 11 profiles; the limit is 10 per batch"
    );

    let huge = with("Contract", Some(value(Kind::Text("x".repeat(100 * 1024)))));
    let status = client
        .score(proto::ScoreRequest {
            profile: Some(huge),
            top_k: 5,
        })
        .await
        .expect_err("message over the size limit");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("65536"), "{}", status.message());

    // A stream answers a bad profile in place and goes on.
    let requests = [
        good.clone(),
        with("tenure", Some(value(Kind::Text("ten".into())))),
        good.clone(),
    ]
    .map(|profile| proto::ScoreRequest {
        profile: Some(profile),
        top_k: 5,
    });
    let mut stream = client
        .score_stream(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut kinds = Vec::new();
    while let Some(result) = stream.message().await? {
        kinds.push(matches!(
            result.outcome,
            Some(proto::score_result::Outcome::Score(_))
        ));
    }
    assert_eq!(kinds, [true, false, true]);

    let response = client
        .score(proto::ScoreRequest {
            profile: Some(good.clone()),
            top_k: 500,
        })
        .await?
        .into_inner();
    assert!(response.raising.len() + response.lowering.len() <= 19);
    server.shutdown().await?;
    Ok(())
}

/// A tree model and a logistic model trained on the fixture, and a folder serving the first.
struct Models {
    gbdt: PathBuf,
    logistic: PathBuf,
    served: PathBuf,
}

fn two_models(dir: &Path) -> anyhow::Result<Models> {
    let gbdt = train_into(&dir.join("gbdt"), ModelChoice::Gbdt)?;
    let logistic = train_into(&dir.join("logistic"), ModelChoice::Logistic)?;
    let served = dir.join("served");
    std::fs::create_dir_all(&served)?;
    std::fs::copy(gbdt.join("model.json"), served.join("model.json"))?;
    Ok(Models {
        gbdt,
        logistic,
        served,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_reloads_under_load_lose_no_request() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Models {
        gbdt,
        logistic,
        served,
    } = two_models(dir.path())?;
    let options = ServeOptions {
        watch_interval_ms: Some(0), // reloads here come from ReloadModel only
        ..ServeOptions::default()
    };
    let server = start(&served, options).await?;
    let channel = channel(&server).await?;
    let model = ChurnServiceClient::new(channel.clone())
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    let profiles = Arc::new(fixture_profiles(&model)?);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for worker in 0..4 {
        let mut client = ChurnServiceClient::new(channel.clone());
        let (stop, answered, profiles) = (stop.clone(), answered.clone(), profiles.clone());
        clients.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut sent = worker;
            while !stop.load(Ordering::Relaxed) {
                let request = proto::ScoreRequest {
                    profile: Some(profiles[sent % profiles.len()].clone()),
                    top_k: 5,
                };
                match client.score(request).await {
                    Ok(_) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => errors.push(status.to_string()),
                }
                sent += 4;
            }
            errors
        }));
    }

    let mut admin = AdminServiceClient::new(channel.clone());
    let mut versions = std::collections::BTreeSet::new();
    for reload in 0..20 {
        let source = if reload % 2 == 0 { &logistic } else { &gbdt };
        // Replace the file atomically, as a deployment should.
        let staging = served.join("model.json.new");
        std::fs::copy(source.join("model.json"), &staging)?;
        std::fs::rename(&staging, served.join("model.json"))?;
        let reloaded = admin
            .reload_model(proto::ReloadModelRequest {})
            .await?
            .into_inner();
        assert!(reloaded.changed, "reload {reload}");
        versions.insert(
            reloaded
                .model
                .map(|model| model.version)
                .unwrap_or_default(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(versions.len(), 2, "two models took turns");

    // A corrupt artifact is refused and the last good model keeps serving.
    let before = ChurnServiceClient::new(channel.clone())
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner()
        .model;
    std::fs::write(
        served.join("model.json"),
        "{\"format_version\": \"2\", \"name\": ",
    )?;
    let status = admin
        .reload_model(proto::ReloadModelRequest {})
        .await
        .expect_err("corrupt artifact");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("model.json"),
        "{}",
        status.message()
    );
    assert!(
        status
            .message()
            .ends_with("the previous model keeps serving")
    );
    tokio::time::sleep(Duration::from_millis(50)).await;

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        assert_eq!(client.await?, Vec::<String>::new());
    }
    assert!(
        answered.load(Ordering::Relaxed) > 40,
        "clients kept scoring"
    );
    let after = ChurnServiceClient::new(channel.clone())
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner()
        .model;
    assert_eq!(before, after);
    server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_model_file_is_picked_up_without_a_call() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Models {
        logistic, served, ..
    } = two_models(dir.path())?;
    let options = ServeOptions {
        watch_interval_ms: Some(25),
        ..ServeOptions::default()
    };
    let server = start(&served, options).await?;
    let mut client = ChurnServiceClient::new(channel(&server).await?);
    let kind = |info: proto::ModelInfo| info.kind;
    assert_eq!(
        kind(
            client
                .get_model(proto::GetModelRequest {})
                .await?
                .into_inner()
        ),
        "gbdt"
    );

    let staging = served.join("model.json.new");
    std::fs::copy(logistic.join("model.json"), &staging)?;
    std::fs::rename(&staging, served.join("model.json"))?;
    let mut now = String::new();
    for _ in 0..200 {
        now = kind(
            client
                .get_model(proto::GetModelRequest {})
                .await?
                .into_inner(),
        );
        if now == "logistic" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(now, "logistic");

    // SIGHUP's path: a reload of an unchanged file changes nothing.
    let reloaded = server.reload("test").await?;
    assert!(!reloaded.changed);
    server.shutdown().await?;
    Ok(())
}
