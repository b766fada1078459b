//! The agent console: one page, served on the metrics port at `/console`, where support agents
//! work the alert queue, plus the small JSON and server-sent-events API behind it.
//!
//! Every action goes through the same [`AlertHub`] as the gRPC calls, so the store's rules (no
//! resolving twice, unknown id → not found) hold whoever calls. The live feed is the same
//! `AlertHub::follow` as `StreamAlerts`: replay after a cursor, then live, no gap.
//!
//! Safety: with a credentials file (authentication on), agents sign in on the page with their
//! own token (`POST /console/api/sign-in`); the server answers with a session cookie (HttpOnly,
//! Secure, SameSite=Strict) and keeps only a hash of the session id. Every call checks that the
//! session's caller is still an agent in the current credentials, so revoking a token ends its
//! sessions; scripts may send `Authorization: Bearer …` instead. An agent acts as who they
//! signed in as: `by` is theirs. Tokens never travel in a URL. Without credentials (allowed on
//! a loopback address only) a request must name a loopback host, so a web page elsewhere cannot
//! reach the console by DNS rebinding. Actions need a JSON body (a cross-site form cannot send
//! one without the browser asking first) and a same-origin `Origin`. The page builds every
//! element with `textContent`, never HTML from data, and its CSP allows no inline script.
//! Sign-ins, sign-outs, refused sign-ins (rate limited) and alert actions go to the audit log,
//! which admins read in the page's Audit view.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};

use crate::alerts::{AlertFilter, AlertHub, AlertState, Outcome, StoreError};
use crate::audit::{
    ALERT_ACKNOWLEDGE, ALERT_RESOLVE, ANONYMOUS, AUDIT_READ, AuditEntry, AuditLog, CONSOLE_SIGN_IN,
    CONSOLE_SIGN_IN_REFUSED, CONSOLE_SIGN_OUT,
};
use crate::auth::{AuthError, Caller, Callers, Role};
use crate::error::RequestError;
use crate::http::sessions::{SESSION_LIFETIME, Sessions};
use crate::model::ModelSlot;
use crate::requests::{
    FeedLimiter, FilterTexts, acting_agent, alert_filter, alert_id, audit_query, name_field,
    note_field, now, off_the_runtime, page_size,
};

const INDEX_HTML: &str = include_str!("../../console/index.html");
const CONSOLE_JS: &str = include_str!("../../console/console.js");
const CONSOLE_CSS: &str = include_str!("../../console/console.css");

/// The cookie holding a signed-in agent's session id.
const SESSION_COOKIE: &str = "churn_session";
/// Longest token accepted at sign-in; tokens are a few dozen characters.
const MAX_TOKEN_BYTES: usize = 512;
/// Alerts per page by default, and at most.
const DEFAULT_PAGE: u64 = 100;
/// Scores shown in a customer's history chart.
const HISTORY_POINTS: u64 = 500;
/// Largest action body; an acknowledgement or resolution is a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Events queued for one live page before its feed waits.
const FEED_QUEUE: usize = 64;

/// The page's Content-Security-Policy: its own script and style only, nothing inline.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'";
/// The model card is our own generated HTML with inline style and SVG, and no script.
const CARD_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'";

/// What the console's handlers share; cheap to clone.
#[derive(Debug, Clone)]
pub struct Console {
    hub: AlertHub,
    slot: Arc<ModelSlot>,
    /// The live credentials; `None`: authentication off.
    callers: Option<Callers>,
    sessions: Arc<Sessions>,
    audit: AuditLog,
    feeds: FeedLimiter,
    stopping: watch::Receiver<bool>,
}

impl Console {
    /// Serves the queue of `hub` and the model of `slot` to the agents of `callers` (`None`:
    /// to anyone naming a loopback host), writing their actions to `audit`; each caller's live
    /// feeds count against `feeds` (shared with StreamAlerts); feeds end when `stopping` turns
    /// true.
    pub fn new(
        hub: AlertHub,
        slot: Arc<ModelSlot>,
        callers: Option<Callers>,
        audit: AuditLog,
        feeds: FeedLimiter,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Console {
            hub,
            slot,
            callers,
            sessions: Arc::default(),
            audit,
            feeds,
            stopping,
        }
    }

    /// Returns the console's routes, to merge with `/metrics`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(|| async { redirect("/console") }))
            .route("/console", get(page))
            .route("/console/console.js", get(script))
            .route("/console/console.css", get(style))
            .route("/console/model-card", get(model_card))
            .route("/console/api/alerts", get(list_alerts))
            .route("/console/api/alerts/{id}", get(get_alert))
            .route("/console/api/alerts/{id}/acknowledge", post(acknowledge))
            .route("/console/api/alerts/{id}/resolve", post(resolve))
            .route("/console/api/customer", get(customer))
            .route("/console/api/model", get(model))
            .route("/console/api/stats", get(stats))
            .route("/console/api/events", get(events))
            .route("/console/api/me", get(me))
            .route("/console/api/sign-in", post(sign_in))
            .route("/console/api/sign-out", post(sign_out))
            .route("/console/api/audit", get(audit_entries))
            .with_state(self)
    }

    /// Lets a request in and says who made it: with authentication on, a signed-in agent (by
    /// session cookie) or an agent's bearer token, checked against the current credentials;
    /// with it off, anyone naming a loopback host (`None`).
    fn authorize(&self, headers: &HeaderMap) -> Result<Option<Caller>, HttpError> {
        let Some(callers) = &self.callers else {
            let host = header_text(headers, header::HOST).unwrap_or_default();
            if is_loopback_host(host) {
                return Ok(None);
            }
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "host `{host}` is not a loopback name; a console without credentials \
                     answers only to localhost"
                ),
            ));
        };
        if let Some(authorization) = header_text(headers, header::AUTHORIZATION) {
            return callers
                .authenticate(Some(authorization), None, Some(Role::Agent))
                .map(Some)
                .map_err(auth_error);
        }
        if let Some(id) = cookie(headers, SESSION_COOKIE)
            && let Some(name) = self.sessions.caller(id, Instant::now())
        {
            // The credentials as they are now: a revoked caller, or one no longer an agent,
            // loses their sessions at once.
            match callers.current().by_name(&name) {
                Some(caller) if caller.has(Role::Agent) => return Ok(Some(caller.clone())),
                _ => {
                    self.sessions.end(id);
                }
            }
        }
        Err(HttpError::new(
            StatusCode::UNAUTHORIZED,
            "sign in to the console with your token, or send `Authorization: Bearer …`",
        ))
    }

    /// Checks an action: authorized, from this origin, with a JSON body; returns the caller.
    fn authorize_action(&self, headers: &HeaderMap) -> Result<Option<Caller>, HttpError> {
        let caller = self.authorize(headers)?;
        same_origin_json(headers)?;
        Ok(caller)
    }

    /// Runs a store call off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&AlertHub) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, HttpError> {
        Ok(off_the_runtime(&self.hub, call).await?)
    }
}

/// An error as the console's API returns it: a status and `{"error": …, "field": …}`.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl From<RequestError> for HttpError {
    fn from(error: RequestError) -> Self {
        let status = match error.code() {
            tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
            tonic::Code::NotFound => StatusCode::NOT_FOUND,
            tonic::Code::FailedPrecondition => StatusCode::CONFLICT,
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError {
            status,
            field: error.field().map(str::to_string),
            message: error.to_string(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "console call failed");
        }
        let body = serde_json::json!({ "error": self.message, "field": self.field });
        (self.status, json_headers(), body.to_string()).into_response()
    }
}

/// Checks that an action comes from this console's origin with a JSON body: a cross-site form
/// can send neither.
fn same_origin_json(headers: &HeaderMap) -> Result<(), HttpError> {
    same_origin(headers)?;
    let json = header_text(headers, header::CONTENT_TYPE)
        .is_some_and(|kind| kind.starts_with("application/json"));
    if !json {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "actions take a JSON body (`Content-Type: application/json`)",
        ));
    }
    Ok(())
}

/// Checks that a request naming an origin names this console's.
fn same_origin(headers: &HeaderMap) -> Result<(), HttpError> {
    let host = header_text(headers, header::HOST).unwrap_or_default();
    if let Some(origin) = header_text(headers, header::ORIGIN) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Err(HttpError::new(
                StatusCode::FORBIDDEN,
                format!("origin `{origin}` is not this console's"),
            ));
        }
    }
    Ok(())
}

/// An authentication error as the console answers it: 403 for a known caller without the
/// role, 401 otherwise.
fn auth_error(error: AuthError) -> HttpError {
    let status = if error.is_forbidden() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::UNAUTHORIZED
    };
    HttpError::new(status, error.to_string())
}

/// The address a request came from, when the server knows it.
struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<crate::net::ConnInfo>()
                .map(|info| info.peer),
        ))
    }
}

fn json_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

fn json_response<T: serde::Serialize>(value: &T) -> Result<Response, HttpError> {
    let body = serde_json::to_string(value)
        .map_err(|error| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    Ok((json_headers(), body).into_response())
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Tells whether a Host header names this machine's loopback: `localhost`, `127.x.x.x` or
/// `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(name, _)| name),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn page(
    State(console): State<Console>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if query.iter().any(|(key, _)| key == "token") {
        // A token in a URL stays in history, logs and Referer headers.
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            "tokens do not go in URLs: open /console and sign in on the page",
        )
        .into_response();
    }
    // With authentication on, the page itself holds no data: it shows the sign-in form.
    if console.callers.is_none()
        && let Err(error) = console.authorize(&headers)
    {
        return error.into_response();
    }
    asset(INDEX_HTML, "text/html; charset=utf-8", PAGE_CSP)
}

async fn script() -> Response {
    asset(CONSOLE_JS, "text/javascript; charset=utf-8", PAGE_CSP)
}

async fn style() -> Response {
    asset(CONSOLE_CSS, "text/css; charset=utf-8", PAGE_CSP)
}

fn asset(body: &'static str, kind: &'static str, csp: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The loaded model's `card.html`, written next to it by `churn train`.
async fn model_card(
    State(console): State<Console>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    console.authorize(&headers)?;
    let model = console.slot.current();
    let file = model.file.with_file_name("card.html");
    let html = tokio::fs::read_to_string(&file).await.map_err(|error| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no model card at `{}`: {error}", file.display()),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response())
}

/// Query parameters, read by hand so a bad one is named like every other bad input.
type Params = Query<Vec<(String, String)>>;

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.trim().is_empty())
}

fn number_param(params: &[(String, String)], key: &'static str) -> Result<Option<u64>, HttpError> {
    param(params, key)
        .map(|text| {
            text.trim().parse::<u64>().map_err(|_| {
                RequestError::Invalid {
                    field: key,
                    reason: format!("`{text}` is not a whole number"),
                }
                .into()
            })
        })
        .transpose()
}

/// Reads `band` (the least band), `assignee`, `team` and `state` (comma-separated, or `all`).
fn filter_params(
    params: &[(String, String)],
    default_states: &[AlertState],
) -> Result<AlertFilter, HttpError> {
    let min_band = match param(params, "band") {
        None => None,
        Some(name) => Some(parse_band(name).ok_or_else(|| RequestError::Invalid {
            field: "band",
            reason: format!("`{name}` is not a risk band; expected LOW, MEDIUM or HIGH"),
        })?),
    };
    let states = match param(params, "state") {
        None => default_states.to_vec(),
        Some("all") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|name| {
                AlertState::parse(name.trim().to_ascii_lowercase().as_str()).ok_or_else(|| {
                    RequestError::Invalid {
                        field: "state",
                        reason: format!(
                            "`{name}` is not an alert state; expected open, acknowledged, \
                             resolved or all"
                        ),
                    }
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let text = |key: &'static str| (key, param(params, key).unwrap_or(""));
    Ok(alert_filter(
        min_band,
        states,
        FilterTexts {
            assignee: text("assignee"),
            team: text("team"),
            customer_id: text("customer_id"),
        },
    )?)
}

fn parse_band(name: &str) -> Option<churn_core::RiskBand> {
    use churn_core::RiskBand;
    [RiskBand::Low, RiskBand::Medium, RiskBand::High]
        .into_iter()
        .find(|band| band.as_str().eq_ignore_ascii_case(name.trim()))
}

async fn list_alerts(
    State(console): State<Console>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    console.authorize(&headers)?;
    let filter = filter_params(&params, &[AlertState::Open, AlertState::Acknowledged])?;
    let offset = number_param(&params, "offset")?.unwrap_or(0);
    let limit = page_size(number_param(&params, "limit")?, DEFAULT_PAGE);
    // The cursor is read first: a feed started after it replays whatever the list missed.
    let (cursor, page) = console
        .blocking(move |hub| {
            let cursor = hub.store().last_cursor()?;
            Ok((cursor, hub.store().list(&filter, offset, limit)?))
        })
        .await?;
    json_response(&serde_json::json!({
        "alerts": page.alerts,
        "total": page.total,
        "cursor": cursor,
    }))
}

async fn get_alert(
    State(console): State<Console>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    console.authorize(&headers)?;
    let alert_id = alert_id(&id)?;
    match console
        .blocking(move |hub| hub.store().get(alert_id))
        .await?
    {
        Some(alert) => json_response(&alert),
        None => Err(RequestError::NotFound { id }.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcknowledgeBody {
    #[serde(default)]
    by: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    outcome: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    by: String,
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, HttpError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::TooLong {
            field: "body",
            length: body.len(),
            limit: MAX_BODY_BYTES,
        }
        .into());
    }
    serde_json::from_slice(body).map_err(|error| {
        RequestError::Invalid {
            field: "body",
            reason: error.to_string(),
        }
        .into()
    })
}

async fn acknowledge(
    State(console): State<Console>,
    Path(id): Path<String>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let caller = console.authorize_action(&headers)?;
    let request: AcknowledgeBody = parse_body(&body)?;
    let result = async {
        let alert_id = alert_id(&id)?;
        let by = acting_agent(&request.by, caller.as_ref())?;
        off_the_runtime(&console.hub, move |hub| {
            hub.acknowledge(alert_id, by.as_deref(), now())
        })
        .await
    }
    .await;
    console.audit.alert_action(
        ALERT_ACKNOWLEDGE,
        &id,
        caller.as_ref(),
        &request.by,
        peer,
        &result,
    );
    json_response(&result?.alert)
}

async fn resolve(
    State(console): State<Console>,
    Path(id): Path<String>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let caller = console.authorize_action(&headers)?;
    let request: ResolveBody = parse_body(&body)?;
    let result = async {
        let alert_id = alert_id(&id)?;
        let outcome = Outcome::parse(request.outcome.trim().to_ascii_lowercase().as_str())
            .ok_or_else(|| RequestError::Invalid {
                field: "outcome",
                reason: format!(
                    "`{}` is not an outcome; expected RETAINED, CHURNED, FALSE_ALARM or \
                     NOT_REACHED",
                    request.outcome
                ),
            })?;
        let note = note_field(&request.note)?;
        let by = acting_agent(&request.by, caller.as_ref())?;
        off_the_runtime(&console.hub, move |hub| {
            hub.resolve(alert_id, outcome, note.as_deref(), by.as_deref(), now())
        })
        .await
    }
    .await;
    console.audit.alert_action(
        ALERT_RESOLVE,
        &id,
        caller.as_ref(),
        &request.by,
        peer,
        &result,
    );
    json_response(&result?.alert)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    token: String,
}

/// Who is signed in: `{"auth": false}` without credentials, else the caller's name and whether
/// they may read the audit log; 401 when nobody is.
async fn me(State(console): State<Console>, headers: HeaderMap) -> Result<Response, HttpError> {
    let caller = console.authorize(&headers)?;
    json_response(&serde_json::json!({
        "auth": console.callers.is_some(),
        "name": caller.as_ref().map(Caller::name),
        "admin": caller.as_ref().is_none_or(|caller| caller.has(Role::Admin)),
    }))
}

/// Signs an agent in with their token: a session, in an HttpOnly, Secure, SameSite=Strict
/// cookie. A refused token is written to the audit log, rate limited per peer.
async fn sign_in(
    State(console): State<Console>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    same_origin_json(&headers)?;
    let Some(callers) = &console.callers else {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "this console has no sign-in: the server has no credentials file",
        ));
    };
    let request: SignInBody = parse_body(&body)?;
    let token = request.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(RequestError::Invalid {
            field: "token",
            reason: format!("a token is 1 to {MAX_TOKEN_BYTES} bytes"),
        }
        .into());
    }
    let caller =
        match callers.authenticate(Some(&format!("Bearer {token}")), None, Some(Role::Agent)) {
            Ok(caller) => caller,
            Err(error) => {
                console.audit.refused(
                    AuditEntry::new(ANONYMOUS, CONSOLE_SIGN_IN_REFUSED, "/console")
                        .detail(&error.to_string())
                        .peer(peer),
                );
                return Err(auth_error(error));
            }
        };
    let id = console
        .sessions
        .start(caller.name(), Instant::now())
        .map_err(|_| {
            HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many console sessions are open; try again later",
            )
        })?;
    console
        .audit
        .record(AuditEntry::new(caller.name(), CONSOLE_SIGN_IN, "/console").peer(peer));
    let cookie = session_cookie(&id, SESSION_LIFETIME.as_secs())?;
    let body = serde_json::json!({
        "auth": true,
        "name": caller.name(),
        "admin": caller.has(Role::Admin),
    });
    let mut response = json_response(&body)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Signs out: ends the session and clears its cookie.
async fn sign_out(
    State(console): State<Console>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    same_origin(&headers)?;
    if let Some(name) = cookie(&headers, SESSION_COOKIE).and_then(|id| console.sessions.end(id)) {
        console
            .audit
            .record(AuditEntry::new(&name, CONSOLE_SIGN_OUT, "/console").peer(peer));
    }
    let mut response = json_response(&serde_json::json!({ "signed_out": true }))?;
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0)?);
    Ok(response)
}

/// The session cookie: for the console's paths only, never sent by script or cross-site, over
/// a secure context only (https, or localhost).
fn session_cookie(id: &str, max_age_seconds: u64) -> Result<HeaderValue, HttpError> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; HttpOnly; Secure; SameSite=Strict; Path=/console; \
         Max-Age={max_age_seconds}"
    ))
    .map_err(|error| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}

/// The audit log, newest first (`before` to page on, `after` to follow), for admins (and, with
/// authentication off, for anyone the console lets in).
async fn audit_entries(
    State(console): State<Console>,
    Query(params): Params,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let caller = console.authorize(&headers)?;
    if let Some(caller) = &caller
        && !caller.has(Role::Admin)
    {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the audit log needs the `admin` role, which `{}` lacks",
                caller.name()
            ),
        ));
    }
    let (filter, range, limit) = audit_query(
        ("after", number_param(&params, "after")?),
        ("before", number_param(&params, "before")?),
        number_param(&params, "limit")?,
        param(&params, "actor").unwrap_or(""),
        param(&params, "action").unwrap_or(""),
    )?;
    let Some(store) = console.audit.store().cloned() else {
        return Err(HttpError::new(
            StatusCode::CONFLICT,
            "this server keeps no audit log to list (alerts are off)",
        ));
    };
    let entries = console
        .blocking(move |_| store.audit_entries(&filter, range, limit))
        .await?;
    console.audit.record(
        AuditEntry::new(
            caller.as_ref().map_or(ANONYMOUS, Caller::name),
            AUDIT_READ,
            "/console/api/audit",
        )
        .peer(peer),
    );
    json_response(&serde_json::json!({ "entries": entries }))
}

async fn customer(
    State(console): State<Console>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    console.authorize(&headers)?;
    let id = name_field("id", param(&params, "id").unwrap_or(""))?
        .ok_or(RequestError::Required { field: "id" })?;
    let lookup = id.clone();
    match console
        .blocking(move |hub| hub.store().customer(&lookup, HISTORY_POINTS))
        .await?
    {
        Some(record) => json_response(&record),
        None => Err(HttpError {
            status: StatusCode::NOT_FOUND,
            message: format!("customer `{id}` has never been scored here"),
            field: Some("id".into()),
        }),
    }
}

async fn model(State(console): State<Console>, headers: HeaderMap) -> Result<Response, HttpError> {
    console.authorize(&headers)?;
    let info = console.slot.current().info();
    let model = info.model.unwrap_or_default();
    let bands = info.bands.unwrap_or_default();
    let metrics: std::collections::BTreeMap<_, _> = info.metrics.into_iter().collect();
    json_response(&serde_json::json!({
        "name": model.name,
        "version": model.version,
        "kind": info.kind,
        "features": info.features.len(),
        "metrics": metrics,
        "trained_at": info.trained_at,
        "loaded_at": info.loaded_at,
        "training_rows": info.training_rows,
        "training_positives": info.training_positives,
        "calibration": info.calibration,
        "bands": { "medium": bands.medium, "high": bands.high },
        "policy": console.hub.policy(),
    }))
}

async fn stats(State(console): State<Console>, headers: HeaderMap) -> Result<Response, HttpError> {
    console.authorize(&headers)?;
    let at = now();
    let stats = console.blocking(move |hub| hub.store().stats(at)).await?;
    let counts = |pairs: Vec<(&str, u64)>| -> serde_json::Map<String, serde_json::Value> {
        pairs
            .into_iter()
            .map(|(label, count)| (label.to_string(), count.into()))
            .collect()
    };
    json_response(&serde_json::json!({
        "total": stats.total,
        "by_state": counts(stats.by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect()),
        "by_band": counts(stats.by_band.iter().map(|(b, n)| (b.as_str(), *n)).collect()),
        "by_outcome": counts(stats.by_outcome.iter().map(|(o, n)| (o.as_str(), *n)).collect()),
        "median_seconds_to_acknowledge": stats.median_seconds_to_acknowledge,
        "retained_share": stats.retained_share,
        "churned_share": stats.churned_share,
        "escalated": stats.escalated,
        "overdue": stats.overdue,
    }))
}

/// The live feed: `alert` events (id = cursor, data = the event as JSON) after `after` (or the
/// `Last-Event-ID` a reconnecting browser sends), then live. A feed that falls behind, or a
/// stopping server, ends it with an `end` event; the browser reconnects and resumes.
async fn events(
    State(console): State<Console>,
    Peer(peer): Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    let caller = console.authorize(&headers)?;
    let feed_owner = match (&caller, peer) {
        (Some(caller), _) => caller.name().to_string(),
        (None, Some(peer)) => peer.ip().to_string(),
        (None, None) => "anonymous".to_string(),
    };
    let feed = console.feeds.try_open(&feed_owner)?;
    let mut filter = filter_params(&params, &[])?;
    filter.states.clear();
    let resumed = header_text(&headers, header::HeaderName::from_static("last-event-id"))
        .and_then(|id| id.trim().parse::<u64>().ok());
    let after = match resumed.or(number_param(&params, "after")?) {
        Some(cursor) => cursor,
        None => console.blocking(|hub| hub.store().last_cursor()).await?,
    };
    let receiver = console
        .hub
        .open_feed(filter, after, console.stopping.clone(), FEED_QUEUE);
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver).map(move |item| {
        // The feed's place is held for as long as the stream lives.
        let _ = &feed;
        Ok(match item {
            Ok(event) => match serde_json::to_string(&*event) {
                Ok(data) => Event::default()
                    .id(event.cursor.to_string())
                    .event("alert")
                    .data(data),
                Err(error) => Event::default().event("end").data(error.to_string()),
            },
            Err(end) => Event::default().event("end").data(end.to_string()),
        })
    });
    let hello = tokio_stream::once(Ok(Event::default()
        .retry(Duration::from_secs(1))
        .comment("connected")));
    Ok(Sse::new(hello.chain(stream)).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_told_apart_from_other_names() {
        for host in [
            "localhost",
            "localhost:9464",
            "127.0.0.1:80",
            "[::1]:9464",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:9464",
            "10.0.0.1:9464",
            "[::2]:1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; churn_session=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn bad_filters_are_named() {
        let params = vec![("band".to_string(), "URGENT".to_string())];
        let error = filter_params(&params, &[]).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("band"));
        assert_eq!(
            error.message,
            "`band`: `URGENT` is not a risk band; expected LOW, MEDIUM or HIGH"
        );
        let params = vec![("state".to_string(), "open,closed".to_string())];
        let error = filter_params(&params, &[]).unwrap_err();
        assert!(error.message.contains("`closed` is not an alert state"));
        let params = vec![
            ("band".to_string(), "medium".to_string()),
            ("state".to_string(), "all".to_string()),
        ];
        let filter = filter_params(&params, &[AlertState::Open]).unwrap();
        assert_eq!(filter.min_band, Some(churn_core::RiskBand::Medium));
        assert!(filter.states.is_empty());
    }
}
