//! The alert hub: the policy, the store, and the live event feed. Every write to the store
//! happens under one lock together with publishing its events, so live streams see events in
//! exactly the order they were committed (what makes replay + live gap-free).
//!
//! Writes run on the caller's thread: a commit in WAL mode is a write to the page cache (tens of
//! microseconds, no fsync unless `synchronous = full`), cheaper than handing every score to a
//! writer thread and waking the request again. Checkpoints, which do fsync, run on the store's
//! own thread.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use churn_core::{AlertPolicy, CustomerHistory, RiskBand, Timestamp};
use tokio::sync::{broadcast, mpsc, watch};

use super::{
    AlertChange, AlertEvent, AlertFilter, AlertStore, NewScore, Outcome, StoreError, StoreResult,
};
use crate::metrics::Metrics;

/// How the hub runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSettings {
    /// The policy deciding which scores raise alerts.
    pub policy: AlertPolicy,
    /// Events kept for live streams; a stream that falls further behind is cut off (it resumes
    /// from its cursor).
    pub stream_buffer: usize,
}

/// The live side of a stream: events as they are committed.
pub type Subscription = broadcast::Receiver<Arc<AlertEvent>>;

/// Where a followed stream's events go, ended by why it stopped (if not because the client left).
type StreamSender = mpsc::Sender<Result<Arc<AlertEvent>, StreamEnd>>;

/// Events read from the store per replay query.
const REPLAY_PAGE: u64 = 500;

/// Why a followed stream ended while its client was still there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StreamEnd {
    /// The server is stopping.
    #[error("the server is stopping; resume after cursor {cursor}")]
    Stopping {
        /// The last cursor sent, to resume after.
        cursor: u64,
    },
    /// The client read too slowly and the live feed moved on without it.
    #[error("this stream fell {missed} events behind the live feed; resume after cursor {cursor}")]
    Lagged {
        /// Events the stream missed.
        missed: u64,
        /// The last cursor sent, to resume after.
        cursor: u64,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(StoreError),
}

/// Sends one event; false when the client is gone. A client that stops reading fills its queue
/// and would hold the send, and so the server's stop, forever: the stop wins.
async fn deliver(
    sender: &StreamSender,
    event: Arc<AlertEvent>,
    last_sent: u64,
    stopping: &mut watch::Receiver<bool>,
) -> Result<bool, StreamEnd> {
    tokio::select! {
        sent = sender.send(Ok(event)) => Ok(sent.is_ok()),
        _ = stopping.wait_for(|stop| *stop) => Err(StreamEnd::Stopping { cursor: last_sent }),
    }
}

/// The store, the policy, and the live event feed; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertHub {
    store: Arc<dyn AlertStore>,
    policy: Arc<AlertPolicy>,
    live: broadcast::Sender<Arc<AlertEvent>>,
    metrics: Metrics,
    /// Held from a write's start to the publishing of its events.
    writing: Arc<Mutex<()>>,
}

impl AlertHub {
    /// Serves alerts from `store`.
    pub fn new(store: Arc<dyn AlertStore>, settings: HubSettings, metrics: Metrics) -> Self {
        let (live, _) = broadcast::channel(settings.stream_buffer.max(1));
        AlertHub {
            store,
            policy: Arc::new(settings.policy),
            live,
            metrics,
            writing: Arc::new(Mutex::new(())),
        }
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

    /// Follows the events of alerts matching `filter` after `cursor` in a task of its own (see
    /// `AlertHub::follow`) and returns them, ended by why the feed stopped if the client was
    /// still there. Both `StreamAlerts` and the console's live feed are this.
    pub fn open_feed(
        &self,
        filter: AlertFilter,
        cursor: u64,
        stopping: watch::Receiver<bool>,
        queue: usize,
    ) -> mpsc::Receiver<Result<Arc<AlertEvent>, StreamEnd>> {
        let (sender, receiver) = mpsc::channel(queue);
        let hub = self.clone();
        tokio::spawn(async move {
            let _connected = hub.metrics.alert_stream();
            if let Err(end) = hub.follow(&filter, cursor, stopping, &sender).await {
                // The client may be gone already; nothing more to do then.
                let _ = sender.send(Err(end)).await;
            }
        });
        receiver
    }

    /// Sends the events of alerts matching `filter`: the stored ones after `cursor`, then live
    /// ones, each exactly once, until the client is gone (Ok) or the stream must end.
    ///
    /// No gap: the live feed is joined after a first replay and before a second one, so an
    /// event committed before the join is in the second replay and one committed after it is
    /// in the feed. No duplicate: an event at or below the last cursor sent is skipped.
    async fn follow(
        &self,
        filter: &AlertFilter,
        cursor: u64,
        mut stopping: watch::Receiver<bool>,
        sender: &StreamSender,
    ) -> Result<(), StreamEnd> {
        let mut last = cursor;
        if !self
            .replay(filter, &mut last, &mut stopping, sender)
            .await?
        {
            return Ok(());
        }
        let mut live = self.subscribe();
        if !self
            .replay(filter, &mut last, &mut stopping, sender)
            .await?
        {
            return Ok(());
        }
        loop {
            let event = tokio::select! {
                event = live.recv() => event,
                // Gone while no event matched its filter: end now, not at the next match.
                () = sender.closed() => return Ok(()),
                _ = stopping.wait_for(|stop| *stop) => {
                    return Err(StreamEnd::Stopping { cursor: last });
                }
            };
            match event {
                Ok(event) if event.cursor <= last => {}
                Ok(event) => {
                    let cursor = event.cursor;
                    if filter.matches(&event.alert)
                        && !deliver(sender, event, last, &mut stopping).await?
                    {
                        return Ok(());
                    }
                    last = cursor;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.metrics.observe_alert_stream_cut();
                    return Err(StreamEnd::Lagged {
                        missed,
                        cursor: last,
                    });
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Sends stored events after `last` until none are left; false when the client is gone.
    async fn replay(
        &self,
        filter: &AlertFilter,
        last: &mut u64,
        stopping: &mut watch::Receiver<bool>,
        sender: &StreamSender,
    ) -> Result<bool, StreamEnd> {
        loop {
            let (after, page_filter, hub) = (*last, filter.clone(), self.clone());
            let page = tokio::task::spawn_blocking(move || {
                hub.store.events_after(after, &page_filter, REPLAY_PAGE)
            })
            .await
            .map_err(|error| {
                StreamEnd::Store(StoreError::Backend {
                    reason: format!("replay stopped: {error}"),
                })
            })?
            .map_err(StreamEnd::Store)?;
            if page.is_empty() {
                return Ok(true);
            }
            for event in page {
                let cursor = event.cursor;
                if !deliver(sender, Arc::new(event), *last, stopping).await? {
                    return Ok(false);
                }
                *last = cursor;
            }
        }
    }

    /// Runs one write under the lock and publishes the events it committed, in order.
    fn write<T>(
        &self,
        write: impl FnOnce(&dyn AlertStore) -> StoreResult<T>,
        events: impl Fn(&T) -> &[AlertEvent],
    ) -> StoreResult<T> {
        // A panic mid-write rolled its transaction back; the lock guards no data of its own.
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let result = write(self.store.as_ref())?;
        for event in events(&result) {
            self.metrics.observe_alert_event(event.kind.as_str());
            // No receivers is fine: nobody is streaming.
            let _ = self.live.send(Arc::new(event.clone()));
        }
        Ok(result)
    }

    /// Records scores that change no alert without writing now, when the store can tell at
    /// once (the usual case, and never blocking on a commit); `None` means call `record`.
    pub fn record_quiet(&self, scores: &[NewScore]) -> Option<Vec<Option<AlertChange>>> {
        let decide =
            |score: &NewScore, history: &CustomerHistory| score.decide(&self.policy, history);
        let recorded = self.store.record_quiet(scores, &decide)?;
        self.metrics.observe_quiet_scores(scores.len());
        Some(recorded.changes)
    }

    /// Records scores in one commit and says what each did to its customer's alert.
    pub fn record(&self, scores: &[NewScore]) -> StoreResult<Vec<Option<AlertChange>>> {
        if scores.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(changes) = self.record_quiet(scores) {
            return Ok(changes);
        }
        let started = Instant::now();
        let decide =
            |score: &NewScore, history: &CustomerHistory| score.decide(&self.policy, history);
        let recorded = self.write(
            |store| store.record_scores(scores, &decide),
            |recorded| &recorded.events,
        );
        self.metrics
            .observe_alert_commit(scores.len(), started.elapsed());
        if let Err(error) = &recorded {
            tracing::error!(%error, scores = scores.len(), "cannot record scores");
        }
        Ok(recorded?.changes)
    }

    /// Writes what the store holds back; for a clean stop.
    pub fn flush(&self) -> StoreResult<()> {
        self.store.flush()
    }

    /// Acknowledges an open alert.
    pub fn acknowledge(
        &self,
        id: i64,
        by: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent> {
        self.write(|store| store.acknowledge(id, by, now), std::slice::from_ref)
    }

    /// Resolves an alert with its outcome.
    pub fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        note: Option<&str>,
        by: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent> {
        self.write(
            |store| store.resolve(id, outcome, note, by, now),
            std::slice::from_ref,
        )
    }

    /// Escalates the open alerts past their time to acknowledge; each is due again one
    /// response-time target later.
    pub fn escalate_overdue(&self, now: Timestamp) -> StoreResult<Vec<AlertEvent>> {
        // The band's time to acknowledge, as the policy reckons it.
        let window = |band: RiskBand| self.policy.acknowledge_by(band, 0);
        self.write(
            |store| store.escalate_overdue(now, &window),
            |events| events.as_slice(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::alerts::{
        AlertFilter, AlertPage, AlertRecord, AlertStats, CustomerRecord, Decide, EventKind,
        Recorded, SqliteStore, StoreError, Synchronous,
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
        fn flush(&self) -> StoreResult<()> {
            self.inner.flush()
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
        fn append_audit(&self, entries: &[crate::audit::AuditEntry]) -> StoreResult<u64> {
            self.inner.append_audit(entries)
        }
        fn audit_entries(
            &self,
            filter: &crate::audit::AuditFilter,
            range: crate::audit::AuditRange,
            limit: u64,
        ) -> StoreResult<Vec<crate::audit::AuditEntry>> {
            self.inner.audit_entries(filter, range, limit)
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
        fn customer(
            &self,
            customer_id: &str,
            history_limit: u64,
        ) -> StoreResult<Option<CustomerRecord>> {
            self.inner.customer(customer_id, history_limit)
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
            lowering: vec![],
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
        };
        let hub = AlertHub::new(store.clone(), settings, Metrics::new());
        let mut live = hub.subscribe();
        let first = hub.record(&[score("a")]).unwrap();
        assert_eq!(first[0].map(|change| change.kind), Some(EventKind::Raised));

        store.failing.store(true, Ordering::SeqCst);
        let error = hub.record(&[score("b"), score("c")]).unwrap_err();
        assert_eq!(error.to_string(), "alert store: database or disk is full");
        store.failing.store(false, Ordering::SeqCst);

        // Still writing; the failed scores left no trace, the first alert is intact.
        let acknowledged = hub.acknowledge(first[0].unwrap().alert_id, None, 5);
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
