//! The gRPC front end: `churn.v1.ChurnService` and `AdminService` (scoring), `AlertService`
//! (the alert queue and its stream), and the server's side of the wire contract.

pub mod alerts;
pub(crate) mod convert;
pub mod gate;
pub mod scoring;

pub use alerts::{AlertApi, RESUME_CURSOR_TRAILER};
pub use scoring::{ChurnApi, DEFAULT_TOP_K};

/// The address a call came from: the connection's, as the accept loop recorded it.
pub(crate) fn peer_of<T>(request: &tonic::Request<T>) -> Option<std::net::SocketAddr> {
    request
        .extensions()
        .get::<crate::net::ConnInfo>()
        .map(|info| info.peer)
        .or_else(|| request.remote_addr())
}
