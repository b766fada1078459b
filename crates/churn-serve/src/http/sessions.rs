//! Console sessions: who signed in to the console in this browser. A session id is 32 random
//! bytes, given to the browser once in an HttpOnly cookie; the server keeps only its SHA-256, in
//! memory, with the caller's name and an expiry. Sessions end when they expire, at sign-out,
//! when the server restarts, and (checked on every request by the console) when the caller is
//! no longer an agent in the current credentials.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a session lasts after sign-in: a working day, and then some.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once; sign-ins beyond wait for some to end.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions of one caller (browsers, devices); a new one ends the caller's oldest.
pub const MAX_SESSIONS_PER_CALLER: usize = 16;

/// The sessions of the console; lookups by the SHA-256 of the id the browser holds.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Debug, Clone)]
struct Session {
    caller: String,
    started: Instant,
    expires: Instant,
}

/// Why a session cannot be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionsFull;

impl Sessions {
    /// Starts a session for `caller`; returns the id to give the browser (hex, 64 characters).
    pub(crate) fn start(&self, caller: &str, now: Instant) -> Result<String, SessionsFull> {
        let id = hex(&rand::random::<[u8; 32]>());
        let mut sessions = self.lock();
        sessions.retain(|_, session| session.expires > now);
        let mut own: Vec<([u8; 32], Instant)> = sessions
            .iter()
            .filter(|(_, session)| session.caller == caller)
            .map(|(hash, session)| (*hash, session.started))
            .collect();
        if own.len() >= MAX_SESSIONS_PER_CALLER {
            own.sort_by_key(|(_, started)| *started);
            for (hash, _) in &own[..=own.len() - MAX_SESSIONS_PER_CALLER] {
                sessions.remove(hash);
            }
        }
        if sessions.len() >= MAX_SESSIONS {
            return Err(SessionsFull);
        }
        sessions.insert(
            hash(&id),
            Session {
                caller: caller.to_string(),
                started: now,
                expires: now + SESSION_LIFETIME,
            },
        );
        Ok(id)
    }

    /// Returns the caller a session id belongs to, if it is a live session.
    pub(crate) fn caller(&self, id: &str, now: Instant) -> Option<String> {
        let key = hash(id);
        let mut sessions = self.lock();
        match sessions.get(&key) {
            Some(session) if session.expires > now => Some(session.caller.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session; returns whose it was.
    pub(crate) fn end(&self, id: &str) -> Option<String> {
        self.lock().remove(&hash(id)).map(|session| session.caller)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // Every change is one map operation: a panic elsewhere leaves the map whole.
        self.by_hash.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_names_its_caller_until_it_expires_or_ends() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let id = sessions.start("ana", now).unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.caller(&id, now).as_deref(), Some("ana"));
        assert_eq!(sessions.caller("not-a-session", now), None);
        let later = now + SESSION_LIFETIME;
        assert_eq!(sessions.caller(&id, later), None, "expired");
        assert_eq!(sessions.len(), 0, "an expired session is dropped when seen");
        let id = sessions.start("ana", now).unwrap();
        assert_eq!(sessions.end(&id).as_deref(), Some("ana"));
        assert_eq!(sessions.caller(&id, now), None);
    }

    #[test]
    fn ids_are_not_stored_and_a_caller_keeps_a_bounded_number_of_sessions() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let ids: Vec<String> = (0..MAX_SESSIONS_PER_CALLER + 3)
            .map(|index| {
                sessions
                    .start("ana", now + Duration::from_secs(index as u64))
                    .unwrap()
            })
            .collect();
        assert_eq!(sessions.len(), MAX_SESSIONS_PER_CALLER);
        let at = now + Duration::from_secs(60);
        // The oldest three ended; the newest live.
        assert!(ids[..3].iter().all(|id| sessions.caller(id, at).is_none()));
        assert!(ids[3..].iter().all(|id| sessions.caller(id, at).is_some()));
        // Only hashes are kept: no stored key is an id.
        let stored = sessions.lock();
        assert!(
            ids.iter()
                .all(|id| stored.keys().all(|key| hex(key) != *id))
        );
    }
}
