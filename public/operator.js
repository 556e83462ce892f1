// The operator console: what needs a person (credits waiting or stuck, dead-lettered events,
// webhook events that did not parse), one PaymentIntent or account looked up by id, what Stripe
// is doing (the governor, calls per minute) and what the service did (activity charts). No
// build step; plain DOM. Everything shown comes from the operator API (/operator/*), called
// with the operator's token in the Authorization header.
//
// The token is the key to every operator route, so it goes nowhere else: a module variable and
// this tab's sessionStorage (a reload keeps it, closing the tab forgets it), never
// localStorage, a cookie, a URL, a query or a hash. The page's Content-Security-Policy allows
// only this origin's scripts and connections, so nothing here is inline; and data from the
// service is written with textContent, never parsed as HTML.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "operator-token";
const REFRESH_MS = 15_000;
/** How many entries a list shows; the operator API pages past that. */
const LIST_LIMIT = 100;

/** sessionStorage may be unavailable (a locked-down browser): the token then lives in memory only. */
const stored = {
  get() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(value) {
    try {
      sessionStorage.setItem(TOKEN_KEY, value);
    } catch {
      // memory only
    }
  },
  forget() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // nothing kept
    }
  },
};

const state = {
  token: stored.get(),
  /** "hour" or "day": the Activity section's window (and the Stripe calls'). */
  window: "hour",
  /** Requests sent and not yet answered: the timed refresh waits for none. */
  inFlight: 0,
  /** The refresh running now, which a second one joins rather than repeats. */
  refreshing: null,
  lastRefresh: 0,
  timer: null,
  /** Each Needs-attention row whose journal is open: its PaymentIntent id. */
  openJournals: new Set(),
  /** The id the Look up section shows, and the answer it shows. */
  lookedUp: null,
};

// ---- Formatting -------------------------------------------------------------------------------

const formats = new Map();
/** Minor units as money: 1234 usd is "$12.34" (the currency's own decimals: 1234 jpy is "¥1,234"). */
function money(minor, currency) {
  if (typeof minor !== "number") return "—";
  if (!currency) return minor === 0 ? "0" : `${minor} (minor units)`;
  const iso = currency.toUpperCase();
  try {
    if (!formats.has(iso)) formats.set(iso, new Intl.NumberFormat(undefined, { style: "currency", currency: iso }));
    const f = formats.get(iso);
    return f.format(minor / 10 ** f.resolvedOptions().maximumFractionDigits);
  } catch {
    return `${minor} ${iso} (minor units)`;
  }
}
const signedMoney = (minor, currency) => `${minor > 0 ? "+" : minor < 0 ? "−" : ""}${money(Math.abs(minor), currency)}`;

/** A time as the API gives it (ISO 8601, or ms since the epoch), in the operator's locale. */
function when(value, style = "medium") {
  if (value === null || value === undefined || value === "") return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: style });
}

/** "in 40 s", "3 min ago": how far a time is from now, roughly. */
function fromNow(value) {
  const ms = new Date(value).getTime() - Date.now();
  if (Number.isNaN(ms)) return "";
  const s = Math.round(Math.abs(ms) / 1000);
  const span = s < 90 ? `${s} s` : s < 90 * 60 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  return ms >= 0 ? `in ${span}` : `${span} ago`;
}

const count = (n, one, many = `${one}s`) => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const decimal = (n, digits = 1) => (typeof n === "number" ? n.toLocaleString(undefined, { maximumFractionDigits: digits }) : "—");

// What each state in the operator's list means (src/credit/operator-state.ts names them).
const STATES = {
  verified: "Credit waiting for a retry",
  needs_attention: "Needs a person",
  not_creditable: "Not creditable",
  credited: "Credited",
  credited_wallet_pending: "Credited; wallet not told yet",
  credited_mark_pending: "Credited; mark pending",
  reversal_pending: "Refund or dispute waiting",
  reversal_needs_attention: "Refund or dispute needs a person",
};
const stateName = (s) => STATES[s] ?? s;

// What each kind of ledger line is (README, "A ledger line").
const KINDS = {
  top_up: "Top-up",
  reversal: "Refund or dispute",
  restoration: "Dispute won",
  debit: "Debit",
  hold: "Hold",
  capture: "Hold captured",
  release: "Hold released",
  stripe: "Stripe entry",
};

// ---- DOM helpers ------------------------------------------------------------------------------

/** An element with a class and text (or child nodes); never HTML. */
function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function code(text) {
  return el("code", null, String(text));
}

/** A hidden span: it completes a control's name for a screen reader ("Journal of pi_…"). */
function hiddenText(text) {
  return el("span", "visually-hidden", text);
}

function setStatus(id, text, kind = "", source = "load") {
  const node = $(id);
  // The same words again are not news: a live region that is rewritten is read again.
  if (node.textContent !== text) node.textContent = text;
  node.className = `status ${kind}`;
  node.dataset.source = text ? source : "";
}

/** Clears what a failed load said, once a load succeeds; what an action said stays. */
function clearLoadStatus(id) {
  if ($(id).dataset.source === "load") setStatus(id, "");
}

/**
 * A table cell, labelled with its column for the narrow layout (the stylesheet shows the label
 * beside the value when rows stack). The value sits in one wrapper, one grid item.
 */
function cell(label, content, className = "") {
  const td = el("td", className);
  td.setAttribute("role", "cell");
  td.dataset.label = label;
  td.append(el("div", null, ...(Array.isArray(content) ? content : [content])));
  return td;
}

function rowHeader(label, content) {
  const th = el("th");
  th.scope = "row";
  th.setAttribute("role", "rowheader");
  th.dataset.label = label;
  th.append(el("div", null, ...(Array.isArray(content) ? content : [content])));
  return th;
}

function row(...cells) {
  const tr = el("tr", null, ...cells);
  tr.setAttribute("role", "row");
  return tr;
}

/** A button that says it is busy while `action` runs, and refuses presses meanwhile; it keeps focus. */
function busyButton(target, action) {
  target.addEventListener("click", async () => {
    if (target.getAttribute("aria-disabled") === "true") return;
    // Marked, not `disabled`: a disabled button drops keyboard focus to the page's body.
    target.setAttribute("aria-disabled", "true");
    try {
      await action();
    } finally {
      target.removeAttribute("aria-disabled");
    }
  });
  return target;
}

function button(text, hidden, className = "secondary") {
  const b = el("button", className, text, hidden ? hiddenText(hidden) : null);
  b.type = "button";
  return b;
}

/**
 * Makes `tbody` show one row group per item, in order, reusing the rows of items it already
 * shows: a refresh does not take focus from a button in a row that stays, nor close its journal.
 * `make(key)` builds an item's rows (`{nodes: [tr, …]}`), `fill(group, item)` writes its values.
 * Answers whether focus was in a row that went away.
 */
function reconcile(tbody, groups, items, keyOf, make, fill) {
  const keys = new Set(items.map(keyOf));
  let lostFocus = false;
  for (const [key, group] of groups) {
    if (keys.has(key)) continue;
    if (group.nodes.some((n) => n.contains(document.activeElement))) lostFocus = true;
    for (const n of group.nodes) n.remove();
    groups.delete(key);
  }
  let next = tbody.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    let group = groups.get(key);
    if (!group) {
      group = make(key);
      groups.set(key, group);
    }
    fill(group, item);
    const first = group.nodes[0];
    const last = group.nodes.at(-1);
    // Moved only when out of place: moving a row that holds focus would drop the focus.
    if (first === next) next = last.nextElementSibling;
    else for (const n of group.nodes) tbody.insertBefore(n, next);
  }
  return lostFocus;
}

// ---- The API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `The service answered ${status}.`);
    this.status = status;
    this.code = body?.error?.code ?? null;
  }
}

/**
 * Calls an operator route with the token (the signed-in one unless `token` is given). A 401 or
 * 403 to the signed-in token signs out: the token was rotated, or the routes were turned off.
 */
async function api(path, { method = "GET", token = state.token } = {}) {
  state.inFlight++;
  try {
    let res;
    try {
      // no-store: answers to a bearer token are not kept in the browser's cache.
      res = await fetch(path, { method, headers: { authorization: `Bearer ${token}` }, cache: "no-store" });
    } catch {
      throw new ApiError(0, { error: { message: "The service did not answer. Check the connection and try again." } });
    }
    const body = await res.json().catch(() => null);
    if (res.ok) return body;
    const err = new ApiError(res.status, body);
    if ((res.status === 401 || res.status === 403) && token === state.token && state.token) signOut(refusal(err));
    throw err;
  } finally {
    state.inFlight--;
  }
}

/** What to say when the service refuses the token. */
function refusal(err) {
  if (err.status === 403) return "Operator routes are disabled: OPERATOR_TOKEN is not set on the service.";
  if (err.status === 401) return "The token was refused.";
  return `Could not sign in: ${err.message}`;
}

/** Runs `load` unless the operator signed out (or in again) meanwhile: a late answer paints nothing. */
async function whileSignedIn(load) {
  const token = state.token;
  const result = await load();
  return token === state.token && token ? result : undefined;
}

// ---- Sign in and out --------------------------------------------------------------------------

let signingIn = false;
$("signin-form").addEventListener("submit", async (e) => {
  // Never a native submission: the field has no name, and the policy's form-action is 'none'.
  e.preventDefault();
  const candidate = $("token").value.trim();
  if (signingIn || !candidate) return;
  signingIn = true;
  setStatus("signin-status", "Checking the token…");
  try {
    // The lightest operator route: it answers only to the right token.
    await api("/operator/governor", { token: candidate });
    state.token = candidate;
    stored.set(candidate);
    $("token").value = "";
    setStatus("signin-status", "");
    showConsole(true);
  } catch (err) {
    setStatus("signin-status", refusal(err), "bad");
    $("token").select();
  } finally {
    signingIn = false;
  }
});

$("signout").addEventListener("click", () => signOut("Signed out. The token is forgotten.", ""));

function showConsole(focus) {
  $("signin").hidden = true;
  $("console").hidden = false;
  if (focus) $("attention-title").focus();
  void refreshAll();
}

/** Forgets the token and everything the console showed, and goes back to the sign-in form. */
function signOut(message, kind = "bad") {
  state.token = null;
  stored.forget();
  clearTimeout(state.timer);
  state.timer = null;
  // A refresh on its way paints nothing now (whileSignedIn); a new sign-in does not wait for it.
  state.refreshing = null;
  state.openJournals.clear();
  state.lookedUp = null;
  for (const groups of [attentionRows, deadRows, badRows, callRows]) groups.clear();
  for (const id of ["attention-table", "dead-table", "bad-table", "calls-table"]) {
    $(id).tBodies[0].replaceChildren();
    $(id).hidden = true;
  }
  for (const id of ["attention-empty", "dead-empty", "bad-empty"]) $(id).hidden = true;
  for (const id of ["lookup-result", "governor", "charts"]) $(id).replaceChildren();
  for (const id of ["updated", "waits", "activity-source"]) $(id).textContent = "";
  for (const id of ["attention-status", "dead-status", "bad-status", "lookup-status", "governor-status", "calls-status", "activity-status"]) setStatus(id, "");
  $("lookup-id").value = "";
  $("console").hidden = true;
  $("signin").hidden = false;
  setStatus("signin-status", message, kind);
  $("token").focus();
}

// ---- Refreshing -------------------------------------------------------------------------------

/** Every section at once; a refresh already running is joined, not repeated. */
function refreshAll() {
  if (!state.token) return Promise.resolve();
  if (state.refreshing) return state.refreshing;
  clearTimeout(state.timer);
  const run = Promise.allSettled([loadAttention(), loadEvents(), loadGovernor(), loadMetrics()]).then(() => {
    // A refresh from before a sign-out is no one's to finish (signOut let go of it).
    if (state.refreshing !== run) return;
    state.refreshing = null;
    state.lastRefresh = Date.now();
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    schedule(REFRESH_MS);
  });
  state.refreshing = run;
  return run;
}

/**
 * The next timed refresh, while signed in and the tab is visible. A tick that finds a request
 * in flight (a retry, a look-up) waits a whole interval more: no refresh piles onto another.
 */
function schedule(ms) {
  clearTimeout(state.timer);
  state.timer = null;
  if (!state.token || document.hidden) return;
  state.timer = setTimeout(() => {
    state.timer = null;
    if (!state.token || document.hidden) return;
    if (state.inFlight > 0 || state.refreshing) return schedule(REFRESH_MS);
    void refreshAll();
  }, ms);
}

// A hidden tab refreshes nothing; shown again, it refreshes once if the last one is stale.
document.addEventListener("visibilitychange", () => {
  if (document.hidden || !state.token) return clearTimeout(state.timer);
  const age = Date.now() - state.lastRefresh;
  if (age >= REFRESH_MS && !state.refreshing) void refreshAll();
  else if (!state.refreshing) schedule(REFRESH_MS - age);
});

$("refresh").addEventListener("click", () => {
  setStatus("attention-status", "Refreshing…", "", "load");
  void refreshAll().then(() => {
    if ($("attention-status").textContent === "Refreshing…") setStatus("attention-status", "");
  });
});

// ---- Needs attention --------------------------------------------------------------------------

const attentionRows = new Map();

// Loads overlap (a timed refresh, the one after a retry): only the latest one asked for is
// shown, so an answer from before a retry never puts back the row the retry settled.
let attentionLoads = 0;
async function loadAttention() {
  const seq = ++attentionLoads;
  let page;
  try {
    page = await whileSignedIn(() => api(`/operator/credits?limit=${LIST_LIMIT}`));
  } catch (err) {
    if (state.token && seq === attentionLoads) setStatus("attention-status", `Could not load the list: ${err.message}`, "bad");
    return;
  }
  if (!page || seq !== attentionLoads) return;
  clearLoadStatus("attention-status");
  renderAttention(page.data, page.next_after !== null);
  // An open journal follows its PaymentIntent: read again with the list.
  await Promise.all([...state.openJournals].filter((pi) => attentionRows.has(pi)).map((pi) => loadJournal(pi)));
}

function renderAttention(entries, more) {
  const table = $("attention-table");
  const lostFocus = reconcile(table.tBodies[0], attentionRows, entries, (e) => e.payment_intent_id, attentionGroup, fillAttention);
  for (const pi of state.openJournals) if (!attentionRows.has(pi)) state.openJournals.delete(pi);
  table.hidden = entries.length === 0;
  $("attention-empty").hidden = entries.length > 0;
  table.querySelector("caption").textContent = more
    ? `Credits that need attention: the first ${entries.length}; more are waiting`
    : "Credits that need attention";
  // Focus was on a row that left (its credit was settled): it goes to the section, not the page's top.
  if (lostFocus) $("attention-title").focus();
}

/** A PaymentIntent's two rows: its figures and buttons, and its journal (closed until asked for). */
function attentionGroup(pi) {
  const journalId = `journal-${pi}`;
  const journal = el("button", "secondary", "Journal", hiddenText(` of ${pi}`));
  journal.type = "button";
  journal.setAttribute("aria-expanded", "false");
  journal.setAttribute("aria-controls", journalId);
  const retry = busyButton(button("Retry now", ` ${pi}`, ""), () => retryNow(pi, "attention-status"));
  journal.addEventListener("click", () => toggleJournal(pi));

  const cells = {
    pi: rowHeader("PaymentIntent", [code(pi), el("span", "note")]),
    state: cell("State", [el("span", "state"), el("span", "note")]),
    amount: cell("Amount", "", "num"),
    error: cell("Last error", "", "error-text"),
    retries: cell("Retries", "", "num"),
    next: cell("Next retry", ""),
    actions: cell("", [el("div", "actions", journal, retry)]),
  };
  const main = row(...Object.values(cells));
  main.dataset.pi = pi;
  const detail = row();
  detail.className = "journal-row";
  detail.hidden = true;
  detail.dataset.journalOf = pi;
  const holder = el("td");
  holder.setAttribute("role", "cell");
  holder.colSpan = 7;
  holder.id = journalId;
  detail.append(holder);
  return { nodes: [main, detail], cells, journal, holder };
}

function fillAttention(group, e) {
  const c = group.cells;
  c.pi.querySelector(".note").textContent = e.customer_id ?? "";
  const [label, note] = c.state.firstChild.children;
  label.textContent = stateName(e.state);
  c.state.dataset.state = e.state;
  const owed = e.adjustments.map((a) => `${a.operation}: ${a.direction} ${money(a.amount, e.currency)}, ${a.state}${a.last_error ? ` (${a.last_error})` : ""}`);
  note.textContent = [e.reason, ...owed].filter(Boolean).join(" · ");
  c.amount.firstChild.textContent = money(e.amount, e.currency);
  c.error.firstChild.textContent = e.last_error ?? "—";
  c.retries.firstChild.textContent = String(e.retry_count);
  c.next.firstChild.textContent = e.next_retry_at ? `${when(e.next_retry_at)} (${fromNow(e.next_retry_at)})` : "—";
}

async function toggleJournal(pi) {
  const group = attentionRows.get(pi);
  if (!group) return;
  const open = group.journal.getAttribute("aria-expanded") !== "true";
  group.journal.setAttribute("aria-expanded", String(open));
  group.nodes[1].hidden = !open;
  if (!open) {
    state.openJournals.delete(pi);
    return;
  }
  state.openJournals.add(pi);
  if (!group.holder.firstChild) group.holder.replaceChildren(el("p", "hint", "Loading the journal…"));
  await loadJournal(pi);
}

async function loadJournal(pi) {
  let found;
  try {
    found = await whileSignedIn(() => api(`/operator/credits/${encodeURIComponent(pi)}`));
  } catch (err) {
    const group = attentionRows.get(pi);
    if (group && state.token) group.holder.replaceChildren(el("p", "status bad", `Could not load the journal: ${err.message}`));
    return;
  }
  const group = attentionRows.get(pi);
  if (!found || !group || !state.openJournals.has(pi)) return;
  group.holder.replaceChildren(journalView(found, `Journal of ${pi}`));
}

/** A PaymentIntent's journal, oldest line first: when, which step, its outcome, and any detail. */
function journalView(found, label) {
  const lines = found.journal ?? [];
  const box = el("div", "journal");
  if (found.attempt_started_at) box.append(el("p", "hint", `An attempt is running, since ${when(found.attempt_started_at)}.`));
  if (found.wallet_pending?.length) box.append(el("p", "hint", `Not yet in the account's wallet: ${found.wallet_pending.join(", ")}.`));
  if (lines.length === 0) {
    box.append(el("p", "hint", "The journal is empty."));
    return box;
  }
  const list = el("ol", "journal-lines");
  list.setAttribute("aria-label", label);
  for (const line of lines) {
    const li = el("li", null, el("time", "when", when(line.at)), " ", el("strong", null, line.step), " ", el("span", "outcome", line.outcome));
    const at = new Date(line.at);
    if (!Number.isNaN(at.getTime())) li.querySelector("time").dateTime = at.toISOString();
    if (line.detail) li.append(el("span", "detail", line.detail));
    list.append(li);
  }
  box.append(list);
  return box;
}

/** "Retry now": runs the PaymentIntent's work at once, says how it ended, and reads the list again. */
async function retryNow(pi, statusId) {
  setStatus(statusId, `Retrying ${pi}…`, "", "action");
  try {
    const outcome = await whileSignedIn(() => api(`/operator/credits/${encodeURIComponent(pi)}/retry`, { method: "POST" }));
    if (!outcome) return;
    const rec = outcome.record;
    const amount = rec?.amount !== null && rec?.amount !== undefined ? ` ${money(rec.amount, rec.currency)}` : "";
    const said =
      rec?.state === "credited"
        ? { text: `${pi} is credited:${amount} on ${rec.customer_id ?? "its customer"}'s balance.`, kind: "ok" }
        : { text: `${pi} is not credited yet: ${stateName(rec?.state ?? "unknown")}${rec?.last_error ? `; ${rec.last_error}` : ""}.`, kind: "bad" };
    setStatus(statusId, said.text, said.kind, "action");
  } catch (err) {
    if (state.token) setStatus(statusId, `Retry of ${pi} failed: ${err.message}`, "bad", "action");
  }
  if (!state.token) return;
  await loadAttention();
  // The Look up section shows the same PaymentIntent: show it as it is now.
  if (state.lookedUp === pi) await lookUp(pi, { quiet: true });
}

// ---- Events -----------------------------------------------------------------------------------

const deadRows = new Map();
const badRows = new Map();

let eventLoads = 0;
async function loadEvents() {
  const seq = ++eventLoads;
  const [dead, bad] = await Promise.allSettled([
    whileSignedIn(() => api(`/operator/events/dead_letters?limit=${LIST_LIMIT}`)),
    whileSignedIn(() => api(`/operator/events?limit=${LIST_LIMIT}`)),
  ]);
  // As the list above: the latest load asked for wins.
  if (!state.token || seq !== eventLoads) return;
  if (dead.status === "rejected") setStatus("dead-status", `Could not load the dead letters: ${dead.reason.message}`, "bad");
  else if (dead.value) {
    clearLoadStatus("dead-status");
    renderDead(dead.value.data, dead.value.next_after !== null);
  }
  if (bad.status === "rejected") setStatus("bad-status", `Could not load the webhook events: ${bad.reason.message}`, "bad");
  else if (bad.value) {
    clearLoadStatus("bad-status");
    renderBad(bad.value.data);
  }
}

function renderDead(letters, more) {
  const table = $("dead-table");
  const lostFocus = reconcile(table.tBodies[0], deadRows, letters, (d) => d.event.id, deadGroup, fillDead);
  table.hidden = letters.length === 0;
  $("dead-empty").hidden = letters.length > 0;
  table.querySelector("caption").textContent = more ? `Dead-lettered events, newest first: the first ${letters.length}` : "Dead-lettered events, newest first";
  if (lostFocus) $("events-title").focus();
}

function deadGroup(id) {
  const redeliver = busyButton(button("Redeliver", ` ${id}`, ""), () => redeliverEvent(id));
  const cells = {
    id: rowHeader("Event", code(id)),
    type: cell("Type", ""),
    at: cell("Dead-lettered", ""),
    times: cell("Times", "", "num"),
    actions: cell("", [el("div", "actions", redeliver)]),
  };
  const tr = row(...Object.values(cells));
  tr.dataset.event = id;
  return { nodes: [tr], cells };
}

function fillDead(group, d) {
  group.cells.type.firstChild.textContent = d.event.type;
  group.cells.at.firstChild.textContent = when(d.dead_lettered_at);
  group.cells.times.firstChild.textContent = String(d.times);
}

async function redeliverEvent(id) {
  setStatus("dead-status", `Redelivering ${id}…`, "", "action");
  try {
    if (!(await whileSignedIn(() => api(`/operator/events/dead_letters/${encodeURIComponent(id)}/redeliver`, { method: "POST" })))) return;
    setStatus("dead-status", `${id} was sent again.`, "ok", "action");
  } catch (err) {
    if (!state.token) return;
    const text = err.status === 404 ? `${id} is no longer dead-lettered (already redelivered?).` : `Could not redeliver ${id}: ${err.message}`;
    setStatus("dead-status", text, "bad", "action");
  }
  await loadEvents();
}

function renderBad(events) {
  const table = $("bad-table");
  reconcile(
    table.tBodies[0],
    badRows,
    events,
    (e) => e.event_id,
    (id) => {
      const cells = { id: rowHeader("Event", code(id)), type: cell("Type", ""), error: cell("Error", "", "error-text"), at: cell("Received", "") };
      return { nodes: [row(...Object.values(cells))], cells };
    },
    (group, e) => {
      group.cells.type.firstChild.textContent = e.type ?? "—";
      group.cells.error.firstChild.textContent = e.error ?? "—";
      group.cells.at.firstChild.textContent = when(e.received_at);
    },
  );
  table.hidden = events.length === 0;
  $("bad-empty").hidden = events.length > 0;
}

// ---- Look up ----------------------------------------------------------------------------------

let lookups = 0;
$("lookup-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const id = $("lookup-id").value.trim();
  if (!id) return;
  // A pasted token would travel in a URL's path: refused before anything is sent.
  if (id === state.token) {
    setStatus("lookup-status", "That is the operator token. It is never sent in a URL: look up a PaymentIntent or account id.", "bad", "action");
    return;
  }
  void lookUp(id);
});

/** Shows a PaymentIntent (`pi_…`) or an account by id; `quiet` redraws it without announcing. */
async function lookUp(id, { quiet = false } = {}) {
  const seq = ++lookups;
  const pi = id.startsWith("pi_");
  if (!quiet) setStatus("lookup-status", `Looking up ${id}…`, "", "action");
  let found;
  try {
    found = await whileSignedIn(() => api(pi ? `/operator/credits/${encodeURIComponent(id)}` : `/operator/accounts/${encodeURIComponent(id)}/wallet`));
  } catch (err) {
    if (seq !== lookups || !state.token) return;
    state.lookedUp = null;
    $("lookup-result").replaceChildren();
    const text = err.status === 404 ? `No record for ${id}.` : err.status === 400 ? `Not a valid id: “${id}”.` : `Could not look up ${id}: ${err.message}`;
    setStatus("lookup-status", text, "bad", "action");
    return;
  }
  // An older look-up answered late paints nothing over a newer one.
  if (!found || seq !== lookups) return;
  state.lookedUp = id;
  const result = $("lookup-result");
  const hadFocus = result.contains(document.activeElement);
  result.replaceChildren(pi ? paymentIntentView(id, found) : walletView(id, found));
  // Redrawn after its own "Retry now": focus goes to the new button, not to the page's top.
  if (hadFocus) result.querySelector("button")?.focus();
  if (!quiet) setStatus("lookup-status", pi ? `PaymentIntent ${id}: ${stateName(found.record?.state)}.` : `Account ${id}: its wallet.`, "ok", "action");
}

/** A definition list of [term, value] pairs, leaving out the empty ones. */
function facts(pairs) {
  const dl = el("dl", "facts");
  for (const [term, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    const dd = el("dd", null, value);
    dd.dataset.term = term;
    // A long value (an error, a sentence) gets the whole line rather than a narrow column.
    dl.append(el("div", typeof value === "string" && value.length > 28 ? "wide" : null, el("dt", null, term), dd));
  }
  return dl;
}

/** The answer as the service gave it, folded away; its box scrolls, so the keyboard can reach it. */
function rawJson(found) {
  const pre = el("pre", null, JSON.stringify(found, null, 2));
  pre.tabIndex = 0;
  pre.setAttribute("role", "region");
  pre.setAttribute("aria-label", "Raw JSON");
  return el("details", "raw", el("summary", null, "Raw JSON"), pre);
}

/** A plain table (stacked at phone width) of `columns` ([label, className]) and `rows` of cell values. */
function simpleTable(caption, columns, rows) {
  const table = el("table", "stack");
  table.setAttribute("role", "table");
  const cap = el("caption", "visually-hidden", caption);
  const head = el("thead");
  head.setAttribute("role", "rowgroup");
  const headRow = row(
    ...columns.map(([label, className]) => {
      const th = el("th", className ?? "", label);
      th.scope = "col";
      th.setAttribute("role", "columnheader");
      return th;
    }),
  );
  head.append(headRow);
  const body = el("tbody");
  body.setAttribute("role", "rowgroup");
  for (const values of rows) {
    body.append(row(...values.map((v, i) => (i === 0 ? rowHeader(columns[0][0], v) : cell(columns[i][0], v, columns[i][1] ?? "")))));
  }
  table.append(cap, head, body);
  return el("div", "scroll", table);
}

function paymentIntentView(pi, found) {
  const rec = found.record ?? {};
  const cur = rec.currency;
  const box = el("article", "found");
  box.dataset.kind = "payment_intent";
  box.append(el("h3", null, "PaymentIntent ", code(pi)));
  const stateValue = el("span", "state", stateName(rec.state));
  stateValue.dataset.state = rec.state ?? "";
  box.append(
    facts([
      ["State", stateValue],
      ["Amount", money(rec.amount, cur)],
      ["Customer", rec.customer_id ? code(rec.customer_id) : null],
      ["Account", rec.account_id ? code(rec.account_id) : null],
      ["Credited", rec.credited_at ? `${when(rec.credited_at)}${rec.credited_by ? ` by ${rec.credited_by}` : ""}` : null],
      ["Balance transaction", rec.balance_transaction_id ? code(rec.balance_transaction_id) : null],
      [
        "Net credit",
        found.amounts
          ? `${money(found.amounts.net, cur)} (${money(found.amounts.credited, cur)} credited, ${money(found.amounts.reversed, cur)} reversed)`
          : null,
      ],
      ["Refunded", found.amount_refunded ? money(found.amount_refunded, cur) : null],
      ["Disputes", found.disputes?.length ? found.disputes.map((d) => `${d.dispute_id} ${money(d.amount, cur)} ${d.status}`).join("; ") : null],
      ["Reason", rec.reason],
      ["Last error", rec.last_error],
      ["Retries", String(rec.retry_count ?? 0)],
      ["Next retry", rec.next_retry_at ? `${when(rec.next_retry_at)} (${fromNow(rec.next_retry_at)})` : null],
      ["Mark", rec.mark_state && rec.mark_state !== "off" ? rec.mark_state : null],
      ["Updated", when(rec.updated_at)],
    ]),
  );
  const retry = busyButton(button("Retry now", ` ${pi}`, ""), () => retryNow(pi, "lookup-status"));
  box.append(el("div", "actions", retry));
  if (found.adjustments?.length) {
    box.append(el("h4", null, "Refunds and disputes"));
    box.append(
      simpleTable(
        `Reversals and restorations of ${pi}`,
        [["Operation"], ["Direction"], ["Amount", "num"], ["State"], ["Last error", "error-text"]],
        found.adjustments.map((a) => [code(a.operation), a.direction, money(a.amount, cur), a.state, a.last_error ?? "—"]),
      ),
    );
  }
  box.append(el("h4", null, "Journal"), journalView(found, `Journal of ${pi}`), rawJson(found));
  return box;
}

function walletView(account, found) {
  const w = found.wallet ?? {};
  const cur = w.currency;
  const box = el("article", "found");
  box.dataset.kind = "account";
  box.append(el("h3", null, "Account ", code(account)));
  const figure = (term, minor) => {
    const span = el("span", "figure", money(minor, cur));
    span.dataset.minor = String(minor);
    return [term, span];
  };
  box.append(
    facts([
      figure("Available", w.available),
      figure("Held", w.held),
      figure("Owed to Stripe", found.owed ?? 0),
      ["Ledger sums", found.sums ? `${money(found.sums.total, cur)} in total, ${money(found.sums.held, cur)} held` : null],
      ["Customer", w.customer_id ? code(w.customer_id) : null],
      ["Currency", cur ? cur.toUpperCase() : "none yet"],
      ["Opened", when(w.opened_at)],
      ["Last synced with Stripe", w.synced_at ? when(w.synced_at) : "never"],
      ["Next sync", w.sync_due_at ? `${when(w.sync_due_at)} (${fromNow(w.sync_due_at)})` : null],
      ["Sync retries", w.sync_retries ? String(w.sync_retries) : null],
      ["Sync error", w.sync_error],
    ]),
  );

  box.append(el("h4", null, "Ledger"));
  const ledger = found.ledger;
  if (!ledger) box.append(el("p", "hint", "This service does not show the ledger here."));
  else if (ledger.data.length === 0) box.append(el("p", "empty", "No ledger lines yet."));
  else {
    const t = simpleTable(
      `The ledger of ${account}, newest first`,
      [["When"], ["What"], ["Amount", "num"], ["Held", "num"], ["Reference"]],
      ledger.data.map((l) => [
        when(l.created),
        [KINDS[l.kind] ?? l.kind, l.description ? el("span", "note", l.description) : null],
        el("span", l.amount > 0 ? "credit" : l.amount < 0 ? "debit" : "", signedMoney(l.amount, l.currency)),
        l.held ? signedMoney(l.held, l.currency) : "—",
        [l.payment_intent_id ?? l.hold_id ?? l.balance_transaction_id ?? l.id].map(code),
      ]),
    );
    t.querySelector("table").id = "lookup-ledger";
    for (const [i, tr] of [...t.querySelectorAll("tbody tr")].entries()) tr.dataset.kind = ledger.data[i].kind;
    box.append(t);
    if (ledger.has_more) box.append(el("p", "hint", `The newest ${ledger.data.length} lines.`));
  }

  box.append(el("h4", null, "Batches written to Stripe"));
  if (!found.batches?.length) box.append(el("p", "empty", "None yet."));
  else
    box.append(
      simpleTable(
        `Batches of ${account}'s spending written to Stripe`,
        [["Batch"], ["Amount", "num"], ["Lines", "num"], ["State"], ["Stripe entry"], ["Last error", "error-text"], ["Made"]],
        found.batches.map((b) => [
          String(b.n),
          money(b.amount, b.currency),
          String(b.entries),
          b.state,
          b.stripe_tx ? code(b.stripe_tx) : "—",
          b.last_error ?? "—",
          when(b.created_at),
        ]),
      ),
    );
  box.append(rawJson(found));
  return box;
}

// ---- Stripe -----------------------------------------------------------------------------------

async function loadGovernor() {
  let found;
  try {
    found = await whileSignedIn(() => api("/operator/governor"));
  } catch (err) {
    if (state.token) setStatus("governor-status", `Could not read the governor: ${err.message}`, "bad");
    return;
  }
  if (found) renderGovernor(found);
}

function renderGovernor(found) {
  const g = found.governor;
  // Written only when it changes (setStatus), so a refresh does not announce it again.
  setStatus("governor-status", g ? "" : "Off: STRIPE_RATE_LIMIT is 0, so Stripe calls are not paced.");
  if (!g) {
    $("governor").replaceChildren();
    return;
  }
  $("governor").replaceChildren(
    ...facts([
      ["Budget", `${decimal(g.budget)} calls a second`],
      ["Rate now", `${decimal(g.rate)} calls a second${g.rate < g.budget ? " (slowed after a 429)" : ""}`],
      ["Promised ahead", `${decimal(g.backlog_ms, 0)} ms`],
      ["Leased", `${count(g.granted, "permit")} in ${count(g.leases, "round trip")}`],
      ["Refused", count(g.refused, "lease")],
    ]).children,
  );
}

const callRows = new Map();

function renderCalls(stripe) {
  const table = $("calls-table");
  const calls = [...(stripe?.calls ?? [])].sort((a, b) => b.count - a.count || a.kind.localeCompare(b.kind));
  reconcile(
    table.tBodies[0],
    callRows,
    calls,
    (c) => c.kind,
    (kind) => {
      const cells = {
        kind: rowHeader("Kind", code(kind)),
        rate: cell("Per minute", "", "num"),
        count: cell("Calls", "", "num"),
        errors: cell("Errors", "", "num"),
        latency: cell("Mean latency", "", "num"),
      };
      return { nodes: [row(...Object.values(cells))], cells };
    },
    (group, c) => {
      // A call or two in an hour is not "0" a minute (the service rounds to a tenth).
      group.cells.rate.firstChild.textContent = c.count > 0 && c.per_minute < 0.1 ? "< 0.1" : decimal(c.per_minute);
      group.cells.count.firstChild.textContent = c.count.toLocaleString();
      group.cells.errors.firstChild.textContent = c.errors ? `${c.errors.toLocaleString()} (${decimal((100 * c.errors) / c.count, 0)}%)` : "0";
      group.cells.latency.firstChild.textContent = `${decimal(c.mean_latency_ms, 0)} ms`;
    },
  );
  table.hidden = calls.length === 0;
  setStatus("calls-status", calls.length === 0 ? "No Stripe calls in this window." : "");
  const w = stripe?.governor_waits;
  $("waits").textContent = w
    ? `Waits for the governor: ${count(w.count, "call")} waited${w.count ? `, ${decimal(w.mean_wait_ms, 0)} ms on average, ${decimal(w.max_wait_ms, 0)} ms at most` : ""}; ${count(w.refused, "call")} refused.`
    : "";
}

// ---- Activity ---------------------------------------------------------------------------------

const FACTS = [
  ["credit", "Credits", "credit", "credits"],
  ["debit", "Debits", "debit", "debits"],
  ["reversal", "Reversals", "reversal", "reversals"],
  ["recharge", "Recharges", "recharge", "recharges"],
];

for (const b of document.querySelectorAll("#activity [data-window]")) {
  b.addEventListener("click", () => {
    if (state.window === b.dataset.window) return;
    state.window = b.dataset.window;
    for (const other of document.querySelectorAll("#activity [data-window]")) other.setAttribute("aria-pressed", String(other === b));
    void loadMetrics();
  });
}

let metricsLoads = 0;
async function loadMetrics() {
  const seq = ++metricsLoads;
  const span = state.window;
  let m;
  try {
    m = await whileSignedIn(() => api(`/operator/metrics?window=${span}`));
  } catch (err) {
    if (seq !== metricsLoads || !state.token) return;
    // 404: a service without the metrics route.
    const text = err.status === 404 ? "Metrics unavailable." : `Metrics unavailable: ${err.message}`;
    setStatus("activity-status", text, "bad");
    setStatus("calls-status", text, "bad");
    $("charts").replaceChildren();
    $("activity-source").textContent = "";
    $("calls-table").hidden = true;
    $("waits").textContent = "";
    return;
  }
  if (!m || seq !== metricsLoads) return;
  clearLoadStatus("activity-status");
  $("activity-source").dataset.startedAt = m.started_at ?? "";
  $("activity-source").textContent =
    m.source === "analytics_engine"
      ? "Workers Analytics Engine, all locations."
      : `Counted by this Worker process${m.started_at ? ` since ${when(m.started_at)}` : ""}${m.scope === "isolate" ? " (each Worker process counts its own)" : ""}.`;
  renderCharts(m);
  renderCalls(m.stripe);
}

function renderCharts(m) {
  const per = m.bucket_seconds === 60 ? "minute" : `${m.bucket_seconds / 60} minutes`;
  const span = m.window === "day" ? "last day" : "last hour";
  const charts = FACTS.map(([key, title, one, many]) => {
    const fact = m.facts?.[key] ?? { count: [], total: { count: 0, amounts: {} } };
    const total = fact.total?.count ?? 0;
    const label = `${title} per ${per}, ${span}: ${total.toLocaleString()} in total`;
    const figure = el("figure", "chart");
    figure.dataset.fact = key;
    figure.append(el("h3", null, title), barChart(fact.count ?? [], label));
    const first = m.buckets?.[0];
    const peak = Math.max(0, ...(fact.count ?? []));
    figure.append(
      el(
        "p",
        "axis",
        el("span", null, first ? when(first, "short") : ""),
        el("span", null, peak ? `peak ${peak.toLocaleString()} per ${per}` : ""),
        el("span", null, "now"),
      ),
    );
    const amounts = Object.entries(fact.total?.amounts ?? {}).map(([cur, minor]) => money(minor, cur));
    const totals = el("figcaption", "totals", `${count(total, one, many)}${amounts.length ? `: ${amounts.join(", ")}` : ""}, ${span}.`);
    totals.dataset.total = String(total);
    figure.append(totals);
    return figure;
  });
  $("charts").replaceChildren(...charts);
}

/** Bars for `counts` (one per bucket, oldest first), drawn as inline SVG, with the figures in its label. */
function barChart(counts, label) {
  const width = 300;
  const height = 60;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  svg.append(title);
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("class", "baseline");
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 })) base.setAttribute(k, String(v));
  svg.append(base);
  const max = Math.max(0, ...counts);
  const slot = width / Math.max(1, counts.length);
  for (const [i, n] of counts.entries()) {
    if (!n) continue;
    // At least a sliver for the smallest count, so one event in a busy hour still shows.
    const h = Math.max(2, (n / max) * (height - 2));
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("class", "bar");
    rect.setAttribute("x", String(i * slot + slot * 0.1));
    rect.setAttribute("width", String(Math.max(0.5, slot * 0.8)));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("height", String(h));
    rect.dataset.count = String(n);
    svg.append(rect);
  }
  return svg;
}

// ---- Start ------------------------------------------------------------------------------------

// A reload of the tab keeps the session: the first refresh checks the token (a 401 signs out).
if (state.token) showConsole(false);
else $("token").focus();
