// Fulfilment from Stripe's webhook, which may come before, after or during the browser's
// confirms, more than once, and as two distinct event objects for one payment. Whatever the
// mix: one credit. Anything not signed by Stripe: 400 and nothing happens.

import { createExecutionContext, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { TEST_BINDINGS } from "./bindings.js";
import { signatureHeader } from "./emulator/webhooks.js";
import {
  answerOf,
  call,
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  emu,
  eventsFor,
  expectCreditedOnce,
  json,
  ledgerFor,
  newAccountId,
  paidTopUp,
  piObject,
  postWebhook,
  settle,
  settledCredit,
  slowStripe,
  stripeTraffic,
  tokenFor,
  waitForObject,
} from "./helpers.js";

async function succeededEvent(paymentIntentId: string): Promise<string> {
  const [event] = await eventsFor("payment_intent.succeeded", paymentIntentId);
  if (!event) throw new Error(`no payment_intent.succeeded for ${paymentIntentId}`);
  return event.id;
}

describe("webhook fulfilment", () => {
  it("credits from the webhook alone, and answers Stripe without waiting on Stripe", async () => {
    const { customer, pi, token } = await paidTopUp(2600);
    await slowStripe(pi.id, customer.id, 1000);
    const started = Date.now();
    const res = await deliver(await succeededEvent(pi.id));
    expect(res.status).toBe(200);
    // Each Stripe call now takes a second; the answer came before the first could finish.
    expect(Date.now() - started).toBeLessThan(1000);

    await slowStripe(pi.id, customer.id, 0);
    const { record } = await waitForObject(pi.id, settledCredit);
    expect(record?.state).toBe("credited");
    expect(record?.credited_by).toBe("webhook");
    await expectCreditedOnce(pi.id, customer.id, 2600, [await answerOf(await confirm(token, pi.id))]);
  });

  it("the webhook and 20 browser confirms racing: one credit", async () => {
    const { customer, pi, token } = await paidTopUp(3300);
    await slowStripe(pi.id, customer.id, 50);
    const eventId = await succeededEvent(pi.id);
    const [hook, ...answers] = await Promise.all([deliver(eventId), ...Array.from({ length: 20 }, async () => answerOf(await confirm(token, pi.id)))]);
    expect(hook?.status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, 3300, answers);
    expect((await stripeTraffic(pi.id, customer.id)).creditWrites).toBe(1);
  });

  it("one event delivered 5 times, plus a second event object for the same PI: one credit", async () => {
    const { customer, pi, token } = await paidTopUp(1800);
    const eventId = await succeededEvent(pi.id);
    const twin = await emu<{ id: string }>(`/events/${eventId}/duplicate`, {});
    expect(twin.id).not.toBe(eventId);
    const deliveries = await Promise.all([...Array.from({ length: 5 }, () => deliver(eventId)), deliver(twin.id)]);
    expect(deliveries.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    await waitForObject(pi.id, settledCredit);
    // And again after the credit: answered from the record, nothing new.
    expect((await deliver(eventId)).status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    await expectCreditedOnce(pi.id, customer.id, 1800, [await answerOf(await confirm(token, pi.id))]);
    expect((await stripeTraffic(pi.id, customer.id)).creditWrites).toBe(1);
  });

  it("a PaymentIntent with no customer: 200, recorded as not creditable, nothing written", async () => {
    const pi = await createPaymentIntent({});
    expect((await deliver(await succeededEvent(pi.id))).status).toBe(200);
    const { record } = await waitForObject(pi.id, (i) => i.record !== null);
    expect(record?.state).toBe("not_creditable");
    expect(record?.reason).toBe("no_customer");
    // A redelivery is answered from that record.
    expect((await deliver(await succeededEvent(pi.id))).status).toBe(200);
  });

  it("an event type it does not handle: 200, ignored", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id });
    const [charge] = (
      await emu<{ data: { id: string; type: string; data: { object: { payment_intent: string } } }[] }>("/events?type=charge.succeeded")
    ).data.filter((e) => e.data.object.payment_intent === pi.id);
    const res = await deliver(charge?.id ?? "missing");
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ received: true });
    expect((await piObject(pi.id).inspect()).record).toBeNull();
  });
});

describe("webhook signatures", () => {
  const secret = TEST_BINDINGS.STRIPE_WEBHOOK_SECRET;
  const now = () => Math.floor(Date.now() / 1000);

  async function setup() {
    const { customer, pi } = await paidTopUp(900);
    const { payload } = await emu<{ payload: string }>(`/events/${await succeededEvent(pi.id)}/signed`);
    return { customer, pi, payload };
  }

  it.each([
    ["a missing header", async (p: string) => ({ body: p, sig: null as string | null })],
    ["a garbage header", async (p: string) => ({ body: p, sig: "nonsense" })],
    ["a wrong signature", async (p: string) => ({ body: p, sig: `t=${now()},v1=${"0".repeat(64)}` })],
    ["the wrong secret", async (p: string) => ({ body: p, sig: await signatureHeader(p, "whsec_not_ours") })],
    ["a stale timestamp", async (p: string) => ({ body: p, sig: await signatureHeader(p, secret, now() - 301) })],
    ["a body altered after signing", async (p: string) => ({ body: p.replace('"amount": 900', '"amount": 900000'), sig: await signatureHeader(p, secret) })],
  ])("%s → 400 and nothing recorded", async (_, make) => {
    const { customer, pi, payload } = await setup();
    const { body, sig } = await make(payload);
    const res = await postWebhook(body, sig);
    expect(res.status).toBe(400);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_signature");
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    // No alarm was armed, so nothing will happen later either.
    expect(await runDurableObjectAlarm(piObject(pi.id))).toBe(false);
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect((await stripeTraffic(pi.id, customer.id)).all).toHaveLength(0);
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(0);
  });

  it("accepts an event signed with either secret while secrets roll", async () => {
    const { pi, payload } = await setup();
    const rolled = { ...env, STRIPE_WEBHOOK_SECRET: `whsec_old_one,${secret}` };
    for (const s of [secret, "whsec_old_one"]) {
      const res = await buildApp().fetch(
        new Request("https://billing.test/stripe/webhook", {
          method: "POST",
          headers: { "stripe-signature": await signatureHeader(payload, s) },
          body: payload,
        }),
        rolled,
        createExecutionContext(),
      );
      expect(res.status).toBe(200);
    }
    expect(
      (
        await buildApp().fetch(
          new Request("https://billing.test/stripe/webhook", {
            method: "POST",
            headers: { "stripe-signature": await signatureHeader(payload, "whsec_other") },
            body: payload,
          }),
          rolled,
          createExecutionContext(),
        )
      ).status,
    ).toBe(400);
    await waitForObject(pi.id, settledCredit);
  });

  it("with no webhook secret configured: 503 with Retry-After (Stripe redelivers later) and nothing recorded", async () => {
    const { pi, payload } = await setup();
    const res = await buildApp().fetch(
      new Request("https://billing.test/stripe/webhook", {
        method: "POST",
        headers: { "stripe-signature": await signatureHeader(payload, secret) },
        body: payload,
      }),
      { ...env, STRIPE_WEBHOOK_SECRET: "" },
      createExecutionContext(),
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("60");
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("stripe_unavailable");
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect(await runDurableObjectAlarm(piObject(pi.id))).toBe(false);
  });

  it("accepts a header carrying several v1 signatures when one matches", async () => {
    const { pi, payload } = await setup();
    const good = await signatureHeader(payload, secret);
    const [t, v1] = good.split(",");
    const res = await postWebhook(payload, `${t},v1=${"a".repeat(64)},${v1}`);
    expect(res.status).toBe(200);
    expect((await waitForObject(pi.id, settledCredit)).record?.state).toBe("credited");
  });
});

describe("tokens are not webhooks", () => {
  it("a browser's bearer token does not stand in for Stripe's signature", async () => {
    const token = await tokenFor(newAccountId());
    const res = await call("/stripe/webhook", {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(400);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_signature");
  });
});

describe("signed events that do not parse", () => {
  const secret = TEST_BINDINGS.STRIPE_WEBHOOK_SECRET;
  const operator = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

  interface BadEvent {
    event_id: string;
    type: string | null;
    error: string;
    received_at: string;
  }

  /** Every bad event GET /operator/events lists, page by page. */
  async function listedBadEvents(): Promise<BadEvent[]> {
    const all: BadEvent[] = [];
    let after: string | null = null;
    do {
      const res = await call(`/operator/events?limit=200${after ? `&after=${encodeURIComponent(after)}` : ""}`, { headers: operator });
      expect(res.status).toBe(200);
      const page = await json<{ data: BadEvent[]; next_after: string | null }>(res);
      all.push(...page.data);
      after = page.next_after;
    } while (after);
    return all;
  }

  /** How a payload with no usable event id is named in the list. */
  async function hashName(payload: string): Promise<string> {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(payload)));
    return `sha256:${Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  const event = (id: string, type: string, object: unknown) =>
    JSON.stringify({ id, object: "event", type, livemode: false, created: 1700000000, data: { object } });

  // Each builds a payload about a paid, not yet credited PaymentIntent. `named`: listed under the
  // event's id, or (a payload with no usable id) under its hash, or under the id it carries;
  // `mentions`: a word the listed error must contain.
  const cases: [string, (pi: string, id: string) => string, { type: string | null; mentions: string; named: "event" | "hash" | "pi" }][] = [
    [
      "a charge.refunded with no amount_refunded",
      (pi, id) => event(id, "charge.refunded", { id: "ch_1", object: "charge", payment_intent: pi }),
      { type: "charge.refunded", mentions: "amount_refunded", named: "event" },
    ],
    [
      "a charge.refunded whose amount_refunded is a string",
      (pi, id) => event(id, "charge.refunded", { id: "ch_1", object: "charge", payment_intent: pi, amount_refunded: "500" }),
      { type: "charge.refunded", mentions: "amount_refunded", named: "event" },
    ],
    [
      "a charge.refunded whose payment_intent is an object without an id",
      (_pi, id) => event(id, "charge.refunded", { id: "ch_1", payment_intent: { object: "payment_intent" }, amount_refunded: 500 }),
      { type: "charge.refunded", mentions: "payment_intent", named: "event" },
    ],
    [
      "a dispute with no status",
      (pi, id) => event(id, "charge.dispute.created", { id: "dp_1", object: "dispute", amount: 500, payment_intent: pi }),
      { type: "charge.dispute.created", mentions: "status", named: "event" },
    ],
    [
      "a closed dispute with a fractional amount",
      (pi, id) => event(id, "charge.dispute.closed", { id: "dp_1", amount: 12.5, status: "won", payment_intent: pi }),
      { type: "charge.dispute.closed", mentions: "amount", named: "event" },
    ],
    [
      "a dispute whose object is an array",
      (pi, id) => event(id, "charge.dispute.updated", [pi]),
      { type: "charge.dispute.updated", mentions: "data.object", named: "event" },
    ],
    [
      "a payment_intent.succeeded whose object is the id as a string",
      (pi, id) => event(id, "payment_intent.succeeded", pi),
      { type: "payment_intent.succeeded", mentions: "data.object", named: "event" },
    ],
    [
      "a payment_intent.succeeded whose object is null",
      (_pi, id) => event(id, "payment_intent.succeeded", null),
      { type: "payment_intent.succeeded", mentions: "data.object", named: "event" },
    ],
    [
      "a payment_intent.succeeded whose id is not a PaymentIntent id",
      (pi, id) => event(id, "payment_intent.succeeded", { id: `${pi}/../x`, status: "succeeded" }),
      { type: "payment_intent.succeeded", mentions: "id", named: "event" },
    ],
    [
      "an event with no data",
      (_pi, id) => JSON.stringify({ id, type: "payment_intent.succeeded" }),
      { type: "payment_intent.succeeded", mentions: "data", named: "event" },
    ],
    ["valid JSON that is not an event: an array", (pi) => JSON.stringify([pi]), { type: null, mentions: "not an event", named: "hash" }],
    [
      "valid JSON that is not an event: a PaymentIntent itself",
      (pi) => JSON.stringify({ id: pi, object: "payment_intent", status: "succeeded", amount: 700 }),
      { type: null, mentions: "not an event", named: "pi" },
    ],
    [
      "valid JSON that is not an event: an object with no id",
      (pi) => JSON.stringify({ type: "payment_intent.succeeded", data: { object: { id: pi } } }),
      { type: "payment_intent.succeeded", mentions: "id", named: "hash" },
    ],
    ["valid JSON that is not an event: a number", () => "42", { type: null, mentions: "not an event", named: "hash" }],
    ["a payload that is not JSON", (pi) => `payment_intent.succeeded ${pi}`, { type: null, mentions: "not JSON", named: "hash" }],
  ];

  it.each(cases)("%s → 200, nothing touched, listed for an operator", async (_, build, expected) => {
    const { customer, pi } = await paidTopUp(700);
    const id = `evt_bad_${newAccountId("w").replace(/[^A-Za-z0-9]/g, "")}`;
    const payload = build(pi.id, id);
    const res = await postWebhook(payload, await signatureHeader(payload, secret));
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ received: true });

    // Nothing recorded for the PaymentIntent, no alarm armed, no Stripe call made.
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect(await runDurableObjectAlarm(piObject(pi.id))).toBe(false);
    expect((await stripeTraffic(pi.id, customer.id)).all).toHaveLength(0);

    const name = expected.named === "event" ? id : expected.named === "pi" ? pi.id : await hashName(payload);
    const listed = (await listedBadEvents()).filter((e) => e.event_id === name);
    expect(listed).toHaveLength(1);
    expect(listed[0]?.type).toBe(expected.type);
    expect(listed[0]?.error).toContain(expected.mentions);
    expect(Date.parse(listed[0]?.received_at ?? "")).toBeGreaterThan(Date.now() - 60_000);

    // Stripe redelivers: acknowledged again, still one row.
    expect((await postWebhook(payload, await signatureHeader(payload, secret))).status).toBe(200);
    expect((await listedBadEvents()).filter((e) => e.event_id === name)).toHaveLength(1);
    expect((await piObject(pi.id).inspect()).record).toBeNull();
  });

  it("a well-formed charge with no PaymentIntent is ignored, not listed", async () => {
    const id = `evt_ok_${newAccountId("w").replace(/[^A-Za-z0-9]/g, "")}`;
    const payload = event(id, "charge.refunded", { id: "ch_1", object: "charge", payment_intent: null, amount_refunded: 300, extra: { nested: true } });
    const res = await postWebhook(payload, await signatureHeader(payload, secret));
    expect(res.status).toBe(200);
    expect((await listedBadEvents()).map((e) => e.event_id)).not.toContain(id);
  });

  it("an unsigned malformed payload is still 400 and is not listed", async () => {
    const id = `evt_forged_${newAccountId("w").replace(/[^A-Za-z0-9]/g, "")}`;
    const payload = event(id, "charge.refunded", { payment_intent: "pi_x" });
    const res = await postWebhook(payload, await signatureHeader(payload, "whsec_not_ours"));
    expect(res.status).toBe(400);
    expect((await listedBadEvents()).map((e) => e.event_id)).not.toContain(id);
  });

  it("GET /operator/events pages with limit and after", async () => {
    const base = `evt_page_${newAccountId("w").replace(/[^A-Za-z0-9]/g, "")}`;
    const ids = [1, 2, 3].map((n) => `${base}${n}`);
    for (const id of ids) {
      const payload = event(id, "charge.refunded", { payment_intent: "pi_x" });
      expect((await postWebhook(payload, await signatureHeader(payload, secret))).status).toBe(200);
    }
    const first = await json<{ data: BadEvent[]; next_after: string | null }>(await call(`/operator/events?limit=1&after=${base}`, { headers: operator }));
    expect(first.data.map((e) => e.event_id)).toEqual([ids[0]]);
    expect(first.next_after).toBe(ids[0]);
    const rest = await json<{ data: BadEvent[] }>(await call(`/operator/events?limit=2&after=${first.next_after}`, { headers: operator }));
    expect(rest.data.map((e) => e.event_id)).toEqual(ids.slice(1));
  });
});
