//! The gRPC services: scoring (`churn.v1.ChurnService`) and administration
//! (`churn.v1.AdminService`). Every handler validates its request against the model's schema
//! and answers a bad one with `INVALID_ARGUMENT`; nothing on a request path panics.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::config::ServeConfig;
use crate::convert::{explain_response, profile_error, profile_from_proto, score_response};
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::model::{LoadedModel, ModelSlot};
use crate::proto;

/// Reasons returned each way when a request does not say.
pub const DEFAULT_TOP_K: usize = 5;

/// The service state shared by every connection.
#[derive(Debug, Clone)]
pub struct ChurnApi {
    slot: Arc<ModelSlot>,
    metrics: Metrics,
    max_batch: usize,
    max_top_k: usize,
}

impl ChurnApi {
    /// Serves the model in `slot` with the limits of `config`.
    pub fn new(slot: Arc<ModelSlot>, metrics: Metrics, config: &ServeConfig) -> Self {
        ChurnApi {
            slot,
            metrics,
            max_batch: config.max_batch,
            max_top_k: config.max_top_k,
        }
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
    ) -> Result<proto::ScoreResponse, RequestError> {
        let (customer_id, profile) = profile_from_proto(request.profile)?;
        let top = model
            .scorer
            .explain_top(&profile, self.top_k(request.top_k))?;
        Ok(score_response(model, customer_id, top))
    }

    /// Returns the model serving now.
    pub fn model(&self) -> Arc<LoadedModel> {
        self.slot.current()
    }

    /// Returns the result of one profile of a batch or stream.
    fn score_result(
        &self,
        model: &LoadedModel,
        index: u64,
        request: proto::ScoreRequest,
    ) -> proto::ScoreResult {
        let customer_id = request
            .profile
            .as_ref()
            .map(|profile| profile.customer_id.clone())
            .unwrap_or_default();
        let scored = self.score_with(model, request);
        self.metrics.observe_profile(&scored);
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

type ResultStream = Pin<Box<dyn Stream<Item = Result<proto::ScoreResult, Status>> + Send>>;

#[tonic::async_trait]
impl proto::churn_service_server::ChurnService for ChurnApi {
    async fn score(
        &self,
        request: Request<proto::ScoreRequest>,
    ) -> Result<Response<proto::ScoreResponse>, Status> {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let result = self.score_with(&self.model(), request.into_inner());
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
        // A batch takes up to tens of milliseconds: off the async workers, one model for all.
        let api = self.clone();
        let scored = tokio::task::spawn_blocking(move || {
            let model = api.model();
            let top_k = request.top_k;
            let results = request
                .profiles
                .into_iter()
                .enumerate()
                .map(|(index, profile)| {
                    let single = proto::ScoreRequest {
                        profile: Some(profile),
                        top_k,
                    };
                    api.score_result(&model, index as u64, single)
                })
                .collect();
            proto::ScoreBatchResponse { results }
        })
        .await
        .map_err(|error| RequestError::Internal {
            reason: format!("batch scoring stopped: {error}"),
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
                    Ok(request) => Ok(api.score_result(&api.model(), index, request)),
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
        let result =
            profile_from_proto(request.into_inner().profile).and_then(|(customer_id, profile)| {
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
        _request: Request<proto::ReloadModelRequest>,
    ) -> Result<Response<proto::ReloadModelResponse>, Status> {
        let started = Instant::now();
        let outcome = crate::server::reload(&self.slot, &self.metrics, "ReloadModel").await;
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
}
