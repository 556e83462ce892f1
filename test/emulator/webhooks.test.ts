// Signed webhook deliveries to a real HTTP receiver: signatures the `stripe` package accepts,
// retries until 2xx, redelivery, duplicate events, refunds and disputes.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Delivery } from "./webhooks.js";
import type { Charge, Dispute, PaymentIntent, StripeEvent } from "./store.js";
import { rejectionOf, sleep, unique, useEmulator, waitFor } from "./harness.js";

const SECRET = "whsec_x";
const h = useEmulator();

interface Received {
  raw: string;
  signature: string;
  event: StripeEvent;
  /** The status the receiver answered. */
  status: number;
}

const received: Received[] = [];
/** `${type} ${object id}` → how many more deliveries to answer with 500. */
const failures = new Map<string, number>();
let receiver: Server;
let receiverUrl: string;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const event = JSON.parse(raw) as StripeEvent;
      const key = `${event.type} ${objectId(event)}`;
      const left = failures.get(key) ?? 0;
      const status = left > 0 ? 500 : 200;
      if (left > 0) failures.set(key, left - 1);
      received.push({ raw, signature: String(req.headers["stripe-signature"] ?? ""), event, status });
      res.writeHead(status, { "content-type": "text/plain" }).end(status === 200 ? "ok" : "try later");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks`;
  await h.control("POST", "/config", { webhook_url: receiverUrl, webhook_secret: SECRET, webhook_retry_base_ms: 20 });
});

afterAll(async () => {
  receiver.closeAllConnections();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

function objectId(event: StripeEvent): string {
  return (event.data.object as { id: string }).id;
}

/** Waits for the first delivery of an event of `type` about object `id`. */
function delivery(type: string, id: string, timeoutMs = 3000): Promise<Received> {
  return waitFor(() => received.find((r) => r.event.type === type && objectId(r.event) === id), timeoutMs, `${type} for ${id}`);
}

function copiesOf(eventId: string): Received[] {
  return received.filter((r) => r.event.id === eventId);
}

function verify(raw: string, signature: string, secret = SECRET): Promise<Stripe.Event> {
  return new Stripe("sk_test_emulator").webhooks.constructEventAsync(raw, signature, secret, undefined, Stripe.createSubtleCryptoProvider());
}

async function paidIntent(amount: number): Promise<PaymentIntent> {
  return h.control<PaymentIntent>("POST", "/payment_intents", { amount, currency: "usd" });
}

describe("signed deliveries", () => {
  it("confirming a PaymentIntent delivers payment_intent.succeeded with a valid Stripe-Signature", async () => {
    const customer = await h.stripe.customers.create({ email: `${unique("wh")}@example.com` });
    const pi = await h.stripe.paymentIntents.create({ amount: 1000, currency: "usd", customer: customer.id, metadata: { topup: "t-1" } });
    await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" }, { idempotencyKey: "wh-confirm-1" });

    const got = await delivery("payment_intent.succeeded", pi.id);
    expect(got.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    const event = await verify(got.raw, got.signature);
    expect(event.id).toBe(got.event.id);
    expect(event.id).toMatch(/^evt_/);
    expect(event.type).toBe("payment_intent.succeeded");
    expect(event.livemode).toBe(false);
    expect(event.request).toMatchObject({ idempotency_key: "wh-confirm-1" });
    const object = event.data.object as Stripe.PaymentIntent;
    expect(object).toMatchObject({ id: pi.id, status: "succeeded", amount_received: 1000, customer: customer.id, metadata: { topup: "t-1" } });
    expect(object.latest_charge).toMatch(/^ch_/);

    const tampered = got.raw.replace('"amount_received": 1000', '"amount_received": 9000');
    expect(tampered).not.toBe(got.raw);
    expect(await rejectionOf(verify(tampered, got.signature))).toBeInstanceOf(Stripe.errors.StripeSignatureVerificationError);
    expect(await rejectionOf(verify(got.raw, got.signature, "whsec_wrong"))).toBeInstanceOf(Stripe.errors.StripeSignatureVerificationError);

    // The charge's own event went out too, and the event log has both.
    await delivery("charge.succeeded", object.latest_charge as string);
    const events = await h.control<{ data: StripeEvent[] }>("GET", "/events?type=payment_intent.succeeded");
    expect(events.data.filter((e) => objectId(e) === pi.id).map((e) => e.id)).toEqual([event.id]);
  });

  it("every PaymentIntent state change is recorded as its event", async () => {
    const declined = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd" });
    await rejectionOf(h.stripe.paymentIntents.confirm(declined.id, { payment_method: "pm_card_chargeDeclined" }));
    const slow = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd" });
    await h.stripe.paymentIntents.confirm(slow.id, { payment_method: "pm_processing" });
    const dropped = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd" });
    await h.stripe.paymentIntents.cancel(dropped.id);

    const { data } = await h.control<{ data: StripeEvent[] }>("GET", "/events");
    const typesFor = (id: string) => data.filter((e) => objectId(e) === id).map((e) => e.type);
    expect(typesFor(declined.id)).toEqual(["payment_intent.created", "payment_intent.payment_failed"]);
    expect(typesFor(slow.id)).toEqual(["payment_intent.created", "payment_intent.processing"]);
    expect(typesFor(dropped.id)).toEqual(["payment_intent.created", "payment_intent.canceled"]);
    await delivery("payment_intent.payment_failed", declined.id);
  });

  it("GET /_emulator/events/:id/signed hands out a payload and signature that verify", async () => {
    const pi = await paidIntent(300);
    const { data } = await h.control<{ data: StripeEvent[] }>("GET", "/events?type=payment_intent.succeeded");
    const original = data.find((e) => objectId(e) === pi.id);
    if (!original) throw new Error("no payment_intent.succeeded event");
    const signed = await h.control<{ payload: string; signature: string }>("GET", `/events/${original.id}/signed`);
    const event = await verify(signed.payload, signed.signature);
    expect(event.id).toBe(original.id);
    expect((event.data.object as Stripe.PaymentIntent).id).toBe(pi.id);
  });
});

describe("retries", () => {
  it("a receiver answering 500 is retried until it answers 2xx", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 1100, currency: "usd" });
    failures.set(`payment_intent.succeeded ${pi.id}`, 2);
    await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" });

    const first = await delivery("payment_intent.succeeded", pi.id);
    const eventId = first.event.id;
    await waitFor(() => (copiesOf(eventId).some((r) => r.status === 200) ? true : undefined), 3000, "a successful delivery");
    expect(copiesOf(eventId).map((r) => r.status)).toEqual([500, 500, 200]);
    for (const copy of copiesOf(eventId)) expect((await verify(copy.raw, copy.signature)).id).toBe(eventId);

    const deliveries = (await h.control<{ data: Delivery[] }>("GET", "/deliveries")).data.filter((d) => d.event_id === eventId);
    expect(deliveries.map((d) => [d.attempt, d.status])).toEqual([
      [1, 500],
      [2, 500],
      [3, 200],
    ]);
    expect(deliveries[0]?.type).toBe("payment_intent.succeeded");
    // Backoff: each retry waits at least the (doubling) base delay.
    const [a, b, c] = deliveries as [Delivery, Delivery, Delivery];
    expect(b.at - a.at).toBeGreaterThanOrEqual(15);
    expect(c.at - b.at).toBeGreaterThanOrEqual(35);
  });

  it("stops after webhook_max_attempts", async () => {
    await h.control("POST", "/config", { webhook_max_attempts: 3 });
    try {
      const pi = await h.stripe.paymentIntents.create({ amount: 1200, currency: "usd" });
      failures.set(`payment_intent.succeeded ${pi.id}`, 100);
      await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" });
      const eventId = (await delivery("payment_intent.succeeded", pi.id)).event.id;
      await waitFor(() => (copiesOf(eventId).length >= 3 ? true : undefined), 3000, "three attempts");
      await sleep(200); // longer than the next backoff (80 ms) would be
      expect(copiesOf(eventId).map((r) => r.status)).toEqual([500, 500, 500]);
      failures.delete(`payment_intent.succeeded ${pi.id}`);
    } finally {
      await h.control("POST", "/config", { webhook_max_attempts: 8 });
    }
  });
});

describe("redelivery and duplicates", () => {
  it("POST /_emulator/events/:id/redeliver sends the same event id again", async () => {
    const pi = await paidIntent(1300);
    const first = await delivery("payment_intent.succeeded", pi.id);
    expect(copiesOf(first.event.id)).toHaveLength(1);

    const answer = await h.control<{ ok: boolean; event: string }>("POST", `/events/${first.event.id}/redeliver`);
    expect(answer).toEqual({ ok: true, event: first.event.id });
    await waitFor(() => (copiesOf(first.event.id).length === 2 ? true : undefined), 3000, "the redelivery");
    const [one, two] = copiesOf(first.event.id) as [Received, Received];
    expect(two.event).toEqual(one.event);
    expect((await verify(two.raw, two.signature)).id).toBe(first.event.id);

    expect((await h.controlRaw("POST", "/events/evt_missing/redeliver")).status).toBe(400);
  });

  it("POST /_emulator/events/:id/duplicate sends a distinct event id with the same data.object", async () => {
    const pi = await paidIntent(1400);
    const first = await delivery("payment_intent.succeeded", pi.id);
    const copy = await h.control<StripeEvent>("POST", `/events/${first.event.id}/duplicate`);
    expect(copy.id).toMatch(/^evt_/);
    expect(copy.id).not.toBe(first.event.id);

    const got = await waitFor(() => received.find((r) => r.event.id === copy.id), 3000, "the duplicate");
    const verified = await verify(got.raw, got.signature);
    expect(verified.type).toBe("payment_intent.succeeded");
    expect(got.event.data.object).toEqual(first.event.data.object);
    expect(
      received
        .filter((r) => r.event.type === "payment_intent.succeeded" && objectId(r.event) === pi.id)
        .map((r) => r.event.id)
        .sort(),
    ).toEqual([first.event.id, copy.id].sort());
  });
});

describe("refunds and disputes", () => {
  it("refunds emit charge.refunded with the cumulative amount_refunded", async () => {
    const pi = await paidIntent(1000);
    const chargeId = pi.latest_charge as string;
    await h.stripe.refunds.create({ payment_intent: pi.id, amount: 300 });
    await h.stripe.refunds.create({ payment_intent: pi.id, amount: 200 });

    const refunded = await waitFor(
      () => {
        const r = received.filter((x) => x.event.type === "charge.refunded" && objectId(x.event) === chargeId);
        return r.length >= 2 ? r : undefined;
      },
      3000,
      "two charge.refunded events",
    );
    const charges = refunded.map((r) => r.event.data.object as Charge);
    expect(charges.map((c) => c.amount_refunded).sort((x, y) => x - y)).toEqual([300, 500]);
    expect(charges.every((c) => c.refunded === false && c.payment_intent === pi.id && c.amount === 1000)).toBe(true);
    for (const r of refunded) await verify(r.raw, r.signature);

    await h.stripe.refunds.create({ payment_intent: pi.id });
    const full = await waitFor(
      () =>
        received.find((x) => x.event.type === "charge.refunded" && objectId(x.event) === chargeId && (x.event.data.object as Charge).amount_refunded === 1000),
      3000,
      "the full refund",
    );
    expect((full.event.data.object as Charge).refunded).toBe(true);

    const refundEvents = received.filter(
      (x) => x.event.type === "refund.created" && (x.event.data.object as { payment_intent: string }).payment_intent === pi.id,
    );
    expect(refundEvents.map((x) => (x.event.data.object as { amount: number }).amount).sort((x, y) => x - y)).toEqual([200, 300, 500]);
  });

  it("a dispute emits charge.dispute.created, and closing it charge.dispute.closed", async () => {
    const pi = await paidIntent(2000);
    const dispute = await h.control<Dispute>("POST", `/payment_intents/${pi.id}/dispute`, { reason: "product_not_received" });
    expect(dispute).toMatchObject({
      object: "dispute",
      amount: 2000,
      payment_intent: pi.id,
      charge: pi.latest_charge,
      status: "needs_response",
      reason: "product_not_received",
    });

    const created = await delivery("charge.dispute.created", dispute.id);
    const createdEvent = await verify(created.raw, created.signature);
    expect(createdEvent.data.object as Stripe.Dispute).toMatchObject({ id: dispute.id, payment_intent: pi.id, status: "needs_response" });

    const closed = await h.control<Dispute>("POST", `/disputes/${dispute.id}/close`, { status: "won" });
    expect(closed.status).toBe("won");
    const closedDelivery = await delivery("charge.dispute.closed", dispute.id);
    expect((closedDelivery.event.data.object as Dispute).status).toBe("won");
    expect((await verify(closedDelivery.raw, closedDelivery.signature)).type).toBe("charge.dispute.closed");
    expect((await h.stripe.disputes.retrieve(dispute.id)).status).toBe("won");

    expect((await h.controlRaw("POST", `/disputes/${dispute.id}/close`, { status: "lost" })).status).toBe(400);
    expect((await h.controlRaw("POST", `/disputes/${dispute.id}/close`, { status: "maybe" })).status).toBe(400);

    const partial = await h.control<Dispute>("POST", `/payment_intents/${pi.id}/dispute`, { amount: 500 });
    expect(partial.amount).toBe(500);
  });
});

describe("without a webhook_url", () => {
  it("records events but delivers nothing", async () => {
    await h.control("POST", "/config", { webhook_url: null });
    try {
      const pi = await paidIntent(1500);
      await h.control("POST", "/webhooks/idle");
      const { data } = await h.control<{ data: StripeEvent[] }>("GET", "/events?type=payment_intent.succeeded");
      const event = data.find((e) => objectId(e) === pi.id);
      expect(event?.pending_webhooks).toBe(0);
      await sleep(50);
      expect(received.some((r) => objectId(r.event) === pi.id)).toBe(false);
      const deliveries = (await h.control<{ data: Delivery[] }>("GET", "/deliveries")).data;
      expect(deliveries.some((d) => d.event_id === event?.id)).toBe(false);
    } finally {
      await h.control("POST", "/config", { webhook_url: receiverUrl });
    }
  });
});
