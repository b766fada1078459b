// The churn agent console: the alert queue (live), a customer view, and a model view.
// Every element is built with textContent or attributes, never from HTML text, so a customer
// id like `<script>` shows as text. No library, no build step: the server embeds this file.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const view = document.getElementById("view");
// The queue shows the most urgent alerts first, this many at most (the count says how many exist).
const MAX_ROWS = 500;
const queue = { alerts: new Map(), total: 0, fresh: new Set(), gone: new Set(), source: null, cursor: 0, filter: { band: "", assignee: "" } };
const BAND_RANK = { low: 1, medium: 2, high: 3 };

/** Builds an element; string children become text nodes. */
function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  return fill(element, attrs, children);
}

/** Builds an SVG element. */
function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG, tag), attrs, children);
}

function fill(element, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    element.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return element;
}

async function call(path, options) {
  const response = await fetch("/console/api/" + path, { credentials: "same-origin", ...options });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
  // Signed out elsewhere, expired, or revoked: back to the sign-in form.
  if (response.status === 401 && session.auth && path !== "sign-in") signInView();
  if (!response.ok) throw new Error((body && body.error) || response.statusText);
  return body;
}

// Who is using the page: with sign-in on (`auth`), the agent signed in; else whoever types a
// name into the Agent box.
const session = { auth: false, name: null, admin: false, known: false };

function post(path, body) {
  return call(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

const agent = document.getElementById("agent");
agent.value = localStorage.getItem("churn-agent") || "";
agent.addEventListener("change", () => localStorage.setItem("churn-agent", agent.value.trim()));

/** Who acts: a signed-in agent is who they signed in as, and the server records that itself. */
const actingAs = () => (session.auth ? "" : agent.value.trim());

function showSession() {
  document.getElementById("agent-label").hidden = session.auth;
  document.getElementById("signed-in").hidden = !(session.auth && session.name);
  document.getElementById("signed-in-name").textContent = session.name || "";
  document.getElementById("nav-audit").hidden = !session.admin || (session.auth && !session.name);
}

/** Asks the server who this page is signed in as; false when sign-in is needed. */
async function whoAmI() {
  const response = await fetch("/console/api/me", { credentials: "same-origin" });
  if (response.status === 401) {
    Object.assign(session, { auth: true, name: null, admin: false, known: true });
    return false;
  }
  const body = await response.json();
  Object.assign(session, { auth: body.auth, name: body.name, admin: body.admin, known: true });
  return true;
}

function signInView() {
  if (queue.source) { queue.source.close(); queue.source = null; }
  session.name = null;
  session.admin = false;
  showSession();
  setLive("signed-out");
  const token = h("input", { id: "sign-in-token", type: "password", autocomplete: "off", required: true, placeholder: "churn_…" });
  const error = h("p", { class: "error", id: "sign-in-error" });
  const form = h("form", { class: "sign-in", id: "sign-in-form", onsubmit: async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const me = await post("sign-in", { token: token.value });
      token.value = "";
      Object.assign(session, { auth: true, name: me.name, admin: me.admin });
      showSession();
      route();
    } catch (failure) {
      error.textContent = failure.message;
    }
  } },
  h("h2", {}, "Sign in"),
  h("p", { class: "muted" }, "Paste your own token (from `churn token add`). What you do is recorded under your name."),
  h("label", {}, "Token ", token),
  error,
  h("button", { class: "primary", id: "sign-in-submit" }, "Sign in"));
  view.replaceChildren(form);
  token.focus();
}

document.getElementById("sign-out").addEventListener("click", async () => {
  try { await post("sign-out", {}); } catch (_) { /* signed out either way */ }
  signInView();
});

const percent = (p) => (p * 100).toFixed(1) + "%";
const money = (v) => (v === null || v === undefined ? "–" : v.toLocaleString(undefined, { maximumFractionDigits: 0 }));
const band = (name) => h("span", { class: "band band-" + name }, name.toUpperCase());
const utc = (seconds) => new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC";

function ago(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return "just now";
  if (delta < 3600) return Math.floor(delta / 60) + " min ago";
  if (delta < 86400) return Math.floor(delta / 3600) + " h ago";
  return Math.floor(delta / 86400) + " d ago";
}

function change(alert) {
  if (alert.previous_probability === null || alert.previous_probability === undefined) {
    return h("span", { class: "muted" }, "first score");
  }
  const points = (alert.probability - alert.previous_probability) * 100;
  const sign = points > 0 ? "+" : points < 0 ? "−" : "±";
  return h("span", { class: points > 0 ? "rise" : points < 0 ? "fall" : "" }, sign + Math.abs(points).toFixed(1) + " pts");
}

function setLive(state) {
  document.body.dataset.live = state;
}

// ---------------------------------------------------------------- the queue

function queueView() {
  const bandSelect = h("select", { id: "filter-band", onchange: (e) => { queue.filter.band = e.target.value; loadQueue(); } },
    h("option", { value: "" }, "All bands"),
    h("option", { value: "medium" }, "MEDIUM and HIGH"),
    h("option", { value: "high" }, "HIGH only"));
  bandSelect.value = queue.filter.band;
  const assignee = h("input", { id: "filter-assignee", placeholder: "any assignee", value: queue.filter.assignee,
    onchange: (e) => { queue.filter.assignee = e.target.value.trim(); loadQueue(); } });
  view.replaceChildren(
    h("h2", {}, "Open alerts ", h("span", { id: "queue-count", class: "muted" })),
    h("div", { class: "filters" },
      h("label", {}, "Band ", bandSelect),
      h("label", {}, "Assigned to ", assignee),
      h("span", { class: "muted" }, "Overdue first, then by revenue at risk (probability × customer value).")),
    h("p", { class: "error", id: "queue-error" }),
    h("table", { id: "queue" },
      h("thead", {}, h("tr", {},
        ["Customer", "Risk", "Band", "Change", "Revenue at risk", "Why", "Raised", "Assigned", "State", ""].map((title) => h("th", {}, title)))),
      h("tbody", { id: "queue-body" })));
  loadQueue();
}

function filterQuery() {
  const params = new URLSearchParams();
  if (queue.filter.band) params.set("band", queue.filter.band);
  if (queue.filter.assignee) params.set("assignee", queue.filter.assignee);
  return params;
}

async function loadQueue() {
  const params = filterQuery();
  params.set("state", "open,acknowledged");
  params.set("limit", String(MAX_ROWS));
  try {
    const page = await call("alerts?" + params);
    queue.alerts = new Map(page.alerts.map((alert) => [alert.id, alert]));
    queue.total = page.total;
    queue.gone = new Set();
    renderQueue();
    follow(page.cursor);
  } catch (error) {
    showQueueError(error);
  }
}

/**
 * Follows every alert event after `cursor`, unfiltered: an alert that leaves the filter (its
 * band drops, it is reassigned) must leave the queue too. The browser reconnects by itself,
 * resuming from the last event id; if it gives up (the server refused it), try again shortly.
 */
function follow(cursor) {
  if (queue.source) queue.source.close();
  queue.cursor = cursor;
  const source = new EventSource("/console/api/events?after=" + cursor);
  source.onopen = () => setLive("connected");
  source.onerror = () => {
    setLive("reconnecting");
    if (source.readyState === EventSource.CLOSED && queue.source === source) {
      setTimeout(() => { if (queue.source === source) follow(queue.cursor); }, 5000);
    }
  };
  source.addEventListener("alert", (message) => {
    queue.cursor = Number(message.lastEventId) || queue.cursor;
    apply(JSON.parse(message.data));
  });
  source.addEventListener("end", () => setLive("reconnecting"));
  queue.source = source;
}

function inQueue(alert) {
  return alert.state !== "resolved"
    && (!queue.filter.band || BAND_RANK[alert.band] >= BAND_RANK[queue.filter.band])
    && (!queue.filter.assignee || alert.assignee === queue.filter.assignee);
}

function apply(event) {
  const alert = event.alert;
  // The total counts alerts beyond the rows shown. The list and the feed may both bring the
  // same change, and an action's answer comes before its event: count each arrival and each
  // departure once.
  const shown = queue.alerts.has(alert.id);
  if (inQueue(alert)) {
    // New to the queue: raised, or now matching the filter (unless it was only hidden by the row limit).
    if (!shown && !queue.gone.has(alert.id) && (event.kind === "raised" || queue.total <= queue.alerts.size)) queue.total += 1;
    if (!queue.gone.has(alert.id)) queue.alerts.set(alert.id, alert);
  } else if (shown || (alert.state === "resolved" && !queue.gone.has(alert.id) && queue.total > queue.alerts.size)) {
    queue.total = Math.max(0, queue.total - 1);
    queue.alerts.delete(alert.id);
    if (alert.state === "resolved") queue.gone.add(alert.id);
  }
  if (event.kind === "raised" || event.kind === "escalated") queue.fresh.add(alert.id);
  if (document.getElementById("queue-body")) renderQueue();
}

function urgency(a, b) {
  return (b.escalation_level - a.escalation_level)
    || ((b.revenue_at_risk ?? -1) - (a.revenue_at_risk ?? -1))
    || (b.probability - a.probability)
    || (a.id - b.id);
}

function renderQueue() {
  const body = document.getElementById("queue-body");
  const alerts = [...queue.alerts.values()].sort(urgency).slice(0, MAX_ROWS);
  for (const alert of [...queue.alerts.values()]) {
    if (queue.alerts.size > MAX_ROWS && !alerts.includes(alert)) queue.alerts.delete(alert.id);
  }
  const total = Math.max(queue.total, alerts.length);
  document.getElementById("queue-count").textContent = "(" + (total > alerts.length ? alerts.length + " most urgent of " + total : alerts.length) + ")";
  body.replaceChildren(...alerts.map(alertRow));
  if (!alerts.length) body.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No open alerts. New ones appear here as they are raised.")));
  queue.fresh.clear();
}

function alertRow(alert) {
  const reasons = alert.reasons.filter((reason) => reason.contribution > 0).slice(0, 3);
  const actions = h("td", { class: "actions" });
  if (alert.state === "open") {
    actions.append(h("button", { class: "ack", onclick: (e) => acknowledge(alert, e.target) }, "Acknowledge"));
  }
  actions.append(h("button", { class: "resolve", onclick: () => openResolve(alert) }, "Resolve…"));
  const state = h("td", { class: "state" }, alert.state);
  if (alert.escalation_level > 0) state.append(h("div", { class: "escalated" }, "escalated ×" + alert.escalation_level));
  return h("tr", { "data-alert-id": alert.id, "data-state": alert.state, class: queue.fresh.has(alert.id) ? "fresh" : null },
    h("td", { class: "customer" }, h("a", { href: "#/customer/" + encodeURIComponent(alert.customer_id) }, alert.customer_id)),
    h("td", { class: "number" }, percent(alert.probability)),
    h("td", {}, band(alert.band)),
    h("td", { class: "number" }, change(alert)),
    h("td", { class: "number" }, money(alert.revenue_at_risk)),
    h("td", { class: "reasons" }, reasons.length ? h("ul", {}, reasons.map((reason) => h("li", {}, reason.message))) : h("span", { class: "muted" }, alert.triggers.join("; "))),
    h("td", { title: utc(alert.raised_at) }, ago(alert.raised_at)),
    h("td", { class: "assignee" }, alert.assignee || alert.team ? [alert.assignee || "", alert.team ? h("div", { class: "muted" }, alert.team) : null] : h("span", { class: "muted" }, "unassigned")),
    state,
    actions);
}

function showQueueError(error) {
  const line = document.getElementById("queue-error");
  if (line) line.textContent = error.message;
}

async function acknowledge(alert, button) {
  button.disabled = true;
  try {
    const updated = await post("alerts/" + alert.id + "/acknowledge", { by: actingAs() });
    apply({ kind: "acknowledged", alert: updated });
  } catch (error) {
    button.disabled = false;
    showQueueError(error);
  }
}

const dialog = document.getElementById("resolve-dialog");
let resolving = null;

function openResolve(alert) {
  resolving = alert;
  document.getElementById("resolve-title").textContent = "#" + alert.id + " · " + alert.customer_id;
  document.getElementById("resolve-note").value = "";
  document.getElementById("resolve-error").textContent = "";
  dialog.showModal();
}

document.getElementById("resolve-submit").addEventListener("click", async (event) => {
  event.preventDefault();
  if (!resolving) return;
  try {
    const updated = await post("alerts/" + resolving.id + "/resolve", {
      outcome: document.getElementById("resolve-outcome").value,
      note: document.getElementById("resolve-note").value,
      by: actingAs(),
    });
    apply({ kind: "resolved", alert: updated });
    dialog.close();
    if (location.hash.startsWith("#/customer/")) route();
  } catch (error) {
    document.getElementById("resolve-error").textContent = error.message;
  }
});

// ---------------------------------------------------------------- a customer

let modelInfo = null;
async function model() {
  if (!modelInfo) modelInfo = await call("model");
  return modelInfo;
}

async function customerView(id) {
  view.replaceChildren(h("h2", {}, "Customer ", h("span", { class: "customer-id" }, id)), h("p", { class: "muted" }, "Loading…"));
  let record, info;
  try {
    [record, info] = await Promise.all([call("customer?id=" + encodeURIComponent(id)), model()]);
  } catch (error) {
    view.replaceChildren(h("h2", {}, "Customer ", h("span", { class: "customer-id" }, id)), h("p", { class: "error" }, error.message));
    return;
  }
  const last = record.last;
  const latest = record.alerts[0];
  view.replaceChildren(
    h("h2", {}, "Customer ", h("span", { class: "customer-id" }, record.customer_id)),
    h("div", { class: "cards" },
      card(last ? percent(last.probability) : "–", "latest churn risk"),
      card(last ? band(last.band) : "–", "band"),
      card(last ? utc(last.at) : "–", "scored"),
      card(String(record.history.length), "scores kept")),
    h("div", { class: "charts" },
      h("div", { class: "chart" }, h("h3", {}, "Risk over time"), historyChart(record.history, info.bands)),
      h("div", { class: "chart" },
        h("h3", {}, "Why: contributions to the latest score"),
        latest ? contributionChart(latest.reasons.concat(latest.lowering || [])) : h("p", { class: "muted" }, "No alert, so no reasons kept."),
        latest ? h("p", { class: "muted" }, "Reasons of the score at " + utc(latest.updated_at) + " (log-odds; right raises risk, left lowers it).") : null)),
    h("h3", {}, "Alerts"),
    alertsTable(record.alerts));
}

function card(value, label) {
  return h("div", { class: "card" }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

function historyChart(points, bands) {
  const width = 560, height = 240, left = 44, right = 12, top = 12, bottom = 30;
  const chart = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "risk over time", class: "history" });
  const x0 = points.length ? points[0].at : 0;
  const x1 = points.length ? points[points.length - 1].at : 1;
  const x = (at) => left + (x1 === x0 ? (width - left - right) / 2 : ((at - x0) / (x1 - x0)) * (width - left - right));
  const y = (p) => top + (1 - p) * (height - top - bottom);
  chart.append(s("rect", { x: left, y: top, width: width - left - right, height: height - top - bottom, fill: "none", stroke: "#ccc" }));
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(s("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, percent(tick).replace(".0", "")));
  }
  for (const [name, cut] of [["medium", bands.medium], ["high", bands.high]]) {
    chart.append(s("line", { x1: left, x2: width - right, y1: y(cut), y2: y(cut), stroke: name === "high" ? "#b3261e" : "#b86e00", "stroke-dasharray": "4 4" }),
      s("text", { x: width - right - 4, y: y(cut) - 4, "text-anchor": "end" }, name.toUpperCase()));
  }
  if (points.length) {
    chart.append(s("polyline", { fill: "none", stroke: "#1f5fa8", "stroke-width": 2, points: points.map((p) => x(p.at) + "," + y(p.probability)).join(" ") }));
    for (const point of points) {
      chart.append(s("circle", { cx: x(point.at), cy: y(point.probability), r: 3, fill: "#1f5fa8" }, s("title", {}, utc(point.at) + ": " + percent(point.probability))));
    }
    chart.append(s("text", { x: left, y: height - 10 }, utc(x0)), s("text", { x: width - right, y: height - 10, "text-anchor": "end" }, utc(x1)));
  }
  return chart;
}

function contributionChart(reasons) {
  const rows = [...reasons].sort((a, b) => b.contribution - a.contribution);
  const width = 560, row = 26, label = 230, height = rows.length * row + 10;
  const largest = Math.max(1e-9, ...rows.map((r) => Math.abs(r.contribution)));
  const mid = label + (width - label) / 2, half = (width - label) / 2 - 40;
  const chart = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "contributions", class: "contributions" });
  chart.append(s("line", { x1: mid, x2: mid, y1: 0, y2: height, stroke: "#999" }));
  rows.forEach((reason, index) => {
    const length = (Math.abs(reason.contribution) / largest) * half;
    const raising = reason.contribution > 0;
    const top = 5 + index * row;
    chart.append(
      s("text", { x: label - 8, y: top + 16, "text-anchor": "end" }, reason.feature + (reason.value ? " = " + reason.value : "")),
      s("rect", { x: raising ? mid : mid - length, y: top + 3, width: Math.max(1, length), height: row - 8, fill: raising ? "#b3261e" : "#3b6e3b", class: raising ? "raising" : "lowering" },
        s("title", {}, reason.message)),
      s("text", { x: raising ? mid + length + 4 : mid - length - 4, y: top + 16, "text-anchor": raising ? "start" : "end" }, (raising ? "+" : "") + reason.contribution.toFixed(2)));
  });
  return chart;
}

function alertsTable(alerts) {
  if (!alerts.length) return h("p", { class: "muted" }, "None.");
  return h("table", {},
    h("thead", {}, h("tr", {}, ["Alert", "State", "Band", "Risk", "Raised", "Acknowledged", "Outcome", "Note"].map((t) => h("th", {}, t)))),
    h("tbody", {}, alerts.map((alert) => h("tr", { "data-alert-id": alert.id, "data-state": alert.state },
      h("td", {}, "#" + alert.id),
      h("td", {}, alert.state),
      h("td", {}, band(alert.band)),
      h("td", { class: "number" }, percent(alert.probability)),
      h("td", {}, utc(alert.raised_at)),
      h("td", {}, alert.acknowledged_at ? utc(alert.acknowledged_at) + (alert.acknowledged_by ? " by " + alert.acknowledged_by : "") : "–"),
      h("td", {}, alert.outcome ? alert.outcome.replace("_", " ") : "–"),
      h("td", {}, alert.note || "")))));
}

// ---------------------------------------------------------------- the model and outcomes

async function modelView() {
  view.replaceChildren(h("h2", {}, "Model & outcomes"), h("p", { class: "muted" }, "Loading…"));
  let info, stats;
  try {
    [info, stats] = await Promise.all([call("model"), call("stats")]);
  } catch (error) {
    view.replaceChildren(h("h2", {}, "Model & outcomes"), h("p", { class: "error" }, error.message));
    return;
  }
  modelInfo = info;
  const share = (value) => (value === null || value === undefined ? "–" : percent(value));
  const hours = (seconds) => (seconds === null || seconds === undefined ? "–" : seconds < 3600 ? Math.round(seconds / 60) + " min" : (seconds / 3600).toFixed(1) + " h");
  const resolved = Object.values(stats.by_outcome).reduce((sum, n) => sum + n, 0);
  view.replaceChildren(
    h("h2", {}, "Is acting on alerts working?"),
    h("div", { class: "cards", id: "stats" },
      card(String(stats.total), "alerts"),
      card(String(stats.by_state.open ?? 0), "open"),
      card(String(stats.by_state.acknowledged ?? 0), "acknowledged"),
      card(String(resolved), "resolved"),
      card(share(stats.retained_share), "of resolved: retained"),
      card(share(stats.churned_share), "of resolved: churned"),
      card(hours(stats.median_seconds_to_acknowledge), "median time to acknowledge"),
      card(String(stats.overdue), "overdue now"),
      card(String(stats.escalated), "ever escalated")),
    h("table", { class: "narrow" }, h("thead", {}, h("tr", {}, h("th", {}, "Outcome"), h("th", {}, "Alerts"))),
      h("tbody", {}, ["retained", "churned", "false_alarm", "not_reached"].map((o) => h("tr", {}, h("td", {}, o.replace("_", " ")), h("td", { class: "number" }, String(stats.by_outcome[o] ?? 0)))))),
    h("h2", {}, "Model ", h("span", { class: "muted" }, info.name + " · " + info.kind + " · version " + info.version)),
    h("div", { class: "cards" },
      ...Object.entries(info.metrics).map(([name, value]) => card(typeof value === "number" ? value.toFixed(3) : "–", name)),
      card(String(info.training_rows), "training rows"),
      card(info.calibration, "calibration"),
      card(percent(info.bands.medium) + " / " + percent(info.bands.high), "MEDIUM / HIGH from")),
    h("p", { class: "muted" }, "Trained " + info.trained_at + ", loaded " + info.loaded_at + "."),
    h("iframe", { class: "card-frame", src: "/console/model-card", sandbox: "", title: "model card" }));
}

// ---------------------------------------------------------------- routes

// ---------------------------------------------------------------- the audit log (admins)

async function auditView() {
  const actor = h("input", { id: "audit-actor", placeholder: "any actor" });
  const action = h("input", { id: "audit-action", placeholder: "any action" });
  const body = h("tbody", { id: "audit-body" });
  const error = h("p", { class: "error", id: "audit-error" });
  const load = async () => {
    const params = new URLSearchParams({ limit: "200" });
    if (actor.value.trim()) params.set("actor", actor.value.trim());
    if (action.value.trim()) params.set("action", action.value.trim());
    error.textContent = "";
    try {
      const page = await call("audit?" + params);
      body.replaceChildren(...page.entries.map((entry) => h("tr", { "data-audit-id": entry.id },
        h("td", { class: "number" }, entry.id),
        h("td", {}, utc(entry.at)),
        h("td", { class: "actor" }, entry.actor),
        h("td", { class: "action" }, entry.action),
        h("td", { class: "target" }, entry.target),
        h("td", { class: "detail" }, entry.detail),
        h("td", { class: "muted" }, entry.peer))));
      if (!page.entries.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No entries.")));
    } catch (failure) {
      error.textContent = failure.message;
    }
  };
  actor.addEventListener("change", load);
  action.addEventListener("change", load);
  view.replaceChildren(
    h("h2", {}, "Audit log"),
    h("div", { class: "filters" }, h("label", {}, "Actor ", actor), h("label", {}, "Action ", action),
      h("span", { class: "muted" }, "Newest first: sign-ins, alert actions, reloads, refused calls.")),
    error,
    h("table", { id: "audit" },
      h("thead", {}, h("tr", {}, ["#", "When", "Actor", "Action", "Target", "Detail", "Peer"].map((title) => h("th", {}, title)))),
      body));
  await load();
}

async function route() {
  if (!session.known && !(await whoAmI())) return signInView();
  if (session.auth && !session.name) return signInView();
  showSession();
  const hash = location.hash || "#/";
  document.getElementById("nav-queue").classList.toggle("current", hash === "#/");
  document.getElementById("nav-model").classList.toggle("current", hash === "#/model");
  document.getElementById("nav-audit").classList.toggle("current", hash === "#/audit");
  if (hash === "#/audit") auditView();
  else if (hash.startsWith("#/customer/")) {
    let id = hash.slice("#/customer/".length);
    try { id = decodeURIComponent(id); } catch (_) { /* shown as typed */ }
    customerView(id);
  }
  else if (hash === "#/model") modelView();
  else queueView();
}

window.addEventListener("hashchange", route);
route();
