// Creating top-ups: the account's Stripe customer is created on first use and never twice, a
// client Idempotency-Key makes a double-clicked "Pay" one PaymentIntent, and the configured
// limits hold. Then the whole path a browser takes: top up, pay, confirm, see the balance.

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { topUpKey } from "../src/stripe/keys.js";
import { TEST_BINDINGS } from "./bindings.js";
import { authed, balanceOf, confirm, emu, json, newAccountId, payWithTestCard, stripePaymentIntent, stripeRequests, tokenFor, topUp } from "./helpers.js";

interface Created {
  payment_intent_id: string;
  client_secret: string;
  amount: number;
  currency: string;
}

interface StripeCustomer {
  id: string;
  metadata: Record<string, string>;
}

async function customersOf(accountId: string): Promise<StripeCustomer[]> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/customers/search?${new URLSearchParams({ query: `metadata['account_id']:'${accountId}'` }).toString()}`, {
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}` },
  });
  return (await res.json<{ data: StripeCustomer[] }>()).data;
}

describe("POST /billing/top_ups", () => {
  it("creates the account's customer on first use and a PaymentIntent for it", async () => {
    const accountId = newAccountId();
    const res = await topUp(await tokenFor(accountId), { amount: 2500, currency: "usd" });
    expect(res.status).toBe(201);
    const body = await json<Created>(res);
    expect(body).toMatchObject({ amount: 2500, currency: "usd" });
    expect(body.client_secret).toMatch(new RegExp(`^${body.payment_intent_id}_secret_`));

    const customers = await customersOf(accountId);
    expect(customers).toHaveLength(1);
    const pi = (await stripePaymentIntent(body.payment_intent_id)) as unknown as {
      customer: string;
      metadata: Record<string, string>;
      automatic_payment_methods: { enabled: boolean };
    };
    expect(pi.customer).toBe(customers[0]?.id);
    // The account and the marker that makes it a top-up (src/credit/top-up.ts), spelled out here
    // so that a change of the marker is a visible change of contract.
    expect(pi.metadata).toEqual({ account_id: accountId, edge_credit: "top_up" });
    expect(pi.automatic_payment_methods.enabled).toBe(true);
  });

  it("two racing first top-ups of a new account make one Stripe customer", async () => {
    const accountId = newAccountId();
    const token = await tokenFor(accountId);
    // Slow customer creation, so the two really overlap.
    await emu("/latency", { ms: 200, method: "POST", path: "/v1/customers" });
    const [a, b] = await Promise.all([topUp(token, { amount: 1000, currency: "usd" }), topUp(token, { amount: 2000, currency: "usd" })]);
    await emu("/latency", { ms: 0, method: "POST", path: "/v1/customers" });
    expect([a?.status, b?.status]).toEqual([201, 201]);
    const customers = await customersOf(accountId);
    expect(customers).toHaveLength(1);
    // One creation reached Stripe: the second top-up waited for the first's, not for Stripe's key.
    expect(await stripeRequests({ method: "POST", key: `customer:${accountId}` })).toHaveLength(1);
    for (const res of [a, b]) {
      const pi = (await stripePaymentIntent((await json<Created>(res)).payment_intent_id)) as unknown as { customer: string };
      expect(pi.customer).toBe(customers[0]?.id);
    }
  });

  it("a double-clicked top-up with one Idempotency-Key makes one PaymentIntent; the key with another amount is 409", async () => {
    const token = await tokenFor(newAccountId());
    const [first, second] = await Promise.all([
      topUp(token, { amount: 1500, currency: "usd" }, "click-1"),
      topUp(token, { amount: 1500, currency: "usd" }, "click-1"),
    ]);
    expect([first?.status, second?.status]).toEqual([201, 201]);
    const ids = [(await json<Created>(first)).payment_intent_id, (await json<Created>(second)).payment_intent_id];
    expect(ids[0]).toBe(ids[1]);

    const other = await topUp(token, { amount: 9999, currency: "usd" }, "click-1");
    expect(other.status).toBe(409);
    expect((await json<{ error: { code: string } }>(other)).error.code).toBe("idempotency_key_reused");
    // Another account using the same key gets its own PaymentIntent.
    const stranger = await json<Created>(await topUp(await tokenFor(newAccountId()), { amount: 1500, currency: "usd" }, "click-1"));
    expect(stranger.payment_intent_id).not.toBe(ids[0]);
  });

  it("keys whose parts only differ in where a ':' falls are not confused: account a with key x:k, account a:x with key k", async () => {
    // Both spell `a:x:k` when the parts are joined with ':'.
    const suffix = newAccountId("s");
    const first = { account: `a_${suffix}`, key: `x:k` };
    const second = { account: `a_${suffix}:x`, key: `k` };
    const a = await topUp(await tokenFor(first.account), { amount: 1500, currency: "usd" }, first.key);
    const b = await topUp(await tokenFor(second.account), { amount: 1500, currency: "usd" }, second.key);
    expect([a.status, b.status]).toEqual([201, 201]);
    const [piA, piB] = [await json<Created>(a), await json<Created>(b)];
    expect(piA.payment_intent_id).not.toBe(piB.payment_intent_id);
    expect((await stripePaymentIntent(piA.payment_intent_id)).metadata.account_id).toBe(first.account);
    expect((await stripePaymentIntent(piB.payment_intent_id)).metadata.account_id).toBe(second.account);
    // The keys Stripe saw: the hashed form, one per account.
    const keyA = await topUpKey(first.account, first.key);
    const keyB = await topUpKey(second.account, second.key);
    expect(keyA).not.toBe(keyB);
    expect(await stripeRequests({ method: "POST", key: keyA })).toHaveLength(1);
    expect(await stripeRequests({ method: "POST", key: keyB })).toHaveLength(1);
  });

  it.each([
    ["below the minimum", { amount: 499, currency: "usd" }],
    ["above the maximum", { amount: 100_001, currency: "usd" }],
    ["zero", { amount: 0, currency: "usd" }],
    ["negative", { amount: -500, currency: "usd" }],
    ["fractional", { amount: 10.5, currency: "usd" }],
    ["a string amount", { amount: "1000", currency: "usd" }],
    ["a currency not offered", { amount: 1000, currency: "eur" }],
    ["an upper-case currency", { amount: 1000, currency: "USD" }],
    ["a missing currency", { amount: 1000 }],
    ["an extra field", { amount: 1000, currency: "usd", customer: "cus_someone_else" }],
  ])("%s → 400, no PaymentIntent", async (_, body) => {
    const accountId = newAccountId();
    const res = await topUp(await tokenFor(accountId), body);
    expect(res.status).toBe(400);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_request");
    expect(await customersOf(accountId)).toHaveLength(0);
  });

  it("an Idempotency-Key that is not a plain token → 400", async () => {
    const res = await topUp(await tokenFor(newAccountId()), { amount: 1000, currency: "usd" }, "a key with spaces");
    expect(res.status).toBe(400);
  });

  it("requires a signed-in caller", async () => {
    const res = await authed("not-a-token", "/billing/top_ups", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ amount: 1000, currency: "usd" }),
    });
    expect(res.status).toBe(401);
  });
});

describe("the browser's whole path", () => {
  it("top up, pay, confirm: the balance rises once; the ledger shows the top-up", async () => {
    const accountId = newAccountId();
    const token = await tokenFor(accountId);
    expect(await balanceOf(token)).toEqual({ balance: 0, currency: "usd" });

    const created = await json<Created>(await topUp(token, { amount: 4200, currency: "usd" }));
    const paid = await payWithTestCard(created.payment_intent_id);
    expect(paid.status).toBe("succeeded");
    const answers = await Promise.all([confirm(token, created.payment_intent_id), confirm(token, created.payment_intent_id)]);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    expect(await balanceOf(token)).toEqual({ balance: 4200, currency: "usd" });

    const ledger = await json<{ data: { amount: number; kind: string; payment_intent_id: string }[]; has_more: boolean }>(
      await authed(token, "/billing/transactions"),
    );
    expect(ledger.data).toHaveLength(1);
    expect(ledger.data[0]).toMatchObject({ amount: 4200, kind: "top_up", payment_intent_id: created.payment_intent_id });
  });

  it("a declined card leaves the PaymentIntent unpaid: confirm is 409 and the balance stays", async () => {
    const token = await tokenFor(newAccountId());
    const created = await json<Created>(await topUp(token, { amount: 1000, currency: "usd" }));
    await payWithTestCard(created.payment_intent_id, "pm_card_chargeDeclined");
    const res = await confirm(token, created.payment_intent_id);
    expect(res.status).toBe(409);
    expect((await json<{ error: { payment_intent_status: string } }>(res)).error.payment_intent_status).toBe("requires_payment_method");
    expect((await balanceOf(token)).balance).toBe(0);
  });
});
