//! The `churn` binary as a process: what only a real process shows (signals, environment
//! variables, exit codes). Everything else is tested in-process in `tests/e2e`.

mod dev_ca_and_tokens;
mod error_texts;
mod serve_process;
