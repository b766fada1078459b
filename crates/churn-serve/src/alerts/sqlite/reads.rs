//! The store's reads, each on a read connection of its own: pages of alerts, the event log,
//! a customer's alerts, and the numbers of `AlertStats`.

use churn_core::{RiskBand, Timestamp};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};

use super::rows::{ALERT_COLUMNS, alert_from_row, band_code, event_from_row, filter_clause};
use crate::alerts::{
    AlertEvent, AlertFilter, AlertPage, AlertRecord, AlertState, AlertStats, Outcome, StoreResult,
};
use crate::audit::{AuditEntry, AuditFilter, AuditRange};

/// A customer's alerts the customer view lists, newest first.
const CUSTOMER_ALERTS: u32 = 50;

/// Returns a page of the alerts matching `filter`, most urgent first.
pub(super) fn list(
    connection: &Connection,
    filter: &AlertFilter,
    offset: u64,
    limit: u64,
) -> StoreResult<AlertPage> {
    let (clause, mut values) = filter_clause(filter, true);
    let total: i64 = connection.query_row(
        &format!("SELECT COUNT(*) FROM alerts WHERE {clause}"),
        rusqlite::params_from_iter(&values),
        |row| row.get(0),
    )?;
    values.push(SqlValue::Integer(limit.min(i64::MAX as u64) as i64));
    values.push(SqlValue::Integer(offset.min(i64::MAX as u64) as i64));
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE {clause}
         ORDER BY escalation_level DESC, revenue_at_risk IS NULL, revenue_at_risk DESC,
            probability DESC, id
         LIMIT ?{} OFFSET ?{}",
        values.len() - 1,
        values.len()
    );
    let alerts = connection
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(&values), alert_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(AlertPage {
        alerts,
        total: total as u64,
    })
}

/// Returns up to `limit` events after `cursor` whose alert matches `filter`, in cursor order.
pub(super) fn events_after(
    connection: &Connection,
    cursor: u64,
    filter: &AlertFilter,
    limit: u64,
) -> StoreResult<Vec<AlertEvent>> {
    let (clause, mut values) = filter_clause(filter, false);
    values.push(SqlValue::Integer(cursor.min(i64::MAX as u64) as i64));
    values.push(SqlValue::Integer(limit.min(i64::MAX as u64) as i64));
    let sql = format!(
        "SELECT cursor, kind, at, alert FROM alert_events
         WHERE {clause} AND cursor > ?{} ORDER BY cursor LIMIT ?{}",
        values.len() - 1,
        values.len()
    );
    let events = connection
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(&values), event_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(events)
}

/// Returns the last cursor of the event log (0 when empty).
pub(super) fn last_cursor(connection: &Connection) -> StoreResult<u64> {
    let cursor: i64 = connection.query_row(
        "SELECT COALESCE(MAX(cursor), 0) FROM alert_events",
        [],
        |row| row.get(0),
    )?;
    Ok(cursor as u64)
}

/// Returns the customer's latest alerts, newest first.
pub(super) fn customer_alerts(
    connection: &Connection,
    customer_id: &str,
) -> StoreResult<Vec<AlertRecord>> {
    Ok(connection
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE customer_id = ?1
             ORDER BY id DESC LIMIT {CUSTOMER_ALERTS}"
        ))?
        .query_map([customer_id], alert_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Counts alerts by state, band and outcome, and the loop's timings, at `now`.
pub(super) fn stats(connection: &Connection, now: Timestamp) -> StoreResult<AlertStats> {
    let counts = |sql: &str| -> StoreResult<Vec<(String, u64)>> {
        let rows = connection
            .prepare(sql)?
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .map(|(label, count)| (label, count as u64))
            .collect())
    };
    let count_of = |rows: &[(String, u64)], label: &str| {
        rows.iter()
            .find(|(name, _)| name == label)
            .map_or(0, |(_, count)| *count)
    };
    let states = counts("SELECT state, COUNT(*) FROM alerts GROUP BY state")?;
    let bands = counts("SELECT CAST(band AS TEXT), COUNT(*) FROM alerts GROUP BY band")?;
    let outcomes =
        counts("SELECT outcome, COUNT(*) FROM alerts WHERE state = 'resolved' GROUP BY outcome")?;
    let scalar = |sql: &str, bind: &[&dyn rusqlite::ToSql]| -> StoreResult<i64> {
        Ok(connection.query_row(sql, bind, |row| row.get(0))?)
    };
    let acknowledged = scalar(
        "SELECT COUNT(*) FROM alerts WHERE acknowledged_at IS NOT NULL",
        &[],
    )?;
    let median_seconds_to_acknowledge = if acknowledged == 0 {
        None
    } else {
        // The middle one (odd count) or the mean of the middle two (even count).
        let middle: Vec<i64> = connection
            .prepare(
                "SELECT acknowledged_at - raised_at FROM alerts
                 WHERE acknowledged_at IS NOT NULL ORDER BY 1 LIMIT ?1 OFFSET ?2",
            )?
            .query_map(
                params![2 - acknowledged % 2, (acknowledged - 1) / 2],
                |row| row.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        Some(middle.iter().sum::<i64>() as f64 / middle.len().max(1) as f64)
    };
    let resolved = count_of(&states, "resolved");
    let share = |outcome: Outcome| {
        (resolved > 0).then(|| count_of(&outcomes, outcome.as_str()) as f64 / resolved as f64)
    };
    Ok(AlertStats {
        total: states.iter().map(|(_, count)| count).sum(),
        by_state: AlertState::ALL
            .into_iter()
            .map(|state| (state, count_of(&states, state.as_str())))
            .collect(),
        by_band: [RiskBand::Low, RiskBand::Medium, RiskBand::High]
            .into_iter()
            .map(|band| (band, count_of(&bands, &band_code(band).to_string())))
            .collect(),
        by_outcome: Outcome::ALL
            .into_iter()
            .map(|outcome| (outcome, count_of(&outcomes, outcome.as_str())))
            .collect(),
        median_seconds_to_acknowledge,
        retained_share: share(Outcome::Retained),
        churned_share: share(Outcome::Churned),
        escalated: scalar(
            "SELECT COUNT(*) FROM alerts WHERE escalation_level > 0",
            &[],
        )? as u64,
        overdue: scalar(
            "SELECT COUNT(*) FROM alerts WHERE state = 'open' AND acknowledge_by < ?1",
            &[&now],
        )? as u64,
    })
}

/// Returns up to `limit` audit entries matching `filter` in `range`.
pub(super) fn audit_entries(
    connection: &Connection,
    filter: &AuditFilter,
    range: AuditRange,
    limit: u64,
) -> StoreResult<Vec<AuditEntry>> {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if let Some(actor) = &filter.actor {
        values.push(SqlValue::Text(actor.clone()));
        clauses.push(format!("actor = ?{}", values.len()));
    }
    if let Some(action) = &filter.action {
        values.push(SqlValue::Text(action.clone()));
        clauses.push(format!("action = ?{}", values.len()));
    }
    let order = match range {
        AuditRange::Newest => "DESC",
        AuditRange::Before(id) => {
            values.push(SqlValue::Integer(id.min(i64::MAX as u64) as i64));
            clauses.push(format!("id < ?{}", values.len()));
            "DESC"
        }
        AuditRange::After(id) => {
            values.push(SqlValue::Integer(id.min(i64::MAX as u64) as i64));
            clauses.push(format!("id > ?{}", values.len()));
            "ASC"
        }
    };
    values.push(SqlValue::Integer(limit.min(i64::MAX as u64) as i64));
    let clause = if clauses.is_empty() {
        "1".to_string()
    } else {
        clauses.join(" AND ")
    };
    let sql = format!(
        "SELECT id, at, actor, action, target, detail, peer FROM audit_log
         WHERE {clause} ORDER BY id {order} LIMIT ?{}",
        values.len()
    );
    let entries = connection
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(&values), |row| {
            Ok(AuditEntry {
                id: row.get::<_, i64>(0)? as u64,
                at: row.get(1)?,
                actor: row.get(2)?,
                action: row.get(3)?,
                target: row.get(4)?,
                detail: row.get(5)?,
                peer: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(entries)
}
