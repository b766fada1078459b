//! The `churn` binary as a process: what only a real process shows (signals, environment
//! variables, exit codes). Everything else is tested in-process in `tests/e2e`.

mod error_texts;
mod serve_process;
