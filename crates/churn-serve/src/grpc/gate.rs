//! The gate every gRPC call passes before a handler runs: who is calling and whether their role
//! allows the call, whether the server has room for one more call in flight, and whether the
//! caller may open another alert feed. A refused call costs no decoding and no handler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http;

use crate::audit::{AuditEntry, AuditLog, CALL_REFUSED};
use crate::auth::{AuthError, Callers, role_for_grpc_path};
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::net::{ConnInfo, Holding};
use crate::requests::FeedLimiter;

/// The path of the one call that holds an alert feed open.
const STREAM_ALERTS_PATH: &str = "/churn.v1.AlertService/StreamAlerts";
/// Reflection's services, v1 and v1alpha.
const REFLECTION_PREFIX: &str = "/grpc.reflection.";

/// Who may use server reflection (what grpcurl and grpcui list services with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reflection {
    /// Anyone who reaches the port.
    Open,
    /// Any known caller, whatever its roles.
    Callers,
    /// No one: the reflection service is not served.
    Off,
}

impl std::str::FromStr for Reflection {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "open" => Ok(Reflection::Open),
            "callers" => Ok(Reflection::Callers),
            "off" => Ok(Reflection::Off),
            _ => Err("must be `open`, `callers` or `off`".into()),
        }
    }
}

/// What the gate checks; cheap to clone.
#[derive(Debug, Clone)]
pub struct Gate {
    callers: Option<Callers>,
    reflection: Reflection,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    feeds: FeedLimiter,
    metrics: Metrics,
    audit: AuditLog,
}

impl Gate {
    /// A gate checking `callers` (none: no authentication), allowing `max_in_flight` calls at
    /// once and each caller the alert feeds `feeds` allows.
    pub fn new(
        callers: Option<Callers>,
        reflection: Reflection,
        max_in_flight: usize,
        feeds: FeedLimiter,
        metrics: Metrics,
        audit: AuditLog,
    ) -> Self {
        Gate {
            callers,
            reflection,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            feeds,
            metrics,
            audit,
        }
    }

    /// Decides a call: on success, what the response body must hold while it is in flight.
    fn admit(
        &self,
        request: &mut http::Request<Body>,
    ) -> Result<impl Send + Unpin + 'static, tonic::Status> {
        let path = request.uri().path();
        let info = request.extensions().get::<ConnInfo>().cloned();
        let needed = if path.starts_with(REFLECTION_PREFIX) {
            match self.reflection {
                Reflection::Open => None,
                Reflection::Callers | Reflection::Off => Some(None),
            }
        } else {
            role_for_grpc_path(path).map(Some)
        };
        let mut caller = None;
        if let (Some(callers), Some(needed)) = (&self.callers, needed) {
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok());
            let subject = info
                .as_ref()
                .and_then(|info| info.client_subject.as_deref());
            match callers.authenticate(authorization, subject, needed) {
                Ok(found) => caller = Some(found),
                Err(error) => return Err(self.refuse(path, info.as_ref(), error)),
            }
        }
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            self.metrics.observe_request_refused("max_in_flight");
            tonic::Status::from(RequestError::Exhausted {
                reason: format!(
                    "the server has {} calls in flight, its limit (max_in_flight); retry with \
                     backoff",
                    self.max_in_flight
                ),
            })
        })?;
        let feed = if path == STREAM_ALERTS_PATH {
            let key = match (&caller, &info) {
                (Some(caller), _) => caller.name().to_string(),
                (None, Some(info)) => info.peer.ip().to_string(),
                (None, None) => "anonymous".to_string(),
            };
            Some(self.feeds.try_open(&key).map_err(|error| {
                self.metrics.observe_request_refused("max_alert_feeds");
                tonic::Status::from(error)
            })?)
        } else {
            None
        };
        if let Some(caller) = caller {
            request.extensions_mut().insert(caller);
        }
        let busy = info.map(|info| info.begin_request());
        Ok((permit, feed, busy))
    }

    fn refuse(&self, path: &str, info: Option<&ConnInfo>, error: AuthError) -> tonic::Status {
        let reason = if error.is_forbidden() {
            "permission_denied"
        } else {
            "unauthenticated"
        };
        self.metrics.observe_request_refused(reason);
        let actor = match &error {
            AuthError::Forbidden { caller, .. } => caller.as_str(),
            _ => "unknown caller",
        };
        // Rate limited per peer, call and reason: a flood of bad tokens cannot fill the disk.
        self.audit.refused(
            AuditEntry::new(actor, CALL_REFUSED, path)
                .detail(&format!("{reason}: {error}"))
                .peer(info.map(|info| info.peer)),
        );
        error.into()
    }
}

impl<S> tower::Layer<S> for Gate {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Gated<S> {
        Gated {
            gate: self.clone(),
            inner,
        }
    }
}

/// A service behind the [`Gate`].
#[derive(Debug, Clone)]
pub struct Gated<S> {
    gate: Gate,
    inner: S,
}

type GatedFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Gated<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = GatedFuture;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let held = match self.gate.admit(&mut request) {
            Ok(held) => held,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        // The clone is the ready one's replacement, as tower's docs advise.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let response = inner.call(request).await?;
            Ok(response.map(|body| Body::new(Holding::new(body, held))))
        })
    }
}
