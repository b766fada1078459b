//! Between protobuf messages and `churn-core` values, in both directions.

use churn_core::{
    CoreError, Explanation, FeatureKind, Profile, RawValue, Reason, RiskBand, TopReasons,
};

use churn_core::Timestamp;

use crate::alerts::{AlertEvent, AlertRecord, AlertState, EventKind, Outcome, StoredReason};
use crate::error::RequestError;
use crate::model::LoadedModel;
use crate::proto;

/// Longest `customer_id` accepted, in bytes.
pub const MAX_CUSTOMER_ID_BYTES: usize = 256;

/// Reads a request's profile: the customer id (non-empty, bounded) and the raw values.
pub fn profile_from_proto(
    profile: Option<proto::Profile>,
) -> Result<(String, Profile), RequestError> {
    let profile = profile.ok_or(RequestError::Required { field: "profile" })?;
    let customer_id = profile.customer_id;
    if customer_id.trim().is_empty() {
        return Err(RequestError::Required {
            field: "customer_id",
        });
    }
    if customer_id.len() > MAX_CUSTOMER_ID_BYTES {
        return Err(RequestError::CustomerIdTooLong {
            length: customer_id.len(),
            limit: MAX_CUSTOMER_ID_BYTES,
        });
    }
    let mut values = Profile::new();
    for (name, value) in profile.features {
        let raw = match value.kind {
            None => RawValue::Missing,
            Some(proto::value::Kind::Number(number)) if !number.is_finite() => {
                return Err(CoreError::NonFinite {
                    feature: name,
                    value: number.to_string(),
                }
                .into());
            }
            Some(proto::value::Kind::Number(number)) => RawValue::Number(number),
            Some(proto::value::Kind::Text(text)) => RawValue::Text(text),
            Some(proto::value::Kind::Flag(flag)) => RawValue::Bool(flag),
        };
        values.insert(name, raw);
    }
    Ok((customer_id, values))
}

/// Writes a profile as a protobuf message (for clients and the load generator).
pub fn profile_to_proto(customer_id: &str, profile: &Profile) -> proto::Profile {
    proto::Profile {
        assignee: String::new(),
        team: String::new(),
        customer_id: customer_id.to_string(),
        features: profile
            .iter()
            .map(|(name, value)| (name.clone(), value_to_proto(value)))
            .collect(),
    }
}

/// Returns a raw value as a protobuf value (no kind for missing).
pub fn value_to_proto(value: &RawValue) -> proto::Value {
    let kind = match value {
        RawValue::Missing => None,
        RawValue::Bool(flag) => Some(proto::value::Kind::Flag(*flag)),
        RawValue::Number(number) => Some(proto::value::Kind::Number(*number)),
        RawValue::Text(text) => Some(proto::value::Kind::Text(text.clone())),
    };
    proto::Value { kind }
}

fn reason_to_proto(reason: &Reason) -> proto::Reason {
    proto::Reason {
        feature: reason.feature.clone(),
        value: Some(value_to_proto(&reason.value)),
        contribution: reason.contribution,
        message: reason.text.clone(),
    }
}

/// Returns the protobuf band.
pub fn band_to_proto(band: RiskBand) -> proto::RiskBand {
    match band {
        RiskBand::Low => proto::RiskBand::Low,
        RiskBand::Medium => proto::RiskBand::Medium,
        RiskBand::High => proto::RiskBand::High,
    }
}

/// Returns the band of a protobuf band, `None` when unspecified.
pub fn band_from_proto(band: proto::RiskBand) -> Option<RiskBand> {
    match band {
        proto::RiskBand::Unspecified => None,
        proto::RiskBand::Low => Some(RiskBand::Low),
        proto::RiskBand::Medium => Some(RiskBand::Medium),
        proto::RiskBand::High => Some(RiskBand::High),
    }
}

/// Returns the protobuf feature kind.
pub fn kind_to_proto(kind: FeatureKind) -> proto::FeatureKind {
    match kind {
        FeatureKind::Numeric => proto::FeatureKind::Numeric,
        FeatureKind::Boolean => proto::FeatureKind::Boolean,
        FeatureKind::Categorical => proto::FeatureKind::Categorical,
    }
}

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

/// Returns a raw value as an agent reads it: the number, the text, yes/no; empty when missing.
pub fn value_text(value: Option<&proto::Value>) -> String {
    match value.and_then(|value| value.kind.as_ref()) {
        None => String::new(),
        Some(proto::value::Kind::Number(number)) => number.to_string(),
        Some(proto::value::Kind::Text(text)) => text.clone(),
        Some(proto::value::Kind::Flag(flag)) => if *flag { "yes" } else { "no" }.to_string(),
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

/// Returns a gRPC code's canonical name, as in `grpc-status` documentation.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_profile_round_trips_through_protobuf() {
        let mut profile = Profile::new();
        profile.insert("tenure".into(), RawValue::Number(3.5));
        profile.insert("Contract".into(), RawValue::Text("Month-to-month".into()));
        profile.insert("Partner".into(), RawValue::Bool(true));
        profile.insert("TotalCharges".into(), RawValue::Missing);
        let (customer_id, back) =
            profile_from_proto(Some(profile_to_proto("c-1", &profile))).unwrap();
        assert_eq!(customer_id, "c-1");
        assert_eq!(back, profile);
    }

    #[test]
    fn bad_profiles_are_refused_by_field() {
        let blank = proto::Profile {
            customer_id: "  ".into(),
            ..Default::default()
        };
        assert_eq!(
            profile_from_proto(Some(blank)).unwrap_err().field(),
            Some("customer_id")
        );
        let long = proto::Profile {
            customer_id: "x".repeat(MAX_CUSTOMER_ID_BYTES + 1),
            ..Default::default()
        };
        assert!(matches!(
            profile_from_proto(Some(long)),
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
        let error = profile_from_proto(Some(nan)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "feature `tenure`: value `NaN` is not finite"
        );
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            profile_from_proto(None).unwrap_err().field(),
            Some("profile")
        );
    }
}
