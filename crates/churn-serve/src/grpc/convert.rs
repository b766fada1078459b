//! The server's side of the wire contract: responses built from a loaded model, and the alert
//! store's records as messages. Conversions of `churn-core` values alone are `churn-api`'s.

use churn_api::convert::{band_to_proto, reason_to_proto};
use churn_api::proto;
use churn_core::{Explanation, RawValue, Timestamp, TopReasons};

use crate::alerts::{AlertEvent, AlertRecord, AlertState, EventKind, Outcome, StoredReason};
use crate::error::{RequestError, code_name};
use crate::model::LoadedModel;

/// Builds a Score response from a score and its strongest reasons each way.
pub fn score_response(
    model: &LoadedModel,
    customer_id: String,
    top: TopReasons,
) -> proto::ScoreResponse {
    let scorer = &model.scorer;
    proto::ScoreResponse {
        customer_id,
        probability: top.probability,
        band: band_to_proto(scorer.band(top.probability)).into(),
        percentile: scorer.percentile(top.probability),
        raising: top.raising.iter().map(reason_to_proto).collect(),
        lowering: top.lowering.iter().map(reason_to_proto).collect(),
        model: Some(model.model_ref()),
        logit: top.logit,
        alert: None,
    }
}

/// Builds an Explain response: every feature's contribution, in schema order.
pub fn explain_response(
    model: &LoadedModel,
    customer_id: String,
    explanation: &Explanation,
) -> proto::ExplainResponse {
    let scorer = &model.scorer;
    proto::ExplainResponse {
        customer_id,
        probability: explanation.probability,
        logit: explanation.logit,
        base_value: explanation.base_value,
        contributions: explanation.reasons.iter().map(reason_to_proto).collect(),
        model: Some(model.model_ref()),
        band: band_to_proto(scorer.band(explanation.probability)).into(),
        percentile: scorer.percentile(explanation.probability),
    }
}

/// Returns a number of a raw value: a number, or text that reads as one.
pub fn value_number(value: &RawValue) -> Option<f64> {
    match value {
        RawValue::Number(number) => Some(*number),
        RawValue::Text(text) => text.trim().parse().ok(),
        RawValue::Bool(_) | RawValue::Missing => None,
    }
}

/// Returns a Unix time in seconds as RFC 3339 UTC.
pub fn rfc3339(at: Timestamp) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn optional_time(at: Option<Timestamp>) -> String {
    at.map(rfc3339).unwrap_or_default()
}

/// Returns the protobuf state.
pub fn state_to_proto(state: AlertState) -> proto::AlertState {
    match state {
        AlertState::Open => proto::AlertState::Open,
        AlertState::Acknowledged => proto::AlertState::Acknowledged,
        AlertState::Resolved => proto::AlertState::Resolved,
    }
}

/// Returns the state of a protobuf state, `None` when unspecified.
pub fn state_from_proto(state: proto::AlertState) -> Option<AlertState> {
    match state {
        proto::AlertState::Unspecified => None,
        proto::AlertState::Open => Some(AlertState::Open),
        proto::AlertState::Acknowledged => Some(AlertState::Acknowledged),
        proto::AlertState::Resolved => Some(AlertState::Resolved),
    }
}

/// Returns the protobuf outcome.
pub fn outcome_to_proto(outcome: Outcome) -> proto::AlertOutcome {
    match outcome {
        Outcome::Retained => proto::AlertOutcome::Retained,
        Outcome::Churned => proto::AlertOutcome::Churned,
        Outcome::FalseAlarm => proto::AlertOutcome::FalseAlarm,
        Outcome::NotReached => proto::AlertOutcome::NotReached,
    }
}

/// Returns the outcome of a protobuf outcome, `None` when unspecified.
pub fn outcome_from_proto(outcome: proto::AlertOutcome) -> Option<Outcome> {
    match outcome {
        proto::AlertOutcome::Unspecified => None,
        proto::AlertOutcome::Retained => Some(Outcome::Retained),
        proto::AlertOutcome::Churned => Some(Outcome::Churned),
        proto::AlertOutcome::FalseAlarm => Some(Outcome::FalseAlarm),
        proto::AlertOutcome::NotReached => Some(Outcome::NotReached),
    }
}

/// Returns the protobuf event kind.
pub fn event_kind_to_proto(kind: EventKind) -> proto::AlertEventKind {
    match kind {
        EventKind::Raised => proto::AlertEventKind::Raised,
        EventKind::Updated => proto::AlertEventKind::Updated,
        EventKind::Escalated => proto::AlertEventKind::Escalated,
        EventKind::Acknowledged => proto::AlertEventKind::Acknowledged,
        EventKind::Resolved => proto::AlertEventKind::Resolved,
    }
}

/// Returns a stored alert as a protobuf message.
pub fn alert_to_proto(alert: &AlertRecord) -> proto::Alert {
    let stored_reason_to_proto = |reason: &StoredReason| proto::Reason {
        feature: reason.feature.clone(),
        value: Some(proto::Value {
            kind: (!reason.value.is_empty())
                .then(|| proto::value::Kind::Text(reason.value.clone())),
        }),
        contribution: reason.contribution,
        message: reason.message.clone(),
    };
    proto::Alert {
        id: alert.id.to_string(),
        customer_id: alert.customer_id.clone(),
        state: state_to_proto(alert.state).into(),
        band: band_to_proto(alert.band).into(),
        probability: alert.probability,
        previous_probability: alert.previous_probability,
        percentile: alert.percentile,
        revenue_at_risk: alert.revenue_at_risk,
        triggers: alert.triggers.clone(),
        reasons: alert.reasons.iter().map(stored_reason_to_proto).collect(),
        lowering: alert.lowering.iter().map(stored_reason_to_proto).collect(),
        assignee: alert.assignee.clone().unwrap_or_default(),
        team: alert.team.clone().unwrap_or_default(),
        model_version: alert.model_version.clone(),
        raised_at: rfc3339(alert.raised_at),
        updated_at: rfc3339(alert.updated_at),
        acknowledge_by: rfc3339(alert.acknowledge_by),
        escalation_level: alert.escalation_level,
        acknowledged_at: optional_time(alert.acknowledged_at),
        acknowledged_by: alert.acknowledged_by.clone().unwrap_or_default(),
        resolved_at: optional_time(alert.resolved_at),
        resolved_by: alert.resolved_by.clone().unwrap_or_default(),
        outcome: alert
            .outcome
            .map_or(proto::AlertOutcome::Unspecified, outcome_to_proto)
            .into(),
        resolution_note: alert.note.clone().unwrap_or_default(),
        score_count: alert.score_count,
    }
}

/// Returns a stored event as a protobuf message.
pub fn event_to_proto(event: &AlertEvent) -> proto::AlertEvent {
    proto::AlertEvent {
        cursor: event.cursor,
        kind: event_kind_to_proto(event.kind).into(),
        at: rfc3339(event.at),
        alert: Some(alert_to_proto(&event.alert)),
    }
}

/// Returns a per-profile error for a batch or stream result.
pub fn profile_error(error: &RequestError) -> proto::ProfileError {
    proto::ProfileError {
        code: code_name(error.code()).to_string(),
        message: error.to_string(),
        field: error.field().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use churn_api::convert::{MAX_CUSTOMER_ID_BYTES, profile_from_proto};
    use churn_core::{CoreError, Profile};

    use super::*;

    /// Reads a profile as the service does: the wire contract's error as the caller's.
    fn read_profile(profile: Option<proto::Profile>) -> Result<(String, Profile), RequestError> {
        Ok(profile_from_proto(profile)?)
    }

    #[test]
    fn profile_errors_carry_grpc_code_names_and_the_field() {
        let error = RequestError::Profile(CoreError::NotNumeric {
            feature: "tenure".into(),
            value: "ten".into(),
        });
        let proto = profile_error(&error);
        assert_eq!(proto.code, "INVALID_ARGUMENT");
        assert_eq!(proto.field, "tenure");
        assert_eq!(
            proto.message,
            "feature `tenure`: value `ten` is not a number"
        );
    }

    #[test]
    fn bad_profiles_are_refused_by_field() {
        let blank = proto::Profile {
            customer_id: "  ".into(),
            ..Default::default()
        };
        assert_eq!(
            read_profile(Some(blank)).unwrap_err().field(),
            Some("customer_id")
        );
        let long = proto::Profile {
            customer_id: "x".repeat(MAX_CUSTOMER_ID_BYTES + 1),
            ..Default::default()
        };
        assert!(matches!(
            read_profile(Some(long)),
            Err(RequestError::CustomerIdTooLong { .. })
        ));
        let nan = proto::Profile {
            customer_id: "c".into(),
            features: [(
                "tenure".to_string(),
                proto::Value {
                    kind: Some(proto::value::Kind::Number(f64::NAN)),
                },
            )]
            .into(),
            ..Default::default()
        };
        let error = read_profile(Some(nan)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "feature `tenure`: value `NaN` is not finite"
        );
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(read_profile(None).unwrap_err().field(), Some("profile"));
    }
}
