// The PaymentIntent object tells the account's wallet about each credit and reversal it wrote,
// exactly once, keyed by the balance transaction: a browser's confirm answers 200 only once the
// wallet has the credit (so it is spendable when the page says so), a wallet that cannot be told
// now is told later by the object's alarm (never dropped, never twice), and a refund's reversal
// reaches the wallet as one `reversal` line.

import { describe, expect, it } from "vitest";
import type { Inspection } from "../../src/credit/contract.js";
import {
  addFault,
  answerOf,
  confirm,
  deliver,
  drainAlarms,
  emu,
  eventsFor,
  ledgerFor,
  paidThroughService,
  paidTopUp,
  piObject,
  removeFault,
  settledCredit,
  stripeRequests,
  waitForObject,
} from "../helpers.js";
import { accountStub, allLines, expectLinesAddUp, totals } from "./helpers.js";

describe("a confirmed top-up reaches the wallet", () => {
  // Invariant: when the browser's confirm answers 200, the wallet already has the credit, once,
  // as a top_up line under the credit's balance transaction, and the PaymentIntent object owes
  // the wallet nothing.
  it("for a customer the service created (wallet opened empty): the credit is applied by the report", async () => {
    const p = await paidThroughService(1500);
    const res = await confirm(p.token, p.pi.id);
    expect(res.status).toBe(200);
    const { record, wallet_pending } = await piObject(p.pi.id).inspect();
    expect(wallet_pending).toEqual([]);
    expect(await accountStub(p.accountId).walletBalance(p.accountId)).toMatchObject({ ok: true, balance: { available: 1500, held: 0, currency: "usd" } });
    const lines = (await allLines(p.accountId)).filter((l) => l.balance_transaction_id === record?.balance_transaction_id);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ kind: "top_up", amount: 1500, payment_intent_id: p.pi.id });
    // Asked again, nothing changes.
    expect((await answerOf(await confirm(p.token, p.pi.id))).code).toBe("already_credited");
    expect(await totals(p.accountId)).toEqual({ available: 1500, held: 0 });
    await expectLinesAddUp(p.accountId);
  });

  // Invariant: a wallet that opens from Stripe's ledger at the first report (the customer was
  // made elsewhere) counts the credit once: the opening includes it, and the report of it
  // changes nothing.
  it("for a customer made elsewhere (wallet opened from Stripe at the report): the credit counts once", async () => {
    const p = await paidTopUp(1200);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const { record, wallet_pending } = await piObject(p.pi.id).inspect();
    expect(wallet_pending).toEqual([]);
    expect(await totals(p.accountId)).toEqual({ available: 1200, held: 0 });
    const lines = (await allLines(p.accountId)).filter((l) => l.balance_transaction_id === record?.balance_transaction_id);
    expect(lines.map((l) => [l.kind, l.amount])).toEqual([["top_up", 1200]]);
  });
});

describe("a wallet that cannot be told now", () => {
  // Invariant: a credit the wallet does not have is never answered 200 to the browser (503
  // stripe_unavailable instead, with the credit listed as owed to the wallet); the object's
  // alarm tells the wallet once it can, the credit lands in the wallet exactly once, and the
  // next confirm answers 200 already_credited. Stripe is credited once throughout.
  it("the wallet's opening read fails: confirm 503, wallet_pending lists the credit; after the fault, the alarm delivers it once", async () => {
    const p = await paidTopUp(1700);
    // The wallet opens from the customer's ledger at the first report; that read fails for now.
    const blind = await addFault({
      kind: "error_500",
      saved: false,
      method: "GET",
      path: `/v1/customers/${p.customer.id}/balance_transactions`,
      times: 100_000,
    });
    try {
      const first = await answerOf(await confirm(p.token, p.pi.id));
      expect(first).toMatchObject({ status: 503, code: "stripe_unavailable" });
      expect(Number(first.retryAfter)).toBeGreaterThanOrEqual(1);
      const { record, wallet_pending } = await piObject(p.pi.id).inspect();
      expect(record?.state).toBe("credited");
      expect(wallet_pending).toEqual([record?.balance_transaction_id]);
      expect((await accountStub(p.accountId).inspectWallet()).wallet).toBeNull();
      // A second confirm while the wallet still cannot be told: still not 200, and no second write.
      expect(await answerOf(await confirm(p.token, p.pi.id))).toMatchObject({ status: 503, code: "stripe_unavailable" });
      expect(await ledgerFor(p.customer.id, p.pi.id)).toHaveLength(1);
    } finally {
      await removeFault(blind);
    }

    await drainAlarms(p.pi.id);
    const after = await piObject(p.pi.id).inspect();
    expect(after.wallet_pending).toEqual([]);
    expect(await totals(p.accountId)).toEqual({ available: 1700, held: 0 });
    const lines = (await allLines(p.accountId)).filter((l) => l.balance_transaction_id === after.record?.balance_transaction_id);
    expect(lines.map((l) => [l.kind, l.amount])).toEqual([["top_up", 1700]]);
    expect(await answerOf(await confirm(p.token, p.pi.id))).toMatchObject({
      status: 200,
      code: "already_credited",
      txId: after.record?.balance_transaction_id,
    });
    expect(await ledgerFor(p.customer.id, p.pi.id)).toHaveLength(1);
    expect((await stripeRequests({ key: `credit-tx:${p.pi.id}*` })).filter((r) => r.status === 200 && !r.replayed)).toHaveLength(1);
    await expectLinesAddUp(p.accountId);
  });
});

describe("a refund's reversal reaches the wallet", () => {
  // Invariant: a refund taken back from the customer's Stripe balance reaches the wallet as
  // exactly one `reversal` line under the reversal's balance transaction, lowering available by
  // the refund, however often the refund's event is delivered.
  it("a partial refund: one reversal line, available lowered once, also after the event is redelivered", async () => {
    const p = await paidThroughService(1000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    expect(await totals(p.accountId)).toEqual({ available: 1000, held: 0 });

    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 300 });
    const [event] = await eventsFor("charge.refunded", p.pi.id);
    expect(event).toBeDefined();
    expect((await deliver(event?.id as string)).status).toBe(200);
    const done = (i: Inspection) => settledCredit(i) && i.amounts?.net === 700 && i.wallet_pending.length === 0;
    await waitForObject(p.pi.id, done);

    const reversal = (await ledgerFor(p.customerId, p.pi.id)).find((tx) => tx.amount === 300);
    expect(reversal).toBeDefined();
    const expectOnce = async () => {
      expect(await totals(p.accountId)).toEqual({ available: 700, held: 0 });
      const lines = (await allLines(p.accountId)).filter((l) => l.kind === "reversal");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ amount: -300, held: 0, payment_intent_id: p.pi.id, balance_transaction_id: reversal?.id });
      await expectLinesAddUp(p.accountId);
    };
    await expectOnce();

    expect((await deliver(event?.id as string)).status).toBe(200);
    await waitForObject(p.pi.id, done);
    await drainAlarms(p.pi.id);
    await expectOnce();
    expect(await ledgerFor(p.customerId, p.pi.id)).toHaveLength(2);
  });
});
