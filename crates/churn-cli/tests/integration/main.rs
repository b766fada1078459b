//! The `churn` binary as a process: what only a real process shows (signals, environment
//! variables, exit codes). Everything else is tested in-process in `tests/e2e`.

mod serve_process;
