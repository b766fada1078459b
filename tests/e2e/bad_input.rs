//! Bad input gets an error naming the column (and row where there is one), never a panic, and the
//! good rows of a file are still scored.

use churn_train::{TrainConfig, train};

use crate::{run_score, sample_config, write_file};

const HEADER: &str = "id,tenure,Contract,Churn\n";

/// Trains on `csv` with target `Churn` and returns the error message.
fn training_error(csv: &str, positive: Option<&str>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = write_file(dir.path(), "data.csv", csv);
    let mut config = TrainConfig::new(data, "Churn".into());
    config.positive = positive.map(str::to_string);
    match train(&config, "bad") {
        Ok(_) => panic!("training on bad data succeeded:\n{csv}"),
        Err(error) => error.to_string(),
    }
}

/// A valid body of `n` rows, alternating churn.
fn rows(n: usize) -> String {
    (0..n)
        .map(|row| {
            let contract = ["Month-to-month", "One year", "Two year"][row % 3];
            let churn = if row % 2 == 0 { "Yes" } else { "No" };
            format!("c{row},{},{contract},{churn}\n", row % 40)
        })
        .collect()
}

#[test]
fn a_missing_target_column_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = write_file(dir.path(), "data.csv", &format!("{HEADER}{}", rows(20)));
    let error = train(&TrainConfig::new(data, "Exited".into()), "bad")
        .expect_err("no such target")
        .to_string();
    assert!(error.contains("no column `Exited`"), "{error}");
    assert!(
        error.contains("`Churn`"),
        "lists the columns there are: {error}"
    );
}

#[test]
fn a_target_with_one_class_is_refused() {
    let csv = format!("{HEADER}{}", rows(20).replace(",Yes\n", ",No\n"));
    let error = training_error(&csv, None);
    assert!(
        error.contains("target `Churn` has only one class `No`"),
        "{error}"
    );
}

#[test]
fn a_target_with_three_values_needs_positive() {
    let csv = format!("{HEADER}{}c99,3,One year,Maybe\n", rows(20));
    let error = training_error(&csv, None);
    assert!(error.contains("target `Churn` has 3 values"), "{error}");
    assert!(error.contains("--positive"), "{error}");
    // Naming the churn value makes it trainable (churn versus the rest).
    let dir = tempfile::tempdir().expect("tempdir");
    let data = write_file(dir.path(), "data.csv", &csv);
    let mut config = TrainConfig::new(data, "Churn".into());
    config.positive = Some("Yes".into());
    config.test_fraction = 0.25;
    assert!(train(&config, "ok").is_ok());
}

#[test]
fn empty_and_header_only_files_are_refused() {
    let error = training_error("", None);
    assert!(
        error.contains("data.csv") && error.contains("is empty"),
        "{error}"
    );
    let error = training_error(HEADER, None);
    assert!(error.contains("has a header but no rows"), "{error}");
}

#[test]
fn a_ragged_row_is_named_by_row_and_line() {
    let csv = format!("{HEADER}{}c98,5,One year\n{}", rows(5), rows(5));
    let error = training_error(&csv, None);
    assert!(
        error.contains("row 6 (line 7): expected 4 fields as in the header, found 3"),
        "{error}"
    );
}

#[test]
fn infinity_in_training_data_is_named_by_row_and_column() {
    let mut csv = format!("{HEADER}{}", rows(20));
    csv.push_str("c97,inf,One year,No\n");
    let error = training_error(&csv, None);
    assert!(
        error.contains("row 21, column `tenure`: `inf` is not a finite number"),
        "{error}"
    );
    // NaN, as pandas writes missing values, is a blank, not an error.
    let csv = format!("{HEADER}{}c96,NaN,One year,No\n", rows(20));
    let dir = tempfile::tempdir().expect("tempdir");
    let data = write_file(dir.path(), "data.csv", &csv);
    assert!(train(&TrainConfig::new(data, "Churn".into()), "ok").is_ok());
}

#[test]
fn bad_scoring_rows_are_named_and_good_rows_still_scored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let outcome = train(&sample_config(), "sample")?;
    outcome.write(dir.path())?;
    let sample = std::fs::read_to_string(churn_e2e::fixture("telco-sample.csv"))?;
    let mut lines: Vec<String> = sample.lines().take(6).map(str::to_string).collect();
    // Row 2: tenure is text; row 3: an unknown contract; row 4: tenure is infinite.
    lines[2] = lines[2].replacen(",34,", ",thirty-four,", 1);
    lines[3] = lines[3].replace("Month-to-month", "Weekly");
    lines[4] = lines[4].replacen(",45,", ",inf,", 1);
    let data = write_file(dir.path(), "score.csv", &(lines.join("\n") + "\n"));

    let scorer = churn_core::Scorer::new(outcome.artifact)?;
    let table = churn_data::read_table(&data)?;
    let messages: Vec<(usize, String)> = churn_data::score_table(&scorer, &table)?
        .filter_map(|row| row.outcome.err().map(|error| (row.row, error.to_string())))
        .collect();
    assert_eq!(
        messages,
        vec![
            (
                2,
                "feature `tenure`: value `thirty-four` is not a number".to_string()
            ),
            (
                3,
                "feature `Contract`: unknown category `Weekly` (known: `Month-to-month`, `Two year`, `One year`)"
                    .to_string()
            ),
            (4, "feature `tenure`: value `inf` is not finite".to_string()),
        ]
    );

    let (ok, scored) = run_score(dir.path(), &data)?;
    assert!(!ok, "exit code reports the failed rows");
    assert_eq!(scored.len(), 2, "the two good rows are still scored");
    assert_eq!(scored[0]["id"], "7590-VHVEG");
    Ok(())
}

#[test]
fn a_scoring_file_without_a_model_column_is_refused_up_front() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = write_file(dir.path(), "score.csv", "customerID,tenure\nx,3\n");
    let error = run_score(&churn_e2e::fixture("telco-sample-v1.model.json"), &data)
        .expect_err("columns missing");
    let message = format!("{error:#}");
    assert!(
        message.contains("score.csv") && message.contains("no column `gender`"),
        "{message}"
    );
    Ok(())
}

#[test]
fn a_corrupt_model_file_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let model = write_file(
        dir.path(),
        "model.json",
        "{\"format_version\": \"1\", \"name\": ",
    );
    let error = churn_cli::load_model(&model).expect_err("corrupt");
    let message = format!("{error:#}");
    assert!(
        message.contains("model.json") && message.contains("invalid model artifact"),
        "{message}"
    );
    Ok(())
}
