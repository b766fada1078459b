//! Who is calling, and what they may do: callers with roles from the credentials file, found by
//! their bearer token or the subject of their client certificate.
//!
//! With no credentials file configured, authentication is off (allowed on loopback addresses, or
//! with `allow_insecure_network`): no [`Caller`] is attached to requests, and alert actions take
//! `by` from the request as before.

pub mod credentials;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

pub use credentials::Credentials;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Score, ScoreBatch, ScoreStream, Explain, GetModel.
    Scorer,
    /// The AlertService calls and the console.
    Agent,
    /// ReloadModel, the audit log, and everything the other roles may do.
    Admin,
    /// `/metrics` only (what Prometheus needs).
    Metrics,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 4] = [Role::Scorer, Role::Agent, Role::Admin, Role::Metrics];

    /// The role's name in the credentials file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Scorer => "scorer",
            Role::Agent => "agent",
            Role::Admin => "admin",
            Role::Metrics => "metrics",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown role `{}` (roles: scorer, agent, admin, metrics)",
                    text.escape_default()
                )
            })
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleSet(u8);

impl RoleSet {
    /// Adds a role.
    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    /// Returns whether the set holds `role` itself (admin is not expanded here).
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Returns whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Returns the roles, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL
            .into_iter()
            .filter(move |role| self.contains(*role))
    }
}

/// An authenticated caller; cheap to clone. Attached to each request as an extension when
/// authentication is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    name: Arc<str>,
    roles: RoleSet,
}

impl Caller {
    /// A caller named `name` with `roles`.
    pub fn new(name: &str, roles: RoleSet) -> Self {
        Caller {
            name: Arc::from(name),
            roles,
        }
    }

    /// The caller's name, as its credentials entry or client certificate gives it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The caller's roles as listed.
    pub fn roles(&self) -> RoleSet {
        self.roles
    }

    /// Returns whether the caller may act in `role`: it has that role, or is an admin.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(role) || self.roles.contains(Role::Admin)
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, and no client certificate naming a known caller.
    #[error(
        "no credentials: send `authorization: Bearer <token>` (a token from `churn token add`)"
    )]
    Missing,
    /// A token that no caller has (or one revoked).
    #[error("unknown or revoked token")]
    UnknownToken,
    /// A client certificate whose subject is not a caller in the credentials file.
    #[error("client certificate subject `{subject}` is not a known caller")]
    UnknownSubject {
        /// The certificate's subject (its common name).
        subject: String,
    },
    /// The token belongs to one caller and the client certificate names another.
    #[error("the token belongs to `{token}` but the client certificate names `{certificate}`")]
    Mismatch {
        /// The token's caller.
        token: String,
        /// The certificate's subject.
        certificate: String,
    },
    /// A known caller without the role the call needs.
    #[error("caller `{caller}` lacks the `{needed}` role this call needs")]
    Forbidden {
        /// The caller's name.
        caller: String,
        /// The role needed.
        needed: Role,
    },
}

impl AuthError {
    /// Returns whether the caller is known (and only lacks a role).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::Forbidden { .. })
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        if error.is_forbidden() {
            tonic::Status::permission_denied(error.to_string())
        } else {
            tonic::Status::unauthenticated(error.to_string())
        }
    }
}

/// The live credentials: read at start, and read again on SIGHUP and when the file changes. A
/// file that no longer parses is refused and logged; the callers read before keep working.
#[derive(Debug, Clone)]
pub struct Callers {
    file: PathBuf,
    current: Arc<RwLock<Arc<Credentials>>>,
    signature: Arc<RwLock<Option<(SystemTime, u64)>>>,
}

impl Callers {
    /// Reads the credentials file.
    pub fn open(file: &Path) -> Result<Self, String> {
        let signature = file_signature(file);
        let credentials = Credentials::read(file)?;
        Ok(Callers {
            file: file.to_path_buf(),
            current: Arc::new(RwLock::new(Arc::new(credentials))),
            signature: Arc::new(RwLock::new(signature)),
        })
    }

    /// The file the callers are read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The credentials as last read.
    pub fn current(&self) -> Arc<Credentials> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the file again; on an error the callers read before stay.
    pub fn reload(&self) -> Result<usize, String> {
        let signature = file_signature(&self.file);
        let credentials = Credentials::read(&self.file)?;
        let count = credentials.len();
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(credentials);
        *self
            .signature
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = signature;
        Ok(count)
    }

    /// Reads the file again if its size or modification time changed since the last read.
    pub fn reload_if_changed(&self) {
        let now = file_signature(&self.file);
        let seen = *self
            .signature
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now == seen {
            return;
        }
        match self.reload() {
            Ok(count) => {
                tracing::info!(file = %self.file.display(), callers = count, "credentials read again")
            }
            Err(reason) => {
                // Remember the signature so a broken file is not re-read every poll.
                *self
                    .signature
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
                tracing::error!(file = %self.file.display(), %reason, "credentials refused; the callers read before stay");
            }
        }
    }

    /// Finds the caller of a request from its bearer token (the `authorization` header's value)
    /// and the subject of its client certificate, and checks it has `needed` (`None`: any known
    /// caller will do).
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        certificate_subject: Option<&str>,
        needed: Option<Role>,
    ) -> Result<Caller, AuthError> {
        let credentials = self.current();
        let token = authorization.and_then(bearer_token);
        let caller = match (token, certificate_subject) {
            (Some(token), subject) => {
                let caller = credentials.by_token(token).ok_or(AuthError::UnknownToken)?;
                if let Some(subject) = subject
                    && subject != caller.name()
                {
                    return Err(AuthError::Mismatch {
                        token: caller.name().to_string(),
                        certificate: subject.to_string(),
                    });
                }
                caller.clone()
            }
            (None, Some(subject)) => {
                credentials
                    .by_name(subject)
                    .cloned()
                    .ok_or_else(|| AuthError::UnknownSubject {
                        subject: subject.to_string(),
                    })?
            }
            (None, None) if authorization.is_some() => return Err(AuthError::UnknownToken),
            (None, None) => return Err(AuthError::Missing),
        };
        match needed {
            Some(role) if !caller.has(role) => Err(AuthError::Forbidden {
                caller: caller.name().to_string(),
                needed: role,
            }),
            _ => Ok(caller),
        }
    }
}

/// Returns the token of an `authorization: Bearer …` value.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

fn file_signature(file: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(file).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The role a gRPC method needs, by its path (`/package.Service/Method`); `None` for the calls
/// open to anyone (health). Reflection is decided by its own setting.
pub fn role_for_grpc_path(path: &str) -> Option<Role> {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match service {
        "grpc.health.v1.Health" => None,
        "churn.v1.ChurnService" => Some(Role::Scorer),
        "churn.v1.AlertService" => Some(Role::Agent),
        _ => Some(Role::Admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credentials::token_sha256;

    fn callers(text: &str) -> (tempfile::TempDir, Callers) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("callers.toml");
        std::fs::write(&file, text).unwrap();
        let callers = Callers::open(&file).unwrap();
        (dir, callers)
    }

    #[test]
    fn tokens_certificates_and_roles_decide_who_gets_in() {
        let (_dir, callers) = callers(&format!(
            "[[caller]]\nname = \"crm\"\nroles = [\"scorer\"]\ntoken_sha256 = \"{}\"\n\
             [[caller]]\nname = \"ops\"\nroles = [\"admin\"]\ntoken_sha256 = \"{}\"\n",
            token_sha256("churn_crm"),
            token_sha256("churn_ops"),
        ));
        let crm = callers
            .authenticate(Some("Bearer churn_crm"), None, Some(Role::Scorer))
            .unwrap();
        assert_eq!(crm.name(), "crm");
        assert_eq!(
            callers.authenticate(Some("Bearer churn_crm"), None, Some(Role::Admin)),
            Err(AuthError::Forbidden {
                caller: "crm".into(),
                needed: Role::Admin
            })
        );
        // An admin may do what every other role may.
        assert!(
            callers
                .authenticate(Some("bearer churn_ops"), None, Some(Role::Agent))
                .is_ok()
        );
        assert_eq!(
            callers.authenticate(None, None, Some(Role::Scorer)),
            Err(AuthError::Missing)
        );
        assert_eq!(
            callers.authenticate(Some("Bearer nope"), None, None),
            Err(AuthError::UnknownToken)
        );
        assert_eq!(
            callers.authenticate(Some("Basic abc"), None, None),
            Err(AuthError::UnknownToken)
        );
        assert_eq!(
            callers.authenticate(Some("Bearer churn_crm"), Some("ops"), None),
            Err(AuthError::Mismatch {
                token: "crm".into(),
                certificate: "ops".into()
            })
        );
        assert_eq!(
            callers
                .authenticate(None, Some("ops"), None)
                .unwrap()
                .name(),
            "ops"
        );
    }

    #[test]
    fn a_broken_file_keeps_the_callers_read_before() {
        let (_dir, callers) = callers(&format!(
            "[[caller]]\nname = \"crm\"\nroles = [\"scorer\"]\ntoken_sha256 = \"{}\"\n",
            token_sha256("churn_crm")
        ));
        std::fs::write(callers.file(), "[[caller]]\nname = 3\n").unwrap();
        assert!(callers.reload().is_err());
        assert!(
            callers
                .authenticate(Some("Bearer churn_crm"), None, None)
                .is_ok()
        );
        std::fs::write(callers.file(), "").unwrap();
        callers.reload().unwrap();
        assert_eq!(
            callers.authenticate(Some("Bearer churn_crm"), None, None),
            Err(AuthError::UnknownToken)
        );
    }

    #[test]
    fn grpc_methods_need_their_role_and_health_is_open() {
        assert_eq!(
            role_for_grpc_path("/churn.v1.ChurnService/Score"),
            Some(Role::Scorer)
        );
        assert_eq!(
            role_for_grpc_path("/churn.v1.AlertService/ListAlerts"),
            Some(Role::Agent)
        );
        assert_eq!(
            role_for_grpc_path("/churn.v1.AdminService/ReloadModel"),
            Some(Role::Admin)
        );
        assert_eq!(role_for_grpc_path("/grpc.health.v1.Health/Check"), None);
        assert_eq!(role_for_grpc_path("/some.Unknown/Call"), Some(Role::Admin));
    }
}
