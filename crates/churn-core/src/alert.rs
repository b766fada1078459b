//! The alert policy: whether a new score raises an alert, updates the customer's open one, or
//! stays quiet, and how urgent the alert is. Pure functions with the time passed in, so the
//! server and `churn rescore` decide the same way for the same scores.
//!
//! An alert fires when the band reaches `min_band`, the probability reaches `min_probability`,
//! or the probability rose by `min_rise` since the customer's previous score. An open alert is
//! updated rather than duplicated. After an alert, the customer gets no new one for
//! `cooldown_days` unless the band escalates. Alerts are ranked by **revenue at risk**:
//! probability × the customer's value (`value_feature`) × `value_periods`. Each band has a time to
//! acknowledge, past which the alert is overdue and is escalated.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::risk::RiskBand;

/// Seconds since the Unix epoch, UTC.
pub type Timestamp = i64;

const SECONDS_PER_DAY: f64 = 86_400.0;
const SECONDS_PER_HOUR: f64 = 3_600.0;

/// When and how urgently to alert on a score; the `[alerts]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertPolicy {
    /// Alert when a score's band is at least this (`low`, `medium`, `high`); none to turn off.
    pub min_band: Option<RiskBand>,
    /// Alert when the probability is at least this, whatever the band.
    pub min_probability: Option<f64>,
    /// Alert when the probability rose by at least this (absolute, e.g. 0.2) since the
    /// customer's previous score.
    pub min_rise: Option<f64>,
    /// Days after an alert during which the customer gets no new one, unless the band escalates.
    pub cooldown_days: f64,
    /// Numeric profile value holding what the customer is worth per period (e.g. MonthlyCharges).
    pub value_feature: Option<String>,
    /// Periods of that value at stake (e.g. 12 months of charges).
    pub value_periods: f64,
    /// Hours within which an alert must be acknowledged, by band, before it is escalated.
    pub acknowledge_within_hours: BandHours,
}

/// A number of hours for each band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BandHours {
    pub low: f64,
    pub medium: f64,
    pub high: f64,
}

impl BandHours {
    /// Returns the hours for `band`.
    pub fn of(&self, band: RiskBand) -> f64 {
        match band {
            RiskBand::Low => self.low,
            RiskBand::Medium => self.medium,
            RiskBand::High => self.high,
        }
    }
}

impl Default for BandHours {
    /// A HIGH alert within the hour, MEDIUM within a day, LOW within three days.
    fn default() -> Self {
        BandHours {
            low: 72.0,
            medium: 24.0,
            high: 1.0,
        }
    }
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            min_band: Some(RiskBand::High),
            min_probability: None,
            min_rise: Some(0.2),
            cooldown_days: 14.0,
            value_feature: None,
            value_periods: 12.0,
            acknowledge_within_hours: BandHours::default(),
        }
    }
}

/// A new score of one customer, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreEvent {
    pub probability: f64,
    pub band: RiskBand,
    /// The customer's value per period (the policy's `value_feature`), when known.
    pub customer_value: Option<f64>,
    pub at: Timestamp,
}

/// What is known of a customer before the new score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CustomerHistory {
    /// The customer's previous score.
    pub previous: Option<PastScore>,
    /// The customer's alert that is neither acknowledged nor resolved, if any.
    pub open_alert: Option<PastAlert>,
    /// The customer's most recent alert, open or not.
    pub last_alert: Option<PastAlert>,
}

/// A score given earlier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastScore {
    pub probability: f64,
    pub band: RiskBand,
    pub at: Timestamp,
}

/// An alert raised earlier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastAlert {
    pub band: RiskBand,
    pub raised_at: Timestamp,
}

/// Why an alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Trigger {
    /// The band reached the policy's `min_band`.
    Band { band: RiskBand },
    /// The probability reached the policy's `min_probability`.
    Probability { threshold: f64 },
    /// The probability rose by at least `min_rise` since the previous score.
    Rise { from: f64, to: f64 },
}

impl Trigger {
    /// Returns the trigger in words: "HIGH risk", "probability 0.72 ≥ 0.60", "risk up from 0.31 to 0.58".
    pub fn describe(&self, probability: f64) -> String {
        match self {
            Trigger::Band { band } => format!("{} risk", band.as_str()),
            Trigger::Probability { threshold } => {
                format!("probability {probability:.2} at or above {threshold:.2}")
            }
            Trigger::Rise { from, to } => format!("risk up from {from:.2} to {to:.2}"),
        }
    }
}

/// An alert to raise or to write over the customer's open one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertDraft {
    pub probability: f64,
    pub band: RiskBand,
    pub triggers: Vec<Trigger>,
    /// Probability × customer value × value periods; `None` when the value is unknown.
    pub revenue_at_risk: Option<f64>,
    /// When the alert becomes overdue unless acknowledged.
    pub acknowledge_by: Timestamp,
}

/// What the policy says to do with a new score.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertDecision {
    /// No alert: no rule fired, or the customer is cooling down.
    Quiet,
    /// Raise a new alert.
    Raise(AlertDraft),
    /// Update the customer's open alert with this score instead of raising another.
    Update(AlertDraft),
}

impl AlertPolicy {
    /// Checks the settings, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, value: f64, expected: &str| CoreError::InvalidSetting {
            setting: setting.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        };
        let share = |value: f64| (0.0..=1.0).contains(&value);
        if let Some(probability) = self.min_probability.filter(|&p| !share(p)) {
            return Err(bad("min_probability", probability, "between 0 and 1"));
        }
        if let Some(rise) = self.min_rise.filter(|&r| !(r > 0.0 && r <= 1.0)) {
            return Err(bad("min_rise", rise, "above 0 and at most 1"));
        }
        let non_negative = [
            ("cooldown_days", self.cooldown_days),
            ("value_periods", self.value_periods),
            (
                "acknowledge_within_hours.low",
                self.acknowledge_within_hours.low,
            ),
            (
                "acknowledge_within_hours.medium",
                self.acknowledge_within_hours.medium,
            ),
            (
                "acknowledge_within_hours.high",
                self.acknowledge_within_hours.high,
            ),
        ];
        for (setting, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                return Err(bad(setting, value, "a finite number at least 0"));
            }
        }
        Ok(())
    }

    /// Decides what a new score does, given what is known of the customer.
    pub fn evaluate(&self, score: &ScoreEvent, history: &CustomerHistory) -> AlertDecision {
        let mut triggers = Vec::new();
        if let Some(band) = self.min_band.filter(|&band| score.band >= band) {
            triggers.push(Trigger::Band { band });
        }
        if let Some(threshold) = self.min_probability.filter(|&t| score.probability >= t) {
            triggers.push(Trigger::Probability { threshold });
        }
        if let (Some(rise), Some(previous)) = (self.min_rise, history.previous)
            && score.probability - previous.probability >= rise
        {
            triggers.push(Trigger::Rise {
                from: previous.probability,
                to: score.probability,
            });
        }
        if triggers.is_empty() {
            return AlertDecision::Quiet;
        }
        let draft = AlertDraft {
            probability: score.probability,
            band: score.band,
            triggers,
            revenue_at_risk: self.revenue_at_risk(score.probability, score.customer_value),
            acknowledge_by: self.acknowledge_by(score.band, score.at),
        };
        if history.open_alert.is_some() {
            return AlertDecision::Update(draft);
        }
        if let Some(last) = history.last_alert {
            let cooling =
                ((score.at - last.raised_at) as f64) < self.cooldown_days * SECONDS_PER_DAY;
            if cooling && score.band <= last.band {
                return AlertDecision::Quiet;
            }
        }
        AlertDecision::Raise(draft)
    }

    /// Returns probability × value × periods, or `None` when the value is unknown or not finite.
    pub fn revenue_at_risk(&self, probability: f64, customer_value: Option<f64>) -> Option<f64> {
        customer_value
            .filter(|value| value.is_finite())
            .map(|value| probability * value * self.value_periods)
    }

    /// Returns when an alert of `band` raised at `raised_at` becomes overdue.
    pub fn acknowledge_by(&self, band: RiskBand, raised_at: Timestamp) -> Timestamp {
        raised_at + (self.acknowledge_within_hours.of(band) * SECONDS_PER_HOUR).round() as i64
    }

    /// Tells whether an unacknowledged alert of `band` raised at `raised_at` is overdue at `now`,
    /// and so due to be escalated.
    pub fn is_overdue(&self, band: RiskBand, raised_at: Timestamp, now: Timestamp) -> bool {
        now > self.acknowledge_by(band, raised_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Timestamp = 86_400;

    fn score(probability: f64, band: RiskBand, at: Timestamp) -> ScoreEvent {
        ScoreEvent {
            probability,
            band,
            customer_value: Some(70.0),
            at,
        }
    }

    fn raised(decision: &AlertDecision) -> Option<&AlertDraft> {
        match decision {
            AlertDecision::Raise(draft) => Some(draft),
            _ => None,
        }
    }

    #[test]
    fn a_high_band_raises_an_alert_priced_by_revenue_at_risk() {
        let policy = AlertPolicy::default();
        let decision = policy.evaluate(
            &score(0.75, RiskBand::High, 1000),
            &CustomerHistory::default(),
        );
        let draft = raised(&decision).expect("raised");
        assert_eq!(
            draft.triggers,
            vec![Trigger::Band {
                band: RiskBand::High
            }]
        );
        // 0.75 × 70 a month × 12 months.
        assert_eq!(draft.revenue_at_risk, Some(0.75 * 70.0 * 12.0));
        assert_eq!(draft.acknowledge_by, 1000 + 3600);
        assert_eq!(
            policy.evaluate(
                &score(0.4, RiskBand::Medium, 1000),
                &CustomerHistory::default()
            ),
            AlertDecision::Quiet
        );
    }

    #[test]
    fn a_probability_threshold_fires_whatever_the_band() {
        let policy = AlertPolicy {
            min_band: None,
            min_probability: Some(0.5),
            ..AlertPolicy::default()
        };
        let history = CustomerHistory::default();
        let decision = policy.evaluate(&score(0.5, RiskBand::Medium, 0), &history);
        assert_eq!(
            raised(&decision).map(|draft| draft.triggers.clone()),
            Some(vec![Trigger::Probability { threshold: 0.5 }])
        );
        assert_eq!(
            policy.evaluate(&score(0.49, RiskBand::High, 0), &history),
            AlertDecision::Quiet
        );
    }

    #[test]
    fn a_rise_since_the_previous_score_fires_below_the_thresholds() {
        let policy = AlertPolicy::default();
        let history = CustomerHistory {
            previous: Some(PastScore {
                probability: 0.1,
                band: RiskBand::Low,
                at: 0,
            }),
            ..CustomerHistory::default()
        };
        let decision = policy.evaluate(&score(0.35, RiskBand::Medium, DAY), &history);
        assert_eq!(
            raised(&decision).map(|draft| draft.triggers.clone()),
            Some(vec![Trigger::Rise {
                from: 0.1,
                to: 0.35
            }])
        );
        assert_eq!(
            policy.evaluate(&score(0.29, RiskBand::Medium, DAY), &history),
            AlertDecision::Quiet
        );
    }

    #[test]
    fn an_open_alert_is_updated_not_duplicated() {
        let policy = AlertPolicy::default();
        let alert = PastAlert {
            band: RiskBand::High,
            raised_at: 0,
        };
        let history = CustomerHistory {
            open_alert: Some(alert),
            last_alert: Some(alert),
            ..CustomerHistory::default()
        };
        assert!(matches!(
            policy.evaluate(&score(0.9, RiskBand::High, DAY), &history),
            AlertDecision::Update(_)
        ));
    }

    #[test]
    fn the_cool_down_holds_back_repeats_unless_the_band_escalates() {
        let policy = AlertPolicy {
            min_band: Some(RiskBand::Medium),
            ..AlertPolicy::default()
        };
        let history = |band| CustomerHistory {
            last_alert: Some(PastAlert { band, raised_at: 0 }),
            ..CustomerHistory::default()
        };
        let medium = history(RiskBand::Medium);
        assert_eq!(
            policy.evaluate(&score(0.5, RiskBand::Medium, 13 * DAY), &medium),
            AlertDecision::Quiet
        );
        assert!(raised(&policy.evaluate(&score(0.8, RiskBand::High, 13 * DAY), &medium)).is_some());
        assert!(
            raised(&policy.evaluate(&score(0.5, RiskBand::Medium, 14 * DAY), &medium)).is_some()
        );
        let high = history(RiskBand::High);
        assert_eq!(
            policy.evaluate(&score(0.5, RiskBand::Medium, DAY), &high),
            AlertDecision::Quiet
        );
    }

    #[test]
    fn unknown_customer_value_leaves_revenue_at_risk_unknown() {
        let policy = AlertPolicy::default();
        assert_eq!(policy.revenue_at_risk(0.5, None), None);
        assert_eq!(policy.revenue_at_risk(0.5, Some(f64::NAN)), None);
        assert_eq!(policy.revenue_at_risk(0.5, Some(10.0)), Some(60.0));
    }

    #[test]
    fn alerts_left_unacknowledged_past_their_band_target_are_overdue() {
        let policy = AlertPolicy::default();
        assert!(!policy.is_overdue(RiskBand::High, 0, 3600));
        assert!(policy.is_overdue(RiskBand::High, 0, 3601));
        assert!(!policy.is_overdue(RiskBand::Medium, 0, 3601));
        assert!(policy.is_overdue(RiskBand::Medium, 0, 24 * 3600 + 1));
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let cases = [
            (
                AlertPolicy {
                    min_probability: Some(1.5),
                    ..AlertPolicy::default()
                },
                "min_probability",
            ),
            (
                AlertPolicy {
                    min_rise: Some(0.0),
                    ..AlertPolicy::default()
                },
                "min_rise",
            ),
            (
                AlertPolicy {
                    cooldown_days: -1.0,
                    ..AlertPolicy::default()
                },
                "cooldown_days",
            ),
        ];
        for (policy, name) in cases {
            let error = policy.validate().unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
        AlertPolicy::default().validate().unwrap();
    }

    #[test]
    fn policies_read_from_toml_like_settings_refuse_unknown_keys() {
        let policy: AlertPolicy = serde_json::from_value(serde_json::json!({
            "min_band": "medium",
            "value_feature": "MonthlyCharges",
        }))
        .unwrap();
        assert_eq!(policy.min_band, Some(RiskBand::Medium));
        assert_eq!(policy.cooldown_days, 14.0);
        let error =
            serde_json::from_value::<AlertPolicy>(serde_json::json!({"cooldown": 3})).unwrap_err();
        assert!(error.to_string().contains("cooldown"), "{error}");
    }
}
