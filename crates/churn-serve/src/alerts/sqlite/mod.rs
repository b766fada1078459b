//! The embedded SQLite alert store: alerts in one file, scores in another beside it, both in
//! WAL mode (readers never wait on the writer), schema migrations on open, and a partial unique
//! index that makes a second unresolved alert for one customer impossible whatever the caller
//! does.
//!
//! By concern: `schema` (both files' tables and migrations), `last_scores` (every customer's last
//! score, in memory), `scores_file` (the scores file and its writes), `background` (the
//! checkpoint and score-writer threads), `rows` (row mapping), `writes` and `reads` (the
//! statements of the alert file); this module is the store itself, which holds them together
//! under the [`AlertStore`] contract.

mod background;
mod last_scores;
mod reads;
mod rows;
mod schema;
mod scores_file;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use churn_core::{AlertDecision, CustomerHistory, RiskBand, Timestamp};
use rusqlite::{Connection, params};

use self::background::{WRITER_CHECKPOINT_PAGES, start_maintenance};
use self::last_scores::{LastScore, Memory, last_score, load_last_scores};
use self::rows::{append_event, load_alert, reload};
use self::schema::{MIGRATIONS, connect, migrate, move_last_scores, use_wal};
use self::scores_file::{ScoreFile, history_path};
use self::writes::{Transition, escalate_due, history, raise, update};
use super::{
    AlertChange, AlertEvent, AlertFilter, AlertPage, AlertRecord, AlertState, AlertStats,
    AlertStore, CustomerRecord, Decide, EventKind, NewScore, Outcome, Recorded, ScorePoint,
    StoreError, StoreResult,
};
use crate::audit::{AuditEntry, AuditFilter, AuditRange};

/// Pending scores beyond which a score waits for them to be written (back-pressure, and a
/// bound on what a crash can lose).
const MAX_PENDING: usize = 50_000;

/// Readers kept open between calls; more are opened when needed.
const POOLED_READERS: usize = 4;

/// How hard a commit pushes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// A commit is in the write-ahead log before it returns: it survives the process being
    /// killed; a power cut may lose the last commits. SQLite's recommendation for WAL.
    #[default]
    Normal,
    /// Every commit is also fsynced: it survives a power cut, at the cost of one fsync per
    /// commit (commits are grouped, so not per alert).
    Full,
}

impl std::str::FromStr for Synchronous {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            _ => Err("expected `normal` or `full`".into()),
        }
    }
}

/// Alerts in one SQLite file. Writes go through one connection (SQLite has one writer); reads
/// take a connection of their own from a small pool, so a long replay never holds up a score.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    /// The one write connection (SQLite has one writer).
    writer: Arc<Mutex<Connection>>,
    /// Every customer's last score; see [`Memory`].
    memory: Arc<Mutex<Memory>>,
    /// Last scores and every score over time, in a file of its own.
    scores: Arc<ScoreFile>,
    readers: Mutex<Vec<Connection>>,
    /// Dropped with the store, which stops its threads once pending scores are written.
    _stop_maintenance: [std::sync::mpsc::Sender<()>; 2],
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, and the scores file beside it, and
    /// brings their schemas up to date; an error names the file that failed.
    pub fn open(path: &Path, synchronous: Synchronous) -> StoreResult<Self> {
        Self::open_files(path, synchronous).map_err(|error| opening(path, error))
    }

    fn open_files(path: &Path, synchronous: Synchronous) -> StoreResult<Self> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| StoreError::Backend {
                reason: format!("cannot create its folder `{}`: {error}", parent.display()),
            })?;
        }
        let mut writer = connect(path)?;
        use_wal(&writer)?;
        let level = match synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        writer.execute_batch(&format!(
            "PRAGMA synchronous = {level}; PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES};"
        ))?;
        let scores = Arc::new(ScoreFile::open(&history_path(path))?);
        move_last_scores(&writer, &lock(&scores.writer))?;
        migrate(&mut writer, path, MIGRATIONS)?;
        let known = load_last_scores(&lock(&scores.writer), &writer)?;
        let memory = Arc::new(Mutex::new(Memory::new(known)));
        let writer = Arc::new(Mutex::new(writer));
        let stop_maintenance = start_maintenance(
            connect(path)?,
            writer.clone(),
            memory.clone(),
            scores.clone(),
        )?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer,
            memory,
            scores,
            readers: Mutex::new(Vec::new()),
            _stop_maintenance: stop_maintenance,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-transaction rolls the transaction back, so the connection is sound.
        lock(&self.writer)
    }

    /// Moves alert `id` to a new state with `write`, if its state allows the transition, and
    /// logs the event: acknowledging and resolving.
    fn change_state(
        &self,
        id: i64,
        transition: Transition,
        now: Timestamp,
        write: impl FnOnce(&Connection) -> rusqlite::Result<usize>,
    ) -> StoreResult<AlertEvent> {
        let connection = self.writer();
        in_transaction(&connection, || {
            let alert =
                load_alert(&connection, id)?.ok_or(StoreError::NotFound { id: id.to_string() })?;
            if !(transition.allowed)(alert.state) {
                return Err(StoreError::WrongState {
                    id: id.to_string(),
                    state: alert.state.as_str(),
                    action: transition.action,
                    expected: transition.expected,
                });
            }
            write(&connection)?;
            append_event(&connection, transition.kind, now, reload(&connection, id)?)
        })
    }

    /// Runs `read` on a pooled read connection.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => connect(&self.path).map_err(|error| opening(&self.path, error))?,
        };
        let result = read(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < POOLED_READERS {
            readers.push(connection);
        }
        result
    }
}

/// Names the file in an error met while opening it.
fn opening(path: &Path, error: StoreError) -> StoreError {
    match error {
        StoreError::Backend { reason } => StoreError::Open {
            path: path.to_path_buf(),
            reason,
        },
        other => other,
    }
}

/// Takes a lock; a panic while it was held left nothing half-done (transactions roll back,
/// memory is updated only after a commit).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `write` in an IMMEDIATE transaction, committed if it succeeds.
fn in_transaction<T>(
    connection: &Connection,
    write: impl FnOnce() -> StoreResult<T>,
) -> StoreResult<T> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    match write() {
        Ok(value) => {
            connection.execute_batch("COMMIT")?;
            Ok(value)
        }
        Err(error) => {
            // The transaction may be gone already (SQLite rolls back on some errors).
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

impl Drop for SqliteStore {
    /// Writes the pending last scores before the store goes.
    fn drop(&mut self) {
        if let Err(error) = AlertStore::flush(self) {
            tracing::error!(%error, "cannot write the last scores before closing");
        }
    }
}

impl AlertStore for SqliteStore {
    fn record_scores(&self, scores: &[NewScore], decide: Decide<'_>) -> StoreResult<Recorded> {
        // Something may change an alert: the whole call in one transaction, each score seeing
        // the scores and writes before it. Its customers are marked busy meanwhile, so their
        // other scores wait for this commit while everyone else's go on.
        if lock(&self.memory).pending.len() >= MAX_PENDING {
            self.scores.write_pending(&self.memory)?;
        }
        let connection = self.writer();
        let (known, mut version) = {
            let mut memory = lock(&self.memory);
            let mut known = HashMap::with_capacity(scores.len());
            for score in scores {
                memory.busy.insert(score.customer_id.clone());
                if let Some(last) = memory.known.get(&score.customer_id) {
                    known.insert(score.customer_id.clone(), last.clone());
                }
            }
            (known, memory.model_version.clone())
        };
        let mut latest: HashMap<String, LastScore> = HashMap::with_capacity(scores.len());
        let recorded = in_transaction(&connection, || {
            let mut recorded = Recorded::default();
            for score in scores {
                let (history, unresolved, history_alert_id) =
                    history(&connection, &known, &latest, &score.customer_id)?;
                let previous = history.previous.map(|past| past.probability);
                // The policy only says Update when told of an open alert, and Raise when not;
                // either way the customer's unresolved alert, if any, is the one to update.
                let (change, event) = match (decide(score, &history), &unresolved) {
                    (AlertDecision::Quiet, _) => (None, None),
                    (AlertDecision::Update(draft) | AlertDecision::Raise(draft), Some(alert)) => {
                        let event = update(&connection, score, &draft, previous, alert)?;
                        (Some((alert.id, EventKind::Updated)), event)
                    }
                    (AlertDecision::Update(draft) | AlertDecision::Raise(draft), None) => {
                        let event = raise(&connection, score, &draft, previous)?;
                        (Some((event.alert.id, EventKind::Raised)), Some(event))
                    }
                };
                recorded
                    .changes
                    .push(change.map(|(alert_id, kind)| AlertChange { alert_id, kind }));
                recorded.events.extend(event);
                let alert_id = change.map(|(alert_id, _)| alert_id).or(history_alert_id);
                latest.insert(
                    score.customer_id.clone(),
                    last_score(score, alert_id, &mut version),
                );
            }
            Ok(recorded)
        });
        // Memory follows once the transaction has committed (and only then), before the write
        // connection is let go, so the next commit for these customers sees it.
        let mut memory = lock(&self.memory);
        for score in scores {
            memory.busy.remove(&score.customer_id);
        }
        let recorded = recorded?;
        memory.keep(latest);
        drop(memory);
        drop(connection);
        Ok(recorded)
    }

    /// Records scores that change no alert, of customers who have none, in memory alone;
    /// `None` when any score may change an alert (or a customer comes twice), for the caller
    /// to record them all in a transaction instead.
    fn record_quiet(&self, scores: &[NewScore], decide: Decide<'_>) -> Option<Recorded> {
        let mut memory = lock(&self.memory);
        if memory.pending.len() >= MAX_PENDING {
            return None;
        }
        let mut quiet = HashMap::with_capacity(scores.len());
        for score in scores {
            if memory.busy.contains(&score.customer_id) {
                return None;
            }
            let previous = match memory.known.get(&score.customer_id) {
                Some(last) if last.last_alert_id.is_some() => return None,
                Some(last) => Some(last.score),
                None => None,
            };
            let history = CustomerHistory {
                previous,
                ..CustomerHistory::default()
            };
            if !matches!(decide(score, &history), AlertDecision::Quiet)
                || quiet.contains_key(&score.customer_id)
            {
                return None;
            }
            let last = memory.last_score(score, None);
            quiet.insert(score.customer_id.clone(), last);
        }
        memory.keep(quiet);
        Some(Recorded {
            changes: vec![None; scores.len()],
            events: Vec::new(),
        })
    }

    fn flush(&self) -> StoreResult<()> {
        self.scores.write_pending(&self.memory)
    }

    fn acknowledge(&self, id: i64, by: Option<&str>, now: Timestamp) -> StoreResult<AlertEvent> {
        let transition = Transition {
            kind: EventKind::Acknowledged,
            action: "acknowledging",
            expected: "open",
            allowed: |state| state == AlertState::Open,
        };
        self.change_state(id, transition, now, |connection| {
            connection.execute(
                "UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?2,
                    acknowledged_by = ?3
                 WHERE id = ?1",
                params![id, now, by],
            )
        })
    }

    fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        note: Option<&str>,
        by: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent> {
        let transition = Transition {
            kind: EventKind::Resolved,
            action: "resolving",
            expected: "open or acknowledged",
            allowed: |state| state != AlertState::Resolved,
        };
        self.change_state(id, transition, now, |connection| {
            connection.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?2, resolved_by = ?3,
                    outcome = ?4, note = ?5
                 WHERE id = ?1",
                params![id, now, by, outcome.as_str(), note],
            )
        })
    }

    fn escalate_overdue(
        &self,
        now: Timestamp,
        next_window: &dyn Fn(RiskBand) -> i64,
    ) -> StoreResult<Vec<AlertEvent>> {
        let connection = self.writer();
        in_transaction(&connection, || escalate_due(&connection, now, next_window))
    }

    fn get(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        self.read(|connection| load_alert(connection, id))
    }

    fn list(&self, filter: &AlertFilter, offset: u64, limit: u64) -> StoreResult<AlertPage> {
        self.read(|connection| reads::list(connection, filter, offset, limit))
    }

    fn events_after(
        &self,
        cursor: u64,
        filter: &AlertFilter,
        limit: u64,
    ) -> StoreResult<Vec<AlertEvent>> {
        self.read(|connection| reads::events_after(connection, cursor, filter, limit))
    }

    fn last_cursor(&self) -> StoreResult<u64> {
        self.read(reads::last_cursor)
    }

    fn customer(
        &self,
        customer_id: &str,
        history_limit: u64,
    ) -> StoreResult<Option<CustomerRecord>> {
        let last = lock(&self.memory)
            .known
            .get(customer_id)
            .map(|last| ScorePoint {
                at: last.score.at,
                probability: last.score.probability,
                band: last.score.band,
                model_version: last.model_version.to_string(),
            });
        let limit = history_limit.clamp(1, i64::MAX as u64) as i64;
        let mut history = self.scores.scores(customer_id, limit)?;
        self.read(|connection| {
            // The latest score may be in memory only, waiting for the background write.
            if let Some(last) = &last {
                match history.last() {
                    Some(point) if point.at == last.at => {
                        history.pop();
                        history.push(last.clone());
                    }
                    Some(point) if point.at > last.at => {}
                    _ => {
                        history.push(last.clone());
                        if history.len() as i64 > limit {
                            history.remove(0);
                        }
                    }
                }
            }
            let alerts = reads::customer_alerts(connection, customer_id)?;
            if last.is_none() && history.is_empty() && alerts.is_empty() {
                return Ok(None);
            }
            Ok(Some(CustomerRecord {
                customer_id: customer_id.to_string(),
                last: last.clone().or_else(|| history.last().cloned()),
                history,
                alerts,
            }))
        })
    }

    fn stats(&self, now: Timestamp) -> StoreResult<AlertStats> {
        self.read(|connection| reads::stats(connection, now))
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<u64> {
        let connection = self.writer();
        in_transaction(&connection, || {
            let mut insert = connection.prepare_cached(
                "INSERT INTO audit_log (at, actor, action, target, detail, peer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for entry in entries {
                insert.execute(params![
                    entry.at,
                    entry.actor,
                    entry.action,
                    entry.target,
                    entry.detail,
                    entry.peer
                ])?;
            }
            let last: i64 =
                connection.query_row("SELECT COALESCE(MAX(id), 0) FROM audit_log", [], |row| {
                    row.get(0)
                })?;
            Ok(last as u64)
        })
    }

    fn audit_entries(
        &self,
        filter: &AuditFilter,
        range: AuditRange,
        limit: u64,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.read(|connection| reads::audit_entries(connection, filter, range, limit))
    }
}
