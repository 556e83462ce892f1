// The demo page: sign in, see the balance, top up (saving the card if asked), set up
// auto-recharge, confirm a recharge the bank wants authenticated, use credit, see the ledger. No
// build step. It uses the service's public routes (/billing/*), Stripe.js for the payment,
// exactly as a production page does (from STRIPE_JS_URL: Stripe's own, or the emulator's
// stand-in locally), and /demo/* for the local sign-in and "Use credit", which spends through the
// seller's API on the server. Scripts come only from this origin and Stripe.js's (the page's
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
  /** The top-up being paid: its PaymentIntent, the Payment Element taking the card, whether it saves the card. */
  payment: null,
  /** Auto-recharge as the service last showed it (GET /billing/auto_recharge). */
  autoRecharge: null,
  /** The settings form was edited since the service's answer last filled it: refreshes leave it alone. */
  rechargeEdited: false,
  /** A paid top-up asked to keep its card; the service saves it shortly after the credit. */
  awaitingCard: false,
};

const money = (minor, currency) => new Intl.NumberFormat(undefined, { style: "currency", currency: currency.toUpperCase() }).format(minor / 100);
// Amount fields take major units ("20.00"); the API takes minor units (2000).
const minorOf = (id) => Math.round(Number($(id).value) * 100);
const majorOf = (minor) => (minor / 100).toFixed(2);

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

let refreshes = 0;
async function refresh() {
  const seq = ++refreshes;
  const [balance, ledger, autoRecharge] = await Promise.all([api("/billing/balance"), api("/billing/transactions?limit=20"), api("/billing/auto_recharge")]);
  // Refreshes overlap (a press, a follow-up): an older answer never paints over a newer one.
  if (seq !== refreshes) return;
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
  showAutoRecharge(autoRecharge);
}

const BRANDS = {
  visa: "Visa",
  mastercard: "Mastercard",
  amex: "American Express",
  discover: "Discover",
  diners: "Diners Club",
  jcb: "JCB",
  unionpay: "UnionPay",
};
const cardName = (card) =>
  `${BRANDS[card.brand] ?? (card.brand ? card.brand[0].toUpperCase() + card.brand.slice(1) : "Card")}${card.last4 ? ` •••• ${card.last4}` : ""}`;

// Why auto-recharge switched itself off, and what brings it back.
const OFF_REASONS = {
  declined: "Auto-recharge switched itself off: your card was declined 3 times in a row. Turn it on again to retry.",
  card_removed: "Auto-recharge switched itself off: your saved card was removed. Save a card with a top-up, then turn it on again.",
};

/** What became of the latest recharge, when it did not simply succeed. */
function lastRechargeNote(rec) {
  if (!rec) return null;
  const what = `automatic top-up of ${money(rec.amount, rec.currency)}`;
  if (rec.status === "pending" || rec.status === "processing") return `An ${what} is on its way…`;
  if (rec.status === "failed") {
    const why =
      rec.code === "authentication_required"
        ? "it was not confirmed in time"
        : rec.decline_code === "insufficient_funds"
          ? "the card has insufficient funds"
          : rec.code === "card_declined"
            ? "the card was declined"
            : "the payment was refused";
    return `The last ${what} did not go through: ${why}.`;
  }
  return null;
}

/** Shows auto-recharge as the service answered it: the saved card, the settings, this month, the recharge. */
function showAutoRecharge(view) {
  state.autoRecharge = view;
  for (const el of document.querySelectorAll("#auto-recharge .currency")) el.textContent = view.currency.toUpperCase();
  if (view.payment_method) state.awaitingCard = false;
  showSavedCard(view);
  const off = !view.enabled && view.disabled_reason ? OFF_REASONS[view.disabled_reason] : null;
  $("recharge-off").textContent = off ?? "";
  $("recharge-off").hidden = !off;
  const note = lastRechargeNote(view.recharge);
  $("recharge-last").textContent = note ?? "";
  $("recharge-last").hidden = !note;
  // What the user is typing stays; otherwise the form shows what is in force.
  if (!state.rechargeEdited) {
    $("recharge-enabled").checked = view.enabled;
    if (view.threshold !== null) $("recharge-threshold").value = majorOf(view.threshold);
    if (view.amount !== null) $("recharge-amount").value = majorOf(view.amount);
    if (view.monthly_limit !== null) $("recharge-limit").value = majorOf(view.monthly_limit);
  }
  const month = view.this_month;
  $("recharge-month").textContent =
    view.monthly_limit === null || month.remaining === null
      ? ""
      : `This month: ${money(month.recharged, view.currency)} recharged, ${money(month.remaining, view.currency)} left of your ${money(view.monthly_limit, view.currency)} limit.`;
  showRechargeAction(view.recharge);
  if (needsFollowing(view)) void follow();
}

function showSavedCard(view) {
  $("saved-card").textContent = view.payment_method
    ? `Saved card: ${cardName(view.payment_method)}`
    : state.awaitingCard
      ? "Saving your card…"
      : "No saved card yet: tick “Save this card for auto-recharge” when you top up.";
}

/** The notice and its "Confirm payment" button, while a recharge waits for the customer's bank. */
function showRechargeAction(rec) {
  const box = $("recharge-action");
  if (rec?.status !== "action_required" || !rec.client_secret) {
    if (box.hidden) return;
    const hadFocus = box.contains(document.activeElement);
    box.hidden = true;
    setStatus("", "", "recharge-action-status");
    // Focus does not vanish with the notice: it goes to the balance the payment changed.
    if (hadFocus) $("balance-title").focus();
    return;
  }
  $("recharge-action-expiry").textContent = rec.expires_at
    ? `Confirm it by ${new Date(rec.expires_at).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}, or it is cancelled.`
    : "";
  box.hidden = false;
  // An alert, written once shown and only when it changes: announced once, not at every refresh.
  const text = `Your automatic top-up of ${money(rec.amount, rec.currency)} needs you to confirm your payment.`;
  if ($("recharge-action-text").textContent !== text) $("recharge-action-text").textContent = text;
}

// A recharge is made by the service after the write that started it, and a saved card is read
// back from Stripe after the top-up's credit: the page looks again a few times so that either
// shows up without a reload, then stops (the next press or reload shows it in any case).
const FOLLOW_EVERY_MS = 1500;
const FOLLOW_ROUNDS = 12;
let following = false;

function needsFollowing(view) {
  const status = view?.recharge?.status;
  return status === "pending" || status === "processing" || (state.awaitingCard && !view?.payment_method);
}

async function follow() {
  if (following) return;
  following = true;
  try {
    for (let round = 0; round < FOLLOW_ROUNDS && state.token && needsFollowing(state.autoRecharge); round++) {
      await new Promise((r) => setTimeout(r, FOLLOW_EVERY_MS));
      if (state.token) await refresh();
    }
  } catch {
    // Looking again is a courtesy: the next press or reload shows the same.
  } finally {
    following = false;
    // Not saved after all this time (Stripe did not keep it, say): say what the service says.
    if (state.awaitingCard && state.autoRecharge && !state.autoRecharge.payment_method) {
      state.awaitingCard = false;
      showSavedCard(state.autoRecharge);
    }
  }
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
function openPayment(stripe, topUp, saveCard) {
  const elements = stripe.elements({ clientSecret: topUp.client_secret });
  const element = elements.create("payment");
  // Keyboard users land in the card form, once Stripe.js has drawn it.
  element.on("ready", () => element.focus());
  element.mount($("payment-element"));
  state.payment = { stripe, elements, element, topUp, saveCard };
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
  $("save-card").disabled = false;
  $("topup").disabled = false;
  // Focus does not vanish with the form: it goes back to the amount.
  if (hadFocus) $("amount").focus();
}

/** After Stripe took the payment (a top-up, or a recharge the customer confirmed): credit it (once, whoever else confirms it) and show the balance. */
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
  state.autoRecharge = null;
  state.rechargeEdited = false;
  state.awaitingCard = false;
  closePayment();
  setStatus("");
  setStatus("", "", "recharge-status");
  setStatus("", "", "recharge-action-status");
  $("recharge-action").hidden = true;
  $("recharge-action-text").textContent = "";
  show();
});

// Another amount, or saving the card or not, is another top-up: a new key.
$("amount").addEventListener("input", () => {
  state.topUpKey = null;
});
$("save-card").addEventListener("change", () => {
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
  $("save-card").disabled = true;
  $("topup").disabled = true;
  try {
    const amount = minorOf("amount");
    const saveCard = $("save-card").checked;
    setStatus("Creating your top-up…");
    const body = { amount, currency: "usd", ...(saveCard ? { save_payment_method: true } : {}) };
    const [topUp, stripe] = await Promise.all([api("/billing/top_ups", { method: "POST", body, headers: { "idempotency-key": topUpKey() } }), stripeClient()]);
    openPayment(stripe, topUp, saveCard);
    setStatus("Enter your card, then press Pay.");
  } catch (err) {
    setStatus(err.message, "bad");
    $("amount").disabled = false;
    $("save-card").disabled = false;
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
  // Marked, not `disabled`: a disabled button drops focus to the page's body, and Stripe.js
  // hands focus back after a 3-D Secure challenge to where it was (`busy` refuses the presses).
  $("pay").setAttribute("aria-disabled", "true");
  $("pay-cancel").setAttribute("aria-disabled", "true");
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
    if (payment.saveCard) state.awaitingCard = true;
    closePayment();
    await creditPayment(paymentIntent.id, paymentIntent.status);
  } catch (err) {
    setStatus(err.message, "bad");
  } finally {
    busy = false;
    $("pay").removeAttribute("aria-disabled");
    $("pay-cancel").removeAttribute("aria-disabled");
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

// Auto-recharge settings: amounts typed in major units, sent in minor units; the service's
// refusals (no saved card yet, an amount outside the top-up limits) are shown as it words them.
$("recharge-form").addEventListener("input", () => {
  state.rechargeEdited = true;
});

let savingRecharge = false;
$("recharge-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (savingRecharge) return;
  savingRecharge = true;
  // Marked, not `disabled`, for the focus's sake (as "Pay").
  $("recharge-save").setAttribute("aria-disabled", "true");
  const body = {
    enabled: $("recharge-enabled").checked,
    threshold: minorOf("recharge-threshold"),
    amount: minorOf("recharge-amount"),
    monthly_limit: minorOf("recharge-limit"),
  };
  try {
    setStatus("Saving…", "", "recharge-status");
    const view = await api("/billing/auto_recharge", { method: "PUT", body });
    state.rechargeEdited = false;
    showAutoRecharge(view);
    setStatus(
      view.enabled
        ? `Auto-recharge is on: ${money(view.amount, view.currency)} is added when credit falls below ${money(view.threshold, view.currency)}.`
        : "Auto-recharge is off.",
      "ok",
      "recharge-status",
    );
  } catch (err) {
    setStatus(err.message, "bad", "recharge-status");
  } finally {
    savingRecharge = false;
    $("recharge-save").removeAttribute("aria-disabled");
  }
});

// A recharge the bank wants authenticated: the customer confirms it here with Stripe.js, on the
// saved card, then it is credited as any top-up is. A failed or dismissed challenge leaves it
// waiting, with the button, until the service cancels it.
let confirmingRecharge = false;
$("recharge-confirm").addEventListener("click", async () => {
  const rec = state.autoRecharge?.recharge;
  if (confirmingRecharge || rec?.status !== "action_required" || !rec.client_secret) return;
  confirmingRecharge = true;
  // Marked, not `disabled`, for the focus's sake (as "Pay").
  $("recharge-confirm").setAttribute("aria-disabled", "true");
  try {
    setStatus("Confirming with your bank…", "", "recharge-action-status");
    const stripe = await stripeClient();
    const { error, paymentIntent } = await stripe.confirmPayment({
      clientSecret: rec.client_secret,
      confirmParams: { payment_method: rec.payment_method, return_url: returnUrl() },
      redirect: "if_required",
    });
    if (error) {
      // Already paid (in another tab, say): credit it rather than refuse.
      if (error.payment_intent?.status === "succeeded") {
        setStatus("", "", "recharge-action-status");
        return await creditPayment(error.payment_intent.id, "succeeded");
      }
      setStatus(error.message ?? "The payment was not confirmed.", "bad", "recharge-action-status");
      return;
    }
    setStatus("", "", "recharge-action-status");
    await creditPayment(paymentIntent.id, paymentIntent.status);
  } catch (err) {
    setStatus(err.message, "bad", "recharge-action-status");
  } finally {
    confirmingRecharge = false;
    $("recharge-confirm").removeAttribute("aria-disabled");
  }
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
