// The demo page: sign in, see the balance, top up, use credit, see the ledger. No build step. It
// uses the service's public routes (/billing/*), Stripe.js for the payment, exactly as a
// production page does (from STRIPE_JS_URL: Stripe's own, or the emulator's stand-in locally),
// and /demo/* for the local sign-in and "Use credit", which spends through the seller's API on
// the server. Scripts come only from this origin and Stripe.js's (the page's
// Content-Security-Policy), so nothing here is inline.

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("token"),
  account: sessionStorage.getItem("account"),
  config: null,
  currency: null,
  topUpKey: null,
  spendKey: null,
  /** Stripe.js's Stripe object, made once for the publishable key. */
  stripe: null,
  /** The top-up being paid: its PaymentIntent, and the Payment Element taking the card. */
  payment: null,
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

// Stripe.js is loaded from the configured URL when the first payment needs it, by a script
// element (the URL is a setting, so it cannot be written into the page).
let stripeJs = null;
function loadStripeJs(url) {
  stripeJs ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = url;
    script.onload = () => (window.Stripe ? resolve(window.Stripe) : reject(new Error("Stripe.js could not be loaded.")));
    script.onerror = () => {
      script.remove();
      reject(new Error("Stripe.js could not be loaded. Check your connection and try again."));
    };
    document.head.append(script);
  }).catch((err) => {
    stripeJs = null; // the next press tries again
    throw err;
  });
  return stripeJs;
}

async function stripeClient() {
  const { publishable_key: key, stripe_js_url: url } = state.config ?? {};
  if (!key || !url) throw new Error("Payments are not set up on this service (no publishable key).");
  if (!state.stripe) state.stripe = (await loadStripeJs(url))(key);
  return state.stripe;
}

// A redirect-based payment method (a bank's page) comes back here, to the same page.
const returnUrl = () => `${location.origin}${location.pathname}`;

/** Shows the Payment Element for `topUp`; the user pays with "Pay". */
function openPayment(stripe, topUp) {
  const elements = stripe.elements({ clientSecret: topUp.client_secret });
  const element = elements.create("payment");
  // Keyboard users land in the card form, once Stripe.js has drawn it.
  element.on("ready", () => element.focus());
  element.mount($("payment-element"));
  state.payment = { stripe, elements, element, topUp };
  $("pay").textContent = `Pay ${money(topUp.amount, topUp.currency)}`;
  $("pay-form").hidden = false;
}

/** Removes the Payment Element and gives the amount back to the user. */
function closePayment() {
  const hadFocus = $("pay-form").contains(document.activeElement);
  state.payment?.element.destroy();
  state.payment = null;
  $("pay-form").hidden = true;
  $("amount").disabled = false;
  $("topup").disabled = false;
  // Focus does not vanish with the form: it goes back to the amount.
  if (hadFocus) $("amount").focus();
}

/** After Stripe took the payment: credit it (once, whoever else confirms it) and show the balance. */
async function creditPayment(paymentIntentId, status) {
  if (status === "processing") {
    setStatus("Your payment is processing; the credit will appear once it clears.", "ok");
    return;
  }
  setStatus("Crediting…");
  const credit = await confirmCredit(paymentIntentId);
  await refresh();
  setStatus(`${money(credit.amount, credit.currency)} ${credit.status === "credited" ? "added" : "was already added"}.`, "ok");
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
  closePayment();
  setStatus("");
  show();
});

$("amount").addEventListener("input", () => {
  state.topUpKey = null;
});

// One press of "Top up" creates the top-up and shows the card form; one press of "Pay" pays and
// credits it. A second press of either while the first is under way does nothing, and a retry
// sends the same Idempotency-Key, so a double click is one top-up and one payment.
let busy = false;
$("topup-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (busy || state.payment) return;
  busy = true;
  $("amount").disabled = true;
  $("topup").disabled = true;
  try {
    const amount = Math.round(Number($("amount").value) * 100);
    setStatus("Creating your top-up…");
    const [topUp, stripe] = await Promise.all([
      api("/billing/top_ups", { method: "POST", body: { amount, currency: "usd" }, headers: { "idempotency-key": topUpKey() } }),
      stripeClient(),
    ]);
    openPayment(stripe, topUp);
    setStatus("Enter your card, then press Pay.");
  } catch (err) {
    setStatus(err.message, "bad");
    $("amount").disabled = false;
    $("topup").disabled = false;
  } finally {
    busy = false;
  }
});

$("pay-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const payment = state.payment;
  if (busy || !payment) return;
  busy = true;
  $("pay").disabled = true;
  $("pay-cancel").disabled = true;
  try {
    setStatus("Paying…");
    const { error, paymentIntent } = await payment.stripe.confirmPayment({
      elements: payment.elements,
      redirect: "if_required",
      confirmParams: { return_url: returnUrl() },
    });
    // A declined or mistyped card: the card form stays, for another card or a correction.
    if (error) return setStatus(error.message ?? "The payment did not go through.", "bad");
    // Paid: the next top-up is a new one, whatever happens to this one's credit below.
    state.topUpKey = null;
    closePayment();
    await creditPayment(paymentIntent.id, paymentIntent.status);
  } catch (err) {
    setStatus(err.message, "bad");
  } finally {
    busy = false;
    $("pay").disabled = false;
    $("pay-cancel").disabled = false;
  }
});

$("pay-cancel").addEventListener("click", () => {
  if (busy) return;
  closePayment();
  setStatus("");
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

/**
 * A payment that left for a redirect-based method comes back with its PaymentIntent in the
 * query (Stripe's return_url contract). The query is dropped at once: it holds the client secret.
 */
function returnedPayment() {
  const query = new URLSearchParams(location.search);
  const id = query.get("payment_intent");
  if (!id) return null;
  history.replaceState(null, "", location.pathname);
  return { id, status: query.get("redirect_status") };
}

(async () => {
  try {
    state.config = await api("/billing/config");
  } catch {
    state.config = { demo_mode: false, publishable_key: null, stripe_js_url: null };
  }
  if (!state.config.demo_mode && !state.token) {
    $("signin").querySelector(".hint").textContent = "Sign-in is provided by your application; demo sign-in is off.";
  }
  show();
  const returned = returnedPayment();
  if (returned && state.token) {
    if (returned.status === "failed") setStatus("The payment did not go through.", "bad");
    else await creditPayment(returned.id, returned.status).catch((err) => setStatus(err.message, "bad"));
  }
})();
