//! The alerts of a batch run: what the policy raises for each scored row, ranked and written.

use churn_core::{AlertDecision, AlertDraft, AlertPolicy, CustomerHistory, ScoreEvent, Timestamp};
use polars::prelude::*;

use super::AlertsOutput;
use super::output::timestamp_column;
use super::score::ScoredRow;
use crate::error::{DataError, Result};
use crate::writers::{PartialFile, write_frame};

/// An alert of a batch run, with what an agent reads first.
#[derive(Debug)]
pub(super) struct BatchAlert {
    customer_id: String,
    percentile: f64,
    /// The reasons raising risk in words, strongest first.
    reasons: Vec<String>,
    pub(super) draft: AlertDraft,
}

/// Returns the alert the policy raises for a scored row; a batch has no history, so it is a
/// raise or nothing.
pub(super) fn batch_alert(
    policy: &AlertPolicy,
    customer_id: &str,
    scored: &ScoredRow,
    customer_value: Option<f64>,
    at: u64,
) -> Option<BatchAlert> {
    let event = ScoreEvent {
        probability: scored.top.probability,
        band: scored.band,
        customer_value,
        at: at as Timestamp,
    };
    match policy.evaluate(&event, &CustomerHistory::default()) {
        AlertDecision::Raise(draft) => Some(BatchAlert {
            customer_id: customer_id.to_string(),
            percentile: scored.percentile,
            reasons: scored
                .top
                .raising
                .iter()
                .map(|reason| reason.text.clone())
                .collect(),
            draft,
        }),
        AlertDecision::Update(_) | AlertDecision::Quiet => None,
    }
}

/// Writes the alerts ranked by revenue at risk (unknown values last), then probability, then id:
/// `rank, customer_id, probability, band, percentile, revenue_at_risk, triggers, acknowledge_by,
/// reason_1 … reason_K`. They are held in memory to be ranked: a few hundred bytes each.
pub(super) fn write_alerts(
    target: &AlertsOutput,
    alerts: &mut [BatchAlert],
    top_k: usize,
) -> Result<PartialFile> {
    alerts.sort_by(|a, b| {
        let value = |alert: &BatchAlert| alert.draft.revenue_at_risk.unwrap_or(f64::NEG_INFINITY);
        value(b)
            .total_cmp(&value(a))
            .then(b.draft.probability.total_cmp(&a.draft.probability))
            .then_with(|| a.customer_id.cmp(&b.customer_id))
    });
    let height = alerts.len();
    let mut columns = vec![
        Column::new("rank".into(), (1..=height as u64).collect::<Vec<_>>()),
        Column::new(
            "customer_id".into(),
            alerts
                .iter()
                .map(|a| a.customer_id.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "probability".into(),
            alerts
                .iter()
                .map(|a| a.draft.probability)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "band".into(),
            alerts
                .iter()
                .map(|a| a.draft.band.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "percentile".into(),
            alerts.iter().map(|a| a.percentile).collect::<Vec<_>>(),
        ),
        Column::new(
            "revenue_at_risk".into(),
            alerts
                .iter()
                .map(|a| a.draft.revenue_at_risk)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "triggers".into(),
            alerts
                .iter()
                .map(|a| {
                    a.draft
                        .triggers
                        .iter()
                        .map(|trigger| trigger.describe(a.draft.probability))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .collect::<Vec<_>>(),
        ),
        timestamp_column(
            "acknowledge_by",
            alerts
                .iter()
                .map(|a| a.draft.acknowledge_by.saturating_mul(1_000_000))
                .collect(),
        ),
    ];
    for rank in 0..top_k {
        columns.push(Column::new(
            format!("reason_{}", rank + 1).into(),
            alerts
                .iter()
                .map(|a| a.reasons.get(rank).map(String::as_str))
                .collect::<Vec<_>>(),
        ));
    }
    let mut frame = DataFrame::new(height, columns).map_err(|error| DataError::Write {
        path: target.path.clone(),
        reason: error.to_string(),
    })?;
    write_frame(&target.path, target.format, &mut frame)
}
