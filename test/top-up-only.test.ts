// Only top-ups become credit: a PaymentIntent this service made (it carries the top-up marker),
// whose customer is the caller's, in an accepted currency. Every other payment of the Stripe
// account (a subscription, a bare charge, a stranger's payment) is refused with a reason for
// its owner, and a webhook for one is acknowledged and remembered. The legacy setting admits
// the older server's top-ups by their metadata and creation date, and nothing else.

import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { buildApp } from "../src/app.js";
import type { Env } from "../src/env.js";
import {
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  emu,
  eventsFor,
  json,
  ledgerFor,
  newAccountId,
  piObject,
  stripeTraffic,
  tokenFor,
  topUpMetadata,
  waitForObject,
  type Customer,
} from "./helpers.js";

interface ErrorBody {
  error: { code: string; message: string; reason?: string };
}

async function account() {
  const accountId = newAccountId();
  const customer = await createCustomer(accountId);
  return { accountId, customer, token: await tokenFor(accountId) };
}

/** Nothing credited and nothing written to Stripe for this PI; a browser's refusal leaves no record. */
async function expectNothingCredited(paymentIntentId: string, customerId: string): Promise<void> {
  expect(await ledgerFor(customerId, paymentIntentId)).toHaveLength(0);
  const traffic = await stripeTraffic(paymentIntentId, customerId);
  expect(traffic.marks).toBe(0);
  expect(traffic.creditWrites).toBe(0);
}

async function expectRefused(res: Response, reason: string): Promise<void> {
  const body = await json<ErrorBody>(res);
  expect({ status: res.status, code: body.error.code, reason: body.error.reason }).toEqual({ status: 422, code: "payment_not_creditable", reason });
}

async function succeededEvent(paymentIntentId: string): Promise<string> {
  const [event] = await eventsFor("payment_intent.succeeded", paymentIntentId);
  if (!event) throw new Error(`no payment_intent.succeeded for ${paymentIntentId}`);
  return event.id;
}

/**
 * Runs the PaymentIntent object of `paymentIntentId` with `settings` added to its bindings. The
 * Worker's bindings are fixed for the whole test run; the object reads its settings from its own
 * `env`, so this changes them for that one object (which stays in memory for the test).
 */
async function withSettings(paymentIntentId: string, settings: Partial<Env>): Promise<void> {
  await runInDurableObject(piObject(paymentIntentId), (instance) => {
    const object = instance as unknown as { env: Env };
    object.env = { ...object.env, ...settings };
    expect(object.env.LEGACY_TOPUP_METADATA).toBe(settings.LEGACY_TOPUP_METADATA);
  });
}

describe("only top-ups are credited", () => {
  it("a 500.00 subscription payment on the account's customer is 422 not_a_top_up for its owner, and no credit", async () => {
    const { accountId, customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 50_000, metadata: { account_id: accountId, purpose: "subscription" } });
    await expectRefused(await confirm(token, pi.id), "not_a_top_up");
    await expectNothingCredited(pi.id, customer.id);
    // A browser's refusal is not stored: the same answer again comes from a fresh read.
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    await expectRefused(await confirm(token, pi.id), "not_a_top_up");
    expect(await ledgerFor(customer.id)).toHaveLength(0);
  });

  it("a bare charge with no metadata on the account's customer is 422 not_a_top_up", async () => {
    const { customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2000 });
    await expectRefused(await confirm(token, pi.id), "not_a_top_up");
    await expectNothingCredited(pi.id, customer.id);
  });

  it("someone else's non-top-up is 404 for a stranger: the reason is only for its owner", async () => {
    const { accountId, customer } = await account();
    const stranger = await account();
    const pi = await createPaymentIntent({ customer: customer.id, metadata: { account_id: accountId, purpose: "subscription" } });
    const res = await confirm(stranger.token, pi.id);
    const body = await json<ErrorBody>(res);
    expect({ status: res.status, code: body.error.code, reason: body.error.reason }).toEqual({
      status: 404,
      code: "payment_intent_not_found",
      reason: undefined,
    });
  });

  it("a stranger customer's payment delivered by webhook: 200 to Stripe, no credit, remembered, and a redelivery costs no Stripe call", async () => {
    // A customer of another product on the same Stripe account: no account of ours.
    const stranger = await emu<Customer>("/customers", { email: "someone@example.com" });
    const pi = await createPaymentIntent({ customer: stranger.id, amount: 7700 });
    const event = await succeededEvent(pi.id);

    const first = await deliver(event);
    expect(first.status).toBe(200);
    const { record } = await waitForObject(pi.id, (i) => i.record !== null);
    expect(record?.state).toBe("not_creditable");
    expect(record?.reason).toBe("not_a_top_up");
    await expectNothingCredited(pi.id, stranger.id);

    // Refused from the signed event itself: not even a read.
    expect((await stripeTraffic(pi.id, stranger.id)).all).toHaveLength(0);
    const again = await deliver(event);
    expect(again.status).toBe(200);
    // Nothing left to do: no alarm is armed, or one that runs reads nothing.
    await runDurableObjectAlarm(piObject(pi.id));
    expect((await stripeTraffic(pi.id, stranger.id)).all).toHaveLength(0);
    expect((await piObject(pi.id).inspect()).record?.state).toBe("not_creditable");
  });

  it("a top-up in a currency not in TOPUP_CURRENCIES is 422 currency_not_accepted", async () => {
    const { accountId, customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2000, currency: "eur", metadata: topUpMetadata(accountId) });
    await expectRefused(await confirm(token, pi.id), "currency_not_accepted");
    await expectNothingCredited(pi.id, customer.id);
  });

  it("the same payment as a top-up (the marker, the account's customer, usd) is credited", async () => {
    const { accountId, customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1300, metadata: topUpMetadata(accountId) });
    const res = await confirm(token, pi.id);
    expect(res.status).toBe(200);
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1);
  });
});

describe("LEGACY_TOPUP_METADATA and LEGACY_TOPUP_CREATED_BEFORE", () => {
  const legacyMetadata = (accountId: string) => ({ account_id: accountId, source: "old-server" });
  const nowSeconds = () => Math.floor(Date.now() / 1000);

  it("off by default: the older server's top-up is not_a_top_up", async () => {
    const { accountId, customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2100, metadata: legacyMetadata(accountId) });
    await expectRefused(await confirm(token, pi.id), "not_a_top_up");
    await expectNothingCredited(pi.id, customer.id);
  });

  it("admits a PaymentIntent with the configured metadata created before the cutoff", async () => {
    const { accountId, customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2200, metadata: legacyMetadata(accountId) });
    await withSettings(pi.id, { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: String(nowSeconds() + 3600) });
    const res = await confirm(token, pi.id);
    expect(res.status).toBe(200);
    expect((await ledgerFor(customer.id, pi.id)).map((tx) => tx.amount)).toEqual([-2200]);
  });

  it("refuses one created after the cutoff, and one whose metadata value differs", async () => {
    const { accountId, customer, token } = await account();
    const late = await createPaymentIntent({ customer: customer.id, amount: 2300, metadata: legacyMetadata(accountId) });
    await withSettings(late.id, {
      LEGACY_TOPUP_METADATA: "source=old-server",
      LEGACY_TOPUP_CREATED_BEFORE: new Date((nowSeconds() - 3600) * 1000).toISOString(),
    });
    await expectRefused(await confirm(token, late.id), "not_a_top_up");
    await expectNothingCredited(late.id, customer.id);

    const other = await createPaymentIntent({ customer: customer.id, amount: 2400, metadata: { account_id: accountId, source: "old-server-2" } });
    await withSettings(other.id, { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: String(nowSeconds() + 3600) });
    await expectRefused(await confirm(token, other.id), "not_a_top_up");
    await expectNothingCredited(other.id, customer.id);
  });

  it("a malformed setting stops the service (500 misconfigured, naming it) and admits nothing", async () => {
    const { accountId, customer, token } = await account();
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2500, metadata: legacyMetadata(accountId) });
    // Milliseconds where seconds are expected: read literally, it would admit everything for ages.
    const misconfigured = { ...env, LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: String(Date.now() + 3_600_000) };
    const logged = vi.spyOn(console, "log");
    try {
      const ctx = createExecutionContext();
      const res = await buildApp().fetch(
        new Request("https://billing.test/billing/confirm_payment", {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          body: JSON.stringify({ payment_intent_id: pi.id }),
        }),
        misconfigured,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status).toBe(500);
      expect((await json<ErrorBody>(res)).error.code).toBe("misconfigured");
      const lines = logged.mock.calls.map(([line]) => String(line)).filter((line) => line.includes('"settings_invalid"'));
      expect(lines.some((line) => line.includes("LEGACY_TOPUP_CREATED_BEFORE"))).toBe(true);
    } finally {
      logged.mockRestore();
    }
    await expectNothingCredited(pi.id, customer.id);
  });
});
