//! Profiles as tables: converted for training and scoring, counted, written, and stacked from
//! snapshots into a training set split by time.

use std::path::Path;

use churn_core::FeatureKind;
use churn_core::experience::{
    ACQUISITION_CHANNEL, AUTOPAY, CONTRACT, NPS_DETRACTOR, PLAN, REGION, SEGMENT,
};
use polars::prelude::*;

use super::{CUSTOMER_ID, EventTables, LABEL, SNAPSHOT};
use crate::calendar::format_date;
use crate::dataset::{Dataset, TrainingSpec, prepare_dataset};
use crate::error::{DataError, Result};
use crate::split::Split;
use crate::table::{Cells, Table, to_table_column};
use crate::writers::{FrameFile, OutputFormat};

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
    let format = OutputFormat::from_path(path)?;
    let mut file = FrameFile::create(path, format, frame.schema())?;
    file.write(frame)?;
    file.finish()?.commit()
}

/// A training set stacked from snapshots, split by time.
#[derive(Debug, Clone)]
pub struct SnapshotData {
    /// The stacked profiles as a training set.
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
    let snapshots = checked_snapshots(tables, snapshots, horizon_days)?;
    let frame = tables.stacked_profiles(&snapshots, horizon_days)?;
    let mut table = profiles_table(&frame, &tables.dir)?;
    table.sha256 = tables.fingerprint()?;
    let snapshot_of_row = snapshot_of_each_row(&table, tables)?;
    let dataset = prepare_dataset(&table, &profiles_spec(ignore))?;
    let latest = format_date(snapshots[snapshots.len() - 1]);
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

/// Returns the snapshots sorted and deduplicated, or says which one cannot be used: fewer than
/// two, a horizon under a day, a horizon past the data, or a training snapshot less than a
/// horizon before the latest.
fn checked_snapshots(
    tables: &EventTables,
    snapshots: &[i32],
    horizon_days: i32,
) -> Result<Vec<i32>> {
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
    Ok(snapshots)
}

/// Returns each row's snapshot date, as text.
fn snapshot_of_each_row(table: &Table, tables: &EventTables) -> Result<Vec<String>> {
    match &table.column(SNAPSHOT)?.cells {
        Cells::Text(cells) => Ok(cells
            .iter()
            .map(|cell| cell.clone().unwrap_or_default())
            .collect()),
        _ => Err(DataError::Parse {
            path: tables.dir.clone(),
            reason: "the profiles' snapshot column is not a date".into(),
        }),
    }
}

/// Returns how profiles are trained on: the label, the customer id, the snapshot left out with
/// the features in `ignore`, and the kinds of the boolean and categorical columns.
fn profiles_spec(ignore: &[String]) -> TrainingSpec {
    TrainingSpec {
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
    }
}
