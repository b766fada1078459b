//! `churn loadtest`: Score load on a running server, with throughput and latency percentiles.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use churn_api::proto;
use churn_api::proto::churn_service_client::ChurnServiceClient;

use crate::client::{ConnectArgs, profiles_for};
use crate::load_generator::{self, LoadTest};

#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    #[command(flatten)]
    pub connection: ConnectArgs,
    /// Customers to send, cycled (columns named as the model's features).
    #[arg(long, default_value = "notebooks-data/telco/Telco-Customer-Churn.csv")]
    pub data: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// HTTP/2 connections shared by the requests.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// How long to measure, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unmeasured run-in first, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Requests per second in total; without it, as fast as the server answers.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Reasons asked for each way.
    #[arg(long, default_value_t = 5)]
    pub top: u32,
    /// Give every request a new customer id, so the server's alert policy sees new customers
    /// (raising alerts) rather than the same ones again (updating them).
    #[arg(long)]
    pub fresh_customers: bool,
}

/// Runs a load test and prints its table; fails if any request failed.
pub fn loadtest(args: LoadtestArgs, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    if args
        .rate
        .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
    {
        bail!("--rate must be a positive number of requests per second");
    }
    // The generator's latencies are the figures: its own memory must not stall it either.
    crate::avoid_huge_page_stalls();
    let runtime = load_generator::runtime().context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let options = args.connection.options()?;
        let channel = churn_api::client::connect_with(&args.connection.addr, &options).await?;
        let model = ChurnServiceClient::new(channel)
            .get_model(proto::GetModelRequest {})
            .await?
            .into_inner();
        let profiles = profiles_for(&model, &args.data)?;
        let test = LoadTest {
            addr: args.connection.addr.clone(),
            connection: options,
            concurrency: args.concurrency,
            connections: args.connections,
            duration: args.duration,
            warmup: args.warmup,
            rate: args.rate,
            top_k: args.top,
            fresh_customers: args.fresh_customers,
        };
        anyhow::Ok(load_generator::run(&test, profiles).await?)
    })?;
    write!(out, "{report}")?;
    if report.errors > 0 {
        bail!("{} of {} requests failed", report.errors, report.requests);
    }
    Ok(())
}
