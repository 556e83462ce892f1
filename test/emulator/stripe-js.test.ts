// What Stripe.js needs from the emulator, as Stripe gives it: the stand-in script at /v3/; a
// publishable key accepted only to read or confirm a PaymentIntent whose client_secret comes with
// it (and, off Stripe's API, to answer its 3-D Secure challenge), and refused everywhere else; the
// browser's view of the PaymentIntent (no customer, no metadata); and CORS, since the page
// calling it is on another origin. The stand-in itself, in a browser: stripe-js-challenge.test.ts.

import { describe, expect, it } from "vitest";
import { errorOf, unique, useEmulator } from "./harness.js";

const h = useEmulator();
const PK = "Bearer pk_test_standin";
const PAGE = "http://127.0.0.1:8787";
const PUBLISHABLE_REFUSED = /cannot be made with a publishable API key/;

/** A PaymentIntent as the service makes a top-up: on a customer, with metadata. */
async function topUp(amount = 1500) {
  const customer = await h.stripe.customers.create({ email: `${unique("pk")}@example.com` });
  return h.stripe.paymentIntents.create({
    amount,
    currency: "usd",
    customer: customer.id,
    metadata: { account_id: "acct_pk", edge_credit: "top_up" },
    automatic_payment_methods: { enabled: true },
  });
}

const confirmAsBrowser = (id: string, params: Record<string, string>) => h.api("POST", `/v1/payment_intents/${id}/confirm`, { params, authorization: PK });

describe("the Stripe.js stand-in", () => {
  it("is served at /v3/ as JavaScript that defines Stripe()", async () => {
    for (const path of ["/v3/", "/v3"]) {
      const res = await fetch(`${h.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/javascript/);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      const source = await res.text();
      expect(source).toContain(".Stripe = Stripe");
      expect(source).toContain("/v1/payment_intents/");
    }
    expect((await fetch(`${h.url}/v3/`, { method: "POST" })).status).toBe(404);
  });
});

describe("a publishable key", () => {
  it("is refused by every endpoint but those Stripe.js calls with a client_secret, and changes nothing", async () => {
    const pi = await topUp();
    const writesBefore = (await h.stats()).writes;
    const refused = [
      await h.api("GET", "/v1/customers", { authorization: PK }),
      await h.api("POST", "/v1/customers", { params: { email: "x@example.com" }, authorization: PK }),
      await h.api("POST", "/v1/payment_intents", { params: { amount: "100", currency: "usd" }, authorization: PK }),
      await h.api("POST", `/v1/payment_intents/${pi.id}`, { params: { "metadata[account_id]": "acct_thief" }, authorization: PK }),
      await h.api("POST", `/v1/payment_intents/${pi.id}/cancel`, { authorization: PK }),
      await h.api("POST", "/v1/refunds", { params: { payment_intent: pi.id }, authorization: PK }),
      await h.api("POST", `/v1/customers/${pi.customer as string}/balance_transactions`, { params: { amount: "-100", currency: "usd" }, authorization: PK }),
    ];
    for (const answer of refused) {
      expect(answer.status).toBe(401);
      expect(errorOf(answer).type).toBe("invalid_request_error");
      expect(errorOf(answer).message).toMatch(PUBLISHABLE_REFUSED);
    }
    expect((await h.stats()).writes).toEqual(writesBefore);
    expect(await h.stripe.paymentIntents.retrieve(pi.id)).toMatchObject({ status: "requires_payment_method", metadata: { account_id: "acct_pk" } });
  });

  it("reads a PaymentIntent only with its client_secret, and only the browser's view of it", async () => {
    const pi = await topUp(1800);
    const other = await topUp();
    const read = await h.api("GET", `/v1/payment_intents/${pi.id}`, { params: { client_secret: pi.client_secret ?? "" }, authorization: PK });
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: pi.id, amount: 1800, status: "requires_payment_method", next_action: null });
    for (const field of ["customer", "metadata", "latest_charge"]) expect(read.body).not.toHaveProperty(field);

    const missing = await h.api("GET", `/v1/payment_intents/${pi.id}`, { authorization: PK });
    expect(missing.status).toBe(400);
    expect(errorOf(missing)).toMatchObject({ code: "parameter_missing", param: "client_secret" });
    const wrong = await h.api("GET", `/v1/payment_intents/${pi.id}`, { params: { client_secret: other.client_secret ?? "" }, authorization: PK });
    expect(wrong.status).toBe(400);
    expect(errorOf(wrong).param).toBe("client_secret");
  });

  it("confirms only with the PaymentIntent's own client_secret", async () => {
    const pi = await topUp();
    const other = await topUp();

    const missing = await confirmAsBrowser(pi.id, { payment_method: "pm_card_visa" });
    expect(missing.status).toBe(400);
    expect(errorOf(missing)).toMatchObject({ type: "invalid_request_error", code: "parameter_missing", param: "client_secret" });

    // Another PaymentIntent's secret opens nothing: a browser cannot pay (or probe) someone else's.
    const wrong = await confirmAsBrowser(pi.id, { payment_method: "pm_card_visa", client_secret: other.client_secret ?? "" });
    expect(wrong.status).toBe(400);
    expect(errorOf(wrong)).toMatchObject({ type: "invalid_request_error", param: "client_secret" });
    expect(errorOf(wrong).message).toMatch(/does not match/);

    const unknown = await confirmAsBrowser("pi_doesnotexist", { payment_method: "pm_card_visa", client_secret: "pi_doesnotexist_secret_x" });
    expect(unknown.status).toBe(404);

    expect((await h.stripe.paymentIntents.retrieve(pi.id)).status).toBe("requires_payment_method");
    expect((await h.stripe.paymentIntents.retrieve(other.id)).status).toBe("requires_payment_method");
  });

  it("pays with the client_secret and answers the browser's view of the PaymentIntent", async () => {
    const pi = await topUp(2300);
    const paid = await confirmAsBrowser(pi.id, { payment_method: "pm_card_visa", client_secret: pi.client_secret ?? "", return_url: `${PAGE}/` });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({
      id: pi.id,
      object: "payment_intent",
      status: "succeeded",
      amount: 2300,
      currency: "usd",
      client_secret: pi.client_secret,
    });
    // What only the secret key may read stays out of the browser's answer.
    for (const field of ["customer", "metadata", "latest_charge", "amount_received"]) expect(paid.body).not.toHaveProperty(field);

    // The same payment as the server sees it: succeeded, charged, announced.
    const server = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(server).toMatchObject({ status: "succeeded", amount_received: 2300, metadata: { account_id: "acct_pk" } });
    expect(server.latest_charge).toMatch(/^ch_/);
    const events = await h.control<{ data: { type: string }[] }>("GET", `/events?payment_intent=${pi.id}`);
    expect(events.data.map((e) => e.type)).toContain("payment_intent.succeeded");

    // Paying twice is refused as Stripe refuses it, with the PaymentIntent (the browser's view), so a
    // page that finds it already paid can go on.
    const again = await confirmAsBrowser(pi.id, { payment_method: "pm_card_visa", client_secret: pi.client_secret ?? "" });
    expect(again.status).toBe(400);
    expect(errorOf(again).code).toBe("payment_intent_unexpected_state");
    expect(errorOf(again).message).toBe("You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.");
    expect(errorOf(again).payment_intent).toMatchObject({ id: pi.id, status: "succeeded" });
    expect(errorOf(again).payment_intent).not.toHaveProperty("metadata");
  });

  it("is declined like Stripe.js is told, then pays with another card", async () => {
    const pi = await topUp();
    const declined = await confirmAsBrowser(pi.id, { payment_method: "pm_card_chargeDeclined", client_secret: pi.client_secret ?? "" });
    expect(declined.status).toBe(402);
    const error = errorOf(declined);
    expect(error).toMatchObject({ type: "card_error", code: "card_declined", message: "Your card was declined." });
    expect(error.payment_intent).toMatchObject({ id: pi.id, status: "requires_payment_method" });
    expect(error.payment_intent).not.toHaveProperty("metadata");
    expect(error.payment_intent).not.toHaveProperty("customer");

    const paid = await confirmAsBrowser(pi.id, { payment_method: "pm_card_mastercard", client_secret: pi.client_secret ?? "" });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ status: "succeeded" });
  });

  it("leaves the secret key's confirm as it was (no client_secret needed, the whole object back)", async () => {
    const pi = await topUp();
    const paid = await h.api("POST", `/v1/payment_intents/${pi.id}/confirm`, { params: { payment_method: "pm_card_visa" } });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ status: "succeeded", customer: pi.customer, metadata: { account_id: "acct_pk" } });
  });
});

describe("the 3-D Secure route of the stand-in (POST /v3/3ds/:id)", () => {
  /** A top-up whose card asked for 3-D Secure when the browser confirmed it. */
  async function challenged(amount = 2100) {
    const pi = await topUp(amount);
    const confirmed = await confirmAsBrowser(pi.id, { payment_method: "pm_card_authenticationRequired", client_secret: pi.client_secret ?? "" });
    expect(confirmed.status).toBe(200);
    return { pi, confirmed: confirmed.body };
  }
  const answer = (id: string, params: Record<string, string>, authorization: string | null = PK) => h.api("POST", `/v3/3ds/${id}`, { params, authorization });

  it("points the browser's view at itself: requires_action with Stripe's use_stripe_sdk next action", async () => {
    const { pi, confirmed } = await challenged();
    expect(confirmed).toMatchObject({
      id: pi.id,
      status: "requires_action",
      next_action: { type: "use_stripe_sdk", use_stripe_sdk: { type: "three_d_secure_redirect", stripe_js: `${h.url}/v3/3ds/${pi.id}` } },
    });
    expect((confirmed.next_action as { use_stripe_sdk: { source: string } }).use_stripe_sdk.source).toMatch(/^src_/);
    expect(confirmed).not.toHaveProperty("customer");
  });

  it("completes the payment with the publishable key and the client_secret, and answers the browser's view", async () => {
    const { pi } = await challenged(2100);
    const done = await answer(pi.id, { client_secret: pi.client_secret ?? "", outcome: "complete" });
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ id: pi.id, status: "succeeded", next_action: null });
    expect(done.body).not.toHaveProperty("metadata");
    const server = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(server).toMatchObject({ status: "succeeded", amount_received: 2100 });
    expect(server.latest_charge).toMatch(/^ch_/);
  });

  it("fails it as Stripe does: requires_payment_method with payment_intent_authentication_failure", async () => {
    const { pi } = await challenged();
    const failed = await answer(pi.id, { client_secret: pi.client_secret ?? "", outcome: "fail" });
    expect(failed.status).toBe(200);
    expect(failed.body).toMatchObject({
      status: "requires_payment_method",
      payment_method: null,
      next_action: null,
      last_payment_error: { type: "invalid_request_error", code: "payment_intent_authentication_failure" },
    });
    expect((await h.stripe.paymentIntents.retrieve(pi.id)).amount_received).toBe(0);
  });

  it("refuses without the PaymentIntent's own client_secret, an unknown outcome, and a PaymentIntent with no challenge", async () => {
    const { pi } = await challenged();
    const other = await topUp();
    const wrongSecret = await answer(pi.id, { client_secret: other.client_secret ?? "", outcome: "complete" });
    expect(wrongSecret.status).toBe(400);
    expect(errorOf(wrongSecret).param).toBe("client_secret");
    const noSecret = await answer(pi.id, { outcome: "complete" });
    expect(noSecret.status).toBe(400);
    expect(errorOf(noSecret)).toMatchObject({ code: "parameter_missing", param: "client_secret" });
    const bogus = await answer(pi.id, { client_secret: pi.client_secret ?? "", outcome: "maybe" });
    expect(bogus.status).toBe(400);
    expect(errorOf(bogus).param).toBe("outcome");
    const noKey = await answer(pi.id, { client_secret: pi.client_secret ?? "", outcome: "complete" }, null);
    expect(noKey.status).toBe(401);
    // None of these answered the challenge.
    expect((await h.stripe.paymentIntents.retrieve(pi.id)).status).toBe("requires_action");

    const unchallenged = await answer(other.id, { client_secret: other.client_secret ?? "", outcome: "complete" });
    expect(unchallenged.status).toBe(400);
    expect(errorOf(unchallenged).code).toBe("payment_intent_unexpected_state");
    expect((await h.stripe.paymentIntents.retrieve(other.id)).status).toBe("requires_payment_method");
  });

  it("answers the page's CORS preflight", async () => {
    const preflight = await fetch(`${h.url}/v3/3ds/pi_any`, {
      method: "OPTIONS",
      headers: { origin: PAGE, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
  });
});

describe("CORS", () => {
  it("answers the page's preflight and marks the API's answers readable from any origin", async () => {
    const pi = await topUp();
    const preflight = await fetch(`${h.url}/v1/payment_intents/${pi.id}/confirm`, {
      method: "OPTIONS",
      headers: { origin: PAGE, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    // A preflight is not an API request: nothing logged, nothing counted.
    expect(await h.requests({ path: `/v1/payment_intents/${pi.id}/confirm` })).toEqual([]);

    const res = await fetch(`${h.url}/v1/payment_intents/${pi.id}/confirm`, {
      method: "POST",
      headers: { origin: PAGE, authorization: PK, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_secret: pi.client_secret ?? "", payment_method: "pm_card_visa" }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-expose-headers")?.toLowerCase()).toContain("request-id");
  });
});
