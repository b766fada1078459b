//! The network edge both ports share: TLS, accepting connections under a cap, the idle timeout,
//! and the request guard that keeps a connection counted busy while a response is in flight.

pub mod conn;
pub mod http1;
pub mod tls;

use std::pin::Pin;
use std::task::{Context, Poll};

pub use conn::{AcceptSettings, Conn, ConnInfo, RequestGuard, accept};
pub use tls::{Alpn, Tls, TlsFiles};

/// A response body that holds something (a request guard, a permit) until the body is done or
/// dropped: a streaming response is in flight for as long as it streams.
#[derive(Debug)]
pub struct Holding<B, H> {
    body: B,
    _held: H,
}

impl<B, H> Holding<B, H> {
    /// Wraps `body`, holding `held` until the body is dropped.
    pub fn new(body: B, held: H) -> Self {
        Holding { body, _held: held }
    }
}

impl<B, H> http_body::Body for Holding<B, H>
where
    B: http_body::Body + Unpin,
    H: Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
