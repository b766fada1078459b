//! The two files' schemas and their migrations, applied on open; how a connection is opened.
//!
//! The alert file holds alerts and the event log; the scores file (`NAME.history.sqlite`, beside
//! it) holds every customer's last score and their scores over time. `PRAGMA user_version` counts
//! the migrations a file has seen; a file newer than this churn is refused rather than guessed at.

use std::path::Path;
use std::sync::Arc;

use churn_core::PastScore;
use rusqlite::Connection;

use super::in_transaction;
use super::last_scores::PendingScore;
use super::rows::band_of_code;
use super::scores_file::{WRITE_LAST_SCORE, write_score};
use crate::alerts::{StoreError, StoreResult};

/// The schema, one migration per entry; `PRAGMA user_version` counts those applied.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 4: the audit log: who did what, numbered like the event log.
    "CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL,
        peer TEXT NOT NULL
    );
    CREATE INDEX audit_by_actor ON audit_log (actor, id);
    CREATE INDEX audit_by_action ON audit_log (action, id);",
];

/// The scores file's schema (`NAME.history.sqlite`, beside the store): every customer's scores
/// over time and their last one. A file of its own has a writer of its own, so these bulk writes
/// never wait on, nor hold up, an alert commit.
pub(super) const SCORE_MIGRATIONS: &[&str] = &[
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

/// Opens a connection to `path` as the store uses them: waiting up to five seconds for a lock,
/// foreign keys on. Errors do not name the file: the caller does.
pub(super) fn connect(path: &Path) -> StoreResult<Connection> {
    let connection = Connection::open(path).map_err(|error| {
        // rusqlite ends the message with the path, which the caller's error names already.
        let message = error.to_string();
        let path = format!(": {}", path.display());
        StoreError::Backend {
            reason: message.strip_suffix(&path).unwrap_or(&message).to_string(),
        }
    })?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.execute_batch("PRAGMA foreign_keys = ON;")?;
    Ok(connection)
}

/// Puts a connection's file in WAL mode, so readers never wait on the writer.
pub(super) fn use_wal(connection: &Connection) -> StoreResult<()> {
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            reason: format!("cannot use WAL mode (got {mode})"),
        });
    }
    Ok(())
}

/// Applies the migrations the file at `path` has not seen, each in its own transaction.
pub(super) fn migrate(
    connection: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> StoreResult<()> {
    let applied: usize = connection
        .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
        .map_err(|error| StoreError::Backend {
            reason: format!("cannot read the schema version: {error}"),
        })?
        .try_into()
        .unwrap_or(usize::MAX);
    if applied > migrations.len() {
        return Err(StoreError::Backend {
            reason: format!(
                "schema version {applied}, newer than this churn's {}",
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

/// Copies the last scores of a store from before schema 3, which kept them in the alert file,
/// to the scores file; migration 3 then drops them from the alert file. Repeating it after a
/// crash in between copies the same rows again.
pub(super) fn move_last_scores(alerts: &Connection, scores: &Connection) -> StoreResult<()> {
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
