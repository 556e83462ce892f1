// Attacks on the exactly-once guarantees from outside the protocol's own tests: strangers and
// odd account ids, payments that are not top-ups, floods on one PaymentIntent with a slow
// Stripe, crashes at the awaits around a refused credit and an operator's retry, a Stripe that
// fails on every retry and then recovers, reversals in odd orders, and bad input on every route.
// Each test asserts the README's invariants (I1–I5) or its HTTP contract (the README's HTTP API).

import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { PaymentIntentObject } from "../src/objects/payment-intent/object.js";
import { TEST_BINDINGS } from "./bindings.js";
import {
  addFault,
  alarmOf,
  answerOf,
  authed,
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
  markingOn,
  newAccountId,
  operatorEntry,
  paidTopUp,
  payWithTestCard,
  piObject,
  postSigned,
  removeFault,
  settledCredit,
  slowStripe,
  stripePaymentIntent,
  stripeRequests,
  tokenFor,
  topUp,
  topUpMetadata,
  waitForObject,
  waitForRequest,
  type Answer,
} from "./helpers.js";

const operatorHeaders = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

/** A logged request's parameters: none for one refused before its body was read (rate-limited, say, by another test's fault). */
const paramsOf = (r: { params: Record<string, unknown> | null }): Record<string, unknown> => r.params ?? {};
const ledgerPath = (customer: string) => `/v1/customers/${customer}/balance_transactions`;

/** Net credit held for `pi` on the customer's ledger (positive = credit). */
async function netCredit(customerId: string, pi: string): Promise<number> {
  return (await ledgerAmounts(customerId, pi)).reduce((n, a) => n - a, 0);
}

// ---- strangers ---------------------------------------------------------------------------

describe("a stranger confirming someone's PaymentIntent", () => {
  it("before the credit: 404, nothing recorded; the owner then gets one credit", async () => {
    const { customer, pi, token } = await paidTopUp(1100);
    const stranger = newAccountId("stranger");
    await createCustomer(stranger);
    const strangerToken = await tokenFor(stranger);
    const answers = await Promise.all(Array.from({ length: 10 }, async () => answerOf(await confirm(strangerToken, pi.id))));
    expect(answers.map((a) => `${a.status} ${a.code}`)).toEqual(Array(10).fill("404 payment_intent_not_found"));
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect(await alarmOf(pi.id)).toBeNull();
    const owner = await answerOf(await confirm(token, pi.id));
    expect(owner).toMatchObject({ status: 200, code: "credited" });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1100]);
  });

  it("during the credit (a slow Stripe): the stranger joins and is told 404, the owner is credited once", async () => {
    const { customer, pi, token } = await paidTopUp(1200);
    const stranger = newAccountId("stranger");
    await createCustomer(stranger);
    const strangerToken = await tokenFor(stranger);
    await slowStripe(pi.id, customer.id, 300);
    const ownerCall = confirm(token, pi.id);
    await waitForRequest({ path: `/v1/payment_intents/${pi.id}` });
    const strangers = await Promise.all(Array.from({ length: 20 }, async () => answerOf(await confirm(strangerToken, pi.id))));
    const owner = await answerOf(await ownerCall);
    await slowStripe(pi.id, customer.id, 0);
    expect(strangers.every((a) => a.status === 404 && a.code === "payment_intent_not_found" && a.txId === null)).toBe(true);
    expect(owner).toMatchObject({ status: 200, code: "credited" });
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1200]);
  });

  it("after the credit: 404 with no Stripe call; an account with no Stripe customer also 404", async () => {
    const { customer, pi, token } = await paidTopUp(1300);
    expect((await confirm(token, pi.id)).status).toBe(200);
    const stranger = newAccountId("stranger");
    await createCustomer(stranger);
    const before = (await stripeRequests({ path: `/v1/payment_intents/${pi.id}**` })).length;
    const a = await answerOf(await confirm(await tokenFor(stranger), pi.id));
    const b = await answerOf(await confirm(await tokenFor(newAccountId("nocustomer")), pi.id));
    expect([a.status, a.code, a.txId]).toEqual([404, "payment_intent_not_found", null]);
    expect([b.status, b.code, b.txId]).toEqual([404, "payment_intent_not_found", null]);
    expect((await stripeRequests({ path: `/v1/payment_intents/${pi.id}**` })).length).toBe(before);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1300]);
  });
});

describe("odd account ids in tokens", () => {
  // ':' '|' '@' '.' '-' are allowed in an account id; each must get its own customer, its own
  // top-ups and its own credit, and no two accounts may collide on a key or a limiter bucket.
  const ids = ["a:b", "a|b", "u@example.com", "a.b-c_d", `m${"x".repeat(127)}`];
  it.each(ids)("account %s: top-up, pay, confirm → credited once, to its own customer", async (raw) => {
    const accountId =
      raw.length >= 128
        ? raw.slice(0, 128)
        : `${raw}${newAccountId("")
            .replace(/[^A-Za-z0-9]/g, "")
            .slice(0, 8)}`;
    const token = await tokenFor(accountId);
    const created = await topUp(token, { amount: 900, currency: "usd" });
    expect(created.status).toBe(201);
    const { payment_intent_id: pi } = await json<{ payment_intent_id: string }>(created);
    await payWithTestCard(pi);
    const customer = (await stripePaymentIntent(pi)) as unknown as { customer: string; metadata: Record<string, string> };
    expect(customer.metadata.account_id).toBe(accountId);
    const answer = await answerOf(await confirm(token, pi));
    expect(answer).toMatchObject({ status: 200, code: "credited" });
    expect(await ledgerAmounts(customer.customer, pi)).toEqual([-900]);
    const balance = await json<{ balance: number }>(await authed(token, "/billing/balance"));
    expect(balance.balance).toBe(900);
  });

  it("account a with key x:k and account a:x with key k get two different PaymentIntents", async () => {
    const base = newAccountId("col").replace(/[^A-Za-z0-9]/g, "");
    const [t1, t2] = await Promise.all([tokenFor(base), tokenFor(`${base}:x`)]);
    const r1 = await json<{ payment_intent_id: string }>(await topUp(t1, { amount: 700, currency: "usd" }, "x:k"));
    const r2 = await json<{ payment_intent_id: string }>(await topUp(t2, { amount: 700, currency: "usd" }, "k"));
    expect(r1.payment_intent_id).toMatch(/^pi_/);
    expect(r2.payment_intent_id).toMatch(/^pi_/);
    expect(r1.payment_intent_id).not.toBe(r2.payment_intent_id);
  });

  it("a 129-character account id is refused as unauthenticated, never a 500", async () => {
    const res = await confirm(await tokenFor(`a${"b".repeat(128)}`), "pi_123");
    expect(res.status).toBe(401);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("unauthenticated");
  });
});

// ---- payments that are not top-ups ---------------------------------------------------------

describe("payments that are not top-ups are never credit (I2)", () => {
  it("the marker on a PI of another customer: the account the marker names gets 404 and no credit", async () => {
    const owner = newAccountId();
    const ownerCustomer = await createCustomer(owner);
    const payer = newAccountId("payer");
    const payerCustomer = await createCustomer(payer);
    // metadata names `owner`, but the payment is the payer's customer's.
    const pi = await createPaymentIntent({ customer: payerCustomer.id, amount: 1400, metadata: topUpMetadata(owner) });
    const a = await answerOf(await confirm(await tokenFor(owner), pi.id));
    expect([a.status, a.code]).toEqual([404, "payment_intent_not_found"]);
    expect(await ledgerFor(ownerCustomer.id, pi.id)).toEqual([]);
    expect((await piObject(pi.id).inspect()).record).toBeNull();
  });

  it("a live-mode PI with the marker: 422 livemode_mismatch for its owner, and the webhook records the refusal, no credit", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1500, livemode: true, metadata: topUpMetadata(accountId) });
    const token = await tokenFor(accountId);
    const res = await confirm(token, pi.id);
    const body = await json<{ error: { code: string; reason: string } }>(res);
    expect(res.status).toBe(422);
    expect(body.error).toMatchObject({ code: "payment_not_creditable", reason: "livemode_mismatch" });
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect((await postSigned("payment_intent.succeeded", { id: pi.id, object: "payment_intent", status: "succeeded" })).status).toBe(200);
    await drainAlarms(pi.id);
    const { record } = await piObject(pi.id).inspect();
    expect(record).toMatchObject({ state: "not_creditable", reason: "livemode_mismatch" });
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
    expect(await alarmOf(pi.id)).toBeNull();
  });

  it("a marked PI in eur: 422 currency_not_accepted; the webhook and an operator retry credit nothing", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1600, currency: "eur", metadata: topUpMetadata(accountId) });
    const token = await tokenFor(accountId);
    const body = await json<{ error: { code: string; reason: string } }>(await confirm(token, pi.id));
    expect(body.error).toMatchObject({ code: "payment_not_creditable", reason: "currency_not_accepted" });
    expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
    await drainAlarms(pi.id);
    const retry = await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: operatorHeaders });
    expect(retry.status).toBe(200);
    await drainAlarms(pi.id);
    expect((await piObject(pi.id).inspect()).record).toMatchObject({ state: "not_creditable", reason: "currency_not_accepted" });
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
  });

  it("a top-up whose metadata.account_id names another account, confirmed by its payer: credited to the payer's own customer only", async () => {
    const payer = newAccountId("payer");
    const payerCustomer = await createCustomer(payer);
    const other = newAccountId("other");
    const otherCustomer = await createCustomer(other);
    const pi = await createPaymentIntent({ customer: payerCustomer.id, amount: 1700, metadata: topUpMetadata(other) });
    const a = await answerOf(await confirm(await tokenFor(payer), pi.id));
    const b = await answerOf(await confirm(await tokenFor(other), pi.id));
    expect(a.status).toBe(200);
    expect([b.status, b.code]).toEqual([404, "payment_intent_not_found"]);
    expect(await ledgerAmounts(payerCustomer.id, pi.id)).toEqual([-1700]);
    expect(await ledgerFor(otherCustomer.id)).toEqual([]);
  });

  it("refund and dispute webhooks for a PI never credited (not a top-up): 200, no ledger entry, nothing armed", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1800, metadata: { account_id: accountId, purpose: "subscription" } });
    await emu(`/payment_intents/${pi.id}/refund`, { amount: 500 });
    expect((await deliver(await lastEvent("charge.refunded", pi.id))).status).toBe(200);
    const dispute = await emu<{ id: string }>(`/payment_intents/${pi.id}/dispute`, { amount: 1000 });
    expect((await deliver(await lastEvent("charge.dispute.created", pi.id))).status).toBe(200);
    await emu(`/disputes/${dispute.id}/close`, { status: "lost" });
    expect((await deliver(await lastEvent("charge.dispute.closed", pi.id))).status).toBe(200);
    await drainAlarms(pi.id);
    expect(await ledgerFor(customer.id)).toEqual([]);
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect(await alarmOf(pi.id)).toBeNull();
    const body = await json<{ error: { code: string; reason: string } }>(await confirm(await tokenFor(accountId), pi.id));
    expect(body.error).toMatchObject({ code: "payment_not_creditable", reason: "not_a_top_up" });
    expect(await ledgerFor(customer.id)).toEqual([]);
  });

  it("a signed payment_intent.succeeded for an unpaid PI: 200, nothing credited, the notice dropped; paid later, it is credited once", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 1900, status: "processing", metadata: topUpMetadata(accountId) });
    expect((await postSigned("payment_intent.succeeded", { id: pi.id, object: "payment_intent", status: "succeeded" })).status).toBe(200);
    await drainAlarms(pi.id);
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
    expect(await alarmOf(pi.id)).toBeNull();
    const token = await tokenFor(accountId);
    const early = await json<{ error: { code: string; payment_intent_status: string } }>(await confirm(token, pi.id));
    expect(early.error).toMatchObject({ code: "payment_not_succeeded", payment_intent_status: "processing" });
    await emu(`/payment_intents/${pi.id}/succeed`, {});
    expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-1900]);
  });
});

// ---- crashes around a refused credit and an operator's retry ------------------------------

describe("a crash at the awaits around a refused credit (the mark must not outlive it)", () => {
  // README step 5: "If Stripe refuses the credit, the mark is taken back (credit-unmark:{pi}:{n},
  // retried until done)"; the mark never outlives a refused credit.
  // The refusal records "withdrawing" in the same write as needs_attention, with an alarm armed,
  // even while the mark is still in flight: a crash there still leaves the withdrawal owed.
  // (Marks are sent only while MARK_CREDITED is on: these PIs' objects have it on.)
  it("the credit is refused while the mark (applied at Stripe) is still unanswered, and the object dies: the mark is still taken back", async () => {
    const { customer, pi, token } = await paidTopUp(2100);
    await markingOn(pi.id);
    // The mark is applied, then its answer hangs until the SDK gives up (800 ms); the credit is refused at once.
    const mark = await addFault({ kind: "hang", apply: true, method: "POST", path: `/v1/payment_intents/${pi.id}`, key: `credit-mark:${pi.id}*`, times: 1 });
    const refuse = await addFault({ kind: "error_400", method: "POST", path: ledgerPath(customer.id), key: `credit-tx:${pi.id}*`, times: 1 });
    const inFlight = confirm(token, pi.id).catch(() => null);
    // The refusal is recorded while the mark is still in flight: that is the await to crash at.
    await waitForRequest({ key: `credit-mark:${pi.id}` });
    // (Polled with inspect only: running the watchdog alarm here would let the attempt outlive the crash.)
    for (let i = 0; i < 100 && (await piObject(pi.id).inspect()).record?.state !== "needs_attention"; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await piObject(pi.id).inspect()).record).toMatchObject({ state: "needs_attention", mark_state: "withdrawing" });
    await abortAllDurableObjects();
    await inFlight;
    await removeFault(mark);
    await removeFault(refuse);
    expect((await stripePaymentIntent(pi.id)).metadata.credited).toBe("true");
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
    // Whatever runs now (alarms, a browser coming back), the mark must be withdrawn in the end.
    await drainAlarms(pi.id);
    expect((await answerOf(await confirm(token, pi.id))).code).toBe("credit_needs_attention");
    await drainAlarms(pi.id);
    expect((await stripePaymentIntent(pi.id)).metadata.credited ?? "").toBe("");
  });

  // Each withdrawal arms the next try before it is sent: a crash mid-call leaves it scheduled.
  it("the object dies while the withdrawal itself is in flight: the withdrawal is retried until done", async () => {
    const { customer, pi, token } = await paidTopUp(2200);
    await markingOn(pi.id);
    const refuse = await addFault({ kind: "error_400", method: "POST", path: ledgerPath(customer.id), key: `credit-tx:${pi.id}*`, times: 1 });
    // The unmark hangs with nothing applied (its key released), so the crash leaves the PI marked.
    const unmark = await addFault({ kind: "hang", method: "POST", path: `/v1/payment_intents/${pi.id}`, key: `credit-unmark:${pi.id}*`, times: 1 });
    const inFlight = confirm(token, pi.id).catch(() => null);
    await waitForRequest({ key: `credit-unmark:${pi.id}*` });
    await abortAllDurableObjects();
    await inFlight;
    await removeFault(refuse);
    await removeFault(unmark);
    expect((await stripePaymentIntent(pi.id)).metadata.credited).toBe("true");
    const { record } = await piObject(pi.id).inspect();
    expect(record).toMatchObject({ state: "needs_attention", mark_state: "withdrawing" });
    // "Retried until done": an alarm must be armed for it, and running alarms must finish it.
    await drainAlarms(pi.id);
    expect((await stripePaymentIntent(pi.id)).metadata.credited ?? "").toBe("");
  });
});

describe("a crash during an operator's retry of a refused credit", () => {
  // An operator's retry arms the watchdog before it writes under credit-tx:{pi}:2, as the
  // first attempt does before its first write.
  it("the retried credit is applied at Stripe and the object dies before the answer: the object finishes on its own (watchdog before the write)", async () => {
    const { customer, pi, token } = await paidTopUp(2300);
    const refuse = await addFault({ kind: "error_400", method: "POST", path: ledgerPath(customer.id), key: `credit-tx:${pi.id}*`, times: 1 });
    expect((await answerOf(await confirm(token, pi.id))).code).toBe("credit_needs_attention");
    await removeFault(refuse);
    await waitForObject(pi.id, (i) => i.record?.state === "needs_attention" && i.record.mark_state === "off");
    const held = await addFault({ kind: "hang", apply: true, method: "POST", path: ledgerPath(customer.id), key: `credit-tx:${pi.id}:2`, times: 1 });
    const retry = call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: operatorHeaders }).catch(() => null);
    await waitForRequest({ key: `credit-tx:${pi.id}:2` });
    await abortAllDurableObjects();
    await retry;
    await removeFault(held);
    // The credit exists at Stripe; the record says it was being written.
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-2300]);
    expect((await piObject(pi.id).inspect()).record?.state).toBe("verified");
    // I4 holds only through the registry entry left from the refusal:
    expect(await operatorEntry(pi.id)).not.toBeNull();
    // README step 4: a watchdog alarm is armed before any write, so the object finishes with no caller.
    expect(await alarmOf(pi.id)).not.toBeNull();
    await waitForObject(pi.id, settledCredit, 5000);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-2300]);
  });
});

// ---- floods and a Stripe that fails, then recovers ------------------------------------------

describe("a flood on one PaymentIntent with a slow Stripe", () => {
  it("50 confirms, 5 webhook deliveries and 3 operator retries at once: one credit, consistent answers", async () => {
    const amount = 2400;
    const { customer, pi, token } = await paidTopUp(amount);
    await slowStripe(pi.id, customer.id, 200);
    const event = await lastEvent("payment_intent.succeeded", pi.id);
    const confirms = Array.from({ length: 50 }, async () => answerOf(await confirm(token, pi.id)));
    const hooks = Array.from({ length: 5 }, async () => (await deliver(event)).status);
    const retries = Array.from({ length: 3 }, async (_, n) => {
      await new Promise((r) => setTimeout(r, 100 + 150 * n));
      return (await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: operatorHeaders })).status;
    });
    const [answers, hookStatuses, retryStatuses] = await Promise.all([Promise.all(confirms), Promise.all(hooks), Promise.all(retries)]);
    await slowStripe(pi.id, customer.id, 0);
    await waitForObject(pi.id, settledCredit);
    const ledger = await ledgerFor(customer.id, pi.id);
    expect(ledger.map((t) => t.amount)).toEqual([-amount]);
    expect(hookStatuses).toEqual([200, 200, 200, 200, 200]);
    expect(retryStatuses.every((s) => s === 200 || s === 404)).toBe(true);
    for (const a of answers) {
      expect([200, 503, 429]).toContain(a.status);
      if (a.status === 200) expect(a.txId).toBe(ledger[0]?.id);
    }
    const after = await answerOf(await confirm(token, pi.id));
    expect(after).toMatchObject({ status: 200, code: "already_credited", txId: ledger[0]?.id });
  });
});

describe("Stripe failing on every retry, then recovering", () => {
  const cases: [string, (pi: string, customer: string) => Record<string, unknown>][] = [
    [
      "unsaved 500s on every credit write",
      (pi, customer) => ({ kind: "error_500", saved: false, method: "POST", path: ledgerPath(customer), key: `credit-tx:${pi}*`, times: 10_000 }),
    ],
    [
      "saved 500s (replayed) on every credit key",
      (pi, customer) => ({ kind: "error_500", method: "POST", path: ledgerPath(customer), key: `credit-tx:${pi}*`, times: 10_000 }),
    ],
    [
      "applied, then dropped on every retry",
      (pi, customer) => ({ kind: "drop", replays: true, method: "POST", path: ledgerPath(customer), key: `credit-tx:${pi}*`, times: 10_000 }),
    ],
    ["a hang on every credit write", (pi, customer) => ({ kind: "hang", method: "POST", path: ledgerPath(customer), key: `credit-tx:${pi}*`, times: 10_000 })],
    [
      "every ledger read fails as well as every write",
      (pi, customer) => ({ kind: "error_500", saved: false, path: `${ledgerPath(customer)}**`, times: 10_000 }),
    ],
  ];
  // Four rounds of the SDK's three tries (a hang waits out the 800 ms timeout each time) take
  // about 25 s on their own: the project's 30 s would leave no room on a busy machine.
  it.each(cases)(
    "%s: only 503s meanwhile, something owns it, then one credit",
    async (_name, rule) => {
      const amount = 2500;
      const { customer, pi, token } = await paidTopUp(amount);
      const fault = await addFault(rule(pi.id, customer.id));
      const answers: Answer[] = [await answerOf(await confirm(token, pi.id))];
      for (let i = 0; i < 3; i++) {
        await runDurableObjectAlarm(piObject(pi.id));
        answers.push(await answerOf(await confirm(token, pi.id)));
      }
      const applied = (await ledgerFor(customer.id, pi.id)).length > 0;
      if (applied) {
        // Applied, then dropped: the ledger look finds it at the next try, whatever the key says.
        expect(answers[0]?.status).toBe(503);
        expect(answers.slice(1).every((a) => a.status === 200)).toBe(true);
      } else {
        expect(answers.map((a) => a.status)).toEqual([503, 503, 503, 503]);
        // I4: while it cannot finish, an alarm is armed and an operator can see it.
        expect(await alarmOf(pi.id)).not.toBeNull();
        expect((await operatorEntry(pi.id))?.state).toBe("verified");
      }
      await removeFault(fault);
      await waitForObject(pi.id, settledCredit, 20_000);
      const ledger = await ledgerFor(customer.id, pi.id);
      expect(ledger.map((t) => t.amount)).toEqual([-amount]);
      expect(await answerOf(await confirm(token, pi.id))).toMatchObject({ status: 200, txId: ledger[0]?.id });
      expect(await operatorEntry(pi.id)).toBeNull();
    },
    60_000,
  );

  // The webhook's credit reads the PI only while the object marks what it credits (an older
  // server may be crediting too); otherwise the signed event stands in for the read (below).
  it("the PI cannot be read for the webhook's notice for many alarms: the notice is kept, then credited once", async () => {
    const { customer, pi } = await paidTopUp(2600);
    await markingOn(pi.id);
    const fault = await addFault({ kind: "error_500", saved: false, method: "GET", path: `/v1/payment_intents/${pi.id}`, times: 10_000 });
    expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
    for (let i = 0; i < 5; i++) await runDurableObjectAlarm(piObject(pi.id));
    // The notice is kept: an alarm is armed again after each failed read (the platform may be
    // running one right now, during which none is scheduled: wait for it to re-arm).
    let armed: number | null = null;
    for (let i = 0; i < 100 && armed === null; i++) {
      armed = await alarmOf(pi.id);
      if (armed === null) await new Promise((r) => setTimeout(r, 50));
    }
    expect(armed).not.toBeNull();
    expect((await stripeRequests({ method: "GET", path: `/v1/payment_intents/${pi.id}` })).length).toBeGreaterThanOrEqual(3);
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
    await removeFault(fault);
    await waitForObject(pi.id, settledCredit, 20_000);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-2600]);
  });

  it("the PI cannot be read at all, and nothing marks: the webhook's notice credits it from the event, never reading it", async () => {
    const { customer, pi } = await paidTopUp(2700);
    const fault = await addFault({ kind: "error_500", saved: false, method: "GET", path: `/v1/payment_intents/${pi.id}`, times: 10_000 });
    try {
      expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
      const done = await waitForObject(pi.id, settledCredit);
      expect(done.record).toMatchObject({ state: "credited", credited_by: "webhook", mark_state: "off" });
      expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-2700]);
      expect(await stripeRequests({ method: "GET", path: `/v1/payment_intents/${pi.id}` })).toEqual([]);
    } finally {
      await removeFault(fault);
    }
  });
});

// ---- reversals in odd orders (I3) ----------------------------------------------------------

/** A credited top-up, settled. */
async function creditedTopUp(amount: number) {
  const top = await paidTopUp(amount);
  expect((await confirm(top.token, top.pi.id)).status).toBe(200);
  await waitForObject(top.pi.id, settledCredit);
  return top;
}

/** Every prefix of the PI's ledger entries (oldest first) keeps the net credit within [0, amount]. */
async function expectWithinBounds(customer: string, pi: string, amount: number): Promise<void> {
  let net = 0;
  for (const a of await ledgerAmounts(customer, pi)) {
    net -= a;
    expect(net).toBeGreaterThanOrEqual(0);
    expect(net).toBeLessThanOrEqual(amount);
  }
}

async function settleReversals(pi: string): Promise<void> {
  await drainAlarms(pi);
  await waitForObject(pi, settledCredit);
}

describe("refunds and disputes in odd orders", () => {
  it("a dispute won before its creation event is seen: nothing taken, nothing given, net = amount", async () => {
    const { customer, pi } = await creditedTopUp(3000);
    const dispute = await emu<{ id: string }>(`/payment_intents/${pi.id}/dispute`, {});
    await emu(`/disputes/${dispute.id}/close`, { status: "won" });
    expect((await deliver(await lastEvent("charge.dispute.closed", pi.id))).status).toBe(200);
    expect((await deliver(await lastEvent("charge.dispute.created", pi.id))).status).toBe(200);
    await settleReversals(pi.id);
    expect(await netCredit(customer.id, pi.id)).toBe(3000);
    await expectWithinBounds(customer.id, pi.id, 3000);
  });

  it("a full refund, then a dispute lost: net 0, never below 0", async () => {
    const { customer, pi } = await creditedTopUp(3100);
    await emu(`/payment_intents/${pi.id}/refund`, {});
    expect((await deliver(await lastEvent("charge.refunded", pi.id))).status).toBe(200);
    await settleReversals(pi.id);
    const dispute = await emu<{ id: string }>(`/payment_intents/${pi.id}/dispute`, {});
    expect((await deliver(await lastEvent("charge.dispute.created", pi.id))).status).toBe(200);
    await emu(`/disputes/${dispute.id}/close`, { status: "lost" });
    expect((await deliver(await lastEvent("charge.dispute.closed", pi.id))).status).toBe(200);
    await settleReversals(pi.id);
    expect(await netCredit(customer.id, pi.id)).toBe(0);
    await expectWithinBounds(customer.id, pi.id, 3100);
  });

  it("two disputes of 700 on a 1,000 credit, both lost: net 0, not −400", async () => {
    const { customer, pi } = await creditedTopUp(1000);
    const d1 = { id: "dp_attack1" + newAccountId("").replace(/[^A-Za-z0-9]/g, ""), amount: 700, status: "needs_response", payment_intent: pi.id };
    const d2 = { id: "dp_attack2" + newAccountId("").replace(/[^A-Za-z0-9]/g, ""), amount: 700, status: "needs_response", payment_intent: pi.id };
    expect((await postSigned("charge.dispute.created", d1)).status).toBe(200);
    expect((await postSigned("charge.dispute.created", d2)).status).toBe(200);
    expect((await postSigned("charge.dispute.closed", { ...d1, status: "lost" })).status).toBe(200);
    expect((await postSigned("charge.dispute.closed", { ...d2, status: "lost" })).status).toBe(200);
    await settleReversals(pi.id);
    expect(await netCredit(customer.id, pi.id)).toBe(0);
    await expectWithinBounds(customer.id, pi.id, 1000);
    // Then one of them reported won after all (a contradicting, late event): a closed dispute stays closed.
    expect((await postSigned("charge.dispute.closed", { ...d1, status: "won" })).status).toBe(200);
    await settleReversals(pi.id);
    expect(await netCredit(customer.id, pi.id)).toBe(0);
  });

  it("a refund delivered before the credit exists is taken back once the PI is credited", async () => {
    const { customer, pi, token } = await paidTopUp(3200);
    await emu(`/payment_intents/${pi.id}/refund`, { amount: 1200 });
    expect((await deliver(await lastEvent("charge.refunded", pi.id))).status).toBe(200);
    await drainAlarms(pi.id);
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
    expect((await confirm(token, pi.id)).status).toBe(200);
    await settleReversals(pi.id);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-3200, 1200]);
  });

  it("refund redelivered, duplicated and out of order (300 then 500 cumulative, delivered 500 first): 500 reversed in all", async () => {
    const { customer, pi } = await creditedTopUp(3300);
    await emu(`/payment_intents/${pi.id}/refund`, { amount: 300 });
    const first = await lastEvent("charge.refunded", pi.id);
    await emu(`/payment_intents/${pi.id}/refund`, { amount: 200 });
    const second = await lastEvent("charge.refunded", pi.id);
    for (const e of [second, first, second, first]) expect((await deliver(e)).status).toBe(200);
    await emu(`/events/${second}/duplicate`, {});
    await settleReversals(pi.id);
    expect(await netCredit(customer.id, pi.id)).toBe(2800);
    await expectWithinBounds(customer.id, pi.id, 3300);
  });

  it("REVERSE_ON_REFUND=false in the object: a refund and a dispute reach it and take nothing; nothing stays armed or listed", async () => {
    const { customer, pi } = await creditedTopUp(3400);
    await runInDurableObject(piObject(pi.id), (instance: PaymentIntentObject) => {
      Object.assign(instance, { env: { ...(instance as unknown as { env: object }).env, REVERSE_ON_REFUND: "false" } });
    });
    await emu(`/payment_intents/${pi.id}/refund`, { amount: 400 });
    expect((await deliver(await lastEvent("charge.refunded", pi.id))).status).toBe(200);
    await emu(`/payment_intents/${pi.id}/dispute`, { amount: 1000 });
    expect((await deliver(await lastEvent("charge.dispute.created", pi.id))).status).toBe(200);
    const seen = await piObject(pi.id).inspect();
    expect(seen.amount_refunded).toBe(400);
    await drainAlarms(pi.id);
    expect(await ledgerAmounts(customer.id, pi.id)).toEqual([-3400]);
    expect(await alarmOf(pi.id)).toBeNull();
    expect(await operatorEntry(pi.id)).toBeNull();
  });
});

// ---- bad input on every route --------------------------------------------------------------

describe("bad input on the other routes: a stable 4xx, never a 500, nothing changed", () => {
  interface BadCase {
    name: string;
    status: number;
    code: string;
    request: (f: { token: string; pi: string; otherTx: string }) => [string, RequestInit];
  }
  const post = (token: string, body: string, headers: Record<string, string> = {}): RequestInit => ({
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, ...headers },
    body,
  });
  const get = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });
  const op = (headers: Record<string, string> = operatorHeaders, method = "GET"): RequestInit => ({ method, headers });
  const cases: BadCase[] = [
    {
      name: "top-up: fractional amount",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 10.5, "currency": "usd"}')],
    },
    {
      name: "top-up: amount as a string",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": "1000", "currency": "usd"}')],
    },
    {
      name: "top-up: amount 1e21",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1e21, "currency": "usd"}')],
    },
    {
      name: "top-up: negative amount",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": -1000, "currency": "usd"}')],
    },
    {
      name: "top-up: upper-case currency",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "USD"}')],
    },
    {
      name: "top-up: a currency not accepted",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "eur"}')],
    },
    {
      name: "top-up: an extra field (metadata)",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "usd", "metadata": {"edge_credit": "top_up"}}')],
    },
    {
      name: "top-up: __proto__ field",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "usd", "__proto__": {"x": 1}}')],
    },
    {
      name: "top-up: an Idempotency-Key with a space",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "usd"}', { "idempotency-key": "a b" })],
    },
    {
      name: "top-up: a 101-character Idempotency-Key",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "usd"}', { "idempotency-key": "k".repeat(101) })],
    },
    {
      name: "top-up: text/plain",
      status: 415,
      code: "unsupported_media_type",
      request: ({ token }) => ["/billing/top_ups", post(token, '{"amount": 1000, "currency": "usd"}', { "content-type": "text/plain" })],
    },
    {
      name: "top-up: 2 KiB body",
      status: 413,
      code: "payload_too_large",
      request: ({ token }) => ["/billing/top_ups", post(token, JSON.stringify({ amount: 1000, currency: "usd", pad: "x".repeat(2048) }))],
    },
    {
      name: "top-up: invalid UTF-8",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/top_ups", { ...post(token, ""), body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }],
    },
    { name: "transactions: limit=0", status: 400, code: "invalid_request", request: ({ token }) => ["/billing/transactions?limit=0", get(token)] },
    { name: "transactions: limit=101", status: 400, code: "invalid_request", request: ({ token }) => ["/billing/transactions?limit=101", get(token)] },
    { name: "transactions: limit=abc", status: 400, code: "invalid_request", request: ({ token }) => ["/billing/transactions?limit=abc", get(token)] },
    { name: "transactions: limit=1.5", status: 400, code: "invalid_request", request: ({ token }) => ["/billing/transactions?limit=1.5", get(token)] },
    { name: "transactions: limit twice", status: 400, code: "invalid_request", request: ({ token }) => ["/billing/transactions?limit=1&limit=2", get(token)] },
    {
      name: "transactions: a cursor that is not an id",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/transactions?cursor=..%2F..%2Fx", get(token)],
    },
    {
      name: "transactions: another customer's cursor",
      status: 400,
      code: "invalid_request",
      request: ({ token, otherTx }) => [`/billing/transactions?cursor=${otherTx}`, get(token)],
    },
    {
      name: "transactions: an unknown cursor",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/transactions?cursor=cbtxn_doesnotexist", get(token)],
    },
    {
      name: "transactions: an unknown parameter",
      status: 400,
      code: "invalid_request",
      request: ({ token }) => ["/billing/transactions?customer=cus_x", get(token)],
    },
    { name: "operator: not a PI id", status: 400, code: "invalid_request", request: () => ["/operator/credits/ch_123", op()] },
    { name: "operator: a PI id with a dot", status: 400, code: "invalid_request", request: ({ pi }) => [`/operator/credits/${pi}.x`, op()] },
    {
      name: "operator: retry of a PI with no record",
      status: 404,
      code: "payment_intent_not_found",
      request: () => ["/operator/credits/pi_norecordhere123/retry", op(operatorHeaders, "POST")],
    },
    { name: "operator: a browser's token", status: 401, code: "unauthenticated", request: ({ token }) => ["/operator/credits", get(token)] },
    {
      name: "operator: Basic credentials",
      status: 401,
      code: "unauthenticated",
      request: () => ["/operator/credits", op({ authorization: `Basic ${btoa(`op:${TEST_BINDINGS.OPERATOR_TOKEN}`)}` })],
    },
    {
      name: "operator: the token with a suffix",
      status: 401,
      code: "unauthenticated",
      request: () => ["/operator/credits", op({ authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}x` })],
    },
    {
      name: "webhook: a signature header that is not one",
      status: 400,
      code: "invalid_signature",
      request: ({ pi }) => [
        "/stripe/webhook",
        {
          method: "POST",
          headers: { "stripe-signature": "t=abc,v1=", "content-type": "application/json" },
          body: JSON.stringify({ id: "evt_1", type: "payment_intent.succeeded", data: { object: { id: pi } } }),
        },
      ],
    },
    {
      name: "webhook: a signature from the future",
      status: 400,
      code: "invalid_signature",
      request: ({ pi }) => [
        "/stripe/webhook",
        {
          method: "POST",
          headers: { "stripe-signature": `t=${Math.floor(Date.now() / 1000) + 3600},v1=${"0".repeat(64)}` },
          body: JSON.stringify({ id: "evt_1", type: "payment_intent.succeeded", data: { object: { id: pi } } }),
        },
      ],
    },
    {
      name: "webhook: 300 KiB unsigned",
      status: 413,
      code: "payload_too_large",
      request: () => ["/stripe/webhook", { method: "POST", headers: { "stripe-signature": "t=1,v1=00" }, body: "x".repeat(300 * 1024) }],
    },
    { name: "an unknown route", status: 404, code: "not_found", request: ({ token }) => ["/billing/nothing_here", get(token)] },
  ];

  it.each(cases)("$name → $status $code", async ({ request, status, code }) => {
    const { customer, pi, token } = await paidTopUp(800);
    const other = await creditedTopUp(600);
    const otherTx = (await ledgerFor(other.customer.id, other.pi.id))[0]?.id as string;
    const [path, init] = request({ token, pi: pi.id, otherTx });
    const res = await call(path, init);
    const body = await json<{ error?: { code: string; message: string } }>(res);
    expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
    expect(body.error?.message.length).toBeGreaterThan(0);
    // Nothing changed: no record, no credit, nothing armed for this PI, no top-up created for the account.
    expect((await piObject(pi.id).inspect()).record).toBeNull();
    expect(await alarmOf(pi.id)).toBeNull();
    expect(await ledgerFor(customer.id)).toEqual([]);
    expect((await stripeRequests({ method: "POST", path: "/v1/payment_intents" })).filter((r) => paramsOf(r).customer === customer.id)).toEqual([]);
    // And the PI still credits normally.
    expect((await answerOf(await confirm(token, pi.id))).status).toBe(200);
  });
});
