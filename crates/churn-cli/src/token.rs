//! `churn token`: adds, revokes and lists the callers of a credentials file. A running server
//! reads the file again when it changes.

use std::path::PathBuf;

use anyhow::Context;
use churn_serve::auth::Role;
use churn_serve::auth::credentials::{self, CredentialsFile};

/// The credentials file when neither `--credentials` nor the variable names one.
pub const DEFAULT_CREDENTIALS_FILE: &str = "churn-credentials.toml";
/// The variable naming the credentials file.
pub const CREDENTIALS_ENV: &str = "CHURN_CREDENTIALS";

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenAction {
    /// Adds a caller with a new token and prints the token, once, on stdout (so
    /// `TOKEN=$(churn token add …)` works); the file keeps only its SHA-256 hash.
    Add {
        /// The caller's name: letters, digits, `.`, `_`, `-`, `@`.
        #[arg(long)]
        name: String,
        /// A role: scorer, agent, admin or metrics (repeatable).
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        #[command(flatten)]
        file: CredentialsArg,
    },
    /// Removes a caller; a running server refuses its token once it reads the file again.
    Revoke {
        /// The caller's name.
        name: String,
        #[command(flatten)]
        file: CredentialsArg,
    },
    /// Lists the callers and their roles (never their token hashes).
    List {
        #[command(flatten)]
        file: CredentialsArg,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct CredentialsArg {
    /// Credentials file [CHURN_CREDENTIALS; default churn-credentials.toml].
    #[arg(long = "credentials")]
    pub path: Option<PathBuf>,
}

impl CredentialsArg {
    /// Returns the file: the flag, else `CHURN_CREDENTIALS`, else the default in the working
    /// folder.
    pub fn resolve(&self) -> PathBuf {
        self.path
            .clone()
            .or_else(|| std::env::var_os(CREDENTIALS_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CREDENTIALS_FILE))
    }
}

/// Runs `churn token`: what scripts read goes to `out` (the new token, the list), notes for the
/// person at the terminal to `notes`.
pub fn token(
    args: TokenArgs,
    out: &mut impl std::io::Write,
    notes: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    match args.action {
        TokenAction::Add { name, roles, file } => {
            let path = file.resolve();
            let token = credentials::add_caller(&path, &name, &roles)
                .map_err(anyhow::Error::msg)
                .context("cannot add the caller")?;
            writeln!(out, "{token}")?;
            let roles: Vec<&str> = roles.iter().map(|role| role.name()).collect();
            writeln!(
                notes,
                "added caller `{name}` ({}) to `{}`. The token above is shown this once; \
                 give it to the client as CHURN_TOKEN or in a --token-file. A running server \
                 accepts it once it has read the file again.",
                roles.join(", "),
                path.display()
            )?;
        }
        TokenAction::Revoke { name, file } => {
            let path = file.resolve();
            credentials::revoke_caller(&path, &name)
                .map_err(anyhow::Error::msg)
                .context("cannot revoke the caller")?;
            writeln!(
                notes,
                "revoked caller `{name}` in `{}`; a running server refuses its token once it \
                 has read the file again",
                path.display()
            )?;
        }
        TokenAction::List { file } => {
            let path = file.resolve();
            if !path.exists() {
                anyhow::bail!(
                    "no credentials file `{}` (`churn token add` creates it)",
                    path.display()
                );
            }
            let file = CredentialsFile::read_or_empty(&path).map_err(anyhow::Error::msg)?;
            write_callers(&file, out)?;
        }
    }
    Ok(())
}

/// Writes one line per caller: name, roles, and how it signs in.
fn write_callers(file: &CredentialsFile, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let width = file
        .callers
        .iter()
        .map(|entry| entry.name.chars().count())
        .max()
        .unwrap_or(0);
    for entry in &file.callers {
        let how = if entry.token_sha256.is_some() {
            "token"
        } else {
            "client certificate only"
        };
        writeln!(
            out,
            "{:width$}  {}  ({how})",
            entry.name,
            entry.roles.join(","),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn run(args: &[&str]) -> anyhow::Result<(String, String)> {
        let cli = crate::Cli::try_parse_from(std::iter::once("churn").chain(args.iter().copied()))?;
        let crate::Command::Token(token_args) = cli.command else {
            anyhow::bail!("not a token command");
        };
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        token(token_args, &mut out, &mut notes)?;
        Ok((String::from_utf8(out)?, String::from_utf8(notes)?))
    }

    #[test]
    fn add_prints_only_the_token_and_list_never_shows_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let file = path.to_str().unwrap();
        let (out, notes) = run(&[
            "token",
            "add",
            "--name",
            "crm",
            "--role",
            "scorer",
            "--credentials",
            file,
        ])
        .unwrap();
        let token = out.strip_suffix('\n').unwrap();
        assert!(token.starts_with("churn_") && !token.contains(char::is_whitespace));
        assert!(notes.contains("added caller `crm` (scorer)"), "{notes}");
        run(&[
            "token",
            "add",
            "--name",
            "ops",
            "--role",
            "admin",
            "--role",
            "agent",
            "--credentials",
            file,
        ])
        .unwrap();
        let (list, _) = run(&["token", "list", "--credentials", file]).unwrap();
        assert_eq!(list, "crm  scorer  (token)\nops  agent,admin  (token)\n");
        let hash = churn_serve::auth::credentials::token_sha256(token);
        assert!(!list.contains(&hash));

        run(&["token", "revoke", "crm", "--credentials", file]).unwrap();
        let (list, _) = run(&["token", "list", "--credentials", file]).unwrap();
        assert_eq!(list, "ops  agent,admin  (token)\n");
        let error = run(&["token", "revoke", "crm", "--credentials", file]).unwrap_err();
        assert!(
            format!("{error:#}").contains("no caller `crm`"),
            "{error:#}"
        );
    }

    #[test]
    fn roles_are_checked_when_parsing() {
        let error = run(&["token", "add", "--name", "crm", "--role", "root"]).unwrap_err();
        assert!(error.to_string().contains("unknown role `root`"), "{error}");
        assert!(run(&["token", "add", "--name", "crm"]).is_err());
    }

    #[test]
    fn listing_a_missing_file_says_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("none.toml");
        let error = run(&["token", "list", "--credentials", file.to_str().unwrap()]).unwrap_err();
        assert!(
            error.to_string().contains("`churn token add` creates it"),
            "{error}"
        );
    }
}
