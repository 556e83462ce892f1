// Every refusal of the confirm protocol, each checked for its answer and for what it left
// behind: nothing written to Stripe, and nothing durable in the PaymentIntent object.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  confirm,
  createCustomer,
  createPaymentIntent,
  json,
  ledgerFor,
  newAccountId,
  paidTopUp,
  stripeRequests,
  stripeTraffic,
  tokenFor,
  topUpMetadata,
} from "./helpers.js";

interface ErrorBody {
  error: { code: string; message: string; payment_intent_status?: string; reason?: string };
}

async function storedRecord(paymentIntentId: string) {
  return (await env.PAYMENT_INTENTS.getByName(paymentIntentId).inspect()).record;
}

async function expectError(res: Response, status: number, code: string): Promise<ErrorBody> {
  const body = await json<ErrorBody>(res);
  expect({ status: res.status, code: body.error.code }).toEqual({ status, code });
  return body;
}

async function expectNoWrites(paymentIntentId: string, customerId: string): Promise<void> {
  const traffic = await stripeTraffic(paymentIntentId, customerId);
  expect(traffic.marks).toBe(0);
  expect(traffic.creditWrites).toBe(0);
  expect(await ledgerFor(customerId, paymentIntentId)).toHaveLength(0);
  expect(await storedRecord(paymentIntentId)).toBeNull();
}

describe("confirm refusals", () => {
  it("an unknown PaymentIntent is 404 and leaves nothing behind", async () => {
    const { token } = await paidTopUp();
    const missing = "pi_DoesNotExist0000000000";
    await expectError(await confirm(token, missing), 404, "payment_intent_not_found");
    expect(await storedRecord(missing)).toBeNull();
    expect(await stripeRequests({ path: `/v1/payment_intents/${missing}`, method: "POST" })).toHaveLength(0);
  });

  it("another account's PaymentIntent is 404, writes nothing, and its owner can still confirm it", async () => {
    const owner = await paidTopUp(4200);
    const strangerId = newAccountId("stranger");
    await createCustomer(strangerId);
    const strangerToken = await tokenFor(strangerId);

    const stolen = await expectError(await confirm(strangerToken, owner.pi.id), 404, "payment_intent_not_found");
    expect(stolen.error.message).toBe("No such PaymentIntent.");
    await expectNoWrites(owner.pi.id, owner.customer.id);

    const res = await confirm(owner.token, owner.pi.id);
    expect(res.status).toBe(200);
    expect((await json(res)).status).toBe("credited");
    // And after the credit, the stranger still learns nothing.
    await expectError(await confirm(strangerToken, owner.pi.id), 404, "payment_intent_not_found");
  });

  it("a stranger racing the owner gets 404 while the owner is credited once", async () => {
    const owner = await paidTopUp(1500);
    const strangerId = newAccountId("stranger");
    await createCustomer(strangerId);
    const strangerToken = await tokenFor(strangerId);
    const calls = Array.from({ length: 20 }, (_, i) => confirm(i % 2 === 0 ? strangerToken : owner.token, owner.pi.id));
    const responses = await Promise.all(calls);
    responses.forEach((res, i) => expect(res.status).toBe(i % 2 === 0 ? 404 : 200));
    expect(await ledgerFor(owner.customer.id, owner.pi.id)).toHaveLength(1);
  });

  it("an account with no Stripe customer owns nothing: 404 without reading the PaymentIntent", async () => {
    const owner = await paidTopUp();
    const token = await tokenFor(newAccountId("nocustomer"));
    await expectError(await confirm(token, owner.pi.id), 404, "payment_intent_not_found");
    expect((await stripeTraffic(owner.pi.id, owner.customer.id)).all).toHaveLength(0);
  });

  it.each(["requires_payment_method", "processing", "canceled"])("a PaymentIntent in %s is 409 with its status", async (status) => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, status });
    const body = await expectError(await confirm(await tokenFor(accountId), pi.id), 409, "payment_not_succeeded");
    expect(body.error.payment_intent_status).toBe(status);
    await expectNoWrites(pi.id, customer.id);
  });

  it("another account's unpaid PaymentIntent is 404, not 409: its status is not revealed", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, status: "requires_payment_method" });
    const strangerId = newAccountId("stranger");
    await createCustomer(strangerId);
    await expectError(await confirm(await tokenFor(strangerId), pi.id), 404, "payment_intent_not_found");
  });

  it("a succeeded PaymentIntent that received nothing is 422", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount_received: 0, metadata: topUpMetadata(accountId) });
    const body = await expectError(await confirm(await tokenFor(accountId), pi.id), 422, "payment_not_creditable");
    expect(body.error.reason).toBe("zero_amount");
    await expectNoWrites(pi.id, customer.id);
  });

  it("a live-mode PaymentIntent under a test key is 422", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, livemode: true, metadata: topUpMetadata(accountId) });
    const body = await expectError(await confirm(await tokenFor(accountId), pi.id), 422, "payment_not_creditable");
    expect(body.error.reason).toBe("livemode_mismatch");
    await expectNoWrites(pi.id, customer.id);
  });

  it("a PaymentIntent without a customer belongs to no browser caller: 404", async () => {
    const { token } = await paidTopUp();
    const pi = await createPaymentIntent({});
    await expectError(await confirm(token, pi.id), 404, "payment_intent_not_found");
    expect(await storedRecord(pi.id)).toBeNull();
  });
});
