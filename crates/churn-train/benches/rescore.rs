//! Batch rescoring of `N` customers (default 1,000,000 Telco rows resampled with noise, seed 7),
//! printed as tables: wall time, rows/s and peak RSS of the rescoring pipeline for the shipped
//! tree model and a logistic model, from CSV and from Parquet; then the per-row cost of the exact
//! reasons alone, single-threaded, against LightGBM's `predict(pred_contrib=True)` on the same
//! rows when `CHURN_BENCH_PYTHON` names a Python with lightgbm and pandas.
//!
//! Each pipeline run is a child process (this bench run again with `--child`), so its peak RSS
//! (`VmHWM`) is its own and not the generator's.
//!
//! `CHURN_BENCH_PYTHON=/tmp/refenv/bin/python cargo bench -p churn-train --bench rescore -- 1000000`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use churn_core::{ModelArtifact, Scorer};
use churn_data::{OutputFormat, RescoreOptions};
use churn_train::{ModelChoice, TrainConfig};
use polars::prelude::*;

mod common;
use common::{resample_telco, telco_csv};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(position) = args.iter().position(|arg| arg == "--child") {
        return child(&args[position + 1..]);
    }
    let rows: usize = args
        .iter()
        .find_map(|argument| argument.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("customers.csv");
    let started = Instant::now();
    resample_telco(rows, &csv)?;
    let parquet = dir.path().join("customers.parquet");
    let mut frame = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(csv.clone()))?
        .finish()?;
    ParquetWriter::new(std::fs::File::create(&parquet)?).finish(&mut frame)?;
    drop(frame);
    eprintln!(
        "wrote {rows} rows as CSV and Parquet in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/telco");
    let logistic = dir.path().join("logistic");
    let mut config = TrainConfig::new(telco_csv(), "Churn".into());
    config.id = Some("customerID".into());
    config.positive = Some("Yes".into());
    config.model = ModelChoice::Logistic;
    churn_train::train(&config, "telco-logistic")?.write(&logistic)?;

    if cfg!(debug_assertions) {
        println!("(built with debug assertions: run `cargo bench` for release numbers)\n");
    }
    println!("| model | input | threads | rows scored | wall s | rows/s | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|");
    let runs = [
        ("shipped gbdt", &shipped, &csv, 2),
        ("shipped gbdt", &shipped, &parquet, 2),
        ("logistic", &logistic, &csv, 2),
        ("logistic", &logistic, &parquet, 2),
        ("shipped gbdt", &shipped, &csv, 1),
    ];
    for (name, model, input, threads) in runs {
        let output = dir.path().join("scores.parquet");
        let report = Command::new(std::env::current_exe()?)
            .arg("--child")
            .args([model.as_os_str(), input.as_os_str(), output.as_os_str()])
            .arg(threads.to_string())
            .output()?;
        anyhow::ensure!(
            report.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&report.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&report.stdout)?;
        let seconds = report["seconds"].as_f64().unwrap_or(f64::NAN);
        let scored = report["rows_scored"].as_u64().unwrap_or(0);
        println!(
            "| {name} | {} | {threads} | {scored} | {seconds:.2} | {:.0} | {:.0} |",
            input
                .extension()
                .map(|e| e.to_string_lossy())
                .unwrap_or_default(),
            scored as f64 / seconds,
            report["peak_rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0
        );
    }

    // The reasons alone, one thread, rows already in memory: what LightGBM's pred_contrib does.
    let artifact = load(&shipped)?;
    let churn_core::Model::Gbdt(ensemble) = &artifact.model else {
        anyhow::bail!("the shipped model is not a tree model");
    };
    let trees = ensemble.trees.len();
    let leaves = ensemble
        .trees
        .iter()
        .map(|tree| tree.left.iter().filter(|&&left| left == 0).count())
        .max()
        .unwrap_or(0);
    let learning_rate = artifact.metadata.params["gbdt"]["learning_rate"]
        .as_f64()
        .unwrap_or(0.05);
    let scorer = Scorer::new(artifact)?;
    let sample = rows.min(200_000);
    let table = churn_data::read_table(&csv)?;
    let columns = scorer
        .artifact()
        .schema
        .features
        .iter()
        .map(|feature| table.column_index(&feature.name))
        .collect::<churn_data::Result<Vec<_>>>()?;
    let start = Instant::now();
    let mut checksum = 0.0;
    for row in 0..sample {
        let top = scorer.explain_values_top(
            |feature| Some(table.columns[columns[feature]].cells.value(row)),
            5,
        )?;
        checksum += top.probability + (top.raising.len() + top.lowering.len()) as f64;
    }
    let ours = start.elapsed().as_secs_f64() / sample as f64;
    println!(
        "\n| per row, one thread, in memory | shipped model: {trees} trees, up to {leaves} leaves | µs |"
    );
    println!("|---|---|---|");
    println!(
        "| churn: probability + exact reasons, top 5 each way | {sample} rows | {:.2} |",
        ours * 1e6
    );
    std::hint::black_box(checksum);
    match std::env::var("CHURN_BENCH_PYTHON") {
        Ok(python) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/lightgbm_contrib.py");
            let output = Command::new(python)
                .arg(script)
                .arg(telco_csv())
                .arg(&csv)
                .args([
                    trees.to_string(),
                    leaves.to_string(),
                    learning_rate.to_string(),
                ])
                .output()?;
            anyhow::ensure!(
                output.status.success(),
                "lightgbm_contrib.py failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let theirs_rows = report["rows"].as_f64().unwrap_or(f64::NAN);
            let contrib = report["contrib_seconds"].as_f64().unwrap_or(f64::NAN) / theirs_rows;
            let predict = report["predict_seconds"].as_f64().unwrap_or(f64::NAN) / theirs_rows;
            println!(
                "| LightGBM {} predict(pred_contrib=True), {} trees | {theirs_rows} rows | {:.2} |",
                report["version"].as_str().unwrap_or("?"),
                report["trees"],
                contrib * 1e6
            );
            println!(
                "| LightGBM predict (probability only) | {theirs_rows} rows | {:.2} |",
                predict * 1e6
            );
            println!(
                "\nreasons per row: churn / LightGBM pred_contrib = {:.2}",
                ours / contrib
            );
        }
        Err(_) => println!(
            "\n(set CHURN_BENCH_PYTHON to a Python with lightgbm and pandas to time LightGBM on the same rows)"
        ),
    }
    Ok(())
}

fn load(model: &Path) -> anyhow::Result<ModelArtifact> {
    let json = std::fs::read_to_string(model.join("model.json"))?;
    Ok(ModelArtifact::from_json(&json)?)
}

/// One pipeline run: `MODEL INPUT OUTPUT THREADS`; prints seconds, rows and peak RSS as JSON.
fn child(args: &[String]) -> anyhow::Result<()> {
    let [model, input, output, threads] = args else {
        anyhow::bail!("--child needs MODEL INPUT OUTPUT THREADS");
    };
    let json = std::fs::read_to_string(Path::new(model).join("model.json"))?;
    let scorer = Scorer::new(ModelArtifact::from_json(&json)?)?;
    let output = PathBuf::from(output);
    let options = RescoreOptions {
        inputs: vec![PathBuf::from(input)],
        format: OutputFormat::from_path(&output)?,
        rejects: output.with_extension("rejects.csv"),
        output,
        top_k: 5,
        chunk_rows: churn_data::rescore::DEFAULT_CHUNK_ROWS,
        id_column: None,
        model_version: ModelArtifact::version_of(&json),
        scored_at: SystemTime::now(),
        alerts: None,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.parse()?)
        .build()?;
    let start = Instant::now();
    let summary = pool.install(|| churn_data::rescore(&scorer, &options, |_| {}))?;
    let seconds = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak_rss_kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "rows_scored": summary.rows_scored,
            "rows_rejected": summary.rows_rejected,
            "peak_rss_kb": peak_rss_kb,
        })
    );
    Ok(())
}
