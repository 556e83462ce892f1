// PaymentIntents (create, retrieve, update, confirm, cancel, and the stand-in's route for the
// cardholder's 3-D Secure answer) and what follows a payment: refunds (full and partial) and
// disputes. What a card does when confirmed is in payments.ts.

import { mergeMetadata } from "./customers.js";
import type { Endpoint, RunContext } from "./endpoint.js";
import { noSuch, StripeFailure, unexpectedState } from "./errors.js";
import { listSpec, type FieldSpec, type Params } from "./params.js";
import { checkUsable, resolvePaymentMethod } from "./payment-methods.js";
import { authenticate, confirm, PROCESSING_METHOD, THREE_D_SECURE_PATH } from "./payments.js";
import {
  DISPUTE_EVIDENCE_FIELDS,
  newId,
  nowSeconds,
  paginate,
  type Charge,
  type Dispute,
  type Metadata,
  type PaymentIntent,
  type Refund,
  type Store,
} from "./store.js";
import type { Webhooks } from "./webhooks.js";

// The benchmark settles payments directly, as it always has from here.
export { succeed } from "./payments.js";

type EventRequest = RunContext["request"] | { id: null; idempotency_key: null };

const SETUP_FUTURE_USAGE = { enum: ["on_session", "off_session"] } as const;

const createFields: FieldSpec = {
  amount: "integer",
  currency: "currency",
  customer: "string",
  description: "string",
  metadata: "metadata",
  automatic_payment_methods: { enabled: "boolean", allow_redirects: { enum: ["always", "never"] } },
  allowed_payment_method_types: "string[]",
  payment_method: "string",
  // Parsed only to be refused in Stripe's words (see refusePaymentMethodTypes).
  payment_method_types: "string[]",
  receipt_email: "string",
  confirm: "boolean",
  off_session: "boolean",
  return_url: "string",
  setup_future_usage: SETUP_FUTURE_USAGE,
};

/**
 * API version 2026-09-30.endive (so also the 2026-10-28.endive the emulator speaks) removed
 * `payment_method_types` as a parameter of PaymentIntents: Stripe answers 400
 * `payment_method_types_no_longer_supported` (docs.stripe.com/changelog/endive). The object still
 * reports the field; `allowed_payment_method_types` is the parameter now.
 */
function refusePaymentMethodTypes(params: Params): void {
  if (params.payment_method_types === undefined) return;
  throw new StripeFailure(400, {
    type: "invalid_request_error",
    code: "payment_method_types_no_longer_supported",
    param: "payment_method_types",
    message:
      "`payment_method_types` is no longer supported on this API version. Use `allowed_payment_method_types` to limit the payment methods, or dynamic payment methods.",
  });
}

function refineCreate(params: Params): void {
  refusePaymentMethodTypes(params);
  if (params.off_session !== undefined && params.confirm !== true) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      param: "off_session",
      message: "You can only pass `off_session` when `confirm` is true.",
    });
  }
  if (params.allowed_payment_method_types !== undefined && params.automatic_payment_methods !== undefined) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "parameters_exclusive",
      param: "allowed_payment_method_types",
      message: "You cannot use both `allowed_payment_method_types` and `automatic_payment_methods`.",
    });
  }
}

/**
 * Confirming a PaymentIntent whose payment methods come from the Dashboard (automatic payment
 * methods: the default since API 2023-08-16) needs a `return_url`, since some of them redirect;
 * `allow_redirects: "never"` or `off_session: true` waives it (docs.stripe.com/changelog/2023-08-16).
 */
const RETURN_URL_NEEDED =
  "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some of these payment methods might redirect your customer off of your page, you must provide a `return_url`. If you don't want to accept redirect-based payment methods, set `automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents and Payment Intents.";

/** Fields a PaymentIntent is created from; shared by the API, the control API and the benchmark. */
export interface PaymentIntentFields {
  amount: number;
  currency: string;
  customer?: string | null;
  description?: string;
  metadata?: Metadata;
  automatic_payment_methods?: { enabled: boolean; allow_redirects?: string };
  allowed_payment_method_types?: string[];
  payment_method?: string;
  receipt_email?: string;
  setup_future_usage?: "on_session" | "off_session";
}

function checkAmount(amount: number): void {
  if (!Number.isInteger(amount) || amount < 1 || amount > 99_999_999) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "amount_too_small",
      param: "amount",
      message: "Amount must be at least 1 and at most 99999999.",
    });
  }
}

/** Stripe's default: with neither `automatic_payment_methods` nor `allowed_payment_method_types`, the Dashboard's methods. */
function automaticPaymentMethods(fields: PaymentIntentFields): PaymentIntent["automatic_payment_methods"] {
  if (fields.allowed_payment_method_types !== undefined) return null;
  const apm = fields.automatic_payment_methods ?? { enabled: true };
  return apm.enabled ? { enabled: true, allow_redirects: apm.allow_redirects ?? "always" } : { enabled: false };
}

/** Creates a PaymentIntent in `store`; `payment_method` must already be a stored PaymentMethod's id (or pm_processing). */
export function createPaymentIntent(store: Store, fields: PaymentIntentFields, livemode: boolean): PaymentIntent {
  checkAmount(fields.amount);
  if (fields.customer) store.customer(fields.customer, "customer");
  const id = newId("pi");
  const pi: PaymentIntent = {
    id,
    object: "payment_intent",
    allowed_payment_method_types: fields.allowed_payment_method_types ?? null,
    amount: fields.amount,
    amount_capturable: 0,
    amount_received: 0,
    automatic_payment_methods: automaticPaymentMethods(fields),
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
    next_action: null,
    payment_method: fields.payment_method ?? null,
    // Cards are the only payment method the emulator has.
    payment_method_types: fields.allowed_payment_method_types ?? ["card"],
    receipt_email: fields.receipt_email ?? null,
    setup_future_usage: fields.setup_future_usage ?? null,
    status: fields.payment_method ? "requires_confirmation" : "requires_payment_method",
  };
  store.paymentIntents.set(pi.id, pi);
  store.wrote("payment_intent");
  return pi;
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
    next_action: pi.next_action,
    payment_method: pi.payment_method,
    payment_method_types: pi.payment_method_types,
    receipt_email: pi.receipt_email,
    setup_future_usage: pi.setup_future_usage,
    status: pi.status,
  };
}

/** The PaymentIntent as answered, with `expand[]=payment_method` honoured (the object in place of its id). */
function expanded({ expand, store }: RunContext, pi: PaymentIntent): unknown {
  const pm = expand.includes("payment_method") && pi.payment_method !== null ? store.paymentMethods.get(pi.payment_method) : undefined;
  return pm ? { ...pi, payment_method: pm } : pi;
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
    balance_transactions: [],
    charge: charge.id,
    created: nowSeconds(),
    currency: charge.currency,
    evidence: Object.fromEntries(DISPUTE_EVIDENCE_FIELDS.map((field) => [field, null])) as Dispute["evidence"],
    // Stripe gives the seller about three weeks to answer a dispute.
    evidence_details: { due_by: nowSeconds() + 21 * 24 * 60 * 60, has_evidence: false, past_due: false, submission_count: 0 },
    is_charge_refundable: false,
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
    refine: refineCreate,
    run: (ctx) => {
      const { params, store, webhooks, request, livemode } = ctx;
      const { confirm: confirmNow, return_url: returnUrl, off_session: offSession, payment_method: paymentMethod, ...rest } = params;
      const fields = rest as Omit<PaymentIntentFields, "payment_method">;
      checkAmount(fields.amount);
      const customer = fields.customer ? store.customer(fields.customer, "customer").id : null;
      if (confirmNow === true && offSession !== true && returnUrl === undefined) {
        const apm = automaticPaymentMethods(fields);
        if (apm?.enabled && apm.allow_redirects !== "never") throw new StripeFailure(400, { type: "invalid_request_error", message: RETURN_URL_NEEDED });
      }
      let pm: string | undefined;
      if (typeof paymentMethod === "string") {
        if (paymentMethod === PROCESSING_METHOD) pm = paymentMethod;
        else {
          const found = resolvePaymentMethod(store, paymentMethod, livemode);
          checkUsable(store, found, customer);
          pm = found.id;
        }
      }
      const pi = createPaymentIntent(store, pm === undefined ? fields : { ...fields, payment_method: pm }, livemode);
      webhooks.emit("payment_intent.created", pi, request, livemode);
      if (confirmNow === true) confirm(ctx, pi, { offSession: offSession === true });
      return expanded(ctx, pi);
    },
  },
  {
    method: "GET",
    pattern: "/v1/payment_intents/:id",
    spec: { client_secret: "string" },
    // Stripe.js reads a PaymentIntent (stripe.retrievePaymentIntent) with the publishable key and its client_secret.
    publishable: true,
    run: (ctx) => {
      const pi = ctx.store.paymentIntent(ctx.path.id as string);
      if (!ctx.publishable) return expanded(ctx, pi);
      checkClientSecret(pi, ctx.params.client_secret);
      return clientView(pi);
    },
  },
  {
    method: "POST",
    pattern: "/v1/payment_intents/:id",
    spec: {
      metadata: "metadata",
      description: "string",
      receipt_email: "string",
      amount: "integer",
      payment_method: "string",
      setup_future_usage: { enum: ["on_session", "off_session", ""] },
    },
    run: (ctx) => {
      const { path, params, store } = ctx;
      const pi = store.paymentIntent(path.id as string);
      if (
        (params.amount !== undefined || params.payment_method !== undefined) &&
        (pi.status === "succeeded" || pi.status === "canceled" || pi.status === "processing")
      ) {
        throw unexpectedState("payment_intent_unexpected_state", `You cannot update this PaymentIntent because it has a status of ${pi.status}.`);
      }
      if (params.amount !== undefined) pi.amount = params.amount as number;
      if (params.payment_method !== undefined) {
        const id = params.payment_method as string;
        let pm = id;
        if (id !== PROCESSING_METHOD) {
          const found = resolvePaymentMethod(store, id, pi.livemode);
          checkUsable(store, found, pi.customer, pi);
          pm = found.id;
        }
        pi.payment_method = pm;
        pi.status = "requires_confirmation";
      }
      if (params.setup_future_usage !== undefined) pi.setup_future_usage = (params.setup_future_usage as PaymentIntent["setup_future_usage"]) || null;
      if (params.description !== undefined) pi.description = (params.description as string) || null;
      if (params.receipt_email !== undefined) pi.receipt_email = (params.receipt_email as string) || null;
      pi.metadata = mergeMetadata(pi.metadata, params.metadata as Metadata | undefined);
      store.wrote("payment_intent_update");
      return expanded(ctx, pi);
    },
  },
  {
    method: "POST",
    pattern: "/v1/payment_intents/:id/confirm",
    spec: {
      payment_method: "string",
      payment_method_types: "string[]",
      return_url: "string",
      receipt_email: "string",
      client_secret: "string",
      off_session: "boolean",
      setup_future_usage: SETUP_FUTURE_USAGE,
    },
    refine: refusePaymentMethodTypes,
    // Stripe.js confirms from the browser with the publishable key and the client_secret.
    publishable: true,
    run: (ctx) => {
      const pi = ctx.store.paymentIntent(ctx.path.id as string);
      if (ctx.publishable) checkClientSecret(pi, ctx.params.client_secret);
      if (ctx.params.setup_future_usage !== undefined) pi.setup_future_usage = ctx.params.setup_future_usage as PaymentIntent["setup_future_usage"];
      try {
        confirm(ctx, pi, { paymentMethod: ctx.params.payment_method as string | undefined, offSession: ctx.params.off_session === true });
      } catch (err) {
        // A decline carries the PaymentIntent; a browser gets only its client-side view.
        if (ctx.publishable && err instanceof StripeFailure && err.body.payment_intent) {
          throw new StripeFailure(err.status, { ...err.body, payment_intent: clientView(pi) }, err.headers);
        }
        throw err;
      }
      ctx.store.wrote("payment_intent_confirm");
      return ctx.publishable ? clientView(pi) : expanded(ctx, pi);
    },
  },
  {
    method: "POST",
    pattern: `${THREE_D_SECURE_PATH}:id`,
    spec: { client_secret: "string", outcome: { enum: ["complete", "fail"] } },
    required: ["client_secret", "outcome"],
    // The cardholder's answer to the bank, from the page: the stand-in for Stripe's 3-D Secure page.
    publishable: true,
    run: ({ path, params, store, webhooks, request, publishable }) => {
      const pi = store.paymentIntent(path.id as string);
      checkClientSecret(pi, params.client_secret);
      authenticate(store, webhooks, pi, params.outcome as "complete" | "fail", request);
      return publishable ? clientView(pi) : pi;
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
      pi.next_action = null;
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
