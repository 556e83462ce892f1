// The object dies between protocol steps (a reset, a deploy, an eviction) and recovers from its
// durable record alone, while confirms keep arriving. Crashes in the middle of a Stripe call use
// abortAllDurableObjects (in-flight calls are cut off, as in a crash); crashes between calls use
// evictDurableObject. Either way: one credit, the PI marked, the object final.

import { abortAllDurableObjects, evictDurableObject, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { addFault, answerOf, confirm, emu, expectCreditedOnce, paidTopUp, piObject, removeFault, settle, stripeRequests, type Answer } from "./helpers.js";

/** Waits until the emulator is serving (has received, not yet answered) a request matching `filter`. */
async function waitForRequest(filter: { path?: string; key?: string; method?: string }): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await stripeRequests(filter)).some((r) => r.status === 0)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no request matching ${JSON.stringify(filter)}`);
}

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
}

const crashPoints: CrashPoint[] = [
  {
    name: "intent recorded, mark in flight",
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
  it.each(crashPoints)("$name → recovers to one credit", async ({ hold, release, at }) => {
    const amount = 4321;
    const { customer, pi, token } = await paidTopUp(amount);
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
    await expectCreditedOnce(pi.id, customer.id, amount, answers);
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
      if (record?.state === "credited" && record.mark_state === "done") break;
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
    // Mark fails three times (the SDK's tries), the credit write cannot be reached either.
    await emu("/faults", { kind: "error_500", saved: false, key: `credit-mark:${pi.id}`, times: 3 });
    await emu("/faults", { kind: "rate_limit", key: `credit-tx:${pi.id}`, times: 1 });
    const answers = [await answerOf(await confirm(token, pi.id))];
    expect(answers[0]?.status).toBe(503);
    const { record } = await piObject(pi.id).inspect();
    expect(record?.state).toBe("verified");
    expect(record?.mark_state).toBe("pending");

    await evictDurableObject(piObject(pi.id));
    answers.push(...(await recoverConcurrently(pi.id, token)));
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, amount, answers);
  });

  it("after the credit, with the mark still pending: the alarm marks it with a fresh key", async () => {
    const amount = 1357;
    const { customer, pi, token } = await paidTopUp(amount);
    await emu("/faults", { kind: "error_500", key: `credit-mark:${pi.id}`, times: 1 });
    const answers = [await answerOf(await confirm(token, pi.id))];
    expect(answers[0]?.status).toBe(200);
    expect((await piObject(pi.id).inspect()).record?.mark_state).toBe("pending");

    await evictDurableObject(piObject(pi.id));
    answers.push(...(await recoverConcurrently(pi.id, token)));
    await settle(pi.id, token, answers);
    await expectCreditedOnce(pi.id, customer.id, amount, answers);
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
    const failed = (await stripeRequests({ path: `/v1/**` })).filter((r) => r.fault === "error_500" && (r.path.includes(pi.id) || r.path.includes(customer.id)));
    expect(failed.length).toBeGreaterThan(0);
    // Stop failing before the test reads Stripe itself.
    await removeFault(rule);
    await expectCreditedOnce(pi.id, customer.id, amount, answers);
  });
});
