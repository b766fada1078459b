//! The gRPC scoring service behind `churn serve`: tonic services for `churn.v1` (Score,
//! ScoreBatch, ScoreStream, Explain, GetModel, ReloadModel), `grpc.health.v1`, server reflection,
//! model hot reload, Prometheus metrics, the agent console, configuration, and a load generator.
//!
//! Scoring itself is `churn-core`'s [`churn_core::Scorer`], the same code as the batch path; this
//! crate only moves profiles in and results out. It knows no polars and no training.
//!
//! ```no_run
//! # async fn demo() -> churn_serve::Result<()> {
//! let config = churn_serve::ServeOptions::default().resolve()?; // models/telco on :50051
//! let server = churn_serve::start(config).await?;
//! println!("listening on {}", server.grpc_addr());
//! server.shutdown().await
//! # }
//! ```

pub mod alert_service;
pub mod alerts;
pub mod config;
pub mod console;
pub mod convert;
pub mod error;
pub mod loadtest;
pub mod metrics;
pub mod model;
pub mod server;
pub mod service;

/// The `churn.v1` protocol, generated from `proto/churn/v1/churn.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("churn.v1");

    /// The encoded descriptors of `churn.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("churn_v1_descriptor");
}

pub use config::{ServeConfig, ServeOptions};
pub use error::{RequestError, Result, ServeError};
pub use server::{RunningServer, avoid_huge_page_stalls, runtime, serve, start};
