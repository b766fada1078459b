//! What the gRPC alert service and the console share: reading and checking a caller's request
//! fields, and running alert-store calls off the async runtime. Both front ends go through here,
//! so a field is refused with the same words whichever way it came.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use churn_api::convert::MAX_CUSTOMER_ID_BYTES;
use churn_core::RiskBand;

use crate::alerts::{AlertFilter, AlertHub, AlertState, StoreError};
use crate::audit::{AuditFilter, AuditRange};
use crate::auth::Caller;
use crate::error::RequestError;

/// Longest resolution note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 2_000;
/// Most alerts one page of a listing holds.
pub const MAX_PAGE: u64 = 500;

/// Returns the time now, in seconds since the Unix epoch.
pub(crate) fn now() -> churn_core::Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

/// Runs a call of the alert store on the blocking pool (SQLite blocks the thread it runs on).
pub(crate) async fn off_the_runtime<T: Send + 'static>(
    hub: &AlertHub,
    call: impl FnOnce(&AlertHub) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RequestError> {
    let hub = hub.clone();
    tokio::task::spawn_blocking(move || call(&hub))
        .await
        .map_err(|error| RequestError::Internal {
            reason: format!("alert store call stopped: {error}"),
        })?
        .map_err(store_error)
}

/// Returns a store error as the caller sees it.
pub(crate) fn store_error(error: StoreError) -> RequestError {
    match error {
        StoreError::NotFound { id } => RequestError::NotFound { id },
        StoreError::WrongState { .. } => RequestError::FailedPrecondition {
            reason: error.to_string(),
        },
        StoreError::Backend { reason } => RequestError::Unavailable { reason },
        // The store file cannot be opened (a reader opens it anew when the pool is empty).
        StoreError::Open { .. } => RequestError::Unavailable {
            reason: error.to_string(),
        },
    }
}

/// Reads an alert id; anything but a stored id is NOT_FOUND, naming what was given.
pub(crate) fn alert_id(text: &str) -> Result<i64, RequestError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| RequestError::NotFound {
            id: text.to_string(),
        })
}

/// Reads a free-text field, blank meaning none, refusing one over `limit` bytes.
pub(crate) fn optional_text(
    field: &'static str,
    text: &str,
    limit: usize,
) -> Result<Option<String>, RequestError> {
    let text = text.trim();
    if text.len() > limit {
        return Err(RequestError::TooLong {
            field,
            length: text.len(),
            limit,
        });
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// Reads a name (an agent, a team, a customer id): blank means none, as long as a customer id at
/// most.
pub(crate) fn name_field(field: &'static str, text: &str) -> Result<Option<String>, RequestError> {
    optional_text(field, text, MAX_CUSTOMER_ID_BYTES)
}

/// Reads who acts on an alert. With a signed-in caller, that is the caller: `by` may be blank
/// or the caller's own name, and another name is refused (PERMISSION_DENIED: the request is
/// well formed, but this caller may not act for someone else). Without one (authentication
/// off), `by` is taken as given.
pub(crate) fn acting_agent(
    given: &str,
    caller: Option<&Caller>,
) -> Result<Option<String>, RequestError> {
    let given = name_field("by", given)?;
    let Some(caller) = caller else {
        return Ok(given);
    };
    match given {
        Some(given) if given != caller.name() => Err(RequestError::ActingAsOther {
            given,
            caller: caller.name().to_string(),
        }),
        _ => Ok(Some(caller.name().to_string())),
    }
}

/// Reads a resolution note: blank means none, [`MAX_NOTE_BYTES`] at most.
pub(crate) fn note_field(text: &str) -> Result<Option<String>, RequestError> {
    optional_text("note", text, MAX_NOTE_BYTES)
}

/// The text fields of an alert filter, with the names the caller's protocol gives them.
pub(crate) struct FilterTexts<'a> {
    pub assignee: (&'static str, &'a str),
    pub team: (&'static str, &'a str),
    pub customer_id: (&'static str, &'a str),
}

/// Builds an alert filter from checked parts: the least band, the states, and the text fields.
pub(crate) fn alert_filter(
    min_band: Option<RiskBand>,
    states: Vec<AlertState>,
    texts: FilterTexts<'_>,
) -> Result<AlertFilter, RequestError> {
    let text = |(field, value): (&'static str, &str)| name_field(field, value);
    Ok(AlertFilter {
        min_band,
        assignee: text(texts.assignee)?,
        team: text(texts.team)?,
        customer_id: text(texts.customer_id)?,
        states,
    })
}

/// Entries per page of the audit log by default.
pub const DEFAULT_AUDIT_PAGE: u64 = 100;

/// Reads a query of the audit log: `after` (oldest first after it) or `before` (newest first
/// below it), neither (newest first), a page size, and an actor and action to match (blank:
/// any). The field names are the caller's protocol's.
pub(crate) fn audit_query(
    after: (&'static str, Option<u64>),
    before: (&'static str, Option<u64>),
    limit: Option<u64>,
    actor: &str,
    action: &str,
) -> Result<(AuditFilter, AuditRange, u64), RequestError> {
    let range = match (after.1.filter(|id| *id > 0), before.1.filter(|id| *id > 0)) {
        (Some(_), Some(_)) => {
            return Err(RequestError::Invalid {
                field: before.0,
                reason: format!("give `{}` or `{}`, not both", after.0, before.0),
            });
        }
        (Some(id), None) => AuditRange::After(id),
        (None, Some(id)) => AuditRange::Before(id),
        (None, None) => AuditRange::Newest,
    };
    let filter = AuditFilter {
        actor: name_field("actor", actor)?,
        action: name_field("action", action)?,
    };
    Ok((
        filter,
        range,
        page_size(limit.filter(|limit| *limit > 0), DEFAULT_AUDIT_PAGE),
    ))
}

/// Returns a page size: `requested` when given (at most [`MAX_PAGE`]), else `default`.
pub(crate) fn page_size(requested: Option<u64>, default: u64) -> u64 {
    requested.map_or(default, |size| size.clamp(1, MAX_PAGE))
}

/// Caps the live alert feeds each caller holds open at once (`StreamAlerts` and the console's
/// event feed together), so one caller cannot hold every connection's worth of feeds.
#[derive(Debug, Clone)]
pub struct FeedLimiter {
    limit: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open feed; dropping it frees its place.
#[derive(Debug)]
pub struct FeedPermit {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl FeedLimiter {
    /// Allows `limit` feeds per caller.
    pub fn new(limit: usize) -> Self {
        FeedLimiter {
            limit,
            open: Arc::default(),
        }
    }

    /// Takes a place for `caller` (a caller's name, or a peer's address when no one signs in),
    /// or says how many it holds.
    pub fn try_open(&self, caller: &str) -> Result<FeedPermit, RequestError> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(caller.to_string()).or_default();
        if *count >= self.limit {
            return Err(RequestError::Exhausted {
                reason: format!(
                    "`{caller}` has {count} alert feeds open; the limit is {} \
                     (max_alert_feeds_per_caller)",
                    self.limit
                ),
            });
        }
        *count += 1;
        Ok(FeedPermit {
            key: caller.to_string(),
            open: self.open.clone(),
        })
    }
}

impl Drop for FeedPermit {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_positive_numbers_and_anything_else_is_not_found() {
        assert_eq!(alert_id(" 7 "), Ok(7));
        for bad in ["0", "-3", "seven", ""] {
            assert_eq!(
                alert_id(bad),
                Err(RequestError::NotFound {
                    id: bad.to_string()
                })
            );
        }
    }

    #[test]
    fn each_caller_gets_its_own_feeds_and_a_closed_feed_frees_its_place() {
        let feeds = FeedLimiter::new(2);
        let first = feeds.try_open("ana").unwrap();
        let _second = feeds.try_open("ana").unwrap();
        let error = feeds.try_open("ana").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`ana` has 2 alert feeds open; the limit is 2 (max_alert_feeds_per_caller)"
        );
        assert_eq!(error.code(), tonic::Code::ResourceExhausted);
        let _other = feeds.try_open("bo").unwrap();
        drop(first);
        assert!(feeds.try_open("ana").is_ok());
    }

    #[test]
    fn a_signed_in_agent_acts_as_themselves_only() {
        let mut roles = crate::auth::RoleSet::default();
        roles.insert(crate::auth::Role::Agent);
        let ana = Caller::new("ana", roles);
        assert_eq!(acting_agent("", Some(&ana)), Ok(Some("ana".into())));
        assert_eq!(acting_agent(" ana ", Some(&ana)), Ok(Some("ana".into())));
        let error = acting_agent("mallory", Some(&ana)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`by` is `mallory` but you are signed in as `ana`; leave `by` empty"
        );
        assert_eq!(error.code(), tonic::Code::PermissionDenied);
        assert_eq!(error.field(), Some("by"));
        // Authentication off: `by` as given, blank for nobody.
        assert_eq!(acting_agent("mallory", None), Ok(Some("mallory".into())));
        assert_eq!(acting_agent(" ", None), Ok(None));
    }

    #[test]
    fn text_fields_are_trimmed_blank_is_none_and_long_is_refused_by_name() {
        assert_eq!(
            name_field("assignee", "  ana "),
            Ok(Some("ana".to_string()))
        );
        assert_eq!(name_field("assignee", "   "), Ok(None));
        assert_eq!(
            note_field(&"n".repeat(MAX_NOTE_BYTES + 1)),
            Err(RequestError::TooLong {
                field: "note",
                length: MAX_NOTE_BYTES + 1,
                limit: MAX_NOTE_BYTES,
            })
        );
    }
}
