// Guarantees that hold on paths the happy-path tests never walk: an acknowledged webhook is a
// promise kept through failing reads and a full queue; "no ledger entry" is only ever said after
// a complete search; every path that records a credit schedules its follow-up; refused
// reversals never bend the arithmetic; one attempt at a time, even for an operator's retry; a
// mark never outlives a credit Stripe refused. Each test here fails without the rule it names.

import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Inspection } from "../src/credit/contract.js";
import type { PaymentIntentObject } from "../src/objects/payment-intent/object.js";
import { TEST_BINDINGS } from "./bindings.js";
import {
  addFault,
  alarmOf,
  answerOf,
  call,
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  drainAlarms,
  emu,
  json,
  lastEvent,
  ledgerAmounts,
  ledgerFor,
  legacyCredit,
  markingOn,
  newAccountId,
  operatorEntry,
  paidTopUp,
  piObject,
  removeFault,
  settledCredit,
  stripePaymentIntent,
  stripeRequests,
  tokenFor,
  topUpMetadata,
  waitForObject,
  waitForRequest,
  type Answer,
  refuseCreditOnce,
} from "./helpers.js";

const operatorHeaders = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

/** The payment_intent.succeeded notice the object keeps until it is acted on, if any. */
async function noticeOf(paymentIntentId: string): Promise<string | null> {
  return runInDurableObject(piObject(paymentIntentId), (_instance: PaymentIntentObject, state) => {
    const row = state.storage.sql.exec<{ payment_intent_id: string }>("SELECT payment_intent_id FROM notice").toArray()[0];
    return row?.payment_intent_id ?? null;
  });
}

/** A top-up, paid and credited through a browser's confirm. */
async function creditedTopUp(amount: number) {
  const top = await paidTopUp(amount);
  expect((await answerOf(await confirm(top.token, top.pi.id))).status).toBe(200);
  return top;
}

/** Runs `fn` while every read of the PI is slow (150 ms) and then fails with a 500; both undone after. */
async function whileReadsFail(paymentIntentId: string, fn: () => Promise<void>): Promise<void> {
  const path = `/v1/payment_intents/${paymentIntentId}`;
  await emu("/latency", { ms: 150, method: "GET", path });
  const readFault = await addFault({ kind: "error_500", saved: false, method: "GET", path, times: 100_000 });
  try {
    await fn();
  } finally {
    await removeFault(readFault);
    await emu("/latency", { ms: 0, method: "GET", path });
  }
}

describe("an acknowledged webhook is a promise", () => {
  // The webhook's alarm reads the PI too only while the object marks what it credits (an older
  // server may be crediting the same PI): then it fails with the browsers. Unmarked, the signed
  // event stands in for the read, and the webhook credits while every browser's read fails (next).
  it("150 browsers fail to read the PI, the webhook is answered 200, no browser comes back: credited once", async () => {
    const { customer, pi, token } = await paidTopUp(1500);
    await markingOn(pi.id);
    await whileReadsFail(pi.id, async () => {
      const browsers = Array.from({ length: 150 }, () => confirm(token, pi.id).then(answerOf));
      await new Promise((r) => setTimeout(r, 100));
      expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
      // The webhook's alarm runs while the browsers' attempt is failing and the queue is full.
      await runDurableObjectAlarm(piObject(pi.id));
      const answers: Answer[] = await Promise.all(browsers);
      expect(answers).toHaveLength(150);
      expect(answers.filter((a) => a.status === 200)).toEqual([]);
      expect(new Set(answers.map((a) => a.code))).toEqual(new Set(["stripe_unavailable", "rate_limited"]));
      // Nothing is credited yet, and the promise is still kept: the notice is there to act on.
      // (Its alarm may be running at this very moment, so the notice is what is checked.)
      expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
      expect(await noticeOf(pi.id)).toBe(pi.id);
    });
    // Only the object's own alarm is left to finish it.
    const done = await waitForObject(pi.id, settledCredit);
    expect(done.record?.credited_by).toBe("webhook");
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1500]);
  });

  it("browsers fail to read the PI, and nothing marks: the webhook credits from its event meanwhile, and a browser coming back is answered from the record", async () => {
    const { customer, pi, token } = await paidTopUp(1400);
    await whileReadsFail(pi.id, async () => {
      const browsers = Array.from({ length: 20 }, () => confirm(token, pi.id).then(answerOf));
      await new Promise((r) => setTimeout(r, 100));
      expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
      const answers: Answer[] = await Promise.all(browsers);
      expect(answers.filter((a) => a.status === 200)).toEqual([]);
      // The notice's alarm waits for the browsers' attempt, then credits with the read still failing.
      // Waited for to its end (the wallet told): a browser arriving while it still runs joins it,
      // and is answered "credited" by the attempt that credited, not from the record.
      const done = await waitForObject(pi.id, (i) => settledCredit(i) && i.attempt_started_at === null && i.wallet_pending.length === 0);
      expect(done.record).toMatchObject({ credited_by: "webhook", mark_state: "off" });
      expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1400]);
      expect(await answerOf(await confirm(token, pi.id))).toMatchObject({ status: 200, code: "already_credited", txId: done.record?.balance_transaction_id });
    });
  });
});

describe("the ledger search is complete or it says it could not look", () => {
  it("an unknown credit outcome, 2,100 newer ledger entries and the key pruned: found, not written again", async () => {
    const { customer, pi, token } = await paidTopUp(1200);
    // The credit is applied, and every answer to it (the SDK's retries too) is lost.
    const drop = await addFault({ kind: "drop", replays: true, times: 3, method: "POST", path: `/v1/customers/${customer.id}/balance_transactions` });
    const first = await answerOf(await confirm(token, pi.id));
    await removeFault(drop);
    expect(first.status).toBe(503);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1200]);

    // Days later: the ledger has grown by more than twenty pages and Stripe forgot the key.
    await emu(`/customers/${customer.id}/balance_transactions/pad`, { count: 2100 });
    await emu("/idempotency/expire", { key: `credit-tx:${pi.id}*` });

    const done = await waitForObject(pi.id, settledCredit, 30_000);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1200]);
    expect(done.record?.credited_by).not.toBeNull();
    expect((await stripeRequests({ key: `credit-tx:${pi.id}*`, method: "POST" })).every((r) => r.idempotency_key === `credit-tx:${pi.id}`)).toBe(true);
  }, 60_000);
});

describe("every path that records a credit schedules its follow-up", () => {
  it("a refund that arrives before a credited-elsewhere PI is adopted is reversed once it is adopted", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1000, metadata: { ...topUpMetadata(accountId), credited: "true" } });
    await legacyCredit(customer.id, pi.id, 1000);
    await emu(`/payment_intents/${pi.id}/refund`, { amount: 400 });
    expect((await deliver(await lastEvent("charge.refunded", pi.id))).status).toBe(200);
    await drainAlarms(pi.id);

    const res = await confirm(await tokenFor(accountId), pi.id);
    expect((await json<{ status: string }>(res)).status).toBe("already_credited");
    const done = await waitForObject(pi.id, (i) => i.adjustments.length > 0 && i.adjustments.every((a) => a.state === "done"));
    expect(done.amounts).toEqual({ credited: 1000, reversed: 400, net: 600 });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1000, 400]);
  });
});

describe("refused reversals never bend the arithmetic", () => {
  it("a dispute debit Stripe refused is not restored when the dispute is won", async () => {
    const { customer, pi } = await creditedTopUp(1000);
    const refuse = await addFault({
      kind: "error_400",
      method: "POST",
      path: `/v1/customers/${customer.id}/balance_transactions`,
      key: `credit-adjust:${pi.id}:dispute*`,
      times: 1,
    });
    const { id: disputeId } = await emu<{ id: string }>(`/payment_intents/${pi.id}/dispute`, {});
    await deliver(await lastEvent("charge.dispute.created", pi.id));
    await waitForObject(pi.id, (i) => i.adjustments.some((a) => a.state === "needs_attention"));
    await removeFault(refuse);

    await emu(`/disputes/${disputeId}/close`, { status: "won" });
    await deliver(await lastEvent("charge.dispute.closed", pi.id));
    await drainAlarms(pi.id);
    const now = await piObject(pi.id).inspect();
    expect(now.adjustments.map((a) => [a.operation, a.state])).toEqual([[`dispute:${disputeId}`, "needs_attention"]]);
    expect(now.amounts).toEqual({ credited: 1000, reversed: 0, net: 1000 });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1000]);
  });

  it("a restoration Stripe refused makes no room for a refund; an operator's retry writes it, then the refund", async () => {
    const { customer, pi } = await creditedTopUp(1000);
    const { id: disputeId } = await emu<{ id: string }>(`/payment_intents/${pi.id}/dispute`, {});
    await deliver(await lastEvent("charge.dispute.created", pi.id));
    await waitForObject(pi.id, (i) => i.adjustments.some((a) => a.kind === "dispute" && a.state === "done"));

    const refuse = await addFault({
      kind: "error_400",
      method: "POST",
      path: `/v1/customers/${customer.id}/balance_transactions`,
      key: `credit-adjust:${pi.id}:restore*`,
      times: 1,
    });
    await emu(`/disputes/${disputeId}/close`, { status: "won" });
    await deliver(await lastEvent("charge.dispute.closed", pi.id));
    await waitForObject(pi.id, (i) => i.adjustments.some((a) => a.kind === "restore" && a.state === "needs_attention"));
    await removeFault(refuse);

    // The customer is refunded in full: nothing may be taken while the restoration is not written.
    await emu(`/payment_intents/${pi.id}/refund`, {});
    await deliver(await lastEvent("charge.refunded", pi.id));
    await drainAlarms(pi.id);
    let now: Inspection = await piObject(pi.id).inspect();
    expect(now.amounts).toEqual({ credited: 1000, reversed: 1000, net: 0 });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1000, 1000]);
    expect(now.adjustments.some((a) => a.kind === "refund")).toBe(false);

    // Listed for an operator while the restoration needs one.
    expect((await operatorEntry(pi.id))?.state).toBe("reversal_needs_attention");

    const retry = await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: operatorHeaders });
    expect(retry.status).toBe(200);
    now = await waitForObject(pi.id, (i) => settledCredit(i) && i.adjustments.some((a) => a.kind === "refund" && a.state === "done"));
    expect(now.amounts).toEqual({ credited: 1000, reversed: 1000, net: 0 });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1000, 1000, -1000, 1000]);
    // The retry looked at the ledger before writing under a new key.
    expect((await stripeRequests({ key: `credit-adjust:${pi.id}:restore*`, method: "POST" })).map((r) => r.idempotency_key)).toEqual([
      `credit-adjust:${pi.id}:restore:${disputeId}`,
      `credit-adjust:${pi.id}:restore:${disputeId}:2`,
    ]);
  });
});

describe("one attempt at a time", () => {
  it("an attempt that throws leaves the alarm armed, and the credit finishes once the cause is gone", async () => {
    const { customer, pi, token } = await paidTopUp(900);
    // The credit write fails until the fault is removed below, so no alarm the platform runs on
    // its own in between can finish the credit before the throwing instance gets its turn.
    const fail = await addFault({ kind: "error_500", saved: false, method: "POST", path: `/v1/customers/${customer.id}/balance_transactions`, times: 1000 });
    expect((await answerOf(await confirm(token, pi.id))).status).toBe(503);

    // A fresh instance whose Stripe client cannot even be built: the attempt throws.
    await evictDurableObject(piObject(pi.id));
    await runInDurableObject(piObject(pi.id), (instance: PaymentIntentObject) => {
      Object.assign(instance, { env: { ...env, STRIPE_API_BASE: "not a url" } });
    });
    expect(await runDurableObjectAlarm(piObject(pi.id))).toBe(true);
    expect(await alarmOf(pi.id)).not.toBeNull();
    expect((await piObject(pi.id).inspect()).record?.state).toBe("verified");
    await removeFault(fail);

    await evictDurableObject(piObject(pi.id));
    await waitForObject(pi.id, settledCredit);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-900]);
  });

  // The credit is refused once; a slow call keeps the attempt running when the operator presses
  // retry: the mark sent alongside the credit where the object marks, else the credit write itself.
  it.each([
    { marking: true, slow: (pi: string) => `/v1/payment_intents/${pi}` },
    { marking: false, slow: (_pi: string, customer: string) => `/v1/customers/${customer}/balance_transactions` },
  ])("an operator's retry waits for the attempt in flight instead of changing its state under it (marking: $marking)", async ({ marking, slow }) => {
    const { customer, pi, token } = await paidTopUp(700);
    if (marking) await markingOn(pi.id);
    const refuse = await addFault({
      kind: "error_400",
      method: "POST",
      path: `/v1/customers/${customer.id}/balance_transactions`,
      key: `credit-tx:${pi.id}`,
      times: 1,
    });
    const slowPath = slow(pi.id, customer.id);
    await emu("/latency", { ms: 400, method: "POST", path: slowPath });
    try {
      const browser = confirm(token, pi.id).then(answerOf);
      await waitForRequest({ key: marking ? `credit-mark:${pi.id}` : `credit-tx:${pi.id}` });
      const retry = call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: operatorHeaders });
      expect((await browser).code).toBe("credit_needs_attention");
      expect((await retry).status).toBe(200);
    } finally {
      await removeFault(refuse);
      await emu("/latency", { ms: 0, method: "POST", path: slowPath });
    }
    const done = await waitForObject(pi.id, settledCredit);
    expect(done.record?.credited_by).toBe("operator");
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-700]);
    // Marked again by the retry after the refusal took the first mark back; or never marked.
    expect((await stripePaymentIntent(pi.id)).metadata.credited).toBe(marking ? "true" : undefined);
    expect(done.record?.mark_state).toBe(marking ? "done" : "off");
  });
});

describe("the mark never outlives a refused credit", () => {
  // Marks are sent only while MARK_CREDITED is on (an older server runs beside this one).
  it("Stripe refuses the credit: the PI is unmarked and the record needs an operator", async () => {
    const { customer, pi, token } = await paidTopUp(650);
    await markingOn(pi.id);
    const refuse = await refuseCreditOnce(customer.id, pi.id);
    const answer = await answerOf(await confirm(token, pi.id));
    await removeFault(refuse);
    expect(answer).toMatchObject({ status: 409, code: "credit_needs_attention" });
    expect((await stripePaymentIntent(pi.id)).metadata.credited ?? "").toBe("");
    const { record } = await piObject(pi.id).inspect();
    expect(record).toMatchObject({ state: "needs_attention", mark_state: "withdrawn" });
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
  });

  it("the withdrawal fails: retried from the alarm until the PI is unmarked", async () => {
    const { customer, pi, token } = await paidTopUp(660);
    await markingOn(pi.id);
    const refuse = await refuseCreditOnce(customer.id, pi.id);
    const unmark = await addFault({
      kind: "error_500",
      saved: false,
      method: "POST",
      path: `/v1/payment_intents/${pi.id}`,
      key: `credit-unmark:${pi.id}*`,
      // Outlasts any retry the platform's own alarm makes before the checks below.
      times: 30,
    });
    expect((await answerOf(await confirm(token, pi.id))).code).toBe("credit_needs_attention");
    await removeFault(refuse);
    expect((await stripePaymentIntent(pi.id)).metadata.credited).toBe("true");
    expect((await piObject(pi.id).inspect()).record?.mark_state).toBe("withdrawing");
    expect(await alarmOf(pi.id)).not.toBeNull();
    await removeFault(unmark);
    await waitForObject(pi.id, (i) => i.record?.mark_state === "withdrawn");
    expect((await stripePaymentIntent(pi.id)).metadata.credited ?? "").toBe("");
  });

  it("Stripe refuses the credit of a PI that was never marked: nothing is withdrawn, whatever the alarm runs", async () => {
    const { customer, pi, token } = await paidTopUp(670);
    const refuse = await refuseCreditOnce(customer.id, pi.id);
    const answer = await answerOf(await confirm(token, pi.id));
    await removeFault(refuse);
    expect(answer).toMatchObject({ status: 409, code: "credit_needs_attention" });
    const { record } = await piObject(pi.id).inspect();
    expect(record).toMatchObject({ state: "needs_attention", mark_state: "off", mark_attempts: 0 });
    await drainAlarms(pi.id);
    expect((await piObject(pi.id).inspect()).record).toMatchObject({ state: "needs_attention", mark_state: "off" });
    expect(await stripeRequests({ key: `credit-{mark,unmark}:${pi.id}*` })).toEqual([]);
    expect((await stripePaymentIntent(pi.id)).metadata.credited).toBeUndefined();
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
  });
});

describe("an operator's retry assesses a stored refusal again", () => {
  it("a webhook for an older server's top-up is refused while the setting is off; after it is set, a retry credits it", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1800, metadata: { account_id: accountId, source: "old-server" } });
    await deliver(await lastEvent("payment_intent.succeeded", pi.id));
    await waitForObject(pi.id, (i) => i.record?.state === "not_creditable");
    expect((await piObject(pi.id).inspect()).record?.reason).toBe("not_a_top_up");

    // The operator admits the older server's top-ups (in this object's memory only: bindings
    // are fixed for the whole run), then retries.
    await runInDurableObject(piObject(pi.id), (instance: PaymentIntentObject) => {
      Object.assign(instance, {
        env: { ...env, LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: String(Math.floor(Date.now() / 1000) + 3600) },
      });
    });
    const retry = await json<{ result: { ok: boolean; status?: string } }>(
      await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: operatorHeaders }),
    );
    expect(retry.result).toMatchObject({ ok: true, status: "credited" });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1800]);
  });
});
