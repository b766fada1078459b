//! Accepting connections: a cap on how many are open, TLS handshakes with a deadline that run
//! beside the accept loop (a client that stalls its handshake holds up no one), and an idle
//! timeout that closes a connection with no request in flight.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::tls::{Tls, certificate_subject};
use crate::metrics::Metrics;

/// How a port accepts connections.
#[derive(Debug, Clone)]
pub struct AcceptSettings {
    /// Most connections open at once on this port; past it a new one is closed at once.
    pub max_connections: usize,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Which port, for logs and metrics: `grpc` or `http`.
    pub port: &'static str,
}

/// What is known of a connection; requests carry it as an extension.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The subject common name of the client's certificate (mutual TLS), which names the caller.
    pub client_subject: Option<Arc<str>>,
    activity: Arc<Activity>,
}

impl ConnInfo {
    /// Counts a request in flight on this connection until the guard is dropped.
    pub fn begin_request(&self) -> RequestGuard {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            activity: self.activity.clone(),
        }
    }
}

/// Requests in flight on a connection and when the last one ended, for the idle timeout.
#[derive(Debug)]
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds after `started` when a request last ended (0 when none has).
    last_end_ms: AtomicU64,
    started: Instant,
}

impl Activity {
    fn last_active(&self) -> Instant {
        self.started + Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed))
    }
}

/// Held while a request (and its response body) is in flight.
#[derive(Debug)]
pub struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let since = self.activity.started.elapsed().as_millis() as u64;
        self.activity.last_end_ms.store(since, Ordering::Relaxed);
        self.activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection, TLS or not, holding its place under the connection cap.
pub struct Conn {
    stream: Stream,
    info: ConnInfo,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Conn")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// What is known of the connection.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// Returns an error once the connection has had no request in flight for the idle timeout.
    fn poll_idle(&mut self, context: &mut Context<'_>) -> Poll<io::Error> {
        let Some((timeout, sleep)) = &mut self.idle else {
            return Poll::Pending;
        };
        while sleep.as_mut().poll(context).is_ready() {
            let activity = &self.info.activity;
            let deadline = if activity.in_flight.load(Ordering::Relaxed) > 0 {
                Instant::now() + *timeout
            } else {
                activity.last_active() + *timeout
            };
            if deadline <= Instant::now() {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past idle_timeout_ms",
                ));
            }
            sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Poll::Ready(error) = self.poll_idle(context) {
            return Poll::Ready(Err(error));
        }
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write(context, bytes),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(context, buffers),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(context, buffers),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.stream {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(context),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

/// Accepts connections on `listener` until `stopped` turns true, and yields them once their TLS
/// handshake (if any) is done. Handshakes run in their own tasks.
pub fn accept(
    listener: TcpListener,
    tls: Option<Tls>,
    settings: AcceptSettings,
    metrics: Metrics,
    mut stopped: watch::Receiver<bool>,
) -> UnboundedReceiverStream<io::Result<Conn>> {
    // Unbounded, yet bounded by the connection cap: every queued connection holds a permit.
    let (ready, connections) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    tokio::spawn(async move {
        let mut last_refusal_logged: Option<Instant> = None;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stopped.wait_for(|stop| *stop) => return,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(%error, port = settings.port, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                metrics.observe_connection_refused(settings.port);
                if last_refusal_logged.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    last_refusal_logged = Some(Instant::now());
                    tracing::warn!(
                        %peer,
                        port = settings.port,
                        limit = settings.max_connections,
                        "connection refused: max_connections open (logged once every 10 s)"
                    );
                }
                drop(socket);
                continue;
            };
            let _ = socket.set_nodelay(true);
            let tls = tls.clone();
            let ready = ready.clone();
            let settings = settings.clone();
            tokio::spawn(async move {
                let stream = match tls {
                    None => Stream::Plain(socket),
                    Some(tls) => {
                        let handshake = tls.acceptor().accept(socket);
                        match tokio::time::timeout(settings.handshake_timeout, handshake).await {
                            Ok(Ok(stream)) => Stream::Tls(Box::new(stream)),
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, port = settings.port, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, port = settings.port, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                let client_subject = match &stream {
                    Stream::Tls(stream) => stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(certificate_subject)
                        .map(Arc::from),
                    Stream::Plain(_) => None,
                };
                let activity = Arc::new(Activity {
                    in_flight: AtomicUsize::new(0),
                    last_end_ms: AtomicU64::new(0),
                    started: Instant::now(),
                });
                let idle = (!settings.idle_timeout.is_zero()).then(|| {
                    (
                        settings.idle_timeout,
                        Box::pin(tokio::time::sleep(settings.idle_timeout)),
                    )
                });
                let conn = Conn {
                    stream,
                    info: ConnInfo {
                        peer,
                        client_subject,
                        activity,
                    },
                    idle,
                    _permit: permit,
                };
                // The receiver is gone only when the server is stopping.
                let _ = ready.send(Ok(conn));
            });
        }
    });
    UnboundedReceiverStream::new(connections)
}
