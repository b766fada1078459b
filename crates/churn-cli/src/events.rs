//! `churn generate` and `churn profiles`: a synthetic company's event tables, and profiles
//! built from event tables as of a date.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use churn_data::calendar::{format_date, parse_date};
use churn_data::generate::TABLES;
use churn_data::{EventTables, GenerateOptions, OutputFormat};

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 5_000)]
    pub customers: usize,
    /// Seed: the same seed writes the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First day of the data (YYYY-MM-DD).
    #[arg(long, default_value = "2025-01-01", value_parser = parse_date_arg)]
    pub start: i32,
    /// Months of events.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Write CSV instead of Parquet.
    #[arg(long)]
    pub csv: bool,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ProfilesArgs {
    /// Directory of event tables (customers, subscriptions, surveys, tickets, usage, billing;
    /// .parquet or .csv).
    #[arg(long)]
    pub events: PathBuf,
    /// Snapshot date (YYYY-MM-DD): only events strictly before it are used.
    #[arg(long, value_parser = parse_date_arg)]
    pub as_of: i32,
    /// Churn label horizon: the subscription ends within this long after the snapshot.
    #[arg(long, default_value = "90d", value_parser = crate::parse_days)]
    pub horizon: i32,
    /// Output file (.parquet or .csv).
    #[arg(long)]
    pub out: PathBuf,
}

fn parse_date_arg(text: &str) -> Result<i32, String> {
    parse_date(text).ok_or_else(|| format!("`{text}`: expected a date as YYYY-MM-DD"))
}

/// Runs `churn generate`; prints rows per table.
pub fn generate(args: GenerateArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let options = GenerateOptions {
        customers: args.customers,
        seed: args.seed,
        start: args.start,
        months: args.months,
        format: if args.csv {
            OutputFormat::Csv
        } else {
            OutputFormat::Parquet
        },
    };
    let started = Instant::now();
    let summary = churn_data::generate(&options, &args.out)
        .with_context(|| format!("generating into `{}`", args.out.display()))?;
    writeln!(
        out,
        "{} customers from {} to {} (seed {}), {} churned, in {:.1} s",
        args.customers,
        format_date(args.start),
        format_date(summary.end - 1),
        args.seed,
        summary.churned,
        started.elapsed().as_secs_f64()
    )?;
    for (table, path) in TABLES.iter().zip(&summary.files) {
        writeln!(
            out,
            "{:>12} {:>11} rows  {}",
            table,
            summary.rows[table],
            path.display()
        )?;
    }
    Ok(())
}

/// Runs `churn profiles`; prints the row count and churn share.
pub fn profiles(args: ProfilesArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let started = Instant::now();
    let tables = EventTables::open(&args.events)?;
    let end = tables.data_end()?;
    if args.as_of + args.horizon > end {
        tracing::warn!(
            as_of = format_date(args.as_of),
            last_event = format_date(end - 1),
            "the horizon runs past the last event: customers who leave after it are labelled \
             as staying"
        );
    }
    let mut frame = tables.profiles(args.as_of, args.horizon)?;
    churn_data::write_profiles(&mut frame, &args.out)
        .with_context(|| format!("writing `{}`", args.out.display()))?;
    let churned = churn_data::profiles::count_churned(&frame);
    writeln!(
        out,
        "{} active customers as of {}, {} churned within {} days, in {:.1} s: {}",
        frame.height(),
        format_date(args.as_of),
        churned,
        args.horizon,
        started.elapsed().as_secs_f64(),
        args.out.display()
    )?;
    Ok(())
}
