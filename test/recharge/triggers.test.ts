// When a recharge starts and how many there are: a wallet write that leaves `available` below
// the threshold starts one, in its own transaction, so 200 concurrent debits across the
// threshold make one recharge PaymentIntent and one credit; the PaymentIntent is credited once
// whether the account object, the webhook or the browser gets there first; a crash between
// recording the recharge and learning Stripe's answer reuses the recorded key, so Stripe makes
// the PaymentIntent once; and the monthly limit holds, by UTC month, however the recharges chain.

import { abortAllDurableObjects } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { addFault, confirm, deliver, emu, eventsFor, json, removeFault, seller, stripeRequests, waitForRequest } from "../helpers.js";
import { countByType, ofAccount, waitForTypes } from "../events/received.js";
import {
  accountAlarm,
  accountWithCard,
  configure,
  customerPIs,
  debit,
  debitOk,
  rechargePIs,
  rechargeRows,
  rewrite,
  settleRecharges,
  stripeCredits,
  tagOf,
  view,
  walletCredits,
  walletOf,
} from "./helpers.js";

/** The recharge events among an account's received events, by type. */
function rechargeCounts(events: Awaited<ReturnType<typeof waitForTypes>>) {
  return countByType(events.filter((e) => e.type.startsWith("recharge.")));
}

/** Every Stripe request made under one of the account's recharge keys. */
function rechargeRequests(accountId: string) {
  return stripeRequests({ key: `recharge:${accountId}:*` });
}

describe("one recharge per dip, whatever the concurrency", () => {
  // The trigger is decided inside each debit's own transaction and the account object runs one at
  // a time, so the first debit below the threshold records the recharge and the other 199 see it
  // open. A trigger decided outside the transaction (or a missing "one open" rule) would start
  // several, each with its own key and PaymentIntent.
  it("200 concurrent debits across the threshold: one recharge PaymentIntent in Stripe, one credit, exact balance", async () => {
    const a = await accountWithCard(2000);
    await configure(a.accountId, { enabled: true, threshold: 1500, amount: 2000, monthly_limit: 10_000 });

    const answers = await Promise.all(Array.from({ length: 200 }, () => debit(a.accountId, 5)));
    expect(answers.map((r) => r.status)).toEqual(Array.from({ length: 200 }, () => 201));

    const rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => [r.n, r.status, r.amount])).toEqual([[1, "succeeded", 2000]]);

    // Stripe: one key, one PaymentIntent made under it, listed once among the customer's.
    const requests = await rechargeRequests(a.accountId);
    expect(new Set(requests.map((r) => r.idempotency_key))).toEqual(new Set([`recharge:${a.accountId}:1`]));
    expect(requests.filter((r) => r.method === "POST" && !r.replayed && r.status === 200)).toHaveLength(1);
    const recharges = await rechargePIs(a.customerId);
    expect(recharges.map((pi) => [pi.metadata.recharge, pi.status, pi.amount, pi.payment_method])).toEqual([
      [tagOf(a.accountId, 1), "succeeded", 2000, a.paymentMethod],
    ]);
    expect((await customerPIs(a.customerId)).map((pi) => pi.id).sort()).toEqual([a.topUpId, rows[0]?.payment_intent_id].sort());

    // One credit for it, in Stripe's ledger and in the wallet.
    const pi = rows[0]?.payment_intent_id as string;
    expect(await stripeCredits(a.customerId, pi)).toEqual([-2000]);
    expect((await walletCredits(a.accountId, pi)).map((l) => l.amount)).toEqual([2000]);

    // 2000 in, 200 × 5 spent, 2000 recharged.
    expect(await walletOf(a.accountId)).toEqual({ available: 3000, held: 0 });
    const balance = await json<{ available: number; held: number }>(await seller(`/v1/accounts/${a.accountId}/balance`));
    expect(balance).toMatchObject({ available: 3000, held: 0 });
    expect((await view(a.accountId)).this_month).toMatchObject({ recharged: 2000, remaining: 8000 });

    const events = await waitForTypes(ofAccount(a.accountId), { "recharge.succeeded": 1 });
    expect(rechargeCounts(events)).toEqual({ "recharge.succeeded": 1 });
  });
});

describe("a recharge and its webhook racing", () => {
  // Stripe made the PaymentIntent, but its answer to the account object is held back; meanwhile
  // Stripe's webhook (three deliveries) and the browser (three confirms) reach its PaymentIntent
  // object, which credits it. When the answer finally comes, the account finds the credit already
  // in the wallet and closes the recharge without handing it over again. A second credit (from
  // the hand-over, or a path that ignores the credit already made) would show in both ledgers.
  it("the webhook and the browser credit first while Stripe's answer is lost: one credit, recharge succeeded", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 10_000 });
    const key = `recharge:${a.accountId}:1`;
    // Applied and saved, then no answer to any try until the fault is lifted.
    const fault = await addFault({ kind: "hang", apply: true, replays: true, times: 100, method: "POST", path: "/v1/payment_intents", key });

    await debitOk(a.accountId, 600);
    await waitForRequest({ key });
    const [made] = await rechargePIs(a.customerId);
    expect(made?.status).toBe("succeeded");
    const pi = made?.id as string;
    const [succeeded] = await eventsFor("payment_intent.succeeded", pi);
    const answers = await Promise.all([
      deliver(succeeded?.id as string),
      deliver(succeeded?.id as string),
      deliver(succeeded?.id as string),
      confirm(a.token, pi),
      confirm(a.token, pi),
      confirm(a.token, pi),
    ]);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    // The browser's 200 means the credit is in the wallet, while the account object still waits for Stripe.
    expect((await walletCredits(a.accountId, pi)).map((l) => l.amount)).toEqual([2000]);
    expect((await rechargeRows(a.accountId))[0]).toMatchObject({ status: "pending", payment_intent_id: null });

    // Stripe's answer (the saved success, replayed) gets through from now on.
    await removeFault(fault);
    const rows = await settleRecharges(a.accountId, 15_000);
    expect(rows.map((r) => [r.n, r.status, r.payment_intent_id, r.handed])).toEqual([[1, "succeeded", pi, 0]]);
    expect(await stripeCredits(a.customerId, pi)).toEqual([-2000]);
    expect((await walletCredits(a.accountId, pi)).map((l) => l.amount)).toEqual([2000]);
    expect((await rechargePIs(a.customerId)).map((p) => p.id)).toEqual([pi]);
    expect(await walletOf(a.accountId)).toEqual({ available: 2400, held: 0 });
    const events = await waitForTypes(ofAccount(a.accountId), { "recharge.succeeded": 1 });
    expect(rechargeCounts(events)).toEqual({ "recharge.succeeded": 1 });
  });

  // The other order: the account object has the PaymentIntent and hands it over while the
  // webhook and the browser arrive; Stripe's credit write is slowed so that all of them are at
  // the PaymentIntent object together.
  it("the hand-over, the webhook and the browser at once: one credit", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 10_000 });
    const ledgerPath = `/v1/customers/${a.customerId}/balance_transactions`;
    await emu("/latency", { ms: 300, method: "POST", path: ledgerPath });
    try {
      await debitOk(a.accountId, 600);
      await waitForRequest({ method: "POST", path: ledgerPath });
      const rows = await rechargeRows(a.accountId);
      const pi = rows[0]?.payment_intent_id as string;
      expect(rows[0]?.status).toBe("processing");
      const [succeeded] = await eventsFor("payment_intent.succeeded", pi);
      const answers = await Promise.all([deliver(succeeded?.id as string), deliver(succeeded?.id as string), confirm(a.token, pi), confirm(a.token, pi)]);
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);

      const settled = await settleRecharges(a.accountId);
      expect(settled.map((r) => [r.n, r.status])).toEqual([[1, "succeeded"]]);
      expect(await stripeCredits(a.customerId, pi)).toEqual([-2000]);
      expect((await walletCredits(a.accountId, pi)).map((l) => l.amount)).toEqual([2000]);
      expect(await walletOf(a.accountId)).toEqual({ available: 2400, held: 0 });
    } finally {
      await emu("/latency", { ms: 0, method: "POST", path: ledgerPath });
    }
  });
});

describe("a crash between recording the recharge and learning Stripe's answer", () => {
  // The recharge is recorded (pending, its number fixed) in the debit's transaction; the object
  // dies while its creation is in flight, with Stripe having made the PaymentIntent (apply) or
  // not. The alarm sends the same request under the same key: Stripe answers the PaymentIntent it
  // made, or makes it now; either way one PaymentIntent tagged `{account}:1` and one credit. A
  // retry under a new number (or a new recharge) would make a second.
  it.each([
    { apply: true, what: "Stripe made the PaymentIntent" },
    { apply: false, what: "Stripe made nothing" },
  ])("$what: the alarm sends the same key, one PaymentIntent, one credit", async ({ apply }) => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 10_000 });
    const key = `recharge:${a.accountId}:1`;
    await addFault({ kind: "hang", apply, times: 1, method: "POST", path: "/v1/payment_intents", key });

    await debitOk(a.accountId, 600);
    await waitForRequest({ key });
    expect(await rechargePIs(a.customerId)).toHaveLength(apply ? 1 : 0);
    await abortAllDurableObjects();
    // Recorded and sent before the crash; what became of it is for the alarm to find out.
    expect((await rechargeRows(a.accountId))[0]).toMatchObject({ n: 1, sent: 1 });

    await accountAlarm(a.accountId);
    const rows = await settleRecharges(a.accountId, 15_000);
    expect(rows.map((r) => [r.n, r.status])).toEqual([[1, "succeeded"]]);

    const made = await rechargePIs(a.customerId);
    expect(made.map((pi) => [pi.id, pi.metadata.recharge, pi.status])).toEqual([[rows[0]?.payment_intent_id, tagOf(a.accountId, 1), "succeeded"]]);
    const requests = await rechargeRequests(a.accountId);
    expect(new Set(requests.map((r) => r.idempotency_key))).toEqual(new Set([key]));
    expect(requests.filter((r) => r.method === "POST").length).toBeGreaterThanOrEqual(2);
    expect(await stripeCredits(a.customerId, made[0]?.id as string)).toEqual([-2000]);
    expect(await walletOf(a.accountId)).toEqual({ available: 2400, held: 0 });
  });
});

describe("the monthly limit", () => {
  // Enabling it with available far below the threshold starts a chain: each credit leaves
  // available still below, so the next starts, until the next would pass the month's limit.
  // 3 × 1000 fit under 3500, a fourth would not. Raising the limit lets exactly one more through
  // (it was the limit, not something else, that stopped the chain); recharges dated in an earlier
  // month no longer count.
  it("a chain of recharges stops where the next would pass the limit, and none beyond", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 5000, amount: 1000, monthly_limit: 3500 });
    let rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => [r.n, r.status])).toEqual([
      [1, "succeeded"],
      [2, "succeeded"],
      [3, "succeeded"],
    ]);
    expect(await walletOf(a.accountId)).toEqual({ available: 4000, held: 0 });
    expect((await view(a.accountId)).this_month).toMatchObject({ recharged: 3000, remaining: 500 });

    // More writes below the threshold: nothing more is recorded or sent.
    await debitOk(a.accountId, 100);
    await debitOk(a.accountId, 100);
    expect(await settleRecharges(a.accountId)).toHaveLength(3);
    expect((await rechargePIs(a.customerId)).map((pi) => pi.metadata.recharge).sort()).toEqual([1, 2, 3].map((n) => tagOf(a.accountId, n)));

    // Room for one more.
    await configure(a.accountId, { enabled: true, threshold: 5000, amount: 1000, monthly_limit: 4000 });
    rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => r.status)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded"]);
    expect(await walletOf(a.accountId)).toEqual({ available: 4800, held: 0 });
    await debitOk(a.accountId, 100);
    expect(await settleRecharges(a.accountId)).toHaveLength(4);

    // The same four dated last month: this month has room again, and the next write uses it.
    await rewrite(a.accountId, "UPDATE recharges SET month = '1999-12'");
    expect((await view(a.accountId)).this_month).toMatchObject({ recharged: 0, remaining: 4000 });
    await debitOk(a.accountId, 100);
    rows = await settleRecharges(a.accountId);
    expect(rows.filter((r) => r.month !== "1999-12").map((r) => [r.n, r.status])).toEqual([[5, "succeeded"]]);
    expect(await walletOf(a.accountId)).toEqual({ available: 5600, held: 0 });
    expect(await rechargePIs(a.customerId)).toHaveLength(5);
  });

  // A recharge bigger than what is left of the limit never starts, even once: the rule is
  // "would pass", checked before the PaymentIntent is made, not after.
  it("a limit that allows none this month: the write below the threshold makes no PaymentIntent", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 2000 });
    await debitOk(a.accountId, 600);
    expect((await settleRecharges(a.accountId)).map((r) => r.status)).toEqual(["succeeded"]);
    await debitOk(a.accountId, 2000);
    await debitOk(a.accountId, 300);
    expect(await settleRecharges(a.accountId)).toHaveLength(1);
    expect(await rechargePIs(a.customerId)).toHaveLength(1);
    expect(await walletOf(a.accountId)).toEqual({ available: 100, held: 0 });
    expect((await view(a.accountId)).this_month).toMatchObject({ recharged: 2000, remaining: 0 });
  });
});
