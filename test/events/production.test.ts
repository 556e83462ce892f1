// Which events the service produces, and that each fact is one event: a credit is one
// credit.added however many browsers and webhooks report it, a refund one credit.reversed, a won
// dispute one credit.restored; a fact that was not written (a refused debit, a credit Stripe
// refused, an unpaid PaymentIntent) produces nothing, except credit.needs_attention for the
// credit that now waits for an operator. Read as the seller's backend reads them: verified, one
// per webhook-id (test/events/received.ts), filtered by the account.

import { describe, expect, it } from "vitest";
import type { AttentionEventData, EntryEventData } from "../../src/events/contract.js";
import { eventId } from "../../src/events/contract.js";
import { TEST_BINDINGS } from "../bindings.js";
import {
  addFault,
  answerOf,
  call,
  confirm,
  createPaymentIntent,
  deliver,
  emu,
  eventsFor,
  json,
  lastEvent,
  ledgerFor,
  paidThroughService,
  paidTopUp,
  refuseCreditOnce,
  removeFault,
  seller,
  slowStripe,
  settledCredit,
  topUpMetadata,
  waitForObject,
} from "../helpers.js";
import { countByType, ofAccount, ofType, receivedFor, waitForTypes, type Received } from "./received.js";

/** A top-up made through the service and paid (its customer was made by the service, so its wallet is open from the start). */
const paid = (amount: number) => paidThroughService(amount);

/** The account's ledger lines as the seller's API lists them, newest first. */
async function linesOf(accountId: string): Promise<EntryEventData[]> {
  const res = await seller(`/v1/accounts/${accountId}/transactions?limit=100`);
  expect(res.status).toBe(200);
  return (await json<{ data: EntryEventData[] }>(res)).data;
}

/** The account's balance as the seller's API shows it. */
async function balanceOf(accountId: string): Promise<{ available: number; held: number; currency: string }> {
  const { available, held, currency } = await json<{ available: number; held: number; currency: string }>(await seller(`/v1/accounts/${accountId}/balance`));
  return { available, held, currency };
}

/** Delivers (signed, as Stripe would) every event of `type` about the PaymentIntent not delivered yet. */
async function deliverNew(type: string, paymentIntentId: string, seen: Set<string>): Promise<void> {
  for (const e of await eventsFor(type, paymentIntentId)) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    expect((await deliver(e.id)).status).toBe(200);
  }
}

/** The one event of `type` among `events` (fails if there is none or several). */
function only<D>(events: Received[], type: Parameters<typeof ofType>[1]): Received<D> {
  const found = ofType<D>(events, type);
  expect(found.map((e) => e.id)).toHaveLength(1);
  return found[0] as Received<D>;
}

describe("credit.added", () => {
  it("a top-up confirmed by the browser and then reported by Stripe's webhook too is one event: the ledger line, its account and the balance after it", async () => {
    const p = await paid(1000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const match = ofAccount(p.accountId);
    const first = only<EntryEventData>(await waitForTypes(match, { "credit.added": 1 }), "credit.added");

    // The webhook reports the same credit: the same fact, so no second event (and nothing else).
    const succeeded = await eventsFor("payment_intent.succeeded", p.pi.id);
    expect(succeeded.length).toBeGreaterThan(0);
    for (const e of succeeded) expect((await deliver(e.id)).status).toBe(200);
    await waitForObject(p.pi.id, settledCredit);
    const events = await waitForTypes(match, { "credit.added": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1 });

    // Its id is derived from the fact, the Stripe balance transaction, so any producer of it names it alike.
    const [tx] = await ledgerFor(p.customerId, p.pi.id);
    expect(first.id).toBe(eventId("credit.added", tx?.id ?? "?"));
    // Its data is exactly the ledger line the seller's API lists, plus the account and the balance after it.
    const lines = await linesOf(p.accountId);
    expect(lines).toHaveLength(1);
    expect(first.data).toEqual({ ...lines[0], account_id: p.accountId, balance: { available: 1000, held: 0, currency: "usd" } });
    expect(first.data).toMatchObject({ kind: "top_up", amount: 1000, payment_intent_id: p.pi.id, balance_transaction_id: tx?.id });
    expect(first.timestamp).toBe(lines[0]?.created);
  });

  it("a top-up reported by the webhook first and confirmed by the browser afterwards is one event too", async () => {
    const p = await paid(700);
    expect((await deliver(await lastEvent("payment_intent.succeeded", p.pi.id))).status).toBe(200);
    await waitForObject(p.pi.id, settledCredit);
    const match = ofAccount(p.accountId);
    await waitForTypes(match, { "credit.added": 1 });
    expect((await answerOf(await confirm(p.token, p.pi.id))).code).toBe("already_credited");
    const events = await waitForTypes(match, { "credit.added": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1 });
    expect(only<EntryEventData>(events, "credit.added").data).toMatchObject({ amount: 700, payment_intent_id: p.pi.id, balance: { available: 700 } });
  });

  it("many concurrent confirms and webhook deliveries of one PaymentIntent give one credit.added", async () => {
    const p = await paid(1500);
    const succeeded = await lastEvent("payment_intent.succeeded", p.pi.id);
    // Every Stripe call of this PaymentIntent and customer slow, so the calls overlap the whole credit.
    await slowStripe(p.pi.id, p.customerId, 60);
    // Browsers and Stripe's (re)deliveries interleaved, all at once.
    const calls = Array.from({ length: 60 }, (_, i) => (i % 3 === 2 ? deliver(succeeded) : confirm(p.token, p.pi.id)));
    const answers = await Promise.all(calls.map(async (c) => (await c).status));
    expect(answers.every((s) => s === 200)).toBe(true);
    await waitForObject(p.pi.id, settledCredit);
    const events = await waitForTypes(ofAccount(p.accountId), { "credit.added": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1 });
    expect(only<EntryEventData>(events, "credit.added").data).toMatchObject({ amount: 1500, balance: { available: 1500, held: 0 } });
    expect(await ledgerFor(p.customerId, p.pi.id)).toHaveLength(1);
  });

  it("each top-up of an account is its own event, with the balance after it", async () => {
    const p = await paid(500);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const second = await createPaymentIntent({ customer: p.customerId, amount: 600, metadata: topUpMetadata(p.accountId) });
    expect((await confirm(p.token, second.id)).status).toBe(200);
    const events = await waitForTypes(ofAccount(p.accountId), { "credit.added": 2 });
    expect(countByType(events)).toEqual({ "credit.added": 2 });
    // The second was confirmed after the first was applied: its balance includes the first.
    const added = ofType<EntryEventData>(events, "credit.added")
      .map((e) => ({ pi: e.data.payment_intent_id, amount: e.data.amount, available: e.data.balance.available }))
      .sort((a, b) => a.amount - b.amount);
    expect(added).toEqual([
      { pi: p.pi.id, amount: 500, available: 500 },
      { pi: second.id, amount: 600, available: 1100 },
    ]);
  });

  it("the first top-up of a customer the service did not create (its wallet opens on that credit) is an event too", async () => {
    // A customer made elsewhere (an older server, the Dashboard): the wallet opens from Stripe's
    // ledger when the first credit is reported, and that ledger already holds the credit.
    const p = await paidTopUp(900);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const events = await waitForTypes(ofAccount(p.accountId), { "credit.added": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1 });
  });
});

describe("credit.reversed and credit.restored", () => {
  it("a full refund is one credit.reversed (and balance.depleted as available reaches 0), however often its webhook arrives", async () => {
    const p = await paid(1000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const match = ofAccount(p.accountId);
    await waitForTypes(match, { "credit.added": 1 });

    await emu(`/payment_intents/${p.pi.id}/refund`, {});
    const seen = new Set<string>();
    await deliverNew("charge.refunded", p.pi.id, seen);
    await waitForObject(p.pi.id, (i) => settledCredit(i) && i.amounts?.net === 0);
    await waitForTypes(match, { "credit.reversed": 1 });
    // Stripe redelivers the refund's event: the same fact, nothing new.
    for (const id of seen) expect((await deliver(id)).status).toBe(200);
    await waitForObject(p.pi.id, settledCredit);
    const events = await waitForTypes(match, { "credit.reversed": 1, "balance.depleted": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "credit.reversed": 1, "balance.depleted": 1 });

    const reversal = (await ledgerFor(p.customerId, p.pi.id)).find((tx) => tx.amount > 0);
    const reversed = only<EntryEventData>(events, "credit.reversed");
    expect(reversed.id).toBe(eventId("credit.reversed", reversal?.id ?? "?"));
    const line = (await linesOf(p.accountId)).find((l) => l.kind === "reversal");
    expect(reversed.data).toEqual({ ...line, account_id: p.accountId, balance: { available: 0, held: 0, currency: "usd" } });
    expect(reversed.data.amount).toBe(-1000);
    expect(only(events, "balance.depleted").data).toMatchObject({ account_id: p.accountId, available: 0, held: 0, currency: "usd" });
  });

  it("a partial refund is one credit.reversed of its amount, and nothing about the balance while it stays positive", async () => {
    const p = await paid(1000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 300 });
    await deliverNew("charge.refunded", p.pi.id, new Set());
    await waitForObject(p.pi.id, (i) => settledCredit(i) && i.amounts?.net === 700);
    const events = await waitForTypes(ofAccount(p.accountId), { "credit.added": 1, "credit.reversed": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "credit.reversed": 1 });
    expect(only<EntryEventData>(events, "credit.reversed").data).toMatchObject({ amount: -300, balance: { available: 700, held: 0 } });
  });

  it("a dispute opened then won: one credit.reversed, then one credit.restored", async () => {
    const p = await paid(2000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const match = ofAccount(p.accountId);
    const seen = new Set<string>();
    const dispute = await emu<{ id: string }>(`/payment_intents/${p.pi.id}/dispute`, {});
    await deliverNew("charge.dispute.created", p.pi.id, seen);
    await waitForObject(p.pi.id, (i) => settledCredit(i) && i.amounts?.net === 0);
    await waitForTypes(match, { "credit.reversed": 1 });

    await emu(`/disputes/${dispute.id}/close`, { status: "won" });
    await deliverNew("charge.dispute.closed", p.pi.id, seen);
    await waitForObject(p.pi.id, (i) => settledCredit(i) && i.amounts?.net === 2000);
    // Both events redelivered: nothing new.
    for (const id of seen) expect((await deliver(id)).status).toBe(200);
    const events = await waitForTypes(match, { "credit.restored": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "credit.reversed": 1, "balance.depleted": 1, "credit.restored": 1 });

    // Stripe's sign: the credit and the restoration are the two negative (credit) entries.
    const addedTx = only<EntryEventData>(events, "credit.added").data.balance_transaction_id;
    const restoration = (await ledgerFor(p.customerId, p.pi.id)).find((tx) => tx.amount < 0 && tx.id !== addedTx);
    const restored = only<EntryEventData>(events, "credit.restored");
    expect(restored.id).toBe(eventId("credit.restored", restoration?.id ?? "?"));
    expect(restored.data).toMatchObject({
      kind: "restoration",
      amount: 2000,
      payment_intent_id: p.pi.id,
      balance: { available: 2000, held: 0, currency: "usd" },
    });
    expect(only<EntryEventData>(events, "credit.reversed").data).toMatchObject({ kind: "reversal", amount: -2000, balance: { available: 0 } });
  });
});

describe("no event for a fact that was not written", () => {
  it("a refused debit (402) produces nothing, not even the alerts it would have crossed", async () => {
    const p = await paid(1000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const match = ofAccount(p.accountId);
    await waitForTypes(match, { "credit.added": 1 });
    // With a threshold of 500, this debit would have fired balance.low and balance.depleted.
    expect((await seller(`/v1/accounts/${p.accountId}/settings`, putJson({ low_balance_threshold: 500 }))).status).toBe(200);
    const refused = await debit(p.accountId, 1500);
    expect(refused.status).toBe(402);
    expect(await balanceOf(p.accountId)).toEqual({ available: 1000, held: 0, currency: "usd" });

    // A write that does cross, after it: its alert arrives, and the refused debit's never did.
    expect((await debit(p.accountId, 600)).status).toBe(201);
    const events = await waitForTypes(match, { "balance.low": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1 });
    expect(only(events, "balance.low").data).toMatchObject({ available: 400, threshold: 500 });
  });

  it("a credit Stripe refuses is no credit.added, but one credit.needs_attention naming the PaymentIntent and the reason", async () => {
    const p = await paid(650);
    const fault = await refuseCreditOnce(p.customerId, p.pi.id);
    try {
      expect(await answerOf(await confirm(p.token, p.pi.id))).toMatchObject({ status: 409, code: "credit_needs_attention" });
    } finally {
      await removeFault(fault);
    }
    // Asked again, the stored refusal is the same fact: no second event.
    expect((await answerOf(await confirm(p.token, p.pi.id))).code).toBe("credit_needs_attention");
    const events = await waitForTypes(ofAccount(p.accountId), { "credit.needs_attention": 1 });
    expect(countByType(events)).toEqual({ "credit.needs_attention": 1 });

    const attention = only<AttentionEventData>(events, "credit.needs_attention");
    expect(attention.data).toMatchObject({
      payment_intent_id: p.pi.id,
      account_id: p.accountId,
      customer_id: p.customerId,
      amount: 650,
      currency: "usd",
      subject: "credit",
      operation: null,
    });
    expect(attention.data.reason).toMatch(/^credit refused by Stripe/);
    expect(attention.data.error).toEqual(expect.any(String));
    expect(attention.id).toContain(p.pi.id);
    expect(await ledgerFor(p.customerId, p.pi.id)).toEqual([]);
    expect(await balanceOf(p.accountId)).toMatchObject({ available: 0, held: 0 });
  });

  it("a reversal Stripe refuses is one credit.needs_attention about the adjustment; the operator's retry that writes it is one credit.reversed", async () => {
    const p = await paidThroughService(1500);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    await waitForObject(p.pi.id, settledCredit);
    // Stripe refuses every reversal write of this PI (a permanent 400), whatever the key.
    const rule = await addFault({
      kind: "error_400",
      method: "POST",
      path: `/v1/customers/${p.customerId}/balance_transactions`,
      key: `credit-adjust:${p.pi.id}*`,
      times: 1000,
    });
    try {
      await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 500 });
      const [refunded] = await eventsFor("charge.refunded", p.pi.id);
      expect((await deliver(refunded?.id ?? "missing")).status).toBe(200);
      await waitForObject(p.pi.id, (i) => i.adjustments.some((a) => a.state === "needs_attention"));
      // The same refund's webhook again changes nothing: one fact, one event.
      expect((await deliver(refunded?.id ?? "missing")).status).toBe(200);
      const stuck = await waitForTypes(ofAccount(p.accountId), { "credit.added": 1, "credit.needs_attention": 1 });
      expect(countByType(stuck)).toEqual({ "credit.added": 1, "credit.needs_attention": 1 });
      expect(only<AttentionEventData>(stuck, "credit.needs_attention").data).toMatchObject({
        payment_intent_id: p.pi.id,
        account_id: p.accountId,
        subject: "adjustment",
        operation: expect.stringContaining("refund") as string,
        reason: "refund refused by Stripe",
      });
    } finally {
      await removeFault(rule);
    }
    const retried = await call(`/operator/credits/${p.pi.id}/retry`, { method: "POST", headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } });
    expect(retried.status).toBe(200);
    await waitForObject(p.pi.id, settledCredit);
    const after = await waitForTypes(ofAccount(p.accountId), { "credit.added": 1, "credit.needs_attention": 1, "credit.reversed": 1 });
    expect(countByType(after)).toEqual({ "credit.added": 1, "credit.needs_attention": 1, "credit.reversed": 1 });
    expect(only<EntryEventData>(after, "credit.reversed").data).toMatchObject({ amount: -500, balance: { available: 1000 } });
  });

  it("a payment that did not succeed produces nothing; the account's next real top-up is its only event", async () => {
    const p = await paid(500);
    const unpaid = await createPaymentIntent({ customer: p.customerId, amount: 5000, status: "requires_payment_method", metadata: topUpMetadata(p.accountId) });
    expect((await answerOf(await confirm(p.token, unpaid.id))).code).toBe("payment_not_succeeded");
    const declined = await createPaymentIntent({ customer: p.customerId, amount: 6000, status: "canceled", metadata: topUpMetadata(p.accountId) });
    expect((await answerOf(await confirm(p.token, declined.id))).code).toBe("payment_not_succeeded");

    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const events = await waitForTypes(ofAccount(p.accountId), { "credit.added": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1 });
    expect(only<EntryEventData>(events, "credit.added").data.payment_intent_id).toBe(p.pi.id);
    expect(await receivedFor(unpaid.id)).toEqual([]);
    expect(await receivedFor(declined.id)).toEqual([]);
  });
});

/** A PUT of a JSON body with the service token. */
function putJson(body: unknown): RequestInit {
  return { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

let keys = 0;
/** A debit of `amount` usd under a fresh Idempotency-Key. */
function debit(accountId: string, amount: number): Promise<Response> {
  keys++;
  return seller(`/v1/accounts/${accountId}/debits`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": `prod-${Date.now().toString(36)}-${keys}-${Math.random().toString(36).slice(2, 8)}` },
    body: JSON.stringify({ amount, currency: "usd" }),
  });
}
