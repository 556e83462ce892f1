// The object dies between protocol steps (a reset, a deploy, an eviction) and recovers from its
// durable record alone, while confirms keep arriving. Crashes in the middle of a Stripe call use
// abortAllDurableObjects (in-flight calls are cut off, as in a crash); crashes between calls use
// evictDurableObject. Either way: one credit, the object final, and the PI marked only where its
// object marks what it credits (markingOn: MARK_CREDITED, off by default, on while an older
// server runs beside this one), which the crashes in the mark's own steps need.

import { abortAllDurableObjects, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import {
  addFault,
  answerOf,
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  emu,
  eventsFor,
  expectCreditedOnce,
  ledgerFor,
  newAccountId,
  paidTopUp,
  piObject,
  removeFault,
  settle,
  settledCredit,
  stripeRequests,
  tokenFor,
  topUpMetadata,
  waitForObject,
  type Answer,
  waitForRequest,
  legacyCredit,
  markingOn,
  markSettled,
  operatorEntry,
  stripeTraffic,
} from "./helpers.js";

/** Many confirms and the alarm at once, right after the crash. */
async function recoverConcurrently(pi: string, token: string): Promise<Answer[]> {
  const [answers] = await Promise.all([
    Promise.all(Array.from({ length: 5 }, async () => answerOf(await confirm(token, pi)))),
    runDurableObjectAlarm(piObject(pi)),
  ]);
  return answers;
}

interface CrashPoint {
  name: string;
  /** Faults and latency that hold the protocol at the step, given the PI and customer ids. */
  hold: (pi: string, customer: string) => Promise<void>;
  /** Lifts the hold once the object has crashed (a slow Stripe stays slow only so long). */
  release?: (pi: string, customer: string) => Promise<void>;
  /** The Stripe request that shows the protocol is at that step. */
  at: (pi: string, customer: string) => { path?: string; key?: string; method?: string };
  /** The PI object marks what it credits (the step is the mark's). */
  marking?: boolean;
}

const crashPoints: CrashPoint[] = [
  {
    name: "intent recorded, mark in flight",
    marking: true,
    hold: async (pi) => {
      await emu("/latency", { ms: 1500, method: "POST", path: `/v1/payment_intents/${pi}` });
    },
    release: async (pi) => {
      await emu("/latency", { ms: 0, method: "POST", path: `/v1/payment_intents/${pi}` });
    },
    at: (pi) => ({ key: `credit-mark:${pi}` }),
  },
  {
    name: "credit write sent, not yet applied",
    hold: async (_pi, customer) => {
      await emu("/latency", { ms: 1500, method: "POST", path: `/v1/customers/${customer}/balance_transactions` });
    },
    release: async (_pi, customer) => {
      await emu("/latency", { ms: 0, method: "POST", path: `/v1/customers/${customer}/balance_transactions` });
    },
    at: (pi) => ({ key: `credit-tx:${pi}` }),
  },
  {
    name: "credit applied at Stripe, answer not yet received",
    hold: async (pi) => {
      await emu("/faults", { kind: "hang", apply: true, key: `credit-tx:${pi}`, times: 1 });
    },
    at: (pi) => ({ key: `credit-tx:${pi}` }),
  },
];

describe("crash in the middle of a Stripe call", () => {
  it.each(crashPoints)("$name → recovers to one credit", async ({ hold, release, at, marking = false }) => {
    const amount = 4321;
    const { customer, pi, token } = await paidTopUp(amount);
    if (marking) await markingOn(pi.id);
    await hold(pi.id, customer.id);

    const inFlight = confirm(token, pi.id);
    await waitForRequest(at(pi.id, customer.id));
    await abortAllDurableObjects();
    const cut = await answerOf(await inFlight);
    // The caller whose object died is told to come back, never handed a 500.
    expect(cut.status).toBe(503);
    await release?.(pi.id, customer.id);

    const answers = [cut, ...(await recoverConcurrently(pi.id, token))];
    await settle(pi.id, token, answers);
    // The record was made before the crash, with its mark pending: the new instance finishes it.
    await expectCreditedOnce(pi.id, customer.id, amount, answers, marking);
  });

  it("with no caller at all, the watchdog alarm armed before the first write finishes a crashed credit", async () => {
    const amount = 7777;
    const { customer, pi, token } = await paidTopUp(amount);
    await emu("/faults", { kind: "hang", apply: true, key: `credit-tx:${pi.id}`, times: 1 });
    const inFlight = confirm(token, pi.id);
    await waitForRequest({ key: `credit-tx:${pi.id}` });
    await abortAllDurableObjects();
    await inFlight;

    for (let round = 0; round < 10; round++) {
      const { record } = await piObject(pi.id).inspect();
      if (record?.state === "credited" && markSettled(record.mark_state)) break;
      expect(await runDurableObjectAlarm(piObject(pi.id))).toBe(true);
    }
    const { record } = await piObject(pi.id).inspect();
    expect(record?.state).toBe("credited");
    expect(record?.credited_by).toBe("alarm");
    await expectCreditedOnce(pi.id, customer.id, amount, [await answerOf(await confirm(token, pi.id))]);
  });

  it("the ledger look during recovery is itself cut off → recovers again to one credit", async () => {
    const amount = 5555;
    const { customer, pi, token } = await paidTopUp(amount);
    // Applied but unknown (dropped, then the SDK's retry refused), so recovery must read the ledger.
    await emu("/faults", { kind: "drop", key: `credit-tx:${pi.id}`, times: 1 });
    await emu("/faults", { kind: "rate_limit", key: `credit-tx:${pi.id}`, every: 2, times: 1 });
    const first = await answerOf(await confirm(token, pi.id));
    expect(first.status).toBe(503);

    await emu("/latency", { ms: 1500, method: "GET", path: `/v1/customers/${customer.id}/balance_transactions` });
    const alarm = runDurableObjectAlarm(piObject(pi.id)).catch(() => false);
    await waitForRequest({ method: "GET", path: `/v1/customers/${customer.id}/balance_transactions` });
    await abortAllDurableObjects();
    await alarm;
    await emu("/latency", { ms: 0, method: "GET", path: `/v1/customers/${customer.id}/balance_transactions` });

    const answers = [first, ...(await recoverConcurrently(pi.id, token))];
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, amount, answers);
  });
});

describe("evicted between protocol steps", () => {
  it("after the intent is recorded and the mark failed, before the credit: the retry alarm finishes it", async () => {
    const amount = 2468;
    const { customer, pi, token } = await paidTopUp(amount);
    await markingOn(pi.id);
    // The mark fails (every try of the SDK's) and the credit write cannot be reached either, for
    // long enough that a retry alarm firing on its own before the eviction fails the same way.
    const markFault = await addFault({ kind: "error_500", saved: false, key: `credit-mark:${pi.id}*`, times: 30 });
    const creditFault = await addFault({ kind: "rate_limit", key: `credit-tx:${pi.id}`, times: 10 });
    const answers = [await answerOf(await confirm(token, pi.id))];
    expect(answers[0]?.status).toBe(503);
    const { record } = await piObject(pi.id).inspect();
    expect(record?.state).toBe("verified");
    expect(record?.mark_state).toBe("pending");
    await removeFault(markFault);
    await removeFault(creditFault);

    await evictDurableObject(piObject(pi.id));
    answers.push(...(await recoverConcurrently(pi.id, token)));
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, amount, answers, true);
  });

  it("after the credit, with the mark still pending: the alarm marks it with a fresh key", async () => {
    const amount = 1357;
    const { customer, pi, token } = await paidTopUp(amount);
    await markingOn(pi.id);
    await emu("/faults", { kind: "error_500", key: `credit-mark:${pi.id}`, times: 1 });
    // The alarm armed by the credit may fire before the eviction: its first fresh key fails too
    // (each of the SDK's tries), so the mark is still pending when the object is evicted.
    await emu("/faults", { kind: "error_500", saved: false, key: `credit-mark:${pi.id}:2`, times: 3 });
    const answers = [await answerOf(await confirm(token, pi.id))];
    expect(answers[0]?.status).toBe(200);
    expect((await piObject(pi.id).inspect()).record?.mark_state).toBe("pending");

    await evictDurableObject(piObject(pi.id));
    answers.push(...(await recoverConcurrently(pi.id, token)));
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, amount, answers, true);
    // The first key replays its saved 500 forever; the retry used the next one.
    expect((await stripeRequests({ key: `credit-mark:${pi.id}:2` })).length).toBeGreaterThanOrEqual(1);
  });
});

describe("a flaky Stripe", () => {
  it("100 concurrent confirms while every third Stripe request fails: one credit", async () => {
    const amount = 9900;
    const { customer, pi, token } = await paidTopUp(amount);
    // One rule over both paths, so "every third" counts this PI's Stripe requests as one stream.
    const path = `/v1/{payment_intents/${pi.id},customers/${customer.id}/}**`;
    const rule = await addFault({ kind: "error_500", path, every: 3, times: 1000 });
    await emu("/latency", { ms: 20, path });
    const answers = await Promise.all(Array.from({ length: 100 }, async () => answerOf(await confirm(token, pi.id))));
    expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true);
    await settle(pi.id, token, answers);
    const failed = (await stripeRequests({ path: `/v1/**` })).filter(
      (r) => r.fault === "error_500" && (r.path.includes(pi.id) || r.path.includes(customer.id)),
    );
    expect(failed.length).toBeGreaterThan(0);
    // Stop failing before the test reads Stripe itself.
    await removeFault(rule);
    await expectCreditedOnce(pi.id, customer.id, amount, answers);
  });
});

// ---- A crash at every await, from every entry ----------------------------------------------
// The protocol is held at one Stripe call (latency, or a hang after the write applied) and,
// once the emulator is serving it, every object is cut off. Entries: a browser's confirm, and
// the alarm acting on a webhook's notice; then a reversal's writes and look, an adoption's
// ledger search (with and without a refund delivered before it). Each ends, after alarms, in
// exactly the ledger entries it should have. A table of the outcomes is printed at the end.

type Where = { path?: string; key?: string; method?: string };
const crashTable = new Map<string, string>();

/** runDurableObjectAlarm deletes the alarm before it runs it; the platform keeps an alarm whose
 * run did not finish and runs it again. After cutting off a run started here, put it back. */
async function platformRetriesAlarm(pi: string): Promise<void> {
  await runInDurableObject(piObject(pi), async (_instance, state) => {
    if ((await state.storage.getAlarm()) === null) await state.storage.setAlarm(Date.now());
  });
}

/** Runs `start` until the request `at` is in flight at Stripe, then cuts off every object. */
async function crashDuring(at: Where, start: () => Promise<unknown>): Promise<void> {
  const running = start().catch(() => null);
  await waitForRequest(at);
  await abortAllDurableObjects();
  await running;
}

const HOLD_MS = 800;
const hold = (method: string, path: string) => emu("/latency", { ms: HOLD_MS, method, path });
const release = (method: string, path: string) => emu("/latency", { ms: 0, method, path });
const ledgerPath = (customer: string) => `/v1/customers/${customer}/balance_transactions`;

/** Applied, answer lost, the SDK's retry refused (429 on the key's second request): the outcome is unknown. */
async function unknownOutcome(customer: string, key: string): Promise<void> {
  await emu("/faults", { kind: "drop", method: "POST", path: ledgerPath(customer), key, times: 1 });
  await emu("/faults", { kind: "rate_limit", method: "POST", path: ledgerPath(customer), key, every: 2, times: 1 });
}

/** The webhook's entry: the signed payment_intent.succeeded delivered, then its alarm run. */
async function deliverSucceeded(pi: string): Promise<void> {
  const [event] = await eventsFor("payment_intent.succeeded", pi);
  expect((await deliver(event?.id as string)).status).toBe(200);
}

interface CreditCrash {
  name: string;
  /** Holds the step at Stripe; returns the request that shows it is there, and how to let go. */
  arm: (pi: string, customer: string) => Promise<{ at: Where; lift: () => Promise<unknown> }>;
  /** Makes the write's outcome unknown first, so that the crashed step is a ledger look. */
  unknownFirst?: boolean;
  /**
   * The PI object marks what it credits. The webhook's credit reads the PI only then: otherwise
   * it takes the PI from the signed event (its row here has no read to crash in).
   */
  marking?: boolean;
}

const creditCrashes: CreditCrash[] = [
  {
    name: "reading the PI",
    marking: true,
    arm: async (pi) => {
      await hold("GET", `/v1/payment_intents/${pi}`);
      return { at: { method: "GET", path: `/v1/payment_intents/${pi}` }, lift: () => release("GET", `/v1/payment_intents/${pi}`) };
    },
  },
  {
    name: "marking",
    marking: true,
    arm: async (pi) => {
      await hold("POST", `/v1/payment_intents/${pi}`);
      return { at: { key: `credit-mark:${pi}` }, lift: () => release("POST", `/v1/payment_intents/${pi}`) };
    },
  },
  {
    name: "writing the credit (not yet applied)",
    arm: async (pi, customer) => {
      await hold("POST", ledgerPath(customer));
      return { at: { key: `credit-tx:${pi}` }, lift: () => release("POST", ledgerPath(customer)) };
    },
  },
  {
    name: "writing the credit (applied, unanswered)",
    arm: async (pi) => {
      await emu("/faults", { kind: "hang", apply: true, key: `credit-tx:${pi}`, times: 1 });
      return { at: { key: `credit-tx:${pi}` }, lift: async () => undefined };
    },
  },
  {
    name: "reading the ledger after an unknown outcome",
    unknownFirst: true,
    arm: async (_pi, customer) => {
      await hold("GET", ledgerPath(customer));
      return { at: { method: "GET", path: ledgerPath(customer) }, lift: () => release("GET", ledgerPath(customer)) };
    },
  },
];

describe("a crash at every await of the notice alarm (the webhook's entry)", () => {
  for (const crash of creditCrashes) {
    it(`${crash.name}${crash.marking ? " (marking)" : ""} → one credit, with no browser at all`, async () => {
      const label = `notice alarm: ${crash.name}`;
      crashTable.set(label, "FAILED");
      const amount = 3000 + Math.floor(Math.random() * 1000);
      const { customer, pi, token } = await paidTopUp(amount);
      const marking = crash.marking ?? false;
      if (marking) await markingOn(pi.id);
      // For a crash in the ledger look, the look must not succeed before it is held: the
      // platform may run the alarm again on its own and find the entry at once.
      const blind = crash.unknownFirst ? await addFault({ kind: "error_500", saved: false, method: "GET", path: ledgerPath(customer.id), times: 1000 }) : null;
      if (crash.unknownFirst) {
        await unknownOutcome(customer.id, `credit-tx:${pi.id}`);
        await deliverSucceeded(pi.id);
        await waitForObject(pi.id, (i) => i.journal.some((j) => j.step === "credit"));
      }
      const { at, lift } = await crash.arm(pi.id, customer.id);
      if (blind !== null) await removeFault(blind);
      await crashDuring(at, async () => {
        if (!crash.unknownFirst) await deliverSucceeded(pi.id);
        await runDurableObjectAlarm(piObject(pi.id));
      });
      // The object's memory went with the crash, the setting with it; a deployment's stays on.
      if (marking) await markingOn(pi.id);
      await lift();
      await platformRetriesAlarm(pi.id);
      const done = await waitForObject(pi.id, settledCredit);
      // Unmarked, the credit came from the event, before the crash and after it: never a read.
      if (!marking) {
        expect((await stripeTraffic(pi.id, customer.id)).piReads).toBe(0);
        expect(done.journal).toContainEqual(expect.objectContaining({ step: "read", outcome: "from_event" }));
      }
      await expectCreditedOnce(pi.id, customer.id, amount, [await answerOf(await confirm(token, pi.id))], marking);
      expect(await operatorEntry(pi.id)).toBeNull();
      crashTable.set(label, "ok");
    });
  }

  it("a browser's confirm cut off while reading the PI (nothing recorded yet) → told 503, then one credit", async () => {
    crashTable.set("browser: reading the PI", "FAILED");
    const { customer, pi, token } = await paidTopUp(2900);
    const { at, lift } = await (creditCrashes[0] as CreditCrash).arm(pi.id, customer.id);
    const answers: Answer[] = [];
    await crashDuring(at, async () => answers.push(await answerOf(await confirm(token, pi.id))));
    await lift();
    expect(answers.map((a) => a.status)).toEqual([503]);
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, 2900, answers);
    crashTable.set("browser: reading the PI", "ok");
  });

  it("the notice's alarm waiting behind a browser's read, both cut off before anything is recorded → the notice credits from its stored event, with no read of its own", async () => {
    crashTable.set("notice stored with its event, nothing recorded", "FAILED");
    const { customer, pi, token } = await paidTopUp(3200);
    // The browser's attempt holds the object's one attempt at its read; the notice's alarm
    // waits behind it, so nothing can be recorded before the crash.
    const { at, lift } = await (creditCrashes[0] as CreditCrash).arm(pi.id, customer.id);
    const browser = confirm(token, pi.id).catch(() => null);
    await waitForRequest(at);
    await deliverSucceeded(pi.id);
    await crashDuring(at, () => runDurableObjectAlarm(piObject(pi.id)));
    await browser;
    await lift();
    await platformRetriesAlarm(pi.id);
    const done = await waitForObject(pi.id, settledCredit);
    expect(done.record?.credited_by).toBe("webhook");
    expect(done.journal).toContainEqual(expect.objectContaining({ step: "read", outcome: "from_event" }));
    // The one read is the browser's, cut off; the notice's event survived the crash and stood in for another.
    expect((await stripeTraffic(pi.id, customer.id)).piReads).toBe(1);
    await expectCreditedOnce(pi.id, customer.id, 3200, [await answerOf(await confirm(token, pi.id))]);
    crashTable.set("notice stored with its event, nothing recorded", "ok");
  });

  it("evicted between the notice and its alarm → the alarm still credits once", async () => {
    crashTable.set("evicted after the notice", "FAILED");
    const { customer, pi, token } = await paidTopUp(3100);
    await deliverSucceeded(pi.id);
    await evictDurableObject(piObject(pi.id));
    await waitForObject(pi.id, settledCredit);
    await expectCreditedOnce(pi.id, customer.id, 3100, [await answerOf(await confirm(token, pi.id))]);
    crashTable.set("evicted after the notice", "ok");
  });
});

/** A credited PI, settled, with a refund of `refund` made at Stripe and its event delivered. */
async function creditedThenRefunded(amount: number, refund: number, beforeDelivery?: (pi: string, customer: string) => Promise<void>) {
  const paid = await paidTopUp(amount);
  expect((await confirm(paid.token, paid.pi.id)).status).toBe(200);
  await waitForObject(paid.pi.id, settledCredit);
  await beforeDelivery?.(paid.pi.id, paid.customer.id);
  await deliverRefund(paid.pi.id, refund);
  return paid;
}

async function deliverRefund(pi: string, amount: number): Promise<void> {
  await emu(`/payment_intents/${pi}/refund`, { amount });
  const [event] = await eventsFor("charge.refunded", pi);
  expect((await deliver(event?.id as string)).status).toBe(200);
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

describe("a crash at every await of a reversal", () => {
  const reversalCrashes: CreditCrash[] = [
    {
      name: "writing the reversal (not yet applied)",
      arm: async (pi, customer) => {
        await hold("POST", ledgerPath(customer));
        return { at: { key: `credit-adjust:${pi}:*` }, lift: () => release("POST", ledgerPath(customer)) };
      },
    },
    {
      name: "writing the reversal (applied, unanswered)",
      arm: async (pi) => {
        await emu("/faults", { kind: "hang", apply: true, key: `credit-adjust:${pi}:*`, times: 1 });
        return { at: { key: `credit-adjust:${pi}:*` }, lift: async () => undefined };
      },
    },
    {
      name: "reading the ledger for a reversal whose outcome is unknown",
      unknownFirst: true,
      arm: async (_pi, customer) => {
        await hold("GET", ledgerPath(customer));
        return { at: { method: "GET", path: ledgerPath(customer) }, lift: () => release("GET", ledgerPath(customer)) };
      },
    },
  ];
  for (const crash of reversalCrashes) {
    it(`${crash.name} → the refund taken back once`, async () => {
      const label = `reversal: ${crash.name}`;
      crashTable.set(label, "FAILED");
      // As for the credit: no ledger look may succeed before the one that is held.
      let blind: number | null = null;
      const { customer, pi } = await creditedThenRefunded(
        4000,
        1500,
        crash.unknownFirst
          ? async (p, c) => {
              blind = await addFault({ kind: "error_500", saved: false, method: "GET", path: ledgerPath(c), times: 1000 });
              await unknownOutcome(c, `credit-adjust:${p}:*`);
            }
          : undefined,
      );
      if (crash.unknownFirst) {
        await waitForObject(pi.id, (i) => i.journal.some((j) => j.step === "adjust"));
        expect((await piObject(pi.id).inspect()).adjustments.map((a) => [a.operation, a.state])).toEqual([["refund:1500", "pending"]]);
      }
      const { at, lift } = await crash.arm(pi.id, customer.id);
      if (blind !== null) await removeFault(blind);
      await crashDuring(at, async () => {
        // The refund's notice armed the alarm at once; the platform may be running it already.
        if (!(await runDurableObjectAlarm(piObject(pi.id)))) await new Promise((r) => setTimeout(r, HOLD_MS * 2));
      });
      await lift();
      await platformRetriesAlarm(pi.id);
      const i = await waitForObject(pi.id, (x) => settledCredit(x) && x.amounts?.net === 2500);
      expect(i.amounts).toEqual({ credited: 4000, reversed: 1500, net: 2500 });
      expect(sorted((await ledgerFor(customer.id, pi.id)).map((tx) => tx.amount))).toEqual([-4000, 1500]);
      crashTable.set(label, "ok");
    });
  }

  it("evicted with the reversal planned and not yet written → written once by the alarm", async () => {
    crashTable.set("reversal: evicted while pending", "FAILED");
    const { customer, pi } = await creditedThenRefunded(4100, 100, (p) => emu("/faults", { kind: "rate_limit", key: `credit-adjust:${p}:*`, times: 2 }));
    await waitForObject(pi.id, (i) => i.journal.some((j) => j.step === "adjust"));
    expect((await piObject(pi.id).inspect()).adjustments.map((a) => a.state)).toEqual(["pending"]);
    await evictDurableObject(piObject(pi.id));
    await waitForObject(pi.id, (x) => settledCredit(x) && x.amounts?.net === 4000);
    expect(sorted((await ledgerFor(customer.id, pi.id)).map((tx) => tx.amount))).toEqual([-4100, 100]);
    crashTable.set("reversal: evicted while pending", "ok");
  });
});

describe("a crash during an adoption (a PI credited elsewhere)", () => {
  for (const entry of ["browser", "webhook"] as const) {
    for (const refundFirst of [false, true]) {
      const name = `${entry}: the ledger search for the entry made elsewhere${refundFirst ? ", a refund delivered first" : ""}`;
      it(`${name} → adopted, nothing written${refundFirst ? ", the refund taken back once" : ""}`, async () => {
        const label = `adoption (${name})`;
        crashTable.set(label, "FAILED");
        const accountId = newAccountId();
        const customer = await createCustomer(accountId);
        const pi = await createPaymentIntent({ customer: customer.id, amount: 5000, metadata: { ...topUpMetadata(accountId), credited: "true" } });
        const token = await tokenFor(accountId);
        const legacyId = await legacyCredit(customer.id, pi.id, 5000);
        if (refundFirst) await deliverRefund(pi.id, 1200);

        const answers: Answer[] = [];
        await hold("GET", ledgerPath(customer.id));
        await crashDuring({ method: "GET", path: ledgerPath(customer.id) }, async () => {
          if (entry === "browser") answers.push(await answerOf(await confirm(token, pi.id)));
          else {
            await deliverSucceeded(pi.id);
            await runDurableObjectAlarm(piObject(pi.id));
          }
        });
        await release("GET", ledgerPath(customer.id));
        if (entry === "webhook") await platformRetriesAlarm(pi.id);
        else answers.push(await answerOf(await confirm(token, pi.id)));

        const net = refundFirst ? 3800 : 5000;
        const i = await waitForObject(pi.id, (x) => settledCredit(x) && x.amounts?.net === net);
        expect(i.record).toMatchObject({ state: "credited", balance_transaction_id: legacyId, credited_by: "ledger" });
        expect(sorted((await ledgerFor(customer.id, pi.id)).map((tx) => tx.amount))).toEqual(refundFirst ? [-5000, 1200] : [-5000]);
        expect(await stripeRequests({ key: `credit-tx:${pi.id}*` })).toHaveLength(0);
        answers.push(await answerOf(await confirm(token, pi.id)));
        expect(answers.at(-1)).toMatchObject({ status: 200, code: "already_credited", txId: legacyId });
        for (const a of answers) expect([200, 503]).toContain(a.status);
        crashTable.set(label, `ok ${answers.map((a) => a.status).join("→")}`);
      });
    }
  }
});

afterAll(() => {
  if (crashTable.size === 0) return;
  console.log(
    ["", "Crash at every await: ends in the right ledger entries after alarms", ...[...crashTable.entries()].map(([k, v]) => `${k.padEnd(92)}${v}`), ""].join(
      "\n",
    ),
  );
});
