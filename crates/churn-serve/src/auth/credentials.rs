//! The credentials file: who may call the server, with which roles, and the SHA-256 hash of each
//! caller's token. Tokens themselves are never stored: `churn token add` prints a new one once.
//!
//! ```toml
//! # Written by `churn token add`; tokens are stored only as SHA-256 hashes.
//! [[caller]]
//! name = "crm-prod"
//! roles = ["scorer"]
//! token_sha256 = "9f86d081884c7d65…"
//!
//! # No token: this caller is known only by the subject of its client certificate (mutual TLS).
//! [[caller]]
//! name = "batch.example.com"
//! roles = ["scorer", "agent"]
//! ```
//!
//! A token is 32 random bytes, so one SHA-256 is enough to store it safely: there is no password
//! to guess from a dictionary, and looking a hash up leaks nothing about the token.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Caller, RoleSet};

/// The prefix of every token `churn token add` prints, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "churn_";
/// Longest caller name accepted: it is written into every alert action and audit entry.
pub const MAX_CALLER_NAME_BYTES: usize = 128;

/// One `[[caller]]` entry as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerEntry {
    /// Who the caller is; recorded as `by` of its alert actions and in the audit log.
    pub name: String,
    /// `scorer`, `agent`, `admin`, `metrics`.
    pub roles: Vec<String>,
    /// Lower-case hex SHA-256 of the caller's token; absent for a caller known by its client
    /// certificate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

/// The file's whole content, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    /// The callers.
    #[serde(default, rename = "caller")]
    pub callers: Vec<CallerEntry>,
}

/// The callers of a credentials file, checked and indexed for lookups on every request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_token_hash: HashMap<[u8; 32], Caller>,
    by_name: HashMap<String, Caller>,
}

impl Credentials {
    /// Reads and checks a credentials file; the error names the caller and field at fault.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
        Self::parse(&text)
    }

    /// Parses and checks the text of a credentials file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: CredentialsFile = toml::from_str(text).map_err(|error| error.to_string())?;
        Self::from_file(&file)
    }

    /// Checks and indexes parsed entries: names unique and well formed, roles known, hashes 64
    /// hex digits and unique.
    pub fn from_file(file: &CredentialsFile) -> Result<Self, String> {
        let mut credentials = Credentials::default();
        for entry in &file.callers {
            check_caller_name(&entry.name)?;
            let mut roles = RoleSet::default();
            for role in &entry.roles {
                roles.insert(
                    role.parse()
                        .map_err(|reason: String| format!("caller `{}`: {reason}", entry.name))?,
                );
            }
            if roles.is_empty() {
                return Err(format!("caller `{}` has no roles", entry.name));
            }
            let caller = Caller::new(&entry.name, roles);
            if credentials
                .by_name
                .insert(entry.name.clone(), caller.clone())
                .is_some()
            {
                return Err(format!("caller `{}` is listed twice", entry.name));
            }
            if let Some(hash) = &entry.token_sha256 {
                let hash = parse_hash(hash).ok_or_else(|| {
                    format!("caller `{}`: token_sha256 is not 64 hex digits", entry.name)
                })?;
                if credentials.by_token_hash.insert(hash, caller).is_some() {
                    return Err(format!(
                        "caller `{}` has the same token hash as another caller",
                        entry.name
                    ));
                }
            }
        }
        Ok(credentials)
    }

    /// Returns the caller a bearer token belongs to.
    pub fn by_token(&self, token: &str) -> Option<&Caller> {
        self.by_token_hash.get(&hash_bytes(token))
    }

    /// Returns the caller of this name: the subject of a client certificate, or the caller a
    /// console session belongs to.
    pub fn by_name(&self, name: &str) -> Option<&Caller> {
        self.by_name.get(name)
    }

    /// Returns how many callers there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Returns whether there are no callers.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Refuses a caller name that is blank, too long, or holds anything but letters, digits and
/// `.`, `_`, `-`, `@`: names end up in logs and terminals.
pub fn check_caller_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_CALLER_NAME_BYTES {
        return Err(format!(
            "caller name `{}` must be 1 to {MAX_CALLER_NAME_BYTES} bytes",
            name.escape_default()
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(format!(
            "caller name `{}` may hold only letters, digits, `.`, `_`, `-` and `@`",
            name.escape_default()
        ));
    }
    Ok(())
}

/// Returns the lower-case hex SHA-256 of a token, as the file stores it.
pub fn token_sha256(token: &str) -> String {
    hash_bytes(token)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn hash_bytes(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn token_hash_is_sha256_hex() {
        // Reference: `printf abc | sha256sum` (coreutils).
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn callers_are_found_by_token_and_by_name() {
        let text = format!(
            "[[caller]]\nname = \"crm-prod\"\nroles = [\"scorer\"]\ntoken_sha256 = \"{}\"\n\
             [[caller]]\nname = \"batch.example.com\"\nroles = [\"scorer\", \"agent\"]\n",
            token_sha256("churn_secret")
        );
        let credentials = Credentials::parse(&text).unwrap();
        let crm = credentials.by_token("churn_secret").unwrap();
        assert_eq!(crm.name(), "crm-prod");
        assert!(crm.has(Role::Scorer));
        assert!(!crm.has(Role::Agent));
        assert!(credentials.by_token("churn_other").is_none());
        let batch = credentials.by_name("batch.example.com").unwrap();
        assert!(batch.has(Role::Agent));
    }

    #[test]
    fn bad_files_name_the_caller_and_field() {
        let cases = [
            (
                "[[caller]]\nname = \"a\"\nroles = [\"root\"]\n",
                "caller `a`: unknown role `root`",
            ),
            (
                "[[caller]]\nname = \"a\"\nroles = []\n",
                "caller `a` has no roles",
            ),
            (
                "[[caller]]\nname = \"a\"\nroles = [\"agent\"]\ntoken_sha256 = \"zz\"\n",
                "caller `a`: token_sha256 is not 64 hex digits",
            ),
            (
                "[[caller]]\nname = \"a b\"\nroles = [\"agent\"]\n",
                "caller name `a b` may hold only",
            ),
            (
                "[[caller]]\nname = \"a\"\nroles = [\"agent\"]\n[[caller]]\nname = \"a\"\nroles = [\"agent\"]\n",
                "caller `a` is listed twice",
            ),
        ];
        for (text, expected) in cases {
            let error = Credentials::parse(text).unwrap_err();
            assert!(error.contains(expected), "{error} ≠ {expected}");
        }
    }
}
