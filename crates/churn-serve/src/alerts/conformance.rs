//! The conformance suite of [`AlertStore`]: every test is written against the trait alone, so
//! each backend runs the same tests unchanged. A backend implements [`Backend`] (a fresh store,
//! and the same store opened again) and instantiates the suite with
//! [`alert_store_conformance!`](crate::alerts::conformance::alert_store_conformance), as the
//! SQLite backend does in `sqlite/tests.rs`:
//!
//! ```ignore
//! crate::alerts::conformance::alert_store_conformance!(SqliteBackend);
//! ```
//!
//! Tests of one backend's own machinery (files, threads, migrations) stay with that backend.

use churn_core::{AlertDecision, AlertDraft, AlertPolicy, CustomerHistory, RiskBand, Timestamp};

use crate::audit::{AuditEntry, AuditFilter, AuditRange};

use super::{
    AlertFilter, AlertState, AlertStore, CustomerRecord, EventKind, NewScore, Outcome, Recorded,
    StoreError, StoredReason,
};

/// A backend under test: makes fresh, empty stores, and opens a store again as a restarted
/// server would.
pub(crate) trait Backend {
    /// The store.
    type Store: AlertStore;
    /// What keeps a store's data between opens (a temporary folder, a database), and cleans it
    /// up when dropped.
    type Place;

    /// Makes a fresh, empty store.
    fn fresh() -> (Self::Place, Self::Store);

    /// Opens the store at `place` again, once the one before was dropped.
    fn reopen(place: &Self::Place) -> Self::Store;
}

/// Instantiates every conformance test for a backend (a type implementing [`Backend`]), as
/// `#[test]` functions of the module it is called in.
macro_rules! alert_store_conformance {
    ($backend:ty) => {
        $crate::alerts::conformance::alert_store_conformance!(
            @tests $backend;
            a_score_raises_the_next_updates_and_a_rise_is_seen_against_the_stored_score,
            an_events_alert_is_the_row_as_stored,
            a_rescore_that_changes_nothing_but_the_owner_is_an_event,
            state_changes_follow_the_rules_and_name_the_alert,
            overdue_open_alerts_are_escalated_once_per_window_and_rank_first,
            stats_count_states_outcomes_and_the_median_time_to_acknowledge,
            filters_select_by_band_owner_and_state,
            a_customer_keeps_every_score_in_its_history_across_restarts,
            a_customer_never_has_two_unresolved_alerts,
            the_log_pages_in_cursor_order_with_no_gap,
            a_quiet_score_is_the_baseline_at_once_and_after_a_restart,
            audit_entries_are_numbered_in_order_and_read_both_ways,
            audit_filters_select_by_actor_and_action_and_page_with_no_overlap,
        );
    };
    (@tests $backend:ty; $($test:ident,)*) => {
        $(
            #[test]
            fn $test() {
                $crate::alerts::conformance::$test::<$backend>();
            }
        )*
    };
}
pub(crate) use alert_store_conformance;

/// An hour, in seconds: the default policy's time to acknowledge a high-risk alert.
pub(crate) const HOUR: Timestamp = 3_600;

/// Returns a score of `customer`, owned by "ana", worth 70 a period.
pub(crate) fn score(customer: &str, probability: f64, band: RiskBand, at: Timestamp) -> NewScore {
    NewScore {
        customer_id: customer.into(),
        probability,
        band,
        percentile: probability * 100.0,
        customer_value: Some(70.0),
        assignee: Some("ana".into()),
        team: None,
        reasons: vec![],
        lowering: vec![],
        model_version: "v1".into(),
        at,
    }
}

/// Records `scores` under the default policy.
pub(crate) fn record(store: &impl AlertStore, scores: &[NewScore]) -> Recorded {
    let policy = AlertPolicy::default();
    let decide = |score: &NewScore, history: &CustomerHistory| score.decide(&policy, history);
    store.record_scores(scores, &decide).unwrap()
}

/// Returns what each recorded score did: raised, updated, or nothing.
pub(crate) fn kinds(recorded: &Recorded) -> Vec<Option<EventKind>> {
    recorded
        .changes
        .iter()
        .map(|change| change.map(|change| change.kind))
        .collect()
}

pub(crate) fn a_score_raises_the_next_updates_and_a_rise_is_seen_against_the_stored_score<
    B: Backend,
>() {
    let (_place, store) = B::fresh();
    let first = record(
        &store,
        &[
            score("c1", 0.8, RiskBand::High, 1000),
            score("c2", 0.3, RiskBand::Medium, 1000),
            // The same customer again in the same commit: updates what was just raised.
            score("c1", 0.85, RiskBand::High, 1001),
        ],
    );
    assert_eq!(
        kinds(&first),
        [Some(EventKind::Raised), None, Some(EventKind::Updated)]
    );
    let alert = store.get(first.events[1].alert.id).unwrap().unwrap();
    assert_eq!(alert.score_count, 2);
    assert_eq!(alert.previous_probability, Some(0.8));
    // 0.85 × 70 × 12 months.
    assert!((alert.revenue_at_risk.unwrap() - 714.0).abs() < 1e-9);
    assert_eq!(alert.acknowledge_by, 1000 + HOUR);
    // c2 rose from 0.3 (stored) to 0.55: the rise rule needs the stored previous score.
    let second = record(&store, &[score("c2", 0.55, RiskBand::Medium, 2000)]);
    assert_eq!(kinds(&second), [Some(EventKind::Raised)]);
    assert_eq!(second.events[0].alert.previous_probability, Some(0.3));
    let cursors: Vec<u64> = first
        .events
        .iter()
        .chain(&second.events)
        .map(|event| event.cursor)
        .collect();
    assert_eq!(cursors, [1, 2, 3]);
    assert_eq!(store.last_cursor().unwrap(), 3);
}

/// Events carry the alert as built in memory, not read back: it must be the stored row.
pub(crate) fn an_events_alert_is_the_row_as_stored<B: Backend>() {
    let (_place, store) = B::fresh();
    let mut first = score("e1", 0.8, RiskBand::High, 100);
    first.reasons = vec![StoredReason {
        feature: "Contract".into(),
        value: "Month-to-month".into(),
        contribution: 0.4,
        message: "Contract is Month-to-month".into(),
    }];
    let raised = record(&store, &[first]);
    let alert = raised.events[0].alert.clone();
    assert_eq!(Some(&alert), store.get(alert.id).unwrap().as_ref());
    store.acknowledge(alert.id, Some("bo"), 150).unwrap();
    // A new owner's team, no assignee: the stored assignee stays.
    let mut second = score("e1", 0.9, RiskBand::High, 200);
    (second.assignee, second.team) = (None, Some("retention".into()));
    let updated = record(&store, &[second]);
    assert_eq!(kinds(&updated), [Some(EventKind::Updated)]);
    let alert = updated.events[0].alert.clone();
    assert_eq!(
        (
            alert.state,
            alert.assignee.as_deref(),
            alert.team.as_deref()
        ),
        (AlertState::Acknowledged, Some("ana"), Some("retention"))
    );
    assert_eq!(
        (alert.score_count, alert.raised_at, alert.updated_at),
        (2, 100, 200)
    );
    assert_eq!(Some(&alert), store.get(alert.id).unwrap().as_ref());
}

pub(crate) fn a_rescore_that_changes_nothing_but_the_owner_is_an_event<B: Backend>() {
    let (_place, store) = B::fresh();
    record(&store, &[score("o1", 0.9, RiskBand::High, 0)]);
    let same = record(&store, &[score("o1", 0.9, RiskBand::High, 10)]);
    assert!(same.events.is_empty(), "nothing material changed");
    let mut moved = score("o1", 0.9, RiskBand::High, 20);
    moved.assignee = Some("bo".into());
    let reassigned = record(&store, &[moved]);
    let events: Vec<EventKind> = reassigned.events.iter().map(|event| event.kind).collect();
    assert_eq!(events, [EventKind::Updated]);
    assert_eq!(reassigned.events[0].alert.assignee.as_deref(), Some("bo"));
    // A profile without an owner keeps the alert's.
    let mut unowned = score("o1", 0.9, RiskBand::High, 30);
    unowned.assignee = None;
    assert!(record(&store, &[unowned]).events.is_empty());
}

pub(crate) fn state_changes_follow_the_rules_and_name_the_alert<B: Backend>() {
    let (_place, store) = B::fresh();
    let raised = record(&store, &[score("c1", 0.9, RiskBand::High, 0)]);
    let id = raised.events[0].alert.id;
    assert_eq!(
        store
            .resolve(99, Outcome::Retained, None, None, 5)
            .unwrap_err(),
        StoreError::NotFound { id: "99".into() }
    );
    let acknowledged = store.acknowledge(id, Some("ana"), 600).unwrap();
    assert_eq!(acknowledged.alert.state, AlertState::Acknowledged);
    assert_eq!(acknowledged.alert.acknowledged_by.as_deref(), Some("ana"));
    let again = store.acknowledge(id, None, 700).unwrap_err();
    assert_eq!(
        again.to_string(),
        format!("alert `{id}` is acknowledged; acknowledging needs an open alert")
    );
    // Acknowledged is still the customer's alert: a new score updates it.
    let update = record(&store, &[score("c1", 0.95, RiskBand::High, 800)]);
    assert_eq!(kinds(&update), [Some(EventKind::Updated)]);
    let resolved = store
        .resolve(
            id,
            Outcome::Retained,
            Some("offered a discount"),
            Some("ana"),
            900,
        )
        .unwrap();
    assert_eq!(resolved.alert.outcome, Some(Outcome::Retained));
    assert_eq!(resolved.alert.note.as_deref(), Some("offered a discount"));
    assert!(matches!(
        store.resolve(id, Outcome::Churned, None, None, 1000),
        Err(StoreError::WrongState { .. })
    ));
    // Resolved, and within the cool-down: the same band raises nothing new.
    let quiet = record(&store, &[score("c1", 0.9, RiskBand::High, 2000)]);
    assert_eq!(kinds(&quiet), [None]);
    let kinds: Vec<EventKind> = store
        .events_after(0, &AlertFilter::default(), 100)
        .unwrap()
        .iter()
        .map(|event| event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::Raised,
            EventKind::Acknowledged,
            EventKind::Updated,
            EventKind::Resolved
        ]
    );
}

pub(crate) fn overdue_open_alerts_are_escalated_once_per_window_and_rank_first<B: Backend>() {
    let (_place, store) = B::fresh();
    let raised = record(
        &store,
        &[
            score("rich", 0.9, RiskBand::High, 0),
            score("late", 0.7, RiskBand::High, 0),
            score("acked", 0.9, RiskBand::High, 0),
        ],
    );
    let ids: Vec<i64> = raised.events.iter().map(|event| event.alert.id).collect();
    store.acknowledge(ids[2], None, 10).unwrap();
    let window = |_band: RiskBand| HOUR;
    assert!(store.escalate_overdue(HOUR, &window).unwrap().is_empty());
    // "rich" is due too, but a rescore moved nothing: both open ones pass the hour.
    let escalated = store.escalate_overdue(HOUR + 1, &window).unwrap();
    assert_eq!(escalated.len(), 2);
    assert!(
        escalated
            .iter()
            .all(|event| event.alert.escalation_level == 1)
    );
    assert!(
        store
            .escalate_overdue(HOUR + 2, &window)
            .unwrap()
            .is_empty()
    );
    // Due alerts are escalated in order of escalation time, then id: "rich", then "late", which
    // is given a window of a second this time, so that it alone is escalated once more.
    let calls = std::cell::Cell::new(0);
    let late_again_soon = |_band: RiskBand| {
        calls.set(calls.get() + 1);
        if calls.get() == 2 { 1 } else { HOUR }
    };
    let second = store
        .escalate_overdue(2 * HOUR + 2, &late_again_soon)
        .unwrap();
    assert_eq!(second.len(), 2);
    assert_eq!(second[1].alert.customer_id, "late");
    // Escalate only "late" once more, then it outranks "rich" despite less revenue.
    let third = store.escalate_overdue(2 * HOUR + 4, &window).unwrap();
    assert_eq!(third.len(), 1);
    let page = store
        .list(
            &AlertFilter {
                states: vec![AlertState::Open],
                ..AlertFilter::default()
            },
            0,
            10,
        )
        .unwrap();
    let order: Vec<&str> = page.alerts.iter().map(|a| a.customer_id.as_str()).collect();
    assert_eq!(order, ["late", "rich"]);
    assert_eq!(page.total, 2);
}

pub(crate) fn stats_count_states_outcomes_and_the_median_time_to_acknowledge<B: Backend>() {
    let (_place, store) = B::fresh();
    let scores: Vec<NewScore> = (0..5)
        .map(|i| score(&format!("c{i}"), 0.9, RiskBand::High, 0))
        .collect();
    let ids: Vec<i64> = record(&store, &scores)
        .events
        .iter()
        .map(|event| event.alert.id)
        .collect();
    // Acknowledged after 60, 120, 600, 900 s: median (120 + 600) / 2 = 360.
    for (id, after) in ids.iter().zip([60, 120, 600, 900]) {
        store.acknowledge(*id, None, after).unwrap();
    }
    store
        .resolve(ids[0], Outcome::Retained, None, None, 1000)
        .unwrap();
    store
        .resolve(ids[1], Outcome::Retained, None, None, 1000)
        .unwrap();
    store
        .resolve(ids[2], Outcome::Churned, None, None, 1000)
        .unwrap();
    store
        .resolve(ids[4], Outcome::FalseAlarm, None, None, 1000)
        .unwrap();
    let stats = store.stats(10 * HOUR).unwrap();
    assert_eq!(stats.total, 5);
    assert_eq!(
        stats.by_state,
        [
            (AlertState::Open, 0),
            (AlertState::Acknowledged, 1),
            (AlertState::Resolved, 4)
        ]
    );
    assert_eq!(stats.median_seconds_to_acknowledge, Some(360.0));
    assert_eq!(stats.retained_share, Some(0.5));
    assert_eq!(stats.churned_share, Some(0.25));
    assert_eq!(stats.by_band[2], (RiskBand::High, 5));
    assert_eq!(stats.by_outcome[3], (Outcome::NotReached, 0));
}

pub(crate) fn filters_select_by_band_owner_and_state<B: Backend>() {
    let (_place, store) = B::fresh();
    let mut medium = score("m", 0.5, RiskBand::Medium, 0);
    medium.assignee = Some("bo".into());
    let policy_free = |_: &NewScore, _: &CustomerHistory| {
        AlertDecision::Raise(AlertDraft {
            probability: 0.5,
            band: RiskBand::Medium,
            triggers: vec![],
            revenue_at_risk: None,
            acknowledge_by: 10,
        })
    };
    store.record_scores(&[medium], &policy_free).unwrap();
    record(&store, &[score("h", 0.9, RiskBand::High, 0)]);
    let only = |filter: AlertFilter| -> Vec<String> {
        store
            .list(&filter, 0, 10)
            .unwrap()
            .alerts
            .into_iter()
            .map(|alert| alert.customer_id)
            .collect()
    };
    let high = AlertFilter {
        min_band: Some(RiskBand::High),
        ..AlertFilter::default()
    };
    assert_eq!(only(high.clone()), ["h"]);
    let bo = AlertFilter {
        assignee: Some("bo".into()),
        ..AlertFilter::default()
    };
    assert_eq!(only(bo.clone()), ["m"]);
    let resolved = AlertFilter {
        states: vec![AlertState::Resolved],
        ..AlertFilter::default()
    };
    assert!(only(resolved).is_empty());
    let events = store.events_after(0, &high, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert!(high.matches(&events[0].alert) && !bo.matches(&events[0].alert));
}

pub(crate) fn a_customer_keeps_every_score_in_its_history_across_restarts<B: Backend>() {
    let (place, store) = B::fresh();
    let probabilities = |record: &CustomerRecord| -> Vec<(Timestamp, f64)> {
        record
            .history
            .iter()
            .map(|point| (point.at, point.probability))
            .collect()
    };
    {
        // Quiet, then raising (committed at once), then updating, then a second score in
        // the same second, which replaces the first.
        record(&store, &[score("h1", 0.2, RiskBand::Low, 100)]);
        record(&store, &[score("h1", 0.8, RiskBand::High, 200)]);
        record(&store, &[score("h1", 0.7, RiskBand::High, 300)]);
        record(&store, &[score("h1", 0.75, RiskBand::High, 300)]);
        record(&store, &[score("other", 0.1, RiskBand::Low, 150)]);
        // Seen at once, whether or not the history file has it yet.
        let now = store.customer("h1", 10).unwrap().unwrap();
        assert_eq!(now.last.as_ref().map(|last| last.probability), Some(0.75));
        assert_eq!(now.history.last(), now.last.as_ref());
        assert_eq!(now.alerts.len(), 1);
        assert_eq!(store.customer("nobody", 10).unwrap(), None);
    }
    drop(store);
    let store = B::reopen(&place);
    let reopened = store.customer("h1", 10).unwrap().unwrap();
    assert_eq!(
        probabilities(&reopened),
        [(100, 0.2), (200, 0.8), (300, 0.75)]
    );
    assert_eq!(reopened.alerts[0].probability, 0.75);
    // The limit keeps the latest scores.
    let latest = store.customer("h1", 2).unwrap().unwrap();
    assert_eq!(probabilities(&latest), [(200, 0.8), (300, 0.75)]);
}

/// One unresolved alert per customer: every alerting score, in one call or many, open or
/// acknowledged, goes to the one alert; a new one comes only once it is resolved.
pub(crate) fn a_customer_never_has_two_unresolved_alerts<B: Backend>() {
    let (_place, store) = B::fresh();
    let unresolved = |store: &B::Store| {
        let filter = AlertFilter {
            customer_id: Some("u1".into()),
            states: vec![AlertState::Open, AlertState::Acknowledged],
            ..AlertFilter::default()
        };
        store.list(&filter, 0, 10).unwrap().total
    };
    let batch = record(
        &store,
        &[
            score("u1", 0.9, RiskBand::High, 0),
            score("u1", 0.95, RiskBand::High, 1),
            score("u1", 0.8, RiskBand::High, 2),
        ],
    );
    assert_eq!(
        kinds(&batch),
        [
            Some(EventKind::Raised),
            Some(EventKind::Updated),
            Some(EventKind::Updated)
        ]
    );
    assert_eq!(unresolved(&store), 1);
    let id = batch.events[0].alert.id;
    store.acknowledge(id, None, 10).unwrap();
    let later = record(&store, &[score("u1", 0.99, RiskBand::High, 20)]);
    assert_eq!(later.changes[0].map(|change| change.alert_id), Some(id));
    assert_eq!(unresolved(&store), 1);
    store.resolve(id, Outcome::Churned, None, None, 30).unwrap();
    assert_eq!(unresolved(&store), 0);
    // Past the cool-down, the next alerting score raises a new alert.
    let next = record(&store, &[score("u1", 0.9, RiskBand::High, 400 * 86_400)]);
    assert_eq!(kinds(&next), [Some(EventKind::Raised)]);
    assert_ne!(next.events[0].alert.id, id);
    assert_eq!(unresolved(&store), 1);
}

/// Events in cursor order with no gap: paging through the log a few at a time returns every
/// event once, numbered from 1 without a hole, whatever kind of change wrote it.
pub(crate) fn the_log_pages_in_cursor_order_with_no_gap<B: Backend>() {
    let (_place, store) = B::fresh();
    assert_eq!(store.last_cursor().unwrap(), 0);
    let raised = record(
        &store,
        &[
            score("g1", 0.9, RiskBand::High, 0),
            score("g2", 0.1, RiskBand::Low, 0),
            score("g3", 0.9, RiskBand::High, 0),
        ],
    );
    let id = raised.events[0].alert.id;
    store.acknowledge(id, None, 10).unwrap();
    store
        .escalate_overdue(2 * HOUR, &|_band: RiskBand| HOUR)
        .unwrap();
    store
        .resolve(id, Outcome::Retained, None, None, 20)
        .unwrap();
    let all = store.events_after(0, &AlertFilter::default(), 100).unwrap();
    let cursors: Vec<u64> = all.iter().map(|event| event.cursor).collect();
    assert_eq!(cursors, [1, 2, 3, 4, 5]);
    assert_eq!(store.last_cursor().unwrap(), 5);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .events_after(after, &AlertFilter::default(), 2)
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.cursor;
        paged.extend(page);
    }
    assert_eq!(paged, all);
}

/// Last scores are the baseline: a score that changed nothing, recorded either way, is what the
/// next score's rise is measured from, at once and after a clean restart.
pub(crate) fn a_quiet_score_is_the_baseline_at_once_and_after_a_restart<B: Backend>() {
    let (place, store) = B::fresh();
    let policy = AlertPolicy::default();
    let decide = |score: &NewScore, history: &CustomerHistory| score.decide(&policy, history);
    let quiet = [score("b1", 0.3, RiskBand::Medium, 0)];
    let recorded = match store.record_quiet(&quiet, &decide) {
        Some(recorded) => recorded,
        None => store.record_scores(&quiet, &decide).unwrap(),
    };
    assert_eq!(kinds(&recorded), [None]);
    assert!(recorded.events.is_empty());
    // A rise of 0.25 from the quiet score alerts.
    let rise = record(&store, &[score("b1", 0.55, RiskBand::Medium, 10)]);
    assert_eq!(kinds(&rise), [Some(EventKind::Raised)]);
    assert_eq!(rise.events[0].alert.previous_probability, Some(0.3));
    record(&store, &[score("b2", 0.2, RiskBand::Low, 10)]);
    let cursor = store.last_cursor().unwrap();
    drop(store);
    let store = B::reopen(&place);
    assert_eq!(store.last_cursor().unwrap(), cursor);
    let rise = record(&store, &[score("b2", 0.45, RiskBand::Medium, 20)]);
    assert_eq!(kinds(&rise), [Some(EventKind::Raised)]);
    assert_eq!(rise.events[0].alert.previous_probability, Some(0.2));
}

fn audit(actor: &str, action: &str, target: &str, at: Timestamp) -> AuditEntry {
    AuditEntry::new(actor, action, target).at(at)
}

fn ids(entries: &[AuditEntry]) -> Vec<u64> {
    entries.iter().map(|entry| entry.id).collect()
}

/// The audit log: batches numbered from 1 in order with no gap, whatever ids they came with;
/// read newest first, before an id, or after one; kept across a restart.
pub(crate) fn audit_entries_are_numbered_in_order_and_read_both_ways<B: Backend>() {
    let (place, store) = B::fresh();
    let everything = AuditFilter::default();
    assert_eq!(store.append_audit(&[]).unwrap(), 0);
    assert!(
        store
            .audit_entries(&everything, AuditRange::Newest, 10)
            .unwrap()
            .is_empty()
    );
    let first = [
        audit("ana", "alert.acknowledge", "1", 10),
        AuditEntry {
            // An id given is not kept: the store numbers entries.
            id: 77,
            ..audit("ana", "alert.resolve", "1", 11)
        },
        audit("SIGHUP", "model.reload", "models/telco", 12).detail("refused: bad file"),
    ];
    assert_eq!(store.append_audit(&first).unwrap(), 3);
    let second = [
        audit("bo", "console.sign_in", "", 13).peer("127.0.0.1:5000".parse().ok()),
        audit("bo", "alert.acknowledge", "2", 14),
    ];
    assert_eq!(store.append_audit(&second).unwrap(), 5);
    assert_eq!(store.append_audit(&[]).unwrap(), 5);

    let newest = store
        .audit_entries(&everything, AuditRange::Newest, 2)
        .unwrap();
    assert_eq!(ids(&newest), [5, 4]);
    assert_eq!(newest[1].actor, "bo");
    assert_eq!(newest[1].action, "console.sign_in");
    assert_eq!(newest[1].peer, "127.0.0.1:5000");
    assert_eq!(newest[1].at, 13);
    let older = store
        .audit_entries(&everything, AuditRange::Before(4), 10)
        .unwrap();
    assert_eq!(ids(&older), [3, 2, 1]);
    assert_eq!(older[0].detail, "refused: bad file");
    assert_eq!(older[0].target, "models/telco");
    let after = store
        .audit_entries(&everything, AuditRange::After(2), 10)
        .unwrap();
    assert_eq!(ids(&after), [3, 4, 5]);
    assert_eq!(after[0], older[0]);

    drop(store);
    let store = B::reopen(&place);
    let all = store
        .audit_entries(&everything, AuditRange::After(0), 100)
        .unwrap();
    assert_eq!(ids(&all), [1, 2, 3, 4, 5]);
    assert_eq!(
        store
            .append_audit(&[audit("ana", "audit.read", "", 20)])
            .unwrap(),
        6
    );
}

/// Filters by actor and action, in the store as in memory; pages of a filtered read neither
/// overlap nor skip.
pub(crate) fn audit_filters_select_by_actor_and_action_and_page_with_no_overlap<B: Backend>() {
    let (_place, store) = B::fresh();
    let entries: Vec<AuditEntry> = (0..20)
        .map(|index| {
            let actor = if index % 2 == 0 { "ana" } else { "bo" };
            let action = if index % 3 == 0 {
                "alert.resolve"
            } else {
                "alert.acknowledge"
            };
            audit(actor, action, &index.to_string(), index)
        })
        .collect();
    store.append_audit(&entries).unwrap();
    let filters = [
        AuditFilter {
            actor: Some("ana".into()),
            action: None,
        },
        AuditFilter {
            actor: None,
            action: Some("alert.resolve".into()),
        },
        AuditFilter {
            actor: Some("bo".into()),
            action: Some("alert.resolve".into()),
        },
        AuditFilter {
            actor: Some("nobody".into()),
            action: None,
        },
    ];
    let all = store
        .audit_entries(&AuditFilter::default(), AuditRange::After(0), 100)
        .unwrap();
    for filter in filters {
        let mut expected: Vec<AuditEntry> = all
            .iter()
            .filter(|entry| filter.matches(entry))
            .cloned()
            .collect();
        expected.reverse();
        let mut paged = Vec::new();
        let mut range = AuditRange::Newest;
        loop {
            let page = store.audit_entries(&filter, range, 3).unwrap();
            let Some(last) = page.last() else { break };
            range = AuditRange::Before(last.id);
            paged.extend(page);
        }
        assert_eq!(paged, expected, "{filter:?}");
    }
}
