//! Row mapping: how alerts, events and bands are written to and read from SQLite rows, and the
//! few statements every part of the store shares (load an alert, append an event, filter).

use churn_core::{RiskBand, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::alerts::{
    AlertEvent, AlertFilter, AlertRecord, AlertState, EventKind, Outcome, StoreError, StoreResult,
};

/// Returns a band's stored code: 1 low, 2 medium, 3 high.
pub(super) fn band_code(band: RiskBand) -> i64 {
    match band {
        RiskBand::Low => 1,
        RiskBand::Medium => 2,
        RiskBand::High => 3,
    }
}

/// Reads a stored band code; any other number is a corrupt row.
pub(super) fn band_of_code(code: i64) -> rusqlite::Result<RiskBand> {
    match code {
        1 => Ok(RiskBand::Low),
        2 => Ok(RiskBand::Medium),
        3 => Ok(RiskBand::High),
        _ => Err(corrupt(format!("band {code}"))),
    }
}

/// Returns the error of a row the store cannot have written.
fn corrupt(what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unexpected {what} in the alert store").into(),
    )
}

/// Encodes a column stored as JSON.
pub(super) fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|error| StoreError::Backend {
        reason: format!("cannot encode: {error}"),
    })
}

/// Decodes a column stored as JSON.
fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|error| corrupt(format!("JSON ({error})")))
}

/// The columns [`alert_from_row`] reads, in its order.
pub(super) const ALERT_COLUMNS: &str = "id, customer_id, state, band, probability, previous_probability, \
    percentile, revenue_at_risk, triggers, reasons, assignee, team, model_version, raised_at, \
    updated_at, acknowledge_by, escalate_at, escalation_level, acknowledged_at, acknowledged_by, \
    resolved_at, resolved_by, outcome, note, score_count, lowering";

/// Reads an alert from a row of [`ALERT_COLUMNS`].
pub(super) fn alert_from_row(row: &Row<'_>) -> rusqlite::Result<AlertRecord> {
    let state: String = row.get(2)?;
    let outcome: Option<String> = row.get(22)?;
    Ok(AlertRecord {
        id: row.get(0)?,
        customer_id: row.get(1)?,
        state: AlertState::parse(&state).ok_or_else(|| corrupt(format!("state `{state}`")))?,
        band: band_of_code(row.get(3)?)?,
        probability: row.get(4)?,
        previous_probability: row.get(5)?,
        percentile: row.get(6)?,
        revenue_at_risk: row.get(7)?,
        triggers: from_json(&row.get::<_, String>(8)?)?,
        reasons: from_json(&row.get::<_, String>(9)?)?,
        assignee: row.get(10)?,
        team: row.get(11)?,
        model_version: row.get(12)?,
        raised_at: row.get(13)?,
        updated_at: row.get(14)?,
        acknowledge_by: row.get(15)?,
        escalate_at: row.get(16)?,
        escalation_level: row.get(17)?,
        acknowledged_at: row.get(18)?,
        acknowledged_by: row.get(19)?,
        resolved_at: row.get(20)?,
        resolved_by: row.get(21)?,
        outcome: match outcome {
            None => None,
            Some(name) => {
                Some(Outcome::parse(&name).ok_or_else(|| corrupt(format!("outcome `{name}`")))?)
            }
        },
        note: row.get(23)?,
        score_count: row.get(24)?,
        lowering: from_json(&row.get::<_, String>(25)?)?,
    })
}

/// Reads an event from a row of `cursor, kind, at, alert` of the event log.
pub(super) fn event_from_row(row: &Row<'_>) -> rusqlite::Result<AlertEvent> {
    let kind: String = row.get(1)?;
    Ok(AlertEvent {
        cursor: row.get::<_, i64>(0)? as u64,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt(format!("event kind `{kind}`")))?,
        at: row.get(2)?,
        alert: from_json(&row.get::<_, String>(3)?)?,
    })
}

/// Reads back an alert the current transaction has just written.
pub(super) fn reload(connection: &Connection, id: i64) -> StoreResult<AlertRecord> {
    load_alert(connection, id)?.ok_or_else(|| StoreError::Backend {
        reason: format!("alert {id} vanished while being written"),
    })
}

/// Returns alert `id`, if it exists.
pub(super) fn load_alert(connection: &Connection, id: i64) -> StoreResult<Option<AlertRecord>> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1");
    Ok(connection
        .prepare_cached(&sql)?
        .query_row([id], alert_from_row)
        .optional()?)
}

/// Appends an event for `alert` (as it is now) to the log and returns it.
pub(super) fn append_event(
    connection: &Connection,
    kind: EventKind,
    at: Timestamp,
    alert: AlertRecord,
) -> StoreResult<AlertEvent> {
    let mut insert = connection.prepare_cached(
        "INSERT INTO alert_events (alert_id, kind, at, band, customer_id, assignee, team, alert)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    insert.execute(params![
        alert.id,
        kind.as_str(),
        at,
        band_code(alert.band),
        alert.customer_id,
        alert.assignee,
        alert.team,
        json(&alert)?,
    ])?;
    let cursor = connection.last_insert_rowid() as u64;
    Ok(AlertEvent {
        cursor,
        kind,
        at,
        alert,
    })
}

/// Builds the WHERE clause of `filter` over a table with `band`, `assignee`, `team`,
/// `customer_id` (and, for alerts, `state`) columns.
pub(super) fn filter_clause(filter: &AlertFilter, with_states: bool) -> (String, Vec<SqlValue>) {
    let mut clauses = vec!["1 = 1".to_string()];
    let mut values = Vec::new();
    if let Some(band) = filter.min_band {
        values.push(SqlValue::Integer(band_code(band)));
        clauses.push(format!("band >= ?{}", values.len()));
    }
    for (column, value) in [
        ("assignee", &filter.assignee),
        ("team", &filter.team),
        ("customer_id", &filter.customer_id),
    ] {
        if let Some(value) = value {
            values.push(SqlValue::Text(value.clone()));
            clauses.push(format!("{column} = ?{}", values.len()));
        }
    }
    if with_states && !filter.states.is_empty() {
        let mut placeholders = Vec::new();
        for state in &filter.states {
            values.push(SqlValue::Text(state.as_str().to_string()));
            placeholders.push(format!("?{}", values.len()));
        }
        clauses.push(format!("state IN ({})", placeholders.join(", ")));
    }
    (clauses.join(" AND "), values)
}
