//! The agent console (issue 9) end to end: Debian's headless chromium opens the page, an agent
//! signs in with their own token (issue 33), an alert raised by a gRPC Score call appears live,
//! clicking Acknowledge changes the store under the agent's name, hostile text from a profile
//! stays text, an admin reads the audit log; and the console's API keeps the store's rules, its
//! sessions, and revocation.

use std::io::BufRead;
use std::net::SocketAddr;

use churn_api::proto;
use churn_serve::ServeOptions;
use churn_serve::auth::credentials::token_sha256;
use serde_json::json;

use crate::alerts::{
    ALERT_ON_EVERY_SCORE, AlertServer, start_alerts, start_alerts_with_credentials,
};
use crate::browser::{Browser, http, open_stream};

/// Ana's token: an agent.
const ANA: &str = "churn_ana-token-for-tests-0123456789";
/// Root's token: an admin.
const ROOT: &str = "churn_root-token-for-tests-0123456789";
/// The CRM's token: scores only, no console.
const CRM: &str = "churn_crm-token-for-tests-0123456789";
const BEARER: (&str, &str) = (
    "Authorization",
    "Bearer churn_ana-token-for-tests-0123456789",
);

fn credentials(with_ana: bool) -> String {
    let mut text = format!(
        "[[caller]]\nname = \"root\"\nroles = [\"admin\"]\ntoken_sha256 = \"{}\"\n\
         [[caller]]\nname = \"crm\"\nroles = [\"scorer\"]\ntoken_sha256 = \"{}\"\n",
        token_sha256(ROOT),
        token_sha256(CRM),
    );
    if with_ana {
        text.push_str(&format!(
            "[[caller]]\nname = \"ana\"\nroles = [\"agent\"]\ntoken_sha256 = \"{}\"\n",
            token_sha256(ANA)
        ));
    }
    text
}

/// A customer id and an assignee that would run script if the page ever treated them as HTML.
const HOSTILE_ID: &str = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";
const HOSTILE_ASSIGNEE: &str = "<b onmouseover=\"window.pwned=3\">Mallory</b>";

async fn console_server() -> anyhow::Result<(AlertServer, SocketAddr)> {
    let server = start_alerts_with_credentials(
        ALERT_ON_EVERY_SCORE,
        ServeOptions::default(),
        Some((&credentials(true), ROOT)),
    )
    .await?;
    let addr = server.server.metrics_addr();
    Ok((server, addr))
}

fn alert_id(response: &proto::ScoreResponse) -> anyhow::Result<String> {
    response
        .alert
        .as_ref()
        .map(|alert| alert.alert_id.clone())
        .ok_or_else(|| anyhow::anyhow!("the score raised no alert"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_alerts_arrive_live_works_them_from_the_page_and_hostile_text_stays_text()
-> anyhow::Result<()> {
    let (server, addr) = console_server().await?;
    let browser = Browser::start()?;
    // The page asks for a token, and the agent signs in with their own.
    browser.goto(&format!("http://{addr}/console"))?;
    browser.wait_for("document.querySelector('#sign-in-form') !== null")?;
    browser.type_into(&browser.find("#sign-in-token")?, "churn_not-a-token")?;
    browser.click(&browser.find("#sign-in-submit")?)?;
    browser.wait_for(
        "document.querySelector('#sign-in-error').textContent.includes('unknown or revoked token')",
    )?;
    let token = browser.find("#sign-in-token")?;
    browser.run("document.querySelector('#sign-in-token').value = '';")?;
    browser.type_into(&token, ANA)?;
    browser.click(&browser.find("#sign-in-submit")?)?;
    browser.wait_for("document.body.dataset.live === 'connected'")?;
    assert_eq!(
        browser.run("return document.querySelector('#signed-in-name').textContent;")?,
        json!("ana")
    );
    assert_eq!(
        browser.run("return document.querySelector('#nav-audit').hidden;")?,
        json!(true),
        "an agent has no audit view"
    );
    // The session is in an HttpOnly cookie: the page's script cannot read it.
    assert_eq!(browser.run("return document.cookie;")?, json!(""));

    let mut profile = server.profile(0, HOSTILE_ID);
    profile.assignee = HOSTILE_ASSIGNEE.into();
    let id = alert_id(&server.score(profile).await?)?;
    let row = format!("tr[data-alert-id=\"{id}\"]");
    browser.wait_for(&format!("document.querySelector('{row}') !== null"))?;
    browser.screenshot("queue")?;

    let cell = |selector: &str| {
        browser.run(&format!(
            "return document.querySelector('{row} {selector}').textContent;"
        ))
    };
    assert_eq!(cell("td.customer")?, json!(HOSTILE_ID));
    assert_eq!(cell("td.assignee")?, json!(HOSTILE_ASSIGNEE));
    assert_eq!(
        browser.run(
            "return document.querySelectorAll('#queue img, #queue script, #queue b').length;"
        )?,
        json!(0)
    );
    assert_eq!(
        browser.run("return typeof window.pwned;")?,
        json!("undefined")
    );
    let reasons = cell("td.reasons")?;
    assert!(
        reasons
            .as_str()
            .is_some_and(|text| text.contains("churn more")),
        "the top reasons in words: {reasons}"
    );

    // Acknowledge from the page, signed in as ana: the store says so, the row follows in place.
    browser.click(&browser.find(&format!("{row} button.ack"))?)?;
    browser.wait_for(&format!(
        "document.querySelector('{row}').dataset.state === 'acknowledged'"
    ))?;
    let stored = server
        .alerts
        .clone()
        .get_alert(proto::GetAlertRequest {
            alert_id: id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!(stored.state(), proto::AlertState::Acknowledged);
    assert_eq!(stored.acknowledged_by, "ana");

    // Resolve another alert from the page: outcome and note reach the store.
    let other = alert_id(&server.score(server.profile(1, "resolve-me")).await?)?;
    let other_row = format!("tr[data-alert-id=\"{other}\"]");
    browser.wait_for(&format!("document.querySelector('{other_row}') !== null"))?;
    browser.click(&browser.find(&format!("{other_row} button.resolve"))?)?;
    browser.wait_for("document.querySelector('#resolve-dialog').open")?;
    browser.click(&browser.find("#resolve-outcome option[value=\"false_alarm\"]")?)?;
    browser.type_into(&browser.find("#resolve-note")?, "called: no plan to leave")?;
    browser.click(&browser.find("#resolve-submit")?)?;
    browser.wait_for(&format!("document.querySelector('{other_row}') === null"))?;
    let stored = server
        .alerts
        .clone()
        .get_alert(proto::GetAlertRequest { alert_id: other })
        .await?
        .into_inner();
    assert_eq!(stored.state(), proto::AlertState::Resolved);
    assert_eq!(stored.outcome(), proto::AlertOutcome::FalseAlarm);
    assert_eq!(stored.resolution_note, "called: no plan to leave");
    assert_eq!(stored.resolved_by, "ana");

    // Resolved elsewhere (over gRPC): the row leaves the queue live, without a reload.
    server
        .alerts
        .clone()
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: id.clone(),
            outcome: proto::AlertOutcome::Retained.into(),
            note: "offered a one-year contract".into(),
            // Signed in as `root`: the server records the caller, so `by` stays empty.
            by: String::new(),
        })
        .await?;
    browser.wait_for(&format!("document.querySelector('{row}') === null"))?;

    // The customer view: score history and contributions charts, the alert's outcome.
    let encoded = browser.run(&format!(
        "return encodeURIComponent({});",
        serde_json::to_string(HOSTILE_ID)?
    ))?;
    browser.goto(&format!(
        "http://{addr}/console#/customer/{}",
        encoded.as_str().unwrap_or_default()
    ))?;
    // Raising risk and lowering it, both drawn.
    browser.wait_for("document.querySelector('svg.contributions rect.raising') !== null")?;
    browser.wait_for("document.querySelector('svg.contributions rect.lowering') !== null")?;
    browser.screenshot("customer")?;
    assert_eq!(
        browser.run("return document.querySelector('h2 .customer-id').textContent;")?,
        json!(HOSTILE_ID)
    );
    assert_eq!(
        browser.run("return document.querySelectorAll('svg.history circle').length;")?,
        json!(1)
    );
    let outcome =
        browser.run("return document.querySelector('main table tbody tr').textContent;")?;
    assert!(
        outcome.as_str().is_some_and(
            |text| text.contains("retained") && text.contains("offered a one-year contract")
        ),
        "{outcome}"
    );
    assert_eq!(
        browser.run("return typeof window.pwned;")?,
        json!("undefined")
    );

    // The model view: the card and the outcome shares.
    browser.goto(&format!("http://{addr}/console#/model"))?;
    browser.wait_for("document.querySelector('#stats') !== null")?;
    let stats = browser.run("return document.querySelector('#stats').textContent;")?;
    assert!(
        stats
            .as_str()
            .is_some_and(|text| text.contains("50.0%of resolved: retained")),
        "{stats}"
    );
    browser.screenshot("model")?;

    // Signing out ends the session: back to the form, and the API refuses the old cookie.
    browser.goto(&format!("http://{addr}/console#/"))?;
    browser.wait_for("document.querySelector('#sign-out').offsetParent !== null")?;
    browser.click(&browser.find("#sign-out")?)?;
    browser.wait_for("document.querySelector('#sign-in-form') !== null")?;
    browser.goto(&format!("http://{addr}/console"))?;
    browser.wait_for("document.querySelector('#sign-in-form') !== null")?;

    // An admin signs in and reads the audit log: ana's sign-in, actions and sign-out are there.
    browser.type_into(&browser.find("#sign-in-token")?, ROOT)?;
    browser.click(&browser.find("#sign-in-submit")?)?;
    browser.wait_for("document.querySelector('#nav-audit').hidden === false")?;
    browser.goto(&format!("http://{addr}/console#/audit"))?;
    browser.wait_for(
        "[...document.querySelectorAll('#audit-body td.action')].some((cell) => \
         cell.textContent === 'console.sign_out')",
    )?;
    browser.screenshot("audit")?;
    let rows = browser.run(
        "return [...document.querySelectorAll('#audit-body tr')].map((row) => \
         row.querySelector('td.actor').textContent + ' ' + \
         row.querySelector('td.action').textContent);",
    )?;
    for expected in [
        "ana console.sign_in",
        "ana alert.acknowledge",
        "ana alert.resolve",
        "ana console.sign_out",
        "anonymous console.sign_in_refused",
        "root console.sign_in",
    ] {
        assert!(
            rows.as_array()
                .is_some_and(|rows| rows.iter().any(|row| row == expected)),
            "{expected} in {rows}"
        );
    }
    server.server.shutdown().await?;
    Ok(())
}

/// Signs in with `token`; returns the answer and the `name=value` of its cookie.
fn sign_in(
    addr: SocketAddr,
    token: &str,
) -> anyhow::Result<(crate::browser::HttpResponse, String)> {
    let answer = http(
        addr,
        "POST",
        "/console/api/sign-in",
        &[("Content-Type", "application/json")],
        Some(&json!({ "token": token }).to_string()),
    )?;
    let cookie = answer
        .header("set-cookie")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    Ok((answer, cookie))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_with_their_own_token_and_the_console_keeps_the_store_rules()
-> anyhow::Result<()> {
    let (server, addr) = console_server().await?;
    let id = alert_id(&server.score(server.profile(1, "api-1")).await?)?;
    let get = |path: &str, headers: &[(&str, &str)]| http(addr, "GET", path, headers, None);
    let post = |path: &str, body: &str| {
        http(
            addr,
            "POST",
            path,
            &[BEARER, ("Content-Type", "application/json")],
            Some(body),
        )
    };

    // The page is the sign-in form; the data needs a session or a token; no token in a URL.
    let page = get("/console", &[])?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("console.js"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("script-src 'self'") && !csp.contains("unsafe-inline")),
        "{:?}",
        page.headers
    );
    assert_eq!(get(&format!("/console?token={ANA}"), &[])?.status, 400);
    assert_eq!(get("/console/api/alerts", &[])?.status, 401);
    assert_eq!(get("/console/api/me", &[])?.status, 401);
    let wrong = get("/console/api/stats", &[("Authorization", "Bearer nope")])?;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.json()?["error"]
            .as_str()
            .unwrap_or("")
            .contains("token")
    );

    // Sign-in: a wrong token, a caller who is no agent, then ana.
    assert_eq!(sign_in(addr, "churn_wrong")?.0.status, 401);
    let (scorer, _) = sign_in(addr, CRM)?;
    assert_eq!(scorer.status, 403);
    assert!(
        scorer.body.contains("lacks the `agent` role"),
        "{}",
        scorer.body
    );
    let (signed_in, ana) = sign_in(addr, ANA)?;
    assert_eq!(signed_in.status, 200);
    assert_eq!(signed_in.json()?["name"], json!("ana"));
    let set_cookie = signed_in.header("set-cookie").unwrap_or("");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(
        !set_cookie.contains(ANA),
        "the cookie is a session, not the token"
    );
    let me = get("/console/api/me", &[("Cookie", &ana)])?.json()?;
    assert_eq!(me, json!({ "auth": true, "name": "ana", "admin": false }));
    // A cross-site page cannot sign anyone in.
    let foreign = http(
        addr,
        "POST",
        "/console/api/sign-in",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        Some(&json!({ "token": ANA }).to_string()),
    )?;
    assert_eq!(foreign.status, 403);

    // Acting as someone else is refused; acting as oneself records the signed-in name.
    let as_cookie = |path: &str, body: &str| {
        http(
            addr,
            "POST",
            path,
            &[("Cookie", &ana), ("Content-Type", "application/json")],
            Some(body),
        )
    };
    let other = as_cookie(
        &format!("/console/api/alerts/{id}/acknowledge"),
        r#"{"by": "mallory"}"#,
    )?;
    assert_eq!(other.status, 403);
    assert_eq!(
        other.json()?["error"],
        json!("`by` is `mallory` but you are signed in as `ana`; leave `by` empty")
    );
    assert_eq!(other.json()?["field"], json!("by"));

    // The audit log is for admins.
    assert_eq!(get("/console/api/audit", &[("Cookie", &ana)])?.status, 403);
    let root = (
        "Authorization",
        "Bearer churn_root-token-for-tests-0123456789",
    );
    // Entries are written in the background, within moments.
    let audit_until = |query: &str, count: usize| -> anyhow::Result<serde_json::Value> {
        for _ in 0..50 {
            let page = get(&format!("/console/api/audit?{query}"), &[root])?.json()?;
            if page["entries"]
                .as_array()
                .is_some_and(|entries| entries.len() >= count)
            {
                return Ok(page);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        anyhow::bail!("fewer than {count} audit entries for {query}")
    };
    let audit = audit_until("actor=ana", 2)?;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| entry["action"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(actions, ["alert.acknowledge", "console.sign_in"], "{audit}");
    assert!(
        audit["entries"][0]["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("PERMISSION_DENIED")),
        "{audit}"
    );
    // The wrong token and the scorer: two reasons, an entry each.
    let refused = audit_until("action=console.sign_in_refused", 2)?;
    assert_eq!(
        refused["entries"].as_array().map(Vec::len),
        Some(2),
        "{refused}"
    );
    assert!(
        refused["entries"][0]["peer"]
            .as_str()
            .is_some_and(|peer| peer.starts_with("127.0.0.1:")),
        "{refused}"
    );

    // A second session; signing out ends one, not the other.
    let (_, second) = sign_in(addr, ANA)?;
    let signed_out = http(
        addr,
        "POST",
        "/console/api/sign-out",
        &[("Cookie", &second), ("Content-Type", "application/json")],
        Some("{}"),
    )?;
    assert_eq!(signed_out.status, 200);
    assert!(
        signed_out
            .header("set-cookie")
            .is_some_and(|cookie| cookie.contains("Max-Age=0")),
        "{:?}",
        signed_out.headers
    );
    assert_eq!(
        get("/console/api/alerts", &[("Cookie", &second)])?.status,
        401
    );
    assert_eq!(get("/console/api/alerts", &[("Cookie", &ana)])?.status, 200);

    // The queue, in the API.
    let queue = get("/console/api/alerts", &[BEARER])?.json()?;
    assert_eq!(queue["total"], json!(1));
    assert_eq!(queue["alerts"][0]["customer_id"], json!("api-1"));

    // Actions follow the store's rules, with errors that name the field.
    let acknowledge = format!("/console/api/alerts/{id}/acknowledge");
    let resolve = format!("/console/api/alerts/{id}/resolve");
    let form = http(
        addr,
        "POST",
        &acknowledge,
        &[BEARER, ("Content-Type", "text/plain")],
        Some("{}"),
    )?;
    assert_eq!(form.status, 415, "a cross-site form cannot act");
    let foreign = http(
        addr,
        "POST",
        &acknowledge,
        &[
            BEARER,
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        Some("{}"),
    )?;
    assert_eq!(foreign.status, 403);
    let unknown = post("/console/api/alerts/999999/acknowledge", "{}")?;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()?["field"], json!("alert_id"));
    let bad_outcome = post(&resolve, r#"{"outcome": "MAYBE"}"#)?;
    assert_eq!(bad_outcome.status, 400);
    assert_eq!(bad_outcome.json()?["field"], json!("outcome"));
    assert!(bad_outcome.body.contains("`MAYBE` is not an outcome"));
    let extra = post(&resolve, r#"{"outcome": "retained", "score": 1}"#)?;
    assert_eq!(extra.status, 400);
    assert!(
        extra.body.contains("unknown field `score`"),
        "{}",
        extra.body
    );
    let long_note = json!({ "outcome": "retained", "note": "x".repeat(2001) }).to_string();
    assert_eq!(post(&resolve, &long_note)?.json()?["field"], json!("note"));
    assert_eq!(post(&acknowledge, r#"{"by": "ana"}"#)?.status, 200);
    let twice = post(&acknowledge, "{}")?;
    assert_eq!(twice.status, 409);
    assert!(twice.body.contains("is acknowledged"), "{}", twice.body);
    let resolved = post(&resolve, r#"{"outcome": "CHURNED", "note": "moved away"}"#)?;
    assert_eq!(resolved.status, 200);
    assert_eq!(resolved.json()?["outcome"], json!("churned"));
    assert_eq!(post(&resolve, r#"{"outcome": "retained"}"#)?.status, 409);
    // Nothing above changed the alert but the two good calls.
    let stored = get(&format!("/console/api/alerts/{id}"), &[BEARER])?.json()?;
    assert_eq!(stored["acknowledged_by"], json!("ana"));
    assert_eq!(stored["note"], json!("moved away"));

    // Filters are checked by name.
    let band = get("/console/api/alerts?band=URGENT", &[BEARER])?;
    assert_eq!(band.status, 400);
    assert_eq!(band.json()?["field"], json!("band"));
    let limit = get("/console/api/alerts?limit=many", &[BEARER])?;
    assert_eq!(limit.json()?["field"], json!("limit"));

    // A customer's history: every score, the latest last.
    for index in [2, 3] {
        server.score(server.profile(index, "api-1")).await?;
    }
    let customer = get("/console/api/customer?id=api-1", &[BEARER])?.json()?;
    let history = customer["history"].as_array().cloned().unwrap_or_default();
    assert!(!history.is_empty(), "{customer}");
    assert_eq!(history.last(), Some(&customer["last"]));
    let alerts = customer["alerts"].as_array().cloned().unwrap_or_default();
    assert!(
        alerts
            .iter()
            .any(|alert| alert["id"].as_i64() == id.parse().ok()),
        "{customer}"
    );
    let nobody = get("/console/api/customer?id=nobody", &[BEARER])?;
    assert_eq!(nobody.status, 404);

    // The live feed replays after a cursor, each event with its cursor as id.
    let (status, mut feed) = open_stream(addr, "/console/api/events?after=0", &[BEARER])?;
    assert_eq!(status, 200);
    let mut kinds = Vec::new();
    let mut line = String::new();
    while kinds.len() < 3 {
        line.clear();
        feed.read_line(&mut line)?;
        if let Some(data) = line.strip_prefix("data: ") {
            let event: serde_json::Value = serde_json::from_str(data.trim())?;
            kinds.push(event["kind"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(kinds, ["raised", "acknowledged", "resolved"]);

    // The server still serves after all of it.
    assert_eq!(get("/console/api/stats", &[BEARER])?.status, 200);
    // With credentials, /metrics wants a `metrics` token, and an agent's is not one.
    assert_eq!(get("/metrics", &[])?.status, 401);
    assert_eq!(get("/metrics", &[BEARER])?.status, 403);

    // Revoking ana's token ends her sessions at once, and her token with them.
    let file = server
        .server
        .callers()
        .map(|callers| callers.file().to_path_buf())
        .ok_or_else(|| anyhow::anyhow!("no credentials"))?;
    std::fs::write(&file, credentials(false))?;
    server
        .server
        .callers()
        .map(|callers| callers.reload())
        .transpose()
        .map_err(anyhow::Error::msg)?;
    assert_eq!(get("/console/api/alerts", &[("Cookie", &ana)])?.status, 401);
    assert_eq!(get("/console/api/alerts", &[BEARER])?.status, 401);
    assert_eq!(sign_in(addr, ANA)?.0.status, 401);
    server.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_console_answers_only_to_loopback_names() -> anyhow::Result<()> {
    let server = start_alerts(ALERT_ON_EVERY_SCORE, ServeOptions::default()).await?;
    let addr = server.server.metrics_addr();
    let page = http(addr, "GET", "/console", &[], None)?;
    assert_eq!(page.status, 200);
    let local = http(addr, "GET", "/console", &[("Host", "localhost:9464")], None)?;
    assert_eq!(local.status, 200);
    // A page elsewhere reaching the port through DNS rebinding names its own host.
    let rebound = http(
        addr,
        "GET",
        "/console/api/alerts",
        &[("Host", "evil.example:9464")],
        None,
    )?;
    assert_eq!(rebound.status, 403);
    assert!(rebound.body.contains("evil.example"), "{}", rebound.body);
    // No sign-in here: anyone on the loopback acts under the name they give.
    let me = http(addr, "GET", "/console/api/me", &[], None)?.json()?;
    assert_eq!(me, json!({ "auth": false, "name": null, "admin": true }));
    let sign_in = http(
        addr,
        "POST",
        "/console/api/sign-in",
        &[("Content-Type", "application/json")],
        Some(r#"{"token": "x"}"#),
    )?;
    assert_eq!(sign_in.status, 409);
    server.server.shutdown().await?;
    Ok(())
}
