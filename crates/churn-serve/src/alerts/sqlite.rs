//! The embedded SQLite alert store: alerts in one file, scores in another beside it, both in
//! WAL mode (readers never wait on the writer), schema migrations on open, and a partial unique
//! index that makes a second unresolved alert for one customer impossible whatever the caller
//! does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use churn_core::{AlertDecision, AlertDraft, CustomerHistory, PastAlert, PastScore, RiskBand};
use churn_core::{Timestamp, Trigger};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::store::MATERIAL_CHANGE;
use super::{
    AlertEvent, AlertFilter, AlertPage, AlertRecord, AlertState, AlertStats, AlertStore,
    CustomerRecord, Decide, EventKind, NewScore, Outcome, Recorded, ScorePoint, StoreError,
    StoreResult,
};

/// The schema, one migration per entry; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: customers' last scores, alerts, and the event log streams replay from.
    "CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        probability REAL NOT NULL,
        band INTEGER NOT NULL,
        scored_at INTEGER NOT NULL,
        model_version TEXT NOT NULL,
        -- The customer's most recent alert: the unresolved one if there is one (a customer gets
        -- a new alert only when none is unresolved), so history is two key lookups at most.
        last_alert_id INTEGER REFERENCES alerts (id)
    ) WITHOUT ROWID;
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        customer_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
        band INTEGER NOT NULL,
        probability REAL NOT NULL,
        previous_probability REAL,
        percentile REAL NOT NULL,
        revenue_at_risk REAL,
        triggers TEXT NOT NULL,
        reasons TEXT NOT NULL,
        assignee TEXT,
        team TEXT,
        model_version TEXT NOT NULL,
        raised_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        acknowledge_by INTEGER NOT NULL,
        escalate_at INTEGER NOT NULL,
        escalation_level INTEGER NOT NULL DEFAULT 0,
        acknowledged_at INTEGER,
        acknowledged_by TEXT,
        resolved_at INTEGER,
        resolved_by TEXT,
        outcome TEXT CHECK (outcome IN ('retained', 'churned', 'false_alarm', 'not_reached')),
        note TEXT,
        score_count INTEGER NOT NULL DEFAULT 1
    );
    CREATE UNIQUE INDEX one_unresolved_alert_per_customer
        ON alerts (customer_id) WHERE state != 'resolved';
    CREATE INDEX open_alerts_by_escalation ON alerts (escalate_at) WHERE state = 'open';
    CREATE TABLE alert_events (
        cursor INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        kind TEXT NOT NULL,
        at INTEGER NOT NULL,
        band INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        assignee TEXT,
        team TEXT,
        alert TEXT NOT NULL
    );",
    // 2: a customer's alerts by key, for the console's customer view.
    "CREATE INDEX alerts_by_customer ON alerts (customer_id, id);
    ALTER TABLE alerts ADD COLUMN lowering TEXT NOT NULL DEFAULT '[]';",
    // 3: last scores live in the scores file (`move_last_scores` copied them there first).
    "DROP TABLE customers;",
];

/// The scores file's schema (`NAME.history.sqlite`, beside the store): every customer's scores
/// over time and their last one. A file of its own has a writer of its own, so these bulk writes
/// never wait on, nor hold up, an alert commit.
const SCORE_MIGRATIONS: &[&str] = &[
    "CREATE TABLE score_history (
        customer_id TEXT NOT NULL,
        scored_at INTEGER NOT NULL,
        probability REAL NOT NULL,
        band INTEGER NOT NULL,
        model_version TEXT NOT NULL,
        PRIMARY KEY (customer_id, scored_at)
    ) WITHOUT ROWID;",
    // 2: last scores, formerly the alert file's `customers` table. A customer's most recent
    // alert is not kept here: the alerts say it, and their latest score may be newer than this.
    "CREATE TABLE last_scores (
        customer_id TEXT PRIMARY KEY,
        probability REAL NOT NULL,
        band INTEGER NOT NULL,
        scored_at INTEGER NOT NULL,
        model_version TEXT NOT NULL
    ) WITHOUT ROWID;",
];

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

/// Every customer's last score, in memory as well as in the scores file (about 150 bytes a
/// customer: 150 MB for a million). A score of a customer who has no alert, which changes no
/// alert (90% of scores), is then decided and kept under this lock alone, touching SQLite not
/// at all; measured here, a key lookup through SQLite cost 5–20 µs and a row write 20–30 µs.
/// Every last score is written in the background, those that changed an alert too: the alert
/// row holds its score, so a crash that loses the background write loses nothing of it.
///
/// Lock order: a write connection (the alert file's or the scores file's, never both), then
/// memory; nothing holds memory while waiting for a connection.
#[derive(Debug)]
struct Memory {
    /// Every customer's last score: what the scores file holds plus `pending`.
    known: LastScores,
    /// The model version of the last score, shared by the customers it scored.
    model_version: Arc<str>,
    /// Customers whose scores are being committed right now: their scores wait for that
    /// commit (the memory lock is not held during it, so other scores go on).
    busy: std::collections::HashSet<String>,
    /// Scores not yet written to the scores file (as last scores and history), oldest first.
    /// The writer takes them all at once, so it holds the lock that every score takes for no
    /// longer than a swap, whatever its CPU priority.
    pending: Vec<PendingScore>,
}

/// Shards of [`LastScores`]: the most customers a growing shard moves at once is the whole
/// population over this.
const LAST_SCORE_SHARDS: usize = 256;

/// Every customer's last score, in shards. A map grows by moving everything it holds at once,
/// under the memory lock that every score takes: one map of 115,000 customers held every call
/// for 50-100 ms at 5,000 calls a second; a shard moves 1/256 of that.
#[derive(Debug)]
struct LastScores {
    hasher: std::hash::RandomState,
    shards: Vec<HashMap<String, LastScore>>,
}

impl LastScores {
    fn new() -> Self {
        LastScores {
            hasher: std::hash::RandomState::new(),
            shards: (0..LAST_SCORE_SHARDS).map(|_| HashMap::new()).collect(),
        }
    }

    fn shard(&self, customer: &str) -> usize {
        use std::hash::BuildHasher;
        // Each shard's map hashes with a key of its own, so these bits say nothing of where a
        // customer sits inside the shard.
        self.hasher.hash_one(customer) as usize % LAST_SCORE_SHARDS
    }

    fn get(&self, customer: &str) -> Option<&LastScore> {
        self.shards[self.shard(customer)].get(customer)
    }

    fn insert(&mut self, customer: String, last: LastScore) {
        let shard = self.shard(&customer);
        self.shards[shard].insert(customer, last);
    }

    fn entry(
        &mut self,
        customer: String,
    ) -> std::collections::hash_map::Entry<'_, String, LastScore> {
        let shard = self.shard(&customer);
        self.shards[shard].entry(customer)
    }
}

/// One score on its way to the scores file.
#[derive(Debug, Clone)]
struct PendingScore {
    customer_id: String,
    score: PastScore,
    model_version: Arc<str>,
}

/// The scores file, `NAME.history.sqlite` beside the store: every customer's last score, and
/// their score history (every last score the store keeps, one a second per customer at most).
/// Written on the store's thread, sorted by customer, in transactions of [`SCORE_CHUNK`]; the
/// scores of the last tick may be lost to a crash, never an alert (whose row holds its latest
/// score).
#[derive(Debug)]
struct ScoreFile {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Room for the pending scores that will come meanwhile, reserved while taking them: as
    /// many as were taken last time, so that scores rarely grow the vector under the lock.
    room: std::sync::atomic::AtomicUsize,
}

/// Returns where the history of the store at `path` lives: `NAME.history.sqlite`.
fn history_path(path: &Path) -> PathBuf {
    path.with_extension("history.sqlite")
}

impl ScoreFile {
    fn open(path: &Path) -> StoreResult<Self> {
        let mut writer = connect(path)?;
        use_wal(&writer, path)?;
        writer.execute_batch("PRAGMA synchronous = NORMAL;")?;
        migrate(&mut writer, path, SCORE_MIGRATIONS)?;
        Ok(ScoreFile {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            reader: Mutex::new(connect(path)?),
            room: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Writes every pending score: the customer's last score and a history point, in
    /// transactions of [`SCORE_CHUNK`]. Memory is locked only to swap the pending scores out.
    fn write_pending(&self, memory: &Mutex<Memory>) -> StoreResult<()> {
        use std::sync::atomic::Ordering::Relaxed;
        // The connection first: two writers (the background one and a score waiting for room)
        // then write their batches in the order they took them, so an older score never
        // overwrites a newer one.
        let connection = lock(&self.writer);
        let room = Vec::with_capacity(self.room.load(Relaxed));
        let mut scores = std::mem::replace(&mut lock(memory).pending, room);
        self.room.store(scores.len(), Relaxed);
        if scores.is_empty() {
            return Ok(());
        }
        // In key order the writes touch each page once. A stable sort keeps a customer's scores
        // in time order, so the later one wins: of two history points in one second, and as the
        // last score.
        scores.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        let mut written = 0;
        for chunk in scores.chunks(SCORE_CHUNK) {
            let committed = in_transaction(&connection, || {
                for (index, score) in chunk.iter().enumerate() {
                    let newer = chunk.get(index + 1);
                    if newer.is_none_or(|newer| newer.customer_id != score.customer_id) {
                        write_score(&connection, WRITE_LAST_SCORE, score)?;
                    }
                    write_score(&connection, WRITE_HISTORY_POINT, score)?;
                }
                Ok(())
            });
            if let Err(error) = committed {
                tracing::warn!(
                    %error,
                    scores = %self.path.display(),
                    unwritten = scores.len() - written,
                    "cannot write scores; they are retried"
                );
                // Back in front of the scores that came meanwhile, which are newer.
                let mut memory = lock(memory);
                let newer = std::mem::take(&mut memory.pending);
                memory.pending = scores.split_off(written);
                memory.pending.extend(newer);
                return Err(error);
            }
            written += chunk.len();
        }
        Ok(())
    }

    fn scores(&self, customer_id: &str, limit: i64) -> StoreResult<Vec<ScorePoint>> {
        let connection = lock(&self.reader);
        let mut history: Vec<ScorePoint> = connection
            .prepare_cached(
                "SELECT scored_at, probability, band, model_version FROM score_history
                 WHERE customer_id = ?1 ORDER BY scored_at DESC LIMIT ?2",
            )?
            .query_map(params![customer_id, limit], |row| {
                Ok(ScorePoint {
                    at: row.get(0)?,
                    probability: row.get(1)?,
                    band: band_of_code(row.get(2)?)?,
                    model_version: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        history.reverse();
        Ok(history)
    }
}

/// Puts a connection's file in WAL mode, so readers never wait on the writer.
fn use_wal(connection: &Connection, path: &Path) -> StoreResult<()> {
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            reason: format!("`{}` cannot use WAL mode (got {mode})", path.display()),
        });
    }
    Ok(())
}

/// A customer's last score, and their most recent alert.
#[derive(Debug, Clone, PartialEq)]
struct LastScore {
    score: PastScore,
    model_version: Arc<str>,
    last_alert_id: Option<i64>,
}

/// How often the alert file is checkpointed, and pending scores written, on the scores file's
/// writer, which nothing on a request path waits for. A longer score interval writes each page of
/// the scores file once for the many scores that land on it meanwhile (random-key writes; at 3,000
/// new customers a second the scores file took about 11 MB/s of disk writes at 500 ms, 4 MB/s at
/// 2 s); a crash may lose that long of quiet scores, never an alert.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
const SCORE_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Most pending scores written per transaction of the scores file.
const SCORE_CHUNK: usize = 4_096;
/// Pending scores beyond which a score waits for them to be written (back-pressure, and a
/// bound on what a crash can lose).
const MAX_PENDING: usize = 50_000;
/// WAL pages after which the writer checkpoints itself: only if the checkpoint thread cannot
/// keep up (SQLite's default is 1,000 pages, which would put an fsync on the writer every few
/// dozen commits).
const WRITER_CHECKPOINT_PAGES: u32 = 50_000;

/// A customer's alerts the customer view lists, newest first.
const CUSTOMER_ALERTS: u32 = 50;

/// Readers kept open between calls; more are opened when needed.
const POOLED_READERS: usize = 4;

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema up to date.
    pub fn open(path: &Path, synchronous: Synchronous) -> StoreResult<Self> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| StoreError::Backend {
                reason: format!("cannot create `{}`: {error}", parent.display()),
            })?;
        }
        let mut writer = connect(path)?;
        use_wal(&writer, path)?;
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
        let memory = Arc::new(Mutex::new(Memory {
            known: load_last_scores(&lock(&scores.writer), &writer)?,
            model_version: Arc::from(""),
            busy: std::collections::HashSet::new(),
            pending: Vec::new(),
        }));
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
            None => connect(&self.path)?,
        };
        let result = read(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < POOLED_READERS {
            readers.push(connection);
        }
        result
    }
}

/// Checkpoints the alert file and writes pending scores, each on a thread of its own; both stop
/// (the scores written first) when the returned senders are dropped.
///
/// Checkpoints go in two steps, so the log stays small and most of their syncing is off the writer:
/// first a PASSIVE checkpoint alongside the writer copies the bulk of the log into the database
/// and syncs it; then, holding the writer back for that moment only, a second one copies the few
/// pages committed meanwhile. The log is then fully checkpointed and the next commit starts it
/// over, instead of growing it (appends that extend a file wait on the filesystem journal behind
/// every fsync). The first step alone is not enough: a PASSIVE checkpoint reports the log it
/// began with as copied while commits go on, and the log is never started over.
///
/// Writing a tick's scores takes tens of milliseconds of CPU (50-170 ms every 2 s at 5,000 new
/// customers a second), which on a small machine the request threads would wait for: that thread
/// runs under SCHED_IDLE, so that it runs in the time they leave and a waking request thread
/// takes its CPU at once (at nice 19 alone, Linux may let the running thread finish its slice,
/// a millisecond or more, first). The checkpoints keep a thread at normal priority, because they
/// hold the writer back and commits wait for them.
fn start_maintenance(
    connection: Connection,
    writer: Arc<Mutex<Connection>>,
    memory: Arc<Mutex<Memory>>,
    scores: Arc<ScoreFile>,
) -> StoreResult<[std::sync::mpsc::Sender<()>; 2]> {
    let checkpoint = move || connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    let checkpoints = every(
        "churn-alert-log",
        CHECKPOINT_INTERVAL,
        false,
        move |stopping| {
            if stopping {
                return;
            }
            let caught_up = checkpoint().and_then(|()| {
                let _quiet = lock(&writer);
                checkpoint()
            });
            if let Err(error) = caught_up {
                tracing::warn!(%error, "alert store checkpoint failed; retrying");
            }
        },
    )?;
    let score_writes = every("churn-alert-store", SCORE_WRITE_INTERVAL, true, move |_| {
        // Logged inside; retried on the next tick.
        let _ = scores.write_pending(&memory);
    })?;
    Ok([checkpoints, score_writes])
}

/// Starts a thread named `name` that runs `tick(false)` every `interval`, and `tick(true)` once
/// more when the returned sender is dropped; under SCHED_IDLE at nice 19 if `background` (on
/// Linux; best effort, a refusal leaves it as it was).
fn every(
    name: &str,
    interval: std::time::Duration,
    background: bool,
    mut tick: impl FnMut(bool) + Send + 'static,
) -> StoreResult<std::sync::mpsc::Sender<()>> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            if background {
                use thread_priority::{
                    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                    set_thread_priority_and_policy, thread_native_id,
                };
                let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
                let _ =
                    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
                // After the policy, which sets the nice value too: the lowest priority still,
                // should SCHED_IDLE be refused.
                let _ = rustix::process::nice(19);
            }
            #[cfg(not(target_os = "linux"))]
            let _ = background;
            loop {
                let stopping = !matches!(
                    stopped.recv_timeout(interval),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                tick(stopping);
                if stopping {
                    return;
                }
            }
        })
        .map_err(|error| StoreError::Backend {
            reason: format!("cannot start the alert store's thread {name}: {error}"),
        })?;
    Ok(stop)
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

impl Memory {
    /// Returns a score as a last score, sharing the model version with the scores before it.
    fn last_score(&mut self, score: &NewScore, last_alert_id: Option<i64>) -> LastScore {
        last_score(score, last_alert_id, &mut self.model_version)
    }

    /// Keeps last scores: known at once, written to the scores file in the background.
    fn keep(&mut self, scores: HashMap<String, LastScore>) {
        for (customer, last) in scores {
            self.pending.push(PendingScore {
                customer_id: customer.clone(),
                score: last.score,
                model_version: last.model_version.clone(),
            });
            self.known.insert(customer, last);
        }
    }
}

/// Returns a score as a last score, sharing `version` when the model version is the same.
fn last_score(score: &NewScore, last_alert_id: Option<i64>, version: &mut Arc<str>) -> LastScore {
    if **version != *score.model_version {
        *version = Arc::from(score.model_version.as_str());
    }
    LastScore {
        score: PastScore {
            probability: score.probability,
            band: score.band,
            at: score.at,
        },
        model_version: version.clone(),
        last_alert_id,
    }
}

/// Makes a score the customer's last one, and a point of their history: the two tables of the
/// scores file have the same columns.
const WRITE_LAST_SCORE: &str = "INSERT OR REPLACE INTO last_scores
    (customer_id, scored_at, probability, band, model_version) VALUES (?1, ?2, ?3, ?4, ?5)";
const WRITE_HISTORY_POINT: &str = "INSERT OR REPLACE INTO score_history
    (customer_id, scored_at, probability, band, model_version) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Writes `score` with `sql`, [`WRITE_LAST_SCORE`] or [`WRITE_HISTORY_POINT`].
fn write_score(connection: &Connection, sql: &str, score: &PendingScore) -> StoreResult<()> {
    connection.prepare_cached(sql)?.execute(params![
        score.customer_id,
        score.score.at,
        score.score.probability,
        band_code(score.score.band),
        &*score.model_version,
    ])?;
    Ok(())
}

/// Copies the last scores of a store from before schema 3, which kept them in the alert file,
/// to the scores file; migration 3 then drops them from the alert file. Repeating it after a
/// crash in between copies the same rows again.
fn move_last_scores(alerts: &Connection, scores: &Connection) -> StoreResult<()> {
    let version: i64 = alerts.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if !(1..3).contains(&version) {
        return Ok(());
    }
    let mut select = alerts.prepare(
        "SELECT customer_id, probability, band, scored_at, model_version FROM customers",
    )?;
    let mut rows = select.query([])?;
    let moved = in_transaction(scores, || {
        let mut moved = 0u64;
        while let Some(row) = rows.next()? {
            let last = PendingScore {
                customer_id: row.get(0)?,
                score: PastScore {
                    probability: row.get(1)?,
                    band: band_of_code(row.get(2)?)?,
                    at: row.get(3)?,
                },
                model_version: Arc::from(row.get::<_, String>(4)?.as_str()),
            };
            write_score(scores, WRITE_LAST_SCORE, &last)?;
            moved += 1;
        }
        Ok(moved)
    })?;
    tracing::info!(moved, "last scores moved to the scores file");
    Ok(())
}

/// Reads every customer's last score into memory: the scores file's, or their latest alert's
/// score when that is newer (its background write was lost to a crash), with that alert's id.
fn load_last_scores(scores: &Connection, alerts: &Connection) -> StoreResult<LastScores> {
    let mut versions: HashMap<String, Arc<str>> = HashMap::new();
    let mut shared = |version: String| {
        versions
            .entry(version.clone())
            .or_insert_with(|| Arc::from(version.as_str()))
            .clone()
    };
    let mut known = LastScores::new();
    let mut statement = scores.prepare(
        "SELECT customer_id, probability, band, scored_at, model_version FROM last_scores",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let last = LastScore {
            score: PastScore {
                probability: row.get(1)?,
                band: band_of_code(row.get(2)?)?,
                at: row.get(3)?,
            },
            model_version: shared(row.get(4)?),
            last_alert_id: None,
        };
        known.insert(row.get::<_, String>(0)?, last);
    }
    // SQLite takes the other columns from the row holding the MAX.
    let mut statement = alerts.prepare(
        "SELECT customer_id, MAX(id), probability, band, updated_at, model_version
         FROM alerts GROUP BY customer_id",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let alert_score = PastScore {
            probability: row.get(2)?,
            band: band_of_code(row.get(3)?)?,
            at: row.get(4)?,
        };
        let version = shared(row.get(5)?);
        let last = known
            .entry(row.get::<_, String>(0)?)
            .or_insert_with(|| LastScore {
                score: alert_score,
                model_version: version.clone(),
                last_alert_id: None,
            });
        if alert_score.at > last.score.at {
            last.score = alert_score;
            last.model_version = version;
        }
        last.last_alert_id = Some(row.get(1)?);
    }
    Ok(known)
}

impl Drop for SqliteStore {
    /// Writes the pending last scores before the store goes.
    fn drop(&mut self) {
        if let Err(error) = AlertStore::flush(self) {
            tracing::error!(%error, "cannot write the last scores before closing");
        }
    }
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(|error| StoreError::Backend {
        reason: format!("cannot open `{}`: {error}", path.display()),
    })?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.execute_batch("PRAGMA foreign_keys = ON;")?;
    Ok(connection)
}

/// Applies the migrations the file has not seen, each in its own transaction.
fn migrate(connection: &mut Connection, path: &Path, migrations: &[&str]) -> StoreResult<()> {
    let applied: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(|error| StoreError::Backend {
            reason: format!(
                "`{}` is not a readable alert store: {error}",
                path.display()
            ),
        })?
        .try_into()
        .unwrap_or(usize::MAX);
    if applied > migrations.len() {
        return Err(StoreError::Backend {
            reason: format!(
                "`{}` has schema version {applied}, newer than this churn's {}",
                path.display(),
                migrations.len()
            ),
        });
    }
    for (index, migration) in migrations.iter().enumerate().skip(applied) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.execute_batch(&format!("PRAGMA user_version = {};", index + 1))?;
        transaction.commit()?;
        tracing::info!(store = %path.display(), version = index + 1, "alert store migrated");
    }
    Ok(())
}

fn band_code(band: RiskBand) -> i64 {
    match band {
        RiskBand::Low => 1,
        RiskBand::Medium => 2,
        RiskBand::High => 3,
    }
}

fn band_of_code(code: i64) -> rusqlite::Result<RiskBand> {
    match code {
        1 => Ok(RiskBand::Low),
        2 => Ok(RiskBand::Medium),
        3 => Ok(RiskBand::High),
        _ => Err(corrupt(format!("band {code}"))),
    }
}

fn corrupt(what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unexpected {what} in the alert store").into(),
    )
}

fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Backend {
        reason: format!("cannot encode: {error}"),
    })
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|error| corrupt(format!("JSON ({error})")))
}

const ALERT_COLUMNS: &str = "id, customer_id, state, band, probability, previous_probability, \
    percentile, revenue_at_risk, triggers, reasons, assignee, team, model_version, raised_at, \
    updated_at, acknowledge_by, escalate_at, escalation_level, acknowledged_at, acknowledged_by, \
    resolved_at, resolved_by, outcome, note, score_count, lowering";

fn alert_from_row(row: &Row<'_>) -> rusqlite::Result<AlertRecord> {
    let state: String = row.get(2)?;
    let outcome: Option<String> = row.get(22)?;
    Ok(AlertRecord {
        id: row.get(0)?,
        customer_id: row.get(1)?,
        state: AlertState::parse(&state).ok_or_else(|| corrupt(format!("state `{state}`")))?,
        band: band_of_code(row.get(3)?)?,
        probability: row.get(4)?,
        previous_probability: row.get(5)?,
        percentile: row.get(6)?,
        revenue_at_risk: row.get(7)?,
        triggers: from_json(&row.get::<_, String>(8)?)?,
        reasons: from_json(&row.get::<_, String>(9)?)?,
        assignee: row.get(10)?,
        team: row.get(11)?,
        model_version: row.get(12)?,
        raised_at: row.get(13)?,
        updated_at: row.get(14)?,
        acknowledge_by: row.get(15)?,
        escalate_at: row.get(16)?,
        escalation_level: row.get(17)?,
        acknowledged_at: row.get(18)?,
        acknowledged_by: row.get(19)?,
        resolved_at: row.get(20)?,
        resolved_by: row.get(21)?,
        outcome: match outcome {
            None => None,
            Some(name) => {
                Some(Outcome::parse(&name).ok_or_else(|| corrupt(format!("outcome `{name}`")))?)
            }
        },
        note: row.get(23)?,
        score_count: row.get(24)?,
        lowering: from_json(&row.get::<_, String>(25)?)?,
    })
}

/// A change of state an agent makes, and the states it may start from.
struct Transition {
    kind: EventKind,
    /// What the error calls the change ("acknowledging") and the states it needs ("open").
    action: &'static str,
    expected: &'static str,
    allowed: fn(AlertState) -> bool,
}

/// Reads back an alert the current transaction has just written.
fn reload(connection: &Connection, id: i64) -> StoreResult<AlertRecord> {
    load_alert(connection, id)?.ok_or_else(|| StoreError::Backend {
        reason: format!("alert {id} vanished while being written"),
    })
}

fn load_alert(connection: &Connection, id: i64) -> StoreResult<Option<AlertRecord>> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1");
    Ok(connection
        .prepare_cached(&sql)?
        .query_row([id], alert_from_row)
        .optional()?)
}

/// Appends an event for `alert` (as it is now) to the log and returns it.
fn append_event(
    connection: &Connection,
    kind: EventKind,
    at: Timestamp,
    alert: AlertRecord,
) -> StoreResult<AlertEvent> {
    let mut insert = connection.prepare_cached(
        "INSERT INTO alert_events (alert_id, kind, at, band, customer_id, assignee, team, alert)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    insert.execute(params![
        alert.id,
        kind.as_str(),
        at,
        band_code(alert.band),
        alert.customer_id,
        alert.assignee,
        alert.team,
        json(&alert)?,
    ])?;
    let cursor = connection.last_insert_rowid() as u64;
    Ok(AlertEvent {
        cursor,
        kind,
        at,
        alert,
    })
}

fn trigger_texts(draft: &AlertDraft) -> Vec<String> {
    draft
        .triggers
        .iter()
        .map(|trigger: &Trigger| trigger.describe(draft.probability))
        .collect()
}

/// Returns the history, the unresolved alert, and the id of the most recent alert.
type History = (CustomerHistory, Option<AlertRecord>, Option<i64>);

/// Reads what the policy needs to know of a customer: their last score and their most recent
/// alert, which is their unresolved one when they have one.
fn history(
    connection: &Connection,
    known: &HashMap<String, LastScore>,
    overlay: &HashMap<String, LastScore>,
    customer_id: &str,
) -> StoreResult<History> {
    let known = overlay
        .get(customer_id)
        .or_else(|| known.get(customer_id))
        .map(|last| (last.score, last.last_alert_id));
    let Some((previous, last_alert_id)) = known else {
        return Ok((CustomerHistory::default(), None, None));
    };
    let last_alert = match last_alert_id {
        Some(id) => load_alert(connection, id)?,
        None => None,
    };
    let past = |alert: &AlertRecord| PastAlert {
        band: alert.band,
        raised_at: alert.raised_at,
    };
    let unresolved = last_alert
        .clone()
        .filter(|alert| alert.state != AlertState::Resolved);
    let history = CustomerHistory {
        previous: Some(previous),
        // An acknowledged alert is still the customer's alert: new scores update it.
        open_alert: unresolved.as_ref().map(past),
        last_alert: last_alert.as_ref().map(past),
    };
    Ok((history, unresolved, last_alert_id))
}

fn raise(
    connection: &Connection,
    score: &NewScore,
    draft: &AlertDraft,
    previous: Option<f64>,
) -> StoreResult<AlertEvent> {
    let triggers = trigger_texts(draft);
    connection
        .prepare_cached(
            "INSERT INTO alerts (customer_id, state, band, probability, previous_probability,
                percentile, revenue_at_risk, triggers, reasons, assignee, team, model_version,
                raised_at, updated_at, acknowledge_by, escalate_at, lowering)
             VALUES (?1, 'open', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?13,
                ?14)",
        )?
        .execute(params![
            score.customer_id,
            band_code(draft.band),
            draft.probability,
            previous,
            score.percentile,
            draft.revenue_at_risk,
            json(&triggers)?,
            json(&score.reasons)?,
            score.assignee,
            score.team,
            score.model_version,
            score.at,
            draft.acknowledge_by,
            json(&score.lowering)?,
        ])?;
    // The row as written, with the columns' defaults, rather than read back: a commit on the
    // request path does one statement less and parses no JSON.
    let alert = AlertRecord {
        id: connection.last_insert_rowid(),
        customer_id: score.customer_id.clone(),
        state: AlertState::Open,
        band: draft.band,
        probability: draft.probability,
        previous_probability: previous,
        percentile: score.percentile,
        revenue_at_risk: draft.revenue_at_risk,
        triggers,
        reasons: score.reasons.clone(),
        lowering: score.lowering.clone(),
        assignee: score.assignee.clone(),
        team: score.team.clone(),
        model_version: score.model_version.clone(),
        raised_at: score.at,
        updated_at: score.at,
        acknowledge_by: draft.acknowledge_by,
        escalate_at: draft.acknowledge_by,
        escalation_level: 0,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        resolved_by: None,
        outcome: None,
        note: None,
        score_count: 1,
    };
    append_event(connection, EventKind::Raised, score.at, alert)
}

/// Updates the customer's alert with a new score; returns the event when the change is
/// material (the band moved, the probability by at least [`MATERIAL_CHANGE`], or the owner).
fn update(
    connection: &Connection,
    score: &NewScore,
    draft: &AlertDraft,
    previous: Option<f64>,
    alert: &AlertRecord,
) -> StoreResult<Option<AlertEvent>> {
    // A not-yet-escalated alert follows the (possibly tighter) target of its new band; an
    // escalated one keeps its escalation clock.
    let escalate_at = if alert.escalation_level == 0 {
        draft.acknowledge_by
    } else {
        alert.escalate_at
    };
    let triggers = trigger_texts(draft);
    connection
        .prepare_cached(
            "UPDATE alerts SET band = ?2, probability = ?3, previous_probability = ?4,
                percentile = ?5, revenue_at_risk = ?6, triggers = ?7, reasons = ?8,
                assignee = COALESCE(?9, assignee), team = COALESCE(?10, team),
                model_version = ?11, updated_at = ?12, acknowledge_by = ?13, escalate_at = ?14,
                score_count = score_count + 1, lowering = ?15
             WHERE id = ?1",
        )?
        .execute(params![
            alert.id,
            band_code(draft.band),
            draft.probability,
            previous,
            score.percentile,
            draft.revenue_at_risk,
            json(&triggers)?,
            json(&score.reasons)?,
            score.assignee,
            score.team,
            score.model_version,
            score.at,
            draft.acknowledge_by,
            escalate_at,
            json(&score.lowering)?,
        ])?;
    // A new owner is material too: consoles filtered by assignee or team must hear of it.
    let reassigned = |given: &Option<String>, stored: &Option<String>| {
        given
            .as_ref()
            .is_some_and(|given| stored.as_ref() != Some(given))
    };
    let material = draft.band != alert.band
        || (draft.probability - alert.probability).abs() >= MATERIAL_CHANGE
        || reassigned(&score.assignee, &alert.assignee)
        || reassigned(&score.team, &alert.team);
    if !material {
        return Ok(None);
    }
    // The row as updated, as for a raise.
    let updated = AlertRecord {
        band: draft.band,
        probability: draft.probability,
        previous_probability: previous,
        percentile: score.percentile,
        revenue_at_risk: draft.revenue_at_risk,
        triggers,
        reasons: score.reasons.clone(),
        lowering: score.lowering.clone(),
        assignee: score.assignee.clone().or_else(|| alert.assignee.clone()),
        team: score.team.clone().or_else(|| alert.team.clone()),
        model_version: score.model_version.clone(),
        updated_at: score.at,
        acknowledge_by: draft.acknowledge_by,
        escalate_at,
        score_count: alert.score_count + 1,
        ..alert.clone()
    };
    append_event(connection, EventKind::Updated, score.at, updated).map(Some)
}

/// Builds the WHERE clause of `filter` over a table with `band`, `assignee`, `team`,
/// `customer_id` (and, for alerts, `state`) columns.
fn filter_clause(filter: &AlertFilter, with_states: bool) -> (String, Vec<SqlValue>) {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut values = Vec::new();
    if let Some(band) = filter.min_band {
        values.push(SqlValue::Integer(band_code(band)));
        clauses.push(format!("band >= ?{}", values.len()));
    }
    for (column, value) in [
        ("assignee", &filter.assignee),
        ("team", &filter.team),
        ("customer_id", &filter.customer_id),
    ] {
        if let Some(value) = value {
            values.push(SqlValue::Text(value.clone()));
            clauses.push(format!("{column} = ?{}", values.len()));
        }
    }
    if with_states && !filter.states.is_empty() {
        let mut placeholders = Vec::new();
        for state in &filter.states {
            values.push(SqlValue::Text(state.as_str().to_string()));
            placeholders.push(format!("?{}", values.len()));
        }
        clauses.push(format!("state IN ({})", placeholders.join(", ")));
    }
    (clauses.join(" AND "), values)
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
                    .push(change.map(|(alert_id, kind)| super::AlertChange { alert_id, kind }));
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
        in_transaction(&connection, || {
            let due: Vec<AlertRecord> = connection
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'open' AND escalate_at < ?1
                     ORDER BY escalate_at, id"
                ))?
                .query_map([now], alert_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut events = Vec::with_capacity(due.len());
            for alert in due {
                connection
                    .prepare_cached(
                        "UPDATE alerts SET escalation_level = escalation_level + 1,
                            escalate_at = ?2
                         WHERE id = ?1",
                    )?
                    .execute(params![alert.id, now + next_window(alert.band).max(1)])?;
                let escalated = reload(&connection, alert.id)?;
                events.push(append_event(
                    &connection,
                    EventKind::Escalated,
                    now,
                    escalated,
                )?);
            }
            Ok(events)
        })
    }

    fn get(&self, id: i64) -> StoreResult<Option<AlertRecord>> {
        self.read(|connection| load_alert(connection, id))
    }

    fn list(&self, filter: &AlertFilter, offset: u64, limit: u64) -> StoreResult<AlertPage> {
        self.read(|connection| {
            let (clause, mut values) = filter_clause(filter, true);
            let total: i64 = connection.query_row(
                &format!("SELECT COUNT(*) FROM alerts WHERE {clause}"),
                rusqlite::params_from_iter(&values),
                |row| row.get(0),
            )?;
            values.push(SqlValue::Integer(limit.min(i64::MAX as u64) as i64));
            values.push(SqlValue::Integer(offset.min(i64::MAX as u64) as i64));
            let sql = format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE {clause}
                 ORDER BY escalation_level DESC, revenue_at_risk IS NULL, revenue_at_risk DESC,
                    probability DESC, id
                 LIMIT ?{} OFFSET ?{}",
                values.len() - 1,
                values.len()
            );
            let alerts = connection
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(&values), alert_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(AlertPage {
                alerts,
                total: total as u64,
            })
        })
    }

    fn events_after(
        &self,
        cursor: u64,
        filter: &AlertFilter,
        limit: u64,
    ) -> StoreResult<Vec<AlertEvent>> {
        self.read(|connection| {
            let (clause, mut values) = filter_clause(filter, false);
            values.push(SqlValue::Integer(cursor.min(i64::MAX as u64) as i64));
            values.push(SqlValue::Integer(limit.min(i64::MAX as u64) as i64));
            let sql = format!(
                "SELECT cursor, kind, at, alert FROM alert_events
                 WHERE {clause} AND cursor > ?{} ORDER BY cursor LIMIT ?{}",
                values.len() - 1,
                values.len()
            );
            let events = connection
                .prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(&values), |row| {
                    let kind: String = row.get(1)?;
                    Ok(AlertEvent {
                        cursor: row.get::<_, i64>(0)? as u64,
                        kind: EventKind::parse(&kind)
                            .ok_or_else(|| corrupt(format!("event kind `{kind}`")))?,
                        at: row.get(2)?,
                        alert: from_json(&row.get::<_, String>(3)?)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(events)
        })
    }

    fn last_cursor(&self) -> StoreResult<u64> {
        self.read(|connection| {
            let cursor: i64 = connection.query_row(
                "SELECT COALESCE(MAX(cursor), 0) FROM alert_events",
                [],
                |row| row.get(0),
            )?;
            Ok(cursor as u64)
        })
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
            let alerts: Vec<AlertRecord> = connection
                .prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE customer_id = ?1
                     ORDER BY id DESC LIMIT {CUSTOMER_ALERTS}"
                ))?
                .query_map([customer_id], alert_from_row)?
                .collect::<rusqlite::Result<_>>()?;
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
        self.read(|connection| {
            let counts = |sql: &str| -> StoreResult<Vec<(String, u64)>> {
                let rows = connection
                    .prepare(sql)?
                    .query_map([], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows
                    .into_iter()
                    .map(|(label, count)| (label, count as u64))
                    .collect())
            };
            let count_of = |rows: &[(String, u64)], label: &str| {
                rows.iter()
                    .find(|(name, _)| name == label)
                    .map_or(0, |(_, count)| *count)
            };
            let states = counts("SELECT state, COUNT(*) FROM alerts GROUP BY state")?;
            let bands = counts("SELECT CAST(band AS TEXT), COUNT(*) FROM alerts GROUP BY band")?;
            let outcomes = counts(
                "SELECT outcome, COUNT(*) FROM alerts WHERE state = 'resolved' GROUP BY outcome",
            )?;
            let scalar = |sql: &str, bind: &[&dyn rusqlite::ToSql]| -> StoreResult<i64> {
                Ok(connection.query_row(sql, bind, |row| row.get(0))?)
            };
            let acknowledged = scalar(
                "SELECT COUNT(*) FROM alerts WHERE acknowledged_at IS NOT NULL",
                &[],
            )?;
            let median_seconds_to_acknowledge = if acknowledged == 0 {
                None
            } else {
                // The middle one (odd count) or the mean of the middle two (even count).
                let middle: Vec<i64> = connection
                    .prepare(
                        "SELECT acknowledged_at - raised_at FROM alerts
                         WHERE acknowledged_at IS NOT NULL ORDER BY 1 LIMIT ?1 OFFSET ?2",
                    )?
                    .query_map(
                        params![2 - acknowledged % 2, (acknowledged - 1) / 2],
                        |row| row.get(0),
                    )?
                    .collect::<rusqlite::Result<_>>()?;
                Some(middle.iter().sum::<i64>() as f64 / middle.len().max(1) as f64)
            };
            let resolved = count_of(&states, "resolved");
            let share = |outcome: Outcome| {
                (resolved > 0)
                    .then(|| count_of(&outcomes, outcome.as_str()) as f64 / resolved as f64)
            };
            Ok(AlertStats {
                total: states.iter().map(|(_, count)| count).sum(),
                by_state: AlertState::ALL
                    .into_iter()
                    .map(|state| (state, count_of(&states, state.as_str())))
                    .collect(),
                by_band: [RiskBand::Low, RiskBand::Medium, RiskBand::High]
                    .into_iter()
                    .map(|band| (band, count_of(&bands, &band_code(band).to_string())))
                    .collect(),
                by_outcome: Outcome::ALL
                    .into_iter()
                    .map(|outcome| (outcome, count_of(&outcomes, outcome.as_str())))
                    .collect(),
                median_seconds_to_acknowledge,
                retained_share: share(Outcome::Retained),
                churned_share: share(Outcome::Churned),
                escalated: scalar(
                    "SELECT COUNT(*) FROM alerts WHERE escalation_level > 0",
                    &[],
                )? as u64,
                overdue: scalar(
                    "SELECT COUNT(*) FROM alerts WHERE state = 'open' AND acknowledge_by < ?1",
                    &[&now],
                )? as u64,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use churn_core::AlertPolicy;

    use crate::alerts::StoredReason;

    use super::*;

    const HOUR: Timestamp = 3_600;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("alerts.sqlite"), Synchronous::Normal).unwrap();
        (dir, store)
    }

    fn score(customer: &str, probability: f64, band: RiskBand, at: Timestamp) -> NewScore {
        NewScore {
            customer_id: customer.into(),
            probability,
            band,
            percentile: probability * 100.0,
            customer_value: Some(70.0),
            assignee: Some("ana".into()),
            team: None,
            reasons: vec![],
            lowering: vec![],
            model_version: "v1".into(),
            at,
        }
    }

    fn record(store: &SqliteStore, scores: &[NewScore]) -> Recorded {
        let policy = AlertPolicy::default();
        let decide = |score: &NewScore, history: &CustomerHistory| score.decide(&policy, history);
        store.record_scores(scores, &decide).unwrap()
    }

    fn kinds(recorded: &Recorded) -> Vec<Option<EventKind>> {
        recorded
            .changes
            .iter()
            .map(|change| change.map(|change| change.kind))
            .collect()
    }

    #[test]
    fn a_score_raises_the_next_updates_and_a_rise_is_seen_against_the_stored_score() {
        let (_dir, store) = store();
        let first = record(
            &store,
            &[
                score("c1", 0.8, RiskBand::High, 1000),
                score("c2", 0.3, RiskBand::Medium, 1000),
                // The same customer again in the same commit: updates what was just raised.
                score("c1", 0.85, RiskBand::High, 1001),
            ],
        );
        assert_eq!(
            kinds(&first),
            [Some(EventKind::Raised), None, Some(EventKind::Updated)]
        );
        let alert = store.get(first.events[1].alert.id).unwrap().unwrap();
        assert_eq!(alert.score_count, 2);
        assert_eq!(alert.previous_probability, Some(0.8));
        // 0.85 × 70 × 12 months.
        assert!((alert.revenue_at_risk.unwrap() - 714.0).abs() < 1e-9);
        assert_eq!(alert.acknowledge_by, 1000 + HOUR);
        // c2 rose from 0.3 (stored) to 0.55: the rise rule needs the stored previous score.
        let second = record(&store, &[score("c2", 0.55, RiskBand::Medium, 2000)]);
        assert_eq!(kinds(&second), [Some(EventKind::Raised)]);
        assert_eq!(second.events[0].alert.previous_probability, Some(0.3));
        let cursors: Vec<u64> = first
            .events
            .iter()
            .chain(&second.events)
            .map(|event| event.cursor)
            .collect();
        assert_eq!(cursors, [1, 2, 3]);
        assert_eq!(store.last_cursor().unwrap(), 3);
    }

    /// Events carry the alert as built in memory, not read back: it must be the stored row.
    #[test]
    fn an_events_alert_is_the_row_as_stored() {
        let (_dir, store) = store();
        let mut first = score("e1", 0.8, RiskBand::High, 100);
        first.reasons = vec![StoredReason {
            feature: "Contract".into(),
            value: "Month-to-month".into(),
            contribution: 0.4,
            message: "Contract is Month-to-month".into(),
        }];
        let raised = record(&store, &[first]);
        let alert = raised.events[0].alert.clone();
        assert_eq!(Some(&alert), store.get(alert.id).unwrap().as_ref());
        store.acknowledge(alert.id, Some("bo"), 150).unwrap();
        // A new owner's team, no assignee: the stored assignee stays.
        let mut second = score("e1", 0.9, RiskBand::High, 200);
        (second.assignee, second.team) = (None, Some("retention".into()));
        let updated = record(&store, &[second]);
        assert_eq!(kinds(&updated), [Some(EventKind::Updated)]);
        let alert = updated.events[0].alert.clone();
        assert_eq!(
            (
                alert.state,
                alert.assignee.as_deref(),
                alert.team.as_deref()
            ),
            (AlertState::Acknowledged, Some("ana"), Some("retention"))
        );
        assert_eq!(
            (alert.score_count, alert.raised_at, alert.updated_at),
            (2, 100, 200)
        );
        assert_eq!(Some(&alert), store.get(alert.id).unwrap().as_ref());
    }

    #[test]
    fn quiet_last_scores_are_history_at_once_and_written_soon_and_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let stored = |path: &Path| -> i64 {
            let connection = Connection::open(history_path(path)).unwrap();
            connection
                .query_row("SELECT COUNT(*) FROM last_scores", [], |row| row.get(0))
                .unwrap()
        };
        {
            let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
            record(&store, &[score("q1", 0.3, RiskBand::Medium, 0)]);
            // Not committed yet, but already the previous score: a rise of 0.25 alerts.
            let rise = record(&store, &[score("q1", 0.55, RiskBand::Medium, 10)]);
            assert_eq!(kinds(&rise), [Some(EventKind::Raised)]);
            assert_eq!(rise.events[0].alert.previous_probability, Some(0.3));
            record(&store, &[score("q2", 0.1, RiskBand::Low, 0)]);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while stored(&path) < 2 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert_eq!(stored(&path), 2, "the background write");
            record(&store, &[score("q3", 0.1, RiskBand::Low, 0)]);
        }
        assert_eq!(stored(&path), 3, "written when the store closed");
    }

    #[test]
    fn pending_scores_written_over_several_transactions_keep_each_customers_newest() {
        let (dir, store) = store();
        let customers = 2 * SCORE_CHUNK + 17;
        let first = |customer: usize| customer as f64 / customers as f64 * 0.2;
        for customer in 0..customers {
            let id = format!("p{customer:05}");
            record(&store, &[score(&id, first(customer), RiskBand::Low, 0)]);
        }
        // Every third customer scores again later, lower: the later score is the last one, and
        // both are history.
        for customer in (0..customers).step_by(3) {
            let id = format!("p{customer:05}");
            record(
                &store,
                &[score(&id, first(customer) / 2.0, RiskBand::Low, 5)],
            );
        }
        store.scores.write_pending(&store.memory).unwrap();
        assert!(lock(&store.memory).pending.is_empty());
        let connection = Connection::open(history_path(&dir.path().join("alerts.sqlite"))).unwrap();
        let mut statement = connection
            .prepare("SELECT customer_id, probability FROM last_scores ORDER BY customer_id")
            .unwrap();
        let written: Vec<(String, f64)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(written.len(), customers);
        for (customer, (id, probability)) in written.iter().enumerate() {
            assert_eq!(id, &format!("p{customer:05}"));
            let newest = if customer % 3 == 0 {
                first(customer) / 2.0
            } else {
                first(customer)
            };
            assert_eq!(*probability, newest, "{id}");
        }
        let points: i64 = connection
            .query_row("SELECT COUNT(*) FROM score_history", [], |row| row.get(0))
            .unwrap();
        assert_eq!(points as usize, customers + customers.div_ceil(3));
    }

    #[test]
    fn scores_that_cannot_be_written_are_kept_for_the_next_write_before_newer_ones() {
        let (dir, store) = store();
        record(&store, &[score("w1", 0.1, RiskBand::Low, 0)]);
        record(&store, &[score("w2", 0.1, RiskBand::Low, 0)]);
        let hide = |sql: &str| lock(&store.scores.writer).execute_batch(sql).unwrap();
        hide("ALTER TABLE last_scores RENAME TO hidden");
        assert!(store.scores.write_pending(&store.memory).is_err());
        record(&store, &[score("w1", 0.2, RiskBand::Low, 5)]);
        let pending: Vec<(String, f64)> = lock(&store.memory)
            .pending
            .iter()
            .map(|pending| (pending.customer_id.clone(), pending.score.probability))
            .collect();
        assert_eq!(
            pending,
            [("w1".into(), 0.1), ("w2".into(), 0.1), ("w1".into(), 0.2)]
        );
        hide("ALTER TABLE hidden RENAME TO last_scores");
        store.scores.write_pending(&store.memory).unwrap();
        let connection = Connection::open(history_path(&dir.path().join("alerts.sqlite"))).unwrap();
        let last: f64 = connection
            .query_row(
                "SELECT probability FROM last_scores WHERE customer_id = 'w1'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(last, 0.2);
    }

    #[test]
    fn last_scores_lost_to_a_crash_come_back_from_the_alerts_and_newer_ones_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        {
            let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
            record(&store, &[score("lost", 0.8, RiskBand::High, 100)]);
            record(&store, &[score("newer", 0.9, RiskBand::High, 100)]);
            // Quiet (no rule fires), so the alert keeps its 0.9; the scores file gets 0.1.
            let quiet = record(&store, &[score("newer", 0.1, RiskBand::Low, 300)]);
            assert_eq!(kinds(&quiet), [None]);
        }
        // A crash before the background write of `lost`'s last score.
        Connection::open(history_path(&path))
            .unwrap()
            .execute("DELETE FROM last_scores WHERE customer_id = 'lost'", [])
            .unwrap();
        let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
        let again = record(&store, &[score("lost", 0.85, RiskBand::High, 200)]);
        assert_eq!(
            kinds(&again),
            [Some(EventKind::Updated)],
            "not a second alert"
        );
        assert_eq!(again.events[0].alert.previous_probability, Some(0.8));
        // A rise of 0.4 from the newer 0.1; from the alert's 0.9 it would be a fall.
        let rise = record(&store, &[score("newer", 0.5, RiskBand::Medium, 400)]);
        assert_eq!(kinds(&rise), [Some(EventKind::Updated)]);
        assert_eq!(rise.events[0].alert.previous_probability, Some(0.1));
    }

    #[test]
    fn a_store_from_before_the_scores_file_keeps_its_last_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        {
            // Schema 2, as churn wrote it before last scores moved out.
            let mut old = connect(&path).unwrap();
            use_wal(&old, &path).unwrap();
            migrate(&mut old, &path, &MIGRATIONS[..2]).unwrap();
            old.execute(
                "INSERT INTO customers
                    (customer_id, probability, band, scored_at, model_version)
                 VALUES ('old', 0.3, 2, 50, 'v0')",
                [],
            )
            .unwrap();
        }
        for _ in 0..2 {
            let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
            let last = store.customer("old", 10).unwrap().unwrap().last.unwrap();
            assert_eq!((last.at, last.probability), (50, 0.3));
            assert_eq!(last.model_version, "v0");
            let tables: i64 = store
                .writer()
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'customers'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(tables, 0, "dropped from the alert file");
        }
        let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
        // The rise rule sees the moved score.
        let rise = record(&store, &[score("old", 0.55, RiskBand::Medium, 100)]);
        assert_eq!(kinds(&rise), [Some(EventKind::Raised)]);
        assert_eq!(rise.events[0].alert.previous_probability, Some(0.3));
    }

    #[test]
    fn a_customer_keeps_every_score_in_its_history_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        let probabilities = |record: &CustomerRecord| -> Vec<(Timestamp, f64)> {
            record
                .history
                .iter()
                .map(|point| (point.at, point.probability))
                .collect()
        };
        {
            let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
            // Quiet, then raising (committed at once), then updating, then a second score in
            // the same second, which replaces the first.
            record(&store, &[score("h1", 0.2, RiskBand::Low, 100)]);
            record(&store, &[score("h1", 0.8, RiskBand::High, 200)]);
            record(&store, &[score("h1", 0.7, RiskBand::High, 300)]);
            record(&store, &[score("h1", 0.75, RiskBand::High, 300)]);
            record(&store, &[score("other", 0.1, RiskBand::Low, 150)]);
            // Seen at once, whether or not the history file has it yet.
            let now = store.customer("h1", 10).unwrap().unwrap();
            assert_eq!(now.last.as_ref().map(|last| last.probability), Some(0.75));
            assert_eq!(now.history.last(), now.last.as_ref());
            assert_eq!(now.alerts.len(), 1);
            assert_eq!(store.customer("nobody", 10).unwrap(), None);
        }
        let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
        let reopened = store.customer("h1", 10).unwrap().unwrap();
        assert_eq!(
            probabilities(&reopened),
            [(100, 0.2), (200, 0.8), (300, 0.75)]
        );
        assert_eq!(reopened.alerts[0].probability, 0.75);
        // The limit keeps the latest scores.
        let latest = store.customer("h1", 2).unwrap().unwrap();
        assert_eq!(probabilities(&latest), [(200, 0.8), (300, 0.75)]);
        assert!(dir.path().join("alerts.history.sqlite").is_file());
    }

    #[test]
    fn last_scores_spread_over_shards_and_are_found_again() {
        let mut known = LastScores::new();
        let version: Arc<str> = Arc::from("v1");
        let last = |probability: f64| LastScore {
            score: PastScore {
                probability,
                band: RiskBand::Low,
                at: 0,
            },
            model_version: version.clone(),
            last_alert_id: None,
        };
        let customers = 20_000;
        for customer in 0..customers {
            known.insert(format!("c{customer}"), last(f64::from(customer)));
        }
        for customer in 0..customers {
            let found = known
                .get(&format!("c{customer}"))
                .map(|last| last.score.probability);
            assert_eq!(found, Some(f64::from(customer)));
        }
        assert!(known.get("c20000").is_none());
        // An entry of a customer held is theirs, in whichever shard.
        let entry = known.entry("c7".into()).or_insert_with(|| last(-1.0));
        assert_eq!(entry.score.probability, 7.0);
        // Every shard holds about 1/256 of them (about 78 here): none more than twice that.
        let mean = customers as usize / LAST_SCORE_SHARDS;
        let largest = known.shards.iter().map(HashMap::len).max().unwrap_or(0);
        assert!(
            largest <= 2 * mean,
            "a shard of {largest} against {mean} on average"
        );
        assert_eq!(known.shards.iter().map(HashMap::len).sum::<usize>(), 20_000);
    }

    /// The store's score writer runs under SCHED_IDLE at nice 19 and its checkpoints, which
    /// hold the writer back, at the normal priority; read back from `/proc`. Every store open in
    /// this process has both threads, and all of them are checked.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_score_writer_yields_the_cpu_to_requests_and_checkpoints_do_not() {
        const SCHED_IDLE: i64 = 5;
        let (_dir, _store) = store();
        // Fields 19 and 41 of a thread's stat: its nice value and scheduling policy (the name in
        // field 2 has no spaces here).
        let priority = |stat: &str| -> Option<(i64, i64)> {
            let fields: Vec<&str> = stat.split_whitespace().collect();
            Some((fields.get(18)?.parse().ok()?, fields.get(40)?.parse().ok()?))
        };
        // Linux keeps 15 bytes of a thread's name.
        let priorities = |name: &str| -> Vec<(i64, i64)> {
            let tasks = std::fs::read_dir("/proc/self/task").unwrap();
            tasks
                .filter_map(|task| {
                    let task = task.ok()?.path();
                    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
                    if comm.trim() != name {
                        return None;
                    }
                    priority(&std::fs::read_to_string(task.join("stat")).ok()?)
                })
                .collect()
        };
        // The thread lowers its own priority as it starts: wait for it.
        let idle = (19, SCHED_IDLE);
        let started = std::time::Instant::now();
        let mut writers = priorities("churn-alert-sto");
        while (writers.is_empty() || writers.iter().any(|&writer| writer != idle))
            && started.elapsed() < std::time::Duration::from_secs(5)
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
            writers = priorities("churn-alert-sto");
        }
        assert!(!writers.is_empty(), "no score writer found");
        assert!(writers.iter().all(|&writer| writer == idle), "{writers:?}");
        // The checkpoints keep the priority of the thread that opened the store.
        let own = priority(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()).unwrap();
        let checkpoints = priorities("churn-alert-log");
        assert!(!checkpoints.is_empty(), "no checkpoint thread found");
        assert!(
            checkpoints.iter().all(|&checkpoint| checkpoint == own),
            "{checkpoints:?} against {own:?}"
        );
    }

    #[test]
    fn the_alert_log_is_started_over_while_commits_go_on() {
        let (dir, store) = store();
        // Twelve checkpoint ticks of a commit a millisecond, each raising an alert.
        let started = std::time::Instant::now();
        let mut commits: i64 = 0;
        while started.elapsed() < CHECKPOINT_INTERVAL * 12 {
            let customer = format!("c{commits:08}");
            let raised = record(&store, &[score(&customer, 0.9, RiskBand::High, 0)]);
            assert_eq!(kinds(&raised), [Some(EventKind::Raised)]);
            commits += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // A commit adds at least two pages to the log (its alert's row and its event's; about
        // six in all), so a log never started over would hold at least twice as many frames as
        // there were commits; started over each tick, it holds about half as many (measured).
        let connection = Connection::open(dir.path().join("alerts.sqlite")).unwrap();
        // While the store's own checkpoint runs, this one cannot and reports -1 frames: retry.
        let frames = (0..500)
            .find_map(|_| {
                let (busy, frames): (i64, i64) = connection
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .unwrap();
                if busy == 0 && frames >= 0 {
                    return Some(frames);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
                None
            })
            .expect("a checkpoint ran within a second");
        assert!(
            (0..2 * commits).contains(&frames),
            "{commits} commits left {frames} pages in the log"
        );
    }

    #[test]
    fn a_rescore_that_changes_nothing_but_the_owner_is_an_event() {
        let (_dir, store) = store();
        record(&store, &[score("o1", 0.9, RiskBand::High, 0)]);
        let same = record(&store, &[score("o1", 0.9, RiskBand::High, 10)]);
        assert!(same.events.is_empty(), "nothing material changed");
        let mut moved = score("o1", 0.9, RiskBand::High, 20);
        moved.assignee = Some("bo".into());
        let reassigned = record(&store, &[moved]);
        let events: Vec<EventKind> = reassigned.events.iter().map(|event| event.kind).collect();
        assert_eq!(events, [EventKind::Updated]);
        assert_eq!(reassigned.events[0].alert.assignee.as_deref(), Some("bo"));
        // A profile without an owner keeps the alert's.
        let mut unowned = score("o1", 0.9, RiskBand::High, 30);
        unowned.assignee = None;
        assert!(record(&store, &[unowned]).events.is_empty());
    }

    #[test]
    fn state_changes_follow_the_rules_and_name_the_alert() {
        let (_dir, store) = store();
        let raised = record(&store, &[score("c1", 0.9, RiskBand::High, 0)]);
        let id = raised.events[0].alert.id;
        assert_eq!(
            store
                .resolve(99, Outcome::Retained, None, None, 5)
                .unwrap_err(),
            StoreError::NotFound { id: "99".into() }
        );
        let acknowledged = store.acknowledge(id, Some("ana"), 600).unwrap();
        assert_eq!(acknowledged.alert.state, AlertState::Acknowledged);
        assert_eq!(acknowledged.alert.acknowledged_by.as_deref(), Some("ana"));
        let again = store.acknowledge(id, None, 700).unwrap_err();
        assert_eq!(
            again.to_string(),
            format!("alert `{id}` is acknowledged; acknowledging needs an open alert")
        );
        // Acknowledged is still the customer's alert: a new score updates it.
        let update = record(&store, &[score("c1", 0.95, RiskBand::High, 800)]);
        assert_eq!(kinds(&update), [Some(EventKind::Updated)]);
        let resolved = store
            .resolve(
                id,
                Outcome::Retained,
                Some("offered a discount"),
                Some("ana"),
                900,
            )
            .unwrap();
        assert_eq!(resolved.alert.outcome, Some(Outcome::Retained));
        assert_eq!(resolved.alert.note.as_deref(), Some("offered a discount"));
        assert!(matches!(
            store.resolve(id, Outcome::Churned, None, None, 1000),
            Err(StoreError::WrongState { .. })
        ));
        // Resolved, and within the cool-down: the same band raises nothing new.
        let quiet = record(&store, &[score("c1", 0.9, RiskBand::High, 2000)]);
        assert_eq!(kinds(&quiet), [None]);
        let kinds: Vec<EventKind> = store
            .events_after(0, &AlertFilter::default(), 100)
            .unwrap()
            .iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::Raised,
                EventKind::Acknowledged,
                EventKind::Updated,
                EventKind::Resolved
            ]
        );
    }

    #[test]
    fn the_store_refuses_a_second_unresolved_alert_for_a_customer() {
        let (_dir, store) = store();
        record(&store, &[score("c1", 0.9, RiskBand::High, 0)]);
        let writer = store.writer();
        let duplicate = writer.execute(
            "INSERT INTO alerts (customer_id, state, band, probability, percentile, triggers,
                reasons, model_version, raised_at, updated_at, acknowledge_by, escalate_at)
             VALUES ('c1', 'open', 3, 0.9, 90, '[]', '[]', 'v1', 1, 1, 1, 1)",
            [],
        );
        assert!(duplicate.unwrap_err().to_string().contains("UNIQUE"));
    }

    #[test]
    fn overdue_open_alerts_are_escalated_once_per_window_and_rank_first() {
        let (_dir, store) = store();
        let raised = record(
            &store,
            &[
                score("rich", 0.9, RiskBand::High, 0),
                score("late", 0.7, RiskBand::High, 0),
                score("acked", 0.9, RiskBand::High, 0),
            ],
        );
        let ids: Vec<i64> = raised.events.iter().map(|event| event.alert.id).collect();
        store.acknowledge(ids[2], None, 10).unwrap();
        let window = |_band: RiskBand| HOUR;
        assert!(store.escalate_overdue(HOUR, &window).unwrap().is_empty());
        // "rich" is due too, but a rescore moved nothing: both open ones pass the hour.
        let escalated = store.escalate_overdue(HOUR + 1, &window).unwrap();
        assert_eq!(escalated.len(), 2);
        assert!(
            escalated
                .iter()
                .all(|event| event.alert.escalation_level == 1)
        );
        assert!(
            store
                .escalate_overdue(HOUR + 2, &window)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.escalate_overdue(2 * HOUR + 2, &window).unwrap().len(),
            2
        );
        // Escalate only "late" once more, then it outranks "rich" despite less revenue.
        store
            .writer()
            .execute(
                "UPDATE alerts SET escalate_at = 0 WHERE customer_id = 'late'",
                [],
            )
            .unwrap();
        store.escalate_overdue(2 * HOUR + 3, &window).unwrap();
        let page = store
            .list(
                &AlertFilter {
                    states: vec![AlertState::Open],
                    ..AlertFilter::default()
                },
                0,
                10,
            )
            .unwrap();
        let order: Vec<&str> = page.alerts.iter().map(|a| a.customer_id.as_str()).collect();
        assert_eq!(order, ["late", "rich"]);
        assert_eq!(page.total, 2);
    }

    #[test]
    fn stats_count_states_outcomes_and_the_median_time_to_acknowledge() {
        let (_dir, store) = store();
        let scores: Vec<NewScore> = (0..5)
            .map(|i| score(&format!("c{i}"), 0.9, RiskBand::High, 0))
            .collect();
        let ids: Vec<i64> = record(&store, &scores)
            .events
            .iter()
            .map(|event| event.alert.id)
            .collect();
        // Acknowledged after 60, 120, 600, 900 s: median (120 + 600) / 2 = 360.
        for (id, after) in ids.iter().zip([60, 120, 600, 900]) {
            store.acknowledge(*id, None, after).unwrap();
        }
        store
            .resolve(ids[0], Outcome::Retained, None, None, 1000)
            .unwrap();
        store
            .resolve(ids[1], Outcome::Retained, None, None, 1000)
            .unwrap();
        store
            .resolve(ids[2], Outcome::Churned, None, None, 1000)
            .unwrap();
        store
            .resolve(ids[4], Outcome::FalseAlarm, None, None, 1000)
            .unwrap();
        let stats = store.stats(10 * HOUR).unwrap();
        assert_eq!(stats.total, 5);
        assert_eq!(
            stats.by_state,
            [
                (AlertState::Open, 0),
                (AlertState::Acknowledged, 1),
                (AlertState::Resolved, 4)
            ]
        );
        assert_eq!(stats.median_seconds_to_acknowledge, Some(360.0));
        assert_eq!(stats.retained_share, Some(0.5));
        assert_eq!(stats.churned_share, Some(0.25));
        assert_eq!(stats.by_band[2], (RiskBand::High, 5));
        assert_eq!(stats.by_outcome[3], (Outcome::NotReached, 0));
    }

    #[test]
    fn reopening_keeps_everything_and_a_foreign_or_newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.sqlite");
        {
            let store = SqliteStore::open(&path, Synchronous::Full).unwrap();
            record(&store, &[score("c1", 0.9, RiskBand::High, 0)]);
        }
        let store = SqliteStore::open(&path, Synchronous::Normal).unwrap();
        assert_eq!(store.last_cursor().unwrap(), 1);
        assert_eq!(store.list(&AlertFilter::default(), 0, 10).unwrap().total, 1);
        store
            .writer()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        drop(store);
        let newer = SqliteStore::open(&path, Synchronous::Normal).unwrap_err();
        assert!(newer.to_string().contains("schema version 99"), "{newer}");

        let garbage = dir.path().join("garbage.sqlite");
        std::fs::write(
            &garbage,
            b"this is not a database, just some bytes".repeat(200),
        )
        .unwrap();
        let error = SqliteStore::open(&garbage, Synchronous::Normal).unwrap_err();
        assert!(error.to_string().contains("not a database"), "{error}");
    }

    #[test]
    fn filters_select_by_band_owner_and_state() {
        let (_dir, store) = store();
        let mut medium = score("m", 0.5, RiskBand::Medium, 0);
        medium.assignee = Some("bo".into());
        let policy_free = |_: &NewScore, _: &CustomerHistory| {
            AlertDecision::Raise(AlertDraft {
                probability: 0.5,
                band: RiskBand::Medium,
                triggers: vec![],
                revenue_at_risk: None,
                acknowledge_by: 10,
            })
        };
        store.record_scores(&[medium], &policy_free).unwrap();
        record(&store, &[score("h", 0.9, RiskBand::High, 0)]);
        let only = |filter: AlertFilter| -> Vec<String> {
            store
                .list(&filter, 0, 10)
                .unwrap()
                .alerts
                .into_iter()
                .map(|alert| alert.customer_id)
                .collect()
        };
        let high = AlertFilter {
            min_band: Some(RiskBand::High),
            ..AlertFilter::default()
        };
        assert_eq!(only(high.clone()), ["h"]);
        let bo = AlertFilter {
            assignee: Some("bo".into()),
            ..AlertFilter::default()
        };
        assert_eq!(only(bo.clone()), ["m"]);
        let resolved = AlertFilter {
            states: vec![AlertState::Resolved],
            ..AlertFilter::default()
        };
        assert!(only(resolved).is_empty());
        let events = store.events_after(0, &high, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert!(high.matches(&events[0].alert) && !bo.matches(&events[0].alert));
    }
}
