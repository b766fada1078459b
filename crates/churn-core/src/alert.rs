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
/// Longest cool-down and response time accepted: ten years, far below timestamp overflow.
const MAX_DAYS: f64 = 3_650.0;

/// Rises this close to `min_rise` count as reaching it (0.3 − 0.1 is not 0.2 in floating point).
const RISE_TOLERANCE: f64 = 1e-9;

/// Reads `min_band`: a band name, or `"off"`.
fn band_or_off<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<RiskBand>, D::Error> {
    let name = String::deserialize(deserializer)?;
    match name.to_ascii_lowercase().as_str() {
        "off" | "none" => Ok(None),
        "low" => Ok(Some(RiskBand::Low)),
        "medium" => Ok(Some(RiskBand::Medium)),
        "high" => Ok(Some(RiskBand::High)),
        _ => Err(serde::de::Error::custom(format!(
            "min_band `{name}`: expected low, medium, high or off"
        ))),
    }
}

/// When and how urgently to alert on a score; the `[alerts]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertPolicy {
    /// Alert when a score's band is at least this (`"low"`, `"medium"`, `"high"`); `"off"` (or
    /// `None`) turns the rule off.
    #[serde(deserialize_with = "band_or_off")]
    pub min_band: Option<RiskBand>,
    /// Alert when the probability is at least this, whatever the band; off unless set.
    pub min_probability: Option<f64>,
    /// Alert when the probability rose by at least this (absolute, e.g. 0.2) since the
    /// customer's previous score; 0 turns the rule off.
    pub min_rise: f64,
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
    /// Hours for a LOW alert.
    pub low: f64,
    /// Hours for a MEDIUM alert.
    pub medium: f64,
    /// Hours for a HIGH alert.
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
            min_rise: 0.2,
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
    /// The new churn probability.
    pub probability: f64,
    /// The new score's risk band.
    pub band: RiskBand,
    /// The customer's value per period (the policy's `value_feature`), when known.
    pub customer_value: Option<f64>,
    /// When the customer was scored.
    pub at: Timestamp,
}

/// What is known of a customer before the new score.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CustomerHistory {
    /// The customer's previous score.
    pub previous: Option<PastScore>,
    /// The customer's alert not yet resolved (open or acknowledged), if any: a new score
    /// updates it.
    pub open_alert: Option<PastAlert>,
    /// The customer's most recent alert, open or not.
    pub last_alert: Option<PastAlert>,
}

/// A score given earlier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastScore {
    /// The churn probability then.
    pub probability: f64,
    /// The risk band then.
    pub band: RiskBand,
    /// When the score was given.
    pub at: Timestamp,
}

/// An alert raised earlier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PastAlert {
    /// The band the alert was raised at.
    pub band: RiskBand,
    /// When it was raised.
    pub raised_at: Timestamp,
}

/// Why an alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Trigger {
    /// The score's band, at or above the policy's `min_band`.
    Band {
        /// The score's band.
        band: RiskBand,
    },
    /// The probability reached the policy's `min_probability`.
    Probability {
        /// The policy's `min_probability`.
        threshold: f64,
    },
    /// The probability rose by at least `min_rise` since the previous score.
    Rise {
        /// The previous score's probability.
        from: f64,
        /// The new score's probability.
        to: f64,
    },
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
    /// The churn probability that raised it.
    pub probability: f64,
    /// The probability's risk band.
    pub band: RiskBand,
    /// Why it fires, at least one reason.
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
    /// Reads a policy from the text of a TOML policy file (`alert-policy.toml`) and checks it:
    /// unknown keys and out-of-range values are refused by name. The caller reads the file and
    /// names it in the error, as this crate knows no files.
    pub fn from_toml(text: &str) -> Result<AlertPolicy> {
        let policy: AlertPolicy =
            toml::from_str(text).map_err(|error| CoreError::InvalidPolicy {
                reason: error.message().to_string(),
                at: error
                    .span()
                    .and_then(|span| text.get(..span.start))
                    .map(|before| {
                        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
                        let line = before.matches('\n').count() + 1;
                        (line, before[line_start..].chars().count() + 1)
                    }),
            })?;
        policy.validate()?;
        Ok(policy)
    }

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
        if !share(self.min_rise) {
            return Err(bad("min_rise", self.min_rise, "between 0 (off) and 1"));
        }
        if !(self.value_periods.is_finite() && self.value_periods >= 0.0) {
            return Err(bad(
                "value_periods",
                self.value_periods,
                "a finite number at least 0",
            ));
        }
        let hours = self.acknowledge_within_hours;
        let durations = [
            ("cooldown_days", self.cooldown_days * 24.0),
            ("acknowledge_within_hours.low", hours.low),
            ("acknowledge_within_hours.medium", hours.medium),
            ("acknowledge_within_hours.high", hours.high),
        ];
        for (setting, in_hours) in durations {
            if !(0.0..=MAX_DAYS * 24.0).contains(&in_hours) {
                let value = if setting == "cooldown_days" {
                    self.cooldown_days
                } else {
                    in_hours
                };
                return Err(bad(setting, value, "between 0 and ten years"));
            }
        }
        Ok(())
    }

    /// Decides what a new score does, given what is known of the customer.
    pub fn evaluate(&self, score: &ScoreEvent, history: &CustomerHistory) -> AlertDecision {
        let mut triggers = Vec::new();
        if self.min_band.is_some_and(|band| score.band >= band) {
            triggers.push(Trigger::Band { band: score.band });
        }
        if let Some(threshold) = self.min_probability.filter(|&t| score.probability >= t) {
            triggers.push(Trigger::Probability { threshold });
        }
        if let Some(previous) = history.previous
            && self.min_rise > 0.0
            && score.probability - previous.probability >= self.min_rise - RISE_TOLERANCE
        {
            triggers.push(Trigger::Rise {
                from: previous.probability,
                to: score.probability,
            });
        }
        if triggers.is_empty() {
            return AlertDecision::Quiet;
        }
        let mut draft = AlertDraft {
            probability: score.probability,
            band: score.band,
            triggers,
            revenue_at_risk: self.revenue_at_risk(score.probability, score.customer_value),
            acknowledge_by: self.acknowledge_by(score.band, score.at),
        };
        if let Some(open) = history.open_alert {
            // The clock runs from when the alert was raised, at the higher band's target, so an
            // alert rescored every night still comes due.
            draft.acknowledge_by = self.acknowledge_by(score.band.max(open.band), open.raised_at);
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

    /// Returns probability × value × periods, or `None` when the value is unknown, negative or
    /// not finite.
    pub fn revenue_at_risk(&self, probability: f64, customer_value: Option<f64>) -> Option<f64> {
        customer_value
            .filter(|value| value.is_finite() && *value >= 0.0)
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

    #[test]
    fn a_policy_file_reads_and_bad_ones_are_refused_by_key_and_line() {
        let policy = AlertPolicy::from_toml(
            "min_band = \"medium\"\ncooldown_days = 7\n[acknowledge_within_hours]\nhigh = 2\n",
        )
        .unwrap();
        assert_eq!(policy.min_band, Some(RiskBand::Medium));
        assert_eq!(policy.cooldown_days, 7.0);
        assert_eq!(policy.acknowledge_within_hours.high, 2.0);

        let typo = AlertPolicy::from_toml("cooldown_days = 7\nmin_bnad = \"high\"\n").unwrap_err();
        let text = typo.to_string();
        assert!(
            text.starts_with("line 2, column 1: unknown field `min_bnad`"),
            "{text}"
        );

        let out_of_range = AlertPolicy::from_toml("min_rise = 1.5\n").unwrap_err();
        assert_eq!(
            out_of_range.to_string(),
            "setting `min_rise`: 1.5 is not between 0 (off) and 1"
        );
    }

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
    fn an_open_alert_is_updated_not_duplicated_and_its_clock_keeps_running() {
        let policy = AlertPolicy {
            min_band: Some(RiskBand::Medium),
            ..AlertPolicy::default()
        };
        let alert = PastAlert {
            band: RiskBand::Medium,
            raised_at: 0,
        };
        let history = CustomerHistory {
            open_alert: Some(alert),
            last_alert: Some(alert),
            ..CustomerHistory::default()
        };
        let AlertDecision::Update(draft) =
            policy.evaluate(&score(0.5, RiskBand::Medium, 10 * 3600), &history)
        else {
            panic!("not an update")
        };
        assert_eq!(draft.acknowledge_by, 24 * 3600);
        // Escalated to HIGH: due an hour after it was raised, so overdue at once.
        let AlertDecision::Update(draft) =
            policy.evaluate(&score(0.9, RiskBand::High, 10 * 3600), &history)
        else {
            panic!("not an update")
        };
        assert_eq!(draft.acknowledge_by, 3600);
        assert_eq!(
            draft.triggers,
            vec![Trigger::Band {
                band: RiskBand::High
            }]
        );
    }

    #[test]
    fn a_rise_of_exactly_min_rise_fires_and_zero_turns_rises_off() {
        let history = CustomerHistory {
            previous: Some(PastScore {
                probability: 0.1,
                band: RiskBand::Low,
                at: 0,
            }),
            ..CustomerHistory::default()
        };
        let policy = AlertPolicy::default();
        assert!(raised(&policy.evaluate(&score(0.3, RiskBand::Medium, DAY), &history)).is_some());
        let off = AlertPolicy {
            min_rise: 0.0,
            ..AlertPolicy::default()
        };
        assert_eq!(
            off.evaluate(&score(0.9, RiskBand::Medium, DAY), &history),
            AlertDecision::Quiet
        );
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
        assert_eq!(policy.revenue_at_risk(0.5, Some(-3.0)), None);
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
                    min_rise: -0.1,
                    ..AlertPolicy::default()
                },
                "min_rise",
            ),
            (
                AlertPolicy {
                    acknowledge_within_hours: BandHours {
                        high: 1e300,
                        ..BandHours::default()
                    },
                    ..AlertPolicy::default()
                },
                "acknowledge_within_hours.high",
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
        let off: AlertPolicy = serde_json::from_value(serde_json::json!({
            "min_band": "off",
            "min_probability": 0.6,
        }))
        .unwrap();
        assert_eq!(off.min_band, None);
        let error = serde_json::from_value::<AlertPolicy>(serde_json::json!({"min_band": "hi"}))
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("expected low, medium, high or off"),
            "{error}"
        );
        let error =
            serde_json::from_value::<AlertPolicy>(serde_json::json!({"cooldown": 3})).unwrap_err();
        assert!(error.to_string().contains("cooldown"), "{error}");
    }
}
