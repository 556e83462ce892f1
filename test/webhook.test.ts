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
    await settle(pi.id, token, answers as Awaited<ReturnType<typeof answerOf>>[]);
    await expectCreditedOnce(pi.id, customer.id, 3300, answers as Awaited<ReturnType<typeof answerOf>>[]);
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
    const [charge] = (await emu<{ data: { id: string; type: string; data: { object: { payment_intent: string } } }[] }>("/events?type=charge.succeeded")).data.filter(
      (e) => e.data.object.payment_intent === pi.id,
    );
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
        new Request("https://billing.test/stripe/webhook", { method: "POST", headers: { "stripe-signature": await signatureHeader(payload, s) }, body: payload }),
        rolled,
        createExecutionContext(),
      );
      expect(res.status).toBe(200);
    }
    expect(await (await buildApp().fetch(new Request("https://billing.test/stripe/webhook", { method: "POST", headers: { "stripe-signature": await signatureHeader(payload, "whsec_other") }, body: payload }), rolled, createExecutionContext())).status).toBe(400);
    await waitForObject(pi.id, settledCredit);
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
    const res = await call("/stripe/webhook", { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(400);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_signature");
  });
});
