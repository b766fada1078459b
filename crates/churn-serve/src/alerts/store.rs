//! What every alert store guarantees: the [`AlertStore`] trait and its contract. The hub, the
//! gRPC alert service and the console rely on this contract and on nothing a backend does beyond
//! it; the conformance suite (`conformance.rs`) checks it for every backend.

use churn_core::{AlertDecision, CustomerHistory, RiskBand, Timestamp};

use crate::audit::{AuditEntry, AuditFilter, AuditRange};

use super::{
    AlertEvent, AlertFilter, AlertPage, AlertRecord, AlertStats, CustomerRecord, NewScore, Outcome,
    Recorded, StoreResult,
};

/// Decides what a score does given the customer's history: the alert policy, bound to its
/// settings.
pub type Decide<'a> = &'a dyn Fn(&NewScore, &CustomerHistory) -> AlertDecision;

/// A rescore moving the probability less than this, in the same band and with the same owner,
/// updates the alert without an event: consoles need not hear of every nightly rescore that
/// changes nothing.
pub(crate) const MATERIAL_CHANGE: f64 = 0.01;

/// The durable home of alerts and of each customer's last score. SQLite
/// ([`SqliteStore`](super::SqliteStore)) is the one backend today; a PostgreSQL backend will
/// implement the same methods and pass the same conformance suite.
///
/// # Contract
///
/// **One unresolved alert per customer.** A customer has at most one alert that is not resolved
/// (open or acknowledged), whatever the callers do and however many write at once. A score for a
/// customer with such an alert updates it, whether the policy said `Update` or `Raise`; a new alert
/// is raised only when the customer has none unresolved. Acknowledging keeps the alert the
/// customer's; resolving ends it.
///
/// **Writes are transactions, committed before the method returns.** Each call that changes alerts
/// (`record_scores`, `acknowledge`, `resolve`, `escalate_overdue`) commits all of its changes, and
/// their events, at once or none of them: an error leaves no trace of the call. What a call returns
/// is what was committed: an event's alert is the alert as stored just after the change.
///
/// **Events in cursor order with no gap.** Every change of an alert appends exactly one
/// [`AlertEvent`] to one log: a raise, a material update (the band, the probability by at least
/// 0.01, or the owner moved), an escalation, an acknowledgement, a resolution. Cursors start at 1
/// and go up by one per event, in commit order; the events of one call are consecutive, in the
/// order of its scores (or alerts). An event is readable through `events_after` once its call has
/// returned, and never before an event with a lower cursor: a reader that has seen cursor `c` never
/// later finds a new event at or below `c`. Live streams resume from a cursor on this promise
/// alone.
///
/// **Last scores are the baseline.** The store keeps every customer's last score, whichever method
/// recorded it (`record_scores` or `record_quiet`), and gives it to `decide` as
/// [`CustomerHistory::previous`] for the customer's next score: what the policy's rise rule
/// compares against, and an alert's `previous_probability`. A score is the baseline for the next
/// one at once, even before it is durable, and within one `record_scores` call a score sees the
/// scores before it. The history also names the customer's most recent alert (`last_alert`, for the
/// cool-down) and their unresolved one (`open_alert`).
///
/// **What a crash may lose.** Never a committed alert or event. Last scores that changed no alert
/// may be written in the background (SQLite: every two seconds, to the scores file beside the
/// store); a crash may lose those of the last moments, so after a restart a customer's baseline may
/// be an older score. It is never older than the latest score of the customer's most recent alert,
/// which the alert itself holds. A clean stop ([`AlertStore::flush`], and dropping the store) loses
/// nothing.
///
/// **The audit log beside the alerts.** `append_audit` numbers its entries from 1 up by one per
/// entry, in commit order with no gap, like event cursors, and commits a whole batch at once or
/// none of it; the entries given keep their order, and the ids they were given are ignored. An
/// entry is readable once its call has returned, and never before an entry with a lower id.
/// Entries are never changed or deleted through the trait.
pub trait AlertStore: Send + Sync + std::fmt::Debug {
    /// Records scores: for each, in order, reads the customer's history, asks `decide`, raises
    /// or updates the alert, and keeps the score as the customer's last. Every alert change is
    /// committed (in one transaction per call) before this returns; a last score that changed
    /// no alert may be written shortly after, and is history for later scores at once.
    fn record_scores(&self, scores: &[NewScore], decide: Decide<'_>) -> StoreResult<Recorded>;

    /// Records scores without writing now if none changes an alert and the store can tell
    /// cheaply (the usual case); `None` means call `record_scores`. Writes nothing durable and
    /// produces no event, so callers need not serialise it with other writes.
    fn record_quiet(&self, _scores: &[NewScore], _decide: Decide<'_>) -> Option<Recorded> {
        None
    }

    /// Writes whatever the store holds back (last scores that changed no alert may be written
    /// in the background, within seconds); called when the server stops.
    fn flush(&self) -> StoreResult<()>;

    /// Marks an open alert acknowledged; `NotFound` for an unknown id, `WrongState` for an alert
    /// that is not open.
    fn acknowledge(&self, id: i64, by: Option<&str>, now: Timestamp) -> StoreResult<AlertEvent>;

    /// Resolves an open or acknowledged alert with its outcome; `NotFound` for an unknown id,
    /// `WrongState` for an alert resolved already.
    fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        note: Option<&str>,
        by: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent>;

    /// Escalates every open alert whose escalation time has passed (is before `now`), in order
    /// of escalation time then id, one event each; `next_window(band)` gives the seconds until
    /// it is escalated again (at least one).
    fn escalate_overdue(
        &self,
        now: Timestamp,
        next_window: &dyn Fn(RiskBand) -> i64,
    ) -> StoreResult<Vec<AlertEvent>>;

    /// Returns one alert.
    fn get(&self, id: i64) -> StoreResult<Option<AlertRecord>>;

    /// Returns up to `limit` alerts matching `filter`, most urgent first (highest escalation
    /// level, then most revenue at risk with unknown last, then highest probability, then
    /// oldest), skipping `offset`; the page's total counts every match.
    fn list(&self, filter: &AlertFilter, offset: u64, limit: u64) -> StoreResult<AlertPage>;

    /// Returns up to `limit` events after `cursor` whose alert matches `filter`, in cursor order.
    fn events_after(
        &self,
        cursor: u64,
        filter: &AlertFilter,
        limit: u64,
    ) -> StoreResult<Vec<AlertEvent>>;

    /// Returns the last cursor written (0 for an empty log).
    fn last_cursor(&self) -> StoreResult<u64>;

    /// Counts alerts for `AlertStats`.
    fn stats(&self, now: Timestamp) -> StoreResult<AlertStats>;

    /// Returns a customer's latest score (even one not yet durable), their latest
    /// `history_limit` scores oldest first (one a second at most, the latest included), and
    /// their alerts newest first; `None` for a customer the store knows nothing of.
    fn customer(
        &self,
        customer_id: &str,
        history_limit: u64,
    ) -> StoreResult<Option<CustomerRecord>>;

    /// Appends audit entries in one transaction, numbering them in order after the last; returns
    /// the id of the last one written (the last id in the log when `entries` is empty).
    fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<u64>;

    /// Returns up to `limit` audit entries matching `filter` in `range`: newest first for
    /// [`AuditRange::Newest`] and [`AuditRange::Before`], oldest first for [`AuditRange::After`].
    fn audit_entries(
        &self,
        filter: &AuditFilter,
        range: AuditRange,
        limit: u64,
    ) -> StoreResult<Vec<AuditEntry>>;
}
