//! The alert hub: every write to the store goes through one thread, so events are published to
//! live streams in exactly the order they were committed (what makes replay + live gap-free),
//! and scores arriving together share one commit (group commit: one transaction, and with
//! `synchronous = full` one fsync, for many scores).

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Instant;

use churn_core::{AlertPolicy, RiskBand, Timestamp};
use tokio::sync::{broadcast, oneshot};

use super::{AlertChange, AlertEvent, AlertStore, NewScore, Outcome, StoreError, StoreResult};
use crate::metrics::Metrics;

/// How the hub runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSettings {
    pub policy: AlertPolicy,
    /// Events kept for live streams; a stream that falls further behind is cut off (it resumes
    /// from its cursor).
    pub stream_buffer: usize,
    /// Most scores committed in one transaction.
    pub max_scores_per_commit: usize,
}

/// Where the alert changes of one `record` call are sent.
type ChangesReply = oneshot::Sender<StoreResult<Vec<Option<AlertChange>>>>;

/// A write waiting for the writer thread, with where to send its answer.
enum Write {
    Scores {
        scores: Vec<NewScore>,
        reply: ChangesReply,
    },
    Acknowledge {
        id: i64,
        by: Option<String>,
        now: Timestamp,
        reply: oneshot::Sender<StoreResult<AlertEvent>>,
    },
    Resolve {
        id: i64,
        outcome: Outcome,
        note: Option<String>,
        by: Option<String>,
        now: Timestamp,
        reply: oneshot::Sender<StoreResult<AlertEvent>>,
    },
    Escalate {
        now: Timestamp,
        reply: oneshot::Sender<StoreResult<Vec<AlertEvent>>>,
    },
}

/// The live side of a stream: events as they are committed.
pub type Subscription = broadcast::Receiver<Arc<AlertEvent>>;

/// The store, the policy, and the live event feed; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertHub {
    store: Arc<dyn AlertStore>,
    policy: Arc<AlertPolicy>,
    writes: std_mpsc::Sender<Write>,
    live: broadcast::Sender<Arc<AlertEvent>>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Write::Scores { .. } => "Scores",
            Write::Acknowledge { .. } => "Acknowledge",
            Write::Resolve { .. } => "Resolve",
            Write::Escalate { .. } => "Escalate",
        })
    }
}

fn stopped() -> StoreError {
    StoreError::Backend {
        reason: "the alert writer has stopped".into(),
    }
}

impl AlertHub {
    /// Starts the writer thread over `store`. It stops when the last hub is dropped.
    pub fn start(
        store: Arc<dyn AlertStore>,
        settings: HubSettings,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let (writes, queue) = std_mpsc::channel();
        let (live, _) = broadcast::channel(settings.stream_buffer.max(1));
        let policy = Arc::new(settings.policy);
        let writer = Writer {
            store: store.clone(),
            policy: policy.clone(),
            live: live.clone(),
            metrics,
            max_scores: settings.max_scores_per_commit.max(1),
        };
        std::thread::Builder::new()
            .name("churn-alert-writer".into())
            .spawn(move || writer.run(queue))?;
        Ok(AlertHub {
            store,
            policy,
            writes,
            live,
        })
    }

    /// Returns the policy deciding alerts.
    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// Returns the store, for reads.
    pub fn store(&self) -> &Arc<dyn AlertStore> {
        &self.store
    }

    /// Follows events committed from now on.
    pub fn subscribe(&self) -> Subscription {
        self.live.subscribe()
    }

    async fn send<T>(
        &self,
        write: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Write,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.writes.send(write(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records scores (committed before this returns) and says what each did to its
    /// customer's alert.
    pub async fn record(&self, scores: Vec<NewScore>) -> StoreResult<Vec<Option<AlertChange>>> {
        if scores.is_empty() {
            return Ok(Vec::new());
        }
        self.send(|reply| Write::Scores { scores, reply }).await
    }

    /// Acknowledges an open alert.
    pub async fn acknowledge(
        &self,
        id: i64,
        by: Option<String>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent> {
        self.send(|reply| Write::Acknowledge { id, by, now, reply })
            .await
    }

    /// Resolves an alert with its outcome.
    pub async fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        note: Option<String>,
        by: Option<String>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent> {
        self.send(|reply| Write::Resolve {
            id,
            outcome,
            note,
            by,
            now,
            reply,
        })
        .await
    }

    /// Escalates the open alerts past their time to acknowledge.
    pub async fn escalate_overdue(&self, now: Timestamp) -> StoreResult<Vec<AlertEvent>> {
        self.send(|reply| Write::Escalate { now, reply }).await
    }
}

/// The one thread that writes.
struct Writer {
    store: Arc<dyn AlertStore>,
    policy: Arc<AlertPolicy>,
    live: broadcast::Sender<Arc<AlertEvent>>,
    metrics: Metrics,
    max_scores: usize,
}

impl Writer {
    fn run(self, queue: std_mpsc::Receiver<Write>) {
        let mut next = None;
        loop {
            let write = match next.take() {
                Some(write) => write,
                None => match queue.recv() {
                    Ok(write) => write,
                    Err(_) => return, // every hub is gone
                },
            };
            match write {
                Write::Scores { scores, reply } => {
                    // Take every score already waiting into the same commit.
                    let mut group = vec![(scores.len(), reply)];
                    let mut scores = scores;
                    while scores.len() < self.max_scores {
                        match queue.try_recv() {
                            Ok(Write::Scores {
                                scores: more,
                                reply,
                            }) => {
                                group.push((more.len(), reply));
                                scores.extend(more);
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.record(scores, group);
                }
                Write::Acknowledge { id, by, now, reply } => {
                    let result = self.store.acknowledge(id, by.as_deref(), now);
                    self.publish(result.iter());
                    let _ = reply.send(result);
                }
                Write::Resolve {
                    id,
                    outcome,
                    note,
                    by,
                    now,
                    reply,
                } => {
                    let result =
                        self.store
                            .resolve(id, outcome, note.as_deref(), by.as_deref(), now);
                    self.publish(result.iter());
                    let _ = reply.send(result);
                }
                Write::Escalate { now, reply } => {
                    let hours = self.policy.acknowledge_within_hours;
                    let window = |band: RiskBand| (hours.of(band) * 3_600.0).round() as i64;
                    let result = self.store.escalate_overdue(now, &window);
                    if let Ok(events) = &result {
                        self.publish(events.iter());
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }

    fn record(&self, scores: Vec<NewScore>, group: Vec<(usize, ChangesReply)>) {
        let started = Instant::now();
        let policy = &self.policy;
        let decide = |score: &NewScore, history: &churn_core::CustomerHistory| {
            policy.evaluate(
                &churn_core::ScoreEvent {
                    probability: score.probability,
                    band: score.band,
                    customer_value: score.customer_value,
                    at: score.at,
                },
                history,
            )
        };
        let result = self.store.record_scores(&scores, &decide);
        self.metrics
            .observe_alert_commit(scores.len(), started.elapsed());
        match result {
            Ok(recorded) => {
                self.publish(recorded.events.iter());
                let mut changes = recorded.changes.into_iter();
                for (count, reply) in group {
                    let _ = reply.send(Ok(changes.by_ref().take(count).collect()));
                }
            }
            Err(error) => {
                tracing::error!(%error, scores = scores.len(), "cannot record scores");
                for (_, reply) in group {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Sends committed events to live streams, in commit order.
    fn publish<'a>(&self, events: impl Iterator<Item = &'a AlertEvent>) {
        for event in events {
            self.metrics.observe_alert_event(event.kind.as_str());
            // No receivers is fine: nobody is streaming.
            let _ = self.live.send(Arc::new(event.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::alerts::{
        AlertFilter, AlertPage, AlertRecord, AlertStats, Decide, EventKind, Recorded, SqliteStore,
        Synchronous,
    };

    /// A SQLite store whose score writes fail while `failing` is set, as a full disk would.
    #[derive(Debug)]
    struct Flaky {
        inner: SqliteStore,
        failing: AtomicBool,
    }

    impl AlertStore for Flaky {
        fn record_scores(&self, scores: &[NewScore], decide: Decide<'_>) -> StoreResult<Recorded> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Backend {
                    reason: "database or disk is full".into(),
                });
            }
            self.inner.record_scores(scores, decide)
        }
        fn acknowledge(
            &self,
            id: i64,
            by: Option<&str>,
            now: Timestamp,
        ) -> StoreResult<AlertEvent> {
            self.inner.acknowledge(id, by, now)
        }
        fn resolve(
            &self,
            id: i64,
            outcome: Outcome,
            note: Option<&str>,
            by: Option<&str>,
            now: Timestamp,
        ) -> StoreResult<AlertEvent> {
            self.inner.resolve(id, outcome, note, by, now)
        }
        fn escalate_overdue(
            &self,
            now: Timestamp,
            next_window: &dyn Fn(RiskBand) -> i64,
        ) -> StoreResult<Vec<AlertEvent>> {
            self.inner.escalate_overdue(now, next_window)
        }
        fn get(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
            self.inner.get(id)
        }
        fn list(&self, filter: &AlertFilter, offset: u64, limit: u64) -> StoreResult<AlertPage> {
            self.inner.list(filter, offset, limit)
        }
        fn events_after(
            &self,
            cursor: u64,
            filter: &AlertFilter,
            limit: u64,
        ) -> StoreResult<Vec<AlertEvent>> {
            self.inner.events_after(cursor, filter, limit)
        }
        fn last_cursor(&self) -> StoreResult<u64> {
            self.inner.last_cursor()
        }
        fn stats(&self, now: Timestamp) -> StoreResult<AlertStats> {
            self.inner.stats(now)
        }
    }

    fn score(customer: &str) -> NewScore {
        NewScore {
            customer_id: customer.into(),
            probability: 0.9,
            band: RiskBand::High,
            percentile: 99.0,
            customer_value: None,
            assignee: None,
            team: None,
            reasons: vec![],
            model_version: "v1".into(),
            at: 0,
        }
    }

    #[tokio::test]
    async fn a_failed_commit_reports_nothing_keeps_what_was_stored_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky {
            inner: SqliteStore::open(&dir.path().join("a.sqlite"), Synchronous::Normal).unwrap(),
            failing: AtomicBool::new(false),
        });
        let settings = HubSettings {
            policy: AlertPolicy::default(),
            stream_buffer: 16,
            max_scores_per_commit: 100,
        };
        let hub = AlertHub::start(store.clone(), settings, Metrics::new()).unwrap();
        let mut live = hub.subscribe();
        let first = hub.record(vec![score("a")]).await.unwrap();
        assert_eq!(first[0].map(|change| change.kind), Some(EventKind::Raised));

        store.failing.store(true, Ordering::SeqCst);
        let error = hub.record(vec![score("b"), score("c")]).await.unwrap_err();
        assert_eq!(error.to_string(), "alert store: database or disk is full");
        store.failing.store(false, Ordering::SeqCst);

        // Still writing; the failed scores left no trace, the first alert is intact.
        let acknowledged = hub.acknowledge(first[0].unwrap().alert_id, None, 5).await;
        assert!(acknowledged.is_ok());
        let stored = store.list(&AlertFilter::default(), 0, 10).unwrap();
        let customers: Vec<&str> = stored
            .alerts
            .iter()
            .map(|a| a.customer_id.as_str())
            .collect();
        assert_eq!(customers, ["a"]);
        // Live followers saw exactly the committed events, in order.
        assert_eq!(live.recv().await.unwrap().kind, EventKind::Raised);
        assert_eq!(live.recv().await.unwrap().kind, EventKind::Acknowledged);
        assert!(live.try_recv().is_err());
    }
}
