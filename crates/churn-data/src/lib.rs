//! Data for churn: CSV and Parquet read with polars into a [`Table`], each column's kind inferred
//! ([`infer`]), churn labels ([`labels`]), a typed training [`Dataset`], and seeded stratified
//! splits ([`split`]); whole tables scored through `churn-core` ([`scoring`]), and files of any
//! size rescored chunk by chunk in bounded memory ([`mod@rescore`]). Event data: a seeded
//! synthetic company ([`mod@generate`]) and leak-free profiles as of a snapshot ([`profiles`]),
//! both from the one definition of the event tables ([`event_tables`]); every output goes
//! through the writers of [`writers`] (Parquet or CSV, complete or not at all).
//!
//! This crate knows no gRPC and no model internals: features are encoded by `churn-core`.
//!
//! ```no_run
//! use churn_data::{TrainingSpec, load_training_data, stratified_split};
//! # fn demo() -> churn_data::Result<()> {
//! let spec = TrainingSpec {
//!     target: "Churn".into(),
//!     id: Some("customerID".into()),
//!     ..TrainingSpec::default()
//! };
//! let dataset = load_training_data("notebooks-data/telco/Telco-Customer-Churn.csv".as_ref(), &spec)?;
//! let split = stratified_split(&dataset.labels.churned, 0.2, 42)?;
//! println!("{} train rows, {} features", split.train.len(), dataset.schema.features.len());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod calendar;
pub mod chunks;
pub mod dataset;
pub mod error;
pub mod event_tables;
pub mod generate;
pub mod infer;
pub mod labels;
pub mod profiles;
pub mod rescore;
pub mod scoring;
pub mod split;
pub mod table;
pub mod writers;

pub use chunks::{Chunk, ChunkedReader, MalformedRow};
pub use dataset::{DataSource, Dataset, TrainingSpec, load_training_data, prepare_dataset};
pub use error::{DataError, Result};
pub use generate::{GenerateOptions, GenerateSummary, generate};
pub use labels::Labels;
pub use profiles::{
    EventTables, SnapshotData, load_snapshot_training_data, profiles_table, write_profiles,
};
pub use rescore::{Progress, RescoreOptions, RescoreSummary, expand_inputs, rescore};
pub use scoring::{ScoredRow, score_table, table_profiles};
pub use split::{Split, grouped_k_fold, grouped_split, stratified_k_fold, stratified_split};
pub use table::{Cells, Table, TableColumn, read_table};
pub use writers::OutputFormat;
