// A browser over its confirm limit (per account or per client address) is answered only what
// costs nothing: an answer its PaymentIntent object has already recorded for it, read from
// storage. Anything else is 429 rate_limited with the limiter's Retry-After, and reaches
// neither Stripe nor the object's protocol. The limits here are one confirm a minute.

import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { limiterObject } from "../src/objects/stubs.js";
import {
  ORIGIN,
  alarmOf,
  answerOf,
  createCustomer,
  createPaymentIntent,
  newAccountId,
  paidTopUp,
  piObject,
  removeFault,
  stripeRequests,
  tokenFor,
  topUpMetadata,
  refuseCreditOnce,
} from "./helpers.js";

const perAccount = { ...env, CONFIRM_LIMIT_PER_MINUTE: "1" };
const perAddress = { ...env, CONFIRM_IP_LIMIT_PER_MINUTE: "1" };

let ipSeq = 0;
/** A client address of its own per test, so that one test's bucket is not another's. */
function newIp(): string {
  ipSeq++;
  return `203.0.113.${ipSeq}`;
}

/** POST /billing/confirm_payment under `limits`. */
async function confirmUnder(limits: typeof env, token: string, paymentIntentId: string, ip: string) {
  const res = await buildApp().fetch(
    new Request(`${ORIGIN}/billing/confirm_payment`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "cf-connecting-ip": ip },
      body: JSON.stringify({ payment_intent_id: paymentIntentId }),
    }),
    limits,
    createExecutionContext(),
  );
  return answerOf(res);
}

/** Stripe requests about one PaymentIntent. */
async function piRequests(paymentIntentId: string): Promise<number> {
  return (await stripeRequests({ path: `/v1/payment_intents/${paymentIntentId}` })).length;
}

describe("a confirm over the limit", () => {
  it("is answered a credit already recorded, at no Stripe call", async () => {
    const { pi, token } = await paidTopUp(1200);
    const ip = newIp();
    expect(await confirmUnder(perAccount, token, pi.id, ip)).toMatchObject({ status: 200, code: "credited" });
    const calls = await piRequests(pi.id);
    expect(await confirmUnder(perAccount, token, pi.id, ip)).toMatchObject({ status: 200, code: "already_credited" });
    expect(await piRequests(pi.id)).toBe(calls);
  });

  it("is answered a refusal already recorded", async () => {
    const { customer, pi, token } = await paidTopUp(1300);
    const ip = newIp();
    const refuse = await refuseCreditOnce(customer.id, pi.id);
    expect(await confirmUnder(perAccount, token, pi.id, ip)).toMatchObject({ status: 409, code: "credit_needs_attention" });
    await removeFault(refuse);
    expect(await confirmUnder(perAccount, token, pi.id, ip)).toMatchObject({ status: 409, code: "credit_needs_attention" });
  });

  it("of a PaymentIntent with nothing recorded is 429 with the limiter's Retry-After; nothing is read or recorded", async () => {
    const { accountId, customer, pi, token } = await paidTopUp(1400);
    const other = await createPaymentIntent({ customer: customer.id, amount: 1500, metadata: topUpMetadata(accountId) });
    const ip = newIp();
    expect((await confirmUnder(perAccount, token, pi.id, ip)).status).toBe(200);

    const limited = await confirmUnder(perAccount, token, other.id, ip);
    expect(limited).toMatchObject({ status: 429, code: "rate_limited" });
    // The bucket refills one confirm a minute: the wait is the limiter's, not an object's 1 s.
    expect(Number(limited.retryAfter)).toBeGreaterThan(30);
    expect(await piRequests(other.id)).toBe(0);
    expect((await piObject(other.id).inspect()).record).toBeNull();
    expect(await alarmOf(other.id)).toBeNull();
  });

  it("from an account whose customer is not stored yet is 429, with no customer search; under the limit it is credited", async () => {
    const ip = newIp();
    const first = await paidTopUp(1000);
    expect((await confirmUnder(perAddress, first.token, first.pi.id, ip)).status).toBe(200);

    const accountId = newAccountId("unlooked");
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1600, metadata: topUpMetadata(accountId) });
    const token = await tokenFor(accountId);
    const searches = async () => (await stripeRequests({ path: "/v1/customers/search" })).filter((r) => JSON.stringify(r.params).includes(accountId)).length;

    expect(await confirmUnder(perAddress, token, pi.id, ip)).toMatchObject({ status: 429, code: "rate_limited" });
    expect(await searches()).toBe(0);
    expect(await piRequests(pi.id)).toBe(0);

    expect(await confirmUnder(perAddress, token, pi.id, newIp())).toMatchObject({ status: 200, code: "credited" });
    expect(await searches()).toBeGreaterThan(0);
  });
});

describe("a limiter that fails mid-call", () => {
  it("is a 503 to come back (as any object reset is), never a 500, and nothing is credited", async () => {
    const { pi, token, accountId } = await paidTopUp(1300);
    const ip = newIp();
    // The account's bucket object fails the way a reset object does: its RPC call throws.
    await runInDurableObject(limiterObject(env, `confirm:acct:${accountId}`), (instance) => {
      Object.assign(instance, {
        take: () => {
          throw new Error("Durable Object reset because its code was updated.");
        },
      });
    });
    const answer = await confirmUnder(perAccount, token, pi.id, ip);
    expect(answer).toMatchObject({ status: 503, code: "stripe_unavailable" });
    expect(await piRequests(pi.id)).toBe(0);
  });
});
