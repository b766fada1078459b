//! The scores file, `NAME.history.sqlite` beside the alert file: every customer's last score and
//! their scores over time, written in the background by the score writer (see `background.rs`).
//! A file of its own has a writer of its own, so these bulk writes never wait on, nor hold up, an
//! alert commit.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, params};

use super::last_scores::{Memory, PendingScore};
use super::rows::{band_code, band_of_code};
use super::schema::{SCORE_MIGRATIONS, connect, migrate, use_wal};
use super::{in_transaction, lock, opening};
use crate::alerts::{ScorePoint, StoreResult};

/// Most pending scores written per transaction of the scores file.
pub(super) const SCORE_CHUNK: usize = 4_096;

/// The scores file, `NAME.history.sqlite` beside the store: every customer's last score, and
/// their score history (every last score the store keeps, one a second per customer at most).
/// Written on the store's thread, sorted by customer, in transactions of [`SCORE_CHUNK`]; the
/// scores of the last tick may be lost to a crash, never an alert (whose row holds its latest
/// score).
#[derive(Debug)]
pub(super) struct ScoreFile {
    path: PathBuf,
    pub(super) writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    /// Room for the pending scores that will come meanwhile, reserved while taking them: as
    /// many as were taken last time, so that scores rarely grow the vector under the lock.
    room: AtomicUsize,
}

/// Returns where the history of the store at `path` lives: `NAME.history.sqlite`.
pub(super) fn history_path(path: &Path) -> PathBuf {
    path.with_extension("history.sqlite")
}

impl ScoreFile {
    /// Opens (creating if needed) the scores file at `path` and brings its schema up to date;
    /// an error names the file.
    pub(super) fn open(path: &Path) -> StoreResult<Self> {
        let open = || -> StoreResult<Self> {
            let mut writer = connect(path)?;
            use_wal(&writer)?;
            writer.execute_batch("PRAGMA synchronous = NORMAL;")?;
            migrate(&mut writer, path, SCORE_MIGRATIONS)?;
            Ok(ScoreFile {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                reader: Mutex::new(connect(path)?),
                room: AtomicUsize::new(0),
            })
        };
        open().map_err(|error| opening(path, error))
    }

    /// Writes every pending score: the customer's last score and a history point, in
    /// transactions of [`SCORE_CHUNK`]. Memory is locked only to swap the pending scores out.
    pub(super) fn write_pending(&self, memory: &Mutex<Memory>) -> StoreResult<()> {
        // The connection first: two writers (the background one and a score waiting for room)
        // then write their batches in the order they took them, so an older score never
        // overwrites a newer one.
        let connection = lock(&self.writer);
        let room = Vec::with_capacity(self.room.load(Ordering::Relaxed));
        let mut scores = std::mem::replace(&mut lock(memory).pending, room);
        self.room.store(scores.len(), Ordering::Relaxed);
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

    /// Returns the customer's latest `limit` scores as written, oldest first.
    pub(super) fn scores(&self, customer_id: &str, limit: i64) -> StoreResult<Vec<ScorePoint>> {
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

/// Makes a score the customer's last one, and a point of their history: the two tables of the
/// scores file have the same columns.
pub(super) const WRITE_LAST_SCORE: &str = "INSERT OR REPLACE INTO last_scores
    (customer_id, scored_at, probability, band, model_version) VALUES (?1, ?2, ?3, ?4, ?5)";
pub(super) const WRITE_HISTORY_POINT: &str = "INSERT OR REPLACE INTO score_history
    (customer_id, scored_at, probability, band, model_version) VALUES (?1, ?2, ?3, ?4, ?5)";

/// Writes `score` with `sql`, [`WRITE_LAST_SCORE`] or [`WRITE_HISTORY_POINT`].
pub(super) fn write_score(
    connection: &Connection,
    sql: &str,
    score: &PendingScore,
) -> StoreResult<()> {
    connection.prepare_cached(sql)?.execute(params![
        score.customer_id,
        score.score.at,
        score.score.probability,
        band_code(score.score.band),
        &*score.model_version,
    ])?;
    Ok(())
}
