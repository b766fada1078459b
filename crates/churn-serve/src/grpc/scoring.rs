//! The gRPC services: scoring (`churn.v1.ChurnService`) and administration
//! (`churn.v1.AdminService`). Every handler validates its request against the model's schema
//! and answers a bad one with `INVALID_ARGUMENT`; nothing on a request path panics.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::alerts::{AlertHub, NewScore, StoredReason};
use crate::audit::{ANONYMOUS, AUDIT_READ, AuditEntry, AuditLog};
use crate::auth::Caller;
use crate::config::ServeConfig;
use churn_api::convert::{profile_from_proto, value_text};
use churn_api::proto;

use crate::error::RequestError;
use crate::grpc::convert::{
    event_kind_to_proto, explain_response, profile_error, score_response, value_number,
};
use crate::metrics::Metrics;
use crate::model::{LoadedModel, ModelSlot};
use crate::requests::{audit_query, name_field, now, store_error};

/// Reasons returned each way when a request does not say.
pub const DEFAULT_TOP_K: usize = 5;

/// The service state shared by every connection.
#[derive(Debug, Clone)]
pub struct ChurnApi {
    slot: Arc<ModelSlot>,
    metrics: Metrics,
    max_batch: usize,
    max_top_k: usize,
    alerts: Option<AlertHub>,
    audit: AuditLog,
}

/// A scored profile, with what its alert needs beyond the response.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The answer to the caller.
    pub response: proto::ScoreResponse,
    band: churn_core::RiskBand,
    /// The profile's value of the policy's value feature, when it has one.
    customer_value: Option<f64>,
    assignee: Option<String>,
    team: Option<String>,
}

impl ChurnApi {
    /// Serves the model in `slot` with the limits of `config`, raising alerts through `alerts`.
    pub fn new(
        slot: Arc<ModelSlot>,
        metrics: Metrics,
        config: &ServeConfig,
        alerts: Option<AlertHub>,
    ) -> Self {
        ChurnApi {
            audit: AuditLog::new(None, metrics.clone()),
            slot,
            metrics,
            max_batch: config.max_batch,
            max_top_k: config.max_top_k,
            alerts,
        }
    }

    /// Writes reloads to `audit`, and reads it for ListAudit (by default, reloads go to the
    /// `tracing` log only and ListAudit has nothing to read).
    pub fn with_audit(self, audit: AuditLog) -> Self {
        ChurnApi { audit, ..self }
    }

    /// Returns the number of reasons to give each way for a request's `top_k`.
    fn top_k(&self, requested: u32) -> usize {
        match requested {
            0 => DEFAULT_TOP_K,
            k => (k as usize).min(self.max_top_k),
        }
    }

    /// Scores one request with the given model: the whole of `Score`, without the transport,
    /// so benchmarks and batches call exactly what the RPC does.
    pub fn score_with(
        &self,
        model: &LoadedModel,
        request: proto::ScoreRequest,
    ) -> Result<Scored, RequestError> {
        let (assignee, team) = match &request.profile {
            Some(profile) => (
                name_field("assignee", &profile.assignee)?,
                name_field("team", &profile.team)?,
            ),
            None => (None, None),
        };
        let (customer_id, profile) = profile_from_proto(request.profile)?;
        let top = model
            .scorer
            .explain_top(&profile, self.top_k(request.top_k))?;
        let customer_value = self
            .alerts
            .as_ref()
            .and_then(|hub| hub.policy().value_feature.as_ref())
            .and_then(|feature| profile.get(feature))
            .and_then(value_number);
        let band = model.scorer.band(top.probability);
        Ok(Scored {
            response: score_response(model, customer_id, top),
            band,
            customer_value,
            assignee,
            team,
        })
    }

    /// Records scores with the alert policy and marks each response with the alert it raised
    /// or updated. The alerts are committed when this returns; without alerts it does nothing.
    /// Blocks on the alert store's commit when a score changes an alert.
    pub fn record_alerts(&self, scored: &mut [&mut Scored]) -> Result<(), RequestError> {
        let Some(hub) = &self.alerts else {
            return Ok(());
        };
        let scores = new_scores(scored);
        let changes = hub.record(&scores).map_err(unavailable)?;
        mark_alerts(scored, changes);
        Ok(())
    }

    /// As `record_alerts`, without blocking an async worker: a score that changes no alert is
    /// kept in memory at once; one that may change an alert commits on the blocking pool.
    async fn record_alert(&self, mut scored: Scored) -> Result<Scored, RequestError> {
        let Some(hub) = &self.alerts else {
            return Ok(scored);
        };
        let scores = new_scores(&[&mut scored]);
        let changes = match hub.record_quiet(&scores) {
            Some(changes) => changes,
            None => {
                let hub = hub.clone();
                tokio::task::spawn_blocking(move || hub.record(&scores))
                    .await
                    .map_err(|error| RequestError::Internal {
                        reason: format!("alert recording stopped: {error}"),
                    })?
                    .map_err(unavailable)?
            }
        };
        mark_alerts(&mut [&mut scored], changes);
        Ok(scored)
    }

    /// Scores one request and records its alert: the whole of `Score`.
    async fn score_and_record(
        &self,
        model: &LoadedModel,
        request: proto::ScoreRequest,
    ) -> Result<proto::ScoreResponse, RequestError> {
        let scored = self.score_with(model, request)?;
        Ok(self.record_alert(scored).await?.response)
    }

    /// Returns the model serving now.
    pub fn model(&self) -> Arc<LoadedModel> {
        self.slot.current()
    }

    /// Returns the result of one profile of a batch or stream.
    fn score_result(
        index: u64,
        customer_id: String,
        scored: Result<proto::ScoreResponse, RequestError>,
    ) -> proto::ScoreResult {
        let outcome = match scored {
            Ok(response) => proto::score_result::Outcome::Score(response),
            Err(error) => proto::score_result::Outcome::Error(profile_error(&error)),
        };
        proto::ScoreResult {
            index,
            customer_id,
            outcome: Some(outcome),
        }
    }

    /// Counts a finished call and turns a request error into its status.
    fn finish<T>(
        &self,
        method: &'static str,
        started: Instant,
        result: Result<T, RequestError>,
    ) -> Result<Response<T>, Status> {
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(error) => error.code(),
        };
        self.metrics.observe_call(method, code, started.elapsed());
        match result {
            Ok(message) => Ok(Response::new(message)),
            Err(error) => {
                if code == tonic::Code::Internal {
                    tracing::error!(method, %error, "request failed");
                } else {
                    tracing::debug!(method, %error, "request refused");
                }
                Err(error.into())
            }
        }
    }
}

fn unavailable(error: crate::alerts::StoreError) -> RequestError {
    RequestError::Unavailable {
        reason: error.to_string(),
    }
}

fn new_scores(scored: &[&mut Scored]) -> Vec<NewScore> {
    let at = now();
    scored.iter().map(|scored| new_score(scored, at)).collect()
}

/// Marks each response with what its score did to the customer's alert.
fn mark_alerts(scored: &mut [&mut Scored], changes: Vec<Option<crate::alerts::AlertChange>>) {
    for (scored, change) in scored.iter_mut().zip(changes) {
        scored.response.alert = change.map(|change| proto::AlertChange {
            alert_id: change.alert_id.to_string(),
            kind: event_kind_to_proto(change.kind).into(),
        });
    }
}

fn stored_reason(reason: &proto::Reason) -> StoredReason {
    StoredReason {
        feature: reason.feature.clone(),
        value: value_text(reason.value.as_ref()),
        contribution: reason.contribution,
        message: reason.message.clone(),
    }
}

/// Returns what the alert store keeps of a score.
fn new_score(scored: &Scored, at: churn_core::Timestamp) -> NewScore {
    let response = &scored.response;
    NewScore {
        customer_id: response.customer_id.clone(),
        probability: response.probability,
        band: scored.band,
        percentile: response.percentile,
        customer_value: scored.customer_value,
        assignee: scored.assignee.clone(),
        team: scored.team.clone(),
        reasons: response.raising.iter().map(stored_reason).collect(),
        lowering: response.lowering.iter().map(stored_reason).collect(),
        model_version: response
            .model
            .as_ref()
            .map(|model| model.version.clone())
            .unwrap_or_default(),
        at,
    }
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<proto::ScoreResult, Status>> + Send>>;

#[tonic::async_trait]
impl proto::churn_service_server::ChurnService for ChurnApi {
    async fn score(
        &self,
        request: Request<proto::ScoreRequest>,
    ) -> Result<Response<proto::ScoreResponse>, Status> {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let result = self
            .score_and_record(&self.model(), request.into_inner())
            .await;
        self.metrics.observe_profile(&result);
        self.finish("Score", started, result)
    }

    async fn score_batch(
        &self,
        request: Request<proto::ScoreBatchRequest>,
    ) -> Result<Response<proto::ScoreBatchResponse>, Status> {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let request = request.into_inner();
        let count = request.profiles.len();
        if count > self.max_batch {
            let error = RequestError::BatchTooLarge {
                count,
                limit: self.max_batch,
            };
            return self.finish("ScoreBatch", started, Err(error));
        }
        // A batch takes up to tens of milliseconds: off the async workers, one model for all,
        // and all its alerts in one commit before the answer.
        let api = self.clone();
        let answered = tokio::task::spawn_blocking(move || {
            let model = api.model();
            let top_k = request.top_k;
            let mut scored: Vec<(String, Result<Scored, RequestError>)> = request
                .profiles
                .into_iter()
                .map(|profile| {
                    let customer_id = profile.customer_id.clone();
                    let single = proto::ScoreRequest {
                        profile: Some(profile),
                        top_k,
                    };
                    let scored = api.score_with(&model, single);
                    api.metrics.observe_profile(&scored);
                    (customer_id, scored)
                })
                .collect();
            let mut good: Vec<&mut Scored> = scored
                .iter_mut()
                .filter_map(|(_, result)| result.as_mut().ok())
                .collect();
            api.record_alerts(&mut good)?;
            let results = scored
                .into_iter()
                .enumerate()
                .map(|(index, (customer_id, result))| {
                    let response = result.map(|scored| scored.response);
                    Self::score_result(index as u64, customer_id, response)
                })
                .collect();
            Ok(proto::ScoreBatchResponse { results })
        })
        .await;
        let scored = answered.unwrap_or_else(|error| {
            Err(RequestError::Internal {
                reason: format!("batch scoring stopped: {error}"),
            })
        });
        self.finish("ScoreBatch", started, scored)
    }

    type ScoreStreamStream = ResultStream;

    async fn score_stream(
        &self,
        request: Request<Streaming<proto::ScoreRequest>>,
    ) -> Result<Response<Self::ScoreStreamStream>, Status> {
        let mut requests = request.into_inner();
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let api = self.clone();
        tokio::spawn(async move {
            let mut index = 0u64;
            while let Some(next) = requests.next().await {
                let started = Instant::now();
                let item = match next {
                    Ok(request) => {
                        let customer_id = request
                            .profile
                            .as_ref()
                            .map(|profile| profile.customer_id.clone())
                            .unwrap_or_default();
                        let scored = api.score_and_record(&api.model(), request).await;
                        api.metrics.observe_profile(&scored);
                        match scored {
                            // The alert store failing is not this profile's fault: end the
                            // stream, as the client must retry what was not answered.
                            Err(RequestError::Unavailable { reason }) => {
                                Err(Status::unavailable(reason))
                            }
                            scored => Ok(Self::score_result(index, customer_id, scored)),
                        }
                    }
                    // The client's stream broke (or sent a message we cannot decode): say so
                    // and stop, as the stream cannot be trusted past this point.
                    Err(status) => Err(status),
                };
                let code = item.as_ref().map_or_else(Status::code, |_| tonic::Code::Ok);
                api.metrics
                    .observe_call("ScoreStream", code, started.elapsed());
                let stop = item.is_err();
                if sender.send(item).await.is_err() || stop {
                    break;
                }
                index += 1;
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn explain(
        &self,
        request: Request<proto::ExplainRequest>,
    ) -> Result<Response<proto::ExplainResponse>, Status> {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let model = self.model();
        let result = profile_from_proto(request.into_inner().profile)
            .map_err(RequestError::from)
            .and_then(|(customer_id, profile)| {
                let explanation = model.scorer.explain(&profile)?;
                Ok(explain_response(&model, customer_id, &explanation))
            });
        self.metrics.observe_profile(&result);
        self.finish("Explain", started, result)
    }

    async fn get_model(
        &self,
        _request: Request<proto::GetModelRequest>,
    ) -> Result<Response<proto::ModelInfo>, Status> {
        let started = Instant::now();
        self.finish("GetModel", started, Ok(self.model().info()))
    }
}

#[tonic::async_trait]
impl proto::admin_service_server::AdminService for ChurnApi {
    async fn reload_model(
        &self,
        request: Request<proto::ReloadModelRequest>,
    ) -> Result<Response<proto::ReloadModelResponse>, Status> {
        let started = Instant::now();
        let caller = request.extensions().get::<Caller>().cloned();
        let actor = caller.as_ref().map_or(ANONYMOUS, Caller::name);
        let outcome = crate::server::reload(
            &self.slot,
            &self.metrics,
            &self.audit,
            "ReloadModel",
            actor,
            super::peer_of(&request),
        )
        .await;
        let code = match &outcome {
            Ok(_) => tonic::Code::Ok,
            Err(_) => tonic::Code::FailedPrecondition,
        };
        self.metrics
            .observe_call("ReloadModel", code, started.elapsed());
        match outcome {
            Ok(reloaded) => Ok(Response::new(proto::ReloadModelResponse {
                model: Some(self.model().model_ref()),
                changed: reloaded.changed,
            })),
            Err(error) => Err(Status::failed_precondition(format!(
                "{error}; the previous model keeps serving"
            ))),
        }
    }

    async fn list_audit(
        &self,
        request: Request<proto::ListAuditRequest>,
    ) -> Result<Response<proto::ListAuditResponse>, Status> {
        let started = Instant::now();
        let caller = request.extensions().get::<Caller>().cloned();
        let peer = super::peer_of(&request);
        let request = request.into_inner();
        let result =
            async {
                let (filter, range, limit) = audit_query(
                    ("after_id", Some(request.after_id)),
                    ("before_id", Some(request.before_id)),
                    Some(u64::from(request.limit)),
                    &request.actor,
                    &request.action,
                )?;
                let store = self.audit.store().cloned().ok_or_else(|| {
                    RequestError::FailedPrecondition {
                        reason: "this server keeps no audit log to list: it is kept in the alert \
                             store, and alerts are off (its entries go to the server's log)"
                            .into(),
                    }
                })?;
                let entries =
                    tokio::task::spawn_blocking(move || store.audit_entries(&filter, range, limit))
                        .await
                        .map_err(|error| RequestError::Internal {
                            reason: format!("audit read stopped: {error}"),
                        })?
                        .map_err(store_error)?;
                Ok(proto::ListAuditResponse {
                    entries: entries.iter().map(audit_entry_to_proto).collect(),
                })
            }
            .await;
        if result.is_ok() {
            let actor = caller.as_ref().map_or(ANONYMOUS, Caller::name);
            self.audit
                .record(AuditEntry::new(actor, AUDIT_READ, "ListAudit").peer(peer));
        }
        self.finish("ListAudit", started, result)
    }
}

fn audit_entry_to_proto(entry: &AuditEntry) -> proto::AuditEntry {
    proto::AuditEntry {
        id: entry.id,
        at: crate::grpc::convert::rfc3339(entry.at),
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        detail: entry.detail.clone(),
        peer: entry.peer.clone(),
    }
}
