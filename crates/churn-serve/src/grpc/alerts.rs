//! `churn.v1.AlertService`: the alert stream for agent consoles, the alert queue, the state
//! changes an agent makes, and the statistics that show whether acting on alerts works. Every
//! write goes through the [`AlertHub`]'s writer, so the store's rules hold for every caller.

use std::pin::Pin;
use std::time::Instant;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use churn_api::convert::band_from_proto;
use churn_api::proto;

use crate::alerts::{AlertFilter, AlertHub, StoreError, StreamEnd};
use crate::audit::{ALERT_ACKNOWLEDGE, ALERT_RESOLVE, AuditLog};
use crate::auth::Caller;
use crate::error::RequestError;
use crate::grpc::convert::{alert_to_proto, event_to_proto, outcome_from_proto, state_from_proto};
use crate::metrics::Metrics;
use crate::requests::{
    FilterTexts, acting_agent, alert_filter, alert_id, note_field, now, off_the_runtime, page_size,
    store_error,
};

/// Events queued for one stream's connection before its writer waits.
const STREAM_QUEUE: usize = 64;
/// Alerts per ListAlerts page by default.
const DEFAULT_PAGE_SIZE: u64 = 50;
/// The trailer naming the cursor a cut-off stream resumes from.
pub const RESUME_CURSOR_TRAILER: &str = "churn-resume-cursor";

/// The alert service; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertApi {
    hub: AlertHub,
    metrics: Metrics,
    audit: AuditLog,
    /// Turns true when the server stops, so open streams end and shutdown is not held up.
    stopping: watch::Receiver<bool>,
}

impl AlertApi {
    /// Serves the alerts of `hub`, writing agents' actions to `audit`; streams end when
    /// `stopping` turns true.
    pub fn new(
        hub: AlertHub,
        metrics: Metrics,
        audit: AuditLog,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        AlertApi {
            hub,
            metrics,
            audit,
            stopping,
        }
    }

    /// Counts a finished call and turns a request error into its status.
    fn finish<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, RequestError>,
    ) -> Result<Response<T>, Status> {
        let code = result
            .as_ref()
            .map_or_else(RequestError::code, |_| tonic::Code::Ok);
        self.metrics.observe_call(method, code, started.elapsed());
        result.map(Response::new).map_err(|error| {
            if matches!(code, tonic::Code::Internal | tonic::Code::Unavailable) {
                tracing::error!(method, %error, "alert request failed");
            }
            error.into()
        })
    }

    /// Runs a read of the store off the async workers.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&AlertHub) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, RequestError> {
        off_the_runtime(&self.hub, read).await
    }
}

fn filter_from_proto(filter: Option<proto::AlertFilter>) -> Result<AlertFilter, RequestError> {
    let Some(filter) = filter else {
        return Ok(AlertFilter::default());
    };
    let states = filter
        .states
        .iter()
        .map(|&code| {
            proto::AlertState::try_from(code)
                .ok()
                .and_then(state_from_proto)
                .ok_or_else(|| RequestError::Invalid {
                    field: "filter.states",
                    reason: format!("`{code}` is not an alert state"),
                })
        })
        .collect::<Result<_, _>>()?;
    let min_band =
        proto::RiskBand::try_from(filter.min_band).map_err(|_| RequestError::Invalid {
            field: "filter.min_band",
            reason: format!("`{}` is not a risk band", filter.min_band),
        })?;
    alert_filter(
        band_from_proto(min_band),
        states,
        FilterTexts {
            assignee: ("filter.assignee", &filter.assignee),
            team: ("filter.team", &filter.team),
            customer_id: ("filter.customer_id", &filter.customer_id),
        },
    )
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::AlertEvent, Status>> + Send>>;

#[tonic::async_trait]
impl proto::alert_service_server::AlertService for AlertApi {
    type StreamAlertsStream = EventStream;

    async fn stream_alerts(
        &self,
        request: Request<proto::StreamAlertsRequest>,
    ) -> Result<Response<Self::StreamAlertsStream>, Status> {
        let request = request.into_inner();
        let mut filter = filter_from_proto(request.filter)?;
        // States change as events happen; a stream follows every event of matching alerts.
        filter.states.clear();
        let start = if request.live_only {
            self.read(|hub| hub.store().last_cursor()).await?
        } else {
            request.after_cursor
        };
        let receiver = self
            .hub
            .open_feed(filter, start, self.stopping.clone(), STREAM_QUEUE);
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver).map(|item| {
            item.map(|event| event_to_proto(&event))
                .map_err(stream_end_status)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_alerts(
        &self,
        request: Request<proto::ListAlertsRequest>,
    ) -> Result<Response<proto::ListAlertsResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let request = request.into_inner();
            let filter = filter_from_proto(request.filter)?;
            let requested = u64::from(request.page_size);
            let limit = page_size((requested != 0).then_some(requested), DEFAULT_PAGE_SIZE);
            let offset = match request.page_token.trim() {
                "" => 0,
                token => token.parse::<u64>().map_err(|_| RequestError::Invalid {
                    field: "page_token",
                    reason: format!("`{token}` is not a token this server gave out"),
                })?,
            };
            let page = self
                .read(move |hub| hub.store().list(&filter, offset, limit))
                .await?;
            let next = offset + page.alerts.len() as u64;
            Ok(proto::ListAlertsResponse {
                alerts: page.alerts.iter().map(alert_to_proto).collect(),
                next_page_token: if next < page.total && !page.alerts.is_empty() {
                    next.to_string()
                } else {
                    String::new()
                },
                total: page.total,
            })
        }
        .await;
        self.finish("ListAlerts", started, result)
    }

    async fn get_alert(
        &self,
        request: Request<proto::GetAlertRequest>,
    ) -> Result<Response<proto::Alert>, Status> {
        let started = Instant::now();
        let given = request.into_inner().alert_id;
        let result = async {
            let id = alert_id(&given)?;
            match self.read(move |hub| hub.store().get(id)).await? {
                Some(alert) => Ok(alert_to_proto(&alert)),
                None => Err(RequestError::NotFound { id: given.clone() }),
            }
        }
        .await;
        self.finish("GetAlert", started, result)
    }

    async fn acknowledge_alert(
        &self,
        request: Request<proto::AcknowledgeAlertRequest>,
    ) -> Result<Response<proto::Alert>, Status> {
        let started = Instant::now();
        let caller = request.extensions().get::<Caller>().cloned();
        let peer = super::peer_of(&request);
        let request = request.into_inner();
        let result = async {
            let id = alert_id(&request.alert_id)?;
            let by = acting_agent(&request.by, caller.as_ref())?;
            let event = off_the_runtime(&self.hub, move |hub| {
                hub.acknowledge(id, by.as_deref(), now())
            })
            .await?;
            Ok(alert_to_proto(&event.alert))
        }
        .await;
        self.audit.alert_action(
            ALERT_ACKNOWLEDGE,
            &request.alert_id,
            caller.as_ref(),
            &request.by,
            peer,
            &result,
        );
        self.finish("AcknowledgeAlert", started, result)
    }

    async fn resolve_alert(
        &self,
        request: Request<proto::ResolveAlertRequest>,
    ) -> Result<Response<proto::Alert>, Status> {
        let started = Instant::now();
        let caller = request.extensions().get::<Caller>().cloned();
        let peer = super::peer_of(&request);
        let request = request.into_inner();
        let result = async {
            let id = alert_id(&request.alert_id)?;
            let outcome = proto::AlertOutcome::try_from(request.outcome)
                .ok()
                .and_then(outcome_from_proto)
                .ok_or_else(|| RequestError::Invalid {
                    field: "outcome",
                    reason: format!(
                        "`{}` is not an outcome; expected RETAINED, CHURNED, FALSE_ALARM or \
                         NOT_REACHED",
                        request.outcome
                    ),
                })?;
            let note = note_field(&request.note)?;
            let by = acting_agent(&request.by, caller.as_ref())?;
            let event = off_the_runtime(&self.hub, move |hub| {
                hub.resolve(id, outcome, note.as_deref(), by.as_deref(), now())
            })
            .await?;
            Ok(alert_to_proto(&event.alert))
        }
        .await;
        self.audit.alert_action(
            ALERT_RESOLVE,
            &request.alert_id,
            caller.as_ref(),
            &request.by,
            peer,
            &result,
        );
        self.finish("ResolveAlert", started, result)
    }

    async fn alert_stats(
        &self,
        _request: Request<proto::AlertStatsRequest>,
    ) -> Result<Response<proto::AlertStatsResponse>, Status> {
        let started = Instant::now();
        let at = now();
        let result = self
            .read(move |hub| hub.store().stats(at))
            .await
            .map(|stats| {
                let count = |label: &str, count: u64| proto::AlertCount {
                    label: label.to_ascii_uppercase(),
                    count,
                };
                proto::AlertStatsResponse {
                    total: stats.total,
                    by_state: stats
                        .by_state
                        .iter()
                        .map(|(state, n)| count(state.as_str(), *n))
                        .collect(),
                    by_band: stats
                        .by_band
                        .iter()
                        .map(|(band, n)| count(band.as_str(), *n))
                        .collect(),
                    by_outcome: stats
                        .by_outcome
                        .iter()
                        .map(|(outcome, n)| count(outcome.as_str(), *n))
                        .collect(),
                    median_seconds_to_acknowledge: stats.median_seconds_to_acknowledge,
                    retained_share: stats.retained_share,
                    churned_share: stats.churned_share,
                    escalated: stats.escalated,
                    overdue: stats.overdue,
                }
            });
        self.finish("AlertStats", started, result)
    }
}

/// The status a stream ends with; a resumable end names its cursor in a trailer too.
fn stream_end_status(end: StreamEnd) -> Status {
    match end {
        StreamEnd::Stopping { cursor } => resume_status(
            Status::unavailable(format!(
                "the server is stopping; resume with after_cursor = {cursor}"
            )),
            cursor,
        ),
        StreamEnd::Lagged { missed, cursor } => resume_status(
            Status::resource_exhausted(format!(
                "this stream fell {missed} events behind the live feed; resume with \
                 after_cursor = {cursor}"
            )),
            cursor,
        ),
        StreamEnd::Store(error) => store_error(error).into(),
    }
}

fn resume_status(mut status: Status, cursor: u64) -> Status {
    if let Ok(value) = cursor.to_string().parse() {
        status.metadata_mut().insert(RESUME_CURSOR_TRAILER, value);
    }
    status
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use churn_core::{AlertPolicy, RiskBand};
    use proto::alert_service_server::AlertService;

    use super::*;
    use crate::alerts::{HubSettings, NewScore, SqliteStore, Synchronous};
    use crate::audit::{AuditFilter, AuditRange};
    use crate::auth::{Role, RoleSet};

    fn agent(name: &str) -> Caller {
        let mut roles = RoleSet::default();
        roles.insert(Role::Agent);
        Caller::new(name, roles)
    }

    /// A service over a fresh store holding one open alert per customer given.
    fn service(customers: &[&str]) -> (tempfile::TempDir, AlertApi, AuditLog, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn crate::alerts::AlertStore> = Arc::new(
            SqliteStore::open(&dir.path().join("alerts.sqlite"), Synchronous::Normal).unwrap(),
        );
        let metrics = Metrics::new();
        let hub = AlertHub::new(
            store.clone(),
            HubSettings {
                policy: AlertPolicy::default(),
                stream_buffer: 16,
            },
            metrics.clone(),
        );
        let scores: Vec<NewScore> = customers
            .iter()
            .map(|customer| NewScore {
                customer_id: customer.to_string(),
                probability: 0.9,
                band: RiskBand::High,
                percentile: 90.0,
                customer_value: None,
                assignee: None,
                team: None,
                reasons: vec![],
                lowering: vec![],
                model_version: "v1".into(),
                at: now(),
            })
            .collect();
        let ids = hub
            .record(&scores)
            .unwrap()
            .into_iter()
            .map(|change| change.unwrap().alert_id.to_string())
            .collect();
        let audit = AuditLog::new(Some(store), metrics.clone());
        let (_stop, stopping) = watch::channel(false);
        let api = AlertApi::new(hub, metrics, audit.clone(), stopping);
        (dir, api, audit, ids)
    }

    fn signed_in<T>(message: T, caller: Caller) -> Request<T> {
        let mut request = Request::new(message);
        request.extensions_mut().insert(caller);
        request
    }

    #[tokio::test]
    async fn a_signed_in_agent_acts_as_themselves_and_each_action_is_audited() {
        let (_dir, api, audit, ids) = service(&["c1", "c2"]);
        // `by` left empty: the caller's name is recorded.
        let acknowledged = api
            .acknowledge_alert(signed_in(
                proto::AcknowledgeAlertRequest {
                    alert_id: ids[0].clone(),
                    by: String::new(),
                },
                agent("ana"),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acknowledged.acknowledged_by, "ana");
        // Naming someone else is refused, and changes nothing.
        let refused = api
            .resolve_alert(signed_in(
                proto::ResolveAlertRequest {
                    alert_id: ids[1].clone(),
                    outcome: proto::AlertOutcome::Retained.into(),
                    note: String::new(),
                    by: "mallory".into(),
                },
                agent("ana"),
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            refused.message(),
            "`by` is `mallory` but you are signed in as `ana`; leave `by` empty"
        );
        // Naming oneself is fine.
        let resolved = api
            .resolve_alert(signed_in(
                proto::ResolveAlertRequest {
                    alert_id: ids[1].clone(),
                    outcome: proto::AlertOutcome::Retained.into(),
                    note: String::new(),
                    by: "ana".into(),
                },
                agent("ana"),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resolved.resolved_by, "ana");
        // Without a caller (authentication off), `by` is taken as given, as before.
        let (_dir2, open_api, _, open_ids) = service(&["c3"]);
        let anyone = open_api
            .acknowledge_alert(Request::new(proto::AcknowledgeAlertRequest {
                alert_id: open_ids[0].clone(),
                by: "Dana".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(anyone.acknowledged_by, "Dana");

        audit.flush();
        let entries = audit
            .store()
            .unwrap()
            .audit_entries(&AuditFilter::default(), AuditRange::After(0), 10)
            .unwrap();
        let seen: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|entry| {
                (
                    entry.actor.as_str(),
                    entry.action.as_str(),
                    entry.detail.split(':').next().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("ana", "alert.acknowledge", "ok"),
                ("ana", "alert.resolve", "PERMISSION_DENIED"),
                ("ana", "alert.resolve", "ok"),
            ]
        );
        assert_eq!(entries[0].target, ids[0]);
    }
}
