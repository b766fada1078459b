//! The gRPC scoring service behind `churn serve`: tonic services for `churn.v1` (Score,
//! ScoreBatch, ScoreStream, Explain, GetModel, ReloadModel, the AlertService), `grpc.health.v1`,
//! server reflection, model hot reload, Prometheus metrics, the agent console, settings, and the
//! alert store.
//!
//! Scoring itself is `churn-core`'s [`churn_core::Scorer`], the same code as the batch path; the
//! wire contract is `churn-api`'s. This crate only moves profiles in and results out, and keeps
//! alerts. It knows no polars and no training.
//!
//! Layout: `grpc/` (the tonic services), `http/` (`/metrics` and the console), `alerts/` (the
//! alert store behind one trait), `requests` (request checks both front ends share).
//!
//! ```no_run
//! # async fn demo() -> churn_serve::Result<()> {
//! let config = churn_serve::ServeOptions::default().resolve()?; // models/telco on :50051
//! let server = churn_serve::start(config).await?;
//! println!("listening on {}", server.grpc_addr());
//! server.shutdown().await
//! # }
//! ```

#![warn(missing_docs)]

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod net;
pub(crate) mod requests;
pub mod server;

pub use config::{ServeConfig, ServeOptions};
pub use error::{RequestError, Result, ServeError};
pub use requests::{FeedLimiter, FeedPermit};
pub use server::{RunningServer, runtime, serve, start};
