//! The store's background threads: one checkpoints the alert file, the other (the score writer)
//! writes pending last scores to the scores file. Nothing on a request path waits for either,
//! except that a checkpoint holds the alert writer back for a moment.

use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::last_scores::Memory;
use super::lock;
use super::scores_file::ScoreFile;
use crate::alerts::{StoreError, StoreResult};

/// How often the alert file is checkpointed, and pending scores written, on the scores file's
/// writer, which nothing on a request path waits for. A longer score interval writes each page of
/// the scores file once for the many scores that land on it meanwhile (random-key writes; at 3,000
/// new customers a second the scores file took about 11 MB/s of disk writes at 500 ms, 4 MB/s at
/// 2 s); a crash may lose that long of quiet scores, never an alert.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
const SCORE_WRITE_INTERVAL: Duration = Duration::from_secs(2);
/// WAL pages after which the writer checkpoints itself: only if the checkpoint thread cannot
/// keep up (SQLite's default is 1,000 pages, which would put an fsync on the writer every few
/// dozen commits).
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 50_000;

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
pub(super) fn start_maintenance(
    connection: Connection,
    writer: Arc<Mutex<Connection>>,
    memory: Arc<Mutex<Memory>>,
    scores: Arc<ScoreFile>,
) -> StoreResult<[Sender<()>; 2]> {
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
    interval: Duration,
    background: bool,
    mut tick: impl FnMut(bool) + Send + 'static,
) -> StoreResult<Sender<()>> {
    let (stop, stopped) = channel::<()>();
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
                    Err(RecvTimeoutError::Timeout)
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use crate::alerts::{SqliteStore, Synchronous};

    /// The store's score writer runs under SCHED_IDLE at nice 19 and its checkpoints, which
    /// hold the writer back, at the normal priority; read back from `/proc`. Every store open in
    /// this process has both threads, and all of them are checked.
    #[test]
    fn the_score_writer_yields_the_cpu_to_requests_and_checkpoints_do_not() {
        const SCHED_IDLE: i64 = 5;
        let dir = tempfile::tempdir().unwrap();
        let _store =
            SqliteStore::open(&dir.path().join("alerts.sqlite"), Synchronous::Normal).unwrap();
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
}
