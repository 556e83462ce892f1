// Every Stripe call the service makes (each function of the gateways in src/stripe/), run against
// the emulator with its check against Stripe's OpenAPI spec on: each reaches the emulator, is
// checked, and is not refused. The set of cases is the gateways' own set of functions, so a new
// gateway function without a case here fails. (A request the spec refuses, from any test of this
// project, also fails the run as the project ends: test/global-setup.ts.)

import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BalanceTransactions } from "../src/stripe/balance-transactions.js";
import { Customers } from "../src/stripe/customers.js";
import { StripeGateway } from "../src/stripe/gateway.js";
import { adjustmentParams, batchKey, creditKey, creditParams } from "../src/stripe/keys.js";
import { LedgerWriter } from "../src/stripe/ledger-write.js";
import { PaymentIntents } from "../src/stripe/payment-intents.js";
import { batchParams } from "../src/wallet/sync.js";
import { createCustomer, createPaymentIntent, emu, newAccountId, stripeRequests, topUpMetadata } from "./helpers.js";

interface SpecSummary {
  enabled: boolean;
  spec_version: string;
  checked: number;
  rejected: number;
  rejections: unknown[];
}

const stripe = () => new StripeGateway(env);

/** An account with a customer and a card saved on it. */
async function withCard(card = "pm_card_visa") {
  const accountId = newAccountId("spec");
  const customer = await createCustomer(accountId);
  const { payment_method: pm } = await emu<{ payment_method: { id: string } }>("/payment_methods", { card, customer: customer.id });
  return { accountId, customerId: customer.id, paymentMethod: pm.id };
}

/** A paid top-up PaymentIntent of a fresh account's customer. */
async function paid() {
  const accountId = newAccountId("spec");
  const customer = await createCustomer(accountId);
  const pi = await createPaymentIntent({ customer: customer.id, metadata: topUpMetadata(accountId) });
  return { accountId, customerId: customer.id, pi: pi.id };
}

const expectOk = (call: { ok: boolean; failure?: { message: string } }) => expect(call.ok, call.failure?.message).toBe(true);

/**
 * One run per gateway function, named `Class.method`; each returns the request paths it sent
 * (globs for the request log), so the test can find exactly its own requests.
 */
const CASES: Record<string, () => Promise<string[]>> = {
  "Customers.createForAccount": async () => {
    expectOk(await stripe().customers.createForAccount(newAccountId("spec")));
    return ["/v1/customers"];
  },
  "Customers.ownerOf": async () => {
    const accountId = newAccountId("spec");
    const customer = await createCustomer(accountId);
    expect(await stripe().customers.ownerOf(customer.id)).toEqual({ kind: "account", accountId });
    return [`/v1/customers/${customer.id}`];
  },
  "Customers.searchByAccount": async () => {
    expectOk(await stripe().customers.searchByAccount(newAccountId("spec")));
    return ["/v1/customers/search"];
  },
  "PaymentIntents.retrieve": async () => {
    const { pi } = await paid();
    expectOk(await stripe().paymentIntents.retrieve(pi));
    return [`/v1/payment_intents/${pi}`];
  },
  "PaymentIntents.retrieveWithPaymentMethod": async () => {
    const { pi } = await paid();
    expectOk(await stripe().paymentIntents.retrieveWithPaymentMethod(pi));
    return [`/v1/payment_intents/${pi}`];
  },
  "PaymentIntents.createTopUp": async () => {
    const accountId = newAccountId("spec");
    const customer = await createCustomer(accountId);
    const input = { accountId, customerId: customer.id, amount: 700, currency: "usd" };
    expectOk(await stripe().paymentIntents.createTopUp({ ...input, clientKey: "spec-plain" }));
    expectOk(await stripe().paymentIntents.createTopUp({ ...input, clientKey: "spec-save", savePaymentMethod: true }));
    expectOk(await stripe().paymentIntents.createTopUp({ ...input, clientKey: null }));
    return ["/v1/payment_intents"];
  },
  "PaymentIntents.createRecharge": async () => {
    const card = await withCard();
    expectOk(await stripe().paymentIntents.createRecharge({ ...card, n: 1, amount: 1500, currency: "usd" }));
    return ["/v1/payment_intents"];
  },
  "PaymentIntents.findRecharge": async () => {
    const card = await withCard();
    const made = await stripe().paymentIntents.createRecharge({ ...card, n: 1, amount: 1500, currency: "usd" });
    const found = await stripe().paymentIntents.findRecharge(card.customerId, card.accountId, 1);
    expect(found.ok && made.ok && found.value?.id).toBe(made.ok && made.value.id);
    return ["/v1/payment_intents"];
  },
  "PaymentIntents.cancelRecharge": async () => {
    const card = await withCard("pm_card_authenticationRequired");
    const asked = await stripe().paymentIntents.createRecharge({ ...card, n: 1, amount: 1500, currency: "usd" });
    const pi = asked.ok ? null : asked.failure.paymentIntent;
    if (!pi) throw new Error("the card asking for authentication left no PaymentIntent");
    const canceled = await stripe().paymentIntents.cancelRecharge(pi.id, card.accountId, 1);
    expect(canceled.ok && canceled.value.status).toBe("canceled");
    return [`/v1/payment_intents/${pi.id}/cancel`];
  },
  "PaymentIntents.mark": async () => {
    const { pi } = await paid();
    expectOk(await stripe().paymentIntents.mark(pi, 1));
    return [`/v1/payment_intents/${pi}`];
  },
  "PaymentIntents.unmark": async () => {
    const { pi } = await paid();
    expectOk(await stripe().paymentIntents.unmark(pi, 1));
    return [`/v1/payment_intents/${pi}`];
  },
  "BalanceTransactions.create": async () => {
    const { accountId, customerId, pi } = await paid();
    const ledger = stripe().balanceTransactions;
    // Each shape of write the service makes: a credit, a reversal, a restoration, a batch of spending.
    expectOk(await ledger.create(customerId, creditParams(pi, 1000, "usd"), creditKey(pi, 1)));
    expectOk(await ledger.create(customerId, adjustmentParams(pi, "refund:re_1", "debit", 300, "usd"), `${creditKey(pi, 1)}:reversal`));
    expectOk(await ledger.create(customerId, adjustmentParams(pi, "dispute:dp_1", "credit", 300, "usd"), `${creditKey(pi, 1)}:restoration`));
    const batch = { n: 1, amount: 250, currency: "usd", entries: 3 };
    expectOk(await ledger.create(customerId, batchParams(accountId, batch), batchKey(customerId, 1, 1)));
    return [`/v1/customers/${customerId}/balance_transactions`];
  },
  "BalanceTransactions.scan": async () => {
    const { customerId } = await paid();
    expectOk(await stripe().balanceTransactions.scan(customerId, () => "continue"));
    return [`/v1/customers/${customerId}/balance_transactions`];
  },
  "BalanceTransactions.all": async () => {
    const { customerId } = await paid();
    // More than one page, so the SDK's auto-pagination sends its `starting_after` too.
    await emu(`/customers/${customerId}/balance_transactions/pad`, { count: 150 });
    const all = await stripe().balanceTransactions.all(customerId);
    expect(all.ok && all.value.length).toBe(150);
    return [`/v1/customers/${customerId}/balance_transactions`];
  },
  "LedgerWriter.write": async () => {
    const { customerId, pi } = await paid();
    const writer = new LedgerWriter(stripe().balanceTransactions, () => undefined);
    const w = {
      customerId,
      keyBase: creditKey(pi, 1),
      params: creditParams(pi, 1000, "usd"),
      matches: () => false,
      sinceSeconds: 0,
      attempt: 1,
      sent: false,
      save: () => undefined,
    };
    expect((await writer.write(w, "credit")).kind).toBe("done");
    return [`/v1/customers/${customerId}/balance_transactions`];
  },
  "LedgerWriter.find": async () => {
    const { customerId } = await paid();
    const writer = new LedgerWriter(stripe().balanceTransactions, () => undefined);
    expect(await writer.find(customerId, 0, () => false)).toBeNull();
    return [`/v1/customers/${customerId}/balance_transactions`];
  },
};

/** The functions each gateway class defines (what the service can ask of Stripe). */
function gatewayFunctions(): string[] {
  const classes = { Customers, PaymentIntents, BalanceTransactions, LedgerWriter };
  return Object.entries(classes).flatMap(([name, cls]) =>
    Object.getOwnPropertyNames(cls.prototype)
      .filter((m) => m !== "constructor")
      .map((m) => `${name}.${m}`),
  );
}

describe("every Stripe call the service makes, checked against Stripe's OpenAPI spec", () => {
  it("the emulator checks against the spec, and these cases are every gateway function", async () => {
    expect(await emu<SpecSummary>("/spec")).toMatchObject({ enabled: true, spec_version: "2024-04-10" });
    expect(Object.keys(CASES).sort()).toEqual(gatewayFunctions().sort());
  });

  for (const [name, run] of Object.entries(CASES)) {
    it(`${name}: every request it sends is checked and none is refused`, async () => {
      const before = await emu<SpecSummary>("/spec");
      const paths = await run();
      const after = await emu<SpecSummary>("/spec");
      expect(after.checked).toBeGreaterThan(before.checked);
      expect(after.rejected, JSON.stringify(after.rejections)).toBe(0);
      const sent = (await Promise.all(paths.map((path) => stripeRequests({ path })))).flat();
      expect(sent.length).toBeGreaterThan(0);
      for (const r of sent) expect(r.refused_by_spec, `${r.method} ${r.path}`).toBe(false);
    });
  }
});
