//! Errors of the service: the server's own faults (a model that will not load, a port that will
//! not bind) apart from a caller's bad request, which maps to a gRPC status in one place.

use std::net::SocketAddr;
use std::path::PathBuf;

use churn_core::CoreError;

/// Result alias of `churn-serve`.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// What can stop the server from starting or a model from loading.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read model `{path}`: {source}")]
    ReadModel {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model `{path}`: {source}")]
    InvalidModel { path: PathBuf, source: CoreError },
    #[error("cannot read config `{path}`: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
    #[error("config `{key}` = `{value}`: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    /// The alert store cannot be opened; the store's error names the file and says why.
    #[error(transparent)]
    AlertStore(#[from] crate::alerts::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a request (or one profile of a batch) cannot be answered. Every variant is the caller's
/// fault except `Internal`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Profile(#[from] CoreError),
    #[error("`{field}` is required")]
    Required { field: &'static str },
    #[error("`customer_id` is {length} bytes long; the limit is {limit}")]
    CustomerIdTooLong { length: usize, limit: usize },
    #[error("`{field}` is {length} bytes long; the limit is {limit}")]
    TooLong {
        field: &'static str,
        length: usize,
        limit: usize,
    },
    #[error("`alert_id` `{id}` does not exist")]
    NotFound { id: String },
    #[error("{reason}")]
    FailedPrecondition { reason: String },
    #[error("`{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("alerts cannot be recorded now ({reason}); nothing was reported, retry the call")]
    Unavailable { reason: String },
    #[error("`profiles` has {count} profiles; the limit is {limit} per batch")]
    BatchTooLarge { count: usize, limit: usize },
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl RequestError {
    /// Returns the gRPC code of the error: the one place errors meet `tonic::Code`.
    pub fn code(&self) -> tonic::Code {
        match self {
            RequestError::Profile(error) if !error.is_caller_fault() => tonic::Code::Internal,
            RequestError::Internal { .. } => tonic::Code::Internal,
            RequestError::NotFound { .. } => tonic::Code::NotFound,
            RequestError::FailedPrecondition { .. } => tonic::Code::FailedPrecondition,
            RequestError::Unavailable { .. } => tonic::Code::Unavailable,
            RequestError::Profile(_)
            | RequestError::TooLong { .. }
            | RequestError::Invalid { .. }
            | RequestError::Required { .. }
            | RequestError::CustomerIdTooLong { .. }
            | RequestError::BatchTooLarge { .. } => tonic::Code::InvalidArgument,
        }
    }

    /// Returns the request field the error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            RequestError::Profile(error) => error.feature(),
            RequestError::Required { field } => Some(field),
            RequestError::CustomerIdTooLong { .. } => Some("customer_id"),
            RequestError::BatchTooLarge { .. } => Some("profiles"),
            RequestError::TooLong { field, .. } | RequestError::Invalid { field, .. } => {
                Some(field)
            }
            RequestError::NotFound { .. } => Some("alert_id"),
            RequestError::Internal { .. }
            | RequestError::FailedPrecondition { .. }
            | RequestError::Unavailable { .. } => None,
        }
    }
}

impl From<RequestError> for tonic::Status {
    fn from(error: RequestError) -> Self {
        tonic::Status::new(error.code(), error.to_string())
    }
}
