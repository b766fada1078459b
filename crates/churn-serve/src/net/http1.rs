//! Serving the HTTP port (`/metrics` and the console) over accepted connections with hyper
//! directly: `axum::serve` has no header-read timeout, and a slowloris client trickling header
//! bytes would otherwise hold its connection for ever.

use std::io;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tower::ServiceExt;

use super::{Conn, Holding};

/// How long open connections (a console's live feed) get to finish once the server stops.
const GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on every connection from `connections` until `stopped` turns true, then
/// waits (up to a grace period) for open connections to finish.
pub async fn serve(
    mut connections: impl tokio_stream::Stream<Item = io::Result<Conn>> + Unpin,
    router: axum::Router,
    header_read_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let conn = tokio::select! {
            next = connections.next() => match next {
                Some(Ok(conn)) => conn,
                Some(Err(_)) => continue,
                None => break,
            },
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let info = conn.info().clone();
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
                let busy = info.begin_request();
                request.extensions_mut().insert(info.clone());
                let router = router.clone();
                async move {
                    let response = router.oneshot(request).await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| axum::body::Body::new(Holding::new(body, busy))),
                    )
                }
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(conn), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    drop(connections);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open {GRACE:?} after the stop; closing them");
    }
}
