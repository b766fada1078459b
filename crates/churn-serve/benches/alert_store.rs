//! The alert store's write path, on a real SQLite file: what one Score costs the store when it
//! raises nothing (90% of calls), when it raises an alert, and per score in a 100-score batch;
//! and how small the store's write-ahead log stays while commits go on (a figure printed, not
//! timed: the checkpoint thread starts the log over every tick).
//!
//! `cargo bench -p churn-serve --bench alert_store`

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use churn_core::{AlertPolicy, CustomerHistory, RiskBand};
use churn_serve::alerts::{AlertStore, NewScore, SqliteStore, StoredReason, Synchronous};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

static NEXT: AtomicU64 = AtomicU64::new(0);

fn score(band: RiskBand, probability: f64) -> NewScore {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let reasons = |sign: f64| -> Vec<StoredReason> {
        (0..5)
            .map(|i| StoredReason {
                feature: format!("feature_{i}"),
                value: "Month-to-month".into(),
                contribution: sign * 0.5 / f64::from(i + 1),
                message: "Contract is Month-to-month; customers like this churn more".into(),
            })
            .collect()
    };
    NewScore {
        customer_id: format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        probability,
        band,
        percentile: probability * 100.0,
        customer_value: Some(70.0),
        assignee: None,
        team: None,
        reasons: reasons(1.0),
        lowering: reasons(-1.0),
        model_version: "3dd5ca2e26a8d0fa".into(),
        at: 1_764_000_000,
    }
}

fn store_writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        SqliteStore::open(&dir.path().join("bench.sqlite"), Synchronous::Normal).expect("opens");
    let policy = AlertPolicy::default();
    let decide = |score: &NewScore, history: &CustomerHistory| score.decide(&policy, history);
    // A store that already knows 200,000 customers, as after a day of traffic.
    for _ in 0..200 {
        let scores: Vec<NewScore> = (0..1000).map(|_| score(RiskBand::Low, 0.1)).collect();
        store.record_scores(&scores, &decide).expect("records");
    }
    let mut group = c.benchmark_group("alert_store");
    group.bench_function("quiet_score_new_customer", |b| {
        b.iter_batched(
            || [score(RiskBand::Low, 0.1)],
            |scores| store.record_scores(&scores, &decide).expect("records"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("score_raising_an_alert", |b| {
        b.iter_batched(
            || [score(RiskBand::High, 0.9)],
            |scores| store.record_scores(&scores, &decide).expect("records"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("batch_of_100_scores_10_alerts", |b| {
        b.iter_batched(
            || {
                (0..100)
                    .map(|i| {
                        if i % 10 == 0 {
                            score(RiskBand::High, 0.9)
                        } else {
                            score(RiskBand::Low, 0.1)
                        }
                    })
                    .collect::<Vec<_>>()
            },
            |scores| store.record_scores(&scores, &decide).expect("records"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The store's checkpoint interval (`CHECKPOINT_INTERVAL` in `alerts/sqlite/background.rs`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Commits an alert a millisecond for twelve checkpoint ticks, then prints the pages left in the
/// alert file's write-ahead log per commit. A commit adds at least two pages to the log (its
/// alert's row and its event's; about six in all), so a log never started over would hold at
/// least two a commit; started over each tick, it holds well under one (0.5-0.7, measured).
fn log_started_over(_: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.sqlite");
    let store = SqliteStore::open(&path, Synchronous::Normal).expect("opens");
    let policy = AlertPolicy::default();
    let decide = |score: &NewScore, history: &CustomerHistory| score.decide(&policy, history);
    let started = Instant::now();
    let mut commits: i64 = 0;
    while started.elapsed() < CHECKPOINT_INTERVAL * 12 {
        let raised = store
            .record_scores(&[score(RiskBand::High, 0.9)], &decide)
            .expect("records");
        assert_eq!(raised.events.len(), 1, "every score raises an alert");
        commits += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let connection = rusqlite::Connection::open(&path).expect("opens the alert file");
    // While the store's own checkpoint runs, this one cannot and reports -1 frames: retry.
    let frames = (0..500).find_map(|_| {
        let (busy, frames): (i64, i64) = connection
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .expect("checkpoints");
        if busy == 0 && frames >= 0 {
            return Some(frames);
        }
        std::thread::sleep(Duration::from_millis(2));
        None
    });
    match frames {
        Some(frames) => println!(
            "alert_store/log_started_over: {commits} commits left {frames} pages in the log, \
             {:.2} a commit (at least 2 if the log were never started over)",
            frames as f64 / commits as f64
        ),
        None => println!("alert_store/log_started_over: no checkpoint ran within a second"),
    }
}

criterion_group!(benches, store_writes, log_started_over);
criterion_main!(benches);
