// Saved cards and off-session payments, as Stripe has them: test PaymentMethod ids that each make
// a new card; a card saved by a payment with setup_future_usage (and no other way round the rules
// for using it again); declines; 3-D Secure on-session (requires_action, answered by the
// cardholder) and off-session (a card error, finished later on-session); the PaymentMethod
// endpoints; expand[]=payment_method; and the control routes that make a saved card misbehave.

import fc from "fast-check";
import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import type { StripeEvent } from "./store.js";
import { errorOf, stripeErrorOf, unique, useEmulator, type ApiAnswer } from "./harness.js";

const h = useEmulator();
const PK = "Bearer pk_test_saved_cards";
const BACK = "https://shop.example/back";

type Card = "succeed" | "decline" | "insufficient_funds" | "authentication_required" | "authentication_required_on_setup";

interface CardView {
  payment_method: Stripe.PaymentMethod;
  behaviour: Card;
  set_up: boolean;
  spent: boolean;
}

const newCustomer = () => h.stripe.customers.create({ email: `${unique("card")}@example.com` });

/** A browser top-up that saves its card: on-session, setup_future_usage off_session, paid with `card`. */
async function savedBy(card: string, amount = 1000) {
  const customer = await newCustomer();
  const pi = await h.stripe.paymentIntents.create({
    amount,
    currency: "usd",
    customer: customer.id,
    automatic_payment_methods: { enabled: true },
    setup_future_usage: "off_session",
  });
  const paid = await h.stripe.paymentIntents.confirm(pi.id, { payment_method: card });
  return { customer, pi: paid };
}

/** An off-session charge of a saved card, as a recharge makes it: the raw answer, for status and body. */
function offSession(customer: string, paymentMethod: string, amount = 700, idempotencyKey?: string): Promise<ApiAnswer<Record<string, unknown>>> {
  const params = { amount: String(amount), currency: "usd", customer, payment_method: paymentMethod, off_session: "true", confirm: "true" };
  return h.api("POST", "/v1/payment_intents", idempotencyKey === undefined ? { params } : { params, idempotencyKey });
}

const card = (id: string) => h.control<CardView>("GET", `/payment_methods/${id}`);
const behave = (id: string, behaviour: Card) => h.control<CardView>("POST", `/payment_methods/${id}`, { behaviour });

async function events(type: string, objectId: string): Promise<StripeEvent[]> {
  const all = await h.control<{ data: StripeEvent[] }>("GET", `/events?type=${type}`);
  return all.data.filter((e) => (e.data.object as { id: string }).id === objectId);
}

async function customerPaymentIntents(customer: string): Promise<Stripe.PaymentIntent[]> {
  return (await h.stripe.paymentIntents.list({ customer, limit: 100 })).data;
}

describe("Stripe's test PaymentMethod ids", () => {
  const TABLE = [
    { id: "pm_card_visa", brand: "visa", last4: "4242", outcome: "succeeded" },
    { id: "pm_card_us", brand: "visa", last4: "4242", outcome: "succeeded" },
    { id: "pm_card_mastercard", brand: "mastercard", last4: "4444", outcome: "succeeded" },
    { id: "pm_card_amex", brand: "amex", last4: "0005", outcome: "succeeded" },
    { id: "pm_card_chargeDeclined", brand: "visa", last4: "0002", outcome: "generic_decline" },
    { id: "pm_card_visa_chargeDeclined", brand: "visa", last4: "0002", outcome: "generic_decline" },
    { id: "pm_card_chargeDeclinedInsufficientFunds", brand: "visa", last4: "9995", outcome: "insufficient_funds" },
    { id: "pm_card_authenticationRequired", brand: "visa", last4: "3184", outcome: "requires_action" },
    { id: "pm_card_authenticationRequiredOnSetup", brand: "visa", last4: "3155", outcome: "requires_action" },
  ] as const;

  it.each(TABLE)("$id pays with a new PaymentMethod of its card ($brand …$last4): $outcome", async ({ id, brand, last4, outcome }) => {
    const pi = await h.stripe.paymentIntents.create({ amount: 500, currency: "usd" });
    const answer = await h.api("POST", `/v1/payment_intents/${pi.id}/confirm`, { params: { payment_method: id } });
    const after = await h.stripe.paymentIntents.retrieve(pi.id, { expand: ["payment_method"] });
    // After a decline the PaymentIntent lets go of the card; its last_payment_error still names it.
    const used = (after.payment_method ?? after.last_payment_error?.payment_method) as Stripe.PaymentMethod;
    expect(used.id).toMatch(/^pm_[A-Za-z0-9]{24}$/);
    expect(used.card).toMatchObject({ brand, last4 });
    if (outcome === "succeeded" || outcome === "requires_action") {
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ status: outcome, payment_method: used.id });
    } else {
      expect(answer.status).toBe(402);
      expect(errorOf(answer)).toMatchObject({ type: "card_error", code: "card_declined", decline_code: outcome });
    }
  });

  it("makes a new card each time it is used, so two payments never share one", async () => {
    const first = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd", payment_method: "pm_card_visa" });
    const second = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd", payment_method: "pm_card_visa" });
    expect(first.payment_method).toMatch(/^pm_/);
    expect(first.payment_method).not.toBe("pm_card_visa");
    expect(second.payment_method).not.toBe(first.payment_method);
  });

  it("serialises a card as Stripe does, without what only the emulator knows", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd", payment_method: "pm_card_mastercard" });
    const pm = await h.stripe.paymentMethods.retrieve(pi.payment_method as string);
    expect(Object.keys(pm).sort()).toEqual(
      ["allow_redisplay", "billing_details", "card", "created", "customer", "id", "livemode", "metadata", "object", "type"].sort(),
    );
    expect(pm).toMatchObject({
      object: "payment_method",
      type: "card",
      customer: null,
      livemode: false,
      metadata: {},
      allow_redisplay: "unspecified",
      billing_details: {
        address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null },
        email: null,
        name: null,
        phone: null,
      },
      card: { brand: "mastercard", last4: "4444", funding: "credit", country: "US" },
    });
    expect(pm.card?.exp_year).toBeGreaterThan(new Date().getUTCFullYear());
    expect(JSON.stringify(pm)).not.toMatch(/behaviour|succeed/);

    const missing = await stripeErrorOf(h.stripe.paymentMethods.retrieve("pm_nope"));
    expect(missing.statusCode).toBe(404);
    expect(missing.message).toBe("No such PaymentMethod: 'pm_nope'");
  });
});

describe("PaymentIntent parameters", () => {
  it("refuses off_session without confirm=true, as parameter validation (nothing made, nothing kept under the key)", async () => {
    const customer = await newCustomer();
    const key = unique("off-no-confirm");
    const params = { amount: "500", currency: "usd", customer: customer.id, off_session: "true" };
    const refused = await h.api("POST", "/v1/payment_intents", { params, idempotencyKey: key });
    expect(refused.status).toBe(400);
    expect(errorOf(refused)).toMatchObject({ type: "invalid_request_error", param: "off_session" });
    const again = await h.api("POST", "/v1/payment_intents", { params, idempotencyKey: key });
    expect(again.status).toBe(400);
    expect(again.headers.get("idempotent-replayed")).toBeNull();
    expect(await customerPaymentIntents(customer.id)).toEqual([]);
  });

  it("refuses to confirm on create with the Dashboard's payment methods and no return_url, unless redirects are off or nobody is there", async () => {
    const customer = await newCustomer();
    const base = { amount: "500", currency: "usd", customer: customer.id, payment_method: "pm_card_visa", confirm: "true" };
    const refusedWith: Record<string, string>[] = [
      {},
      { "automatic_payment_methods[enabled]": "true" },
      { "automatic_payment_methods[enabled]": "true", "automatic_payment_methods[allow_redirects]": "always" },
    ];
    for (const extra of refusedWith) {
      const refused = await h.api("POST", "/v1/payment_intents", { params: { ...base, ...extra } });
      expect(refused.status).toBe(400);
      expect(errorOf(refused).type).toBe("invalid_request_error");
      expect(errorOf(refused).message).toMatch(
        /^This PaymentIntent is configured to accept payment methods enabled in your Dashboard\..*you must provide a `return_url`/,
      );
    }
    expect(await customerPaymentIntents(customer.id)).toEqual([]);

    const allowed: Record<string, string>[] = [
      { return_url: BACK },
      { "automatic_payment_methods[enabled]": "true", "automatic_payment_methods[allow_redirects]": "never" },
      { "allowed_payment_method_types[]": "card" },
    ];
    for (const extra of allowed) {
      const paid = await h.api("POST", "/v1/payment_intents", { params: { ...base, ...extra } });
      expect(paid.status).toBe(200);
      expect(paid.body.status).toBe("succeeded");
    }
    // An off-session payment needs no return_url (docs.stripe.com/changelog/2023-08-16).
    const { customer: saver, pi } = await savedBy("pm_card_visa");
    expect((await offSession(saver.id, pi.payment_method as string)).status).toBe(200);
  });

  it("keeps confirming without a return_url on the confirm endpoint, as the emulator always has", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 500, currency: "usd", automatic_payment_methods: { enabled: true } });
    expect((await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" })).status).toBe("succeeded");
  });

  it("refuses payment_method_types as Stripe does at this API version, and answers the new fields", async () => {
    const refused = await h.api("POST", "/v1/payment_intents", { params: { amount: "500", currency: "usd", "payment_method_types[]": "card" } });
    expect(refused.status).toBe(400);
    expect(errorOf(refused)).toMatchObject({ code: "payment_method_types_no_longer_supported", param: "payment_method_types" });
    const pi = await h.stripe.paymentIntents.create({ amount: 500, currency: "usd" });
    const onConfirm = await h.api("POST", `/v1/payment_intents/${pi.id}/confirm`, {
      params: { "payment_method_types[]": "card", payment_method: "pm_card_visa" },
    });
    expect(onConfirm.status).toBe(400);
    expect(errorOf(onConfirm).code).toBe("payment_method_types_no_longer_supported");

    expect(pi).toMatchObject({
      automatic_payment_methods: { enabled: true, allow_redirects: "always" },
      allowed_payment_method_types: null,
      payment_method_types: ["card"],
      setup_future_usage: null,
      next_action: null,
    });
    const limited = await h.stripe.paymentIntents.create({
      amount: 500,
      currency: "usd",
      allowed_payment_method_types: ["card"],
      setup_future_usage: "on_session",
    });
    expect(limited).toMatchObject({ automatic_payment_methods: null, allowed_payment_method_types: ["card"], setup_future_usage: "on_session" });
    const both = await h.api("POST", "/v1/payment_intents", {
      params: { amount: "500", currency: "usd", "allowed_payment_method_types[]": "card", "automatic_payment_methods[enabled]": "true" },
    });
    expect(both.status).toBe(400);
    expect(errorOf(both).code).toBe("parameters_exclusive");
  });

  it("still answers an unknown parameter with parameter_unknown, on the new endpoints too", async () => {
    const customer = await newCustomer();
    const answers = [
      await h.api("POST", "/v1/payment_intents", { params: { amount: "500", currency: "usd", off_session_please: "true" } }),
      await h.api("POST", "/v1/payment_methods/pm_card_visa/attach", { params: { customer: customer.id, default: "true" } }),
      await h.api("GET", `/v1/customers/${customer.id}/payment_methods`, { params: { brand: "visa" } }),
      await h.api("POST", "/v1/payment_intents", { params: { amount: "500", currency: "usd", setup_future_usage: "sometimes" } }),
    ];
    expect(answers.map((a) => a.status)).toEqual([400, 400, 400, 400]);
    expect(answers.slice(0, 3).map((a) => errorOf(a).code)).toEqual(["parameter_unknown", "parameter_unknown", "parameter_unknown"]);
    expect(errorOf(answers[3] as ApiAnswer).param).toBe("setup_future_usage");
  });
});

describe("saving a card with a payment", () => {
  it("attaches the card to the customer when a setup_future_usage payment succeeds, and charges it off-session later", async () => {
    const { customer, pi } = await savedBy("pm_card_visa", 1200);
    expect(pi).toMatchObject({ status: "succeeded", setup_future_usage: "off_session" });
    const pm = pi.payment_method as string;
    expect((await h.stripe.paymentMethods.retrieve(pm)).customer).toBe(customer.id);
    expect(await events("payment_method.attached", pm)).toHaveLength(1);
    expect((await card(pm)).set_up).toBe(true);
    const listed = await h.stripe.customers.listPaymentMethods(customer.id, { type: "card" });
    expect(listed.data.map((p) => p.id)).toEqual([pm]);

    for (const amount of [700, 800]) {
      const charged = await offSession(customer.id, pm, amount);
      expect(charged.status).toBe(200);
      expect(charged.body).toMatchObject({ status: "succeeded", amount_received: amount, payment_method: pm, customer: customer.id });
    }
    // One attachment, however often it is used.
    expect(await events("payment_method.attached", pm)).toHaveLength(1);
  });

  it("spends a card paid with and not saved: without a customer, or without setup_future_usage", async () => {
    const customer = await newCustomer();
    const noCustomer = await h.stripe.paymentIntents.create({ amount: 300, currency: "usd", setup_future_usage: "off_session" });
    const noSetup = await h.stripe.paymentIntents.create({ amount: 300, currency: "usd", customer: customer.id });
    for (const pi of [noCustomer, noSetup]) {
      const paid = await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" });
      const pm = paid.payment_method as string;
      expect((await h.stripe.paymentMethods.retrieve(pm)).customer).toBeNull();
      expect(await events("payment_method.attached", pm)).toEqual([]);

      const again = await h.stripe.paymentIntents.create({ amount: 300, currency: "usd", customer: (pi.customer as string | null) ?? undefined });
      const refused = await stripeErrorOf(h.stripe.paymentIntents.confirm(again.id, { payment_method: pm }));
      expect(refused.statusCode).toBe(400);
      expect(refused.message).toMatch(
        /^The provided PaymentMethod was previously used with a PaymentIntent without Customer attachment.*It may not be used again\./,
      );
      expect((await h.stripe.paymentIntents.retrieve(again.id)).status).toBe("requires_payment_method");
    }
  });

  it("refuses a saved card to another customer, and to a payment that names no customer", async () => {
    const { pi } = await savedBy("pm_card_visa");
    const pm = pi.payment_method as string;
    const stranger = await newCustomer();

    const other = await offSession(stranger.id, pm);
    expect(other.status).toBe(400);
    expect(errorOf(other)).toMatchObject({ type: "invalid_request_error", param: "payment_method" });
    expect(errorOf(other).message).toBe(
      `The PaymentMethod ${pm} does not belong to the Customer you supplied ${stranger.id}. Please use this PaymentMethod with the Customer that it belongs to instead.`,
    );
    expect(await customerPaymentIntents(stranger.id)).toEqual([]);

    const open = await h.stripe.paymentIntents.create({ amount: 300, currency: "usd", customer: stranger.id });
    const onConfirm = await h.api("POST", `/v1/payment_intents/${open.id}/confirm`, { params: { payment_method: pm } });
    expect(onConfirm.status).toBe(400);
    expect(errorOf(onConfirm).payment_intent).toMatchObject({ id: open.id, status: "requires_payment_method", payment_method: null });

    const nobody = await h.api("POST", "/v1/payment_intents", { params: { amount: "300", currency: "usd", payment_method: pm } });
    expect(nobody.status).toBe(400);
    expect(errorOf(nobody).message).toMatch(new RegExp(`belongs to the Customer ${pi.customer as string}\\. Please include the Customer`));
  });
});

describe("attach and detach", () => {
  it("attaches a card once, to one customer: again to the same is a no-op, to another is refused", async () => {
    const customer = await newCustomer();
    const other = await newCustomer();
    const attached = await h.stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id });
    expect(attached.id).toMatch(/^pm_/);
    expect(attached.customer).toBe(customer.id);
    expect(await events("payment_method.attached", attached.id)).toHaveLength(1);
    // Attached by hand, it is not set up for off-session payments as a saving payment would.
    expect((await card(attached.id)).set_up).toBe(false);

    const again = await h.stripe.paymentMethods.attach(attached.id, { customer: customer.id });
    expect(again.customer).toBe(customer.id);
    expect(await events("payment_method.attached", attached.id)).toHaveLength(1);

    const elsewhere = await stripeErrorOf(h.stripe.paymentMethods.attach(attached.id, { customer: other.id }));
    expect(elsewhere.statusCode).toBe(400);
    expect(elsewhere.message).toBe("The payment method you provided has already been attached to a customer.");
    expect((await h.stripe.paymentMethods.retrieve(attached.id)).customer).toBe(customer.id);

    const noCustomer = await stripeErrorOf(h.stripe.paymentMethods.attach(attached.id, { customer: "cus_nope" }));
    expect(noCustomer.statusCode).toBe(404);
    expect(noCustomer.param).toBe("customer");
  });

  it("detaches for good: an event with the customer it had, off the customer's list, unusable and unattachable after", async () => {
    const { customer, pi } = await savedBy("pm_card_visa");
    const pm = pi.payment_method as string;
    const detached = await h.stripe.paymentMethods.detach(pm);
    expect(detached).toMatchObject({ id: pm, customer: null });

    const [event, ...more] = await events("payment_method.detached", pm);
    expect(more).toEqual([]);
    expect(event?.data.object).toMatchObject({ id: pm, customer: null });
    expect(event?.data.previous_attributes).toEqual({ customer: customer.id });
    expect((await h.stripe.customers.listPaymentMethods(customer.id)).data).toEqual([]);

    const charged = await offSession(customer.id, pm);
    expect(charged.status).toBe(400);
    expect(errorOf(charged).message).toMatch(/was detached from a Customer\. It may not be used again\./);
    expect(await customerPaymentIntents(customer.id)).toHaveLength(1);
    const reattached = await stripeErrorOf(h.stripe.paymentMethods.attach(pm, { customer: customer.id }));
    expect(reattached.statusCode).toBe(400);
    const twice = await stripeErrorOf(h.stripe.paymentMethods.detach(pm));
    expect(twice.statusCode).toBe(400);
    expect(twice.message).toBe("The payment method you provided is not attached to a customer so detachment is impossible.");
  });

  it("lists a customer's cards newest first, in pages", async () => {
    const customer = await newCustomer();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await h.stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id })).id);
    const first = await h.stripe.customers.listPaymentMethods(customer.id, { limit: 2 });
    expect(first.data.map((p) => p.id)).toEqual([ids[2], ids[1]]);
    expect(first.has_more).toBe(true);
    const rest = await h.stripe.customers.listPaymentMethods(customer.id, { limit: 2, starting_after: ids[1] as string });
    expect(rest.data.map((p) => p.id)).toEqual([ids[0]]);
    expect(rest.has_more).toBe(false);
    expect((await stripeErrorOf(h.stripe.customers.listPaymentMethods("cus_nope"))).statusCode).toBe(404);
  });
});

describe("declines", () => {
  it.each([
    { behaviour: "decline", decline: "generic_decline", message: "Your card was declined." },
    { behaviour: "insufficient_funds", decline: "insufficient_funds", message: "Your card has insufficient funds." },
  ] as const)(
    "a saved card that now answers $behaviour: 402 card_declined / $decline, the PaymentIntent waiting for another card",
    async ({ behaviour, decline, message }) => {
      const { customer, pi } = await savedBy("pm_card_visa");
      const pm = pi.payment_method as string;
      expect((await behave(pm, behaviour)).behaviour).toBe(behaviour);

      const declined = await offSession(customer.id, pm, 900);
      expect(declined.status).toBe(402);
      const error = errorOf(declined);
      expect(error).toMatchObject({ type: "card_error", code: "card_declined", decline_code: decline, message });
      expect(error.payment_method).toMatchObject({ id: pm, customer: customer.id });
      expect(error.payment_intent).toMatchObject({
        status: "requires_payment_method",
        payment_method: null,
        amount_received: 0,
        last_payment_error: { type: "card_error", code: "card_declined", decline_code: decline, payment_method: { id: pm } },
      });
      const failedId = (error.payment_intent as { id: string }).id;
      expect(await events("payment_intent.payment_failed", failedId)).toHaveLength(1);
      // The card stays saved: a decline is not a detachment.
      expect((await h.stripe.paymentMethods.retrieve(pm)).customer).toBe(customer.id);
    },
  );

  it("replays a declined off-session create under the same Idempotency-Key: same 402, same body, one PaymentIntent", async () => {
    const { customer, pi } = await savedBy("pm_card_visa");
    const pm = pi.payment_method as string;
    await behave(pm, "decline");
    const key = unique("recharge");
    const first = await offSession(customer.id, pm, 900, key);
    const replay = await offSession(customer.id, pm, 900, key);
    expect(first.status).toBe(402);
    expect(replay.status).toBe(402);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    const failedId = (errorOf(first).payment_intent as { id: string }).id;
    expect((await customerPaymentIntents(customer.id)).map((p) => p.id)).toEqual([failedId, pi.id]);
    expect(await events("payment_intent.payment_failed", failedId)).toHaveLength(1);

    // Even once the card pays again, the key keeps its answer: a new attempt needs a new key.
    await behave(pm, "succeed");
    expect((await offSession(customer.id, pm, 900, key)).text).toBe(first.text);
    expect((await offSession(customer.id, pm, 900, unique("recharge"))).status).toBe(200);
  });
});

describe("3-D Secure", () => {
  it("on-session: requires_action with use_stripe_sdk, then the cardholder completes it and the card is saved", async () => {
    const customer = await newCustomer();
    const pi = await h.stripe.paymentIntents.create({ amount: 1500, currency: "usd", customer: customer.id, setup_future_usage: "off_session" });
    const action = await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_authenticationRequired" });
    expect(action).toMatchObject({ status: "requires_action", amount_received: 0, latest_charge: null });
    expect(action.next_action).toMatchObject({
      type: "use_stripe_sdk",
      use_stripe_sdk: { type: "three_d_secure_redirect", stripe_js: `${h.url}/v3/3ds/${pi.id}` },
    });
    expect(await events("payment_intent.requires_action", pi.id)).toHaveLength(1);
    const pm = action.payment_method as string;
    expect((await h.stripe.paymentMethods.retrieve(pm)).customer).toBeNull();

    const done = await h.control<Stripe.PaymentIntent>("POST", `/payment_intents/${pi.id}/authenticate`, { outcome: "complete" });
    expect(done).toMatchObject({ status: "succeeded", amount_received: 1500, next_action: null, payment_method: pm });
    expect(done.latest_charge).toMatch(/^ch_/);
    expect(await events("payment_intent.succeeded", pi.id)).toHaveLength(1);
    expect((await h.stripe.paymentMethods.retrieve(pm)).customer).toBe(customer.id);
  });

  it("on-session, failed: requires_payment_method with payment_intent_authentication_failure; a new try asks again", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 800, currency: "usd" });
    const action = await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_authenticationRequired" });
    const pm = action.payment_method as string;
    const failed = await h.control<Stripe.PaymentIntent>("POST", `/payment_intents/${pi.id}/authenticate`, { outcome: "fail" });
    expect(failed).toMatchObject({
      status: "requires_payment_method",
      payment_method: null,
      next_action: null,
      amount_received: 0,
      last_payment_error: { type: "invalid_request_error", code: "payment_intent_authentication_failure", payment_method: { id: pm } },
    });
    expect(failed.last_payment_error?.message).toMatch(/^The provided PaymentMethod has failed authentication\./);
    expect(await events("payment_intent.payment_failed", pi.id)).toHaveLength(1);
    expect((await h.stripe.paymentIntents.confirm(pi.id, { payment_method: pm })).status).toBe("requires_action");
  });

  it("is answered only where a challenge waits, with a known outcome", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 800, currency: "usd" });
    const none = await h.controlRaw("POST", `/payment_intents/${pi.id}/authenticate`, { outcome: "complete" });
    expect(none.status).toBe(400);
    expect((none.body.error as { code: string }).code).toBe("payment_intent_unexpected_state");
    await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_authenticationRequired" });
    const bogus = await h.controlRaw("POST", `/payment_intents/${pi.id}/authenticate`, { outcome: "yes" });
    expect(bogus.status).toBe(400);
    expect((await h.controlRaw("POST", "/payment_intents/pi_nope/authenticate", { outcome: "complete" })).status).toBe(404);
    expect((await h.stripe.paymentIntents.retrieve(pi.id)).status).toBe("requires_action");
  });

  it("off-session: a card error authentication_required, then the customer finishes the same PaymentIntent on-session with Stripe.js", async () => {
    const { customer, pi: saving } = await savedBy("pm_card_visa");
    const pm = saving.payment_method as string;
    await behave(pm, "authentication_required");

    const declined = await offSession(customer.id, pm, 2500, unique("recharge"));
    expect(declined.status).toBe(402);
    const error = errorOf(declined);
    expect(error).toMatchObject({
      type: "card_error",
      code: "authentication_required",
      decline_code: "authentication_required",
      message: "Your card was declined. This transaction requires authentication.",
    });
    const open = error.payment_intent as Stripe.PaymentIntent;
    expect(open).toMatchObject({ status: "requires_payment_method", payment_method: null, last_payment_error: { code: "authentication_required" } });
    const cardToUse = (open.last_payment_error?.payment_method as Stripe.PaymentMethod).id;
    expect(cardToUse).toBe(pm);

    // The page confirms it as Stripe.js does: publishable key, client_secret, the same card.
    const onSession = await h.api("POST", `/v1/payment_intents/${open.id}/confirm`, {
      params: { payment_method: cardToUse, client_secret: open.client_secret as string },
      authorization: PK,
    });
    expect(onSession.status).toBe(200);
    expect(onSession.body).toMatchObject({ status: "requires_action", next_action: { type: "use_stripe_sdk" } });
    const done = await h.api("POST", `/v3/3ds/${open.id}`, { params: { client_secret: open.client_secret as string, outcome: "complete" }, authorization: PK });
    expect(done.body).toMatchObject({ status: "succeeded" });
    expect(await h.stripe.paymentIntents.retrieve(open.id)).toMatchObject({ status: "succeeded", amount_received: 2500, customer: customer.id });
  });

  it("authenticationRequiredOnSetup: asks on-session, then pays off-session once a payment has saved it, but not when only attached", async () => {
    const customer = await newCustomer();
    const top = await h.stripe.paymentIntents.create({ amount: 1000, currency: "usd", customer: customer.id, setup_future_usage: "off_session" });
    const action = await h.stripe.paymentIntents.confirm(top.id, { payment_method: "pm_card_authenticationRequiredOnSetup" });
    expect(action.status).toBe("requires_action");
    await h.control("POST", `/payment_intents/${top.id}/authenticate`, { outcome: "complete" });
    const pm = action.payment_method as string;
    expect(await card(pm)).toMatchObject({ set_up: true, behaviour: "authentication_required_on_setup" });

    const later = await offSession(customer.id, pm, 600);
    expect(later.status).toBe(200);
    expect(later.body.status).toBe("succeeded");
    const onSessionAgain = await h.stripe.paymentIntents.create({ amount: 600, currency: "usd", customer: customer.id, payment_method: pm });
    expect((await h.stripe.paymentIntents.confirm(onSessionAgain.id)).status).toBe("requires_action");

    const attachedOnly = await h.stripe.paymentMethods.attach("pm_card_authenticationRequiredOnSetup", { customer: customer.id });
    const refused = await offSession(customer.id, attachedOnly.id, 600);
    expect(refused.status).toBe(402);
    expect(errorOf(refused).code).toBe("authentication_required");
  });

  it("off-session with the always-3-D-Secure card fails even once it is saved", async () => {
    const { customer, pi } = await savedBy("pm_card_visa");
    const pm = pi.payment_method as string;
    await behave(pm, "authentication_required");
    expect((await card(pm)).set_up).toBe(true);
    const refused = await offSession(customer.id, pm);
    expect(refused.status).toBe(402);
    expect(errorOf(refused).decline_code).toBe("authentication_required");
  });

  it("a cancelled challenge leaves nothing to do", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 800, currency: "usd" });
    await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_authenticationRequired" });
    const canceled = await h.stripe.paymentIntents.cancel(pi.id, { cancellation_reason: "abandoned" });
    expect(canceled).toMatchObject({ status: "canceled", next_action: null });
    expect((await h.controlRaw("POST", `/payment_intents/${pi.id}/authenticate`, { outcome: "complete" })).status).toBe(400);
  });
});

describe("expand[]=payment_method", () => {
  it("puts the card in place of its id on retrieve, create and confirm, and only when asked", async () => {
    const { customer, pi } = await savedBy("pm_card_visa");
    const pm = pi.payment_method as string;
    const plain = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(plain.payment_method).toBe(pm);
    const retrieved = await h.stripe.paymentIntents.retrieve(pi.id, { expand: ["payment_method"] });
    expect(retrieved.payment_method).toMatchObject({ id: pm, object: "payment_method", customer: customer.id, card: { last4: "4242" } });

    const created = await h.stripe.paymentIntents.create({
      amount: 400,
      currency: "usd",
      customer: customer.id,
      payment_method: pm,
      off_session: true,
      confirm: true,
      expand: ["payment_method"],
    });
    expect(created.payment_method).toMatchObject({ id: pm, object: "payment_method" });
    const open = await h.stripe.paymentIntents.create({ amount: 400, currency: "usd", customer: customer.id });
    const confirmed = await h.stripe.paymentIntents.confirm(open.id, { payment_method: pm, expand: ["payment_method"] });
    expect(confirmed.payment_method).toMatchObject({ id: pm });
  });
});

describe("the control API for cards", () => {
  it("saves a card for a customer directly, set up for off-session payments", async () => {
    const customer = await newCustomer();
    const saved = await h.control<CardView>("POST", "/payment_methods", { customer: customer.id, card: "pm_card_mastercard" });
    expect(saved).toMatchObject({ behaviour: "succeed", set_up: true, spent: false, payment_method: { customer: customer.id, card: { last4: "4444" } } });
    expect(await events("payment_method.attached", saved.payment_method.id)).toHaveLength(1);
    expect((await offSession(customer.id, saved.payment_method.id)).status).toBe(200);
  });

  it("validates what it is given", async () => {
    const customer = await newCustomer();
    const { payment_method: pm } = await h.control<CardView>("POST", "/payment_methods", { customer: customer.id });
    expect((await h.controlRaw("POST", `/payment_methods/${pm.id}`, { behaviour: "explode" })).status).toBe(400);
    expect((await h.controlRaw("POST", `/payment_methods/${pm.id}`, {})).status).toBe(400);
    expect((await h.controlRaw("POST", "/payment_methods/pm_nope", { behaviour: "decline" })).status).toBe(404);
    expect((await h.controlRaw("GET", "/payment_methods/pm_nope")).status).toBe(404);
    expect((await h.controlRaw("POST", "/payment_methods", { card: "pm_card_unknown" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/payment_methods", { customer: "cus_nope" })).status).toBe(404);
    expect((await card(pm.id)).behaviour).toBe("succeed");
  });
});

/**
 * The rule for one confirm, stated once: what a card does depends only on how it behaves, whether
 * the customer is there, and whether a payment has set it up. A succeeded payment has one charge
 * for its amount; anything else has none; `next_action` is there exactly while `requires_action`.
 */
function expected(behaviour: Card, offSessionNow: boolean, setUp: boolean): "succeeded" | "requires_action" | "card_declined" | "authentication_required" {
  if (behaviour === "succeed") return "succeeded";
  if (behaviour === "decline" || behaviour === "insufficient_funds") return "card_declined";
  if (!offSessionNow) return "requires_action";
  return behaviour === "authentication_required_on_setup" && setUp ? "succeeded" : "authentication_required";
}

describe("the outcome of a confirm (property)", () => {
  it("follows the card's behaviour, the session and the set-up, and leaves the PaymentIntent consistent", async () => {
    const behaviours: Card[] = ["succeed", "decline", "insufficient_funds", "authentication_required", "authentication_required_on_setup"];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...behaviours),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 50, max: 99_999 }),
        async (behaviour, offSessionNow, setUp, amount) => {
          const customer = await newCustomer();
          // A card of the customer's: set up (as a saving payment leaves it), or only attached by hand.
          const cardId = setUp
            ? (await h.control<CardView>("POST", "/payment_methods", { customer: customer.id })).payment_method.id
            : (await h.stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id })).id;
          await behave(cardId, behaviour);

          const params: Record<string, string> = { amount: String(amount), currency: "usd", customer: customer.id, payment_method: cardId, confirm: "true" };
          if (offSessionNow) params.off_session = "true";
          else params.return_url = BACK;
          const answer = await h.api("POST", "/v1/payment_intents", { params });
          const outcome = expected(behaviour, offSessionNow, setUp);
          const pi = (answer.status === 200 ? answer.body : errorOf(answer).payment_intent) as Stripe.PaymentIntent;
          if (outcome === "succeeded" || outcome === "requires_action") {
            expect(answer.status).toBe(200);
            expect(pi.status).toBe(outcome);
          } else {
            expect(answer.status).toBe(402);
            expect(errorOf(answer).code).toBe(outcome);
            expect(pi).toMatchObject({ status: "requires_payment_method", payment_method: null });
            expect(pi.last_payment_error?.payment_method).toMatchObject({ id: cardId });
          }
          const stored = await h.stripe.paymentIntents.retrieve(pi.id);
          expect(stored.amount_received).toBe(stored.status === "succeeded" ? amount : 0);
          expect(stored.latest_charge === null).toBe(stored.status !== "succeeded");
          expect(stored.next_action === null).toBe(stored.status !== "requires_action");
          // Whatever happened, the card is still the customer's, and still usable.
          expect(await card(cardId)).toMatchObject({ spent: false, payment_method: { customer: customer.id } });
        },
      ),
      { numRuns: 40 },
    );
  });
});
