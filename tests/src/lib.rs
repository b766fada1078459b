//! End-to-end tests of churn live in `e2e/` (one test binary): they train on fixtures, write and
//! reload artifacts, and score through the same functions the `churn` command runs.

use std::path::PathBuf;

/// Returns the path of the repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Returns the path of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}
