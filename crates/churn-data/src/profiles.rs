//! Leak-free profiles *as of* a snapshot date, built with polars lazy from event tables
//! (`customers`, `subscriptions`, `surveys`, `tickets`, `usage`, `billing`, as `churn generate`
//! writes them, Parquet or CSV).
//!
//! A profile uses only what was known strictly before the snapshot: a survey counts once it was
//! answered, a ticket's response time once it was answered (a ticket still waiting counts with
//! its wait so far), a reopening once it happened. Customers whose subscription ended before
//! the snapshot are not in it. The label is whether the subscription ended within the horizon
//! after the snapshot. Feature names live in `churn_core::experience`, beside the sentences
//! reasons say them in.

use std::path::{Path, PathBuf};

use churn_core::FeatureKind;
use churn_core::experience::*;
use polars::prelude::*;

use crate::calendar::{DAY_MS, add_months, format_date};
use crate::dataset::{Dataset, TrainingSpec, prepare_dataset};
use crate::error::{DataError, Result};
use crate::generate::TABLES;
use crate::split::Split;
use crate::table::{Table, to_table_column};

/// The label column of profiles.
pub const LABEL: &str = "churned";
/// The customer id column of every table.
pub const CUSTOMER_ID: &str = "customer_id";
/// The snapshot date column of profiles.
pub const SNAPSHOT: &str = "snapshot";

/// The event tables of a directory, each a `.parquet` or `.csv` file named after its table.
#[derive(Debug, Clone)]
pub struct EventTables {
    pub dir: PathBuf,
    files: Vec<PathBuf>,
}

/// Each table's columns and types. CSV files are read with these types; Parquet columns are
/// cast to them, so dates and times of any unit work.
fn table_schema(table: &str) -> Vec<(&'static str, DataType)> {
    let text = || DataType::String;
    let time = || DataType::Datetime(TimeUnit::Milliseconds, None);
    match table {
        "customers" => vec![
            (CUSTOMER_ID, text()),
            ("signup_date", DataType::Date),
            (SEGMENT, text()),
            (REGION, text()),
            (ACQUISITION_CHANNEL, text()),
        ],
        "subscriptions" => vec![
            (CUSTOMER_ID, text()),
            (PLAN, text()),
            (CONTRACT, text()),
            (MONTHLY_CHARGE, DataType::Float64),
            (AUTOPAY, DataType::Boolean),
            ("start_date", DataType::Date),
            ("end_date", DataType::Date),
        ],
        "surveys" => vec![
            (CUSTOMER_ID, text()),
            ("sent_at", time()),
            ("answered_at", time()),
            ("kind", text()),
            ("touchpoint", text()),
            ("score", DataType::Float64),
        ],
        "tickets" => vec![
            (CUSTOMER_ID, text()),
            ("opened_at", time()),
            ("first_response_at", time()),
            ("closed_at", time()),
            ("reopened_at", time()),
            ("channel", text()),
            ("category", text()),
            ("complaint", DataType::Boolean),
        ],
        "usage" => vec![
            (CUSTOMER_ID, text()),
            ("day", DataType::Date),
            ("sessions", DataType::Float64),
            ("minutes", DataType::Float64),
        ],
        _ => vec![
            (CUSTOMER_ID, text()),
            ("billed_at", time()),
            ("amount", DataType::Float64),
            ("status", text()),
        ],
    }
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

    /// Scans a table lazily, with its columns in their schema types (times as milliseconds
    /// and dates as days, both integers).
    fn scan(&self, table: &str) -> Result<LazyFrame> {
        let path = self.file(table);
        let schema = table_schema(table);
        let polars_path =
            PlRefPath::try_from_path(path).map_err(|error| self.error(table, error))?;
        let frame = if path.extension().is_some_and(|extension| extension == "csv") {
            let types: Schema = schema
                .iter()
                .map(|(name, dtype)| Field::new((*name).into(), dtype.clone()))
                .collect();
            LazyCsvReader::new(polars_path)
                .with_has_header(true)
                .with_dtype_overwrite(Some(Arc::new(types)))
                .finish()
        } else {
            LazyFrame::scan_parquet(polars_path, ScanArgsParquet::default())
        }
        .map_err(|error| self.error(table, error))?;
        let columns: Vec<Expr> = schema
            .iter()
            .map(|(name, dtype)| {
                let typed = col(*name).strict_cast(dtype.clone());
                match dtype {
                    DataType::Datetime(..) => typed.cast(DataType::Int64),
                    DataType::Date => typed.cast(DataType::Int32),
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
        for table in TABLES {
            if let Err(table_error) = self
                .scan(table)
                .and_then(|scan| scan.collect().map_err(|error| self.error(table, error)))
            {
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
            self.extreme_day("usage", "day", Extreme::Last)?,
            self.extreme_day("billing", "billed_at", Extreme::Last)?,
            self.extreme_day("surveys", "sent_at", Extreme::Last)?,
            self.extreme_day("tickets", "opened_at", Extreme::Last)?,
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
    fn extreme_day(&self, table: &str, column: &str, extreme: Extreme) -> Result<Option<i32>> {
        let value = col(column).cast(DataType::Int64);
        let frame = self
            .scan(table)?
            .select([match extreme {
                Extreme::First => value.min(),
                Extreme::Last => value.max(),
            }])
            .collect()
            .map_err(|error| self.error(table, error))?;
        let value = frame
            .column(column)
            .and_then(|column| column.cast(&DataType::Int64))
            .map_err(|error| self.error(table, error))?
            .i64()
            .map_err(|error| self.error(table, error))?
            .get(0);
        // Date columns hold days already; time columns hold milliseconds.
        let is_date = matches!(
            table_schema(table).iter().find(|(name, _)| *name == column),
            Some((_, DataType::Date))
        );
        Ok(value.map(|value| {
            let day = if is_date {
                value
            } else {
                value.div_euclid(DAY_MS)
            };
            day as i32
        }))
    }

    /// Builds the lazy plan of one snapshot's profiles: one row per customer active at
    /// `as_of` (a day number), with the features and the label over `horizon_days`.
    pub fn profiles_plan(&self, as_of: i32, horizon_days: i32) -> Result<LazyFrame> {
        let at_ms = i64::from(as_of) * DAY_MS;
        let days_ago_ms = |days: i64| lit(at_ms - days * DAY_MS);
        let before = |column: &str| col(column).lt(lit(at_ms));
        let count_if = |predicate: Expr| predicate.cast(DataType::UInt32).sum();

        // When the customer's last subscription ends (null while one is open): a plan change
        // (one subscription ending, the next starting) is not churn. This reads the future, as
        // a label must; no feature uses it.
        let customer_end = self
            .scan("subscriptions")?
            .group_by([col(CUSTOMER_ID)])
            .agg([when(col("end_date").null_count().gt(lit(0)))
                .then(lit(NULL).cast(DataType::Int32))
                .otherwise(col("end_date").max())
                .alias("customer_end")]);
        // The subscription in force: the latest one started before the snapshot (ties broken
        // by the later end, an open one last).
        let subscriptions = self
            .scan("subscriptions")?
            .filter(col("start_date").lt(lit(as_of)))
            .sort(
                ["start_date", "end_date"],
                SortMultipleOptions::default()
                    .with_nulls_last(true)
                    .with_maintain_order(true),
            )
            .group_by([col(CUSTOMER_ID)])
            .agg([
                col("start_date").min().alias("first_start"),
                col("start_date").last().alias("start_date"),
                col("end_date").last().alias("end_date"),
                col(PLAN).last(),
                col(CONTRACT).last(),
                col(MONTHLY_CHARGE).last(),
                col(AUTOPAY).last(),
            ])
            .filter(
                col("end_date")
                    .is_null()
                    .or(col("end_date").gt_eq(lit(as_of))),
            );
        let term_days = when(col(CONTRACT).eq(lit("two_year")))
            .then(lit(24.0 * DAYS_PER_MONTH))
            .when(col(CONTRACT).eq(lit("one_year")))
            .then(lit(12.0 * DAYS_PER_MONTH))
            .otherwise(lit(DAYS_PER_MONTH));
        // Both are whole and non-negative, so truncating casts floor them.
        let whole = |expr: Expr| expr.cast(DataType::Int64).cast(DataType::Float64);
        let since_start = (lit(as_of) - col("start_date")).cast(DataType::Float64);
        let terms_done = whole(since_start.clone() / term_days.clone());
        let base = subscriptions
            .with_columns([
                whole(
                    (lit(as_of) - col("first_start")).cast(DataType::Float64) / lit(DAYS_PER_MONTH),
                )
                .alias(TENURE_MONTHS),
                whole(term_days.clone() - (since_start - terms_done * term_days))
                    .alias(DAYS_TO_RENEWAL),
            ])
            .join(
                customer_end,
                [col(CUSTOMER_ID)],
                [col(CUSTOMER_ID)],
                JoinArgs::new(JoinType::Left),
            )
            .with_columns([col("customer_end")
                .lt(lit(as_of + horizon_days))
                .fill_null(lit(false))
                .alias(LABEL)])
            .join(
                self.scan("customers")?.select([
                    col(CUSTOMER_ID),
                    col(SEGMENT),
                    col(REGION),
                    col(ACQUISITION_CHANNEL),
                ]),
                [col(CUSTOMER_ID)],
                [col(CUSTOMER_ID)],
                JoinArgs::new(JoinType::Left),
            );

        // Surveys: a score counts once answered; the change is against the answer before.
        let answered = self
            .scan("surveys")?
            .filter(before("answered_at").and(col("score").is_not_null()))
            .sort(["answered_at"], SortMultipleOptions::default());
        let survey_kind = |kind: &str, last: &str, change: &str| {
            answered
                .clone()
                .filter(col("kind").eq(lit(kind.to_string())))
                .group_by([col(CUSTOMER_ID)])
                .agg([
                    col("score").last().alias(last),
                    when(col("score").len().gt_eq(lit(2)))
                        .then(col("score").last() - col("score").slice(lit(-2), lit(1)).first())
                        .otherwise(lit(NULL).cast(DataType::Float64))
                        .alias(change),
                ])
        };
        let nonresponse = self
            .scan("surveys")?
            .filter(
                col("sent_at")
                    .gt_eq(days_ago_ms(180))
                    .and(col("sent_at").lt(days_ago_ms(7))),
            )
            .group_by([col(CUSTOMER_ID)])
            .agg([(lit(1.0)
                - count_if(col("answered_at").lt(lit(at_ms))).cast(DataType::Float64)
                    / col("sent_at").len().cast(DataType::Float64))
            .alias(SURVEY_NONRESPONSE_180D)]);

        // Tickets opened before the snapshot; a response or reopening after it is unknown.
        let hour_ms = 3_600_000.0;
        let response_known = before("first_response_at");
        let tickets = self
            .scan("tickets")?
            .filter(before("opened_at"))
            .group_by([col(CUSTOMER_ID)])
            .agg([
                count_if(col("opened_at").gt_eq(days_ago_ms(30))).alias(TICKETS_30D),
                count_if(col("opened_at").gt_eq(days_ago_ms(90))).alias(TICKETS_90D),
                count_if(
                    col("opened_at")
                        .gt_eq(days_ago_ms(90))
                        .and(col("complaint")),
                )
                .alias(COMPLAINTS_90D),
                ((col("first_response_at") - col("opened_at")).cast(DataType::Float64)
                    / lit(hour_ms))
                .filter(
                    col("opened_at")
                        .gt_eq(days_ago_ms(90))
                        .and(response_known.clone()),
                )
                .median()
                .alias(FIRST_RESPONSE_MEDIAN_HOURS_90D),
                ((when(response_known)
                    .then(col("first_response_at"))
                    .otherwise(lit(at_ms))
                    - col("opened_at"))
                .cast(DataType::Float64)
                    / lit(hour_ms))
                .filter(col("opened_at").gt_eq(days_ago_ms(90)))
                .max()
                .alias(FIRST_RESPONSE_WORST_HOURS_90D),
                count_if(before("reopened_at").and(col("reopened_at").gt_eq(days_ago_ms(90))))
                    .alias(REOPENED_TICKETS_90D),
                // `closed_at` is the first close: a ticket closed before the snapshot is not
                // open there, whatever happens to it later.
                count_if(
                    col("closed_at")
                        .is_null()
                        .or(col("closed_at").gt_eq(lit(at_ms))),
                )
                .alias(OPEN_TICKETS),
            ]);

        let usage = self
            .scan("usage")?
            .filter(col("day").lt(lit(as_of)))
            .group_by([col(CUSTOMER_ID)])
            .agg([
                col("minutes")
                    .filter(col("day").gt_eq(lit(as_of - 30)))
                    .sum()
                    .alias(USAGE_MINUTES_30D),
                col("minutes")
                    .filter(
                        col("day")
                            .gt_eq(lit(as_of - 90))
                            .and(col("day").lt(lit(as_of - 30))),
                    )
                    .sum()
                    .alias(USAGE_MINUTES_PRIOR_60D),
                col("sessions")
                    .filter(col("day").gt_eq(lit(as_of - 30)))
                    .sum()
                    .alias(SESSIONS_30D),
                (lit(as_of) - col("day").max())
                    .cast(DataType::Float64)
                    .alias(DAYS_SINCE_LAST_USE),
            ]);

        let billing = self
            .scan("billing")?
            .filter(before("billed_at").and(col("billed_at").gt_eq(days_ago_ms(90))))
            .group_by([col(CUSTOMER_ID)])
            .agg([
                count_if(col("status").eq(lit("failed"))).alias(PAYMENT_FAILURES_90D),
                count_if(col("status").eq(lit("refunded"))).alias(REFUNDS_90D),
            ]);

        let left = |frame: LazyFrame, other: LazyFrame| {
            frame.join(
                other,
                [col(CUSTOMER_ID)],
                [col(CUSTOMER_ID)],
                JoinArgs::new(JoinType::Left),
            )
        };
        let mut joined = base;
        for other in [
            survey_kind("NPS", NPS_LAST, NPS_CHANGE),
            survey_kind("CSAT", CSAT_LAST, CSAT_CHANGE),
            survey_kind("CES", CES_LAST, CES_CHANGE),
            nonresponse,
            tickets,
            usage,
            billing,
        ] {
            joined = left(joined, other);
        }
        let zero_if_none = |name: &str| col(name).fill_null(lit(0)).cast(DataType::Float64);
        let prior_half = col(USAGE_MINUTES_PRIOR_60D).fill_null(lit(0.0)) / lit(2.0);
        let change = lit(100.0) * (zero_if_none(USAGE_MINUTES_30D) / prior_half.clone() - lit(1.0));
        Ok(joined
            .select([
                col(CUSTOMER_ID),
                lit(as_of).cast(DataType::Date).alias(SNAPSHOT),
                col(TENURE_MONTHS),
                col(CONTRACT),
                col(PLAN),
                col(MONTHLY_CHARGE),
                col(AUTOPAY),
                col(DAYS_TO_RENEWAL),
                col(SEGMENT),
                col(REGION),
                col(ACQUISITION_CHANNEL),
                col(NPS_LAST),
                col(NPS_CHANGE),
                col(NPS_LAST).lt_eq(lit(6.0)).alias(NPS_DETRACTOR),
                col(CSAT_LAST),
                col(CSAT_CHANGE),
                col(CES_LAST),
                col(CES_CHANGE),
                col(SURVEY_NONRESPONSE_180D),
                zero_if_none(TICKETS_30D),
                zero_if_none(TICKETS_90D),
                zero_if_none(COMPLAINTS_90D),
                col(FIRST_RESPONSE_MEDIAN_HOURS_90D),
                col(FIRST_RESPONSE_WORST_HOURS_90D),
                zero_if_none(REOPENED_TICKETS_90D),
                zero_if_none(OPEN_TICKETS),
                zero_if_none(USAGE_MINUTES_30D),
                zero_if_none(USAGE_MINUTES_PRIOR_60D),
                // Capped: from almost no use, any use is a rise of thousands of percent.
                // Before signup is no use, not low use: customers newer than the 90 days
                // have no trend.
                when(
                    prior_half
                        .clone()
                        .gt(lit(0.0))
                        .and(col("first_start").lt_eq(lit(as_of - 90))),
                )
                .then(
                    when(change.clone().gt(lit(USAGE_CHANGE_CAP_PCT)))
                        .then(lit(USAGE_CHANGE_CAP_PCT))
                        .otherwise(change),
                )
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias(USAGE_CHANGE_PCT),
                zero_if_none(SESSIONS_30D),
                col(DAYS_SINCE_LAST_USE),
                zero_if_none(PAYMENT_FAILURES_90D),
                zero_if_none(REFUNDS_90D),
                col(LABEL),
            ])
            .sort([CUSTOMER_ID], SortMultipleOptions::default()))
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
            self.extreme_day("usage", "day", Extreme::First)?,
            self.extreme_day("billing", "billed_at", Extreme::First)?,
        ]
        .into_iter()
        .flatten()
        .min()
        .ok_or_else(|| DataError::Parse {
            path: self.dir.clone(),
            reason: "no usage or billing events".into(),
        })
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

/// Converts profiles to a [`Table`] for training and scoring; the snapshot date reads as text.
pub fn profiles_table(frame: &DataFrame, source: &Path) -> Result<Table> {
    let columns = frame
        .columns()
        .iter()
        .map(|column| to_table_column(source, column.as_materialized_series()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Table {
        path: source.to_path_buf(),
        sha256: String::new(),
        n_rows: frame.height(),
        columns,
    })
}

/// Returns how many profiles are labelled churned.
pub fn count_churned(frame: &DataFrame) -> usize {
    frame
        .column(LABEL)
        .ok()
        .and_then(|column| {
            column
                .as_materialized_series()
                .bool()
                .ok()
                .map(|flags| flags.sum())
        })
        .flatten()
        .unwrap_or(0) as usize
}

/// Writes profiles as Parquet or CSV (by the file's extension), complete or not at all.
pub fn write_profiles(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let format = crate::rescore::OutputFormat::from_path(path)?;
    let (file, handle) = crate::rescore::PartialFile::create(path)?;
    let mut writer = crate::rescore::OutputWriter::create(format, handle, frame.schema())
        .map_err(|error| file.write_error(error))?;
    writer
        .write_batch(frame)
        .and_then(|()| writer.finish())
        .map_err(|error| file.write_error(error))?;
    file.commit()
}

/// A training set stacked from snapshots, split by time.
#[derive(Debug, Clone)]
pub struct SnapshotData {
    pub dataset: Dataset,
    /// The snapshots, oldest first.
    pub snapshots: Vec<i32>,
    /// Training rows are the earlier snapshots', test rows the latest's: the accuracy measured
    /// is the one production sees, scoring customers at a date the model has not seen with
    /// labels known by then.
    pub split: Split,
}

/// Builds profiles at each snapshot (at least two, each with its whole horizon inside the
/// data, the earlier ones a horizon or more before the latest), stacks them into a training
/// set and splits it by time. `ignore` leaves features out.
pub fn load_snapshot_training_data(
    tables: &EventTables,
    snapshots: &[i32],
    horizon_days: i32,
    ignore: &[String],
) -> Result<SnapshotData> {
    let mut snapshots = snapshots.to_vec();
    snapshots.sort_unstable();
    snapshots.dedup();
    if snapshots.len() < 2 {
        return Err(DataError::InvalidOption {
            name: "snapshots",
            value: snapshots
                .iter()
                .copied()
                .map(format_date)
                .collect::<Vec<_>>()
                .join(", "),
            reason: "need at least two: earlier ones to train on, the latest to test on",
        });
    }
    if horizon_days < 1 {
        return Err(DataError::InvalidOption {
            name: "horizon",
            value: format!("{horizon_days} days"),
            reason: "must be at least one day",
        });
    }
    let end = tables.data_end()?;
    if let Some(&late) = snapshots.iter().find(|&&as_of| as_of + horizon_days > end) {
        return Err(DataError::InvalidOption {
            name: "snapshot",
            value: format_date(late),
            reason: "its horizon runs past the last event, so its labels are not known yet",
        });
    }
    let latest = snapshots[snapshots.len() - 1];
    if let Some(&overlapping) = snapshots[..snapshots.len() - 1]
        .iter()
        .find(|&&as_of| as_of + horizon_days > latest)
    {
        return Err(DataError::InvalidOption {
            name: "snapshot",
            value: format_date(overlapping),
            reason: "a training snapshot must be at least a horizon before the latest (the test \
                     snapshot): its labels would not be known yet when scoring at the latest",
        });
    }
    let frame = tables.stacked_profiles(&snapshots, horizon_days)?;
    let mut table = profiles_table(&frame, &tables.dir)?;
    table.sha256 = tables.fingerprint()?;
    let snapshot_of_row: Vec<String> = match &table.column(SNAPSHOT)?.cells {
        crate::table::Cells::Text(cells) => cells
            .iter()
            .map(|cell| cell.clone().unwrap_or_default())
            .collect(),
        _ => {
            return Err(DataError::Parse {
                path: tables.dir.clone(),
                reason: "the profiles' snapshot column is not a date".into(),
            });
        }
    };
    let spec = TrainingSpec {
        target: LABEL.into(),
        positive: Some("true".into()),
        id: Some(CUSTOMER_ID.into()),
        ignore: std::iter::once(SNAPSHOT.to_string())
            .chain(ignore.iter().cloned())
            .collect(),
        features: None,
        kinds: [
            (AUTOPAY.to_string(), FeatureKind::Boolean),
            (NPS_DETRACTOR.to_string(), FeatureKind::Boolean),
        ]
        .into_iter()
        .chain(
            [CONTRACT, PLAN, SEGMENT, REGION, ACQUISITION_CHANNEL]
                .into_iter()
                .map(|name| (name.to_string(), FeatureKind::Categorical)),
        )
        .filter(|(name, _)| !ignore.contains(name))
        .collect(),
    };
    let dataset = prepare_dataset(&table, &spec)?;
    let latest = format_date(latest);
    let (test, train): (Vec<usize>, Vec<usize>) =
        (0..dataset.n_rows()).partition(|&row| snapshot_of_row[row] == latest);
    if test.is_empty() || train.is_empty() {
        return Err(DataError::Split {
            rows: dataset.n_rows(),
            reason: format!("no active customers at one of the snapshots (latest {latest})"),
        });
    }
    Ok(SnapshotData {
        dataset,
        snapshots,
        split: Split { train, test },
    })
}

impl EventTables {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_date;
    use crate::generate::{GenerateOptions, generate};
    use crate::rescore::OutputFormat;

    fn day(text: &str) -> i32 {
        parse_date(text).unwrap()
    }

    fn ms(text: &str, hour: i64) -> i64 {
        i64::from(day(text)) * DAY_MS + hour * 3_600_000
    }

    fn time(name: &str, values: Vec<Option<i64>>) -> Column {
        Series::new(name.into(), values)
            .into_datetime(TimeUnit::Milliseconds, None)
            .into()
    }

    fn date(name: &str, values: Vec<Option<i32>>) -> Column {
        Series::new(name.into(), values).into_date().into()
    }

    fn write(dir: &Path, table: &str, columns: Vec<Column>) {
        let height = columns[0].len();
        let mut frame = DataFrame::new(height, columns).unwrap();
        let file = std::fs::File::create(dir.join(format!("{table}.parquet"))).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();
    }

    /// Two customers with hand-made histories; the expected features are worked out by hand
    /// in the test below. Events at or after 2025-06-01 must not count.
    fn hand_made_company(dir: &Path) {
        let ids = |n: usize, id: &str| vec![id.to_string(); n];
        write(
            dir,
            "customers",
            vec![
                Column::new("customer_id".into(), ["A", "B", "C"]),
                date(
                    "signup_date",
                    vec![
                        Some(day("2024-01-10")),
                        Some(day("2025-03-01")),
                        Some(day("2024-05-01")),
                    ],
                ),
                Column::new("segment".into(), ["consumer", "enterprise", "consumer"]),
                Column::new("region".into(), ["north", "south", "east"]),
                Column::new("acquisition_channel".into(), ["web", "referral", "store"]),
            ],
        );
        write(
            dir,
            "subscriptions",
            vec![
                Column::new("customer_id".into(), ["A", "B", "C", "B"]),
                Column::new("plan".into(), ["basic", "premium", "basic", "business"]),
                Column::new(
                    "contract".into(),
                    ["month-to-month", "one_year", "month-to-month", "two_year"],
                ),
                Column::new("monthly_charge".into(), [30.0, 270.0, 25.0, 400.0]),
                Column::new("autopay".into(), [false, true, true, true]),
                date(
                    "start_date",
                    vec![
                        Some(day("2024-01-10")),
                        Some(day("2025-03-01")),
                        Some(day("2024-05-01")),
                        Some(day("2025-06-20")),
                    ],
                ),
                // A leaves within 90 days of the snapshot; C left before it; B moves to a
                // new plan within 90 days, which is not churn.
                date(
                    "end_date",
                    vec![
                        Some(day("2025-07-15")),
                        Some(day("2025-06-20")),
                        Some(day("2025-05-20")),
                        None,
                    ],
                ),
            ],
        );
        let mut survey_ids = ids(5, "A");
        survey_ids.push("B".into());
        write(
            dir,
            "surveys",
            vec![
                Column::new("customer_id".into(), survey_ids),
                time(
                    "sent_at",
                    vec![
                        Some(ms("2025-02-01", 9)),
                        Some(ms("2025-05-01", 9)),
                        Some(ms("2025-04-01", 9)),
                        Some(ms("2025-05-31", 9)),
                        Some(ms("2025-03-10", 9)),
                        Some(ms("2025-04-01", 9)),
                    ],
                ),
                time(
                    "answered_at",
                    vec![
                        Some(ms("2025-02-02", 9)),
                        Some(ms("2025-05-02", 9)),
                        None,
                        // Sent before the snapshot, answered on it: not known yet.
                        Some(ms("2025-06-01", 0)),
                        Some(ms("2025-03-11", 9)),
                        Some(ms("2025-04-01", 12)),
                    ],
                ),
                Column::new("kind".into(), ["NPS", "NPS", "CSAT", "NPS", "CES", "CSAT"]),
                Column::new(
                    "touchpoint".into(),
                    [
                        "relationship",
                        "relationship",
                        "support",
                        "renewal",
                        "billing",
                        "onboarding",
                    ],
                ),
                Column::new(
                    "score".into(),
                    [Some(9), Some(4), None, Some(0), Some(3), Some(5)],
                ),
            ],
        );
        write(
            dir,
            "tickets",
            vec![
                Column::new("customer_id".into(), ids(4, "A")),
                time(
                    "opened_at",
                    vec![
                        Some(ms("2025-05-10", 8)),
                        Some(ms("2025-04-01", 8)),
                        Some(ms("2025-05-30", 12)),
                        Some(ms("2025-06-01", 0)),
                    ],
                ),
                time(
                    "first_response_at",
                    vec![
                        Some(ms("2025-05-10", 10)),
                        Some(ms("2025-04-02", 8)),
                        // Still waiting at the snapshot: 36 hours so far.
                        Some(ms("2025-06-03", 0)),
                        Some(ms("2025-06-01", 1)),
                    ],
                ),
                time(
                    "closed_at",
                    vec![
                        Some(ms("2025-05-11", 8)),
                        Some(ms("2025-04-03", 8)),
                        None,
                        None,
                    ],
                ),
                time(
                    "reopened_at",
                    vec![
                        Some(ms("2025-05-20", 8)),
                        Some(ms("2025-06-02", 8)),
                        None,
                        None,
                    ],
                ),
                Column::new("channel".into(), ["chat", "email", "phone", "phone"]),
                Column::new(
                    "category".into(),
                    ["technical", "billing", "technical", "technical"],
                ),
                Column::new("complaint".into(), [true, true, false, true]),
            ],
        );
        write(
            dir,
            "usage",
            vec![
                Column::new("customer_id".into(), ["A", "A", "A", "A", "B", "B"]),
                date(
                    "day",
                    vec![
                        Some(day("2025-03-15")),
                        Some(day("2025-04-20")),
                        Some(day("2025-05-20")),
                        Some(day("2025-06-01")),
                        Some(day("2025-05-31")),
                        Some(day("2025-04-15")),
                    ],
                ),
                Column::new("sessions".into(), [2, 3, 1, 9, 4, 1]),
                Column::new("minutes".into(), [100.0, 100.0, 40.0, 500.0, 60.0, 1.0]),
            ],
        );
        write(
            dir,
            "billing",
            vec![
                Column::new("customer_id".into(), ["A", "A", "A", "A", "B"]),
                time(
                    "billed_at",
                    vec![
                        Some(ms("2025-05-10", 1)),
                        Some(ms("2025-05-13", 1)),
                        Some(ms("2025-02-10", 1)),
                        Some(ms("2025-06-10", 1)),
                        Some(ms("2025-05-01", 1)),
                    ],
                ),
                Column::new("amount".into(), [30.0, 30.0, 30.0, 30.0, 270.0]),
                Column::new(
                    "status".into(),
                    ["failed", "refunded", "failed", "failed", "paid"],
                ),
            ],
        );
    }

    fn number(frame: &DataFrame, name: &str, row: usize) -> Option<f64> {
        frame
            .column(name)
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap()
            .f64()
            .unwrap()
            .get(row)
    }

    #[test]
    fn features_count_only_what_was_known_before_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        hand_made_company(dir.path());
        let tables = EventTables::open(dir.path()).unwrap();
        let frame = tables.profiles(day("2025-06-01"), 90).unwrap();
        let ids: Vec<&str> = frame
            .column(CUSTOMER_ID)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        // C's subscription ended before the snapshot.
        assert_eq!(ids, ["A", "B"]);
        let a = |name: &str| number(&frame, name, 0);
        let b = |name: &str| number(&frame, name, 1);
        // 2024-01-10 to 2025-06-01 is 508 days: 16.7 months.
        assert_eq!(a(TENURE_MONTHS), Some(16.0));
        // Month-to-month: 508 days into 30.44-day terms leaves 30.44 - 21.0 = 9.4 days.
        assert_eq!(a(DAYS_TO_RENEWAL), Some(9.0));
        // One year from 2025-03-01: 92 days done, 365.28 - 92 = 273.3.
        assert_eq!(b(DAYS_TO_RENEWAL), Some(273.0));
        assert_eq!(a(NPS_LAST), Some(4.0));
        assert_eq!(a(NPS_CHANGE), Some(-5.0));
        assert_eq!(a(NPS_DETRACTOR), Some(1.0));
        assert_eq!(a(CSAT_LAST), None);
        assert_eq!(a(CES_LAST), Some(3.0));
        assert_eq!(a(CES_CHANGE), None);
        assert_eq!(b(CSAT_LAST), Some(5.0));
        assert_eq!(b(NPS_DETRACTOR), None);
        // Sent 2024-12-03 .. 2025-05-25: four surveys, one unanswered (the CSAT); the one sent
        // on 2025-05-31 is too recent to count against them.
        assert_eq!(a(SURVEY_NONRESPONSE_180D), Some(0.25));
        assert_eq!(a(TICKETS_30D), Some(2.0));
        assert_eq!(a(TICKETS_90D), Some(3.0));
        assert_eq!(a(COMPLAINTS_90D), Some(2.0));
        // Known responses: 2 h and 24 h; the waiting ticket has waited 36 h.
        assert_eq!(a(FIRST_RESPONSE_MEDIAN_HOURS_90D), Some(13.0));
        assert_eq!(a(FIRST_RESPONSE_WORST_HOURS_90D), Some(36.0));
        // Reopened 2025-05-20 counts; the reopening on 2025-06-02 has not happened yet.
        assert_eq!(a(REOPENED_TICKETS_90D), Some(1.0));
        // The one still waiting; the reopened ones were closed (first) before the snapshot.
        assert_eq!(a(OPEN_TICKETS), Some(1.0));
        assert_eq!(b(TICKETS_90D), Some(0.0));
        assert_eq!(b(FIRST_RESPONSE_WORST_HOURS_90D), None);
        assert_eq!(a(USAGE_MINUTES_30D), Some(40.0));
        assert_eq!(a(USAGE_MINUTES_PRIOR_60D), Some(200.0));
        assert_eq!(a(USAGE_CHANGE_PCT), Some(-60.0));
        assert_eq!(a(SESSIONS_30D), Some(1.0));
        assert_eq!(a(DAYS_SINCE_LAST_USE), Some(12.0));
        // 60 minutes against half a minute a month before: +11,900%, capped.
        assert_eq!(b(USAGE_CHANGE_PCT), Some(USAGE_CHANGE_CAP_PCT));
        assert_eq!(b(DAYS_SINCE_LAST_USE), Some(1.0));
        // The failure in February is outside 90 days, the one in June after the snapshot.
        assert_eq!(a(PAYMENT_FAILURES_90D), Some(1.0));
        assert_eq!(a(REFUNDS_90D), Some(1.0));
        assert_eq!(a(LABEL), Some(1.0));
        assert_eq!(b(LABEL), Some(0.0));
        // B's plan at the snapshot is the one in force then, not the next.
        let plans = frame
            .column(PLAN)
            .unwrap()
            .str()
            .unwrap()
            .get(1)
            .map(str::to_string);
        assert_eq!(plans.as_deref(), Some("premium"));
        // A 30-day horizon ends before A leaves.
        let short = tables.profiles(day("2025-06-01"), 30).unwrap();
        assert_eq!(number(&short, LABEL, 0), Some(0.0));
    }

    /// Appends rows to a table file: the same columns, values from `rows`.
    fn append(dir: &Path, table: &str, extra: DataFrame) {
        let path = dir.join(format!("{table}.parquet"));
        let mut frame = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        frame
            .vstack_mut(&extra.select(frame.get_column_names_owned()).unwrap())
            .unwrap();
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .finish(&mut frame)
            .unwrap();
    }

    #[test]
    fn events_planted_after_the_snapshot_change_no_feature() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            customers: 400,
            seed: 11,
            start: day("2025-01-01"),
            months: 8,
            format: OutputFormat::Parquet,
        };
        generate(&options, dir.path()).unwrap();
        let as_of = day("2025-06-01");
        let tables = EventTables::open(dir.path()).unwrap();
        let before = tables.profiles(as_of, 60).unwrap();
        assert!(before.height() > 300);

        // Every active customer gets the worst possible experience from the snapshot on.
        let ids: Vec<String> = before
            .column(CUSTOMER_ID)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let n = ids.len();
        let at = |hours: i64| vec![Some(i64::from(as_of) * DAY_MS + hours * 3_600_000); n];
        let id_column = || Column::new("customer_id".into(), ids.clone());
        let text = |name: &str, value: &str| Column::new(name.into(), vec![value; n]);
        append(
            dir.path(),
            "surveys",
            DataFrame::new(
                n,
                vec![
                    id_column(),
                    time("sent_at", at(0)),
                    time("answered_at", at(1)),
                    text("kind", "NPS"),
                    text("touchpoint", "support"),
                    Column::new("score".into(), vec![0i32; n]),
                ],
            )
            .unwrap(),
        );
        append(
            dir.path(),
            "tickets",
            DataFrame::new(
                n,
                vec![
                    id_column(),
                    time("opened_at", at(0)),
                    time("first_response_at", at(200)),
                    time("closed_at", at(300)),
                    time("reopened_at", at(400)),
                    text("channel", "email"),
                    text("category", "billing"),
                    Column::new("complaint".into(), vec![true; n]),
                ],
            )
            .unwrap(),
        );
        append(
            dir.path(),
            "usage",
            DataFrame::new(
                n,
                vec![
                    id_column(),
                    date("day", vec![Some(as_of); n]),
                    Column::new("sessions".into(), vec![50i32; n]),
                    Column::new("minutes".into(), vec![900.0; n]),
                ],
            )
            .unwrap(),
        );
        append(
            dir.path(),
            "billing",
            DataFrame::new(
                n,
                vec![
                    id_column(),
                    time("billed_at", at(0)),
                    Column::new("amount".into(), vec![99.0; n]),
                    text("status", "failed"),
                ],
            )
            .unwrap(),
        );

        let after = EventTables::open(dir.path())
            .unwrap()
            .profiles(as_of, 60)
            .unwrap();
        assert_eq!(after.shape(), before.shape());
        for column in before.columns() {
            let name = column.name();
            assert!(
                column
                    .as_materialized_series()
                    .equals_missing(after.column(name).unwrap().as_materialized_series()),
                "feature `{name}` changed when events after the snapshot were added"
            );
        }
        // And the plants are real: a later snapshot sees them.
        let later = EventTables::open(dir.path())
            .unwrap()
            .profiles(as_of + 1, 60)
            .unwrap();
        let failures = later.column(PAYMENT_FAILURES_90D).unwrap();
        let before_failures = before.column(PAYMENT_FAILURES_90D).unwrap();
        assert!(
            failures.as_materialized_series().sum::<f64>().unwrap()
                > before_failures
                    .as_materialized_series()
                    .sum::<f64>()
                    .unwrap()
                    + 0.9 * n as f64
        );
    }

    #[test]
    fn customers_who_left_before_the_snapshot_are_not_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            customers: 600,
            seed: 5,
            start: day("2025-01-01"),
            months: 9,
            format: OutputFormat::Csv,
        };
        generate(&options, dir.path()).unwrap();
        let as_of = day("2025-06-01");
        let tables = EventTables::open(dir.path()).unwrap();
        let frame = tables.profiles(as_of, 90).unwrap();
        let present: std::collections::HashSet<String> = frame
            .column(CUSTOMER_ID)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        let subscriptions = crate::table::read_table(tables.file("subscriptions")).unwrap();
        let ids = subscriptions.column("customer_id").unwrap();
        let ends = subscriptions.column("end_date").unwrap();
        let starts = subscriptions.column("start_date").unwrap();
        let (mut left_before, mut leaving, mut staying) = (0, 0, 0);
        for row in 0..subscriptions.n_rows {
            let id = ids.cells.value(row).to_string();
            let start = parse_date(&starts.cells.value(row).to_string()).unwrap();
            let end = match ends.cells.value(row) {
                churn_core::Value::Missing => None,
                value => parse_date(&value.to_string()),
            };
            match end {
                Some(end) if end < as_of => {
                    left_before += 1;
                    assert!(
                        !present.contains(&id),
                        "{id} left on {} but is in the snapshot",
                        format_date(end)
                    );
                }
                _ if start >= as_of => assert!(!present.contains(&id), "{id} had not signed up"),
                Some(end) if end < as_of + 90 => {
                    leaving += 1;
                    assert!(present.contains(&id));
                }
                _ => {
                    staying += 1;
                    assert!(present.contains(&id));
                }
            }
        }
        assert!(
            left_before > 10 && leaving > 5 && staying > 300,
            "{left_before} {leaving} {staying}"
        );
        assert_eq!(count_churned(&frame), leaving);
    }

    #[test]
    fn the_same_seed_writes_the_same_bytes() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let mut options = GenerateOptions {
            customers: 25_000,
            seed: 9,
            start: day("2025-01-01"),
            months: 2,
            format: OutputFormat::Parquet,
        };
        generate(&options, first.path()).unwrap();
        generate(&options, second.path()).unwrap();
        for table in TABLES {
            let name = format!("{table}.parquet");
            let a = std::fs::read(first.path().join(&name)).unwrap();
            let b = std::fs::read(second.path().join(&name)).unwrap();
            assert!(a == b, "{name} differs between two runs with seed 9");
        }
        options.seed = 10;
        let third = tempfile::tempdir().unwrap();
        generate(&options, third.path()).unwrap();
        assert_ne!(
            std::fs::read(first.path().join("usage.parquet")).unwrap(),
            std::fs::read(third.path().join("usage.parquet")).unwrap()
        );
    }

    #[test]
    fn a_bad_value_in_a_csv_table_names_the_file_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let options = GenerateOptions {
            customers: 50,
            seed: 1,
            start: day("2025-01-01"),
            months: 5,
            format: OutputFormat::Csv,
        };
        generate(&options, dir.path()).unwrap();
        let path = dir.path().join("surveys.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let (row, _) = lines
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, line)| !line.ends_with(','))
            .unwrap();
        let cut = lines[row].rfind(',').unwrap();
        lines[row].replace_range(cut + 1.., "abc");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let tables = EventTables::open(dir.path()).unwrap();
        let error = tables
            .profiles(day("2025-04-01"), 30)
            .unwrap_err()
            .to_string();
        assert!(error.contains("surveys.csv"), "{error}");
        assert!(error.contains("abc") && error.contains("score"), "{error}");
        assert!(!error.contains("infer_schema_length"), "{error}");
    }

    #[test]
    fn missing_tables_and_broken_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        hand_made_company(dir.path());
        std::fs::remove_file(dir.path().join("usage.parquet")).unwrap();
        let error = EventTables::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("no `usage` table"), "{error}");
        std::fs::write(dir.path().join("usage.parquet"), b"PAR1 truncated").unwrap();
        let tables = EventTables::open(dir.path()).unwrap();
        let error = tables
            .profiles(day("2025-06-01"), 90)
            .unwrap_err()
            .to_string();
        assert!(error.contains("usage.parquet"), "{error}");
    }
}
