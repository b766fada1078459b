//! End-to-end tests: one binary, modules by theme (keeps link time down).

mod alerts;
mod artifact_compat;
mod bad_input;
mod browser;
mod console;
mod docs;
mod events;
mod gbdt;
mod parquet;
mod rescore;
mod security;
mod serve;
mod shipped_model;
mod train_and_score;

use std::path::{Path, PathBuf};

use churn_train::TrainConfig;

/// Writes `content` to `name` inside `dir` and returns the path.
pub fn write_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write fixture");
    path
}

/// A training configuration for the Telco sample fixture.
pub fn sample_config() -> TrainConfig {
    let mut config = TrainConfig::new(churn_e2e::fixture("telco-sample.csv"), "Churn".to_string());
    config.id = Some("customerID".to_string());
    config.seed = 7;
    config
}

/// Runs `churn score` in-process; returns the exit code's success and stdout lines.
pub fn run_score(model: &Path, data: &Path) -> anyhow::Result<(bool, Vec<serde_json::Value>)> {
    let mut stdout = Vec::new();
    let code = churn_cli::score(
        churn_cli::ScoreArgs {
            model: model.to_path_buf(),
            data: data.to_path_buf(),
            top: 5,
        },
        &mut stdout,
    )?;
    let lines = String::from_utf8(stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((code == std::process::ExitCode::SUCCESS, lines))
}
