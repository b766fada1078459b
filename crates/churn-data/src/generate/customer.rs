//! One customer's life, day by day: who they are, then each day's surveys, bills, tickets,
//! product use and churn hazard.
//!
//! Every draw comes from the customer's own random stream in a fixed order, so the steps below
//! must keep the order of their draws: reordering two of them changes the generated files.

use std::f64::consts::TAU;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Events, GenerateOptions, customer_id};
use crate::calendar::{DAY_MS, add_months, day_of_year};

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

/// Returns the day a time falls on.
fn day_of(ms: i64) -> i32 {
    ms.div_euclid(DAY_MS) as i32
}

/// A change of satisfaction due on a day (effects of events that complete later, such as a
/// ticket's first response).
struct Pending {
    day: i32,
    delta: f64,
}

/// Who a customer is: drawn once, before their first day.
struct Profile {
    signup: i32,
    segment: &'static str,
    region: &'static str,
    channel: &'static str,
    plan: &'static str,
    contract: &'static str,
    /// How much more than a consumer the segment pays.
    segment_factor: f64,
    charge: f64,
    autopay: bool,
    /// The satisfaction the customer drifts back to.
    baseline: f64,
    engagement: f64,
    problem_proneness: f64,
    survey_propensity: f64,
    /// Where in the 90-day cycle of relationship surveys the customer is.
    nps_phase: i32,
    term_months: i32,
}

impl Profile {
    /// Draws who the customer is. Three in four were already customers when the data starts.
    fn draw(rng: &mut ChaCha8Rng, start: i32, end: i32) -> Self {
        let window = end - start;
        let signup = if rng.gen_bool(0.75) {
            start - rng.gen_range(1..=1_095)
        } else {
            start + rng.gen_range(0..window)
        };
        let segment = pick(
            rng,
            &[
                ("consumer", 0.70),
                ("small_business", 0.22),
                ("enterprise", 0.08),
            ],
        );
        let region = pick(
            rng,
            &[
                ("north", 1.0),
                ("south", 1.0),
                ("east", 1.0),
                ("west", 1.0),
                ("central", 1.0),
            ],
        );
        let channel = pick(
            rng,
            &[
                ("web", 0.40),
                ("store", 0.25),
                ("partner", 0.20),
                ("referral", 0.15),
            ],
        );
        let plan = pick(
            rng,
            &[("basic", 0.40), ("standard", 0.40), ("premium", 0.20)],
        );
        let annual_weight = if segment == "consumer" { 1.0 } else { 2.0 };
        let contract = pick(
            rng,
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
            base_charge * segment_factor * (1.0 + 0.08 * normal(rng)).max(0.5),
            0.01,
        );
        let autopay = rng.gen_bool(0.6);
        let channel_effect = match channel {
            "referral" => 0.35,
            "partner" => -0.15,
            _ => 0.0,
        };
        let baseline = 0.2 + channel_effect + 0.45 * normal(rng);
        let engagement = 0.6 * normal(rng) + if plan == "premium" { 0.3 } else { 0.0 };
        let problem_proneness = (0.4 * normal(rng)).exp();
        let survey_propensity = 0.8 * normal(rng);
        let nps_phase = rng.gen_range(0..90);
        let term_months = match contract {
            "one_year" => 12,
            "two_year" => 24,
            _ => 1,
        };
        Profile {
            signup,
            segment,
            region,
            channel,
            plan,
            contract,
            segment_factor,
            charge,
            autopay,
            baseline,
            engagement,
            problem_proneness,
            survey_propensity,
            nps_phase,
            term_months,
        }
    }
}

/// A support ticket as drawn on the day it opens: what happens to it later is decided then.
struct Ticket {
    category: &'static str,
    channel: &'static str,
    response_hours: f64,
    opened: i64,
    first_response: i64,
    closed: i64,
    complaint: bool,
    /// Resolved well.
    good: bool,
    reopened: Option<i64>,
}

/// A customer being simulated: who they are, their random stream and what they remember.
struct Life {
    id: String,
    profile: Profile,
    rng: ChaCha8Rng,
    /// The day after the data ends.
    end: i32,
    /// Latent satisfaction today.
    satisfaction: f64,
    /// Bills issued since signup, and the day of the next one.
    bills: i32,
    next_bill: i32,
    /// Contract terms begun since signup, and the day the current one ends.
    terms: i32,
    term_end: i32,
    pending: Vec<Pending>,
    /// The day and attempt of a failed payment's retry.
    retry: Option<(i32, u32)>,
    last_failure: i32,
    last_ticket: i32,
}

/// Simulates one customer from the data's start (or their signup) to their churn or the end.
pub(super) fn simulate_customer(
    options: &GenerateOptions,
    end: i32,
    index: usize,
    events: &mut Events,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(index as u64);
    let id = customer_id(index);
    let profile = Profile::draw(&mut rng, options.start, end);
    events.customer_id.push(id.clone());
    events.signup_date.push(profile.signup);
    events.segment.push(profile.segment);
    events.region.push(profile.region);
    events.acquisition_channel.push(profile.channel);

    let first_day = profile.signup.max(options.start);
    let mut life = Life::begin(id, profile, rng, first_day, end);
    let churned = (first_day..end).find(|&day| life.live_day(day, events));

    let Life { id, profile, .. } = life;
    events.sub_customer.push(id);
    events.sub_plan.push(profile.plan);
    events.sub_contract.push(profile.contract);
    events.sub_charge.push(profile.charge);
    events.sub_autopay.push(profile.autopay);
    events.sub_start.push(profile.signup);
    events.sub_end.push(churned);
}

impl Life {
    /// Starts the simulation on `first_day`, with the bills and contract terms before it done.
    fn begin(id: String, profile: Profile, rng: ChaCha8Rng, first_day: i32, end: i32) -> Self {
        let signup = profile.signup;
        let mut bills = 0;
        let mut next_bill = signup;
        while next_bill < first_day {
            bills += 1;
            next_bill = add_months(signup, bills);
        }
        let mut terms = 1;
        let mut term_end = add_months(signup, profile.term_months);
        while term_end < first_day {
            terms += 1;
            term_end = add_months(signup, terms * profile.term_months);
        }
        Life {
            id,
            satisfaction: profile.baseline,
            profile,
            rng,
            end,
            bills,
            next_bill,
            terms,
            term_end,
            pending: Vec::new(),
            retry: None,
            last_failure: i32::MIN / 2,
            last_ticket: i32::MIN / 2,
        }
    }

    /// Lives one day; returns whether the customer churned on it.
    fn live_day(&mut self, day: i32, events: &mut Events) -> bool {
        // Support load peaks over the year-end holidays.
        let season = (TAU * f64::from(day_of_year(day)) / 365.0).cos();
        self.drift(day);
        self.send_scheduled_surveys(day, events);
        if day >= self.term_end {
            self.terms += 1;
            self.term_end = add_months(self.profile.signup, self.terms * self.profile.term_months);
        }
        self.bill(day, events);
        if self.ticket_opens(day, season) {
            self.open_ticket(day, season, events);
        }
        self.use_product(day, events);
        self.churns(day, season)
    }

    /// Returns the time if it falls within the data, `None` if it is still to come at its end.
    fn within(&self, ms: i64) -> Option<i64> {
        (ms < i64::from(self.end) * DAY_MS).then_some(ms)
    }

    /// Applies the effects due today, then drifts satisfaction back towards the baseline.
    fn drift(&mut self, day: i32) {
        let satisfaction = &mut self.satisfaction;
        self.pending.retain(|effect| {
            if effect.day == day {
                *satisfaction += effect.delta;
                false
            } else {
                true
            }
        });
        self.satisfaction +=
            0.008 * (self.profile.baseline - self.satisfaction) + 0.025 * normal(&mut self.rng);
    }

    /// Sends the onboarding survey, the quarterly relationship survey and the renewal survey
    /// when they are due.
    fn send_scheduled_surveys(&mut self, day: i32, events: &mut Events) {
        let day_ms = i64::from(day) * DAY_MS;
        let tenure = day - self.profile.signup;
        if tenure == 14 {
            let sent = day_ms + self.rng.gen_range(32_400_000..64_800_000);
            self.survey(events, sent, "CSAT", "onboarding", 0.0);
        }
        if tenure > 0 && (tenure - self.profile.nps_phase) % 90 == 0 {
            let sent = day_ms + self.rng.gen_range(32_400_000..64_800_000);
            self.survey(events, sent, "NPS", "relationship", 0.0);
        }
        if self.profile.term_months > 1 && self.term_end - day == 30 {
            let sent = day_ms + self.rng.gen_range(32_400_000..64_800_000);
            self.survey(events, sent, "NPS", "renewal", 0.0);
        }
    }

    /// Sends a survey at `sent_ms`; whether and how it is answered follows satisfaction, with
    /// `shift` for what the survey asks about.
    fn survey(
        &mut self,
        events: &mut Events,
        sent_ms: i64,
        kind: &'static str,
        touchpoint: &'static str,
        shift: f64,
    ) {
        // An invitation due after the data ends is never sent.
        if self.within(sent_ms).is_none() {
            return;
        }
        let satisfaction = self.satisfaction;
        let rng = &mut self.rng;
        let respond = sigmoid(0.2 + 0.5 * satisfaction + self.profile.survey_propensity);
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
        let known = answered && self.within(answered_ms).is_some();
        events.survey_customer.push(self.id.clone());
        events.survey_kind.push(kind);
        events.survey_touchpoint.push(touchpoint);
        events.survey_sent.push(sent_ms);
        events.survey_answered.push(known.then_some(answered_ms));
        events
            .survey_score
            .push(known.then(|| score.round().clamp(low, high) as i32));
    }

    /// Bills on the monthly anniversary, with up to two retries three days apart.
    fn bill(&mut self, day: i32, events: &mut Events) {
        let day_ms = i64::from(day) * DAY_MS;
        let mut charge_now = None;
        if day == self.next_bill {
            self.bills += 1;
            self.next_bill = add_months(self.profile.signup, self.bills);
            charge_now = Some(0);
        } else if let Some((retry_day, attempt)) = self.retry
            && retry_day == day
        {
            charge_now = Some(attempt);
        }
        let Some(attempt) = charge_now else {
            return;
        };
        let fail = if self.profile.autopay { 0.015 } else { 0.05 }
            + if self.profile.segment == "consumer" {
                0.02
            } else {
                0.0
            }
            + if attempt > 0 { 0.2 } else { 0.0 };
        let failed = self.rng.gen_bool(fail);
        events.billing_customer.push(self.id.clone());
        events
            .billing_time
            .push(day_ms + self.rng.gen_range(0..21_600_000));
        events.billing_amount.push(self.profile.charge);
        events
            .billing_status
            .push(if failed { "failed" } else { "paid" });
        self.retry = None;
        if failed {
            self.satisfaction -= 0.3;
            self.last_failure = day;
            if attempt < 2 {
                self.retry = Some((day + 3, attempt + 1));
            }
            if self.rng.gen_bool(0.4) {
                let sent = day_ms + DAY_MS + self.rng.gen_range(32_400_000..64_800_000);
                self.survey(events, sent, "CES", "billing", -2.0);
            }
        }
    }

    /// Tells whether a ticket opens today: problems come more to the problem-prone, after a
    /// failed payment, and to the unhappy.
    fn ticket_opens(&mut self, day: i32, season: f64) -> bool {
        let recent_failure = day - self.last_failure < 10;
        let ticket_rate = 0.0035
            * self.profile.problem_proneness
            * (1.0 + 2.0 * f64::from(u8::from(recent_failure)))
            * (1.0 + 0.5 * (-self.satisfaction).max(0.0))
            * (1.0 + 0.3 * season.max(0.0));
        self.rng.gen_bool(ticket_rate.min(0.5))
    }

    /// Opens a ticket today, with what follows from it: its effects on satisfaction as they
    /// come due, a survey after it closes, and a refund for some billing problems.
    fn open_ticket(&mut self, day: i32, season: f64, events: &mut Events) {
        let ticket = self.draw_ticket(day, season);
        if ticket.complaint {
            self.satisfaction -= 0.15;
        }
        self.pending.push(Pending {
            day: day_of(ticket.first_response).max(day + 1),
            delta: -0.1 * (1.0 + ticket.response_hours / 2.0).ln(),
        });
        self.pending.push(Pending {
            day: day_of(ticket.closed).max(day + 1),
            delta: if ticket.good { 0.12 } else { -0.3 },
        });
        if let Some(reopened) = ticket.reopened {
            self.pending.push(Pending {
                day: day_of(reopened),
                delta: -0.2,
            });
        }
        if self.within(ticket.closed).is_some() && self.rng.gen_bool(0.6) {
            let kind = if self.rng.gen_bool(0.5) {
                "CSAT"
            } else {
                "CES"
            };
            let shift = if ticket.good { 1.0 } else { -1.0 }
                - 0.5 * (1.0 + ticket.response_hours / 2.0).ln();
            self.survey(events, ticket.closed + 7_200_000, kind, "support", shift);
        }
        if ticket.category == "billing"
            && ticket.good
            && self.rng.gen_bool(0.4)
            && self.within(ticket.closed).is_some()
        {
            events.billing_customer.push(self.id.clone());
            events.billing_time.push(ticket.closed);
            events.billing_amount.push(round_to(
                self.profile.charge * self.rng.gen_range(0.1..0.5),
                0.01,
            ));
            events.billing_status.push("refunded");
            self.pending.push(Pending {
                day: day_of(ticket.closed).max(day + 1),
                delta: 0.1,
            });
        }
        events.ticket_customer.push(self.id.clone());
        events.ticket_opened.push(ticket.opened);
        events
            .ticket_first_response
            .push(self.within(ticket.first_response));
        events.ticket_closed.push(self.within(ticket.closed));
        events
            .ticket_reopened
            .push(ticket.reopened.and_then(|reopened| self.within(reopened)));
        events.ticket_channel.push(ticket.channel);
        events.ticket_category.push(ticket.category);
        events.ticket_complaint.push(ticket.complaint);
    }

    /// Draws a ticket opening today: its category, channel and timeline, whether the customer
    /// complains, whether it is resolved well and whether it is reopened.
    fn draw_ticket(&mut self, day: i32, season: f64) -> Ticket {
        let day_ms = i64::from(day) * DAY_MS;
        let satisfaction = self.satisfaction;
        let rng = &mut self.rng;
        let recent_failure = day - self.last_failure < 10;
        let category = if recent_failure && rng.gen_bool(0.6) {
            "billing"
        } else {
            pick(
                rng,
                &[
                    ("technical", 0.55),
                    ("billing", 0.2),
                    ("account", 0.15),
                    ("cancellation", 0.1 * (1.0 + (-satisfaction).max(0.0))),
                ],
            )
        };
        let channel = pick(
            rng,
            &[
                ("phone", 0.35),
                ("chat", 0.30),
                ("email", 0.25),
                ("social", 0.10),
            ],
        );
        let median_hours = match channel {
            "phone" => 0.15,
            "chat" => 0.4,
            "email" => 10.0,
            _ => 4.0,
        };
        let priority = if self.profile.segment == "enterprise" {
            0.5
        } else {
            1.0
        };
        let response_hours =
            median_hours * priority * (0.9 * normal(rng)).exp() * (1.0 + 0.8 * season.max(0.0));
        let opened = day_ms + rng.gen_range(28_800_000..72_000_000);
        let first_response = opened + (response_hours * 3_600_000.0) as i64;
        let handling_hours = 20.0 * normal(rng).exp();
        let closed = first_response + (handling_hours * 3_600_000.0) as i64;
        let slow = response_hours > 24.0;
        // Known when the ticket opens (its slow answer is still to come): a repeat contact
        // within 30 days and an unhappy customer complain more.
        let repeat_contact = day - self.last_ticket < 30;
        self.last_ticket = day;
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
        Ticket {
            category,
            channel,
            response_hours,
            opened,
            first_response,
            closed,
            complaint,
            good,
            reopened,
        }
    }

    /// Uses the product (or not) today: use follows engagement and satisfaction, and weekends
    /// are quieter.
    fn use_product(&mut self, day: i32, events: &mut Events) {
        let weekend = matches!((day + 3).rem_euclid(7), 5 | 6);
        let use_chance = sigmoid(
            -2.2 + self.profile.engagement + 0.3 * self.satisfaction
                - if weekend { 0.15 } else { 0.0 },
        );
        if !self.rng.gen_bool(use_chance) {
            return;
        }
        let sessions = 1 + (-1.5 * (1.0 - self.rng.r#gen::<f64>()).ln()).floor() as i32;
        let minutes = f64::from(sessions)
            * 9.0
            * (0.25 * self.satisfaction + 0.5 * normal(&mut self.rng)).exp();
        events.usage_customer.push(self.id.clone());
        events.usage_day.push(day);
        events.usage_sessions.push(sessions);
        events.usage_minutes.push(round_to(minutes, 0.1));
    }

    /// Tells whether the customer leaves today. Unhappy, recently failed, new, expensive and
    /// out-of-contract customers leave more; contracts hold customers except near their renewal.
    fn churns(&mut self, day: i32, season: f64) -> bool {
        let profile = &self.profile;
        let tenure = day - profile.signup;
        let contract_hold = match profile.contract {
            "month-to-month" => 0.0,
            _ if self.term_end - day <= 30 => -0.5,
            "one_year" => -2.2,
            _ => -2.7,
        };
        let hazard = -7.6
            + contract_hold
            + 2.4 * (0.2 - self.satisfaction)
            + if day - self.last_failure < 30 {
                0.5
            } else {
                0.0
            }
            + if tenure < 120 { 0.4 } else { 0.0 }
            + 0.004 * (profile.charge / profile.segment_factor - 55.0)
            + if profile.autopay { -0.3 } else { 0.0 }
            + 0.1 * season;
        self.rng.gen_bool(sigmoid(hazard))
    }
}
