//! The audit log: who did what to the server, and what came of it. Alert actions, model
//! reloads, console sign-ins and sign-outs, and refused calls are each one [`AuditEntry`] in the
//! alert store (numbered from 1 without a gap, like alert events), or, with alerts off, lines
//! of `tracing` target `audit`.
//!
//! Writing never holds up a request: [`AuditLog::record`] hands the entry to a bounded queue
//! that a thread of its own writes to the store in batches, one transaction each. A full queue
//! drops the entry and says so in a warning and in `churn_audit_entries{outcome="dropped"}`; it
//! never grows without bound. Refused calls go through [`AuditLog::refused`], which writes the
//! first refusal of a peer and reason in each window and only counts the rest, so a flood of
//! bad tokens costs one entry a minute per peer, not one per attempt.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use churn_core::Timestamp;
use serde::Serialize;

use crate::alerts::AlertStore;
use crate::auth::Caller;
use crate::error::{RequestError, code_name};
use crate::metrics::Metrics;

/// An agent acknowledged an alert (target: the alert id).
pub const ALERT_ACKNOWLEDGE: &str = "alert.acknowledge";
/// An agent resolved an alert (target: the alert id).
pub const ALERT_RESOLVE: &str = "alert.resolve";
/// The model was reloaded, or a reload refused (target: the model file).
pub const MODEL_RELOAD: &str = "model.reload";
/// An agent signed in to the console.
pub const CONSOLE_SIGN_IN: &str = "console.sign_in";
/// A console sign-in was refused (a refusal: rate limited).
pub const CONSOLE_SIGN_IN_REFUSED: &str = "console.sign_in_refused";
/// An agent signed out of the console.
pub const CONSOLE_SIGN_OUT: &str = "console.sign_out";
/// A call was refused for its credentials, or for acting as someone else (a refusal: rate
/// limited; target: the gRPC method or console path).
pub const CALL_REFUSED: &str = "call.refused";
/// Someone read the audit log.
pub const AUDIT_READ: &str = "audit.read";

/// The actor of an entry nobody signed: authentication is off, or the caller is unknown.
pub const ANONYMOUS: &str = "anonymous";

/// Longest text kept in each field of an entry; longer text is cut (at a character boundary)
/// and marked with `…`, so a hostile caller cannot make one entry large.
pub const MAX_FIELD_BYTES: usize = 512;
/// Entries queued for the writer thread before new ones are dropped.
pub const QUEUE_ENTRIES: usize = 4096;
/// Most entries the writer commits in one transaction.
const BATCH_ENTRIES: usize = 256;
/// How long a refusal window lasts: the first refusal of a peer and reason in a window is
/// written, the others only counted, and the count written when the window ends.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// Peers (and reasons) followed at once; refusals beyond are counted together under one key,
/// so a flood from many addresses costs bounded memory and one entry per window.
pub const MAX_REFUSAL_KEYS: usize = 1024;
/// How long [`AuditLog::flush`] waits for the writer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, in commit order with no gap; 0 until the store numbers it.
    pub id: u64,
    /// When it happened, in seconds since the Unix epoch.
    pub at: Timestamp,
    /// Who did it: the caller's name, `SIGHUP` or `file change` for a reload the server made,
    /// or [`ANONYMOUS`].
    pub actor: String,
    /// What was done: one of the constants of this module, such as [`ALERT_ACKNOWLEDGE`].
    pub action: String,
    /// What it was done to: an alert id, a gRPC method, a model file.
    pub target: String,
    /// What came of it: `ok`, or why it was refused or failed.
    pub detail: String,
    /// The peer address the request came from; empty for the server's own actions.
    pub peer: String,
}

impl AuditEntry {
    /// Returns an entry of `action` on `target` by `actor`, now, with detail `ok` and no peer.
    pub fn new(actor: &str, action: &str, target: &str) -> Self {
        AuditEntry {
            id: 0,
            at: crate::requests::now(),
            actor: bounded(actor),
            action: bounded(action),
            target: bounded(target),
            detail: "ok".to_string(),
            peer: String::new(),
        }
    }

    /// Sets what came of it.
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = bounded(detail);
        self
    }

    /// Sets the peer address the request came from.
    pub fn peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer.map(|peer| peer.to_string()).unwrap_or_default();
        self
    }

    /// Sets the time (tests and replays; [`AuditEntry::new`] takes the time now).
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = at;
        self
    }
}

/// Cuts `text` to [`MAX_FIELD_BYTES`] at a character boundary.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text.to_string();
    }
    let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Which entries to read; `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries of this actor only.
    pub actor: Option<String>,
    /// Entries of this action only.
    pub action: Option<String>,
}

impl AuditFilter {
    /// Tells whether an entry passes the filter (the in-memory twin of the store's query).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.actor
            .as_ref()
            .is_none_or(|actor| &entry.actor == actor)
            && self
                .action
                .as_ref()
                .is_none_or(|action| &entry.action == action)
    }
}

/// Where a read of the log starts, and which way it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditRange {
    /// The newest entries, newest first.
    #[default]
    Newest,
    /// Entries with an id below this one, newest first: the next page of [`AuditRange::Newest`].
    Before(u64),
    /// Entries with an id above this one, oldest first: following the log.
    After(u64),
}

/// Follows refusals per key (a peer and a reason) in windows of [`REFUSAL_WINDOW`]: the first
/// of a window is let through, the rest counted. No clock of its own, so tests give the time.
#[derive(Debug, Default)]
pub(crate) struct RefusalLimiter {
    windows: HashMap<String, Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    /// Refusals counted, not written, in this window.
    suppressed: u64,
    /// The entry written first in the window, to say what the count is of.
    first: AuditEntry,
}

/// The key all refusals share once [`MAX_REFUSAL_KEYS`] keys are followed.
const OVERFLOW_KEY: &str = "(many peers)";

impl RefusalLimiter {
    /// Returns whether a refusal under `key` is written now; if not, it is counted.
    pub(crate) fn admit(&mut self, key: String, entry: &AuditEntry, now: Instant) -> bool {
        let key = if self.windows.len() >= MAX_REFUSAL_KEYS && !self.windows.contains_key(&key) {
            OVERFLOW_KEY.to_string()
        } else {
            key
        };
        match self.windows.get_mut(&key) {
            Some(window) if now.duration_since(window.started) < REFUSAL_WINDOW => {
                window.suppressed += 1;
                false
            }
            // An ended window is summed up by `ended` before a new one starts; here it is
            // simply replaced (its count, if any, was taken out already).
            _ => {
                self.windows.insert(
                    key,
                    Window {
                        started: now,
                        suppressed: 0,
                        first: entry.clone(),
                    },
                );
                true
            }
        }
    }

    /// Takes the windows that ended by `now` (all of them when `all`), and returns an entry for
    /// each that counted refusals it did not write.
    pub(crate) fn ended(&mut self, now: Instant, all: bool) -> Vec<AuditEntry> {
        let mut summaries = Vec::new();
        self.windows.retain(|_, window| {
            let over = all || now.duration_since(window.started) >= REFUSAL_WINDOW;
            if over && window.suppressed > 0 {
                let first = &window.first;
                summaries.push(
                    AuditEntry {
                        id: 0,
                        peer: first.peer.clone(),
                        ..AuditEntry::new(&first.actor, &first.action, &first.target)
                    }
                    .detail(&format!(
                        "{} more like this in the {} s after the entry of {}, not written one by \
                         one: {}",
                        window.suppressed,
                        REFUSAL_WINDOW.as_secs(),
                        first.at,
                        first.detail
                    )),
                );
            }
            !over
        });
        summaries
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.windows.len()
    }
}

enum Message {
    Entry(AuditEntry),
    /// Write everything queued (and every refusal count), then answer.
    Flush(SyncSender<()>),
}

/// The server's audit log; cheap to clone. Built once; every handle writes to the same queue.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    /// The writer thread's queue; `None` with alerts off (entries go to `tracing` only).
    queue: Option<SyncSender<Message>>,
    store: Option<Arc<dyn AlertStore>>,
    limiter: Arc<Mutex<RefusalLimiter>>,
    metrics: Metrics,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuditLog")
            .field("store", &self.inner.store.is_some())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Returns a log writing to `store` from a thread of its own, or, without a store, to
    /// `tracing` (target `audit`) only.
    pub fn new(store: Option<Arc<dyn AlertStore>>, metrics: Metrics) -> Self {
        Self::with_queue(store, metrics, QUEUE_ENTRIES)
    }

    fn with_queue(store: Option<Arc<dyn AlertStore>>, metrics: Metrics, queue: usize) -> Self {
        let limiter = Arc::new(Mutex::new(RefusalLimiter::default()));
        let queue = store.as_ref().and_then(|store| {
            let (sender, receiver) = std::sync::mpsc::sync_channel(queue);
            let writer = Writer {
                store: store.clone(),
                limiter: limiter.clone(),
                metrics: metrics.clone(),
            };
            match std::thread::Builder::new()
                .name("churn-audit".into())
                .spawn(move || writer.run(receiver))
            {
                Ok(_) => Some(sender),
                Err(error) => {
                    tracing::error!(%error, "cannot start the audit writer; audit entries go to the log only");
                    None
                }
            }
        });
        AuditLog {
            inner: Arc::new(Inner {
                queue,
                store,
                limiter,
                metrics,
            }),
        }
    }

    /// Returns the store the log is written to, if any.
    pub fn store(&self) -> Option<&Arc<dyn AlertStore>> {
        self.inner.store.as_ref()
    }

    /// Records an entry without waiting: queued for the writer thread, or dropped (and counted)
    /// when the queue is full.
    pub fn record(&self, entry: AuditEntry) {
        trace(&entry, self.inner.queue.is_none());
        let Some(queue) = &self.inner.queue else {
            return;
        };
        match queue.try_send(Message::Entry(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(Message::Entry(entry))) => {
                self.inner.metrics.observe_audit("dropped", 1);
                tracing::warn!(
                    target: "audit",
                    action = %entry.action,
                    actor = %entry.actor,
                    "audit queue full: entry dropped"
                );
            }
            Err(_) => {
                self.inner.metrics.observe_audit("dropped", 1);
                tracing::warn!(target: "audit", "audit writer gone: entry dropped");
            }
        }
    }

    /// Records a refused call, rate limited per peer address (without its port), action and
    /// detail: the first in each [`REFUSAL_WINDOW`] is written, later ones only counted, and the
    /// count is written when the window ends.
    pub fn refused(&self, entry: AuditEntry) {
        let peer_ip = entry
            .peer
            .parse::<SocketAddr>()
            .map_or_else(|_| entry.peer.clone(), |peer| peer.ip().to_string());
        let key = format!("{peer_ip}\u{0}{}\u{0}{}", entry.action, entry.detail);
        let admitted = self
            .inner
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(key, &entry, Instant::now());
        if admitted {
            self.record(entry);
        } else {
            self.inner.metrics.observe_audit("suppressed", 1);
        }
    }

    /// Records an agent's action on an alert and what came of it: the actor is the signed-in
    /// caller (or [`ANONYMOUS`], with the `by` the request gave in the detail); a caller naming
    /// someone else as `by` is a refusal, rate limited like the others.
    pub(crate) fn alert_action<T>(
        &self,
        action: &str,
        alert_id: &str,
        caller: Option<&Caller>,
        given_by: &str,
        peer: Option<SocketAddr>,
        result: &Result<T, RequestError>,
    ) {
        let actor = caller.map_or(ANONYMOUS, Caller::name);
        let mut detail = match result {
            Ok(_) => "ok".to_string(),
            Err(error) => format!("{}: {error}", code_name(error.code())),
        };
        let given_by = given_by.trim();
        if caller.is_none() && !given_by.is_empty() {
            detail.push_str(&format!("; by `{given_by}` as the request says"));
        }
        let entry = AuditEntry::new(actor, action, alert_id.trim())
            .detail(&detail)
            .peer(peer);
        match result {
            Err(RequestError::ActingAsOther { .. }) => self.refused(entry),
            _ => self.record(entry),
        }
    }

    /// Records a model reload and what came of it: swapped (to which version), unchanged, or
    /// refused (why).
    pub(crate) fn model_reload(
        &self,
        actor: &str,
        file: &std::path::Path,
        outcome: &crate::Result<crate::model::Reloaded>,
        peer: Option<SocketAddr>,
    ) {
        let detail = match outcome {
            Ok(reloaded) if reloaded.changed => format!("swapped: version {}", reloaded.version),
            Ok(reloaded) => format!("unchanged: version {}", reloaded.version),
            Err(error) => format!("refused: {error}"),
        };
        self.record(
            AuditEntry::new(actor, MODEL_RELOAD, &file.display().to_string())
                .detail(&detail)
                .peer(peer),
        );
    }

    /// Writes everything queued, and the counts of refusals not yet written; waits up to five
    /// seconds. Called when the server stops.
    pub fn flush(&self) {
        let Some(queue) = &self.inner.queue else {
            let summaries = self
                .inner
                .limiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .ended(Instant::now(), true);
            for entry in &summaries {
                trace(entry, true);
            }
            return;
        };
        let (done, answered) = std::sync::mpsc::sync_channel(1);
        if queue.send(Message::Flush(done)).is_err() {
            return;
        }
        if answered.recv_timeout(FLUSH_TIMEOUT).is_err() {
            tracing::error!(target: "audit", "the audit writer did not finish in time; entries may be lost");
        }
    }
}

/// Logs an entry to `tracing` (target `audit`): at info when the log has no store, at debug
/// when the store has it too.
fn trace(entry: &AuditEntry, only_here: bool) {
    if only_here {
        tracing::info!(
            target: "audit",
            actor = %entry.actor,
            action = %entry.action,
            target_ = %entry.target,
            detail = %entry.detail,
            peer = %entry.peer,
            "audit"
        );
    } else {
        tracing::debug!(
            target: "audit",
            actor = %entry.actor,
            action = %entry.action,
            target_ = %entry.target,
            detail = %entry.detail,
            peer = %entry.peer,
            "audit"
        );
    }
}

/// The thread that writes queued entries to the store.
struct Writer {
    store: Arc<dyn AlertStore>,
    limiter: Arc<Mutex<RefusalLimiter>>,
    metrics: Metrics,
}

impl Writer {
    fn run(self, receiver: Receiver<Message>) {
        // Wakes at least once a second to write the counts of refusal windows that ended.
        let tick = Duration::from_secs(1);
        loop {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let disconnected = match receiver.recv_timeout(tick) {
                Ok(message) => {
                    take(message, &mut batch, &mut flushes);
                    while batch.len() < BATCH_ENTRIES {
                        match receiver.try_recv() {
                            Ok(message) => take(message, &mut batch, &mut flushes),
                            Err(_) => break,
                        }
                    }
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let all = disconnected || !flushes.is_empty();
            batch.extend(
                self.limiter
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .ended(Instant::now(), all),
            );
            self.write(&batch);
            for flush in flushes {
                let _ = flush.send(());
            }
            if disconnected {
                return;
            }
        }
    }

    fn write(&self, batch: &[AuditEntry]) {
        if batch.is_empty() {
            return;
        }
        match self.store.append_audit(batch) {
            Ok(_) => self.metrics.observe_audit("written", batch.len() as u64),
            Err(error) => {
                self.metrics.observe_audit("failed", batch.len() as u64);
                tracing::error!(target: "audit", %error, entries = batch.len(), "cannot write audit entries; they follow in the log");
                for entry in batch {
                    trace(entry, true);
                }
            }
        }
    }
}

fn take(message: Message, batch: &mut Vec<AuditEntry>, flushes: &mut Vec<SyncSender<()>>) {
    match message {
        Message::Entry(entry) => batch.push(entry),
        Message::Flush(done) => flushes.push(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertStore, SqliteStore, Synchronous};

    fn refusal(peer: &str) -> AuditEntry {
        AuditEntry::new(ANONYMOUS, CALL_REFUSED, "/churn.v1.ChurnService/Score")
            .detail("unknown or revoked token")
            .peer(peer.parse().ok())
    }

    #[test]
    fn a_flood_of_refusals_writes_one_entry_per_window_and_then_the_count() {
        let mut limiter = RefusalLimiter::default();
        let start = Instant::now();
        let entry = refusal("10.0.0.1:4000");
        assert!(limiter.admit("10.0.0.1".into(), &entry, start));
        for second in 1..1000 {
            let now = start + Duration::from_millis(second * 10);
            assert!(!limiter.admit("10.0.0.1".into(), &entry, now));
        }
        // Another peer has a window of its own.
        assert!(limiter.admit("10.0.0.2".into(), &entry, start));
        assert!(
            limiter
                .ended(start + Duration::from_secs(30), false)
                .is_empty()
        );
        let ended = limiter.ended(start + REFUSAL_WINDOW, false);
        assert_eq!(
            ended.len(),
            1,
            "only the window that counted refusals: {ended:?}"
        );
        assert!(
            ended[0].detail.starts_with("999 more like this"),
            "{}",
            ended[0].detail
        );
        assert_eq!(ended[0].peer, "10.0.0.1:4000");
        assert_eq!(limiter.keys(), 0);
        // A new window writes again.
        assert!(limiter.admit("10.0.0.1".into(), &entry, start + REFUSAL_WINDOW));
    }

    #[test]
    fn refusals_from_many_peers_share_one_key_past_the_limit() {
        let mut limiter = RefusalLimiter::default();
        let now = Instant::now();
        let entry = refusal("10.0.0.1:4000");
        let admitted = (0..MAX_REFUSAL_KEYS + 500)
            .filter(|peer| limiter.admit(format!("peer-{peer}"), &entry, now))
            .count();
        // One per followed key, and one for all the rest together.
        assert_eq!(admitted, MAX_REFUSAL_KEYS + 1);
        assert_eq!(limiter.keys(), MAX_REFUSAL_KEYS + 1);
        let ended = limiter.ended(now, true);
        assert_eq!(ended.len(), 1);
        assert!(
            ended[0].detail.starts_with("499 more like this"),
            "{}",
            ended[0].detail
        );
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_FIELD_BYTES);
        let entry = AuditEntry::new(&long, "x", "y").detail(&long);
        assert!(entry.actor.len() <= MAX_FIELD_BYTES);
        assert!(entry.detail.ends_with('…'));
    }

    fn store() -> (tempfile::TempDir, Arc<dyn AlertStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("alerts.sqlite"), Synchronous::Normal).unwrap();
        (dir, Arc::new(store))
    }

    fn everything(store: &Arc<dyn AlertStore>) -> Vec<AuditEntry> {
        store
            .audit_entries(&AuditFilter::default(), AuditRange::After(0), 10_000)
            .unwrap()
    }

    #[test]
    fn entries_reach_the_store_in_order_and_refusals_are_limited() {
        let (_dir, store) = store();
        let metrics = Metrics::new();
        let log = AuditLog::new(Some(store.clone()), metrics.clone());
        log.record(AuditEntry::new("ana", ALERT_ACKNOWLEDGE, "7"));
        for _ in 0..100 {
            log.refused(refusal("10.0.0.9:1234"));
        }
        log.record(AuditEntry::new("SIGHUP", MODEL_RELOAD, "models/telco"));
        log.flush();
        let entries = everything(&store);
        let actions: Vec<&str> = entries.iter().map(|entry| entry.action.as_str()).collect();
        // The refusal window's count is written at the flush, after the entries queued.
        assert_eq!(
            actions,
            [ALERT_ACKNOWLEDGE, CALL_REFUSED, MODEL_RELOAD, CALL_REFUSED]
        );
        assert!(entries[3].detail.starts_with("99 more like this"));
        assert_eq!(
            entries.iter().map(|entry| entry.id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        let text = metrics.render();
        assert!(
            text.contains("churn_audit_entries_total{outcome=\"written\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("churn_audit_entries_total{outcome=\"suppressed\"} 99"),
            "{text}"
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_growing() {
        // A queue nobody drains, as when the store is slow: it holds four, the rest are dropped.
        let (sender, _receiver) = std::sync::mpsc::sync_channel(4);
        let metrics = Metrics::new();
        let log = AuditLog {
            inner: Arc::new(Inner {
                queue: Some(sender),
                store: None,
                limiter: Arc::default(),
                metrics: metrics.clone(),
            }),
        };
        for index in 0..10 {
            log.record(AuditEntry::new("ana", ALERT_RESOLVE, &index.to_string()));
        }
        let text = metrics.render();
        assert!(
            text.contains("churn_audit_entries_total{outcome=\"dropped\"} 6"),
            "{text}"
        );
    }

    #[test]
    fn without_a_store_entries_only_go_to_the_log() {
        let log = AuditLog::new(None, Metrics::new());
        log.record(AuditEntry::new("ana", ALERT_ACKNOWLEDGE, "7"));
        log.refused(refusal("10.0.0.1:1"));
        log.flush();
        assert!(log.store().is_none());
    }
}
