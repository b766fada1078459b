//! Request counts and latency histograms in the Prometheus text format, served on `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::code_name;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The service's metrics; cheap to clone (the counters are shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    calls: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    profiles: Family<OutcomeLabels, Counter>,
    reloads: Family<OutcomeLabels, Counter>,
    in_flight: Gauge,
    alert_events: Family<KindLabels, Counter>,
    alert_commits: Histogram,
    alert_commit_scores: Counter,
    alert_quiet_scores: Counter,
    alert_streams: Gauge,
    alert_streams_cut: Counter,
    connections_refused: Family<PortLabels, Counter>,
    requests_refused: Family<ReasonLabels, Counter>,
    audit_entries: Family<OutcomeLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    port: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric of the service.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("churn");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC calls (stream messages for ScoreStream) by method and status code",
            calls.clone(),
        );
        let latency: Family<MethodLabels, Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "grpc_request_duration_seconds",
            "Time to answer a gRPC call, by method",
            latency.clone(),
        );
        let profiles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "profiles",
            "Profiles handled, by outcome (scored or rejected)",
            profiles.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "model_reloads",
            "Model reload attempts by outcome (swapped, unchanged, refused)",
            reloads.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "grpc_requests_in_flight",
            "gRPC calls being answered now",
            in_flight.clone(),
        );
        let alert_events = Family::<KindLabels, Counter>::default();
        registry.register(
            "alert_events",
            "Alert events committed, by kind (raised, updated, escalated, acknowledged, resolved)",
            alert_events.clone(),
        );
        let alert_commits = latency_histogram();
        registry.register(
            "alert_commit_duration_seconds",
            "Time to commit one group of scores to the alert store",
            alert_commits.clone(),
        );
        let alert_commit_scores = Counter::default();
        registry.register(
            "alert_committed_scores",
            "Scores committed to the alert store (divide by the commit count for the group size)",
            alert_commit_scores.clone(),
        );
        let alert_quiet_scores = Counter::default();
        registry.register(
            "alert_quiet_scores",
            "Scores that changed no alert, kept in memory and written in the background",
            alert_quiet_scores.clone(),
        );
        let alert_streams = Gauge::default();
        registry.register(
            "alert_streams",
            "StreamAlerts clients connected now",
            alert_streams.clone(),
        );
        let alert_streams_cut = Counter::default();
        registry.register(
            "alert_streams_cut",
            "StreamAlerts clients cut off for falling too far behind",
            alert_streams_cut.clone(),
        );
        let connections_refused = Family::<PortLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at once because max_connections were open, by port (grpc, http)",
            connections_refused.clone(),
        );
        let requests_refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "requests_refused",
            "Calls refused before any handler ran, by reason (unauthenticated, permission_denied, \
             max_in_flight, max_alert_feeds)",
            requests_refused.clone(),
        );
        let audit_entries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "audit_entries",
            "Audit log entries, by outcome (written, dropped when the queue was full, \
             suppressed by the limit on refused calls, failed to write)",
            audit_entries.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            calls,
            latency,
            profiles,
            reloads,
            in_flight,
            alert_events,
            alert_commits,
            alert_commit_scores,
            alert_quiet_scores,
            alert_streams,
            alert_streams_cut,
            connections_refused,
            requests_refused,
            audit_entries,
        }
    }

    /// Counts a finished call and its latency.
    pub fn observe_call(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                method,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one profile, scored or rejected.
    pub fn observe_profile<T, E>(&self, outcome: &Result<T, E>) {
        let outcome = if outcome.is_ok() {
            "scored"
        } else {
            "rejected"
        };
        self.profiles
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a reload attempt.
    pub fn observe_reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts a connection closed because `max_connections` were open on `port`.
    pub fn observe_connection_refused(&self, port: &'static str) {
        self.connections_refused
            .get_or_create(&PortLabels { port })
            .inc();
    }

    /// Counts a call refused before any handler ran.
    pub fn observe_request_refused(&self, reason: &'static str) {
        self.requests_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts one committed alert event.
    pub fn observe_alert_event(&self, kind: &'static str) {
        self.alert_events.get_or_create(&KindLabels { kind }).inc();
    }

    /// Times one commit of `scores` scores to the alert store.
    pub fn observe_alert_commit(&self, scores: usize, elapsed: Duration) {
        self.alert_commits.observe(elapsed.as_secs_f64());
        self.alert_commit_scores.inc_by(scores as u64);
    }

    /// Counts scores recorded in memory alone (they changed no alert).
    pub fn observe_quiet_scores(&self, scores: usize) {
        self.alert_quiet_scores.inc_by(scores as u64);
    }

    /// Marks an alert stream as connected; the guard marks it gone when dropped.
    pub fn alert_stream(&self) -> InFlight {
        self.alert_streams.inc();
        InFlight(self.alert_streams.clone())
    }

    /// Counts a stream cut off for falling behind.
    pub fn observe_alert_stream_cut(&self) {
        self.alert_streams_cut.inc();
    }

    /// Counts audit log entries by what became of them: `written`, `dropped`, `suppressed`,
    /// `failed`.
    pub fn observe_audit(&self, outcome: &'static str, count: u64) {
        self.audit_entries
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(count);
    }

    /// Marks a call as started; the guard marks it finished when dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Returns every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Buckets from 25 µs doubling to ~0.8 s: a score takes tens of microseconds, a batch up to a
/// second.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(25e-6, 2.0, 16))
}

/// Decrements the in-flight gauge when a call ends, however it ends.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_latencies_show_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.observe_call("Score", tonic::Code::Ok, Duration::from_micros(80));
        metrics.observe_call(
            "Score",
            tonic::Code::InvalidArgument,
            Duration::from_micros(30),
        );
        for outcome in [Ok(()), Ok(()), Ok(()), Err(())] {
            metrics.observe_profile(&outcome);
        }
        {
            let _call = metrics.in_flight();
            assert!(metrics.render().contains("churn_grpc_requests_in_flight 1"));
        }
        let text = metrics.render();
        assert!(
            text.contains(r#"churn_grpc_requests_total{method="Score",code="OK"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"churn_grpc_requests_total{method="Score",code="INVALID_ARGUMENT"} 1"#)
        );
        assert!(text.contains(r#"churn_grpc_request_duration_seconds_count{method="Score"} 2"#));
        assert!(text.contains(r#"churn_profiles_total{outcome="rejected"} 1"#));
        assert!(text.contains("churn_grpc_requests_in_flight 0"));
    }
}
