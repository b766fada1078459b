//! A client channel to a `churn serve`.

use tonic::transport::{Channel, Endpoint};

use crate::error::{ApiError, Result};

/// Connects to the server at `addr` (a URL such as `http://127.0.0.1:50051`).
pub async fn connect(addr: &str) -> Result<Channel> {
    Endpoint::from_shared(addr.to_string())
        .map_err(|error| ApiError::connect(addr, error))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|error| ApiError::connect(addr, error))
}
