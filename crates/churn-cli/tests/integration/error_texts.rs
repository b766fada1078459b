//! The exact words a user reads when a first step goes wrong: each message names the file it is
//! about and says its cause once (issue 32: `churn serve` from another folder printed "No such
//! file or directory (os error 2)" twice).

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Runs `churn` in `folder` and returns its exit code and its `error:` line.
fn error_line(folder: &Path, args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_churn"))
        .current_dir(folder)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()?;
    let stderr = String::from_utf8(output.stderr)?;
    let line = stderr
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"))
        .to_string();
    Ok((output.status.code(), line))
}

#[test]
fn serve_from_another_folder_names_the_model_folder_and_where_it_looked() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let folder_path = folder.path().canonicalize()?;
    let (code, line) = error_line(
        &folder_path,
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ],
    )?;
    assert_eq!(code, Some(2));
    // Before issue 32: "cannot read model `models/telco`: No such file or directory (os error 2):
    // No such file or directory (os error 2)".
    assert_eq!(
        line,
        format!(
            "error: cannot read model `models/telco` (in {}): No such file or directory (os error 2)",
            folder_path.display()
        )
    );
    Ok(())
}

#[test]
fn score_names_an_unreadable_csv_once() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let model = repo_root().join("models/telco");
    let missing = folder.path().join("customers.csv");
    let (code, line) = error_line(
        folder.path(),
        &[
            "score",
            "--model",
            model.to_str().expect("a UTF-8 path"),
            "--data",
            missing.to_str().expect("a UTF-8 path"),
        ],
    )?;
    assert_eq!(code, Some(2));
    assert_eq!(
        line,
        EXPECTED_MISSING_CSV.replace("{file}", &missing.display().to_string())
    );
    Ok(())
}

#[test]
fn serve_names_an_alert_store_that_cannot_be_opened() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let model = repo_root().join("models/telco");
    // Not a SQLite file: a text file left where the store should be.
    let store = folder.path().join("alerts.sqlite");
    std::fs::write(
        &store,
        "these are not the alerts you are looking for\n".repeat(200),
    )?;
    let (code, line) = error_line(
        folder.path(),
        &[
            "serve",
            "--model",
            model.to_str().expect("a UTF-8 path"),
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--alerts-db",
            store.to_str().expect("a UTF-8 path"),
        ],
    )?;
    assert_eq!(code, Some(2));
    assert_eq!(
        line,
        EXPECTED_STORE.replace("{file}", &store.display().to_string())
    );
    Ok(())
}

// Before issue 32: "error: cannot read `FILE`: No such file or directory (os error 2): No such
// file or directory (os error 2)".
const EXPECTED_MISSING_CSV: &str =
    "error: cannot read `{file}`: No such file or directory (os error 2)";
// Before issue 32: "error: alert store `FILE`: file is not a database".
const EXPECTED_STORE: &str = "error: cannot open alert store `{file}`: file is not a database";
