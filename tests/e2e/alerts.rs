//! Alerts end to end over real gRPC: scores raise and update alerts committed to SQLite, agents
//! acknowledge and resolve them, `StreamAlerts` replays then follows live with no gap and no
//! duplicate, a stalled stream is cut off with its resume cursor without holding anything up,
//! and overdue alerts are escalated on the stream.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use churn_api::client::{AuthorizedChannel, BearerToken, ConnectOptions};
use churn_api::proto;
use churn_api::proto::alert_service_client::AlertServiceClient;
use churn_api::proto::churn_service_client::ChurnServiceClient;
use churn_serve::{RunningServer, ServeOptions};

/// Every score alerts (band at least LOW), so tests control alerts through customer ids.
pub(crate) const ALERT_ON_EVERY_SCORE: &str = "min_band = \"low\"\nmin_rise = 0.2\ncooldown_days = 14\n\
    value_feature = \"MonthlyCharges\"\nvalue_periods = 12\n";

fn shipped_model() -> PathBuf {
    churn_e2e::repo_root().join("models/telco")
}

pub(crate) struct AlertServer {
    pub(crate) server: RunningServer,
    pub(crate) scoring: ChurnServiceClient<AuthorizedChannel>,
    pub(crate) alerts: AlertServiceClient<AuthorizedChannel>,
    profiles: Vec<proto::Profile>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn start_alerts(
    policy: &str,
    options: ServeOptions,
) -> anyhow::Result<AlertServer> {
    start_alerts_with_credentials(policy, options, None).await
}

/// As [`start_alerts`], with authentication on: `credentials` is the text of the credentials
/// file and the token the server's gRPC clients here call with.
pub(crate) async fn start_alerts_with_credentials(
    policy: &str,
    options: ServeOptions,
    credentials: Option<(&str, &str)>,
) -> anyhow::Result<AlertServer> {
    let dir = tempfile::tempdir()?;
    let token = credentials.map(|(_, token)| token);
    let credentials = match credentials {
        Some((text, _)) => {
            let file = dir.path().join("callers.toml");
            std::fs::write(&file, text)?;
            Some(file)
        }
        None => None,
    };
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, policy)?;
    let options = ServeOptions {
        alerts_db: Some(dir.path().join("alerts.sqlite")),
        alert_policy: Some(policy_file),
        ..options
    };
    let server =
        crate::serve::start_with_credentials(&shipped_model(), options, credentials).await?;
    let connect = ConnectOptions {
        tls: None,
        token: token.map(BearerToken::new).transpose()?,
    };
    let channel =
        churn_api::client::connect_with(&format!("http://{}", server.grpc_addr()), &connect)
            .await?;
    let mut scoring = ChurnServiceClient::new(channel.clone());
    let info = scoring
        .get_model(proto::GetModelRequest {})
        .await?
        .into_inner();
    let profiles = crate::serve::fixture_profiles(&info)?;
    Ok(AlertServer {
        server,
        scoring,
        alerts: AlertServiceClient::new(channel),
        profiles,
        _dir: dir,
    })
}

impl AlertServer {
    /// The `index`-th fixture profile (cycled) as customer `id`.
    pub(crate) fn profile(&self, index: usize, id: &str) -> proto::Profile {
        proto::Profile {
            customer_id: id.to_string(),
            ..self.profiles[index % self.profiles.len()].clone()
        }
    }

    pub(crate) async fn score(
        &self,
        profile: proto::Profile,
    ) -> anyhow::Result<proto::ScoreResponse> {
        let request = proto::ScoreRequest {
            profile: Some(profile),
            top_k: 3,
        };
        Ok(self.scoring.clone().score(request).await?.into_inner())
    }

    /// Starts `writers` clients, each scoring `per_writer` new customers (`{prefix}{w}-{i}`)
    /// one call at a time; every score raises an alert under `ALERT_ON_EVERY_SCORE`.
    fn spawn_writers(
        &self,
        writers: usize,
        per_writer: usize,
        prefix: &str,
    ) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
        (0..writers)
            .map(|writer| {
                let profiles: Vec<proto::Profile> = (0..per_writer)
                    .map(|i| {
                        self.profile(writer * per_writer + i, &format!("{prefix}{writer}-{i}"))
                    })
                    .collect();
                let mut client = self.scoring.clone();
                tokio::spawn(async move {
                    for profile in profiles {
                        let request = proto::ScoreRequest {
                            profile: Some(profile),
                            top_k: 2,
                        };
                        client.score(request).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect()
    }

    async fn list(&self, filter: proto::AlertFilter) -> anyhow::Result<Vec<proto::Alert>> {
        let mut alerts = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .alerts
                .clone()
                .list_alerts(proto::ListAlertsRequest {
                    filter: Some(filter.clone()),
                    page_size: 7,
                    page_token: token,
                })
                .await?
                .into_inner();
            alerts.extend(page.alerts);
            if page.next_page_token.is_empty() {
                return Ok(alerts);
            }
            token = page.next_page_token;
        }
    }
}

fn change(response: &proto::ScoreResponse) -> Option<(String, proto::AlertEventKind)> {
    response
        .alert
        .as_ref()
        .map(|alert| (alert.alert_id.clone(), alert.kind()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_raise_alerts_once_per_customer_and_agents_close_the_loop() -> anyhow::Result<()> {
    let server = start_alerts(ALERT_ON_EVERY_SCORE, ServeOptions::default()).await?;
    let mut first = server.profile(0, "c-1");
    first.assignee = "ana".into();
    first.team = "retention".into();
    let raised = server.score(first.clone()).await?;
    let (id, kind) = change(&raised).expect("an alert");
    assert_eq!(kind, proto::AlertEventKind::Raised);
    let updated = server.score(first).await?;
    assert_eq!(
        change(&updated),
        Some((id.clone(), proto::AlertEventKind::Updated))
    );

    // Sixteen clients score one new customer at once: one alert, raised once.
    let racing: Vec<_> = (0..16)
        .map(|_| {
            let profile = server.profile(1, "race");
            let mut client = server.scoring.clone();
            tokio::spawn(async move {
                client
                    .score(proto::ScoreRequest {
                        profile: Some(profile),
                        top_k: 1,
                    })
                    .await
                    .map(|response| response.into_inner())
            })
        })
        .collect();
    let mut changes = Vec::new();
    for task in racing {
        changes.push(change(&task.await??).expect("an alert"));
    }
    let ids: HashSet<&String> = changes.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 1, "{changes:?}");
    let raises = changes
        .iter()
        .filter(|(_, kind)| *kind == proto::AlertEventKind::Raised)
        .count();
    assert_eq!(raises, 1, "{changes:?}");

    // A batch: every good profile raises its own alert, in the same commit; the bad one none.
    let mut profiles: Vec<proto::Profile> = (0..20)
        .map(|i| server.profile(i + 2, &format!("b-{i}")))
        .collect();
    profiles[10].features.insert(
        "tenure".into(),
        proto::Value {
            kind: Some(proto::value::Kind::Text("ten".into())),
        },
    );
    let batch = server
        .scoring
        .clone()
        .score_batch(proto::ScoreBatchRequest { profiles, top_k: 3 })
        .await?
        .into_inner();
    let mut batch_ids = HashSet::new();
    for result in &batch.results {
        match &result.outcome {
            Some(proto::score_result::Outcome::Score(response)) => {
                let (id, kind) = change(response).expect("an alert");
                assert_eq!(kind, proto::AlertEventKind::Raised);
                batch_ids.insert(id);
            }
            Some(proto::score_result::Outcome::Error(error)) => {
                assert_eq!((result.index, error.field.as_str()), (10, "tenure"));
            }
            None => anyhow::bail!("no outcome"),
        }
    }
    assert_eq!(batch_ids.len(), 19);

    // The queue: every alert once across pages, most revenue at risk first.
    let all = server.list(proto::AlertFilter::default()).await?;
    assert_eq!(all.len(), 21);
    assert_eq!(all.iter().map(|a| &a.id).collect::<HashSet<_>>().len(), 21);
    let revenue: Vec<f64> = all
        .iter()
        .map(|a| a.revenue_at_risk.unwrap_or(0.0))
        .collect();
    assert!(
        revenue.windows(2).all(|pair| pair[0] >= pair[1]),
        "{revenue:?}"
    );
    let mine = server
        .list(proto::AlertFilter {
            assignee: "ana".into(),
            ..Default::default()
        })
        .await?;
    assert_eq!(mine.len(), 1);
    let alert = &mine[0];
    assert_eq!(
        (alert.id.as_str(), alert.team.as_str()),
        (id.as_str(), "retention")
    );
    assert_eq!(alert.score_count, 2);
    assert!(!alert.reasons.is_empty() && !alert.triggers.is_empty());
    assert_eq!(
        alert.triggers[0],
        format!("{} risk", band_name(alert.band()))
    );

    // Agents work it; the store's rules hold, and each bad call names what is wrong.
    let mut agents = server.alerts.clone();
    let acknowledged = agents
        .acknowledge_alert(proto::AcknowledgeAlertRequest {
            alert_id: id.clone(),
            by: "ana".into(),
        })
        .await?
        .into_inner();
    assert_eq!(acknowledged.state(), proto::AlertState::Acknowledged);
    let twice = agents
        .acknowledge_alert(proto::AcknowledgeAlertRequest {
            alert_id: id.clone(),
            by: "bo".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), tonic::Code::FailedPrecondition);
    assert!(
        twice.message().contains("is acknowledged"),
        "{}",
        twice.message()
    );
    let unknown = agents
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: "nope".into(),
            outcome: proto::AlertOutcome::Retained.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(unknown.message(), "`alert_id` `nope` does not exist");
    let no_outcome = agents
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(no_outcome.code(), tonic::Code::InvalidArgument);
    assert!(
        no_outcome.message().starts_with("`outcome`"),
        "{}",
        no_outcome.message()
    );
    let long_note = agents
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: id.clone(),
            outcome: proto::AlertOutcome::Retained.into(),
            note: "x".repeat(2_001),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(long_note.code(), tonic::Code::InvalidArgument);
    assert!(long_note.message().contains("`note` is 2001 bytes"));
    let resolved = agents
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: id.clone(),
            outcome: proto::AlertOutcome::Retained.into(),
            note: "offered a 12-month contract".into(),
            by: "ana".into(),
        })
        .await?
        .into_inner();
    assert_eq!(resolved.outcome(), proto::AlertOutcome::Retained);
    let again = agents
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: id.clone(),
            outcome: proto::AlertOutcome::Churned.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    let bad_token = agents
        .list_alerts(proto::ListAlertsRequest {
            page_token: "abc".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), tonic::Code::InvalidArgument);
    assert!(bad_token.message().starts_with("`page_token`"));

    let stats = agents
        .alert_stats(proto::AlertStatsRequest {})
        .await?
        .into_inner();
    assert_eq!(stats.total, 21);
    let resolved_count = stats
        .by_state
        .iter()
        .find(|count| count.label == "RESOLVED");
    assert_eq!(resolved_count.map(|count| count.count), Some(1));
    assert_eq!(stats.retained_share, Some(1.0));
    assert_eq!(stats.churned_share, Some(0.0));
    assert!(stats.median_seconds_to_acknowledge.is_some());

    // Resolved within the cool-down: the same customer at the same band raises nothing.
    let quiet = server.score(server.profile(0, "c-1")).await?;
    assert_eq!(change(&quiet), None);
    server.server.shutdown().await?;
    Ok(())
}

fn band_name(band: proto::RiskBand) -> &'static str {
    churn_api::convert::band_from_proto(band).map_or("?", |band| band.as_str())
}

/// Reads `count` events from a stream, failing if one takes over 30 s.
async fn take_events(
    stream: &mut tonic::Streaming<proto::AlertEvent>,
    count: usize,
) -> anyhow::Result<Vec<proto::AlertEvent>> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.message()).await;
        match next {
            Ok(Ok(Some(event))) => events.push(event),
            Ok(Ok(None)) => anyhow::bail!("stream ended after {} events", events.len()),
            Ok(Err(status)) => anyhow::bail!("stream failed after {}: {status}", events.len()),
            Err(_) => anyhow::bail!("no event for 30 s after {}", events.len()),
        }
    }
    Ok(events)
}

fn cursors(events: &[proto::AlertEvent]) -> Vec<u64> {
    events.iter().map(|event| event.cursor).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_replay_then_follow_live_with_no_gap_and_no_duplicate() -> anyhow::Result<()> {
    let server = start_alerts(ALERT_ON_EVERY_SCORE, ServeOptions::default()).await?;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 150;
    const TOTAL: u64 = (WRITERS * PER_WRITER) as u64;
    let producers = server.spawn_writers(WRITERS, PER_WRITER, "w");
    // Subscribers join while alerts are being raised: from the start, from a cursor, and live.
    let mut subscribers = Vec::new();
    for (delay_ms, after_cursor) in [(0, 0), (20, 0), (60, 0), (120, 100), (250, 0), (400, 50)] {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let mut client = server.alerts.clone();
        subscribers.push(tokio::spawn(async move {
            let mut stream = client
                .stream_alerts(proto::StreamAlertsRequest {
                    after_cursor,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let events = take_events(&mut stream, (TOTAL - after_cursor) as usize).await?;
            anyhow::Ok((after_cursor, events))
        }));
    }
    for producer in producers {
        producer.await??;
    }
    for subscriber in subscribers {
        let (after_cursor, events) = subscriber.await??;
        let expected: Vec<u64> = (after_cursor + 1..=TOTAL).collect();
        assert_eq!(
            cursors(&events),
            expected,
            "subscriber after {after_cursor}"
        );
        assert!(events.iter().all(|event| {
            event.kind() == proto::AlertEventKind::Raised
                && event
                    .alert
                    .as_ref()
                    .is_some_and(|a| a.customer_id.starts_with('w'))
        }));
    }
    let all = server.list(proto::AlertFilter::default()).await?;
    assert_eq!(all.len() as u64, TOTAL);

    // A filtered live stream sees only what it asked for.
    let mut high = server
        .alerts
        .clone()
        .stream_alerts(proto::StreamAlertsRequest {
            filter: Some(proto::AlertFilter {
                assignee: "zoe".into(),
                ..Default::default()
            }),
            live_only: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    server.score(server.profile(0, "someone-else")).await?;
    let mut zoe = server.profile(1, "zoe-customer");
    zoe.assignee = "zoe".into();
    server.score(zoe).await?;
    let events = take_events(&mut high, 1).await?;
    assert_eq!(cursors(&events), [TOTAL + 2]);
    server.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_cut_off_with_its_cursor_and_holds_nothing_up() -> anyhow::Result<()> {
    let options = ServeOptions {
        alert_stream_buffer: Some(256),
        ..ServeOptions::default()
    };
    let server = start_alerts(ALERT_ON_EVERY_SCORE, options).await?;
    // One client opens a stream and does not read it; another reads as events come. The
    // stalled one has its own connection with a small HTTP/2 window, as a slow consumer would
    // (the default 2 MB window would hold all of this test's events).
    let slow_channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", server.server.grpc_addr()))?
            .initial_stream_window_size(Some(16 * 1024))
            .connect()
            .await?;
    let mut stalled = AlertServiceClient::new(slow_channel)
        .stream_alerts(proto::StreamAlertsRequest::default())
        .await?
        .into_inner();
    let mut reader_client = server.alerts.clone();
    const TOTAL: usize = 3_000;
    let reader = tokio::spawn(async move {
        let mut stream = reader_client
            .stream_alerts(proto::StreamAlertsRequest::default())
            .await?
            .into_inner();
        take_events(&mut stream, TOTAL).await
    });
    let writers = server.spawn_writers(2, TOTAL / 2, "s");
    for writer in writers {
        // Scoring finishes although one stream is stalled.
        tokio::time::timeout(Duration::from_secs(120), writer).await???;
    }
    let read = reader.await??;
    assert_eq!(cursors(&read), (1..=TOTAL as u64).collect::<Vec<_>>());

    // The stalled client now reads: what was queued for it, then the cut with its cursor.
    let mut received = Vec::new();
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(30), stalled.message()).await? {
            Ok(Some(event)) => received.push(event),
            Ok(None) => anyhow::bail!("the stalled stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
    let resume: u64 = status
        .metadata()
        .get(churn_serve::grpc::RESUME_CURSOR_TRAILER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a resume cursor");
    assert!(
        status
            .message()
            .contains(&format!("after_cursor = {resume}"))
    );
    assert!(resume < TOTAL as u64, "the stalled stream was cut early");
    assert_eq!(cursors(&received), (1..=resume).collect::<Vec<_>>());
    // Resuming from the cursor gives the rest, with no gap.
    let mut resumed = server
        .alerts
        .clone()
        .stream_alerts(proto::StreamAlertsRequest {
            after_cursor: resume,
            ..Default::default()
        })
        .await?
        .into_inner();
    let rest = take_events(&mut resumed, TOTAL - resume as usize).await?;
    assert_eq!(
        cursors(&rest),
        (resume + 1..=TOTAL as u64).collect::<Vec<_>>()
    );
    let metrics = crate::serve::http_get(server.server.metrics_addr(), "/metrics").await?;
    assert!(
        metrics.contains("churn_alert_streams_cut_total 1"),
        "{metrics}"
    );
    server.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_left_unacknowledged_past_its_target_is_escalated_on_the_stream()
-> anyhow::Result<()> {
    // Every band must be acknowledged within about a second; sweeps run every 200 ms.
    let policy = format!(
        "{ALERT_ON_EVERY_SCORE}[acknowledge_within_hours]\nlow = 0.0003\nmedium = 0.0003\n\
         high = 0.0003\n"
    );
    let options = ServeOptions {
        escalation_interval_ms: Some(200),
        ..ServeOptions::default()
    };
    let server = start_alerts(&policy, options).await?;
    let mut stream = server
        .alerts
        .clone()
        .stream_alerts(proto::StreamAlertsRequest::default())
        .await?
        .into_inner();
    let (id, _) = change(&server.score(server.profile(0, "slow")).await?).expect("an alert");
    let (acked, _) = change(&server.score(server.profile(1, "fast")).await?).expect("an alert");
    server
        .alerts
        .clone()
        .acknowledge_alert(proto::AcknowledgeAlertRequest {
            alert_id: acked.clone(),
            by: String::new(),
        })
        .await?;
    let events = take_events(&mut stream, 4).await?;
    let kinds: Vec<_> = events.iter().map(|event| event.kind()).collect();
    assert_eq!(
        kinds,
        [
            proto::AlertEventKind::Raised,
            proto::AlertEventKind::Raised,
            proto::AlertEventKind::Acknowledged,
            proto::AlertEventKind::Escalated
        ]
    );
    let escalated = events[3].alert.as_ref().expect("the alert");
    assert_eq!(
        (escalated.id.as_str(), escalated.escalation_level),
        (id.as_str(), 1)
    );
    let stats = server
        .alerts
        .clone()
        .alert_stats(proto::AlertStatsRequest {})
        .await?
        .into_inner();
    assert!(stats.escalated >= 1 && stats.overdue >= 1, "{stats:?}");
    server.server.shutdown().await?;
    Ok(())
}
