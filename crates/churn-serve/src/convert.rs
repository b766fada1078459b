//! Between protobuf messages and `churn-core` values, in both directions.

use churn_core::{
    CoreError, Explanation, FeatureKind, Profile, RawValue, Reason, RiskBand, TopReasons,
};

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
            features: Default::default(),
        };
        assert_eq!(
            profile_from_proto(Some(blank)).unwrap_err().field(),
            Some("customer_id")
        );
        let long = proto::Profile {
            customer_id: "x".repeat(MAX_CUSTOMER_ID_BYTES + 1),
            features: Default::default(),
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
