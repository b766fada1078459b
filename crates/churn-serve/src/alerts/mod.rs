//! Early-warning alerts in the server: the durable store behind one interface
//! ([`AlertStore`], SQLite by default), and the [`AlertHub`] that feeds it every score in commit
//! order and fans the resulting events out to live streams.
//!
//! The decision itself is `churn-core`'s [`churn_core::AlertPolicy`], the same code as
//! `churn rescore --alerts`; this module only supplies the customer's history and keeps what the
//! policy decided.

mod hub;
mod sqlite;

pub use hub::{AlertHub, HubSettings, StreamEnd, Subscription};
pub use sqlite::{SqliteStore, Synchronous};

use churn_core::{AlertDecision, AlertPolicy, CustomerHistory, RiskBand, ScoreEvent, Timestamp};
use serde::{Deserialize, Serialize};

/// Result alias of the alert store.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// Why an alert operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("alert `{id}` does not exist")]
    NotFound { id: String },
    #[error("alert `{id}` is {state}; {action} needs an {expected} alert")]
    WrongState {
        id: String,
        state: &'static str,
        action: &'static str,
        expected: &'static str,
    },
    #[error("alert store: {reason}")]
    Backend { reason: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Backend {
            reason: error.to_string(),
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 3] = [
        AlertState::Open,
        AlertState::Acknowledged,
        AlertState::Resolved,
    ];

    /// Returns the state's stored name: `open`, `acknowledged`, `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        AlertState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// What happened to the customer after the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Retained,
    Churned,
    FalseAlarm,
    NotReached,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Retained,
        Outcome::Churned,
        Outcome::FalseAlarm,
        Outcome::NotReached,
    ];

    /// Returns the outcome's stored name: `retained`, `churned`, `false_alarm`, `not_reached`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Retained => "retained",
            Outcome::Churned => "churned",
            Outcome::FalseAlarm => "false_alarm",
            Outcome::NotReached => "not_reached",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
    }
}

/// What changed an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Raised,
    Updated,
    Escalated,
    Acknowledged,
    Resolved,
}

impl EventKind {
    const ALL: [EventKind; 5] = [
        EventKind::Raised,
        EventKind::Updated,
        EventKind::Escalated,
        EventKind::Acknowledged,
        EventKind::Resolved,
    ];

    /// Returns the kind's stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Raised => "raised",
            EventKind::Updated => "updated",
            EventKind::Escalated => "escalated",
            EventKind::Acknowledged => "acknowledged",
            EventKind::Resolved => "resolved",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A reason as an alert keeps it: what the agent reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReason {
    pub feature: String,
    /// The customer's value as given, as text (empty when missing).
    pub value: String,
    pub contribution: f64,
    pub message: String,
}

/// One alert, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: i64,
    pub customer_id: String,
    pub state: AlertState,
    pub band: RiskBand,
    pub probability: f64,
    pub previous_probability: Option<f64>,
    pub percentile: f64,
    pub revenue_at_risk: Option<f64>,
    pub triggers: Vec<String>,
    /// The reasons raising risk at the latest score, strongest first.
    pub reasons: Vec<StoredReason>,
    /// The reasons lowering risk at the latest score, strongest first (none in events logged
    /// before the store kept them).
    #[serde(default)]
    pub lowering: Vec<StoredReason>,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub model_version: String,
    pub raised_at: Timestamp,
    pub updated_at: Timestamp,
    pub acknowledge_by: Timestamp,
    /// When the alert is next escalated if still unacknowledged.
    pub escalate_at: Timestamp,
    pub escalation_level: u32,
    pub acknowledged_at: Option<Timestamp>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<Timestamp>,
    pub resolved_by: Option<String>,
    pub outcome: Option<Outcome>,
    pub note: Option<String>,
    pub score_count: u32,
}

/// One change of one alert, in the store's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Position in the log, from 1, increasing in commit order.
    pub cursor: u64,
    pub kind: EventKind,
    pub at: Timestamp,
    /// The alert just after the change.
    pub alert: AlertRecord,
}

/// A new score to record: what the policy and the alert need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScore {
    pub customer_id: String,
    pub probability: f64,
    pub band: RiskBand,
    pub percentile: f64,
    /// The customer's value per period (the policy's value feature), when the profile has it.
    pub customer_value: Option<f64>,
    pub assignee: Option<String>,
    pub team: Option<String>,
    /// The strongest reasons raising risk, then those lowering it.
    pub reasons: Vec<StoredReason>,
    pub lowering: Vec<StoredReason>,
    pub model_version: String,
    pub at: Timestamp,
}

impl NewScore {
    /// Asks `policy` what this score does, given the customer's history.
    pub fn decide(&self, policy: &AlertPolicy, history: &CustomerHistory) -> AlertDecision {
        let event = ScoreEvent {
            probability: self.probability,
            band: self.band,
            customer_value: self.customer_value,
            at: self.at,
        };
        policy.evaluate(&event, history)
    }
}

/// What recording one score did to the customer's alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertChange {
    pub alert_id: i64,
    /// `Raised` or `Updated`.
    pub kind: EventKind,
}

/// The outcome of recording a batch of scores: one entry per score, and the events written, in
/// cursor order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub changes: Vec<Option<AlertChange>>,
    pub events: Vec<AlertEvent>,
}

/// Which alerts to return; `None` or empty does not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub min_band: Option<RiskBand>,
    pub assignee: Option<String>,
    pub team: Option<String>,
    pub customer_id: Option<String>,
    pub states: Vec<AlertState>,
}

impl AlertFilter {
    /// Tells whether an alert passes the filter (the in-memory twin of the store's query).
    pub fn matches(&self, alert: &AlertRecord) -> bool {
        self.min_band.is_none_or(|band| alert.band >= band)
            && self
                .assignee
                .as_ref()
                .is_none_or(|who| alert.assignee.as_ref() == Some(who))
            && self
                .team
                .as_ref()
                .is_none_or(|team| alert.team.as_ref() == Some(team))
            && self
                .customer_id
                .as_ref()
                .is_none_or(|id| &alert.customer_id == id)
            && (self.states.is_empty() || self.states.contains(&alert.state))
    }
}

/// A page of alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// Alerts matching the filter over all pages.
    pub total: u64,
}

/// The numbers that show whether the loop is closed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertStats {
    pub total: u64,
    pub by_state: Vec<(AlertState, u64)>,
    pub by_band: Vec<(RiskBand, u64)>,
    pub by_outcome: Vec<(Outcome, u64)>,
    pub median_seconds_to_acknowledge: Option<f64>,
    pub retained_share: Option<f64>,
    pub churned_share: Option<f64>,
    pub escalated: u64,
    pub overdue: u64,
}

/// One score in a customer's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorePoint {
    pub at: Timestamp,
    pub probability: f64,
    pub band: RiskBand,
    pub model_version: String,
}

/// What the store knows of one customer: the console's customer view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerRecord {
    pub customer_id: String,
    /// The latest score, which may not be written yet (it is kept in memory first).
    pub last: Option<ScorePoint>,
    /// Scores over time, oldest first, the latest included; one a second at most.
    pub history: Vec<ScorePoint>,
    /// The customer's alerts, newest first.
    pub alerts: Vec<AlertRecord>,
}

/// Decides what a score does given the customer's history: the alert policy, bound to its
/// settings.
pub type Decide<'a> = &'a dyn Fn(&NewScore, &CustomerHistory) -> AlertDecision;

/// The durable home of alerts and of each customer's last score. Every write is one
/// transaction, committed before the method returns, and appends its events to the log in
/// commit order. A PostgreSQL backend implements the same methods.
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

    /// Writes whatever the store holds back (last scores that changed no alert are written in
    /// the background, within a fraction of a second); called when the server stops.
    fn flush(&self) -> StoreResult<()>;

    /// Marks an open alert acknowledged.
    fn acknowledge(&self, id: i64, by: Option<&str>, now: Timestamp) -> StoreResult<AlertEvent>;

    /// Resolves an open or acknowledged alert with its outcome.
    fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        note: Option<&str>,
        by: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<AlertEvent>;

    /// Escalates every open alert whose escalation time has passed; `next_window(band)` gives
    /// the seconds until it is escalated again.
    fn escalate_overdue(
        &self,
        now: Timestamp,
        next_window: &dyn Fn(RiskBand) -> i64,
    ) -> StoreResult<Vec<AlertEvent>>;

    /// Returns one alert.
    fn get(&self, id: i64) -> StoreResult<Option<AlertRecord>>;

    /// Returns alerts matching `filter`, most urgent first (escalation level, then revenue at
    /// risk, then id), skipping `offset`.
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

    /// Returns a customer's latest score, up to `history_limit` scores before it, and their
    /// alerts; `None` for a customer never scored.
    fn customer(
        &self,
        customer_id: &str,
        history_limit: u64,
    ) -> StoreResult<Option<CustomerRecord>>;
}
