//! Errors of the wire contract: a message that does not make a valid `churn-core` value, a
//! server that cannot be reached, or TLS files and tokens a client cannot use.

use churn_core::CoreError;

/// Result alias of `churn-api`.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Why a message cannot be read, or a server cannot be reached.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A profile's value is not one the model can take (a NaN, for one).
    #[error(transparent)]
    Profile(#[from] CoreError),
    /// A required field is absent or blank.
    #[error("`{field}` is required")]
    Required {
        /// The field's name in the protocol.
        field: &'static str,
    },
    /// A customer id longer than [`crate::convert::MAX_CUSTOMER_ID_BYTES`].
    #[error("`customer_id` is {length} bytes long; the limit is {limit}")]
    CustomerIdTooLong {
        /// The id's length in bytes.
        length: usize,
        /// The longest accepted.
        limit: usize,
    },
    /// A field's value is not one the server accepts (too long, a control character).
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field's name in the protocol.
        field: &'static str,
        /// What was given and what is accepted.
        reason: String,
    },
    /// The server at `addr` cannot be reached.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address as given.
        addr: String,
        /// What the transport said.
        reason: String,
    },
    /// A TLS file (CA, client certificate or key) that cannot be read or used.
    #[error("TLS file `{}`: {reason}", file.display())]
    TlsFile {
        /// The file as given.
        file: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS settings that do not fit together, or fit the address.
    #[error("TLS settings: {reason}")]
    TlsSetting {
        /// What does not fit.
        reason: String,
    },
    /// A bearer token that cannot be sent (it is never part of the message).
    #[error("invalid token: {reason}")]
    InvalidToken {
        /// What is wrong with it.
        reason: String,
    },
}

impl ApiError {
    /// Says that the TLS file `file` cannot be read or used, and why.
    pub fn tls_file(file: &std::path::Path, reason: impl std::fmt::Display) -> ApiError {
        ApiError::TlsFile {
            file: file.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// Says that the server at `addr` cannot be reached, and why.
    pub fn connect(addr: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::Connect {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }
    }
}
