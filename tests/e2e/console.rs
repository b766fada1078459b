//! The agent console (issue 9) end to end: Debian's headless chromium opens the page, an alert
//! raised by a gRPC Score call appears live, clicking Acknowledge changes the store, hostile text
//! from a profile stays text; and the console's API keeps the store's rules and its token.

use std::io::BufRead;
use std::net::SocketAddr;

use churn_api::proto;
use churn_serve::ServeOptions;
use serde_json::json;

use crate::alerts::{ALERT_ON_EVERY_SCORE, AlertServer, start_alerts};
use crate::browser::{Browser, http, open_stream};

const TOKEN: &str = "console-token-for-tests-0123";
const BEARER: (&str, &str) = ("Authorization", "Bearer console-token-for-tests-0123");

/// A customer id and an assignee that would run script if the page ever treated them as HTML.
const HOSTILE_ID: &str = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";
const HOSTILE_ASSIGNEE: &str = "<b onmouseover=\"window.pwned=3\">Mallory</b>";

async fn console_server() -> anyhow::Result<(AlertServer, SocketAddr)> {
    let options = ServeOptions {
        console_token: Some(TOKEN.into()),
        ..ServeOptions::default()
    };
    let server = start_alerts(ALERT_ON_EVERY_SCORE, options).await?;
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
    // The token link sets the cookie and takes the token out of the address bar.
    browser.goto(&format!("http://{addr}/console?token={TOKEN}"))?;
    browser.wait_for("document.body.dataset.live === 'connected'")?;
    assert_eq!(
        browser.run("return location.pathname + location.search;")?,
        json!("/console")
    );

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

    // Acknowledge from the page, as agent Dana: the store says so, the row follows in place.
    browser.type_into(&browser.find("#agent")?, "Dana")?;
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
    assert_eq!(stored.acknowledged_by, "Dana");

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
    assert_eq!(stored.resolved_by, "Dana");

    // Resolved elsewhere (over gRPC): the row leaves the queue live, without a reload.
    server
        .alerts
        .clone()
        .resolve_alert(proto::ResolveAlertRequest {
            alert_id: id.clone(),
            outcome: proto::AlertOutcome::Retained.into(),
            note: "offered a one-year contract".into(),
            by: "Sam".into(),
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
    server.server.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_needs_its_token_and_keeps_the_store_rules() -> anyhow::Result<()> {
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

    // No token, a wrong one: refused, and the refusal says how to get in.
    assert_eq!(get("/console", &[])?.status, 401);
    assert_eq!(get("/console/api/alerts", &[])?.status, 401);
    assert_eq!(
        get("/console?token=wrong-token-000000000", &[])?.status,
        401
    );
    let wrong = get("/console/api/stats", &[("Authorization", "Bearer nope")])?;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.json()?["error"]
            .as_str()
            .unwrap_or("")
            .contains("token")
    );
    // The token link: a cookie, then the page with a script-only-from-self policy.
    let link = get(&format!("/console?token={TOKEN}"), &[])?;
    assert_eq!(link.status, 303);
    let cookie = link.header("set-cookie").unwrap_or("").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie_pair = cookie.split(';').next().unwrap_or("");
    let page = get("/console", &[("Cookie", cookie_pair)])?;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("console.js"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.contains("script-src 'self'") && !csp.contains("unsafe-inline")),
        "{:?}",
        page.headers
    );

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
    assert_eq!(post(&acknowledge, r#"{"by": "Dana"}"#)?.status, 200);
    let twice = post(&acknowledge, "{}")?;
    assert_eq!(twice.status, 409);
    assert!(twice.body.contains("is acknowledged"), "{}", twice.body);
    let resolved = post(&resolve, r#"{"outcome": "CHURNED", "note": "moved away"}"#)?;
    assert_eq!(resolved.status, 200);
    assert_eq!(resolved.json()?["outcome"], json!("churned"));
    assert_eq!(post(&resolve, r#"{"outcome": "retained"}"#)?.status, 409);
    // Nothing above changed the alert but the two good calls.
    let stored = get(&format!("/console/api/alerts/{id}"), &[BEARER])?.json()?;
    assert_eq!(stored["acknowledged_by"], json!("Dana"));
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
    assert_eq!(get("/metrics", &[])?.status, 200);
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
    server.server.shutdown().await?;
    Ok(())
}
