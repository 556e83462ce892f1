// The Stripe gateways (src/stripe/): every call the service makes, against the emulator. Each
// method sends its Idempotency-Key (built in keys.ts), counts every request it sends (each page
// of a list included) for whoever asked, and answers a verdict instead of throwing.

import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { StripeGateway, type CallKind } from "../src/stripe/gateway.js";
import { customerKey, markKey, topUpKey, unmarkKey } from "../src/stripe/keys.js";
import { STRIPE_HANG_MS } from "./bindings.js";
import { addFault, createCustomer, createPaymentIntent, newAccountId, removeFault, stripeRequests, topUpMetadata } from "./helpers.js";

function counted() {
  const calls: CallKind[] = [];
  return { calls, stripe: new StripeGateway(env, { onCall: (kind) => calls.push(kind) }) };
}

describe("the Stripe gateways", () => {
  it("customers: created once per account under customer:{account}, found by search, owner read back", async () => {
    const accountId = newAccountId("gw");
    const { calls, stripe } = counted();
    const first = await stripe.customers.createForAccount(accountId);
    const again = await stripe.customers.createForAccount(accountId);
    expect(first.ok && again.ok && first.value.id === again.value.id).toBe(true);
    const id = first.ok ? first.value.id : "";
    expect(await stripe.customers.ownerOf(id)).toEqual({ kind: "account", accountId });
    expect(await stripe.customers.ownerOf("cus_doesnotexist")).toEqual({ kind: "none" });
    const found = await stripe.customers.searchByAccount(accountId);
    expect(found.ok && found.value.map((c) => c.id)).toEqual([id]);
    expect(calls).toEqual(["customers.create", "customers.create", "customers.retrieve", "customers.retrieve", "customers.search"]);
    const sent = await stripeRequests({ path: "/v1/customers", method: "POST", key: customerKey(accountId) });
    expect(sent).toHaveLength(2);
  });

  it("payment intents: a top-up carries the marker and the account-scoped key; mark and unmark use their keys", async () => {
    const accountId = newAccountId("gw");
    const customer = await createCustomer(accountId);
    const { calls, stripe } = counted();
    const input = { accountId, customerId: customer.id, amount: 700, currency: "usd", clientKey: "double-click" };
    const made = await stripe.paymentIntents.createTopUp(input);
    const replayed = await stripe.paymentIntents.createTopUp(input);
    if (!made.ok || !replayed.ok) throw new Error("top-up not created");
    expect(replayed.value.id).toBe(made.value.id);
    expect(made.value.metadata).toEqual(topUpMetadata(accountId));
    expect(await stripeRequests({ path: "/v1/payment_intents", key: await topUpKey(accountId, "double-click") })).toHaveLength(2);

    const pi = await createPaymentIntent({ customer: customer.id, metadata: topUpMetadata(accountId) });
    expect((await stripe.paymentIntents.mark(pi.id, 1)).ok).toBe(true);
    const read = await stripe.paymentIntents.retrieve(pi.id);
    expect(read.ok && read.value.metadata.credited).toBe("true");
    expect((await stripe.paymentIntents.unmark(pi.id, 2)).ok).toBe(true);
    const after = await stripe.paymentIntents.retrieve(pi.id);
    expect(after.ok && after.value.metadata.credited).toBeUndefined();
    expect(await stripeRequests({ key: markKey(pi.id, 1) })).toHaveLength(1);
    expect(await stripeRequests({ key: unmarkKey(pi.id, 2) })).toHaveLength(1);
    expect(calls).toEqual([
      "payment_intents.create",
      "payment_intents.create",
      "payment_intents.update",
      "payment_intents.retrieve",
      "payment_intents.update",
      "payment_intents.retrieve",
    ]);
  });

  it("a failed call is a verdict, never a throw: unknown is not_found, a refusal permanent, a 500 ambiguous", async () => {
    const customer = await createCustomer(newAccountId("gw"));
    const { stripe } = counted();
    const unknown = await stripe.paymentIntents.retrieve("pi_doesnotexist0000");
    expect(unknown.ok ? null : unknown.failure.kind).toBe("not_found");
    const path = `/v1/customers/${customer.id}/balance_transactions`;
    const refusal = await addFault({ kind: "error_400", method: "POST", path, key: "gw-refused*" });
    const fault = await addFault({ kind: "error_500", method: "POST", path, key: "gw-500*" });
    try {
      const refused = await stripe.balanceTransactions.create(customer.id, { amount: 100, currency: "usd" }, "gw-refused");
      expect(refused.ok ? null : refused.failure.kind).toBe("permanent");
      const failed = await stripe.balanceTransactions.create(customer.id, { amount: 100, currency: "usd" }, "gw-500");
      expect(failed.ok ? null : failed.failure.kind).toBe("ambiguous");
    } finally {
      await removeFault(refusal);
      await removeFault(fault);
    }
  });

  it("a call Stripe never answers is given up after STRIPE_TIMEOUT_MS on each of the SDK's tries: ambiguous", async () => {
    const pi = await createPaymentIntent({});
    // A timeout far shorter than the emulator's hang, so that the service's own timeout ends each try.
    const stripe = new StripeGateway({ ...env, STRIPE_TIMEOUT_MS: "100" });
    const path = `/v1/payment_intents/${pi.id}`;
    const fault = await addFault({ kind: "hang", method: "GET", path, times: 3 });
    try {
      const read = await stripe.paymentIntents.retrieve(pi.id);
      expect(read.ok ? null : [read.failure.kind, read.failure.message]).toEqual(["ambiguous", expect.stringMatching(/timeout/)]);
    } finally {
      await removeFault(fault);
    }
    const tries = await stripeRequests({ method: "GET", path });
    expect(tries.map((r) => r.fault)).toEqual(["hang", "hang", "hang"]);
    for (const t of tries) expect(t.duration_ms).toBeLessThan(STRIPE_HANG_MS);
  });

  it("a ledger read counts each page it fetches, and a stop ends it without reading further", async () => {
    const customer = await createCustomer(newAccountId("gw"));
    const { calls, stripe } = counted();
    for (let i = 0; i < 101; i++) {
      const made = await stripe.balanceTransactions.create(customer.id, { amount: -1, currency: "usd" }, `gw-page-${customer.id}-${i}`);
      expect(made.ok).toBe(true);
    }
    calls.length = 0;
    const all = await stripe.balanceTransactions.all(customer.id);
    expect(all.ok && all.value).toHaveLength(101);
    expect(calls).toEqual(["balance_transactions.list", "balance_transactions.list"]);
    calls.length = 0;
    let seen = 0;
    const stopped = await stripe.balanceTransactions.scan(customer.id, () => (++seen === 3 ? "stop" : "continue"));
    expect(stopped.ok).toBe(true);
    expect(seen).toBe(3);
    expect(calls).toEqual(["balance_transactions.list"]);
    const reads = await stripeRequests({ path: `/v1/customers/${customer.id}/balance_transactions`, method: "GET" });
    expect(reads).toHaveLength(3);
  });
});
