//! The profile features `churn-data` builds from event tables (surveys, tickets, usage, billing,
//! subscriptions), named once here, and the sentences reasons say them in: the words of
//! customer experience ("NPS fell from 9 to 4 in the last survey", "3 complaints in 90 days",
//! "usage down 60%") rather than "nps_change is -5".

/// Days of tenure per month, for `tenure_months`.
pub const DAYS_PER_MONTH: f64 = 30.44;

/// Months since the subscription started.
pub const TENURE_MONTHS: &str = "tenure_months";
/// The contract: monthly, one year or two years.
pub const CONTRACT: &str = "contract";
/// The plan subscribed to.
pub const PLAN: &str = "plan";
/// The monthly charge.
pub const MONTHLY_CHARGE: &str = "monthly_charge";
/// Whether the customer pays automatically.
pub const AUTOPAY: &str = "autopay";
/// Days until the contract renews.
pub const DAYS_TO_RENEWAL: &str = "days_to_renewal";
/// The customer segment.
pub const SEGMENT: &str = "segment";
/// The customer's region.
pub const REGION: &str = "region";
/// How the customer was acquired.
pub const ACQUISITION_CHANNEL: &str = "acquisition_channel";

/// The last Net Promoter Score given (0 to 10).
pub const NPS_LAST: &str = "nps_last";
/// The change of NPS from the survey before the last.
pub const NPS_CHANGE: &str = "nps_change";
/// Whether the last NPS was 6 or less.
pub const NPS_DETRACTOR: &str = "nps_detractor";
/// The last satisfaction score given.
pub const CSAT_LAST: &str = "csat_last";
/// The change of CSAT from the survey before the last.
pub const CSAT_CHANGE: &str = "csat_change";
/// The last customer effort score given.
pub const CES_LAST: &str = "ces_last";
/// The change of CES from the survey before the last.
pub const CES_CHANGE: &str = "ces_change";
/// Surveys left unanswered in the last 180 days.
pub const SURVEY_NONRESPONSE_180D: &str = "survey_nonresponse_180d";
/// Support tickets opened in the last 30 days.
pub const TICKETS_30D: &str = "tickets_30d";
/// Support tickets opened in the last 90 days.
pub const TICKETS_90D: &str = "tickets_90d";
/// Complaints in the last 90 days.
pub const COMPLAINTS_90D: &str = "complaints_90d";
/// Median hours to a first response from support, over 90 days.
pub const FIRST_RESPONSE_MEDIAN_HOURS_90D: &str = "first_response_median_hours_90d";
/// Longest wait for a first response from support, in hours, over 90 days.
pub const FIRST_RESPONSE_WORST_HOURS_90D: &str = "first_response_worst_hours_90d";
/// Tickets reopened in the last 90 days.
pub const REOPENED_TICKETS_90D: &str = "reopened_tickets_90d";
/// Tickets still open.
pub const OPEN_TICKETS: &str = "open_tickets";

/// Minutes of use in the last 30 days.
pub const USAGE_MINUTES_30D: &str = "usage_minutes_30d";
/// Minutes of use in the 60 days before those.
pub const USAGE_MINUTES_PRIOR_60D: &str = "usage_minutes_prior_60d";
/// Use in the last 30 days against the monthly mean of the 60 days before, in percent.
pub const USAGE_CHANGE_PCT: &str = "usage_change_pct";
/// The most `usage_change_pct` says: from almost no use, any use is thousands of percent.
pub const USAGE_CHANGE_CAP_PCT: f64 = 200.0;
/// Sessions in the last 30 days.
pub const SESSIONS_30D: &str = "sessions_30d";
/// Days since the customer last used the service.
pub const DAYS_SINCE_LAST_USE: &str = "days_since_last_use";
/// Failed payments in the last 90 days.
pub const PAYMENT_FAILURES_90D: &str = "payment_failures_90d";
/// Refunds in the last 90 days.
pub const REFUNDS_90D: &str = "refunds_90d";

/// The features that come from what customers said and lived through with support: surveys,
/// tickets, complaints, response times. The rest (contract, plan, charge, tenure, usage,
/// billing) is operational data.
pub const EXPERIENCE_FEATURES: [&str; 15] = [
    NPS_LAST,
    NPS_CHANGE,
    NPS_DETRACTOR,
    CSAT_LAST,
    CSAT_CHANGE,
    CES_LAST,
    CES_CHANGE,
    SURVEY_NONRESPONSE_180D,
    TICKETS_30D,
    TICKETS_90D,
    COMPLAINTS_90D,
    FIRST_RESPONSE_MEDIAN_HOURS_90D,
    FIRST_RESPONSE_WORST_HOURS_90D,
    REOPENED_TICKETS_90D,
    OPEN_TICKETS,
];

/// Returns the sentence for an event-built feature's value, or `None` for any other feature.
/// `value` is the number (booleans as 0/1; `None` when missing); `other` reads another feature
/// of the same profile, so a change can be told with its end points.
pub fn sentence(
    name: &str,
    value: Option<f64>,
    other: &dyn Fn(&str) -> Option<f64>,
) -> Option<String> {
    let Some(value) = value else {
        return match name {
            NPS_LAST | NPS_CHANGE | NPS_DETRACTOR => Some("no NPS answer on record".into()),
            CSAT_LAST | CSAT_CHANGE => Some("no CSAT answer on record".into()),
            CES_LAST | CES_CHANGE => Some("no effort score (CES) answer on record".into()),
            SURVEY_NONRESPONSE_180D => Some("no surveys sent in 180 days".into()),
            USAGE_CHANGE_PCT => Some(
                "no usage trend (under 90 days a customer, or no use before the last 30 days)"
                    .into(),
            ),
            DAYS_SINCE_LAST_USE => Some("no product use on record".into()),
            FIRST_RESPONSE_MEDIAN_HOURS_90D => Some("no support ticket answered in 90 days".into()),
            FIRST_RESPONSE_WORST_HOURS_90D => Some("no support tickets in 90 days".into()),
            _ => None,
        };
    };
    let count = |what: &str, window: &str| {
        let n = value.round() as i64;
        let noun = if n == 1 {
            what.to_string()
        } else {
            format!("{what}s")
        };
        format!("{n} {noun}{window}")
    };
    let change = |label: &str, last_name: &str| {
        let end_point = other(last_name);
        let delta = value.round() as i64;
        match (delta, end_point) {
            (0, Some(last)) => format!("{label} unchanged at {} in the last survey", last.round()),
            (0, None) => format!("{label} unchanged in the last survey"),
            (_, Some(last)) => format!(
                "{label} {} from {} to {} in the last survey",
                if delta < 0 { "fell" } else { "rose" },
                (last - value).round(),
                last.round()
            ),
            (_, None) => format!(
                "{label} {} by {} in the last survey",
                if delta < 0 { "fell" } else { "rose" },
                // Unsigned: a change past i64's range reads as i64::MIN, whose `abs` overflows.
                delta.unsigned_abs()
            ),
        }
    };
    let text = match name {
        NPS_LAST => {
            let score = value.round();
            let group = if score <= 6.0 {
                "detractor"
            } else if score <= 8.0 {
                "passive"
            } else {
                "promoter"
            };
            format!("last NPS answer {score} ({group})")
        }
        NPS_CHANGE => change("NPS", NPS_LAST),
        NPS_DETRACTOR if value > 0.5 => "a detractor in the last NPS survey".into(),
        NPS_DETRACTOR => "not a detractor in the last NPS survey".into(),
        CSAT_LAST => format!("last CSAT answer {} of 5", value.round()),
        CSAT_CHANGE => change("CSAT", CSAT_LAST),
        CES_LAST => format!("last effort score (CES) {} of 7", value.round()),
        CES_CHANGE => change("effort score (CES)", CES_LAST),
        SURVEY_NONRESPONSE_180D => format!(
            "left {:.0}% of surveys unanswered in 180 days",
            100.0 * value
        ),
        TICKETS_30D => count("support ticket", " in 30 days"),
        TICKETS_90D => count("support ticket", " in 90 days"),
        COMPLAINTS_90D => count("complaint", " in 90 days"),
        REOPENED_TICKETS_90D => count("reopened ticket", " in 90 days"),
        OPEN_TICKETS => count("ticket", " still open"),
        FIRST_RESPONSE_MEDIAN_HOURS_90D => {
            format!("median first response {} in 90 days", hours(value))
        }
        FIRST_RESPONSE_WORST_HOURS_90D => {
            format!("slowest first response {} in 90 days", hours(value))
        }
        USAGE_MINUTES_30D => format!("{:.0} minutes of use in 30 days", value),
        USAGE_MINUTES_PRIOR_60D => format!("{:.0} minutes of use in the 60 days before", value),
        USAGE_CHANGE_PCT if value.round() == 0.0 => {
            "usage steady (last 30 days vs the 60 before)".into()
        }
        USAGE_CHANGE_PCT if value >= USAGE_CHANGE_CAP_PCT => {
            format!("usage up {USAGE_CHANGE_CAP_PCT:.0}% or more (last 30 days vs the 60 before)")
        }
        USAGE_CHANGE_PCT => format!(
            "usage {} {:.0}% (last 30 days vs the 60 before)",
            if value < 0.0 { "down" } else { "up" },
            value.abs()
        ),
        SESSIONS_30D => count("session", " in 30 days"),
        DAYS_SINCE_LAST_USE => format!("last used {:.0} days ago", value),
        PAYMENT_FAILURES_90D => count("failed payment", " in 90 days"),
        REFUNDS_90D => count("refund", " in 90 days"),
        TENURE_MONTHS => format!("customer for {:.0} months", value),
        DAYS_TO_RENEWAL => format!("renewal in {:.0} days", value),
        _ => return None,
    };
    Some(text)
}

/// Says a duration in hours as minutes, hours or days, whichever reads best.
fn hours(value: f64) -> String {
    if value < 1.0 {
        format!("{:.0} minutes", value * 60.0)
    } else if value < 48.0 {
        format!("{value:.1} hours")
    } else {
        format!("{:.1} days", value / 24.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_told_with_their_end_points() {
        let profile = |name: &str| match name {
            NPS_LAST => Some(4.0),
            _ => None,
        };
        assert_eq!(
            sentence(NPS_CHANGE, Some(-5.0), &profile).as_deref(),
            Some("NPS fell from 9 to 4 in the last survey")
        );
        assert_eq!(
            sentence(CSAT_CHANGE, Some(2.0), &profile).as_deref(),
            Some("CSAT rose by 2 in the last survey")
        );
        assert_eq!(
            sentence(NPS_LAST, Some(4.0), &profile).as_deref(),
            Some("last NPS answer 4 (detractor)")
        );
    }

    #[test]
    fn counts_durations_and_trends_read_as_sentences() {
        let none = |_: &str| None;
        assert_eq!(
            sentence(COMPLAINTS_90D, Some(3.0), &none).as_deref(),
            Some("3 complaints in 90 days")
        );
        assert_eq!(
            sentence(COMPLAINTS_90D, Some(1.0), &none).as_deref(),
            Some("1 complaint in 90 days")
        );
        assert_eq!(
            sentence(USAGE_CHANGE_PCT, Some(-60.2), &none).as_deref(),
            Some("usage down 60% (last 30 days vs the 60 before)")
        );
        assert_eq!(
            sentence(FIRST_RESPONSE_WORST_HOURS_90D, Some(0.25), &none).as_deref(),
            Some("slowest first response 15 minutes in 90 days")
        );
        assert_eq!(
            sentence(FIRST_RESPONSE_WORST_HOURS_90D, Some(72.0), &none).as_deref(),
            Some("slowest first response 3.0 days in 90 days")
        );
        assert_eq!(
            sentence(NPS_LAST, None, &none).as_deref(),
            Some("no NPS answer on record")
        );
        assert_eq!(sentence("MonthlyCharges", Some(70.0), &none), None);
    }

    /// Issue 32: with overflow checks on, a change past i64's range panicked in `abs`.
    #[test]
    fn a_change_past_i64s_range_is_told_without_overflow() {
        let none = |_: &str| None;
        assert_eq!(
            sentence(NPS_CHANGE, Some(-1e300), &none).as_deref(),
            Some("NPS fell by 9223372036854775808 in the last survey")
        );
    }
}
