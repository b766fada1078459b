//! Fit time of our booster against LightGBM on the same rows, printed as a table.
//!
//! Writes `N` Telco customers resampled with noise (seed 7) to a CSV, fits 300 trees of 31 leaves
//! at learning rate 0.1 with 255 bins on 2 threads (no early stopping) three times, and, when
//! `CHURN_BENCH_PYTHON` names a Python with lightgbm, pandas and scikit-learn, runs
//! `benches/lightgbm_fit.py` on the same file and settings. Categorical columns are categorical
//! for both (LightGBM's native categorical splits, as ours).
//!
//! `CHURN_BENCH_PYTHON=/tmp/refenv/bin/python cargo bench -p churn-train --bench fit_vs_lightgbm -- 100000`

use std::time::Instant;

use churn_data::{TrainingSpec, load_training_data, stratified_split};
use churn_train::GbdtParams;
use churn_train::metrics::roc_auc;
use churn_train::preprocess::{encode_rows, fit_preprocessor};

mod common;
use common::resample_telco;

fn main() -> anyhow::Result<()> {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join(format!("telco-{rows}.csv"));
    resample_telco(rows, &csv)?;

    let spec = TrainingSpec {
        target: "Churn".into(),
        positive: Some("Yes".into()),
        id: Some("customerID".into()),
        ignore: Vec::new(),
        features: None,
        kinds: Default::default(),
    };
    let dataset = load_training_data(&csv, &spec)?;
    let split = stratified_split(&dataset.labels.churned, 0.2, 0)?;
    let preprocessor = fit_preprocessor(&dataset, &split.train, churn_core::EncodingStyle::Codes);
    let encoder = preprocessor.encoder(&dataset.schema)?;
    let x = encode_rows(&encoder, &dataset, &split.train)?;
    let y: Vec<bool> = split
        .train
        .iter()
        .map(|&row| dataset.labels.churned[row])
        .collect();
    let params = GbdtParams {
        max_trees: 300,
        max_leaves: 31,
        learning_rate: 0.1,
        max_bins: 255,
        min_data_in_leaf: 20,
        l2: 1.0,
        early_stopping_rounds: 0,
        ..GbdtParams::default()
    }
    .check()?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
    let mut seconds = Vec::new();
    let mut fitted = None;
    for _ in 0..3 {
        let start = Instant::now();
        let model = pool.install(|| params.fit(&x, &encoder.categorical_columns(), &y, 7))?;
        seconds.push(start.elapsed().as_secs_f64());
        fitted = Some(model);
    }
    seconds.sort_by(f64::total_cmp);
    let ours = seconds[1];
    let ensemble = fitted
        .map(|model| model.ensemble)
        .ok_or_else(|| anyhow::anyhow!("no fit"))?;
    let test_x = encode_rows(&encoder, &dataset, &split.test)?;
    let margins: Vec<f64> = test_x
        .rows()
        .into_iter()
        .map(|row| ensemble.margin(&row.to_vec()))
        .collect();
    let test_y: Vec<bool> = split
        .test
        .iter()
        .map(|&row| dataset.labels.churned[row])
        .collect();
    let our_auc = roc_auc(&test_y, &margins);

    println!(
        "| booster | rows (train) | trees × leaves | fit seconds (median of 3) | holdout ROC-AUC |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| churn gbdt | {} | {} × 31 | {ours:.3} | {our_auc:.4} |",
        split.train.len(),
        ensemble.trees.len()
    );
    if let Ok(python) = std::env::var("CHURN_BENCH_PYTHON") {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/lightgbm_fit.py");
        let output = std::process::Command::new(python)
            .arg(script)
            .arg(&csv)
            .output()?;
        if !output.status.success() {
            anyhow::bail!(
                "lightgbm_fit.py failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        let theirs = report["fit_seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| LightGBM {} | {} | 300 × 31 | {theirs:.3} | {:.4} |",
            report["version"].as_str().unwrap_or("?"),
            report["train_rows"],
            report["holdout_roc_auc"].as_f64().unwrap_or(f64::NAN)
        );
        println!("\nfit time ratio churn / LightGBM = {:.2}", ours / theirs);
    } else {
        println!(
            "\n(set CHURN_BENCH_PYTHON to a Python with lightgbm to time LightGBM on the same file)"
        );
    }
    Ok(())
}
