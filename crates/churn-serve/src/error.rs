//! Errors of the service: the server's own faults (a model that will not load, a port that will
//! not bind) apart from a caller's bad request, which maps to a gRPC status in one place.
//!
//! Each message says its cause once: a variant either writes its cause into the message (the
//! field is then not a `source`) or leaves it to the error chain that `{:#}` prints, never both.

use std::net::SocketAddr;
use std::path::PathBuf;

use churn_core::CoreError;

/// Result alias of `churn-serve`.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;

/// What can stop the server from starting or a model from loading.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The model file cannot be read; a relative path also says the folder it was looked for in.
    #[error("cannot read model `{}`{}: {cause}", path.display(), looked_in(path))]
    ReadModel {
        /// The model folder or file as configured.
        path: PathBuf,
        /// Why it cannot be read.
        cause: std::io::Error,
    },
    /// The model file reads but is not a model this build can serve.
    #[error("model `{}`: {cause}", path.display())]
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        cause: CoreError,
    },
    /// A settings or policy file cannot be read or parsed.
    #[error("cannot read config `{}`: {reason}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why, with the line where the parser points at one.
        reason: String,
    },
    /// A setting has a value out of its range.
    #[error("config `{key}` = `{value}`: {reason}")]
    InvalidConfig {
        /// The setting's name.
        key: String,
        /// The value given.
        value: String,
        /// What the value should be.
        reason: String,
    },
    /// The alert store cannot be opened; the store's error names the file and says why.
    #[error(transparent)]
    AlertStore(#[from] crate::alerts::StoreError),
    /// A port cannot be bound.
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        cause: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    // tonic's transport error says only "transport error"; the chain `{:#}` prints holds the rest.
    #[error("server failed")]
    Transport(#[from] tonic::transport::Error),
    /// The server stopped with an input/output error.
    #[error("server failed: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ServeError {
    fn from(error: std::io::Error) -> Self {
        ServeError::Io(error)
    }
}

/// Returns ` (in FOLDER)` for a relative path, naming the working folder it was resolved in, so
/// that a server started from another folder says where it looked.
fn looked_in(path: &std::path::Path) -> String {
    if path.is_absolute() {
        return String::new();
    }
    std::env::current_dir()
        .map(|folder| format!(" (in {})", folder.display()))
        .unwrap_or_default()
}

/// Why a request (or one profile of a batch) cannot be answered. Every variant is the caller's
/// fault except `Internal`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// A profile the model cannot score (or, when not the caller's fault, a broken model).
    #[error(transparent)]
    Profile(#[from] CoreError),
    /// A required field is absent or blank.
    #[error("`{field}` is required")]
    Required {
        /// The field.
        field: &'static str,
    },
    /// A customer id over the length limit.
    #[error("`customer_id` is {length} bytes long; the limit is {limit}")]
    CustomerIdTooLong {
        /// Its length in bytes.
        length: usize,
        /// The longest accepted.
        limit: usize,
    },
    /// A text field over its length limit.
    #[error("`{field}` is {length} bytes long; the limit is {limit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        length: usize,
        /// The longest accepted.
        limit: usize,
    },
    /// No alert has this id.
    #[error("`alert_id` `{id}` does not exist")]
    NotFound {
        /// The id as given.
        id: String,
    },
    /// The alert is in a state that does not allow the change (resolving twice, say).
    #[error("{reason}")]
    FailedPrecondition {
        /// Which alert, its state, and the change refused.
        reason: String,
    },
    /// A field's value is not one of those allowed.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What was given and what is expected.
        reason: String,
    },
    /// An agent signed in as one caller named another as `by`: agents act as who they are.
    #[error("`by` is `{given}` but you are signed in as `{caller}`; leave `by` empty")]
    ActingAsOther {
        /// The name the request gave.
        given: String,
        /// The signed-in caller's name.
        caller: String,
    },
    /// The alert store cannot take the change now; nothing was recorded.
    #[error("alerts cannot be recorded now ({reason}); nothing was reported, retry the call")]
    Unavailable {
        /// What the store said.
        reason: String,
    },
    /// A batch over `max_batch` profiles.
    #[error("`profiles` has {count} profiles; the limit is {limit} per batch")]
    BatchTooLarge {
        /// Profiles sent.
        count: usize,
        /// Most accepted.
        limit: usize,
    },
    /// A limit on what one caller or the whole server holds at once was reached; retry later.
    #[error("{reason}")]
    Exhausted {
        /// Which limit, its setting, and how many are held.
        reason: String,
    },
    /// The server's own fault.
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
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
            RequestError::Exhausted { .. } => tonic::Code::ResourceExhausted,
            RequestError::ActingAsOther { .. } => tonic::Code::PermissionDenied,
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
            RequestError::ActingAsOther { .. } => Some("by"),
            RequestError::Internal { .. }
            | RequestError::FailedPrecondition { .. }
            | RequestError::Unavailable { .. }
            | RequestError::Exhausted { .. } => None,
        }
    }
}

impl From<churn_api::ApiError> for RequestError {
    fn from(error: churn_api::ApiError) -> Self {
        use churn_api::ApiError;
        match error {
            ApiError::Profile(error) => RequestError::Profile(error),
            ApiError::Required { field } => RequestError::Required { field },
            ApiError::CustomerIdTooLong { length, limit } => {
                RequestError::CustomerIdTooLong { length, limit }
            }
            ApiError::Invalid { field, reason } => RequestError::Invalid { field, reason },
            // A server never connects anywhere, or reads client TLS files, on a request's path.
            ApiError::Connect { .. }
            | ApiError::TlsFile { .. }
            | ApiError::TlsSetting { .. }
            | ApiError::InvalidToken { .. } => RequestError::Internal {
                reason: error.to_string(),
            },
        }
    }
}

impl From<RequestError> for tonic::Status {
    fn from(error: RequestError) -> Self {
        tonic::Status::new(error.code(), error.to_string())
    }
}

/// Returns a gRPC code's canonical name, as in `grpc-status` documentation.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
