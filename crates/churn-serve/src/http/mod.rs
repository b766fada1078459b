//! The HTTP port: Prometheus `/metrics` and the agent console.

pub mod console;
pub mod sessions;

use crate::metrics::Metrics;

pub use console::Console;

/// Returns the HTTP port's routes: `/metrics`, and the console when there is one.
pub fn router(metrics: Metrics, console: Option<Console>) -> axum::Router {
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(metrics);
    match console {
        Some(console) => router.merge(console.router()),
        None => router,
    }
}

async fn render_metrics(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}
