//! The HTTP port: Prometheus `/metrics` and the agent console.

pub mod console;
pub mod sessions;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{Callers, Role};
use crate::metrics::Metrics;

pub use console::Console;

#[derive(Debug, Clone)]
struct MetricsState {
    metrics: Metrics,
    /// Callers allowed to scrape: those with the `metrics` (or `admin`) role; `None`: anyone.
    scrapers: Option<Callers>,
}

/// Returns the HTTP port's routes: `/metrics` (behind a `metrics` token when `scrapers` is
/// given, as Prometheus's `authorization` setting sends it), and the console when there is one.
pub fn router(
    metrics: Metrics,
    scrapers: Option<Callers>,
    console: Option<Console>,
) -> axum::Router {
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(MetricsState { metrics, scrapers });
    match console {
        Some(console) => router.merge(console.router()),
        None => router,
    }
}

async fn render_metrics(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Some(scrapers) = &state.scrapers {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        if let Err(error) = scrapers.authenticate(authorization, None, Some(Role::Metrics)) {
            let status = if error.is_forbidden() {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            state
                .metrics
                .observe_request_refused(if error.is_forbidden() {
                    "permission_denied"
                } else {
                    "unauthenticated"
                });
            return (
                status,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"churn metrics\"")],
                error.to_string(),
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
