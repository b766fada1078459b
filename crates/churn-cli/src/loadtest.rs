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
    /// Hostile clients to run beside the load, KIND=COUNT: idle-connections, many-streams,
    /// slowloris (on --http-addr), stalled-feeds. The figures then say what the well-behaved
    /// load suffered.
    #[arg(long)]
    pub abuse: Option<crate::abuse::Abuse>,
    /// The abusers' own token (an `agent` token for stalled-feeds) [default: the load's token].
    #[arg(long, value_name = "FILE", requires = "abuse")]
    pub abuse_token_file: Option<PathBuf>,
    /// The server's HTTP port, host:port, for --abuse slowloris.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub http_addr: String,
    /// Process id of a server on this machine: its peak and final resident memory are reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
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
        let abuse = match args.abuse {
            Some(abuse) => {
                let mut abuser = args.connection.clone();
                if let Some(file) = &args.abuse_token_file {
                    abuser.token_file = Some(file.clone());
                }
                let dialer = load_generator::Dialer::new(&abuser.addr, &abuser.options()?)?;
                let counts = crate::abuse::start(abuse, dialer, args.http_addr.clone())?;
                // Let the abuse build up before the load starts.
                tokio::time::sleep(Duration::from_secs(2)).await;
                Some(counts)
            }
            None => None,
        };
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
        let report = load_generator::run(&test, profiles).await?;
        anyhow::Ok((report, abuse))
    })?;
    let (report, abuse) = report;
    write!(out, "{report}")?;
    if let Some(counts) = abuse {
        writeln!(out, "{counts}")?;
    }
    if let Some(pid) = args.server_pid {
        writeln!(out, "{}", server_memory(pid)?)?;
    }
    if report.errors > 0 {
        bail!("{} of {} requests failed", report.errors, report.requests);
    }
    Ok(())
}

/// Reads a local process's peak and current resident memory from `/proc`.
fn server_memory(pid: u32) -> anyhow::Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the memory of process {pid}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map_or("?".to_string(), |value| value.trim().to_string())
    };
    Ok(format!(
        "server memory: peak {} resident, now {}",
        field("VmHWM:"),
        field("VmRSS:")
    ))
}
