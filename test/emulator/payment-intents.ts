// PaymentIntents (create, retrieve, update, confirm with test payment methods, cancel) and what
// follows a payment: the charge, refunds (full and partial) and disputes.

import { mergeMetadata } from "./customers.js";
import type { Endpoint, RunContext } from "./endpoint.js";
import { noSuch, StripeFailure, unexpectedState } from "./errors.js";
import { listSpec, type FieldSpec } from "./params.js";
import { newId, nowSeconds, paginate, type Charge, type Dispute, type Metadata, type PaymentIntent, type Refund, type Store } from "./store.js";
import type { Webhooks } from "./webhooks.js";

type EventRequest = RunContext["request"] | { id: null; idempotency_key: null };

/** Test payment methods that succeed, as Stripe's test cards. */
const SUCCEEDING = new Set(["pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_us"]);
/** Declined with a card_error. */
const DECLINED = new Set(["pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"]);
/** Leaves the PaymentIntent `processing` (like a bank debit) until the control API settles it. */
export const PROCESSING_METHOD = "pm_processing";

const createFields: FieldSpec = {
  amount: "integer",
  currency: "currency",
  customer: "string",
  description: "string",
  metadata: "metadata",
  automatic_payment_methods: { enabled: "boolean", allow_redirects: { enum: ["always", "never"] } },
  payment_method: "string",
  payment_method_types: "string[]",
  receipt_email: "string",
  confirm: "boolean",
  return_url: "string",
};

/** Creates a PaymentIntent in `store`; shared by the API and the control API. */
export function createPaymentIntent(
  store: Store,
  fields: {
    amount: number;
    currency: string;
    customer?: string | null;
    description?: string;
    metadata?: Metadata;
    automatic_payment_methods?: { enabled: boolean };
    payment_method?: string;
    payment_method_types?: string[];
    receipt_email?: string;
  },
  livemode: boolean,
): PaymentIntent {
  if (!Number.isInteger(fields.amount) || fields.amount < 1 || fields.amount > 99_999_999) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "amount_too_small",
      param: "amount",
      message: "Amount must be at least 1 and at most 99999999.",
    });
  }
  if (fields.customer) store.customer(fields.customer, "customer");
  const id = newId("pi");
  const pi: PaymentIntent = {
    id,
    object: "payment_intent",
    amount: fields.amount,
    amount_capturable: 0,
    amount_received: 0,
    automatic_payment_methods: fields.automatic_payment_methods ?? null,
    canceled_at: null,
    cancellation_reason: null,
    capture_method: "automatic",
    client_secret: `${id}_secret_${newId("s").slice(2)}`,
    confirmation_method: "automatic",
    created: nowSeconds(),
    currency: fields.currency,
    customer: fields.customer ?? null,
    description: fields.description ?? null,
    last_payment_error: null,
    latest_charge: null,
    livemode,
    metadata: mergeMetadata({}, fields.metadata),
    payment_method: fields.payment_method ?? null,
    payment_method_types: fields.payment_method_types ?? ["card"],
    receipt_email: fields.receipt_email ?? null,
    status: fields.payment_method ? "requires_confirmation" : "requires_payment_method",
  };
  store.paymentIntents.set(pi.id, pi);
  store.wrote("payment_intent");
  return pi;
}

/** Completes a payment: a charge for the full amount, `succeeded`, and its events. */
export function succeed(store: Store, webhooks: Webhooks, pi: PaymentIntent, request: EventRequest): void {
  const charge: Charge = {
    id: newId("ch"),
    object: "charge",
    amount: pi.amount,
    amount_captured: pi.amount,
    amount_refunded: 0,
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
  webhooks.emit("charge.succeeded", charge, request, pi.livemode);
  webhooks.emit("payment_intent.succeeded", pi, request, pi.livemode);
}

function confirm(ctx: RunContext, pi: PaymentIntent, paymentMethod: string | undefined): void {
  const { store, webhooks, request } = ctx;
  if (pi.status !== "requires_payment_method" && pi.status !== "requires_confirmation" && pi.status !== "requires_action") {
    throw unexpectedState("payment_intent_unexpected_state", `You cannot confirm this PaymentIntent because it has a status of ${pi.status}.`);
  }
  const pm = paymentMethod ?? pi.payment_method;
  if (!pm) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "payment_intent_unexpected_state",
      param: "payment_method",
      message: "You cannot confirm this PaymentIntent because it's missing a payment method.",
    });
  }
  pi.payment_method = pm;
  if (SUCCEEDING.has(pm)) return succeed(store, webhooks, pi, request);
  if (pm === PROCESSING_METHOD) {
    pi.status = "processing";
    webhooks.emit("payment_intent.processing", pi, request, pi.livemode);
    return;
  }
  if (DECLINED.has(pm)) {
    const error = { type: "card_error", code: "card_declined", decline_code: "generic_decline", message: "Your card was declined." };
    pi.status = "requires_payment_method";
    pi.last_payment_error = error;
    pi.payment_method = null;
    webhooks.emit("payment_intent.payment_failed", pi, request, pi.livemode);
    throw new StripeFailure(402, { ...error, payment_intent: structuredClone(pi) });
  }
  throw noSuch("PaymentMethod", pm, "payment_method");
}

/**
 * A publishable key reaches a PaymentIntent only with its client_secret (Stripe.js has it from
 * the shop's server); without it, or with another, Stripe refuses.
 */
function checkClientSecret(pi: PaymentIntent, given: unknown): void {
  if (given === undefined || given === "") {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "parameter_missing",
      param: "client_secret",
      message: "Missing required param: client_secret.",
    });
  }
  if (given !== pi.client_secret) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      param: "client_secret",
      message: "The client_secret provided does not match the client_secret associated with the PaymentIntent.",
    });
  }
}

/** What Stripe shows a publishable key of a PaymentIntent: no customer, no metadata, no charge. */
export function clientView(pi: PaymentIntent) {
  return {
    id: pi.id,
    object: pi.object,
    amount: pi.amount,
    automatic_payment_methods: pi.automatic_payment_methods,
    canceled_at: pi.canceled_at,
    cancellation_reason: pi.cancellation_reason,
    capture_method: pi.capture_method,
    client_secret: pi.client_secret,
    confirmation_method: pi.confirmation_method,
    created: pi.created,
    currency: pi.currency,
    description: pi.description,
    last_payment_error: pi.last_payment_error,
    livemode: pi.livemode,
    next_action: null,
    payment_method: pi.payment_method,
    payment_method_types: pi.payment_method_types,
    receipt_email: pi.receipt_email,
    status: pi.status,
  };
}

function chargeOf(store: Store, pi: PaymentIntent): Charge {
  const charge = pi.latest_charge ? store.charges.get(pi.latest_charge) : undefined;
  if (!charge || pi.status !== "succeeded") {
    throw unexpectedState("charge_not_found", `This PaymentIntent (${pi.id}) does not have a successful charge to refund.`);
  }
  return charge;
}

/** Refunds `amount` (default: what is left) of a PaymentIntent's charge and emits `charge.refunded`. */
export function refund(
  store: Store,
  webhooks: Webhooks,
  pi: PaymentIntent,
  amount: number | undefined,
  request: EventRequest,
  reason: string | null = null,
  metadata: Metadata = {},
): Refund {
  const charge = chargeOf(store, pi);
  const left = charge.amount - charge.amount_refunded;
  if (left <= 0) throw unexpectedState("charge_already_refunded", `Charge ${charge.id} has already been refunded.`);
  const value = amount ?? left;
  if (value < 1 || value > left) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "amount_too_large",
      param: "amount",
      message: `Refund amount (${value}) is greater than unrefunded amount on charge (${left})`,
    });
  }
  const r: Refund = {
    id: newId("re"),
    object: "refund",
    amount: value,
    charge: charge.id,
    created: nowSeconds(),
    currency: charge.currency,
    metadata,
    payment_intent: pi.id,
    reason,
    status: "succeeded",
  };
  store.refunds.set(r.id, r);
  store.wrote("refund");
  charge.amount_refunded += value;
  charge.refunded = charge.amount_refunded === charge.amount;
  webhooks.emit("refund.created", r, request, pi.livemode);
  webhooks.emit("charge.refunded", charge, request, pi.livemode);
  return r;
}

/** Opens a dispute on a PaymentIntent's charge (the cardholder's bank does this in real life). */
export function openDispute(store: Store, webhooks: Webhooks, pi: PaymentIntent, amount: number | undefined, reason = "fraudulent"): Dispute {
  const charge = chargeOf(store, pi);
  const d: Dispute = {
    id: newId("dp"),
    object: "dispute",
    amount: amount ?? charge.amount,
    charge: charge.id,
    created: nowSeconds(),
    currency: charge.currency,
    livemode: pi.livemode,
    metadata: {},
    payment_intent: pi.id,
    reason,
    status: "needs_response",
  };
  store.disputes.set(d.id, d);
  store.wrote("dispute");
  charge.disputed = true;
  webhooks.emit("charge.dispute.created", d, { id: null, idempotency_key: null }, pi.livemode);
  return d;
}

/** Closes a dispute as won or lost and emits `charge.dispute.closed`. */
export function closeDispute(store: Store, webhooks: Webhooks, d: Dispute, status: "won" | "lost"): Dispute {
  if (d.status === "won" || d.status === "lost") throw unexpectedState("dispute_already_closed", `Dispute ${d.id} is already closed.`);
  d.status = status;
  webhooks.emit("charge.dispute.closed", d, { id: null, idempotency_key: null }, d.livemode);
  return d;
}

export const paymentIntentEndpoints: Endpoint[] = [
  {
    method: "POST",
    pattern: "/v1/payment_intents",
    spec: createFields,
    required: ["amount", "currency"],
    run: (ctx) => {
      const { params, store, webhooks, request, livemode } = ctx;
      const { confirm: confirmNow, return_url: _returnUrl, ...fields } = params;
      const pi = createPaymentIntent(store, fields as Parameters<typeof createPaymentIntent>[1], livemode);
      webhooks.emit("payment_intent.created", pi, request, livemode);
      if (confirmNow === true) confirm(ctx, pi, undefined);
      return pi;
    },
  },
  {
    method: "GET",
    pattern: "/v1/payment_intents/:id",
    spec: { client_secret: "string" },
    run: ({ path, store }) => store.paymentIntent(path.id as string),
  },
  {
    method: "POST",
    pattern: "/v1/payment_intents/:id",
    spec: { metadata: "metadata", description: "string", receipt_email: "string", amount: "integer", payment_method: "string" },
    run: ({ path, params, store }) => {
      const pi = store.paymentIntent(path.id as string);
      if (
        (params.amount !== undefined || params.payment_method !== undefined) &&
        (pi.status === "succeeded" || pi.status === "canceled" || pi.status === "processing")
      ) {
        throw unexpectedState("payment_intent_unexpected_state", `You cannot update this PaymentIntent because it has a status of ${pi.status}.`);
      }
      if (params.amount !== undefined) pi.amount = params.amount as number;
      if (params.payment_method !== undefined) {
        pi.payment_method = params.payment_method as string;
        pi.status = "requires_confirmation";
      }
      if (params.description !== undefined) pi.description = (params.description as string) || null;
      if (params.receipt_email !== undefined) pi.receipt_email = (params.receipt_email as string) || null;
      pi.metadata = mergeMetadata(pi.metadata, params.metadata as Metadata | undefined);
      store.wrote("payment_intent_update");
      return pi;
    },
  },
  {
    method: "POST",
    pattern: "/v1/payment_intents/:id/confirm",
    spec: { payment_method: "string", return_url: "string", receipt_email: "string", client_secret: "string" },
    // Stripe.js confirms from the browser with the publishable key and the client_secret.
    publishable: true,
    run: (ctx) => {
      const pi = ctx.store.paymentIntent(ctx.path.id as string);
      if (ctx.publishable) checkClientSecret(pi, ctx.params.client_secret);
      try {
        confirm(ctx, pi, ctx.params.payment_method as string | undefined);
      } catch (err) {
        // A decline carries the PaymentIntent; a browser gets only its client-side view.
        if (ctx.publishable && err instanceof StripeFailure && err.body.payment_intent) {
          throw new StripeFailure(err.status, { ...err.body, payment_intent: clientView(pi) }, err.headers);
        }
        throw err;
      }
      ctx.store.wrote("payment_intent_confirm");
      return ctx.publishable ? clientView(pi) : pi;
    },
  },
  {
    method: "POST",
    pattern: "/v1/payment_intents/:id/cancel",
    spec: { cancellation_reason: { enum: ["duplicate", "fraudulent", "requested_by_customer", "abandoned"] } },
    run: ({ path, params, store, webhooks, request }) => {
      const pi = store.paymentIntent(path.id as string);
      if (pi.status === "succeeded" || pi.status === "canceled") {
        throw unexpectedState("payment_intent_unexpected_state", `You cannot cancel this PaymentIntent because it has a status of ${pi.status}.`);
      }
      pi.status = "canceled";
      pi.canceled_at = nowSeconds();
      pi.cancellation_reason = (params.cancellation_reason as string | undefined) ?? null;
      store.wrote("payment_intent_cancel");
      webhooks.emit("payment_intent.canceled", pi, request, pi.livemode);
      return pi;
    },
  },
  {
    method: "GET",
    pattern: "/v1/payment_intents",
    spec: { ...listSpec, customer: "string" },
    run: ({ params, store, url }) =>
      paginate(
        [...store.paymentIntents.values()].filter((p) => params.customer === undefined || p.customer === params.customer),
        params,
        url,
      ),
  },
  {
    method: "GET",
    pattern: "/v1/charges/:id",
    spec: {},
    run: ({ path, store }) =>
      store.charges.get(path.id as string) ??
      (() => {
        throw noSuch("charge", path.id as string);
      })(),
  },
  {
    method: "POST",
    pattern: "/v1/refunds",
    spec: {
      payment_intent: "string",
      charge: "string",
      amount: "integer",
      reason: { enum: ["duplicate", "fraudulent", "requested_by_customer"] },
      metadata: "metadata",
    },
    run: ({ params, store, webhooks, request }) => {
      let piId = params.payment_intent as string | undefined;
      if (!piId && params.charge)
        piId = (
          store.charges.get(params.charge as string) ??
          (() => {
            throw noSuch("charge", params.charge as string, "charge");
          })()
        ).payment_intent;
      if (!piId)
        throw new StripeFailure(400, {
          type: "invalid_request_error",
          code: "parameter_missing",
          param: "payment_intent",
          message: "One of `charge` or `payment_intent` is required.",
        });
      const pi = store.paymentIntent(piId, "payment_intent");
      return refund(
        store,
        webhooks,
        pi,
        params.amount as number | undefined,
        request,
        (params.reason as string | undefined) ?? null,
        (params.metadata as Metadata | undefined) ?? {},
      );
    },
  },
  {
    method: "GET",
    pattern: "/v1/refunds/:id",
    spec: {},
    run: ({ path, store }) =>
      store.refunds.get(path.id as string) ??
      (() => {
        throw noSuch("refund", path.id as string);
      })(),
  },
  {
    method: "GET",
    pattern: "/v1/disputes/:id",
    spec: {},
    run: ({ path, store }) =>
      store.disputes.get(path.id as string) ??
      (() => {
        throw noSuch("dispute", path.id as string);
      })(),
  },
];
