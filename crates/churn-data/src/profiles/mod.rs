//! Leak-free profiles *as of* a snapshot date, built with polars lazy from event tables
//! (`customers`, `subscriptions`, `surveys`, `tickets`, `usage`, `billing`, as `churn generate`
//! writes them, Parquet or CSV).
//!
//! A profile uses only what was known strictly before the snapshot: a survey counts once it was
//! answered, a ticket's response time once it was answered (a ticket still waiting counts with
//! its wait so far), a reopening once it happened. Customers whose subscription ended before
//! the snapshot are not in it. The label is whether the subscription ended within the horizon
//! after the snapshot. Feature names live in `churn_core::experience`, beside the sentences
//! reasons say them in; the tables' columns in [`crate::event_tables`].
//!
//! The plan is built one step per event table (`plan.rs`); profiles become a training set split
//! by time in `training.rs`.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::calendar::{DAY_MS, add_months, format_date};
use crate::error::{DataError, Result};
use crate::event_tables::{
    ColumnKind, EVENT_TABLES, EventTable, TABLES, billing, surveys, tickets, usage,
};

mod plan;
mod training;

/// The customer id column of every table and of profiles.
pub use crate::event_tables::CUSTOMER_ID;
pub use training::{
    SnapshotData, count_churned, load_snapshot_training_data, profiles_table, write_profiles,
};

/// The label column of profiles.
pub const LABEL: &str = "churned";
/// The snapshot date column of profiles.
pub const SNAPSHOT: &str = "snapshot";

/// The event tables of a directory, each a `.parquet` or `.csv` file named after its table.
#[derive(Debug, Clone)]
pub struct EventTables {
    /// The directory holding the tables.
    pub dir: PathBuf,
    /// Each table's file, in [`TABLES`] order.
    files: Vec<PathBuf>,
}

/// Which end of a column [`EventTables::extreme_day`] reads.
#[derive(Debug, Clone, Copy)]
enum Extreme {
    First,
    Last,
}

impl EventTables {
    /// Finds the six tables in `dir`; names the first one missing.
    pub fn open(dir: &Path) -> Result<Self> {
        let files = TABLES
            .iter()
            .map(|table| {
                ["parquet", "csv"]
                    .iter()
                    .map(|extension| dir.join(format!("{table}.{extension}")))
                    .find(|path| path.is_file())
                    .ok_or_else(|| DataError::MissingTable {
                        dir: dir.to_path_buf(),
                        table,
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(EventTables {
            dir: dir.to_path_buf(),
            files,
        })
    }

    /// Returns a table's file.
    pub fn file(&self, table: &str) -> &Path {
        let index = TABLES
            .iter()
            .position(|t| *t == table)
            .expect("a table named in TABLES");
        &self.files[index]
    }

    /// Scans a table lazily, with its columns in their read types (times as milliseconds and
    /// dates as days, both integers). CSV files are parsed with these types; Parquet columns
    /// are cast to them, so dates and times of any unit work.
    fn scan(&self, table: &EventTable) -> Result<LazyFrame> {
        let path = self.file(table.name);
        let polars_path =
            PlRefPath::try_from_path(path).map_err(|error| self.error(table.name, error))?;
        let frame = if path.extension().is_some_and(|extension| extension == "csv") {
            let types: Schema = table
                .columns
                .iter()
                .map(|column| Field::new(column.name.into(), column.kind.read_type()))
                .collect();
            LazyCsvReader::new(polars_path)
                .with_has_header(true)
                .with_dtype_overwrite(Some(Arc::new(types)))
                .finish()
        } else {
            LazyFrame::scan_parquet(polars_path, ScanArgsParquet::default())
        }
        .map_err(|error| self.error(table.name, error))?;
        let columns: Vec<Expr> = table
            .columns
            .iter()
            .map(|column| {
                let typed = col(column.name).strict_cast(column.kind.read_type());
                match column.kind {
                    ColumnKind::Time => typed.cast(DataType::Int64),
                    ColumnKind::Date => typed.cast(DataType::Int32),
                    _ => typed,
                }
            })
            .collect();
        Ok(frame.select(columns))
    }

    fn error(&self, table: &str, error: PolarsError) -> DataError {
        DataError::Parse {
            path: self.file(table).to_path_buf(),
            reason: polars_reason(&error),
        }
    }

    /// Turns a failed profile query into an error naming the table file at fault: each table
    /// is read on its own until one fails (only on this error path).
    fn query_error(&self, context: String, error: PolarsError) -> DataError {
        for table in &EVENT_TABLES {
            if let Err(table_error) = self.scan(table).and_then(|scan| {
                scan.collect()
                    .map_err(|error| self.error(table.name, error))
            }) {
                return table_error;
            }
        }
        DataError::Parse {
            path: self.dir.clone(),
            reason: format!("{context}: {}", polars_reason(&error)),
        }
    }

    /// Returns the day after the last event of any dated table: labels are complete for
    /// snapshots whose horizon ends by then.
    pub fn data_end(&self) -> Result<i32> {
        let latest = [
            self.extreme_day(&usage::TABLE, usage::DAY, Extreme::Last)?,
            self.extreme_day(&billing::TABLE, billing::BILLED_AT, Extreme::Last)?,
            self.extreme_day(&surveys::TABLE, surveys::SENT_AT, Extreme::Last)?,
            self.extreme_day(&tickets::TABLE, tickets::OPENED_AT, Extreme::Last)?,
        ]
        .into_iter()
        .flatten()
        .max()
        .ok_or_else(|| DataError::Parse {
            path: self.dir.clone(),
            reason: "no dated events in any table".into(),
        })?;
        Ok(latest + 1)
    }

    /// Returns the day of the earliest or latest value in a date or time column, or `None` for
    /// an empty table.
    fn extreme_day(
        &self,
        table: &EventTable,
        column: &str,
        extreme: Extreme,
    ) -> Result<Option<i32>> {
        let value = col(column).cast(DataType::Int64);
        let frame = self
            .scan(table)?
            .select([match extreme {
                Extreme::First => value.min(),
                Extreme::Last => value.max(),
            }])
            .collect()
            .map_err(|error| self.error(table.name, error))?;
        let value = frame
            .column(column)
            .and_then(|column| column.cast(&DataType::Int64))
            .map_err(|error| self.error(table.name, error))?
            .i64()
            .map_err(|error| self.error(table.name, error))?
            .get(0);
        // Date columns hold days already; time columns hold milliseconds.
        let is_date = table
            .column(column)
            .is_some_and(|column| column.kind == ColumnKind::Date);
        Ok(value.map(|value| {
            let day = if is_date {
                value
            } else {
                value.div_euclid(DAY_MS)
            };
            day as i32
        }))
    }

    /// Computes one snapshot's profiles.
    pub fn profiles(&self, as_of: i32, horizon_days: i32) -> Result<DataFrame> {
        self.profiles_plan(as_of, horizon_days)?
            .collect()
            .map_err(|error| {
                self.query_error(format!("profiles as of {}", format_date(as_of)), error)
            })
    }

    /// Computes several snapshots' profiles, stacked in snapshot order.
    pub fn stacked_profiles(&self, snapshots: &[i32], horizon_days: i32) -> Result<DataFrame> {
        let plans = snapshots
            .iter()
            .map(|&as_of| self.profiles_plan(as_of, horizon_days))
            .collect::<Result<Vec<_>>>()?;
        concat(plans, UnionArgs::default())
            .and_then(LazyFrame::collect)
            .map_err(|error| self.query_error("stacking snapshots".into(), error))
    }

    /// Returns snapshots for training and testing, oldest first: the latest whose horizon ends
    /// with the data (the test snapshot), and up to `count - 1` monthly ones ending a horizon
    /// before it (the training snapshots), each with `warm_up_days` of history. Training
    /// labels must be complete at the test date, as they are in production, or a customer's
    /// churn would be learned from an earlier snapshot and "predicted" at the later one.
    pub fn monthly_snapshots(
        &self,
        count: usize,
        horizon_days: i32,
        warm_up_days: i32,
    ) -> Result<Vec<i32>> {
        let end = self.data_end()?;
        let start = self.data_start()?;
        let latest = end - horizon_days;
        let last_training = latest - horizon_days;
        let mut snapshots: Vec<i32> = (0..count.saturating_sub(1) as i32)
            .map(|back| add_months(last_training, -back))
            .take_while(|&snapshot| snapshot - warm_up_days >= start)
            .collect();
        if snapshots.is_empty() {
            return Err(DataError::InvalidOption {
                name: "snapshots",
                value: format!(
                    "data from {} to {}, horizon {horizon_days} days",
                    format_date(start),
                    format_date(end - 1)
                ),
                reason: "the data is too short for a training and a test snapshot, each with \
                         its history and horizon",
            });
        }
        snapshots.reverse();
        snapshots.push(latest);
        Ok(snapshots)
    }

    /// Returns the first day with a usage or billing event.
    pub fn data_start(&self) -> Result<i32> {
        [
            self.extreme_day(&usage::TABLE, usage::DAY, Extreme::First)?,
            self.extreme_day(&billing::TABLE, billing::BILLED_AT, Extreme::First)?,
        ]
        .into_iter()
        .flatten()
        .min()
        .ok_or_else(|| DataError::Parse {
            path: self.dir.clone(),
            reason: "no usage or billing events".into(),
        })
    }

    /// Returns the SHA-256 of the six files' bytes, in table order, hex.
    pub fn fingerprint(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for path in &self.files {
            let mut file = std::fs::File::open(path).map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
            std::io::copy(&mut file, &mut hasher).map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect())
    }
}

/// Returns the first paragraph of a polars error: the rest is advice for its Python API
/// (`infer_schema_length=…`), which does not apply here.
fn polars_reason(error: &PolarsError) -> String {
    let text = error.to_string();
    text.split("\n\n")
        .next()
        .unwrap_or(&text)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests;
