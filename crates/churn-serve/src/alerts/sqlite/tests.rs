//! Tests of the SQLite backend's own machinery: its two files, the background writes of last
//! scores, migrations, the unique index, and the text of its errors; and the conformance suite
//! every backend runs, instantiated for SQLite.

use std::path::Path;

use churn_core::RiskBand;
use rusqlite::Connection;

use super::schema::{MIGRATIONS, connect, migrate, use_wal};
use super::scores_file::{SCORE_CHUNK, history_path};
use super::{SqliteStore, Synchronous, lock};
use crate::alerts::conformance::{Backend, kinds, record, score};
use crate::alerts::{AlertFilter, AlertStore, EventKind};

/// SQLite stores in a temporary folder, as `alerts.sqlite`.
struct Sqlite;

impl Backend for Sqlite {
    type Store = SqliteStore;
    type Place = tempfile::TempDir;

    fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = Self::reopen(&dir);
        (dir, store)
    }

    fn reopen(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("alerts.sqlite"), Synchronous::Normal).unwrap()
    }
}

mod conformance {
    crate::alerts::conformance::alert_store_conformance!(super::Sqlite);
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    Sqlite::fresh()
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
        use_wal(&old).unwrap();
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
fn a_customers_history_is_kept_in_the_scores_file_beside_the_store() {
    let (dir, store) = store();
    record(&store, &[score("h1", 0.2, RiskBand::Low, 100)]);
    record(&store, &[score("h1", 0.8, RiskBand::High, 200)]);
    store.flush().unwrap();
    assert!(dir.path().join("alerts.history.sqlite").is_file());
    let points: i64 = Connection::open(history_path(&dir.path().join("alerts.sqlite")))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM score_history WHERE customer_id = 'h1'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(points, 2);
}

/// Issue 32: the text of an alert store that cannot be opened, as `churn serve` prints it
/// (`{:#}` through anyhow): the store file once, then why, with nothing said twice.
#[test]
fn a_store_that_cannot_be_opened_names_its_file_and_says_why_once() {
    let shown = |path: &Path| {
        let error = SqliteStore::open(path, Synchronous::Normal).unwrap_err();
        format!("{:#}", anyhow::Error::from(crate::ServeError::from(error)))
    };
    let dir = tempfile::tempdir().unwrap();
    // A folder where the file should be.
    let folder = dir.path().join("alerts.sqlite");
    std::fs::create_dir(&folder).unwrap();
    assert_eq!(
        shown(&folder),
        format!(
            "cannot open alert store `{}`: unable to open database file",
            folder.display()
        )
    );
    // A file where its folder should be.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let beneath = file.join("alerts.sqlite");
    assert_eq!(
        shown(&beneath),
        format!(
            "cannot open alert store `{}`: cannot create its folder `{}`: File exists (os error 17)",
            beneath.display(),
            file.display()
        )
    );
    // Not a database at all.
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, b"not a database".repeat(200)).unwrap();
    assert_eq!(
        shown(&garbage),
        format!(
            "cannot open alert store `{}`: file is not a database",
            garbage.display()
        )
    );
    // The scores file beside the store is the one that fails: it is the one named.
    let beside = dir.path().join("beside");
    std::fs::create_dir_all(beside.join("alerts.history.sqlite")).unwrap();
    assert_eq!(
        shown(&beside.join("alerts.sqlite")),
        format!(
            "cannot open alert store `{}`: unable to open database file",
            beside.join("alerts.history.sqlite").display()
        )
    );
}
