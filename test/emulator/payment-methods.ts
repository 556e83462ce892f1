// Card PaymentMethods: Stripe's test ids (`pm_card_visa`, …), each use of which makes a fresh
// `pm_…` with that card's behaviour; saved cards (attached to a customer, by a payment with
// `setup_future_usage` or by attach) and the rules for using one again; retrieve, attach, detach
// and a customer's list.

import type { Endpoint } from "./endpoint.js";
import { StripeFailure } from "./errors.js";
import { listSpec } from "./params.js";
import { newId, nowSeconds, paginate, type CardBehaviour, type PaymentMethod, type Store } from "./store.js";
import type { Webhooks } from "./webhooks.js";

type EventRequest = { id: string | null; idempotency_key: string | null };

interface TestCard {
  brand: string;
  last4: string;
  funding: string;
  behaviour: CardBehaviour;
}

/**
 * Stripe's test PaymentMethod ids (docs.stripe.com/testing): each is a card number in disguise.
 * Using one makes a new PaymentMethod of that card, as Stripe does; the id itself is never stored.
 */
export const TEST_PAYMENT_METHODS: ReadonlyMap<string, TestCard> = new Map([
  ["pm_card_visa", { brand: "visa", last4: "4242", funding: "credit", behaviour: "succeed" }],
  ["pm_card_us", { brand: "visa", last4: "4242", funding: "credit", behaviour: "succeed" }],
  ["pm_card_mastercard", { brand: "mastercard", last4: "4444", funding: "credit", behaviour: "succeed" }],
  ["pm_card_amex", { brand: "amex", last4: "0005", funding: "credit", behaviour: "succeed" }],
  ["pm_card_chargeDeclined", { brand: "visa", last4: "0002", funding: "credit", behaviour: "decline" }],
  ["pm_card_visa_chargeDeclined", { brand: "visa", last4: "0002", funding: "credit", behaviour: "decline" }],
  ["pm_card_chargeDeclinedInsufficientFunds", { brand: "visa", last4: "9995", funding: "credit", behaviour: "insufficient_funds" }],
  ["pm_card_authenticationRequired", { brand: "visa", last4: "3184", funding: "credit", behaviour: "authentication_required" }],
  ["pm_card_authenticationRequiredOnSetup", { brand: "visa", last4: "3155", funding: "credit", behaviour: "authentication_required_on_setup" }],
]);

/** Stores a new card PaymentMethod of test card `testId` (not attached, not yet used). */
export function createPaymentMethod(store: Store, testId: string, livemode: boolean): PaymentMethod {
  const card = TEST_PAYMENT_METHODS.get(testId);
  if (!card) throw new Error(`not a test payment method: ${testId}`);
  const pm: PaymentMethod = {
    id: newId("pm"),
    object: "payment_method",
    allow_redisplay: "unspecified",
    billing_details: {
      address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null },
      email: null,
      name: null,
      phone: null,
    },
    card: { brand: card.brand, country: "US", exp_month: 12, exp_year: new Date().getUTCFullYear() + 3, funding: card.funding, last4: card.last4 },
    created: nowSeconds(),
    customer: null,
    livemode,
    metadata: {},
    type: "card",
  };
  store.paymentMethods.set(pm.id, pm);
  store.cards.set(pm.id, { behaviour: card.behaviour, setUp: false, spent: false });
  store.wrote("payment_method");
  return pm;
}

/** The PaymentMethod `id` names: a fresh one for a test id, else the stored one (404 if none). */
export function resolvePaymentMethod(store: Store, id: string, livemode: boolean): PaymentMethod {
  return TEST_PAYMENT_METHODS.has(id) ? createPaymentMethod(store, id, livemode) : store.paymentMethod(id);
}

// Stripe's refusals of a PaymentMethod that cannot be used (again), in its words.
const SPENT =
  "The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment, shared with a connected account without Customer attachment, or was detached from a Customer. It may not be used again. To use a PaymentMethod multiple times, you must attach it to a Customer first.";

/**
 * Refuses a PaymentMethod that a payment for `customer` may not use, as Stripe does: one spent
 * (paid once unattached, or detached), one attached to another customer, or one attached to a
 * customer when the PaymentIntent names none. `paymentIntent` is carried on the error when there is
 * one (a confirm), not on a create.
 */
export function checkUsable(store: Store, pm: PaymentMethod, customer: string | null, paymentIntent?: unknown): void {
  const carry = paymentIntent === undefined ? {} : { payment_intent: structuredClone(paymentIntent) };
  if (store.card(pm.id).spent) {
    throw new StripeFailure(400, { type: "invalid_request_error", param: "payment_method", message: SPENT, ...carry });
  }
  if (pm.customer !== null && customer === null) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "parameter_missing",
      param: "payment_method",
      message: `The \`payment_method\` parameter supplied ${pm.id} belongs to the Customer ${pm.customer}. Please include the Customer in the \`customer\` parameter on the PaymentIntent.`,
      ...carry,
    });
  }
  if (pm.customer !== null && pm.customer !== customer) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      param: "payment_method",
      message: `The PaymentMethod ${pm.id} does not belong to the Customer you supplied ${customer ?? ""}. Please use this PaymentMethod with the Customer that it belongs to instead.`,
      ...carry,
    });
  }
}

/** Attaches `pm` to `customer` and says so (`payment_method.attached`). */
export function attach(store: Store, webhooks: Webhooks, pm: PaymentMethod, customer: string, request: EventRequest): void {
  pm.customer = customer;
  store.wrote("payment_method_attach");
  webhooks.emit("payment_method.attached", pm, request, pm.livemode);
}

export const paymentMethodEndpoints: Endpoint[] = [
  {
    method: "GET",
    pattern: "/v1/payment_methods/:id",
    spec: {},
    run: ({ path, store }) => store.paymentMethod(path.id as string),
  },
  {
    method: "POST",
    pattern: "/v1/payment_methods/:id/attach",
    spec: { customer: "string" },
    required: ["customer"],
    run: ({ path, params, store, webhooks, request, livemode }) => {
      const customer = store.customer(params.customer as string, "customer").id;
      // A test id attaches a new card of its kind (what Stripe's own examples do with pm_card_visa).
      const pm = resolvePaymentMethod(store, path.id as string, livemode);
      if (store.card(pm.id).spent) throw new StripeFailure(400, { type: "invalid_request_error", param: "payment_method", message: SPENT });
      // Attaching again to the same customer changes nothing and says nothing.
      if (pm.customer === customer) return pm;
      if (pm.customer !== null) {
        throw new StripeFailure(400, {
          type: "invalid_request_error",
          param: "payment_method",
          message: "The payment method you provided has already been attached to a customer.",
        });
      }
      attach(store, webhooks, pm, customer, request);
      return pm;
    },
  },
  {
    method: "POST",
    pattern: "/v1/payment_methods/:id/detach",
    spec: {},
    run: ({ path, store, webhooks, request }) => {
      const pm = store.paymentMethod(path.id as string);
      if (pm.customer === null) {
        throw new StripeFailure(400, {
          type: "invalid_request_error",
          message: "The payment method you provided is not attached to a customer so detachment is impossible.",
        });
      }
      const previous = pm.customer;
      pm.customer = null;
      // Detaching is for good: Stripe refuses the card for payments and attachment from now on.
      store.card(pm.id).spent = true;
      store.wrote("payment_method_detach");
      webhooks.emit("payment_method.detached", pm, request, pm.livemode, { customer: previous });
      return pm;
    },
  },
  {
    method: "GET",
    pattern: "/v1/customers/:id/payment_methods",
    spec: { ...listSpec, type: { enum: ["card"] } },
    run: ({ path, params, store, url }) => {
      const customer = store.customer(path.id as string).id;
      const attached = [...store.paymentMethods.values()].filter((pm) => pm.customer === customer && (params.type === undefined || pm.type === params.type));
      return paginate(attached, params, url);
    },
  },
];
