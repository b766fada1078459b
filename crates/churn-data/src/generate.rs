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
//! in order.

use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::calendar::{DAY_MS, add_months, day_of_year};
use crate::error::{DataError, Result};
use crate::rescore::{OutputFormat, OutputWriter, PartialFile};

/// The tables `churn generate` writes, in this order.
pub const TABLES: [&str; 6] = [
    "customers",
    "subscriptions",
    "surveys",
    "tickets",
    "usage",
    "billing",
];

/// Customers simulated per chunk: enough to keep both cores busy, small enough that a chunk's
/// events (about 60 per customer-year) stay a few tens of MB.
const CHUNK: usize = 10_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub customers: usize,
    pub seed: u64,
    /// First day of the data (days since 1970-01-01).
    pub start: i32,
    pub months: u32,
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
    pub files: Vec<PathBuf>,
}

/// Writes `customers`, `subscriptions`, `surveys`, `tickets`, `usage` and `billing` (`.parquet`
/// or `.csv`) into `out`. Files appear complete or not at all.
pub fn generate(options: &GenerateOptions, out: &Path) -> Result<GenerateSummary> {
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
    std::fs::create_dir_all(out).map_err(|source| DataError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let end = add_months(options.start, options.months as i32);
    let extension = match options.format {
        OutputFormat::Parquet => "parquet",
        OutputFormat::Csv => "csv",
    };
    let mut writers = Vec::with_capacity(TABLES.len());
    let internal = |error: PolarsError| DataError::Write {
        path: out.to_path_buf(),
        reason: error.to_string(),
    };
    let empty = Events::default().frames().map_err(internal)?;
    for (table, frame) in TABLES.iter().zip(&empty) {
        let path = out.join(format!("{table}.{extension}"));
        let (file, handle) = PartialFile::create(&path)?;
        let writer = OutputWriter::create(options.format, handle, frame.schema())
            .map_err(|error| file.write_error(error))?;
        writers.push((file, writer));
    }
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
            .map(|&chunk| {
                let mut events = Events::default();
                let first = chunk * CHUNK;
                for index in first..(first + CHUNK).min(options.customers) {
                    simulate_customer(options, end, index, &mut events);
                }
                events
            })
            .collect();
        for events in simulated {
            summary.churned += events.sub_end.iter().flatten().count();
            for ((table, frame), (file, writer)) in TABLES
                .iter()
                .zip(events.frames().map_err(internal)?)
                .zip(&mut writers)
            {
                *summary.rows.entry(table).or_default() += frame.height();
                writer
                    .write_batch(&frame)
                    .map_err(|error| file.write_error(error))?;
            }
        }
    }
    for (file, mut writer) in writers {
        writer.finish().map_err(|error| file.write_error(error))?;
        summary.files.push(file.path().to_path_buf());
        file.commit()?;
    }
    Ok(summary)
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
    /// Returns one frame per table, in [`TABLES`] order, emptying the chunk.
    fn frames(self) -> PolarsResult<Vec<DataFrame>> {
        let frame = |columns: Vec<Column>| {
            let height = columns.first().map_or(0, Column::len);
            DataFrame::new(height, columns)
        };
        [
            frame(vec![
                Column::new("customer_id".into(), self.customer_id),
                date_column("signup_date", self.signup_date),
                Column::new("segment".into(), self.segment),
                Column::new("region".into(), self.region),
                Column::new("acquisition_channel".into(), self.acquisition_channel),
            ]),
            frame(vec![
                Column::new("customer_id".into(), self.sub_customer),
                Column::new("plan".into(), self.sub_plan),
                Column::new("contract".into(), self.sub_contract),
                Column::new("monthly_charge".into(), self.sub_charge),
                Column::new("autopay".into(), self.sub_autopay),
                date_column("start_date", self.sub_start),
                optional_date_column("end_date", self.sub_end),
            ]),
            frame(vec![
                Column::new("customer_id".into(), self.survey_customer),
                time_column("sent_at", self.survey_sent.into_iter().map(Some).collect()),
                time_column("answered_at", self.survey_answered),
                Column::new("kind".into(), self.survey_kind),
                Column::new("touchpoint".into(), self.survey_touchpoint),
                Column::new("score".into(), self.survey_score),
            ]),
            frame(vec![
                Column::new("customer_id".into(), self.ticket_customer),
                time_column(
                    "opened_at",
                    self.ticket_opened.into_iter().map(Some).collect(),
                ),
                time_column("first_response_at", self.ticket_first_response),
                time_column("closed_at", self.ticket_closed),
                time_column("reopened_at", self.ticket_reopened),
                Column::new("channel".into(), self.ticket_channel),
                Column::new("category".into(), self.ticket_category),
                Column::new("complaint".into(), self.ticket_complaint),
            ]),
            frame(vec![
                Column::new("customer_id".into(), self.usage_customer),
                date_column("day", self.usage_day),
                Column::new("sessions".into(), self.usage_sessions),
                Column::new("minutes".into(), self.usage_minutes),
            ]),
            frame(vec![
                Column::new("customer_id".into(), self.billing_customer),
                time_column(
                    "billed_at",
                    self.billing_time.into_iter().map(Some).collect(),
                ),
                Column::new("amount".into(), self.billing_amount),
                Column::new("status".into(), self.billing_status),
            ]),
        ]
        .into_iter()
        .collect()
    }
}

/// Picks one of `options` with the given weights (they need not sum to one).
fn pick<T: Copy>(rng: &mut ChaCha8Rng, options: &[(T, f64)]) -> T {
    let total: f64 = options.iter().map(|(_, weight)| weight).sum();
    let mut draw = rng.r#gen::<f64>() * total;
    for &(option, weight) in options {
        if draw < weight {
            return option;
        }
        draw -= weight;
    }
    options[options.len() - 1].0
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.r#gen::<f64>();
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn round_to(value: f64, step: f64) -> f64 {
    (value / step).round() * step
}

/// A change of satisfaction due on a day (effects of events that complete later, such as a
/// ticket's first response).
struct Pending {
    day: i32,
    delta: f64,
}

/// Simulates one customer from the data's start (or their signup) to their churn or the end.
fn simulate_customer(options: &GenerateOptions, end: i32, index: usize, events: &mut Events) {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(index as u64);
    let id = customer_id(index);
    let window = end - options.start;

    // Who they are. Three in four were already customers when the data starts.
    let signup = if rng.gen_bool(0.75) {
        options.start - rng.gen_range(1..=1_095)
    } else {
        options.start + rng.gen_range(0..window)
    };
    let segment = pick(
        &mut rng,
        &[
            ("consumer", 0.70),
            ("small_business", 0.22),
            ("enterprise", 0.08),
        ],
    );
    let region = pick(
        &mut rng,
        &[
            ("north", 1.0),
            ("south", 1.0),
            ("east", 1.0),
            ("west", 1.0),
            ("central", 1.0),
        ],
    );
    let channel = pick(
        &mut rng,
        &[
            ("web", 0.40),
            ("store", 0.25),
            ("partner", 0.20),
            ("referral", 0.15),
        ],
    );
    let plan = pick(
        &mut rng,
        &[("basic", 0.40), ("standard", 0.40), ("premium", 0.20)],
    );
    let annual_weight = if segment == "consumer" { 1.0 } else { 2.0 };
    let contract = pick(
        &mut rng,
        &[
            ("month-to-month", 1.1),
            ("one_year", 0.5 * annual_weight),
            ("two_year", 0.4 * annual_weight),
        ],
    );
    let base_charge = match plan {
        "basic" => 25.0,
        "standard" => 55.0,
        _ => 90.0,
    };
    let segment_factor = match segment {
        "consumer" => 1.0,
        "small_business" => 1.6,
        _ => 3.0,
    };
    let charge = round_to(
        base_charge * segment_factor * (1.0 + 0.08 * normal(&mut rng)).max(0.5),
        0.01,
    );
    let autopay = rng.gen_bool(0.6);
    let channel_effect = match channel {
        "referral" => 0.35,
        "partner" => -0.15,
        _ => 0.0,
    };
    // Latent satisfaction: a baseline of their own and today's level.
    let baseline = 0.2 + channel_effect + 0.45 * normal(&mut rng);
    let mut satisfaction = baseline;
    let engagement = 0.6 * normal(&mut rng) + if plan == "premium" { 0.3 } else { 0.0 };
    let problem_proneness = (0.4 * normal(&mut rng)).exp();
    let survey_propensity = 0.8 * normal(&mut rng);
    let nps_phase = rng.gen_range(0..90);
    let term_months = match contract {
        "one_year" => 12,
        "two_year" => 24,
        _ => 1,
    };

    events.customer_id.push(id.clone());
    events.signup_date.push(signup);
    events.segment.push(segment);
    events.region.push(region);
    events.acquisition_channel.push(channel);

    let first_day = signup.max(options.start);
    let mut bills = 0;
    let mut next_bill = signup;
    while next_bill < first_day {
        bills += 1;
        next_bill = add_months(signup, bills);
    }
    let mut terms = 1;
    let mut term_end = add_months(signup, term_months);
    while term_end < first_day {
        terms += 1;
        term_end = add_months(signup, terms * term_months);
    }
    let mut pending: Vec<Pending> = Vec::new();
    let mut retry: Option<(i32, u32)> = None;
    let mut last_failure = i32::MIN / 2;
    let mut last_ticket = i32::MIN / 2;
    let mut churned = None;

    let survey = |events: &mut Events,
                  rng: &mut ChaCha8Rng,
                  satisfaction: f64,
                  sent_ms: i64,
                  kind: &'static str,
                  touchpoint: &'static str,
                  shift: f64| {
        // An invitation due after the data ends is never sent.
        if sent_ms >= i64::from(end) * DAY_MS {
            return;
        }
        let respond = sigmoid(0.2 + 0.5 * satisfaction + survey_propensity);
        let answered = rng.gen_bool(respond.clamp(0.0, 1.0));
        let answered_ms = sent_ms + rng.gen_range(360_000..259_200_000);
        let noise = normal(rng);
        let (score, low, high) = match kind {
            "NPS" => (7.2 + 2.0 * satisfaction + shift + 0.9 * noise, 0.0, 10.0),
            "CSAT" => (
                3.9 + 0.8 * satisfaction + 0.4 * shift + 0.7 * noise,
                1.0,
                5.0,
            ),
            _ => (
                5.0 + 0.6 * satisfaction + 0.5 * shift + 0.9 * noise,
                1.0,
                7.0,
            ),
        };
        let known = answered && answered_ms < i64::from(end) * DAY_MS;
        events.survey_customer.push(id.clone());
        events.survey_kind.push(kind);
        events.survey_touchpoint.push(touchpoint);
        events.survey_sent.push(sent_ms);
        events.survey_answered.push(known.then_some(answered_ms));
        events
            .survey_score
            .push(known.then(|| score.round().clamp(low, high) as i32));
    };

    for day in first_day..end {
        let day_ms = i64::from(day) * DAY_MS;
        let within = |ms: i64| (ms < i64::from(end) * DAY_MS).then_some(ms);
        // Support load peaks over the year-end holidays.
        let season = (TAU * f64::from(day_of_year(day)) / 365.0).cos();
        pending.retain(|effect| {
            if effect.day == day {
                satisfaction += effect.delta;
                false
            } else {
                true
            }
        });
        satisfaction += 0.008 * (baseline - satisfaction) + 0.025 * normal(&mut rng);
        let tenure = day - signup;

        if tenure == 14 {
            let sent = day_ms + rng.gen_range(32_400_000..64_800_000);
            survey(
                events,
                &mut rng,
                satisfaction,
                sent,
                "CSAT",
                "onboarding",
                0.0,
            );
        }
        if tenure > 0 && (tenure - nps_phase) % 90 == 0 {
            let sent = day_ms + rng.gen_range(32_400_000..64_800_000);
            survey(
                events,
                &mut rng,
                satisfaction,
                sent,
                "NPS",
                "relationship",
                0.0,
            );
        }
        if term_months > 1 && term_end - day == 30 {
            let sent = day_ms + rng.gen_range(32_400_000..64_800_000);
            survey(events, &mut rng, satisfaction, sent, "NPS", "renewal", 0.0);
        }
        if day >= term_end {
            terms += 1;
            term_end = add_months(signup, terms * term_months);
        }

        // Billing on the monthly anniversary, with up to two retries three days apart.
        let mut charge_now = None;
        if day == next_bill {
            bills += 1;
            next_bill = add_months(signup, bills);
            charge_now = Some(0);
        } else if let Some((retry_day, attempt)) = retry
            && retry_day == day
        {
            charge_now = Some(attempt);
        }
        if let Some(attempt) = charge_now {
            let fail = if autopay { 0.015 } else { 0.05 }
                + if segment == "consumer" { 0.02 } else { 0.0 }
                + if attempt > 0 { 0.2 } else { 0.0 };
            let failed = rng.gen_bool(fail);
            events.billing_customer.push(id.clone());
            events
                .billing_time
                .push(day_ms + rng.gen_range(0..21_600_000));
            events.billing_amount.push(charge);
            events
                .billing_status
                .push(if failed { "failed" } else { "paid" });
            retry = None;
            if failed {
                satisfaction -= 0.3;
                last_failure = day;
                if attempt < 2 {
                    retry = Some((day + 3, attempt + 1));
                }
                if rng.gen_bool(0.4) {
                    let sent = day_ms + DAY_MS + rng.gen_range(32_400_000..64_800_000);
                    survey(events, &mut rng, satisfaction, sent, "CES", "billing", -2.0);
                }
            }
        }

        // Support tickets: problems come more to the problem-prone, after a failed payment,
        // and to the unhappy.
        let recent_failure = day - last_failure < 10;
        let ticket_rate = 0.0035
            * problem_proneness
            * (1.0 + 2.0 * f64::from(u8::from(recent_failure)))
            * (1.0 + 0.5 * (-satisfaction).max(0.0))
            * (1.0 + 0.3 * season.max(0.0));
        if rng.gen_bool(ticket_rate.min(0.5)) {
            let category = if recent_failure && rng.gen_bool(0.6) {
                "billing"
            } else {
                pick(
                    &mut rng,
                    &[
                        ("technical", 0.55),
                        ("billing", 0.2),
                        ("account", 0.15),
                        ("cancellation", 0.1 * (1.0 + (-satisfaction).max(0.0))),
                    ],
                )
            };
            let ticket_channel = pick(
                &mut rng,
                &[
                    ("phone", 0.35),
                    ("chat", 0.30),
                    ("email", 0.25),
                    ("social", 0.10),
                ],
            );
            let median_hours = match ticket_channel {
                "phone" => 0.15,
                "chat" => 0.4,
                "email" => 10.0,
                _ => 4.0,
            };
            let priority = if segment == "enterprise" { 0.5 } else { 1.0 };
            let response_hours = median_hours
                * priority
                * (0.9 * normal(&mut rng)).exp()
                * (1.0 + 0.8 * season.max(0.0));
            let opened = day_ms + rng.gen_range(28_800_000..72_000_000);
            let first_response = opened + (response_hours * 3_600_000.0) as i64;
            let handling_hours = 20.0 * normal(&mut rng).exp();
            let closed = first_response + (handling_hours * 3_600_000.0) as i64;
            let slow = response_hours > 24.0;
            // Known when the ticket opens (its slow answer is still to come): a repeat contact
            // within 30 days and an unhappy customer complain more.
            let repeat_contact = day - last_ticket < 30;
            last_ticket = day;
            let complaint = rng.gen_bool(
                (0.08
                    + 0.25 * f64::from(u8::from(repeat_contact))
                    + 0.15 * f64::from(u8::from(satisfaction < -0.3))
                    + if category == "billing" { 0.1 } else { 0.0 })
                .min(1.0),
            );
            let good = rng.gen_bool(
                (0.7 + 0.1 * satisfaction - 0.2 * f64::from(u8::from(slow))).clamp(0.2, 0.95),
            );
            let reopened = rng
                .gen_bool(if good { 0.05 } else { 0.3 })
                .then(|| closed + rng.gen_range(DAY_MS..6 * DAY_MS));
            let day_of = |ms: i64| ms.div_euclid(DAY_MS) as i32;
            if complaint {
                satisfaction -= 0.15;
            }
            pending.push(Pending {
                day: day_of(first_response).max(day + 1),
                delta: -0.1 * (1.0 + response_hours / 2.0).ln(),
            });
            pending.push(Pending {
                day: day_of(closed).max(day + 1),
                delta: if good { 0.12 } else { -0.3 },
            });
            if let Some(reopened) = reopened {
                pending.push(Pending {
                    day: day_of(reopened),
                    delta: -0.2,
                });
            }
            if within(closed).is_some() && rng.gen_bool(0.6) {
                let kind = if rng.gen_bool(0.5) { "CSAT" } else { "CES" };
                let shift = if good { 1.0 } else { -1.0 } - 0.5 * (1.0 + response_hours / 2.0).ln();
                survey(
                    events,
                    &mut rng,
                    satisfaction,
                    closed + 7_200_000,
                    kind,
                    "support",
                    shift,
                );
            }
            if category == "billing" && good && rng.gen_bool(0.4) && within(closed).is_some() {
                events.billing_customer.push(id.clone());
                events.billing_time.push(closed);
                events
                    .billing_amount
                    .push(round_to(charge * rng.gen_range(0.1..0.5), 0.01));
                events.billing_status.push("refunded");
                pending.push(Pending {
                    day: day_of(closed).max(day + 1),
                    delta: 0.1,
                });
            }
            events.ticket_customer.push(id.clone());
            events.ticket_opened.push(opened);
            events.ticket_first_response.push(within(first_response));
            events.ticket_closed.push(within(closed));
            events.ticket_reopened.push(reopened.and_then(within));
            events.ticket_channel.push(ticket_channel);
            events.ticket_category.push(category);
            events.ticket_complaint.push(complaint);
        }

        // Product usage follows engagement and satisfaction; weekends are quieter.
        let weekend = matches!((day + 3).rem_euclid(7), 5 | 6);
        let use_chance =
            sigmoid(-2.2 + engagement + 0.3 * satisfaction - if weekend { 0.15 } else { 0.0 });
        if rng.gen_bool(use_chance) {
            let sessions = 1 + (-1.5 * (1.0 - rng.r#gen::<f64>()).ln()).floor() as i32;
            let minutes =
                f64::from(sessions) * 9.0 * (0.25 * satisfaction + 0.5 * normal(&mut rng)).exp();
            events.usage_customer.push(id.clone());
            events.usage_day.push(day);
            events.usage_sessions.push(sessions);
            events.usage_minutes.push(round_to(minutes, 0.1));
        }

        // The churn hazard: unhappy, recently failed, new, expensive and out-of-contract
        // customers leave more; contracts hold customers except near their renewal.
        let contract_hold = match contract {
            "month-to-month" => 0.0,
            _ if term_end - day <= 30 => -0.5,
            "one_year" => -2.2,
            _ => -2.7,
        };
        let hazard = -7.6
            + contract_hold
            + 2.4 * (0.2 - satisfaction)
            + if day - last_failure < 30 { 0.5 } else { 0.0 }
            + if tenure < 120 { 0.4 } else { 0.0 }
            + 0.004 * (charge / segment_factor - 55.0)
            + if autopay { -0.3 } else { 0.0 }
            + 0.1 * season;
        if rng.gen_bool(sigmoid(hazard)) {
            churned = Some(day);
            break;
        }
    }

    events.sub_customer.push(id);
    events.sub_plan.push(plan);
    events.sub_contract.push(contract);
    events.sub_charge.push(charge);
    events.sub_autopay.push(autopay);
    events.sub_start.push(signup);
    events.sub_end.push(churned);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_date;

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
}
