//! The docs do not go stale (issue #32): every command in a ```` ```sh ```` block of `README.md`
//! and `docs/*.md` is run here, or checked as far as a test can without running it.
//!
//! - `cargo run [--release] -p churn-cli -- ARGS`: ARGS must parse as a `churn` command. `train`,
//!   `score`, `rescore`, `generate` and `profiles` then run in-process, in document order, with
//!   `/tmp/…` paths moved into a temporary folder and repository paths made absolute. `client`
//!   commands run against a server this test starts in-process on 127.0.0.1:0 (the shipped
//!   model, an alert store in the temporary folder), as `churn serve` with its defaults would.
//!   `token` and `tls` run in-process too. A trailing `> FILE` writes the command's standard
//!   output to FILE, as the shell would (a token printed by `churn token add`).
//!   Commands too heavy for a test only parse; [`PARSE_ONLY`] says which and why, and
//!   [`SHRUNK`] lists the flags given smaller values so that a command can run here.
//! - `cargo bench -p CRATE --bench NAME`: CRATE's `Cargo.toml` declares bench NAME, and its file
//!   is there.
//! - `grpcurl`: the service and method exist in `proto/churn/v1/churn.proto`, and so does every
//!   field and enum value of the request body.
//! - Anything else must be in [`NOT_RUN`] with the reason. A command the test cannot classify
//!   fails it, as does a command in a block not marked `sh`, so new docs cannot slip through.
//! - Every relative link between these pages leads to a file, and to a heading of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use churn_cli::{Cli, Command};
use churn_serve::{RunningServer, ServeOptions};
use clap::Parser;

/// `churn` commands that only parse here, by their leading arguments, and why.
const PARSE_ONLY: &[(&str, &str)] = &[
    (
        "serve",
        "runs until stopped; the `client` commands run against a server started in-process \
         instead, and tests/e2e/serve.rs covers serving",
    ),
    (
        "loadtest",
        "puts 60 s of load on a running server: a measurement, not a test",
    ),
    (
        "client --addr localhost:50051 --tls-ca",
        "needs a server with TLS on; the server this test starts speaks plain text",
    ),
    (
        "train --config models/telco/train.toml",
        "fits the shipped model on all 7,043 Telco rows with 5-fold CV of both kinds; \
         tests/e2e/shipped_model.rs runs this very command and checks its output byte for byte",
    ),
];

/// Flags given a smaller value so that a command runs in a test: (subcommand, flag, value, why).
const SHRUNK: &[(&str, &str, &str, &str)] = &[(
    "generate",
    "--customers",
    "1500",
    "20,000 customers take seconds in release but far longer in a debug test, and so does \
     training on their snapshots; the flags and the code path stay the same",
)];

/// Commands that are not `churn`, `cargo bench` or grpcurl, and why they are not run here.
const NOT_RUN: &[(&str, &str)] = &[(
    "tests/setup.sh && cargo test --workspace --locked",
    "the test command itself: `.ci/run` checks that README.md shows it and runs it",
)];

const PROTO: &str = "proto/churn/v1/churn.proto";

/// One command of a ```` ```sh ```` block, continuation lines joined and comments removed.
#[derive(Debug, Clone)]
struct DocCommand {
    file: String,
    line: usize,
    text: String,
}

impl std::fmt::Display for DocCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: `{}`", self.file, self.line, self.text)
    }
}

/// The markdown files whose commands are checked: README.md, then docs/*.md by name.
fn doc_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![root.join("README.md")];
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    files.extend(docs);
    Ok(files)
}

/// Returns the commands of every ```` ```sh ```` block of `text`, or why the file is refused:
/// a block marked with another shell's name, or a command in a block not marked `sh`.
fn sh_commands(file: &str, text: &str) -> Result<Vec<DocCommand>, String> {
    let mut commands = Vec::new();
    let mut block: Option<String> = None;
    let mut pending: Option<DocCommand> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            match block.take() {
                Some(_) => {
                    if let Some(command) = pending.take() {
                        return Err(format!("{command}: the block ends after a `\\`"));
                    }
                }
                None => {
                    let language = fence.trim().to_string();
                    if ["bash", "shell", "console", "zsh", "shell-session"]
                        .contains(&language.as_str())
                    {
                        return Err(format!(
                            "{file}:{number}: mark command blocks ```sh, not ```{language}"
                        ));
                    }
                    block = Some(language);
                }
            }
            continue;
        }
        match block.as_deref() {
            Some("sh") => {}
            Some(_) => {
                let starts_like_a_command = ["cargo ", "churn ", "grpcurl ", "curl ", "$ "]
                    .iter()
                    .any(|start| trimmed.starts_with(start));
                if starts_like_a_command {
                    return Err(format!(
                        "{file}:{number}: a command in a block not marked ```sh: `{trimmed}`"
                    ));
                }
                continue;
            }
            None => continue,
        }
        let code = strip_comment(line);
        let (code, continues) = match code.trim_end().strip_suffix('\\') {
            Some(code) => (code.to_string(), true),
            None => (code.to_string(), false),
        };
        let mut command = pending.take().unwrap_or(DocCommand {
            file: file.to_string(),
            line: number,
            text: String::new(),
        });
        if !command.text.is_empty() {
            command.text.push(' ');
        }
        command.text.push_str(code.trim());
        if continues {
            pending = Some(command);
        } else if !command.text.is_empty() {
            command.text = command
                .text
                .trim_end_matches('&')
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            commands.push(command);
        }
    }
    if block.is_some() {
        return Err(format!("{file}: a ``` block is never closed"));
    }
    Ok(commands)
}

/// Removes a `#` comment (at the start of the line or after a space, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, character) in line.char_indices() {
        match (quote, character) {
            (None, '\'' | '"') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = character;
    }
    line
}

/// Splits a command into words as a POSIX shell would, for the quoting the docs use.
fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        match character {
            ' ' | '\t' => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' | '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match characters.next() {
                        Some(end) if end == character => break,
                        Some(inner) => current.push(inner),
                        None => return Err(format!("unclosed {character} in `{text}`")),
                    }
                }
            }
            '\\' => {
                if let Some(escaped) = characters.next() {
                    word.get_or_insert_with(String::new).push(escaped);
                }
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Everything the run of the docs' commands shares: their temporary folder, the server the
/// `client` commands call, and which entries of the tables above were used.
struct Run {
    root: PathBuf,
    tmp: tempfile::TempDir,
    server: Option<(tokio::runtime::Runtime, RunningServer)>,
    ran: BTreeSet<String>,
    parse_only_used: BTreeSet<&'static str>,
    shrunk_used: BTreeSet<&'static str>,
    not_run_used: BTreeSet<&'static str>,
    proto: Proto,
    report: Vec<String>,
}

impl Run {
    fn check(&mut self, command: &DocCommand) -> anyhow::Result<()> {
        if let Some((known, _)) = NOT_RUN.iter().find(|(known, _)| *known == command.text) {
            self.not_run_used.insert(*known);
            self.report.push(format!("not run    {command}"));
            return Ok(());
        }
        let words = shell_words(&command.text).map_err(anyhow::Error::msg)?;
        let env = words
            .iter()
            .take_while(|word| is_env_assignment(word))
            .count();
        let program: Vec<&str> = words[env..].iter().map(String::as_str).collect();
        match program.as_slice() {
            ["cargo", "run", rest @ ..] if env == 0 => self.check_cargo_run(command, rest),
            ["cargo", "bench", rest @ ..] => self.check_bench(command, rest),
            ["grpcurl", rest @ ..] if env == 0 => {
                self.proto.check_grpcurl(rest)?;
                self.report.push(format!("proto      {command}"));
                Ok(())
            }
            _ => anyhow::bail!(
                "{command}: not a command this test knows; run it in a test, or teach \
                 tests/e2e/docs.rs about it (NOT_RUN needs a reason)"
            ),
        }
    }

    fn check_cargo_run(&mut self, command: &DocCommand, words: &[&str]) -> anyhow::Result<()> {
        let Some(split) = words.iter().position(|word| *word == "--") else {
            anyhow::bail!("{command}: no `--` before the `churn` arguments");
        };
        let mut cargo_words = words[..split].iter();
        let mut package = None;
        while let Some(word) = cargo_words.next() {
            match *word {
                "--release" => {}
                "-p" | "--package" => package = cargo_words.next().copied(),
                other => anyhow::bail!("{command}: cargo flag `{other}` is not known here"),
            }
        }
        anyhow::ensure!(
            package == Some("churn-cli"),
            "{command}: runs a package other than churn-cli"
        );
        let mut args: Vec<String> = words[split + 1..]
            .iter()
            .map(|word| word.to_string())
            .collect();
        let stdout_file = match args.iter().position(|arg| arg == ">") {
            Some(at) if at + 2 == args.len() => {
                let file = args[at + 1].clone();
                args.truncate(at);
                Some(file)
            }
            Some(_) => anyhow::bail!("{command}: `>` is known here only before the last word"),
            None => None,
        };
        let written = args.join(" ");
        let parse_only = PARSE_ONLY
            .iter()
            .find(|(start, _)| written == *start || written.starts_with(&format!("{start} ")));
        for (subcommand, flag, value, _) in SHRUNK {
            if args.first().map(String::as_str) != Some(*subcommand) {
                continue;
            }
            if let Some(at) = args.iter().position(|arg| arg == *flag) {
                let slot = args
                    .get_mut(at + 1)
                    .ok_or_else(|| anyhow::anyhow!("{command}: `{flag}` without a value"))?;
                *slot = value.to_string();
                self.shrunk_used.insert(*flag);
            }
        }
        let local_args: Vec<String> = args.iter().map(|arg| self.local_path(arg)).collect();
        let cli = Cli::try_parse_from(
            std::iter::once("churn".to_string()).chain(local_args.iter().cloned()),
        )
        .map_err(|error| anyhow::anyhow!("{command}: does not parse:\n{error}"))?;
        if let Some((start, _)) = parse_only {
            self.parse_only_used.insert(*start);
            self.report.push(format!("parses     {command}"));
            return Ok(());
        }
        // The same command twice (README's tour and a page of docs/) runs once.
        if !self.ran.insert(local_args.join(" ")) {
            self.report.push(format!("ran above  {command}"));
            return Ok(());
        }
        let mut out = Vec::new();
        let code = match cli.command {
            Command::Score(score) => churn_cli::score(score, &mut out),
            Command::Rescore(rescore) => churn_cli::rescore::rescore(rescore, &mut out),
            Command::Generate(generate) => {
                churn_cli::events::generate(generate, &mut out).map(|()| ExitCode::SUCCESS)
            }
            Command::Profiles(profiles) => {
                churn_cli::events::profiles(profiles, &mut out).map(|()| ExitCode::SUCCESS)
            }
            Command::Client(mut client) => {
                client.connection.addr = self.server_url()?;
                churn_cli::client::client(client, &mut out).map(|()| ExitCode::SUCCESS)
            }
            Command::Token(token) => churn_cli::token::token(token, &mut out, &mut std::io::sink())
                .map(|()| ExitCode::SUCCESS),
            Command::Tls(tls) => {
                churn_cli::tls::tls(tls, &mut out, &mut std::io::sink()).map(|()| ExitCode::SUCCESS)
            }
            command @ Command::Train(_) => churn_cli::run(Cli { command }),
            Command::Serve(_) | Command::Loadtest(_) => {
                anyhow::bail!("{command}: runs until stopped; list it in PARSE_ONLY with why")
            }
        }
        .map_err(|error| anyhow::anyhow!("{command}: failed: {error:#}"))?;
        anyhow::ensure!(
            code == ExitCode::SUCCESS,
            "{command}: exit code {code:?}; output:\n{}",
            String::from_utf8_lossy(&out)
        );
        if let Some(file) = stdout_file {
            std::fs::write(self.local_path(&file), &out)
                .map_err(|error| anyhow::anyhow!("{command}: cannot write `{file}`: {error}"))?;
        }
        self.report.push(format!("ran        {command}"));
        Ok(())
    }

    /// Moves `/tmp/…` into the test's folder and makes repository paths absolute (tests run in
    /// `tests/`, the docs' commands at the repository root).
    fn local_path(&self, arg: &str) -> String {
        if let Some(rest) = arg.strip_prefix("/tmp/") {
            return self.tmp.path().join(rest).to_string_lossy().into_owned();
        }
        if !arg.starts_with('-') && !arg.contains('=') && self.root.join(arg).exists() {
            return self.root.join(arg).to_string_lossy().into_owned();
        }
        arg.to_string()
    }

    /// Starts, once, the server `churn serve` would start with its defaults, but on free ports
    /// and with its alert store in the test's folder.
    fn server_url(&mut self) -> anyhow::Result<String> {
        if self.server.is_none() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let options = ServeOptions {
                alerts_db: Some(self.tmp.path().join("churn-alerts.sqlite")),
                ..ServeOptions::default()
            };
            let server = runtime.block_on(crate::serve::start(
                &self.root.join("models/telco"),
                options,
            ))?;
            self.server = Some((runtime, server));
        }
        let (_, server) = self
            .server
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no server"))?;
        Ok(format!("http://{}", server.grpc_addr()))
    }

    fn check_bench(&mut self, command: &DocCommand, words: &[&str]) -> anyhow::Result<()> {
        let (krate, bench) = match words {
            ["-p", krate, "--bench", bench, rest @ ..]
                if rest.first().is_none_or(|w| *w == "--") =>
            {
                (*krate, *bench)
            }
            _ => anyhow::bail!("{command}: expected `cargo bench -p CRATE --bench NAME [-- ARGS]`"),
        };
        let manifest = self.root.join("crates").join(krate).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|error| anyhow::anyhow!("{command}: no crate `{krate}`: {error}"))?;
        anyhow::ensure!(
            declared_benches(&text).contains(bench),
            "{command}: `{}` declares no [[bench]] `{bench}`",
            manifest.display()
        );
        let file = self
            .root
            .join("crates")
            .join(krate)
            .join("benches")
            .join(format!("{bench}.rs"));
        anyhow::ensure!(file.is_file(), "{command}: no `{}`", file.display());
        self.report.push(format!("bench      {command}"));
        Ok(())
    }
}

fn is_env_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|character| character.is_ascii_uppercase() || character == '_')
    })
}

/// The names of a manifest's `[[bench]]` targets.
fn declared_benches(manifest: &str) -> BTreeSet<String> {
    let mut benches = BTreeSet::new();
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if in_bench && let Some(value) = line.strip_prefix("name") {
            let name = value.trim_start().trim_start_matches('=').trim();
            benches.insert(name.trim_matches('"').to_string());
        }
    }
    benches
}

/// What grpcurl lines can name: services and their methods, messages and their fields, enums.
#[derive(Debug, Default)]
struct Proto {
    package: String,
    /// service → method → request message
    services: BTreeMap<String, BTreeMap<String, String>>,
    /// message → field → type
    messages: BTreeMap<String, BTreeMap<String, String>>,
    /// enum → values
    enums: BTreeMap<String, BTreeSet<String>>,
}

impl Proto {
    /// Reads the declarations of a proto3 file without nested messages (ours has none).
    fn parse(text: &str) -> Proto {
        let mut proto = Proto::default();
        let mut stack: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let line = line.split("//").next().unwrap_or_default().trim();
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(package) = line.strip_prefix("package ") {
                proto.package = package.trim_end_matches(';').trim().to_string();
            } else if (line.ends_with('{') || line.ends_with("{}")) && words.len() >= 2 {
                let name = words[1]
                    .trim_end_matches("{}")
                    .trim_end_matches('{')
                    .to_string();
                if words[0] == "message" {
                    proto.messages.entry(name.clone()).or_default();
                }
                stack.push((words[0].to_string(), name));
                if line.ends_with("{}") {
                    stack.pop();
                }
            } else if line.starts_with('}') {
                stack.pop();
            } else if let Some(rpc) = line.strip_prefix("rpc ") {
                let service = stack
                    .last()
                    .map(|(_, name)| name.clone())
                    .unwrap_or_default();
                let (method, request) = rpc.split_once('(').unwrap_or_default();
                let request = request.split(')').next().unwrap_or_default();
                let request = request.trim_start_matches("stream ").trim().to_string();
                proto
                    .services
                    .entry(service)
                    .or_default()
                    .insert(method.trim().to_string(), request);
            } else if let Some((declaration, _)) = line.split_once('=') {
                let message = stack
                    .iter()
                    .rev()
                    .find(|(kind, _)| kind != "oneof")
                    .cloned();
                match message {
                    Some((kind, name)) if kind == "enum" => {
                        proto
                            .enums
                            .entry(name)
                            .or_default()
                            .insert(declaration.trim().to_string());
                    }
                    Some((kind, name)) if kind == "message" => {
                        let declaration = declaration
                            .trim()
                            .trim_start_matches("repeated ")
                            .trim_start_matches("optional ");
                        if let Some((kind, field)) = declaration.rsplit_once(' ') {
                            proto
                                .messages
                                .entry(name)
                                .or_default()
                                .insert(field.to_string(), kind.trim().to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        proto
    }

    /// Checks `grpcurl [-plaintext] [-cacert|-cert|-key FILE] [-H HEADER] [-d JSON] HOST:PORT
    /// (list | describe SYMBOL | SERVICE/METHOD)`.
    fn check_grpcurl(&self, words: &[&str]) -> anyhow::Result<()> {
        let mut body = None;
        let mut rest = Vec::new();
        let mut words = words.iter();
        while let Some(word) = words.next() {
            match *word {
                "-plaintext" => {}
                "-cacert" | "-cert" | "-key" | "-H" => {
                    words
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("grpcurl `{word}` without a value"))?;
                }
                "-d" => body = words.next().copied(),
                other if other.starts_with('-') => {
                    anyhow::bail!("grpcurl flag `{other}` is not known here")
                }
                other => rest.push(other),
            }
        }
        match rest.as_slice() {
            [_host, "list"] => Ok(()),
            [_host, "describe", symbol] => {
                let name = self.local_name(symbol)?;
                anyhow::ensure!(
                    self.services.contains_key(name) || self.messages.contains_key(name),
                    "no service or message `{symbol}` in {PROTO}"
                );
                Ok(())
            }
            [_host, call] => {
                let (service, method) = call
                    .split_once('/')
                    .ok_or_else(|| anyhow::anyhow!("`{call}`: expected SERVICE/METHOD"))?;
                let methods = self
                    .services
                    .get(self.local_name(service)?)
                    .ok_or_else(|| anyhow::anyhow!("no service `{service}` in {PROTO}"))?;
                let request = methods
                    .get(method)
                    .ok_or_else(|| anyhow::anyhow!("no method `{method}` in `{service}`"))?;
                if let Some(body) = body {
                    let json: serde_json::Value = serde_json::from_str(body)
                        .map_err(|error| anyhow::anyhow!("-d is not JSON: {error}"))?;
                    self.check_json(request, &json)?;
                }
                Ok(())
            }
            _ => anyhow::bail!("expected HOST:PORT then list, describe SYMBOL or SERVICE/METHOD"),
        }
    }

    fn local_name<'a>(&self, symbol: &'a str) -> anyhow::Result<&'a str> {
        symbol
            .strip_prefix(&format!("{}.", self.package))
            .ok_or_else(|| anyhow::anyhow!("`{symbol}` is not in package `{}`", self.package))
    }

    /// Checks a JSON value against a proto type: fields of messages, values of enums.
    fn check_json(&self, kind: &str, json: &serde_json::Value) -> anyhow::Result<()> {
        if let Some(map) = kind.strip_prefix("map<") {
            let value_kind = map
                .trim_end_matches('>')
                .split_once(',')
                .map(|(_, value)| value.trim())
                .unwrap_or_default();
            let object = json
                .as_object()
                .ok_or_else(|| anyhow::anyhow!("`{kind}` needs a JSON object, not {json}"))?;
            for value in object.values() {
                self.check_json(value_kind, value)?;
            }
        } else if let Some(fields) = self.messages.get(kind) {
            let object = json
                .as_object()
                .ok_or_else(|| anyhow::anyhow!("message `{kind}` needs a JSON object"))?;
            for (key, value) in object {
                let field_kind = fields
                    .iter()
                    .find(|(field, _)| *field == key || lower_camel(field) == *key)
                    .map(|(_, field_kind)| field_kind)
                    .ok_or_else(|| anyhow::anyhow!("message `{kind}` has no field `{key}`"))?;
                self.check_json(field_kind, value)?;
            }
        } else if let Some(values) = self.enums.get(kind) {
            let value = json.as_str().unwrap_or_default();
            anyhow::ensure!(
                values.contains(value),
                "enum `{kind}` has no value `{json}`"
            );
        }
        Ok(())
    }
}

/// The JSON name protobuf gives a field: `customer_id` → `customerId`.
fn lower_camel(field: &str) -> String {
    let mut name = String::new();
    let mut upper = false;
    for character in field.chars() {
        if character == '_' {
            upper = true;
        } else if upper {
            name.extend(character.to_uppercase());
            upper = false;
        } else {
            name.push(character);
        }
    }
    name
}

#[test]
fn every_command_in_readme_and_docs_runs_or_is_checked() -> anyhow::Result<()> {
    let root = churn_e2e::repo_root();
    let mut commands = Vec::new();
    for path in doc_files(&root)? {
        let text = std::fs::read_to_string(&path)?;
        let name = path.strip_prefix(&root)?.display().to_string();
        commands.extend(sh_commands(&name, &text).map_err(anyhow::Error::msg)?);
    }
    assert!(
        commands.len() >= 20,
        "only {} commands found in README.md and docs/",
        commands.len()
    );
    let mut run = Run {
        proto: Proto::parse(&std::fs::read_to_string(root.join(PROTO))?),
        root,
        tmp: tempfile::tempdir()?,
        server: None,
        ran: BTreeSet::new(),
        parse_only_used: BTreeSet::new(),
        shrunk_used: BTreeSet::new(),
        not_run_used: BTreeSet::new(),
        report: Vec::new(),
    };
    let mut failures = Vec::new();
    for command in &commands {
        if let Err(error) = run.check(command) {
            failures.push(format!("{error:#}"));
        }
    }
    if let Some((runtime, server)) = run.server.take() {
        runtime.block_on(server.shutdown())?;
    }
    let stale = |table: &[&'static str], used: &BTreeSet<&'static str>| {
        table
            .iter()
            .filter(|entry| !used.contains(*entry))
            .map(|entry| format!("`{entry}` matches no command in the docs any more: remove it"))
            .collect::<Vec<_>>()
    };
    let parse_only: Vec<&str> = PARSE_ONLY.iter().map(|(start, _)| *start).collect();
    let shrunk: Vec<&str> = SHRUNK.iter().map(|(_, flag, _, _)| *flag).collect();
    let not_run: Vec<&str> = NOT_RUN.iter().map(|(text, _)| *text).collect();
    failures.extend(stale(&parse_only, &run.parse_only_used));
    failures.extend(stale(&shrunk, &run.shrunk_used));
    failures.extend(stale(&not_run, &run.not_run_used));
    println!("{}", run.report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}

/// Returns the relative links of a markdown text (outside code blocks): (line, target).
fn relative_links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    let mut in_code = false;
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            let target = rest.split(')').next().unwrap_or_default();
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push((index + 1, target.to_string()));
            }
        }
    }
    links
}

/// The anchors GitHub gives a markdown file's headings: `## Agent console` → `agent-console`.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let heading = line.trim_start_matches('#').trim().to_lowercase();
            let anchor: String = heading
                .chars()
                .filter(|character| {
                    character.is_alphanumeric() || matches!(character, ' ' | '-' | '_')
                })
                .map(|character| if character == ' ' { '-' } else { character })
                .collect();
            anchors.insert(anchor);
        }
    }
    anchors
}

#[test]
fn every_link_between_readme_and_docs_leads_somewhere() -> anyhow::Result<()> {
    let root = churn_e2e::repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for path in doc_files(&root)? {
        let text = std::fs::read_to_string(&path)?;
        let folder = path.parent().unwrap_or(&root);
        for (line, target) in relative_links(&text) {
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let linked = if file.is_empty() {
                path.clone()
            } else {
                folder.join(file)
            };
            let name = path.strip_prefix(&root).unwrap_or(&path).display();
            let at = format!("{name}:{line}: `{target}`");
            if !linked.exists() {
                broken.push(format!("{at}: no such file"));
            } else if !anchor.is_empty()
                && !heading_anchors(&std::fs::read_to_string(&linked)?).contains(anchor)
            {
                broken.push(format!("{at}: no heading with that anchor"));
            }
        }
    }
    assert!(checked >= 10, "only {checked} links found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    Ok(())
}

#[test]
fn a_command_outside_a_sh_block_is_refused() {
    let error = sh_commands("x.md", "```\ncargo run -p churn-cli -- score\n```\n")
        .expect_err("an unmarked block holding a command");
    assert!(error.contains("x.md:2"), "{error}");
    let error = sh_commands("x.md", "```bash\nls\n```\n").expect_err("a bash block");
    assert!(error.contains("```sh"), "{error}");
    let commands = sh_commands("x.md", "```json\n{\"churn \": 1}\n```\n").expect("json");
    assert!(commands.is_empty());
}

#[test]
fn sh_blocks_join_continuations_and_drop_comments() {
    let text = "```sh\n# a comment\ncargo run -p churn-cli -- train --data a.csv \\\n    --out /tmp/m  # why\nserve &\n```\n";
    let commands = sh_commands("x.md", text).expect("commands");
    let texts: Vec<&str> = commands
        .iter()
        .map(|command| command.text.as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "cargo run -p churn-cli -- train --data a.csv --out /tmp/m",
            "serve"
        ]
    );
    assert_eq!(commands[0].line, 3);
    assert_eq!(
        shell_words(r#"grpcurl -d '{"a": "b c"}' x"#).expect("words"),
        ["grpcurl", "-d", r#"{"a": "b c"}"#, "x"]
    );
}

#[test]
fn grpcurl_lines_are_checked_against_the_proto() {
    let proto =
        Proto::parse(&std::fs::read_to_string(churn_e2e::repo_root().join(PROTO)).expect("proto"));
    let check = |line: &str| {
        let words = shell_words(line).expect("words");
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        proto.check_grpcurl(&words[1..])
    };
    check("grpcurl -plaintext localhost:50051 churn.v1.ChurnService/Score").expect("Score");
    assert!(check("grpcurl -plaintext localhost:50051 churn.v1.ChurnService/Scores").is_err());
    assert!(check("grpcurl -plaintext localhost:50051 describe churn.v1.NoService").is_err());
    assert!(check(r#"grpcurl -d '{"alert_id": "1", "outcome": "RETAINED"}' h:1 churn.v1.AlertService/ResolveAlert"#).is_err());
    assert!(check(r#"grpcurl -d '{"alertid": "1"}' h:1 churn.v1.AlertService/GetAlert"#).is_err());
    check(r#"grpcurl -d '{"profile": {"customerId": "c", "features": {"x": {"number": 1}}}}' h:1 churn.v1.ChurnService/Explain"#)
        .expect("Explain");
}
