//! `churn rescore`, the batch path: the same numbers and reasons as the gRPC `Score` call to the
//! bit, partitions and both file formats, rejected rows kept and counted, bad files refused
//! before anything is written.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use churn_api::proto;
use churn_api::proto::churn_service_client::ChurnServiceClient;
use churn_core::RawValue;
use churn_serve::ServeOptions;
use churn_train::ModelChoice;
use polars::prelude::*;

use crate::serve::{channel, fixture_profiles, start, train_into};

/// Runs `churn rescore` in-process with `change` applied to the default arguments; returns the
/// exit code and the printed summary.
fn run_rescore(
    model: &Path,
    inputs: &[PathBuf],
    output: &Path,
    change: impl FnOnce(&mut churn_cli::rescore::RescoreArgs),
) -> anyhow::Result<(ExitCode, String)> {
    let mut args = churn_cli::rescore::RescoreArgs {
        model: model.to_path_buf(),
        input: inputs.to_vec(),
        output: output.to_path_buf(),
        format: None,
        top: 5,
        rejects: None,
        max_reject_share: 0.01,
        id: None,
        chunk_rows: 37,
        threads: Some(2),
        alerts: None,
        alert_policy: None,
    };
    change(&mut args);
    let mut summary = Vec::new();
    let code = churn_cli::rescore::rescore(args, &mut summary)?;
    Ok((code, String::from_utf8(summary)?))
}

fn read_parquet(path: &Path) -> anyhow::Result<DataFrame> {
    Ok(ParquetReader::new(std::fs::File::open(path)?).finish()?)
}

fn text(frame: &DataFrame, column: &str, row: usize) -> anyhow::Result<Option<String>> {
    Ok(frame.column(column)?.str()?.get(row).map(str::to_string))
}

fn number(frame: &DataFrame, column: &str, row: usize) -> anyhow::Result<Option<f64>> {
    Ok(frame.column(column)?.f64()?.get(row))
}

/// Writes the fixture's rows into `parts` CSV files `part-1.csv` … with the header in each.
fn fixture_partitions(dir: &Path, parts: usize) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(churn_e2e::fixture("telco-sample.csv"))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let rows: Vec<&str> = lines.collect();
    for (index, part) in rows.chunks(rows.len().div_ceil(parts)).enumerate() {
        let mut content = format!("{header}\n");
        for row in part {
            content.push_str(row);
            content.push('\n');
        }
        std::fs::write(dir.join(format!("part-{}.csv", index + 1)), content)?;
    }
    Ok(rows.iter().map(|row| row.to_string()).collect())
}

/// Returns a protobuf value as the output file writes it (none for missing).
fn value_text(value: Option<&proto::Value>) -> Option<String> {
    let raw = match value.and_then(|value| value.kind.clone()) {
        None => return None,
        Some(proto::value::Kind::Number(number)) => RawValue::Number(number),
        Some(proto::value::Kind::Text(text)) => RawValue::Text(text),
        Some(proto::value::Kind::Flag(flag)) => RawValue::Bool(flag),
    };
    Some(raw.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescored_rows_equal_the_grpc_score_of_the_same_profiles_to_the_bit() -> anyhow::Result<()>
{
    for kind in [ModelChoice::Gbdt, ModelChoice::Logistic] {
        let dir = tempfile::tempdir()?;
        let model_dir = train_into(&dir.path().join("model"), kind)?;
        fixture_partitions(dir.path(), 3)?;
        let output = dir.path().join("scores.parquet");
        // A glob of three partitions, in chunks of 37 rows scored on two threads.
        let (code, summary) = run_rescore(
            &model_dir,
            &[dir.path().join("part-*.csv")],
            &output,
            |_| {},
        )?;
        assert_eq!(code, ExitCode::SUCCESS, "{summary}");
        assert!(
            summary.contains("rescored 3 files") && summary.contains("400 rows scored, 0 rejected"),
            "{summary}"
        );
        assert!(!dir.path().join("scores.parquet.partial").exists());
        let rejects = std::fs::read_to_string(dir.path().join("scores.rejects.csv"))?;
        assert_eq!(rejects, "file,row,customer_id,feature,reason\n");
        let frame = read_parquet(&output)?;
        assert_eq!(frame.height(), 400);
        assert_eq!(frame.width(), 6 + 2 * 5 * 4 + 3);
        assert!(matches!(
            frame.column("scored_at")?.dtype(),
            DataType::Datetime(TimeUnit::Microseconds, Some(_))
        ));

        let server = start(&model_dir, ServeOptions::default()).await?;
        let mut client = ChurnServiceClient::new(channel(&server).await?);
        let model = client
            .get_model(proto::GetModelRequest {})
            .await?
            .into_inner();
        let model_ref = model.model.clone().unwrap_or_default();
        let mut bands_seen = std::collections::BTreeSet::new();
        for (row, profile) in fixture_profiles(&model)?.into_iter().enumerate() {
            let online = client
                .score(proto::ScoreRequest {
                    profile: Some(profile),
                    top_k: 5,
                })
                .await?
                .into_inner();
            assert_eq!(
                text(&frame, "customer_id", row)?.as_deref(),
                Some(online.customer_id.as_str())
            );
            let probability = number(&frame, "probability", row)?.unwrap_or(f64::NAN);
            assert_eq!(
                probability.to_bits(),
                online.probability.to_bits(),
                "row {row}"
            );
            let logit = number(&frame, "logit", row)?.unwrap_or(f64::NAN);
            assert_eq!(logit.to_bits(), online.logit.to_bits());
            assert_eq!(number(&frame, "percentile", row)?, Some(online.percentile));
            let band = churn_api::convert::band_from_proto(online.band()).map(|b| b.as_str());
            assert_eq!(text(&frame, "band", row)?.as_deref(), band);
            bands_seen.insert(band);
            for (direction, reasons) in
                [("raising", &online.raising), ("lowering", &online.lowering)]
            {
                for rank in 1..=5 {
                    let column = |part: &str| format!("{direction}_{rank}_{part}");
                    let reason = reasons.get(rank - 1);
                    assert_eq!(
                        text(&frame, &column("feature"), row)?,
                        reason.map(|reason| reason.feature.clone()),
                        "row {row} {direction} {rank}"
                    );
                    assert_eq!(
                        text(&frame, &column("value"), row)?,
                        reason.and_then(|reason| value_text(reason.value.as_ref()))
                    );
                    assert_eq!(
                        number(&frame, &column("contribution"), row)?.map(f64::to_bits),
                        reason.map(|reason| reason.contribution.to_bits())
                    );
                    assert_eq!(
                        text(&frame, &column("text"), row)?,
                        reason.map(|reason| reason.message.clone())
                    );
                }
            }
            assert_eq!(
                text(&frame, "model_name", row)?,
                Some(model_ref.name.clone())
            );
            assert_eq!(
                text(&frame, "model_version", row)?,
                Some(model_ref.version.clone())
            );
        }
        assert!(bands_seen.len() >= 2, "{bands_seen:?}");
        server.shutdown().await?;
    }
    Ok(())
}

#[test]
fn bad_rows_are_rejected_by_row_and_reason_and_the_rest_are_scored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model_dir = train_into(&dir.path().join("model"), ModelChoice::Gbdt)?;
    let text_of = std::fs::read_to_string(churn_e2e::fixture("telco-sample.csv"))?;
    let mut lines: Vec<String> = text_of.lines().take(32).map(str::to_string).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let position = |name: &str| header.iter().position(|&column| column == name);
    let (contract, tenure, gender) = (
        position("Contract").unwrap_or(0),
        position("tenure").unwrap_or(0),
        position("gender").unwrap_or(0),
    );
    let set = |line: &str, column: usize, value: &str| {
        let mut fields: Vec<&str> = line.split(',').collect();
        fields[column] = value;
        fields.join(",")
    };
    // Data rows 21 to 26 are broken, one way each.
    lines[21] = lines[21]
        .rsplit_once(',')
        .map(|(kept, _)| kept.to_string())
        .unwrap_or_default();
    lines[22] = set(&lines[22], contract, "Lifetime");
    lines[23] = set(&lines[23], tenure, "inf");
    lines[24] = set(&lines[24], tenure, "twelve");
    lines[25] = set(&lines[25], gender, "");
    let ids: Vec<String> = lines
        .iter()
        .map(|line| line.split(',').next().unwrap_or_default().to_string())
        .collect();
    lines[26] = set(&lines[26], 0, " ");
    let input = dir.path().join("customers.csv");
    std::fs::write(&input, lines.join("\n") + "\n")?;
    let output = dir.path().join("scores.parquet");

    // 6 of 31 rows rejected is more than the default 1%: exit code 1, good rows still written.
    let (code, summary) = run_rescore(&model_dir, std::slice::from_ref(&input), &output, |_| {})?;
    assert_eq!(code, ExitCode::from(1), "{summary}");
    assert!(summary.contains("25 rows scored, 6 rejected"), "{summary}");
    let frame = read_parquet(&output)?;
    assert_eq!(frame.height(), 25);
    let scored: Vec<Option<String>> = (0..25)
        .map(|row| text(&frame, "customer_id", row))
        .collect::<anyhow::Result<_>>()?;
    assert!(!scored.contains(&Some(ids[22].clone())));
    assert_eq!(scored[20], Some(ids[27].clone()));

    let mut rejects = CsvReadOptions::default()
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(dir.path().join("scores.rejects.csv")))?
        .finish()?;
    rejects.rechunk_mut();
    assert_eq!(rejects.height(), 6);
    let expected = [
        (
            "21",
            "",
            "",
            "line 22: expected 21 fields as in the header, found 20",
        ),
        (
            "22",
            ids[22].as_str(),
            "Contract",
            "unknown category `Lifetime`",
        ),
        (
            "23",
            ids[23].as_str(),
            "tenure",
            "value `inf` is not finite",
        ),
        ("24", ids[24].as_str(), "tenure", "`twelve` is not a number"),
        ("25", ids[25].as_str(), "gender", "a value is required"),
        (
            "26",
            "",
            "customerID",
            "the customer id (column `customerID`) is missing",
        ),
    ];
    for (index, (row, id, feature, reason)) in expected.into_iter().enumerate() {
        assert_eq!(text(&rejects, "row", index)?.as_deref(), Some(row));
        assert_eq!(
            text(&rejects, "customer_id", index)?.unwrap_or_default(),
            id
        );
        assert_eq!(
            text(&rejects, "feature", index)?.unwrap_or_default(),
            feature
        );
        let said = text(&rejects, "reason", index)?.unwrap_or_default();
        assert!(said.contains(reason), "{said}");
        let file = text(&rejects, "file", index)?.unwrap_or_default();
        assert!(file.ends_with("customers.csv"), "{file}");
    }

    // Under a looser threshold the same run succeeds.
    assert!(!dir.path().join("scores.rejects.csv.partial").exists());
    let (code, _) = run_rescore(&model_dir, &[input], &output, |args| {
        args.max_reject_share = 0.2
    })?;
    assert_eq!(code, ExitCode::SUCCESS);
    Ok(())
}

#[test]
fn parquet_in_and_csv_out_score_the_same_as_csv_in_and_bad_files_write_nothing()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model_dir = train_into(&dir.path().join("model"), ModelChoice::Gbdt)?;
    let fixture = churn_e2e::fixture("telco-sample.csv");
    // Parquet with typed columns, as polars infers them: numbers as numbers, not text.
    let mut typed = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(fixture.clone()))?
        .finish()?;
    let parquet = dir.path().join("customers.parquet");
    ParquetWriter::new(std::fs::File::create(&parquet)?).finish(&mut typed)?;

    let from_csv = dir.path().join("from-csv.parquet");
    let (code, _) = run_rescore(&model_dir, &[fixture], &from_csv, |_| {})?;
    assert_eq!(code, ExitCode::SUCCESS);
    let from_parquet = dir.path().join("from-parquet.csv");
    let (code, summary) = run_rescore(
        &model_dir,
        std::slice::from_ref(&parquet),
        &from_parquet,
        |args| {
            args.chunk_rows = 150;
            args.threads = Some(1);
        },
    )?;
    assert_eq!(code, ExitCode::SUCCESS, "{summary}");
    let expected = read_parquet(&from_csv)?;
    let mut written = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(from_parquet))?
        .finish()?;
    written.rechunk_mut();
    assert_eq!(written.height(), 400);
    for row in 0..400 {
        assert_eq!(
            number(&written, "probability", row)?.map(f64::to_bits),
            number(&expected, "probability", row)?.map(f64::to_bits),
            "row {row}"
        );
        assert_eq!(
            text(&written, "raising_1_feature", row)?,
            text(&expected, "raising_1_feature", row)?
        );
    }

    // A truncated Parquet file and a file without a model column are refused up front, by
    // name, and leave no output behind.
    let bytes = std::fs::read(&parquet)?;
    let truncated = dir.path().join("truncated.parquet");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    let output = dir.path().join("never.parquet");
    let error = run_rescore(&model_dir, &[parquet.clone(), truncated], &output, |_| {})
        .expect_err("a truncated file is refused");
    assert!(
        format!("{error:#}").contains("truncated.parquet"),
        "{error:#}"
    );
    let narrow = crate::write_file(dir.path(), "narrow.csv", "customerID,tenure\nx-1,3\n");
    let error = run_rescore(&model_dir, &[narrow], &output, |_| {})
        .expect_err("a missing column is refused");
    assert!(
        format!("{error:#}").contains("no column `gender`"),
        "{error:#}"
    );
    let error = run_rescore(
        &model_dir,
        &[dir.path().join("nothing-*.csv")],
        &output,
        |_| {},
    )
    .expect_err("a pattern matching nothing is refused");
    assert!(
        format!("{error:#}").contains("matches no file"),
        "{error:#}"
    );
    assert!(!output.exists());
    assert!(!dir.path().join("never.parquet.partial").exists());
    Ok(())
}

#[test]
fn alerts_follow_the_policy_and_are_ranked_by_revenue_at_risk() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model_dir = train_into(&dir.path().join("model"), ModelChoice::Gbdt)?;
    let policy = crate::write_file(
        dir.path(),
        "policy.toml",
        "min_band = \"high\"\nvalue_feature = \"MonthlyCharges\"\nvalue_periods = 12\n\n\
         [acknowledge_within_hours]\nhigh = 2\n",
    );
    let output = dir.path().join("scores.parquet");
    let alerts_path = dir.path().join("alerts.csv");
    let fixture = churn_e2e::fixture("telco-sample.csv");
    let (code, summary) = run_rescore(
        &model_dir,
        std::slice::from_ref(&fixture),
        &output,
        |args| {
            args.alerts = Some(alerts_path.clone());
            args.alert_policy = Some(policy.clone());
        },
    )?;
    assert_eq!(code, ExitCode::SUCCESS, "{summary}");
    let scores = read_parquet(&output)?;
    let mut alerts = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(alerts_path.clone()))?
        .finish()?;
    alerts.rechunk_mut();

    // Every HIGH customer, and only those, has an alert (a batch has no history for rises).
    let high: Vec<(String, f64)> = (0..scores.height())
        .filter(|&row| text(&scores, "band", row).ok().flatten().as_deref() == Some("HIGH"))
        .map(|row| {
            Ok((
                text(&scores, "customer_id", row)?.unwrap_or_default(),
                number(&scores, "probability", row)?.unwrap_or(f64::NAN),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    assert!(!high.is_empty());
    assert_eq!(alerts.height(), high.len());
    assert!(
        summary.contains(&format!(
            "alerts: {} (HIGH {}, MEDIUM 0, LOW 0)",
            high.len(),
            high.len()
        )),
        "{summary}"
    );
    let charges: std::collections::HashMap<String, f64> = {
        let text_of = std::fs::read_to_string(&fixture)?;
        let mut lines = text_of.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let id = header.iter().position(|&c| c == "customerID").unwrap_or(0);
        let monthly = header
            .iter()
            .position(|&c| c == "MonthlyCharges")
            .unwrap_or(0);
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (
                    fields[id].to_string(),
                    fields[monthly].parse().unwrap_or(f64::NAN),
                )
            })
            .collect()
    };
    let mut previous = f64::INFINITY;
    for row in 0..alerts.height() {
        let id = text(&alerts, "customer_id", row)?.unwrap_or_default();
        let probability = number(&alerts, "probability", row)?.unwrap_or(f64::NAN);
        let (_, scored) = high
            .iter()
            .find(|(high_id, _)| *high_id == id)
            .ok_or_else(|| anyhow::anyhow!("{id} alerted but not HIGH"))?;
        assert_eq!(probability.to_bits(), scored.to_bits());
        let revenue = number(&alerts, "revenue_at_risk", row)?.unwrap_or(f64::NAN);
        assert!(
            (revenue - probability * charges[&id] * 12.0).abs() < 1e-9,
            "{id}"
        );
        assert!(revenue <= previous, "ranked by revenue at risk");
        previous = revenue;
        assert_eq!(
            text(&alerts, "triggers", row)?.as_deref(),
            Some("HIGH risk")
        );
        assert!(
            text(&alerts, "reason_1", row)?.is_some_and(|reason| reason.contains("churn more"))
        );
    }
    assert_eq!(alerts.column("rank")?.i64()?.get(0), Some(1));

    // The policy shipped beside the Telco model reads.
    let shipped = churn_core::AlertPolicy::from_toml(&std::fs::read_to_string(
        churn_e2e::repo_root().join("models/telco/alert-policy.toml"),
    )?)?;
    assert_eq!(shipped.value_feature.as_deref(), Some("MonthlyCharges"));

    // A misspelt policy key is refused by name before anything is scored.
    let typo = crate::write_file(dir.path(), "typo.toml", "min_bnad = \"high\"\n");
    let error = run_rescore(
        &model_dir,
        std::slice::from_ref(&fixture),
        &output,
        |args| {
            args.alerts = Some(alerts_path.clone());
            args.alert_policy = Some(typo);
        },
    )
    .expect_err("an unknown key is refused");
    assert!(format!("{error:#}").contains("min_bnad"), "{error:#}");
    Ok(())
}
