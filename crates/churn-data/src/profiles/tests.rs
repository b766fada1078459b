//! Profiles checked against a hand-made company worked out by hand, and against generated
//! ones with events planted after the snapshot.

use churn_core::experience::*;

use super::*;
use crate::calendar::parse_date;
use crate::generate::{GenerateOptions, generate};
use crate::writers::OutputFormat;

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
