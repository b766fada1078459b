//! The writes a score or an agent makes to the alert file, inside the caller's transaction:
//! reading a customer's history, raising and updating their alert, changing its state, and
//! escalating overdue alerts.

use std::collections::HashMap;

use churn_core::{AlertDraft, CustomerHistory, PastAlert, RiskBand, Timestamp, Trigger};
use rusqlite::{Connection, params};

use super::last_scores::LastScore;
use super::rows::{
    ALERT_COLUMNS, alert_from_row, append_event, band_code, json, load_alert, reload,
};
use crate::alerts::store::MATERIAL_CHANGE;
use crate::alerts::{AlertEvent, AlertRecord, AlertState, EventKind, NewScore, StoreResult};

/// A change of state an agent makes, and the states it may start from.
pub(super) struct Transition {
    pub(super) kind: EventKind,
    /// What the error calls the change ("acknowledging") and the states it needs ("open").
    pub(super) action: &'static str,
    pub(super) expected: &'static str,
    pub(super) allowed: fn(AlertState) -> bool,
}

/// Returns the sentences saying why the policy alerted.
fn trigger_texts(draft: &AlertDraft) -> Vec<String> {
    draft
        .triggers
        .iter()
        .map(|trigger: &Trigger| trigger.describe(draft.probability))
        .collect()
}

/// Returns the history, the unresolved alert, and the id of the most recent alert.
pub(super) type History = (CustomerHistory, Option<AlertRecord>, Option<i64>);

/// Reads what the policy needs to know of a customer: their last score and their most recent
/// alert, which is their unresolved one when they have one.
pub(super) fn history(
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

/// Raises a new alert for the customer of `score`, as `draft` says.
pub(super) fn raise(
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
pub(super) fn update(
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

/// Escalates every open alert whose escalation time is before `now`, in order of escalation time
/// then id, and logs an event for each.
pub(super) fn escalate_due(
    connection: &Connection,
    now: Timestamp,
    next_window: &dyn Fn(RiskBand) -> i64,
) -> StoreResult<Vec<AlertEvent>> {
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
        let escalated = reload(connection, alert.id)?;
        events.push(append_event(
            connection,
            EventKind::Escalated,
            now,
            escalated,
        )?);
    }
    Ok(events)
}
