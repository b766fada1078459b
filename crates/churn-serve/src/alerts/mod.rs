//! Early-warning alerts in the server: the durable store behind one interface
//! ([`AlertStore`], whose contract every backend keeps; SQLite by default), and the [`AlertHub`]
//! that feeds it every score in commit order and fans the resulting events out to live streams.
//!
//! The decision itself is `churn-core`'s [`churn_core::AlertPolicy`], the same code as
//! `churn rescore --alerts`; this module only supplies the customer's history and keeps what the
//! policy decided.

#![warn(missing_docs)]

#[cfg(test)]
mod conformance;
mod hub;
mod sqlite;
mod store;

pub use hub::{AlertHub, HubSettings, StreamEnd, Subscription};
pub use sqlite::{SqliteStore, Synchronous};
pub use store::{AlertStore, Decide};

use std::path::PathBuf;

use churn_core::{AlertDecision, AlertPolicy, CustomerHistory, RiskBand, ScoreEvent, Timestamp};
use serde::{Deserialize, Serialize};

/// Result alias of the alert store.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// Why an alert operation failed. Each message names its cause once: none has a source, so
/// `{:#}` shows the same text as `{}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No alert has this id (the caller's fault).
    #[error("alert `{id}` does not exist")]
    NotFound {
        /// The id asked for, as given.
        id: String,
    },
    /// The alert's state does not allow the change (the caller's fault).
    #[error("alert `{id}` is {state}; {action} needs an {expected} alert")]
    WrongState {
        /// The alert's id.
        id: String,
        /// The alert's state: `open`, `acknowledged` or `resolved`.
        state: &'static str,
        /// The change refused: `acknowledging`, `resolving`.
        action: &'static str,
        /// The states the change needs.
        expected: &'static str,
    },
    /// The store cannot be opened, created or brought up to date: the server cannot start.
    #[error("cannot open alert store `{path}`: {reason}")]
    Open {
        /// The file that failed: the store, or the scores file beside it.
        path: PathBuf,
        /// What failed, without the path.
        reason: String,
    },
    /// The store failed while open (a full disk, a lost file): nothing of the call was kept,
    /// and a retry may succeed.
    #[error("alert store: {reason}")]
    Backend {
        /// What failed.
        reason: String,
    },
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
    /// Raised, and not yet acknowledged by anyone: it escalates when overdue.
    Open,
    /// An agent took it; it is still the customer's alert and new scores update it.
    Acknowledged,
    /// Closed with an outcome; the customer's next alert is a new one.
    Resolved,
}

impl AlertState {
    /// Every state, in the order of an alert's life.
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
    /// The customer stayed.
    Retained,
    /// The customer left.
    Churned,
    /// The customer was never at risk.
    FalseAlarm,
    /// Nobody could reach the customer.
    NotReached,
}

impl Outcome {
    /// Every outcome, in the order reports list them.
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
    /// A score raised a new alert.
    Raised,
    /// A score changed the alert materially (band, probability or owner).
    Updated,
    /// The alert went unacknowledged past its time and moved up a level.
    Escalated,
    /// An agent took the alert.
    Acknowledged,
    /// An agent closed the alert with its outcome.
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

    pub(crate) fn parse(name: &str) -> Option<Self> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// A reason as an alert keeps it: what the agent reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReason {
    /// The feature the reason is about.
    pub feature: String,
    /// The customer's value as given, as text (empty when missing).
    pub value: String,
    /// The contribution to the logit, in log-odds; positive raises risk.
    pub contribution: f64,
    /// The sentence the agent reads.
    pub message: String,
}

/// One alert, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The store's id of the alert, from 1.
    pub id: i64,
    /// The customer the alert is about.
    pub customer_id: String,
    /// Where the alert is in its life.
    pub state: AlertState,
    /// The band of the latest score.
    pub band: RiskBand,
    /// The churn probability of the latest score.
    pub probability: f64,
    /// The customer's score before the latest one, if they had one.
    pub previous_probability: Option<f64>,
    /// The latest score's rank among the training population, 0–100 (higher is riskier).
    pub percentile: f64,
    /// Probability × the customer's value × the policy's periods, when the value is known.
    pub revenue_at_risk: Option<f64>,
    /// Why the policy alerted, as sentences.
    pub triggers: Vec<String>,
    /// The reasons raising risk at the latest score, strongest first.
    pub reasons: Vec<StoredReason>,
    /// The reasons lowering risk at the latest score, strongest first (none in events logged
    /// before the store kept them).
    #[serde(default)]
    pub lowering: Vec<StoredReason>,
    /// Who owns the customer, from the latest score that named one.
    pub assignee: Option<String>,
    /// The owning team, from the latest score that named one.
    pub team: Option<String>,
    /// The model version of the latest score.
    pub model_version: String,
    /// When the alert was raised.
    pub raised_at: Timestamp,
    /// When a score last updated the alert.
    pub updated_at: Timestamp,
    /// When the alert becomes overdue if still unacknowledged.
    pub acknowledge_by: Timestamp,
    /// When the alert is next escalated if still unacknowledged.
    pub escalate_at: Timestamp,
    /// How many times the alert was escalated.
    pub escalation_level: u32,
    /// When an agent acknowledged the alert.
    pub acknowledged_at: Option<Timestamp>,
    /// Who acknowledged the alert, if they said.
    pub acknowledged_by: Option<String>,
    /// When the alert was resolved.
    pub resolved_at: Option<Timestamp>,
    /// Who resolved the alert, if they said.
    pub resolved_by: Option<String>,
    /// What happened to the customer, once resolved.
    pub outcome: Option<Outcome>,
    /// The agent's note at resolution.
    pub note: Option<String>,
    /// Scores the alert has seen, the one that raised it included.
    pub score_count: u32,
}

/// One change of one alert, in the store's event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Position in the log, from 1, increasing in commit order.
    pub cursor: u64,
    /// What changed.
    pub kind: EventKind,
    /// When it changed.
    pub at: Timestamp,
    /// The alert just after the change.
    pub alert: AlertRecord,
}

/// A new score to record: what the policy and the alert need of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScore {
    /// The customer scored.
    pub customer_id: String,
    /// The churn probability.
    pub probability: f64,
    /// The probability's band.
    pub band: RiskBand,
    /// The score's rank among the training population, 0–100 (higher is riskier).
    pub percentile: f64,
    /// The customer's value per period (the policy's value feature), when the profile has it.
    pub customer_value: Option<f64>,
    /// Who owns the customer, when the profile says.
    pub assignee: Option<String>,
    /// The owning team, when the profile says.
    pub team: Option<String>,
    /// The strongest reasons raising risk.
    pub reasons: Vec<StoredReason>,
    /// The strongest reasons lowering risk.
    pub lowering: Vec<StoredReason>,
    /// The model version that scored.
    pub model_version: String,
    /// When the score was given.
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
    /// The alert raised or updated.
    pub alert_id: i64,
    /// `Raised` or `Updated`.
    pub kind: EventKind,
}

/// The outcome of recording a batch of scores: one entry per score, and the events written, in
/// cursor order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    /// What each score did to its customer's alert, in the order of the scores; `None` for a
    /// score that changed none.
    pub changes: Vec<Option<AlertChange>>,
    /// The events committed, in cursor order (a change that was not material has none).
    pub events: Vec<AlertEvent>,
}

/// Which alerts to return; `None` or empty does not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Alerts of this band or higher.
    pub min_band: Option<RiskBand>,
    /// Alerts owned by this agent.
    pub assignee: Option<String>,
    /// Alerts owned by this team.
    pub team: Option<String>,
    /// Alerts of this customer.
    pub customer_id: Option<String>,
    /// Alerts in any of these states.
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
    /// The page's alerts, most urgent first.
    pub alerts: Vec<AlertRecord>,
    /// Alerts matching the filter over all pages.
    pub total: u64,
}

/// The numbers that show whether the loop is closed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertStats {
    /// Alerts ever raised.
    pub total: u64,
    /// Alerts per state, every state listed.
    pub by_state: Vec<(AlertState, u64)>,
    /// Alerts per band, every band listed.
    pub by_band: Vec<(RiskBand, u64)>,
    /// Resolved alerts per outcome, every outcome listed.
    pub by_outcome: Vec<(Outcome, u64)>,
    /// The median time from raise to acknowledgement, over acknowledged alerts.
    pub median_seconds_to_acknowledge: Option<f64>,
    /// The share of resolved alerts whose customer stayed.
    pub retained_share: Option<f64>,
    /// The share of resolved alerts whose customer left.
    pub churned_share: Option<f64>,
    /// Alerts escalated at least once.
    pub escalated: u64,
    /// Open alerts past their time to acknowledge.
    pub overdue: u64,
}

/// One score in a customer's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorePoint {
    /// When the score was given.
    pub at: Timestamp,
    /// The churn probability.
    pub probability: f64,
    /// The probability's band.
    pub band: RiskBand,
    /// The model version that scored.
    pub model_version: String,
}

/// What the store knows of one customer: the console's customer view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerRecord {
    /// The customer.
    pub customer_id: String,
    /// The latest score, which may not be written yet (it is kept in memory first).
    pub last: Option<ScorePoint>,
    /// Scores over time, oldest first, the latest included; one a second at most.
    pub history: Vec<ScorePoint>,
    /// The customer's alerts, newest first.
    pub alerts: Vec<AlertRecord>,
}
