//! The lazy plan of one snapshot's profiles, one step per event table: the subscription in
//! force (and the label), survey scores, tickets, usage and billing, left-joined on the
//! customer id and selected in the profiles' column order.

use churn_core::experience::*;
use polars::prelude::*;

use super::{EventTables, LABEL, SNAPSHOT};
use crate::calendar::DAY_MS;
use crate::error::Result;
use crate::event_tables::{
    CUSTOMER_ID, billing, customers, subscriptions, surveys, tickets, usage,
};

/// When the customer's last subscription ends (a column of the plan, not of the profiles).
const CUSTOMER_END: &str = "customer_end";
/// The start of the customer's first subscription (a column of the plan).
const FIRST_START: &str = "first_start";
const HOUR_MS: f64 = 3_600_000.0;

/// The snapshot's instant, and expressions relative to it.
#[derive(Debug, Clone, Copy)]
struct AsOf {
    /// The snapshot's day.
    day: i32,
    /// The snapshot's first millisecond: events before it are known.
    at_ms: i64,
}

impl AsOf {
    fn new(day: i32) -> Self {
        AsOf {
            day,
            at_ms: i64::from(day) * DAY_MS,
        }
    }

    /// The instant `days` days before the snapshot.
    fn days_ago_ms(self, days: i64) -> Expr {
        lit(self.at_ms - days * DAY_MS)
    }

    /// Whether a time column is before the snapshot (null is not).
    fn before(self, column: &str) -> Expr {
        col(column).lt(lit(self.at_ms))
    }
}

/// Counts the rows where `predicate` holds.
fn count_if(predicate: Expr) -> Expr {
    predicate.cast(DataType::UInt32).sum()
}

/// Left-joins `other` on the customer id.
fn left_join(frame: LazyFrame, other: LazyFrame) -> LazyFrame {
    frame.join(
        other,
        [col(CUSTOMER_ID)],
        [col(CUSTOMER_ID)],
        JoinArgs::new(JoinType::Left),
    )
}

impl EventTables {
    /// Builds the lazy plan of one snapshot's profiles: one row per customer active at
    /// `as_of` (a day number), with the features and the label over `horizon_days`.
    pub fn profiles_plan(&self, as_of: i32, horizon_days: i32) -> Result<LazyFrame> {
        let at = AsOf::new(as_of);
        let mut joined = self.subscription_features(at, horizon_days)?;
        let answered = self.answered_surveys(at)?;
        for features in [
            survey_scores(&answered, "NPS", NPS_LAST, NPS_CHANGE),
            survey_scores(&answered, "CSAT", CSAT_LAST, CSAT_CHANGE),
            survey_scores(&answered, "CES", CES_LAST, CES_CHANGE),
            self.survey_nonresponse(at)?,
            self.ticket_features(at)?,
            self.usage_features(at)?,
            self.billing_features(at)?,
        ] {
            joined = left_join(joined, features);
        }
        Ok(profile_columns(joined, at).sort([CUSTOMER_ID], SortMultipleOptions::default()))
    }

    /// Returns when each customer's last subscription ends (null while one is open): a plan
    /// change (one subscription ending, the next starting) is not churn. This reads the future,
    /// as a label must; no feature uses it.
    fn customer_end(&self) -> Result<LazyFrame> {
        Ok(self
            .scan(&subscriptions::TABLE)?
            .group_by([col(CUSTOMER_ID)])
            .agg([when(col(subscriptions::END_DATE).null_count().gt(lit(0)))
                .then(lit(NULL).cast(DataType::Int32))
                .otherwise(col(subscriptions::END_DATE).max())
                .alias(CUSTOMER_END)]))
    }

    /// Returns each active customer's subscription in force: the latest one started before the
    /// snapshot (ties broken by the later end, an open one last), with the first start.
    fn subscription_in_force(&self, at: AsOf) -> Result<LazyFrame> {
        use subscriptions::{END_DATE, START_DATE};
        Ok(self
            .scan(&subscriptions::TABLE)?
            .filter(col(START_DATE).lt(lit(at.day)))
            .sort(
                [START_DATE, END_DATE],
                SortMultipleOptions::default()
                    .with_nulls_last(true)
                    .with_maintain_order(true),
            )
            .group_by([col(CUSTOMER_ID)])
            .agg([
                col(START_DATE).min().alias(FIRST_START),
                col(START_DATE).last().alias(START_DATE),
                col(END_DATE).last().alias(END_DATE),
                col(PLAN).last(),
                col(CONTRACT).last(),
                col(MONTHLY_CHARGE).last(),
                col(AUTOPAY).last(),
            ])
            .filter(col(END_DATE).is_null().or(col(END_DATE).gt_eq(lit(at.day)))))
    }

    /// Returns one row per active customer: the subscription in force with tenure and days to
    /// renewal, the label over `horizon_days`, and who the customer is.
    fn subscription_features(&self, at: AsOf, horizon_days: i32) -> Result<LazyFrame> {
        let customer_end = self.customer_end()?;
        let in_force = self.subscription_in_force(at)?;
        let as_of = at.day;
        let term_days = when(col(CONTRACT).eq(lit("two_year")))
            .then(lit(24.0 * DAYS_PER_MONTH))
            .when(col(CONTRACT).eq(lit("one_year")))
            .then(lit(12.0 * DAYS_PER_MONTH))
            .otherwise(lit(DAYS_PER_MONTH));
        // Both are whole and non-negative, so truncating casts floor them.
        let whole = |expr: Expr| expr.cast(DataType::Int64).cast(DataType::Float64);
        let since_start = (lit(as_of) - col(subscriptions::START_DATE)).cast(DataType::Float64);
        let terms_done = whole(since_start.clone() / term_days.clone());
        Ok(in_force
            .with_columns([
                whole(
                    (lit(as_of) - col(FIRST_START)).cast(DataType::Float64) / lit(DAYS_PER_MONTH),
                )
                .alias(TENURE_MONTHS),
                whole(term_days.clone() - (since_start - terms_done * term_days))
                    .alias(DAYS_TO_RENEWAL),
            ])
            .join(
                customer_end,
                [col(CUSTOMER_ID)],
                [col(CUSTOMER_ID)],
                JoinArgs::new(JoinType::Left),
            )
            .with_columns([col(CUSTOMER_END)
                .lt(lit(as_of + horizon_days))
                .fill_null(lit(false))
                .alias(LABEL)])
            .join(
                self.scan(&customers::TABLE)?.select([
                    col(CUSTOMER_ID),
                    col(SEGMENT),
                    col(REGION),
                    col(ACQUISITION_CHANNEL),
                ]),
                [col(CUSTOMER_ID)],
                [col(CUSTOMER_ID)],
                JoinArgs::new(JoinType::Left),
            ))
    }

    /// Returns the answered surveys with a score, oldest answer first: a score counts once
    /// answered.
    fn answered_surveys(&self, at: AsOf) -> Result<LazyFrame> {
        use surveys::{ANSWERED_AT, SCORE};
        Ok(self
            .scan(&surveys::TABLE)?
            .filter(at.before(ANSWERED_AT).and(col(SCORE).is_not_null()))
            .sort([ANSWERED_AT], SortMultipleOptions::default()))
    }

    /// Returns the share of surveys sent 180 to 7 days before the snapshot left unanswered by
    /// it.
    fn survey_nonresponse(&self, at: AsOf) -> Result<LazyFrame> {
        use surveys::{ANSWERED_AT, SENT_AT};
        Ok(self
            .scan(&surveys::TABLE)?
            .filter(
                col(SENT_AT)
                    .gt_eq(at.days_ago_ms(180))
                    .and(col(SENT_AT).lt(at.days_ago_ms(7))),
            )
            .group_by([col(CUSTOMER_ID)])
            .agg([(lit(1.0)
                - count_if(col(ANSWERED_AT).lt(lit(at.at_ms))).cast(DataType::Float64)
                    / col(SENT_AT).len().cast(DataType::Float64))
            .alias(SURVEY_NONRESPONSE_180D)]))
    }

    /// Returns the ticket features over tickets opened before the snapshot; a response or
    /// reopening after it is unknown.
    fn ticket_features(&self, at: AsOf) -> Result<LazyFrame> {
        use tickets::{CLOSED_AT, COMPLAINT, FIRST_RESPONSE_AT, OPENED_AT, REOPENED_AT};
        let response_known = at.before(FIRST_RESPONSE_AT);
        let opened_within = |days: i64| col(OPENED_AT).gt_eq(at.days_ago_ms(days));
        Ok(self
            .scan(&tickets::TABLE)?
            .filter(at.before(OPENED_AT))
            .group_by([col(CUSTOMER_ID)])
            .agg([
                count_if(opened_within(30)).alias(TICKETS_30D),
                count_if(opened_within(90)).alias(TICKETS_90D),
                count_if(opened_within(90).and(col(COMPLAINT))).alias(COMPLAINTS_90D),
                ((col(FIRST_RESPONSE_AT) - col(OPENED_AT)).cast(DataType::Float64) / lit(HOUR_MS))
                    .filter(opened_within(90).and(response_known.clone()))
                    .median()
                    .alias(FIRST_RESPONSE_MEDIAN_HOURS_90D),
                ((when(response_known)
                    .then(col(FIRST_RESPONSE_AT))
                    .otherwise(lit(at.at_ms))
                    - col(OPENED_AT))
                .cast(DataType::Float64)
                    / lit(HOUR_MS))
                .filter(opened_within(90))
                .max()
                .alias(FIRST_RESPONSE_WORST_HOURS_90D),
                count_if(
                    at.before(REOPENED_AT)
                        .and(col(REOPENED_AT).gt_eq(at.days_ago_ms(90))),
                )
                .alias(REOPENED_TICKETS_90D),
                // `closed_at` is the first close: a ticket closed before the snapshot is not
                // open there, whatever happens to it later.
                count_if(
                    col(CLOSED_AT)
                        .is_null()
                        .or(col(CLOSED_AT).gt_eq(lit(at.at_ms))),
                )
                .alias(OPEN_TICKETS),
            ]))
    }

    /// Returns the usage features over the days before the snapshot.
    fn usage_features(&self, at: AsOf) -> Result<LazyFrame> {
        use usage::{DAY, MINUTES, SESSIONS};
        let as_of = at.day;
        Ok(self
            .scan(&usage::TABLE)?
            .filter(col(DAY).lt(lit(as_of)))
            .group_by([col(CUSTOMER_ID)])
            .agg([
                col(MINUTES)
                    .filter(col(DAY).gt_eq(lit(as_of - 30)))
                    .sum()
                    .alias(USAGE_MINUTES_30D),
                col(MINUTES)
                    .filter(
                        col(DAY)
                            .gt_eq(lit(as_of - 90))
                            .and(col(DAY).lt(lit(as_of - 30))),
                    )
                    .sum()
                    .alias(USAGE_MINUTES_PRIOR_60D),
                col(SESSIONS)
                    .filter(col(DAY).gt_eq(lit(as_of - 30)))
                    .sum()
                    .alias(SESSIONS_30D),
                (lit(as_of) - col(DAY).max())
                    .cast(DataType::Float64)
                    .alias(DAYS_SINCE_LAST_USE),
            ]))
    }

    /// Returns failed payments and refunds over the 90 days before the snapshot.
    fn billing_features(&self, at: AsOf) -> Result<LazyFrame> {
        use billing::{BILLED_AT, STATUS};
        Ok(self
            .scan(&billing::TABLE)?
            .filter(
                at.before(BILLED_AT)
                    .and(col(BILLED_AT).gt_eq(at.days_ago_ms(90))),
            )
            .group_by([col(CUSTOMER_ID)])
            .agg([
                count_if(col(STATUS).eq(lit("failed"))).alias(PAYMENT_FAILURES_90D),
                count_if(col(STATUS).eq(lit("refunded"))).alias(REFUNDS_90D),
            ]))
    }
}

/// Returns the last score of one kind of survey and its change against the answer before.
fn survey_scores(answered: &LazyFrame, kind: &str, last: &str, change: &str) -> LazyFrame {
    use surveys::{KIND, SCORE};
    answered
        .clone()
        .filter(col(KIND).eq(lit(kind.to_string())))
        .group_by([col(CUSTOMER_ID)])
        .agg([
            col(SCORE).last().alias(last),
            when(col(SCORE).len().gt_eq(lit(2)))
                .then(col(SCORE).last() - col(SCORE).slice(lit(-2), lit(1)).first())
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(change),
        ])
}

/// Selects the profiles' columns from the joined features, in order: counts with no event are
/// zero, and the usage trend and detractor flag are derived here.
fn profile_columns(joined: LazyFrame, at: AsOf) -> LazyFrame {
    let as_of = at.day;
    let zero_if_none = |name: &str| col(name).fill_null(lit(0)).cast(DataType::Float64);
    let prior_half = col(USAGE_MINUTES_PRIOR_60D).fill_null(lit(0.0)) / lit(2.0);
    let change = lit(100.0) * (zero_if_none(USAGE_MINUTES_30D) / prior_half.clone() - lit(1.0));
    joined.select([
        col(CUSTOMER_ID),
        lit(as_of).cast(DataType::Date).alias(SNAPSHOT),
        col(TENURE_MONTHS),
        col(CONTRACT),
        col(PLAN),
        col(MONTHLY_CHARGE),
        col(AUTOPAY),
        col(DAYS_TO_RENEWAL),
        col(SEGMENT),
        col(REGION),
        col(ACQUISITION_CHANNEL),
        col(NPS_LAST),
        col(NPS_CHANGE),
        col(NPS_LAST).lt_eq(lit(6.0)).alias(NPS_DETRACTOR),
        col(CSAT_LAST),
        col(CSAT_CHANGE),
        col(CES_LAST),
        col(CES_CHANGE),
        col(SURVEY_NONRESPONSE_180D),
        zero_if_none(TICKETS_30D),
        zero_if_none(TICKETS_90D),
        zero_if_none(COMPLAINTS_90D),
        col(FIRST_RESPONSE_MEDIAN_HOURS_90D),
        col(FIRST_RESPONSE_WORST_HOURS_90D),
        zero_if_none(REOPENED_TICKETS_90D),
        zero_if_none(OPEN_TICKETS),
        zero_if_none(USAGE_MINUTES_30D),
        zero_if_none(USAGE_MINUTES_PRIOR_60D),
        // Capped: from almost no use, any use is a rise of thousands of percent. Before signup
        // is no use, not low use: customers newer than the 90 days have no trend.
        when(
            prior_half
                .clone()
                .gt(lit(0.0))
                .and(col(FIRST_START).lt_eq(lit(as_of - 90))),
        )
        .then(
            when(change.clone().gt(lit(USAGE_CHANGE_CAP_PCT)))
                .then(lit(USAGE_CHANGE_CAP_PCT))
                .otherwise(change),
        )
        .otherwise(lit(NULL).cast(DataType::Float64))
        .alias(USAGE_CHANGE_PCT),
        zero_if_none(SESSIONS_30D),
        col(DAYS_SINCE_LAST_USE),
        zero_if_none(PAYMENT_FAILURES_90D),
        zero_if_none(REFUNDS_90D),
        col(LABEL),
    ])
}
