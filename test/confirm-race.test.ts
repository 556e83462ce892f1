// Exactly once under concurrency: many confirms of one PaymentIntent racing while Stripe is
// slow (50 ms a call), so that any gap in the object's serialisation would let two through.

import { describe, expect, it } from "vitest";
import {
  confirm,
  createCustomer,
  createPaymentIntent,
  json,
  ledgerFor,
  markingOn,
  newAccountId,
  paidTopUp,
  slowStripe,
  stripeRequests,
  stripeTraffic,
  tokenFor,
  topUpMetadata,
} from "./helpers.js";

interface Answer {
  status: string;
  payment_intent_id: string;
  amount: number;
  currency: string;
  balance_transaction_id: string;
}

describe("concurrent confirms", () => {
  // Marking (MARK_CREDITED on, while an older server runs beside this one) adds the mark; by
  // default nothing is marked.
  it.each([
    { marking: true, calls: "one read, one mark and one credit write" },
    { marking: false, calls: "one read and one credit write, nothing marked" },
  ])("50 racing confirms of one PI credit it once, with $calls", async ({ marking }) => {
    const { customer, pi, token } = await paidTopUp(10_000);
    if (marking) await markingOn(pi.id);
    await slowStripe(pi.id, customer.id, 50);

    const responses = await Promise.all(Array.from({ length: 50 }, () => confirm(token, pi.id)));
    const bodies = await Promise.all(responses.map((r) => json<Answer>(r)));

    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    const txIds = new Set(bodies.map((b) => b.balance_transaction_id));
    expect(txIds.size).toBe(1);
    // Everyone who joined the attempt that wrote the credit is told it was credited.
    expect(bodies.every((b) => b.status === "credited" && b.amount === 10_000 && b.currency === "usd")).toBe(true);

    const ledger = await ledgerFor(customer.id, pi.id);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]?.amount).toBe(-10_000);
    expect(ledger[0]?.id).toBe([...txIds][0]);

    const traffic = await stripeTraffic(pi.id, customer.id);
    expect(traffic.piReads).toBe(1);
    expect(traffic.marks).toBe(marking ? 1 : 0);
    expect(traffic.creditWrites).toBe(1);
    expect(await stripeRequests({ key: `credit-mark:${pi.id}*` })).toHaveLength(marking ? 1 : 0);
    expect(await stripeRequests({ key: `credit-tx:${pi.id}` })).toHaveLength(1);
  });

  it("200 confirms spread over 20 PIs at once credit each PI once", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const token = await tokenFor(accountId);
    const pis = await Promise.all(
      Array.from({ length: 20 }, (_, i) => createPaymentIntent({ customer: customer.id, amount: 100 + i, metadata: topUpMetadata(accountId) })),
    );
    await Promise.all(pis.map((pi) => slowStripe(pi.id, customer.id, 50)));

    const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => confirm(token, (pis[i % 20] as { id: string }).id)));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    const bodies = await Promise.all(responses.map((r) => json<Answer>(r)));

    const ledger = await ledgerFor(customer.id);
    expect(ledger).toHaveLength(20);
    for (const [i, pi] of pis.entries()) {
      const entries = ledger.filter((tx) => tx.metadata.payment_intent === pi.id);
      expect(entries).toHaveLength(1);
      expect(entries[0]?.amount).toBe(-(100 + i));
      const answered = new Set(bodies.filter((b) => b.payment_intent_id === pi.id).map((b) => b.balance_transaction_id));
      expect([...answered]).toEqual([entries[0]?.id]);
      // Idempotency-Keys alone would keep the ledger right; the lock is what keeps the calls at one each.
      const traffic = await stripeTraffic(pi.id, customer.id);
      expect(traffic.piReads).toBe(1);
      expect(await stripeRequests({ key: `credit-tx:${pi.id}` })).toHaveLength(1);
    }
  });

  it("a confirm after the credit is answered from storage with no Stripe call", async () => {
    const { customer, pi, token } = await paidTopUp(2500);
    const first = await json<Answer>(await confirm(token, pi.id));
    expect(first.status).toBe("credited");
    const before = (await stripeTraffic(pi.id, customer.id)).all.length;

    const again = await Promise.all(Array.from({ length: 5 }, () => confirm(token, pi.id)));
    for (const res of again) {
      expect(res.status).toBe(200);
      expect(await json<Answer>(res)).toEqual({ ...first, status: "already_credited" });
    }
    expect((await stripeTraffic(pi.id, customer.id)).all.length).toBe(before);
  });
});
