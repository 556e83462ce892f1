// The demo page: sign in, see the balance, top up, use credit, see the ledger. No build step. It
// uses only the service's public routes (plus /demo/* for the local sign-in, the test-card
// payment, and "Use credit", which spends through the seller's API on the server).

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("token"),
  account: sessionStorage.getItem("account"),
  config: null,
  currency: null,
  topUpKey: null,
  spendKey: null,
};

const money = (minor, currency) => new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(minor / 100);

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const res = await fetch(path, {
    method,
    headers: { ...(body ? { "content-type": "application/json" } : {}), ...(state.token ? { authorization: `Bearer ${state.token}` } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data?.error?.message ?? `HTTP ${res.status}`);
    err.status = res.status;
    err.error = data?.error ?? {};
    err.retryAfter = Number(res.headers.get("retry-after") ?? 0);
    throw err;
  }
  return data;
}

function setStatus(text, kind = "", id = "status") {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${kind}`;
}

// What each kind of ledger line is called; `amount` is the change to available + held, `held`
// the change to what is held (a hold moves credit from available to held: amount 0, held +h).
const KINDS = {
  top_up: "Top-up",
  reversal: "Refund or dispute",
  restoration: "Dispute won",
  debit: "Used credit",
  hold: "Held",
  capture: "Hold spent",
  release: "Hold released",
  stripe: "Stripe adjustment",
};

const signed = (minor, currency) => `${minor > 0 ? "+" : minor < 0 ? "−" : ""}${money(Math.abs(minor), currency)}`;

function ledgerRow(tx) {
  const tr = document.createElement("tr");
  tr.dataset.kind = tx.kind;
  const when = document.createElement("td");
  when.textContent = new Date(tx.created).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
  const what = document.createElement("td");
  what.textContent = KINDS[tx.kind] ?? tx.kind;
  const notes = [tx.kind !== "top_up" ? tx.description : null, tx.held ? `held ${signed(tx.held, tx.currency)}` : null].filter(Boolean);
  if (notes.length > 0) {
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = notes.join(" · ");
    what.append(note);
  }
  const amount = document.createElement("td");
  amount.className = `num ${tx.amount > 0 ? "credit" : tx.amount < 0 ? "debit" : ""}`;
  amount.textContent = signed(tx.amount, tx.currency);
  tr.append(when, what, amount);
  return tr;
}

async function refresh() {
  const [balance, ledger] = await Promise.all([api("/billing/balance"), api("/billing/transactions?limit=20")]);
  state.currency = balance.currency;
  $("balance").textContent = money(balance.available, balance.currency);
  $("balance").dataset.minor = String(balance.available);
  $("held").textContent = money(balance.held, balance.currency);
  $("held").dataset.minor = String(balance.held);
  $("spend-currency").textContent = balance.currency.toUpperCase();
  const rows = ledger.data.map(ledgerRow);
  $("ledger")
    .querySelector("tbody")
    .replaceChildren(...rows);
  $("ledger-empty").hidden = rows.length > 0;
}

function show() {
  const signedIn = Boolean(state.token);
  $("signin").hidden = signedIn;
  $("wallet").hidden = !signedIn;
  // Spending is the seller's backend's job; only the demo lets the page ask for it.
  $("spend-form").hidden = !state.config?.demo_mode;
  if (signedIn) {
    $("who").textContent = state.account;
    refresh().catch((err) => setStatus(err.message, "bad"));
    $("amount").focus();
  }
}

// One Idempotency-Key per intended top-up: a double click or a retry sends the same key, so the
// service makes one PaymentIntent; a new amount or a finished top-up starts a new key.
function topUpKey() {
  state.topUpKey ??= crypto.randomUUID();
  return state.topUpKey;
}

async function pay(topUp) {
  if (state.config?.publishable_key) return payWithStripeJs(topUp);
  setStatus("Paying with the test card…");
  const paid = await api("/demo/pay", { method: "POST", body: { payment_intent_id: topUp.payment_intent_id } });
  if (paid.status !== "succeeded") throw new Error(`Payment ${paid.status}`);
}

// With a real publishable key: Stripe.js and its Payment Element take the card.
async function payWithStripeJs(topUp) {
  if (!window.Stripe) {
    await new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "https://js.stripe.com/v3/";
      s.onload = resolve;
      s.onerror = () => reject(new Error("Stripe.js could not be loaded"));
      document.head.append(s);
    });
  }
  const stripe = window.Stripe(state.config.publishable_key);
  const elements = stripe.elements({ clientSecret: topUp.client_secret });
  const container = $("payment-element");
  container.hidden = false;
  elements.create("payment").mount(container);
  setStatus("Enter your card, then press Top up again.");
  await new Promise((resolve) => $("topup-form").addEventListener("submit", resolve, { once: true }));
  const { error } = await stripe.confirmPayment({ elements, redirect: "if_required" });
  container.hidden = true;
  if (error) throw new Error(error.message);
}

async function confirmCredit(paymentIntentId) {
  for (let tries = 0; tries < 5; tries++) {
    try {
      return await api("/billing/confirm_payment", { method: "POST", body: { payment_intent_id: paymentIntentId } });
    } catch (err) {
      if (err.status !== 503) throw err;
      setStatus("Stripe is slow; your credit will arrive shortly…");
      await new Promise((r) => setTimeout(r, Math.max(1, err.retryAfter) * 1000));
    }
  }
  throw new Error("Your payment went through; the credit will appear shortly.");
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const { token, account_id } = await api("/demo/sign_in", { method: "POST", body: { account_id: $("account").value.trim() } });
    state.token = token;
    state.account = account_id;
    sessionStorage.setItem("token", token);
    sessionStorage.setItem("account", account_id);
    show();
  } catch (err) {
    alert(err.message);
  }
});

$("signout").addEventListener("click", () => {
  sessionStorage.clear();
  state.token = null;
  show();
});

$("amount").addEventListener("input", () => {
  state.topUpKey = null;
});

let busy = false;
$("topup-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (busy) return;
  busy = true;
  $("topup").disabled = true;
  try {
    const amount = Math.round(Number($("amount").value) * 100);
    setStatus("Creating your top-up…");
    const topUp = await api("/billing/top_ups", { method: "POST", body: { amount, currency: "usd" }, headers: { "idempotency-key": topUpKey() } });
    await pay(topUp);
    setStatus("Crediting…");
    const credit = await confirmCredit(topUp.payment_intent_id);
    state.topUpKey = null;
    await refresh();
    setStatus(`${money(credit.amount, credit.currency)} ${credit.status === "credited" ? "added" : "was already added"}.`, "ok");
  } catch (err) {
    setStatus(err.message, "bad");
  } finally {
    busy = false;
    $("topup").disabled = false;
  }
});

// One Idempotency-Key per intended spend, kept until the service answers: a double click or a
// retry after a dropped connection sends the same key, so the credit is used once. An answer,
// or a new amount, starts a new key.
$("spend-amount").addEventListener("input", () => {
  state.spendKey = null;
});

let spending = false;
$("spend-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (spending) return;
  spending = true;
  $("spend").disabled = true;
  const currency = state.currency ?? "usd";
  const amount = Math.round(Number($("spend-amount").value) * 100);
  state.spendKey ??= crypto.randomUUID();
  try {
    setStatus("Using credit…", "", "spend-status");
    const debit = await api("/demo/spend", { method: "POST", body: { amount, currency }, headers: { "idempotency-key": state.spendKey } });
    state.spendKey = null;
    setStatus(`Used ${money(debit.amount, debit.currency)}. ${money(debit.balance.available, debit.balance.currency)} available.`, "ok", "spend-status");
  } catch (err) {
    // A dropped connection or a 5xx keeps the key, so trying again cannot spend twice.
    if (err.status && err.status < 500) state.spendKey = null;
    const message =
      err.error?.code === "insufficient_credit"
        ? `Not enough credit: ${money(err.error.available, err.error.currency ?? currency)} available.`
        : err.error?.code === "service_token_missing"
          ? "Using credit is not set up: add SERVICE_TOKEN to .dev.vars and restart."
          : err.message;
    setStatus(message, "bad", "spend-status");
  } finally {
    spending = false;
    $("spend").disabled = false;
  }
  await refresh().catch((err) => setStatus(err.message, "bad", "spend-status"));
});

(async () => {
  try {
    state.config = await api("/demo/config");
  } catch {
    state.config = { demo_mode: false, publishable_key: null };
  }
  if (!state.config.demo_mode && !state.token) {
    $("signin").querySelector(".hint").textContent = "Sign-in is provided by your application; demo sign-in is off.";
  }
  show();
})();
