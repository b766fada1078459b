//! Between `churn.v1` messages and `churn-core` values, in both directions.

use churn_core::{CoreError, FeatureKind, Profile, RawValue, Reason, RiskBand};

use crate::error::ApiError;
use crate::proto;

/// Longest `customer_id` accepted, in bytes.
pub const MAX_CUSTOMER_ID_BYTES: usize = 256;
/// Longest feature name accepted, in bytes.
pub const MAX_FEATURE_NAME_BYTES: usize = 128;
/// Longest text value accepted, in bytes.
pub const MAX_TEXT_VALUE_BYTES: usize = 1024;
/// Most features one profile may carry.
pub const MAX_FEATURES: usize = 1024;

/// Reads a request's profile: the customer id (trimmed, non-empty, bounded, no control
/// characters) and the raw values (names and texts bounded, texts trimmed, numbers finite).
/// What is trimmed here is what is scored and stored.
pub fn profile_from_proto(profile: Option<proto::Profile>) -> Result<(String, Profile), ApiError> {
    let profile = profile.ok_or(ApiError::Required { field: "profile" })?;
    let customer_id = profile.customer_id.trim();
    if customer_id.is_empty() {
        return Err(ApiError::Required {
            field: "customer_id",
        });
    }
    if customer_id.len() > MAX_CUSTOMER_ID_BYTES {
        return Err(ApiError::CustomerIdTooLong {
            length: customer_id.len(),
            limit: MAX_CUSTOMER_ID_BYTES,
        });
    }
    if customer_id.chars().any(char::is_control) {
        return Err(ApiError::Invalid {
            field: "customer_id",
            reason: format!(
                "`{}` holds a control character",
                customer_id.escape_default()
            ),
        });
    }
    if profile.features.len() > MAX_FEATURES {
        return Err(ApiError::Invalid {
            field: "features",
            reason: format!(
                "{} features; the limit is {MAX_FEATURES}",
                profile.features.len()
            ),
        });
    }
    let mut values = Profile::new();
    for (name, value) in profile.features {
        if name.len() > MAX_FEATURE_NAME_BYTES {
            return Err(ApiError::Invalid {
                field: "features",
                reason: format!(
                    "a feature name is {} bytes long (it starts `{}`); the limit is \
                     {MAX_FEATURE_NAME_BYTES}",
                    name.len(),
                    name.chars().take(32).collect::<String>().escape_default()
                ),
            });
        }
        let raw = value_from_proto(&name, value)?;
        values.insert(name, raw);
    }
    Ok((customer_id.to_string(), values))
}

/// Reads one feature's value; NaN and infinities are refused, naming the feature, and so is an
/// over-long text. Text is trimmed.
fn value_from_proto(feature: &str, value: proto::Value) -> Result<RawValue, ApiError> {
    Ok(match value.kind {
        None => RawValue::Missing,
        Some(proto::value::Kind::Number(number)) if !number.is_finite() => {
            return Err(CoreError::NonFinite {
                feature: feature.to_string(),
                value: number.to_string(),
            }
            .into());
        }
        Some(proto::value::Kind::Number(number)) => RawValue::Number(number),
        Some(proto::value::Kind::Text(text)) if text.len() > MAX_TEXT_VALUE_BYTES => {
            return Err(ApiError::Invalid {
                field: "features",
                reason: format!(
                    "feature `{}` has a {}-byte text value; the limit is {MAX_TEXT_VALUE_BYTES}",
                    feature.escape_default(),
                    text.len()
                ),
            });
        }
        Some(proto::value::Kind::Text(text)) => match text.trim() {
            trimmed if trimmed.len() == text.len() => RawValue::Text(text),
            trimmed => RawValue::Text(trimmed.to_string()),
        },
        Some(proto::value::Kind::Flag(flag)) => RawValue::Bool(flag),
    })
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

/// Returns a reason as a protobuf message.
pub fn reason_to_proto(reason: &Reason) -> proto::Reason {
    proto::Reason {
        feature: reason.feature.clone(),
        value: Some(value_to_proto(&reason.value)),
        contribution: reason.contribution,
        message: reason.text.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
            profile_from_proto(Some(blank)),
            Err(ApiError::Required {
                field: "customer_id"
            })
        );
        let long = proto::Profile {
            customer_id: "x".repeat(MAX_CUSTOMER_ID_BYTES + 1),
            ..Default::default()
        };
        assert!(matches!(
            profile_from_proto(Some(long)),
            Err(ApiError::CustomerIdTooLong { .. })
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
        assert_eq!(
            profile_from_proto(None),
            Err(ApiError::Required { field: "profile" })
        );
    }

    fn profile_with(customer_id: &str, name: &str, text: &str) -> proto::Profile {
        proto::Profile {
            customer_id: customer_id.into(),
            features: [(
                name.to_string(),
                proto::Value {
                    kind: Some(proto::value::Kind::Text(text.into())),
                },
            )]
            .into(),
            ..Default::default()
        }
    }

    #[test]
    fn ids_and_texts_are_trimmed_once_and_bounded() {
        let (customer_id, profile) =
            profile_from_proto(Some(profile_with(" c-1 ", "Contract", " Two year "))).unwrap();
        assert_eq!(customer_id, "c-1");
        assert_eq!(profile["Contract"], RawValue::Text("Two year".into()));

        let error = profile_from_proto(Some(profile_with("c\u{1b}[31m", "Contract", "x")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "`customer_id`: `c\\u{1b}[31m` holds a control character"
        );
        let long_name = "n".repeat(MAX_FEATURE_NAME_BYTES + 1);
        let error = profile_from_proto(Some(profile_with("c", &long_name, "x")))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("`features`: a feature name is 129 bytes long (it starts `nnnn"),
            "{error}"
        );
        let long_text = "t".repeat(MAX_TEXT_VALUE_BYTES + 1);
        let error = profile_from_proto(Some(profile_with("c", "Contract", &long_text)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "`features`: feature `Contract` has a 1025-byte text value; the limit is 1024"
        );
    }

    #[test]
    fn bands_round_trip_and_unspecified_is_none() {
        for band in [RiskBand::Low, RiskBand::Medium, RiskBand::High] {
            assert_eq!(band_from_proto(band_to_proto(band)), Some(band));
        }
        assert_eq!(band_from_proto(proto::RiskBand::Unspecified), None);
    }
}
