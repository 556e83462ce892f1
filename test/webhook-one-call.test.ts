// A payment_intent.succeeded webhook credits in one Stripe call. Its signed event carries the
// PaymentIntent as it stood at the success, and what decides a credit cannot change after it, so
// the object takes the PI from the event instead of reading it (src/objects/payment-intent/
// protocol.ts #current): the credit write is the only call. It reads the PI all the same while it
// marks what it credits (MARK_CREDITED, on while an older server runs beside this one) or admits
// the older server's top-ups (LEGACY_TOPUP_METADATA): the older server sets metadata.credited
// after the event, so the event may be stale about it. An event whose PI does not parse is read.
//
// Counts are of the emulator's requests about the test's own PaymentIntent and customer, taken
// once the account's wallet is open (opening it reads the customer's ledger once, a call of the
// wallet's and not of the credit's).

import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TEST_BINDINGS } from "./bindings.js";
import {
  answerOf,
  balanceOf,
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  eventsFor,
  expectCreditedOnce,
  ledgerFor,
  legacyCredit,
  markingOn,
  markingOnAcrossRestarts,
  newAccountId,
  paidTopUp,
  piObject,
  postSigned,
  settle,
  settledCredit,
  slowStripe,
  stripePaymentIntent,
  stripeTraffic,
  tokenFor,
  topUpMetadata,
  waitForObject,
  type Answer,
  type Customer,
} from "./helpers.js";
import { allLines } from "./wallet/helpers.js";

async function succeededEvent(paymentIntentId: string): Promise<string> {
  const [event] = await eventsFor("payment_intent.succeeded", paymentIntentId);
  if (!event) throw new Error(`no payment_intent.succeeded for ${paymentIntentId}`);
  return event.id;
}

/** A paid top-up whose account's wallet is already open, and the Stripe requests made so far about its PI and customer. */
async function paidWithOpenWallet(amount: number) {
  const paid = await paidTopUp(amount);
  expect(await balanceOf(paid.token)).toEqual({ balance: 0, currency: "usd" });
  const before = (await stripeTraffic(paid.pi.id, paid.customer.id)).all.length;
  return { ...paid, before };
}

/** The Stripe requests about `pi` and `customer` since `before` was counted. */
async function callsSince(pi: string, customer: string, before: number) {
  const traffic = await stripeTraffic(pi, customer);
  return { ...traffic, count: traffic.all.length - before };
}

const fromEvent = (journal: { step: string; outcome: string }[]) => journal.some((j) => j.step === "read" && j.outcome === "from_event");

/**
 * A webhook credit that could not trust its event: settled with one read and one credit write
 * (none from the event), credited once, and the owner's confirm answered from the record.
 */
async function expectCreditedByReading(paymentIntentId: string, customerId: string, token: string, before: number, amount: number): Promise<void> {
  const done = await waitForObject(paymentIntentId, (i) => settledCredit(i) && i.wallet_pending.length === 0);
  const calls = await callsSince(paymentIntentId, customerId, before);
  expect({ count: calls.count, piReads: calls.piReads, creditWrites: calls.creditWrites }).toEqual({ count: 2, piReads: 1, creditWrites: 1 });
  expect(fromEvent(done.journal)).toBe(false);
  await expectCreditedOnce(paymentIntentId, customerId, amount, [await answerOf(await confirm(token, paymentIntentId))]);
}

/** The PI object's env with the older server's top-ups admitted (in its memory only: the run's bindings are fixed). */
async function admitLegacyTopUps(paymentIntentId: string): Promise<void> {
  await runInDurableObject(piObject(paymentIntentId), (instance) => {
    Object.assign(instance, {
      env: { ...env, LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: String(Math.floor(Date.now() / 1000) + 3600) },
    });
  });
}

/** Sets metadata on a PaymentIntent through Stripe's API, as another system would. */
async function updateMetadata(paymentIntentId: string, metadata: Record<string, string>): Promise<void> {
  const body = new URLSearchParams(Object.entries(metadata).map(([k, v]) => [`metadata[${k}]`, v]));
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/${paymentIntentId}`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}`, "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  expect(res.status).toBe(200);
}

describe("a webhook's credit costs one Stripe call", () => {
  it("credited from the webhook alone with exactly one request, the credit write; its journal says the PI came from the event; a browser's confirm afterwards costs none", async () => {
    const { customer, pi, token, before } = await paidWithOpenWallet(2100);
    expect((await deliver(await succeededEvent(pi.id))).status).toBe(200);
    const done = await waitForObject(pi.id, (i) => settledCredit(i) && i.wallet_pending.length === 0);

    const calls = await callsSince(pi.id, customer.id, before);
    expect(calls.count).toBe(1);
    expect(calls.creditWrites).toBe(1);
    expect(calls.piReads).toBe(0);
    expect(done.record).toMatchObject({ state: "credited", credited_by: "webhook", mark_state: "off", mark_attempts: 0 });
    expect(fromEvent(done.journal)).toBe(true);

    const answer = await answerOf(await confirm(token, pi.id));
    expect(answer).toMatchObject({ status: 200, code: "already_credited", txId: done.record?.balance_transaction_id });
    expect((await callsSince(pi.id, customer.id, before)).count).toBe(1);
    // The wallet has it once; the PI carries no mark.
    expect(await balanceOf(token)).toEqual({ balance: 2100, currency: "usd" });
    await expectCreditedOnce(pi.id, customer.id, 2100, [answer]);
  });

  it("with marking on, the webhook's credit reads the PI and marks it: three requests", async () => {
    const { customer, pi, token, before } = await paidWithOpenWallet(2200);
    await markingOn(pi.id);
    expect((await deliver(await succeededEvent(pi.id))).status).toBe(200);
    const done = await waitForObject(pi.id, (i) => settledCredit(i) && i.wallet_pending.length === 0);

    const calls = await callsSince(pi.id, customer.id, before);
    expect({ count: calls.count, piReads: calls.piReads, marks: calls.marks, creditWrites: calls.creditWrites }).toEqual({
      count: 3,
      piReads: 1,
      marks: 1,
      creditWrites: 1,
    });
    expect(fromEvent(done.journal)).toBe(false);
    await expectCreditedOnce(pi.id, customer.id, 2200, [await answerOf(await confirm(token, pi.id))], true);
  });

  it("with the older server's top-ups admitted, the webhook's credit reads the PI (one read, one credit)", async () => {
    const { customer, pi, token, before } = await paidWithOpenWallet(2300);
    await admitLegacyTopUps(pi.id);
    expect((await deliver(await succeededEvent(pi.id))).status).toBe(200);
    await expectCreditedByReading(pi.id, customer.id, token, before, 2300);
  });

  it("why it reads then: an older server's top-up it credited (and marked) after the event is adopted from the read, not credited again", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2400, metadata: { account_id: accountId, source: "old-server" } });
    const eventId = await succeededEvent(pi.id);
    // The older server credits the PI and marks it, after the event was made: the event says unmarked.
    const legacyId = await legacyCredit(customer.id, pi.id, 2400);
    await updateMetadata(pi.id, { credited: "true" });
    await admitLegacyTopUps(pi.id);

    expect((await deliver(eventId)).status).toBe(200);
    const done = await waitForObject(pi.id, settledCredit);
    expect(done.record).toMatchObject({ state: "credited", credited_by: "ledger", balance_transaction_id: legacyId });
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1);
    const calls = await stripeTraffic(pi.id, customer.id);
    expect(calls.piReads).toBe(1);
    expect(calls.all.filter((r) => r.idempotency_key?.startsWith(`credit-tx:${pi.id}`))).toEqual([]);
    expect(await answerOf(await confirm(await tokenFor(accountId), pi.id))).toMatchObject({ status: 200, code: "already_credited", txId: legacyId });
  });

  it("a PI that is not a top-up (no marker) delivered by webhook costs no Stripe call, is remembered as not creditable, and its redelivery costs none", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const pi = await createPaymentIntent({ customer: customer.id, amount: 2500, metadata: { account_id: accountId, purpose: "subscription" } });
    const eventId = await succeededEvent(pi.id);

    expect((await deliver(eventId)).status).toBe(200);
    const { record, journal } = await waitForObject(pi.id, (i) => i.record !== null);
    expect(record).toMatchObject({ state: "not_creditable", reason: "not_a_top_up" });
    expect(fromEvent(journal)).toBe(true);
    expect((await stripeTraffic(pi.id, customer.id)).all).toEqual([]);

    expect((await deliver(eventId)).status).toBe(200);
    await runDurableObjectAlarm(piObject(pi.id));
    expect((await stripeTraffic(pi.id, customer.id)).all).toEqual([]);
    expect((await piObject(pi.id).inspect()).record).toMatchObject({ state: "not_creditable", reason: "not_a_top_up" });
    expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
  });

  it("a signed event whose PaymentIntent lacks a deciding field (no amount_received) still credits, by reading the PI: one read, one credit", async () => {
    const { accountId, customer, pi, token, before } = await paidWithOpenWallet(2600);
    // Everything that decides a credit but amount_received.
    const partial = {
      id: pi.id,
      object: "payment_intent",
      status: "succeeded",
      customer: customer.id,
      currency: "usd",
      livemode: false,
      metadata: topUpMetadata(accountId),
      created: Math.floor(Date.now() / 1000),
    };
    expect((await postSigned("payment_intent.succeeded", partial)).status).toBe(200);
    await expectCreditedByReading(pi.id, customer.id, token, before, 2600);
  });

  // A signed event cannot claim more than Stripe has: its body is covered by the signature, and a
  // body altered after signing is refused (test/webhook.test.ts, "a body altered after signing").
  // What the event says is what Stripe said at the success; the PI's amount and customer cannot
  // change after it (Stripe refuses to update a succeeded PI's amount), its metadata can.
  it("the event decides: the PI's metadata rewritten at Stripe after the success (another account named) changes nothing: A's customer gets the event's amount", async () => {
    const a = await paidWithOpenWallet(2700);
    const otherId = newAccountId("other");
    const other: Customer = await createCustomer(otherId);
    const otherToken = await tokenFor(otherId);
    expect(await balanceOf(otherToken)).toEqual({ balance: 0, currency: "usd" });
    const eventId = await succeededEvent(a.pi.id);
    await updateMetadata(a.pi.id, { account_id: otherId });
    expect((await stripePaymentIntent(a.pi.id)).metadata.account_id).toBe(otherId);

    expect((await deliver(eventId)).status).toBe(200);
    const done = await waitForObject(a.pi.id, (i) => settledCredit(i) && i.wallet_pending.length === 0);
    expect(done.record).toMatchObject({ customer_id: a.customer.id, amount: 2700, account_id: a.accountId, credited_by: "webhook" });
    expect(fromEvent(done.journal)).toBe(true);
    expect((await ledgerFor(a.customer.id, a.pi.id)).map((tx) => tx.amount)).toEqual([-2700]);
    expect(await ledgerFor(other.id)).toEqual([]);
    expect(await balanceOf(a.token)).toEqual({ balance: 2700, currency: "usd" });
    expect(await balanceOf(otherToken)).toEqual({ balance: 0, currency: "usd" });
  });

  it("a browser's confirm and the webhook racing on a slow Stripe, nothing marked: one credit, and at most one read and one credit write in all", async () => {
    for (const gap of [0, 15, 40, 90]) {
      const { customer, pi, token, before } = await paidWithOpenWallet(2800 + gap);
      await slowStripe(pi.id, customer.id, 60);
      const eventId = await succeededEvent(pi.id);
      const [browser, hook] = await Promise.all([
        confirm(token, pi.id).then(answerOf),
        new Promise((r) => setTimeout(r, gap)).then(async () => deliver(eventId)),
      ]);
      expect(hook.status).toBe(200);
      await waitForObject(pi.id, (i) => settledCredit(i) && i.wallet_pending.length === 0);
      await slowStripe(pi.id, customer.id, 0);

      const calls = await callsSince(pi.id, customer.id, before);
      expect(calls.creditWrites, `gap ${gap} ms`).toBe(1);
      expect(calls.piReads, `gap ${gap} ms`).toBeLessThanOrEqual(1);
      expect(calls.count, `gap ${gap} ms`).toBeLessThanOrEqual(2);
      await expectCreditedOnce(pi.id, customer.id, 2800 + gap, [browser, await answerOf(await confirm(token, pi.id))]);
    }
  });
});

/** Aborts the PI's object alone (its reset, as a crash or a deploy makes it): calls in flight in it are cut off. */
async function cutOff(paymentIntentId: string): Promise<void> {
  await runInDurableObject(piObject(paymentIntentId), (_instance, state) => state.abort("cut off")).catch(() => undefined);
}

describe("marking that survives a restart (the test's stand-in for the deployment's setting)", () => {
  it("markingOn lasts as long as the object's memory; markingOnAcrossRestarts outlives an eviction and an abort", async () => {
    const lost = await paidTopUp(1100);
    await markingOn(lost.pi.id);
    await evictDurableObject(piObject(lost.pi.id));
    expect((await answerOf(await confirm(lost.token, lost.pi.id))).status).toBe(200);
    expect((await piObject(lost.pi.id).inspect()).record?.mark_state).toBe("off");

    const kept = await paidTopUp(1200);
    await markingOnAcrossRestarts(kept.pi.id);
    await evictDurableObject(piObject(kept.pi.id));
    await cutOff(kept.pi.id);
    expect((await answerOf(await confirm(kept.token, kept.pi.id))).status).toBe(200);
    await expectCreditedOnce(kept.pi.id, kept.customer.id, 1200, [await answerOf(await confirm(kept.token, kept.pi.id))], true);
  });
});

// ---- Any interleaving ----------------------------------------------------------------------

type Action = { op: "confirm"; n: number; delay: number } | { op: "deliver"; times: number; delay: number } | { op: "alarm"; delay: number };
type Cut = { op: "evict" | "abort"; delay: number };
interface Phase {
  actions: Action[];
  cut: Cut | null;
}

const delayArb = fc.integer({ min: 0, max: 90 });
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ op: fc.constant("confirm" as const), n: fc.integer({ min: 1, max: 3 }), delay: delayArb }),
  fc.record({ op: fc.constant("deliver" as const), times: fc.integer({ min: 1, max: 2 }), delay: delayArb }),
  fc.record({ op: fc.constant("alarm" as const), delay: delayArb }),
);
const phaseArb: fc.Arbitrary<Phase> = fc.record({
  actions: fc.array(actionArb, { minLength: 1, maxLength: 3 }),
  cut: fc.option(fc.record({ op: fc.constantFrom<Cut["op"]>("evict", "abort"), delay: fc.integer({ min: 0, max: 150 }) }), { nil: null }),
});

/**
 * The most Stripe calls one restart can add: a cut-off mark sent again under its next key, and a
 * cut-off credit write whose outcome is unknown looked up in the ledger and sent again.
 */
const CALLS_PER_CUT = 3;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An alarm whose run was cut off is run again by the platform; runDurableObjectAlarm deleted it first, so put one back. */
async function platformRetriesAlarm(pi: string): Promise<void> {
  await runInDurableObject(piObject(pi), async (_instance, state) => {
    if ((await state.storage.getAlarm()) === null) await state.storage.setAlarm(Date.now());
  });
}

describe("any interleaving of the ways a paid top-up is credited", () => {
  it("browser confirms, webhook deliveries and redeliveries, alarm runs, evictions and aborts, marking on or off: one credit, the wallet told once, the mark only where marking, and no Stripe call beyond the protocol's and the restarts'", async () => {
    const property = fc.asyncProperty(fc.boolean(), fc.array(phaseArb, { minLength: 1, maxLength: 4 }), async (marking, phases) => {
      const amount = 1000 + Math.floor(Math.random() * 9000);
      const paid = await paidWithOpenWallet(amount);
      const { accountId, customer, pi, token, before } = paid;
      if (marking) await markingOnAcrossRestarts(pi.id);
      const eventId = await succeededEvent(pi.id);
      await slowStripe(pi.id, customer.id, 30);
      const answers: Answer[] = [];
      let cuts = 0;
      let undelivered = false;
      try {
        for (const phase of phases) {
          const acts = phase.actions.map(async (a) => {
            await sleep(a.delay);
            switch (a.op) {
              case "confirm":
                answers.push(...(await Promise.all(Array.from({ length: a.n }, async () => answerOf(await confirm(token, pi.id))))));
                return;
              case "deliver":
                for (let i = 0; i < a.times; i++) if ((await deliver(eventId)).status !== 200) undelivered = true;
                return;
              case "alarm":
                await runDurableObjectAlarm(piObject(pi.id)).catch(() => false);
                return;
            }
          });
          const cut = phase.cut;
          const cutting = cut
            ? (async () => {
                await sleep(cut.delay);
                cuts++;
                // The PI object alone, as a deploy or a crash resets one object: the object's own abort
                // cuts off what is in flight in it; an eviction lets it go (test/recovery.test.ts
                // cuts off every object at once, at each of the protocol's awaits).
                if (cut.op === "abort") await cutOff(pi.id);
                else await evictDurableObject(piObject(pi.id)).catch(() => undefined);
              })()
            : Promise.resolve();
          await Promise.all([...acts, cutting]);
        }
      } finally {
        await slowStripe(pi.id, customer.id, 0);
      }
      // Stripe redelivers what was not acknowledged; a run cut off is run again; a browser comes back.
      if (undelivered) expect((await deliver(eventId)).status).toBe(200);
      await platformRetriesAlarm(pi.id);
      await settle(pi.id, token, answers);
      const done = await waitForObject(pi.id, (i) => settledCredit(i) && i.wallet_pending.length === 0);

      // Counted before anything below reads the PI itself.
      const calls = await callsSince(pi.id, customer.id, before);
      const protocol = marking ? 3 : 2;
      expect(calls.count).toBeLessThanOrEqual(protocol + CALLS_PER_CUT * cuts);
      if (cuts === 0) expect({ piReads: calls.piReads <= 1, creditWrites: calls.creditWrites }).toEqual({ piReads: true, creditWrites: 1 });
      expect(calls.marks > 0).toBe(marking);

      const ledger = await ledgerFor(customer.id, pi.id);
      expect(ledger.map((tx) => tx.amount)).toEqual([-amount]);
      expect(done.record?.mark_state).toBe(marking ? "done" : "off");
      expect((await stripePaymentIntent(pi.id)).metadata.credited).toBe(marking ? "true" : undefined);
      // The wallet was told once: one line for this PI, and the balance is the credit.
      expect((await allLines(accountId)).filter((l) => l.payment_intent_id === pi.id).map((l) => l.amount)).toEqual([amount]);
      expect(await balanceOf(token)).toEqual({ balance: amount, currency: "usd" });
      for (const a of answers) {
        if (a.status === 200) expect(a.txId).toBe(ledger[0]?.id);
        else expect([a.status, a.code]).toEqual([503, "stripe_unavailable"]);
      }
      expect(answers.at(-1)).toMatchObject({ status: 200, txId: ledger[0]?.id });
    });
    await fc.assert(property, { numRuns: 12, endOnFailure: true });
  }, 90_000);
});
