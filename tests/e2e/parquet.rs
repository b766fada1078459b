//! Parquet in: typed columns keep their meaning, and a Parquet copy of a CSV trains the same model.

use churn_core::FeatureKind;
use churn_train::{TrainConfig, train};
use polars::prelude::*;

fn write_parquet(path: &std::path::Path, frame: &mut DataFrame) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    ParquetWriter::new(file).finish(frame)?;
    Ok(())
}

#[test]
fn typed_parquet_columns_are_read_with_their_kinds() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let n = 60;
    let mut frame = df!(
        "customer" => (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>(),
        "tenure" => (0..n).map(|i| i64::from(i % 24)).collect::<Vec<_>>(),
        "charges" => (0..n).map(|i| if i == 5 { None } else { Some(20.0 + f64::from(i) * 1.5) }).collect::<Vec<_>>(),
        "autopay" => (0..n).map(|i| i % 3 == 0).collect::<Vec<_>>(),
        "plan" => (0..n).map(|i| ["basic", "plus", "pro"][(i % 3) as usize]).collect::<Vec<_>>(),
        "churned" => (0..n).map(|i| i % 4 == 0 || i % 24 < 3).collect::<Vec<_>>()
    )?;
    let path = dir.path().join("customers.parquet");
    write_parquet(&path, &mut frame)?;

    let mut config = TrainConfig::new(path, "churned".into());
    config.id = Some("customer".into());
    config.test_fraction = 0.25;
    let outcome = train(&config, "parquet")?;
    let schema = &outcome.artifact.schema;
    let kind = |name: &str| schema.feature(name).map(|feature| feature.kind);
    assert_eq!(schema.positive_class, "true");
    assert_eq!(kind("tenure"), Some(FeatureKind::Numeric));
    assert_eq!(kind("charges"), Some(FeatureKind::Numeric));
    assert_eq!(kind("autopay"), Some(FeatureKind::Boolean));
    assert_eq!(kind("plan"), Some(FeatureKind::Categorical));
    assert!(kind("customer").is_none());
    Ok(())
}

#[test]
fn a_parquet_copy_of_a_csv_trains_the_same_model() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let csv = churn_e2e::fixture("telco-sample.csv");
    let mut frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .try_into_reader_with_file_path(Some(csv.clone()))?
        .finish()?;
    let parquet = dir.path().join("telco-sample.parquet");
    write_parquet(&parquet, &mut frame)?;

    let mut from_csv = crate::sample_config();
    from_csv.data = csv;
    let mut from_parquet = from_csv.clone();
    from_parquet.data = parquet;
    let csv_model = train(&from_csv, "sample")?.artifact;
    let parquet_model = train(&from_parquet, "sample")?.artifact;
    assert_eq!(csv_model.model, parquet_model.model);
    assert_eq!(csv_model.preprocessor, parquet_model.preprocessor);
    Ok(())
}

#[test]
fn a_truncated_parquet_file_is_refused_by_name() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut frame = df!("a" => [1.0, 2.0, 3.0], "Churn" => ["Yes", "No", "No"])?;
    let path = dir.path().join("cut.parquet");
    write_parquet(&path, &mut frame)?;
    let bytes = std::fs::read(&path)?;
    std::fs::write(&path, &bytes[..bytes.len() / 2])?;
    let error = churn_data::read_table(&path)
        .expect_err("truncated")
        .to_string();
    assert!(error.contains("cut.parquet"), "{error}");
    Ok(())
}
