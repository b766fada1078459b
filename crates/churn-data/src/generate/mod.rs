//! `churn generate`: a seeded synthetic company written as event tables, so every part of the
//! engine can be run and tested without private data.
//!
//! Each customer carries a latent satisfaction that moves with what happens to them: slow first
//! responses, complaints, reopened tickets and failed payments lower it; good resolutions and
//! refunds raise it; it drifts back towards the customer's own baseline. Survey answers (with
//! non-response), product usage and the daily churn hazard all follow it, with noise and
//! seasonality (a holiday peak in support load), so no single column gives the answer away.
//! Operational facts (contract, charge, autopay, tenure) move the hazard too.
//!
//! Customer `i` draws from its own ChaCha stream of the seed, so the files are identical for a
//! seed whatever the number of threads; customers are simulated in parallel chunks and written
//! in order. The tables' names and columns are defined in [`crate::event_tables`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use churn_core::experience::{
    ACQUISITION_CHANNEL, AUTOPAY, CONTRACT, MONTHLY_CHARGE, PLAN, REGION, SEGMENT,
};
use polars::prelude::*;
use rayon::prelude::*;

use crate::calendar::add_months;
use crate::error::{DataError, Result};
use crate::event_tables::{
    CUSTOMER_ID, billing, customers, subscriptions, surveys, tickets, usage,
};
use crate::writers::{FrameFile, OutputFormat};

mod customer;

use customer::simulate_customer;

/// The tables `churn generate` writes, in this order.
pub use crate::event_tables::TABLES;

/// Customers simulated per chunk: enough to keep both cores busy, small enough that a chunk's
/// events (about 60 per customer-year) stay a few tens of MB.
const CHUNK: usize = 10_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Customers to simulate.
    pub customers: usize,
    /// The seed every customer's random stream derives from.
    pub seed: u64,
    /// First day of the data (days since 1970-01-01).
    pub start: i32,
    /// Months simulated from `start`.
    pub months: u32,
    /// Parquet or CSV.
    pub format: OutputFormat,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSummary {
    /// The day after the last simulated day.
    pub end: i32,
    /// Customers whose subscription ended within the data.
    pub churned: usize,
    /// Rows per table, in [`TABLES`] order.
    pub rows: BTreeMap<&'static str, usize>,
    /// The files written, in [`TABLES`] order.
    pub files: Vec<PathBuf>,
}

/// Writes `customers`, `subscriptions`, `surveys`, `tickets`, `usage` and `billing` (`.parquet`
/// or `.csv`) into `out`. Files appear complete or not at all.
pub fn generate(options: &GenerateOptions, out: &Path) -> Result<GenerateSummary> {
    check_options(options)?;
    std::fs::create_dir_all(out).map_err(|source| DataError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let end = add_months(options.start, options.months as i32);
    let internal = |error: PolarsError| DataError::Write {
        path: out.to_path_buf(),
        reason: error.to_string(),
    };
    let mut files = create_table_files(options.format, out)?;
    let mut summary = GenerateSummary {
        end,
        churned: 0,
        rows: TABLES.iter().map(|table| (*table, 0)).collect(),
        files: Vec::new(),
    };
    let chunks: Vec<usize> = (0..options.customers.div_ceil(CHUNK)).collect();
    // A few chunks per thread at a time, written in order as soon as they are done.
    let window = 2 * rayon::current_num_threads().max(1);
    for group in chunks.chunks(window) {
        let simulated: Vec<Events> = group
            .par_iter()
            .map(|&chunk| simulate_chunk(options, end, chunk))
            .collect();
        for events in simulated {
            summary.churned += events.sub_end.iter().flatten().count();
            for ((table, frame), file) in TABLES
                .iter()
                .zip(events.frames().map_err(internal)?)
                .zip(&mut files)
            {
                *summary.rows.entry(table).or_default() += frame.height();
                file.write(&frame)?;
            }
        }
    }
    for file in files {
        let file = file.finish()?;
        summary.files.push(file.path().to_path_buf());
        file.commit()?;
    }
    Ok(summary)
}

/// Refuses to generate nothing: zero customers or zero months.
fn check_options(options: &GenerateOptions) -> Result<()> {
    if options.customers == 0 || options.months == 0 {
        return Err(DataError::InvalidOption {
            name: if options.customers == 0 {
                "customers"
            } else {
                "months"
            },
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    Ok(())
}

/// Starts one file per table in `out`, in [`TABLES`] order.
fn create_table_files(format: OutputFormat, out: &Path) -> Result<Vec<FrameFile>> {
    let empty = Events::default()
        .frames()
        .map_err(|error| DataError::Write {
            path: out.to_path_buf(),
            reason: error.to_string(),
        })?;
    TABLES
        .iter()
        .zip(&empty)
        .map(|(table, frame)| {
            let path = out.join(format!("{table}.{}", format.extension()));
            FrameFile::create(&path, format, frame.schema())
        })
        .collect()
}

/// Simulates the customers of one chunk, in order.
fn simulate_chunk(options: &GenerateOptions, end: i32, chunk: usize) -> Events {
    let mut events = Events::default();
    let first = chunk * CHUNK;
    for index in first..(first + CHUNK).min(options.customers) {
        simulate_customer(options, end, index, &mut events);
    }
    events
}

/// Returns a customer's id: `C` and seven digits.
pub fn customer_id(index: usize) -> String {
    format!("C{:07}", index + 1)
}

/// A chunk's rows of every table, column by column.
#[derive(Default)]
struct Events {
    customer_id: Vec<String>,
    signup_date: Vec<i32>,
    segment: Vec<&'static str>,
    region: Vec<&'static str>,
    acquisition_channel: Vec<&'static str>,

    sub_customer: Vec<String>,
    sub_plan: Vec<&'static str>,
    sub_contract: Vec<&'static str>,
    sub_charge: Vec<f64>,
    sub_autopay: Vec<bool>,
    sub_start: Vec<i32>,
    sub_end: Vec<Option<i32>>,

    survey_customer: Vec<String>,
    survey_kind: Vec<&'static str>,
    survey_touchpoint: Vec<&'static str>,
    survey_sent: Vec<i64>,
    survey_answered: Vec<Option<i64>>,
    survey_score: Vec<Option<i32>>,

    ticket_customer: Vec<String>,
    ticket_opened: Vec<i64>,
    ticket_first_response: Vec<Option<i64>>,
    ticket_closed: Vec<Option<i64>>,
    ticket_reopened: Vec<Option<i64>>,
    ticket_channel: Vec<&'static str>,
    ticket_category: Vec<&'static str>,
    ticket_complaint: Vec<bool>,

    usage_customer: Vec<String>,
    usage_day: Vec<i32>,
    usage_sessions: Vec<i32>,
    usage_minutes: Vec<f64>,

    billing_customer: Vec<String>,
    billing_time: Vec<i64>,
    billing_amount: Vec<f64>,
    billing_status: Vec<&'static str>,
}

fn date_column(name: &str, days: Vec<i32>) -> Column {
    Series::new(name.into(), days).into_date().into()
}

fn optional_date_column(name: &str, days: Vec<Option<i32>>) -> Column {
    Series::new(name.into(), days).into_date().into()
}

fn time_column(name: &str, millis: Vec<Option<i64>>) -> Column {
    Series::new(name.into(), millis)
        .into_datetime(TimeUnit::Milliseconds, None)
        .into()
}

impl Events {
    /// Returns one frame per table, in [`TABLES`] order, emptying the chunk. Columns are in
    /// their table's order (see [`crate::event_tables`]); counts are written as integers.
    fn frames(self) -> PolarsResult<Vec<DataFrame>> {
        let frame = |columns: Vec<Column>| {
            let height = columns.first().map_or(0, Column::len);
            DataFrame::new(height, columns)
        };
        [
            frame(vec![
                Column::new(CUSTOMER_ID.into(), self.customer_id),
                date_column(customers::SIGNUP_DATE, self.signup_date),
                Column::new(SEGMENT.into(), self.segment),
                Column::new(REGION.into(), self.region),
                Column::new(ACQUISITION_CHANNEL.into(), self.acquisition_channel),
            ]),
            frame(vec![
                Column::new(CUSTOMER_ID.into(), self.sub_customer),
                Column::new(PLAN.into(), self.sub_plan),
                Column::new(CONTRACT.into(), self.sub_contract),
                Column::new(MONTHLY_CHARGE.into(), self.sub_charge),
                Column::new(AUTOPAY.into(), self.sub_autopay),
                date_column(subscriptions::START_DATE, self.sub_start),
                optional_date_column(subscriptions::END_DATE, self.sub_end),
            ]),
            frame(vec![
                Column::new(CUSTOMER_ID.into(), self.survey_customer),
                time_column(
                    surveys::SENT_AT,
                    self.survey_sent.into_iter().map(Some).collect(),
                ),
                time_column(surveys::ANSWERED_AT, self.survey_answered),
                Column::new(surveys::KIND.into(), self.survey_kind),
                Column::new(surveys::TOUCHPOINT.into(), self.survey_touchpoint),
                Column::new(surveys::SCORE.into(), self.survey_score),
            ]),
            frame(vec![
                Column::new(CUSTOMER_ID.into(), self.ticket_customer),
                time_column(
                    tickets::OPENED_AT,
                    self.ticket_opened.into_iter().map(Some).collect(),
                ),
                time_column(tickets::FIRST_RESPONSE_AT, self.ticket_first_response),
                time_column(tickets::CLOSED_AT, self.ticket_closed),
                time_column(tickets::REOPENED_AT, self.ticket_reopened),
                Column::new(tickets::CHANNEL.into(), self.ticket_channel),
                Column::new(tickets::CATEGORY.into(), self.ticket_category),
                Column::new(tickets::COMPLAINT.into(), self.ticket_complaint),
            ]),
            frame(vec![
                Column::new(CUSTOMER_ID.into(), self.usage_customer),
                date_column(usage::DAY, self.usage_day),
                Column::new(usage::SESSIONS.into(), self.usage_sessions),
                Column::new(usage::MINUTES.into(), self.usage_minutes),
            ]),
            frame(vec![
                Column::new(CUSTOMER_ID.into(), self.billing_customer),
                time_column(
                    billing::BILLED_AT,
                    self.billing_time.into_iter().map(Some).collect(),
                ),
                Column::new(billing::AMOUNT.into(), self.billing_amount),
                Column::new(billing::STATUS.into(), self.billing_status),
            ]),
        ]
        .into_iter()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{DAY_MS, parse_date};
    use crate::event_tables::{ColumnKind, EVENT_TABLES};

    fn options(customers: usize, seed: u64) -> GenerateOptions {
        GenerateOptions {
            customers,
            seed,
            start: parse_date("2025-01-01").unwrap(),
            months: 6,
            format: OutputFormat::Parquet,
        }
    }

    fn simulate(options: &GenerateOptions, range: std::ops::Range<usize>) -> Events {
        let end = add_months(options.start, options.months as i32);
        let mut events = Events::default();
        for index in range {
            simulate_customer(options, end, index, &mut events);
        }
        events
    }

    #[test]
    fn a_customer_is_the_same_whatever_else_is_generated() {
        let alone = simulate(&options(10, 7), 5..6);
        let among = simulate(&options(10, 7), 0..10);
        let at = among
            .usage_customer
            .iter()
            .position(|id| id == "C0000006")
            .unwrap();
        let count = alone.usage_day.len();
        assert!(count > 0);
        assert_eq!(alone.usage_day, among.usage_day[at..at + count]);
        let other_seed = simulate(&options(10, 8), 5..6);
        assert_ne!(alone.usage_day, other_seed.usage_day);
    }

    #[test]
    fn events_respect_their_own_timeline() {
        let options = options(2_000, 3);
        let end_ms = i64::from(add_months(options.start, 6)) * DAY_MS;
        let events = simulate(&options, 0..2_000);
        for row in 0..events.ticket_opened.len() {
            let opened = events.ticket_opened[row];
            assert!(opened < end_ms);
            if let Some(first) = events.ticket_first_response[row] {
                assert!(first >= opened && first < end_ms);
                if let Some(closed) = events.ticket_closed[row] {
                    assert!(closed >= first);
                }
            }
        }
        for row in 0..events.survey_sent.len() {
            assert_eq!(
                events.survey_answered[row].is_some(),
                events.survey_score[row].is_some()
            );
            if let Some(score) = events.survey_score[row] {
                let range = match events.survey_kind[row] {
                    "NPS" => 0..=10,
                    "CSAT" => 1..=5,
                    _ => 1..=7,
                };
                assert!(range.contains(&score));
                assert!(events.survey_answered[row].unwrap() > events.survey_sent[row]);
            }
        }
        // Some customers churn and some surveys go unanswered, but not most.
        let churned = events.sub_end.iter().flatten().count();
        assert!((40..1_000).contains(&churned), "{churned} churned");
        let unanswered = events.survey_score.iter().filter(|s| s.is_none()).count();
        assert!(unanswered * 5 > events.survey_score.len());
        assert!(unanswered * 5 < events.survey_score.len() * 4);
    }

    #[test]
    fn frames_follow_the_event_table_definitions() {
        let frames = simulate(&options(20, 1), 0..20).frames().unwrap();
        assert_eq!(frames.len(), EVENT_TABLES.len());
        for (table, frame) in EVENT_TABLES.iter().zip(&frames) {
            let names: Vec<&str> = frame
                .get_column_names()
                .iter()
                .map(|name| name.as_str())
                .collect();
            let defined: Vec<&str> = table.columns.iter().map(|column| column.name).collect();
            assert_eq!(names, defined, "{}", table.name);
            for column in table.columns {
                // Counts are written as integers and read back as numbers.
                let expected = match column.kind {
                    ColumnKind::Integer => DataType::Int32,
                    kind => kind.read_type(),
                };
                let written = frame.column(column.name).unwrap().dtype();
                assert_eq!(written, &expected, "{}.{}", table.name, column.name);
            }
        }
    }
}
