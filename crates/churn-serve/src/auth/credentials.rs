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
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Caller, Role, RoleSet};

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
    #[serde(default, rename = "caller", skip_serializing_if = "Vec::is_empty")]
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

/// The first lines of a credentials file this module writes. TOML comments do not survive a
/// rewrite, so the header says so.
pub const FILE_HEADER: &str = "\
# churn credentials, written by `churn token add` and `churn token revoke`.
# Tokens are stored only as SHA-256 hashes. Comments are not kept when the file is rewritten.
";

impl CredentialsFile {
    /// Reads a credentials file, or returns an empty one if there is no file at `path`. The
    /// entries are checked as the server checks them, so a file the server would refuse is not
    /// extended either.
    pub fn read_or_empty(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(CredentialsFile::default());
            }
            Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
        };
        let file: CredentialsFile = toml::from_str(&text)
            .map_err(|error| format!("`{}` is not a credentials file: {error}", path.display()))?;
        Credentials::from_file(&file)
            .map_err(|reason| format!("`{}`: {reason}", path.display()))?;
        Ok(file)
    }

    /// Returns the entry of the caller named `name`.
    pub fn caller(&self, name: &str) -> Option<&CallerEntry> {
        self.callers.iter().find(|entry| entry.name == name)
    }

    /// Returns the file's text: the header, then the entries in order.
    pub fn to_toml(&self) -> Result<String, String> {
        let body = toml::to_string(self).map_err(|error| error.to_string())?;
        Ok(format!("{FILE_HEADER}\n{body}"))
    }

    /// Writes the file in place of `path` in one step: the new text goes to a temporary file in
    /// the same folder, is flushed to disk, and is renamed over the old one, so a server reading
    /// the file sees the old callers or the new ones, never half a file. On unix the file is
    /// readable by its owner only (0600). A symbolic link is followed, not replaced.
    pub fn write_atomically(&self, path: &Path) -> Result<(), String> {
        let text = self.to_toml()?;
        // Never write what the server would refuse.
        Credentials::parse(&text).map_err(|reason| format!("not written: {reason}"))?;
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        write_private_file_atomically(&target, text.as_bytes())
            .map_err(|error| format!("cannot write `{}`: {error}", target.display()))
    }
}

/// Returns a new token: [`TOKEN_PREFIX`] and 64 hex digits of 32 bytes from the operating
/// system's random source.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{TOKEN_PREFIX}{hex}")
}

/// Adds a caller named `name` with `roles` and a new token to the credentials file at `path`
/// (created if missing), and returns the token: the file keeps only its hash, so this is the one
/// time it can be shown. A name already in the file is refused; its token is rotated by revoking
/// the caller and adding it again.
pub fn add_caller(path: &Path, name: &str, roles: &[Role]) -> Result<String, String> {
    check_caller_name(name)?;
    if roles.is_empty() {
        return Err(format!("caller `{name}` needs at least one role"));
    }
    let mut file = CredentialsFile::read_or_empty(path)?;
    if file.caller(name).is_some() {
        return Err(format!(
            "caller `{name}` is already in `{}`; to give it a new token, run \
             `churn token revoke {name}` and add it again (or add a second caller, move the \
             client over to it, then revoke `{name}`, so no call is refused in between)",
            path.display()
        ));
    }
    let mut role_names: Vec<String> = Vec::new();
    for role in Role::ALL {
        if roles.contains(&role) {
            role_names.push(role.name().to_string());
        }
    }
    let token = generate_token();
    file.callers.push(CallerEntry {
        name: name.to_string(),
        roles: role_names,
        token_sha256: Some(token_sha256(&token)),
    });
    file.write_atomically(path)?;
    Ok(token)
}

/// Removes the caller named `name` from the credentials file at `path`, and returns its entry.
/// A running server stops accepting the caller's token once it reads the file again.
pub fn revoke_caller(path: &Path, name: &str) -> Result<CallerEntry, String> {
    if !path.exists() {
        return Err(format!(
            "no credentials file `{}`, so no caller `{}` to revoke",
            path.display(),
            name.escape_default()
        ));
    }
    let mut file = CredentialsFile::read_or_empty(path)?;
    let Some(index) = file.callers.iter().position(|entry| entry.name == name) else {
        return Err(format!(
            "no caller `{}` in `{}` (`churn token list` shows the callers)",
            name.escape_default(),
            path.display()
        ));
    };
    let removed = file.callers.remove(index);
    file.write_atomically(path)?;
    Ok(removed)
}

/// Writes `bytes` to `path` through a temporary file in the same folder (fsync, rename, then an
/// fsync of the folder so the rename itself survives a crash); the file is 0600 on unix.
fn write_private_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy();
    let mut suffix = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    let temporary = folder.join(format!(".{file_name}.{suffix}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    // Best effort: not every platform can open a folder to sync it.
    if let Ok(folder) = std::fs::File::open(&folder) {
        let _ = folder.sync_all();
    }
    Ok(())
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

    #[test]
    fn tokens_are_the_prefix_and_64_hex_digits_and_differ() {
        let token = generate_token();
        let hex = token.strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(generate_token(), token);
    }

    #[test]
    fn added_callers_are_found_by_their_token_and_revoked_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let crm = add_caller(&path, "crm", &[Role::Scorer]).unwrap();
        let ops = add_caller(&path, "ops", &[Role::Admin, Role::Agent]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(FILE_HEADER), "{text}");
        assert!(!text.contains(&crm) && text.contains(&token_sha256(&crm)));
        let credentials = Credentials::read(&path).unwrap();
        assert_eq!(credentials.by_token(&crm).unwrap().name(), "crm");
        let ops_caller = credentials.by_token(&ops).unwrap();
        assert!(ops_caller.roles().contains(Role::Agent));
        assert!(ops_caller.roles().contains(Role::Admin));

        let removed = revoke_caller(&path, "crm").unwrap();
        assert_eq!(removed.token_sha256, Some(token_sha256(&crm)));
        let credentials = Credentials::read(&path).unwrap();
        assert!(credentials.by_token(&crm).is_none());
        assert!(credentials.by_token(&ops).is_some());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // With every caller revoked the file still reads, with no one in it.
        revoke_caller(&path, "ops").unwrap();
        assert!(Credentials::read(&path).unwrap().is_empty());
    }

    #[test]
    fn a_duplicate_name_is_refused_saying_how_to_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        add_caller(&path, "crm", &[Role::Scorer]).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let error = add_caller(&path, "crm", &[Role::Agent]).unwrap_err();
        assert!(error.contains("caller `crm` is already in"), "{error}");
        assert!(error.contains("churn token revoke crm"), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn revoking_an_unknown_caller_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        let error = revoke_caller(&path, "crm").unwrap_err();
        assert!(error.contains("no credentials file"), "{error}");
        add_caller(&path, "ops", &[Role::Admin]).unwrap();
        let error = revoke_caller(&path, "crm").unwrap_err();
        assert!(error.contains("no caller `crm` in"), "{error}");
    }

    #[test]
    fn bad_names_and_no_roles_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        assert!(add_caller(&path, "a b", &[Role::Scorer]).is_err());
        assert!(add_caller(&path, "\u{1b}[31m", &[Role::Scorer]).is_err());
        let error = add_caller(&path, "crm", &[]).unwrap_err();
        assert!(error.contains("needs at least one role"), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn callers_known_by_certificate_survive_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(
            &path,
            "# hand-written\n[[caller]]\nname = \"batch.example.com\"\nroles = [\"scorer\"]\n",
        )
        .unwrap();
        add_caller(&path, "crm", &[Role::Scorer]).unwrap();
        let file = CredentialsFile::read_or_empty(&path).unwrap();
        let batch = file.caller("batch.example.com").unwrap();
        assert_eq!(batch.token_sha256, None);
        assert_eq!(file.callers.len(), 2);
    }

    #[test]
    fn a_file_the_server_would_refuse_is_not_extended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(&path, "[[caller]]\nname = \"a\"\nroles = [\"root\"]\n").unwrap();
        let error = add_caller(&path, "crm", &[Role::Scorer]).unwrap_err();
        assert!(error.contains("unknown role `root`"), "{error}");
        assert!(std::fs::read_to_string(&path).unwrap().contains("root"));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        add_caller(&path, "crm", &[Role::Scorer]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A file someone made readable to all is 0600 again after the next write.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        add_caller(&path, "ops", &[Role::Admin]).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
