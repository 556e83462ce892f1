// What a card does when a PaymentIntent is confirmed with it, as Stripe's test cards do: it pays
// (and is saved or spent), is declined, or the bank asks for 3-D Secure, on-session (the
// PaymentIntent waits for the cardholder's answer) or off-session (a card error: nobody is there
// to answer); and how the cardholder's answer settles it.

import type { RunContext } from "./endpoint.js";
import { StripeFailure, unexpectedState } from "./errors.js";
import { attach, checkUsable, resolvePaymentMethod } from "./payment-methods.js";
import { newId, nowSeconds, type Charge, type PaymentIntent, type PaymentMethod, type Store } from "./store.js";
import type { Webhooks } from "./webhooks.js";

type EventRequest = RunContext["request"] | { id: null; idempotency_key: null };

/** Leaves the PaymentIntent `processing` (like a bank debit) until the control API settles it. */
export const PROCESSING_METHOD = "pm_processing";

/**
 * After a payment with a stored card: a PaymentIntent with `setup_future_usage` and a customer
 * saves the card to that customer (attaching it, `payment_method.attached`), which also counts as
 * setting it up for off-session payments; a card paid with and not attached is spent, as Stripe
 * allows an unattached PaymentMethod one payment.
 */
function keepOrSpendCard(store: Store, webhooks: Webhooks, pi: PaymentIntent, pm: PaymentMethod, request: EventRequest): void {
  const card = store.card(pm.id);
  if (pi.setup_future_usage !== null && pi.customer !== null) {
    if (pm.customer === null) attach(store, webhooks, pm, pi.customer, request);
    if (pm.customer === pi.customer) card.setUp = true;
  }
  if (pm.customer === null) card.spent = true;
}

/** Completes a payment: the card saved or spent, a charge for the full amount, `succeeded`, and its events. */
export function succeed(store: Store, webhooks: Webhooks, pi: PaymentIntent, request: EventRequest): void {
  const pm = pi.payment_method === null ? undefined : store.paymentMethods.get(pi.payment_method);
  if (pm) keepOrSpendCard(store, webhooks, pi, pm, request);
  const charge: Charge = {
    id: newId("ch"),
    object: "charge",
    amount: pi.amount,
    amount_captured: pi.amount,
    amount_refunded: 0,
    billing_details: { address: null, email: null, name: null, phone: null },
    captured: true,
    created: nowSeconds(),
    currency: pi.currency,
    customer: pi.customer,
    disputed: false,
    livemode: pi.livemode,
    metadata: {},
    paid: true,
    payment_intent: pi.id,
    payment_method: pi.payment_method,
    refunded: false,
    status: "succeeded",
  };
  store.charges.set(charge.id, charge);
  store.wrote("charge");
  pi.status = "succeeded";
  pi.amount_received = pi.amount;
  pi.latest_charge = charge.id;
  pi.last_payment_error = null;
  pi.next_action = null;
  webhooks.emit("charge.succeeded", charge, request, pi.livemode);
  webhooks.emit("payment_intent.succeeded", pi, request, pi.livemode);
}

/** A card error's fields, in Stripe's words, by why the card failed. */
const CARD_ERRORS = {
  decline: { code: "card_declined", decline_code: "generic_decline", message: "Your card was declined." },
  insufficient_funds: { code: "card_declined", decline_code: "insufficient_funds", message: "Your card has insufficient funds." },
  authentication_required: {
    code: "authentication_required",
    decline_code: "authentication_required",
    message: "Your card was declined. This transaction requires authentication.",
  },
} as const;

function docUrl(code: string): string {
  return `https://stripe.com/docs/error-codes/${code.replaceAll("_", "-")}`;
}

/**
 * A failed payment, as Stripe answers it: 402 `card_error`, the PaymentIntent back to
 * `requires_payment_method` without a payment method but with `last_payment_error` (which names
 * the card, so its customer can be brought back to pay with it on-session), and
 * `payment_intent.payment_failed`.
 */
function failPayment(ctx: RunContext, pi: PaymentIntent, pm: PaymentMethod, why: keyof typeof CARD_ERRORS): never {
  const error = { type: "card_error", ...CARD_ERRORS[why], doc_url: docUrl(CARD_ERRORS[why].code) };
  pi.status = "requires_payment_method";
  pi.last_payment_error = { ...error, payment_method: structuredClone(pm), payment_method_type: pm.type };
  pi.payment_method = null;
  pi.next_action = null;
  ctx.webhooks.emit("payment_intent.payment_failed", pi, ctx.request, pi.livemode);
  throw new StripeFailure(402, { ...error, payment_intent: structuredClone(pi), payment_method: structuredClone(pm) });
}

/**
 * The bank asks the cardholder to authenticate (3-D Secure): `requires_action`, with Stripe's
 * `use_stripe_sdk` next action, which Stripe.js (here the stand-in) carries out in the page.
 */
function requireAction(ctx: RunContext, pi: PaymentIntent, pm: PaymentMethod): void {
  pi.status = "requires_action";
  pi.payment_method = pm.id;
  pi.last_payment_error = null;
  pi.next_action = {
    type: "use_stripe_sdk",
    use_stripe_sdk: { type: "three_d_secure_redirect", source: newId("src"), stripe_js: `${ctx.origin}${THREE_D_SECURE_PATH}${pi.id}` },
  };
  ctx.webhooks.emit("payment_intent.requires_action", pi, ctx.request, pi.livemode);
}

/** Where the Stripe.js stand-in answers a 3-D Secure challenge (not Stripe's API: not under /v1/). */
export const THREE_D_SECURE_PATH = "/v3/3ds/";

const AUTHENTICATION_FAILED =
  "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.";

/**
 * The cardholder answers a PaymentIntent's 3-D Secure challenge: `complete` pays it (and saves
 * the card as the PaymentIntent asks); `fail` puts it back to `requires_payment_method` with
 * `last_payment_error.code` `payment_intent_authentication_failure`, as Stripe does.
 */
export function authenticate(store: Store, webhooks: Webhooks, pi: PaymentIntent, outcome: "complete" | "fail", request: EventRequest): PaymentIntent {
  if (pi.status !== "requires_action" || pi.payment_method === null) {
    throw unexpectedState("payment_intent_unexpected_state", `This PaymentIntent has no 3-D Secure challenge to answer: its status is ${pi.status}.`);
  }
  if (outcome === "complete") {
    succeed(store, webhooks, pi, request);
    return pi;
  }
  const pm = store.paymentMethod(pi.payment_method);
  pi.status = "requires_payment_method";
  pi.next_action = null;
  pi.last_payment_error = {
    type: "invalid_request_error",
    code: "payment_intent_authentication_failure",
    doc_url: docUrl("payment_intent_authentication_failure"),
    message: AUTHENTICATION_FAILED,
    payment_method: structuredClone(pm),
  };
  pi.payment_method = null;
  store.wrote("payment_intent_authentication");
  webhooks.emit("payment_intent.payment_failed", pi, request, pi.livemode);
  return pi;
}

export interface ConfirmOptions {
  /** `payment_method` of the request: a test id, a stored PaymentMethod's id, or pm_processing. */
  paymentMethod?: string | undefined;
  /** Nobody is there to authenticate: 3-D Secure fails instead of asking. */
  offSession?: boolean;
}

/** Confirms `pi` with a card (or pm_processing), as Stripe does; a refusal or a decline is thrown. */
export function confirm(ctx: RunContext, pi: PaymentIntent, options: ConfirmOptions): void {
  const { store, webhooks, request } = ctx;
  if (pi.status !== "requires_payment_method" && pi.status !== "requires_confirmation" && pi.status !== "requires_action") {
    // Stripe carries the PaymentIntent on this refusal: a page that finds it already paid (in another tab) can go on.
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "payment_intent_unexpected_state",
      message:
        pi.status === "succeeded"
          ? "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed."
          : `You cannot confirm this PaymentIntent because it has a status of ${pi.status}.`,
      payment_intent: structuredClone(pi),
    });
  }
  const id = options.paymentMethod ?? pi.payment_method;
  if (!id) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "payment_intent_unexpected_state",
      param: "payment_method",
      message: "You cannot confirm this PaymentIntent because it's missing a payment method.",
    });
  }
  if (id === PROCESSING_METHOD) {
    pi.payment_method = id;
    pi.status = "processing";
    webhooks.emit("payment_intent.processing", pi, request, pi.livemode);
    return;
  }
  const pm = resolvePaymentMethod(store, id, pi.livemode);
  checkUsable(store, pm, pi.customer, pi);
  pi.payment_method = pm.id;
  const card = store.card(pm.id);
  switch (card.behaviour) {
    case "succeed":
      return succeed(store, webhooks, pi, request);
    case "decline":
    case "insufficient_funds":
      return failPayment(ctx, pi, pm, card.behaviour);
    case "authentication_required":
      if (options.offSession === true) return failPayment(ctx, pi, pm, "authentication_required");
      return requireAction(ctx, pi, pm);
    case "authentication_required_on_setup":
      // On-session it always asks (docs.stripe.com/testing); off-session only until it is set up.
      if (options.offSession !== true) return requireAction(ctx, pi, pm);
      if (card.setUp) return succeed(store, webhooks, pi, request);
      return failPayment(ctx, pi, pm, "authentication_required");
  }
}
