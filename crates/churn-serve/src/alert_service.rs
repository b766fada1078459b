//! `churn.v1.AlertService`: the alert stream for agent consoles, the alert queue, the state
//! changes an agent makes, and the statistics that show whether acting on alerts works. Every
//! write goes through the [`AlertHub`]'s writer, so the store's rules hold for every caller.

use std::pin::Pin;
use std::time::Instant;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::alerts::{AlertFilter, AlertHub, StoreError, StreamEnd};
use crate::convert::{
    MAX_CUSTOMER_ID_BYTES, alert_to_proto, band_from_proto, event_to_proto, outcome_from_proto,
    state_from_proto,
};
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::proto;
use crate::service::now;

/// Events queued for one stream's connection before its writer waits.
const STREAM_QUEUE: usize = 64;
/// Alerts per ListAlerts page by default, and at most.
const DEFAULT_PAGE_SIZE: u64 = 50;
const MAX_PAGE_SIZE: u64 = 500;
/// Longest resolution note, in bytes.
pub const MAX_NOTE_BYTES: usize = 2_000;
/// The trailer naming the cursor a cut-off stream resumes from.
pub const RESUME_CURSOR_TRAILER: &str = "churn-resume-cursor";

/// The alert service; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertApi {
    hub: AlertHub,
    metrics: Metrics,
    /// Turns true when the server stops, so open streams end and shutdown is not held up.
    stopping: watch::Receiver<bool>,
}

impl AlertApi {
    pub fn new(hub: AlertHub, metrics: Metrics, stopping: watch::Receiver<bool>) -> Self {
        AlertApi {
            hub,
            metrics,
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

/// Runs a call of the alert store on the blocking pool (SQLite blocks the thread it runs on).
pub(crate) async fn off_the_runtime<T: Send + 'static>(
    hub: &AlertHub,
    call: impl FnOnce(&AlertHub) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RequestError> {
    let hub = hub.clone();
    tokio::task::spawn_blocking(move || call(&hub))
        .await
        .map_err(|error| RequestError::Internal {
            reason: format!("alert store call stopped: {error}"),
        })?
        .map_err(store_error)
}

pub(crate) fn store_error(error: StoreError) -> RequestError {
    match error {
        StoreError::NotFound { id } => RequestError::NotFound { id },
        StoreError::WrongState { .. } => RequestError::FailedPrecondition {
            reason: error.to_string(),
        },
        StoreError::Backend { reason } => RequestError::Unavailable { reason },
        // The store file cannot be opened (a reader opens it anew when the pool is empty).
        StoreError::Open { .. } => RequestError::Unavailable {
            reason: error.to_string(),
        },
    }
}

/// Reads an alert id; anything but a stored id is NOT_FOUND, naming what was given.
pub(crate) fn alert_id(text: &str) -> Result<i64, RequestError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| RequestError::NotFound {
            id: text.to_string(),
        })
}

/// Reads a free-text field, blank meaning none, refusing one over `limit` bytes.
pub(crate) fn optional_text(
    field: &'static str,
    text: &str,
    limit: usize,
) -> Result<Option<String>, RequestError> {
    let text = text.trim();
    if text.len() > limit {
        return Err(RequestError::TooLong {
            field,
            length: text.len(),
            limit,
        });
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

fn filter_from_proto(filter: Option<proto::AlertFilter>) -> Result<AlertFilter, RequestError> {
    let Some(filter) = filter else {
        return Ok(AlertFilter::default());
    };
    let text = |field, value: &str| optional_text(field, value, MAX_CUSTOMER_ID_BYTES);
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
    Ok(AlertFilter {
        min_band: band_from_proto(min_band),
        assignee: text("filter.assignee", &filter.assignee)?,
        team: text("filter.team", &filter.team)?,
        customer_id: text("filter.customer_id", &filter.customer_id)?,
        states,
    })
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
            let limit = match u64::from(request.page_size) {
                0 => DEFAULT_PAGE_SIZE,
                size => size.min(MAX_PAGE_SIZE),
            };
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
        let request = request.into_inner();
        let result = async {
            let id = alert_id(&request.alert_id)?;
            let by = optional_text("by", &request.by, MAX_CUSTOMER_ID_BYTES)?;
            let event = self
                .hub
                .acknowledge(id, by.as_deref(), now())
                .map_err(store_error)?;
            Ok(alert_to_proto(&event.alert))
        }
        .await;
        self.finish("AcknowledgeAlert", started, result)
    }

    async fn resolve_alert(
        &self,
        request: Request<proto::ResolveAlertRequest>,
    ) -> Result<Response<proto::Alert>, Status> {
        let started = Instant::now();
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
            let note = optional_text("note", &request.note, MAX_NOTE_BYTES)?;
            let by = optional_text("by", &request.by, MAX_CUSTOMER_ID_BYTES)?;
            let event = self
                .hub
                .resolve(id, outcome, note.as_deref(), by.as_deref(), now())
                .map_err(store_error)?;
            Ok(alert_to_proto(&event.alert))
        }
        .await;
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
