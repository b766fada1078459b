//! Last scores: every customer's latest score, kept in memory (sharded, so no map grows under
//! the lock every score takes for long) and written to the scores file in the background. They are
//! the baseline the policy's rise rule compares a new score against.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use churn_core::PastScore;
use rusqlite::Connection;

use super::rows::band_of_code;
use crate::alerts::{NewScore, StoreResult};

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
pub(super) struct Memory {
    /// Every customer's last score: what the scores file holds plus `pending`.
    pub(super) known: LastScores,
    /// The model version of the last score, shared by the customers it scored.
    pub(super) model_version: Arc<str>,
    /// Customers whose scores are being committed right now: their scores wait for that
    /// commit (the memory lock is not held during it, so other scores go on).
    pub(super) busy: HashSet<String>,
    /// Scores not yet written to the scores file (as last scores and history), oldest first.
    /// The writer takes them all at once, so it holds the lock that every score takes for no
    /// longer than a swap, whatever its CPU priority.
    pub(super) pending: Vec<PendingScore>,
}

impl Memory {
    /// Holds `known`, as read from the files on open; nothing pending, nobody busy.
    pub(super) fn new(known: LastScores) -> Self {
        Memory {
            known,
            model_version: Arc::from(""),
            busy: HashSet::new(),
            pending: Vec::new(),
        }
    }

    /// Returns a score as a last score, sharing the model version with the scores before it.
    pub(super) fn last_score(&mut self, score: &NewScore, last_alert_id: Option<i64>) -> LastScore {
        last_score(score, last_alert_id, &mut self.model_version)
    }

    /// Keeps last scores: known at once, written to the scores file in the background.
    pub(super) fn keep(&mut self, scores: HashMap<String, LastScore>) {
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
pub(super) fn last_score(
    score: &NewScore,
    last_alert_id: Option<i64>,
    version: &mut Arc<str>,
) -> LastScore {
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

/// Shards of [`LastScores`]: the most customers a growing shard moves at once is the whole
/// population over this.
const LAST_SCORE_SHARDS: usize = 256;

/// Every customer's last score, in shards. A map grows by moving everything it holds at once,
/// under the memory lock that every score takes: one map of 115,000 customers held every call
/// for 50-100 ms at 5,000 calls a second; a shard moves 1/256 of that.
#[derive(Debug)]
pub(super) struct LastScores {
    hasher: std::hash::RandomState,
    shards: Vec<HashMap<String, LastScore>>,
}

impl LastScores {
    pub(super) fn new() -> Self {
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

    pub(super) fn get(&self, customer: &str) -> Option<&LastScore> {
        self.shards[self.shard(customer)].get(customer)
    }

    pub(super) fn insert(&mut self, customer: String, last: LastScore) {
        let shard = self.shard(&customer);
        self.shards[shard].insert(customer, last);
    }

    pub(super) fn entry(
        &mut self,
        customer: String,
    ) -> std::collections::hash_map::Entry<'_, String, LastScore> {
        let shard = self.shard(&customer);
        self.shards[shard].entry(customer)
    }
}

/// A customer's last score, and their most recent alert.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LastScore {
    pub(super) score: PastScore,
    pub(super) model_version: Arc<str>,
    pub(super) last_alert_id: Option<i64>,
}

/// One score on its way to the scores file.
#[derive(Debug, Clone)]
pub(super) struct PendingScore {
    pub(super) customer_id: String,
    pub(super) score: PastScore,
    pub(super) model_version: Arc<str>,
}

/// Reads every customer's last score into memory: the scores file's, or their latest alert's
/// score when that is newer (its background write was lost to a crash), with that alert's id.
pub(super) fn load_last_scores(
    scores: &Connection,
    alerts: &Connection,
) -> StoreResult<LastScores> {
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

#[cfg(test)]
mod tests {
    use churn_core::RiskBand;

    use super::*;

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
}
