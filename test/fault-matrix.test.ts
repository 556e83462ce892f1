// The fault matrix: every Stripe call of the credit protocol × every way Stripe fails × both
// ways a credit starts (a browser's confirm, or Stripe's payment_intent.succeeded webhook whose
// notice the object's alarm acts on). After each cell's alarms have run (and the browser has
// retried when nothing was scheduled), the PaymentIntent must have exactly one balance
// transaction of the right amount, have its object in its final state, be off the operator list,
// and every answer given along the way must agree with that. No cell is skipped. The webhook's
// credit takes the PI from its signed event and never reads it (protocol.ts #current) unless
// the PI object marks what it credits (MARK_CREDITED, on while an older server runs beside it):
// so the mark's row, and the read's row from the webhook, run with marking on, and their PIs
// must end marked; every other cell runs with the default, and its PI must be left unmarked.
//
// Then what the matrix's shape cannot hold: the credit-tx:{pi}:{n} key sequence under faults,
// a permanent refusal, and ledgers longer than a page. Both tables are printed at the end.
// (A crash at every await of the protocol, the reversals', an adoption's and the notice alarm's,
// is in recovery.test.ts: it cuts off every object, so it cannot run beside these cells.)

import { runDurableObjectAlarm } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import { TEST_BINDINGS } from "./bindings.js";
import {
  addFault,
  answerOf,
  call,
  confirm,
  deliver,
  emu,
  eventsFor,
  expectCreditedOnce,
  json,
  ledgerFor,
  markingOn,
  paidTopUp,
  piObject,
  removeFault,
  settle,
  settledCredit,
  stripePaymentIntent,
  stripeRequests,
  waitForObject,
  type Answer,
} from "./helpers.js";

type Entry = "browser" | "webhook";
type CallName = "read PI" | "mark" | "credit write" | "ledger list";
type FaultName =
  "500 before apply" | "applied then dropped" | "429" | "409 in use" | "hang past timeout" | "500 ×5" | "dropped ×5" | "replayed 500" | "key expired";

const ENTRIES: Entry[] = ["browser", "webhook"];
const CALLS: CallName[] = ["read PI", "mark", "credit write", "ledger list"];
const FAULTS: FaultName[] = [
  "500 before apply",
  "applied then dropped",
  "429",
  "409 in use",
  "hang past timeout",
  "500 ×5",
  "dropped ×5",
  "replayed 500",
  "key expired",
];

interface Target {
  method: "GET" | "POST";
  path: string;
  key?: string;
}

function targetOf(callName: CallName, pi: string, customer: string): Target {
  switch (callName) {
    case "read PI":
      return { method: "GET", path: `/v1/payment_intents/${pi}` };
    case "mark":
      return { method: "POST", path: `/v1/payment_intents/${pi}`, key: `credit-mark:${pi}*` };
    case "credit write":
      return { method: "POST", path: `/v1/customers/${customer}/balance_transactions`, key: `credit-tx:${pi}*` };
    case "ledger list":
      return { method: "GET", path: `/v1/customers/${customer}/balance_transactions` };
  }
}

const at = (t: Target) => ({ method: t.method, path: t.path, ...(t.key ? { key: t.key } : {}) });

/** The column's fault on a call that carries an Idempotency-Key (a write), or any call for the key-less kinds. */
function plainRules(fault: Exclude<FaultName, "replayed 500" | "key expired">, target: Target): Record<string, unknown>[] {
  const where = at(target);
  // Three in a row outlast the SDK's own two retries, so the protocol has to recover by itself;
  // five outlast them twice (the attempt and the first retry after it).
  switch (fault) {
    case "500 before apply":
      return [{ ...where, kind: "error_500", saved: false, times: 3 }];
    case "applied then dropped":
      return [{ ...where, kind: "drop", times: 3 }];
    case "429":
      return [{ ...where, kind: "rate_limit", times: 3 }];
    case "409 in use":
      return [{ ...where, kind: "in_use", times: 3 }];
    case "hang past timeout":
      return [{ ...where, kind: "hang", apply: true, times: 3 }];
    case "500 ×5":
      return [{ ...where, kind: "error_500", saved: false, times: 5 }];
    case "dropped ×5":
      // Applied once, then the answer and every replay of it lost, past the SDK's retries twice.
      return [{ ...where, kind: "drop", replays: true, times: 5 }];
  }
}

/** Applied, answer lost, the SDK's retry refused (the 429 fires on the key's second request): outcome unknown. */
const unknownOutcome = (write: Target) => [
  { ...at(write), kind: "drop", times: 1 },
  { ...at(write), kind: "rate_limit", every: 2, times: 1 },
];

/**
 * The fault rules of one cell. A read (PI or ledger) carries no Idempotency-Key, so "replayed
 * 500" and "key expired" cannot strike it: in those columns the read fails past the SDK's
 * retries and the credit write meets the column's fault as well. The ledger is read only when
 * a credit write's outcome is unknown, so the ledger list row always makes it so first.
 */
function cellRules(callName: CallName, fault: FaultName, pi: string, customer: string): Record<string, unknown>[] {
  const target = targetOf(callName, pi, customer);
  const write = targetOf("credit write", pi, customer);
  const readFails = [{ ...at(target), kind: "error_500", saved: false, times: 3 }];
  const replayed500 = (applied: boolean) => [{ ...at(write), kind: "error_500", saved: true, apply: applied, times: 1 }];
  const isRead = target.key === undefined;
  if (fault === "replayed 500") {
    // The worst kind: the 500 is what every retry of the key replays. Applied where the write
    // itself is struck (the ledger must show it); not applied ahead of a failing ledger look
    // (a new key must credit, once the ledger can be read).
    if (!isRead) return [{ ...at(target), kind: "error_500", saved: true, apply: true, times: 1 }];
    return callName === "ledger list" ? [...replayed500(false), ...readFails] : [...readFails, ...replayed500(true)];
  }
  if (fault === "key expired") {
    if (!isRead) return unknownOutcome(target);
    // Ledger list: applied under a saved 500, the key pruned, and the look that must find it fails.
    return callName === "ledger list" ? [...replayed500(true), ...readFails] : [...readFails, ...unknownOutcome(write)];
  }
  const rules = plainRules(fault, target);
  return callName === "ledger list" ? [...unknownOutcome(write), ...rules] : rules;
}

/** How a credit starts, one step at a time, and how it is let finish (as production would). */
interface Driver {
  answers: Answer[];
  /** One more go: a browser's confirm, or the object's alarm (after the webhook's delivery). */
  step(): Promise<void>;
  /** Alarms and browser retries until done; then one confirm, whose answer must be the credit. */
  finish(): Promise<void>;
}

async function driver(entry: Entry, pi: string, token: string): Promise<Driver> {
  const answers: Answer[] = [];
  if (entry === "browser") {
    return {
      answers,
      step: async () => {
        answers.push(await answerOf(await confirm(token, pi)));
      },
      finish: async () => {
        await settle(pi, token, answers);
        // settle gives up after a few rounds; follow-up work (a mark) may still be on its way.
        if (!settledCredit(await piObject(pi).inspect())) {
          await waitForObject(pi, settledCredit);
          answers.push(await answerOf(await confirm(token, pi)));
        }
      },
    };
  }
  const [event] = await eventsFor("payment_intent.succeeded", pi);
  expect(event).toBeDefined();
  let delivered = false;
  return {
    answers,
    step: async () => {
      if (!delivered) {
        delivered = true;
        expect((await deliver(event?.id as string)).status).toBe(200);
      }
      await runDurableObjectAlarm(piObject(pi));
    },
    finish: async () => {
      if (!delivered) expect((await deliver(event?.id as string)).status).toBe(200);
      await waitForObject(pi, settledCredit);
      answers.push(await answerOf(await confirm(token, pi)));
    },
  };
}

/** Every entry GET /operator/credits lists, page by page (other tests' entries share the list). */
async function operatorList(): Promise<{ payment_intent_id: string; state: string; reason?: string | null }[]> {
  const all: { payment_intent_id: string; state: string; reason?: string | null }[] = [];
  let after: string | null = null;
  do {
    const res = await call(`/operator/credits?limit=200${after ? `&after=${after}` : ""}`, {
      headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` },
    });
    expect(res.status).toBe(200);
    const page = await json<{ data: { payment_intent_id: string; state: string; reason?: string | null }[]; next_after: string | null }>(res);
    all.push(...page.data);
    after = page.next_after;
  } while (after);
  return all;
}

async function expectNotListed(pi: string): Promise<void> {
  expect((await operatorList()).map((e) => e.payment_intent_id)).not.toContain(pi);
}

/**
 * Steps until a credit write has gone out and its outcome came back to the object (its journal
 * has the credit step), bounded. The webhook's alarm may be run by the platform itself rather
 * than by a step, so this waits on the object, not on the steps.
 */
async function untilCreditSent(d: Driver, pi: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  const sent = async () => (await piObject(pi).inspect()).journal.some((j) => j.step === "credit");
  while (!(await sent())) {
    if (Date.now() > deadline) throw new Error(`no credit write for ${pi}`);
    await d.step();
    await new Promise((r) => setTimeout(r, 25));
  }
}

const results = new Map<string, string>();

/** Answers in order, runs of one status folded: 503→200×3. */
function trail(answers: Answer[]): string {
  const runs: [number, number][] = [];
  for (const a of answers) {
    const last = runs.at(-1);
    if (last && last[0] === a.status) last[1]++;
    else runs.push([a.status, 1]);
  }
  return runs.map(([status, n]) => (n > 1 ? `${status}×${n}` : String(status))).join("→");
}

/** Whether a cell's PI object marks what it credits: only where the call struck is one it makes only then. */
const marksIn = (callName: CallName, entry: Entry) => callName === "mark" || (callName === "read PI" && entry === "webhook");

async function runCell(entry: Entry, callName: CallName, fault: FaultName): Promise<void> {
  const amount = 1000 + Math.floor(Math.random() * 9000);
  const { customer, pi, token } = await paidTopUp(amount);
  const marked = marksIn(callName, entry);
  if (marked) await markingOn(pi.id);
  for (const rule of cellRules(callName, fault, pi.id, customer.id)) await emu("/faults", rule);

  const d = await driver(entry, pi.id, token);
  await d.step();
  if (fault === "key expired" || (callName === "ledger list" && fault !== "replayed 500")) {
    // The outcome is unknown once the write went out; then Stripe forgets the key.
    await untilCreditSent(d, pi.id);
    await emu("/idempotency/expire", { key: `*${pi.id}*` });
  }
  await d.finish();
  await expectCreditedOnce(pi.id, customer.id, amount, d.answers, marked);
  await expectNotListed(pi.id);
  // Every rule of the cell fired at least once: no cell passes without meeting its fault.
  const mine = (await emu<{ data: { key: string | null; path: string; kind: string; fired: number }[] }>("/faults")).data.filter(
    (r) => r.path.includes(pi.id) || r.path.includes(customer.id),
  );
  expect(mine.length).toBeGreaterThan(0);
  for (const r of mine) expect(r.fired, `${r.kind} ${r.path} ${r.key ?? ""}`).toBeGreaterThan(0);

  results.set(`${callName}|${entry}|${fault}`, `ok ${trail(d.answers)}`);
}

describe.concurrent("fault matrix", () => {
  for (const callName of CALLS) {
    for (const entry of ENTRIES) {
      for (const fault of FAULTS) {
        it(`${callName} × ${fault} (${entry})`, async () => {
          results.set(`${callName}|${entry}|${fault}`, "FAILED");
          await runCell(entry, callName, fault);
        });
      }
    }
  }
});

// ---- Beyond the matrix ---------------------------------------------------------------------

const further = new Map<string, string>();

/** The distinct credit keys sent for `pi`, in the order first sent. */
async function creditKeysSent(pi: string): Promise<string[]> {
  return [...new Set((await stripeRequests({ key: `credit-tx:${pi}*` })).map((r) => r.idempotency_key as string))];
}

describe.concurrent("the credit-tx:{pi}:{n} keys under faults", () => {
  it("a 500 saved under the first key: the ledger is read, then credit-tx:{pi}:2 credits", async () => {
    further.set("key :2 after a saved 500", "FAILED");
    const { customer, pi, token } = await paidTopUp(2300);
    await emu("/faults", { kind: "error_500", saved: true, key: `credit-tx:${pi.id}`, times: 1 });
    const answers = await settle(pi.id, token, []);
    await expectCreditedOnce(pi.id, customer.id, 2300, answers);
    expect(await creditKeysSent(pi.id)).toEqual([`credit-tx:${pi.id}`, `credit-tx:${pi.id}:2`]);
    // The new key went out only after a look found nothing.
    const log = await stripeRequests({ path: `/v1/customers/${customer.id}/balance_transactions` });
    const firstTwo = log.findIndex((r) => r.idempotency_key === `credit-tx:${pi.id}:2`);
    expect(log.slice(0, firstTwo).some((r) => r.method === "GET")).toBe(true);
    expect((await stripeRequests({ key: `credit-tx:${pi.id}:2` })).filter((r) => r.status === 200 && !r.replayed)).toHaveLength(1);
    further.set("key :2 after a saved 500", `ok ${trail(answers)}, keys 1,2`);
  });

  it("a saved 500 under :2 as well (not applied): credit-tx:{pi}:3 credits", async () => {
    further.set("keys 1 and :2 saved 500", "FAILED");
    const { customer, pi, token } = await paidTopUp(2400);
    await emu("/faults", { kind: "error_500", saved: true, key: `credit-tx:${pi.id}`, times: 1 });
    await emu("/faults", { kind: "error_500", saved: true, key: `credit-tx:${pi.id}:2`, times: 1 });
    const answers = await settle(pi.id, token, []);
    await expectCreditedOnce(pi.id, customer.id, 2400, answers);
    expect(await creditKeysSent(pi.id)).toEqual([`credit-tx:${pi.id}`, `credit-tx:${pi.id}:2`, `credit-tx:${pi.id}:3`]);
    further.set("keys 1 and :2 saved 500", `ok ${trail(answers)}, keys 1,2,3`);
  });

  it("a saved 500 under :2 after it applied: the ledger look finds it, no :3", async () => {
    further.set(":2 applied under a saved 500", "FAILED");
    const { customer, pi, token } = await paidTopUp(2500);
    await emu("/faults", { kind: "error_500", saved: true, key: `credit-tx:${pi.id}`, times: 1 });
    await emu("/faults", { kind: "error_500", saved: true, apply: true, key: `credit-tx:${pi.id}:*`, times: 1 });
    const answers = await settle(pi.id, token, []);
    await expectCreditedOnce(pi.id, customer.id, 2500, answers);
    expect(await creditKeysSent(pi.id)).toEqual([`credit-tx:${pi.id}`, `credit-tx:${pi.id}:2`]);
    expect(
      (await piObject(pi.id).inspect()).journal.some((j) => j.step === "credit" && j.outcome === "recorded" && (j.detail ?? "").startsWith("ledger")),
    ).toBe(true);
    further.set(":2 applied under a saved 500", `ok ${trail(answers)}, keys 1,2, found in ledger`);
  });

  it("from the webhook: a saved 500 under the first key, alarms finish it under :2", async () => {
    further.set("key :2 from the webhook", "FAILED");
    const { customer, pi, token } = await paidTopUp(2600);
    await emu("/faults", { kind: "error_500", saved: true, key: `credit-tx:${pi.id}`, times: 1 });
    const d = await driver("webhook", pi.id, token);
    await d.step();
    await d.finish();
    await expectCreditedOnce(pi.id, customer.id, 2600, d.answers);
    expect(await creditKeysSent(pi.id)).toEqual([`credit-tx:${pi.id}`, `credit-tx:${pi.id}:2`]);
    further.set("key :2 from the webhook", "ok");
  });
});

describe.concurrent("a permanent refusal (400 on the credit write)", () => {
  for (const [entry, marked] of ENTRIES.flatMap((e) => [[e, true] as const, [e, false] as const])) {
    const what = marked ? "the mark taken back" : "nothing marked";
    it(`(${entry}${marked ? ", marking" : ""}) → needs_attention, listed with a reason, no credit, ${what}; an operator retry then credits once`, async () => {
      const label = `400 on the credit write (${entry}${marked ? ", marking" : ""})`;
      further.set(label, "FAILED");
      const { customer, pi, token } = await paidTopUp(2700);
      if (marked) await markingOn(pi.id);
      await emu("/faults", { kind: "error_400", key: `credit-tx:${pi.id}*`, times: 1 });
      const d = await driver(entry, pi.id, token);
      await d.step();
      // Let whatever the object still owes run (the mark's withdrawal), whoever runs its alarm.
      for (let i = 0; i < 5; i++) if (!(await runDurableObjectAlarm(piObject(pi.id)))) break;
      await waitForObject(pi.id, (i) => i.record?.state === "needs_attention" && i.record.mark_state !== "withdrawing");
      if (entry === "webhook") d.answers.push(await answerOf(await confirm(token, pi.id)));
      const answers = d.answers;
      expect(answers.length).toBeGreaterThan(0);
      for (const a of answers) expect(a).toMatchObject({ status: 409, code: "credit_needs_attention" });
      expect(await ledgerFor(customer.id, pi.id)).toEqual([]);
      const { record } = await piObject(pi.id).inspect();
      expect(record?.state).toBe("needs_attention");
      // A mark is withdrawn only where one was sent.
      expect(record?.mark_state).toBe(marked ? "withdrawn" : "off");
      const markKeys = new Set((await stripeRequests({ key: `credit-{mark,unmark}:${pi.id}*` })).map((r) => r.idempotency_key));
      expect([...markKeys]).toEqual(marked ? [`credit-mark:${pi.id}`, `credit-unmark:${pi.id}:2`] : []);
      const listed = (await operatorList()).find((e) => e.payment_intent_id === pi.id);
      expect(listed?.state).toBe("needs_attention");
      expect(listed?.reason ?? "").toMatch(/refused|400|invalid/i);
      // The mark (if any) went out alongside the credit; Stripe refused the credit, so it is taken back.
      expect(["", undefined]).toContain((await stripePaymentIntent(pi.id)).metadata.credited);

      // The operator fixed the cause: a retry credits once, under a new key, and marks again if marking.
      const retry = await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } });
      expect(retry.status).toBe(200);
      await waitForObject(pi.id, settledCredit);
      await expectCreditedOnce(pi.id, customer.id, 2700, [await answerOf(await confirm(token, pi.id))], marked);
      expect(await creditKeysSent(pi.id)).toEqual([`credit-tx:${pi.id}`, `credit-tx:${pi.id}:2`]);
      await expectNotListed(pi.id);
      further.set(label, "ok");
    });
  }
});

describe.concurrent("ledgers longer than a page", () => {
  for (const [count, entry] of [
    [250, "browser"],
    [250, "webhook"],
    [2100, "browser"],
  ] as const) {
    it(`an applied-then-dropped credit write, then ${count} unrelated entries in front of it (${entry}): found, not written again`, async () => {
      const label = `${count} newer entries (${entry})`;
      further.set(label, "FAILED");
      const { customer, pi, token } = await paidTopUp(2800);
      for (const rule of unknownOutcome(targetOf("credit write", pi.id, customer.id))) await emu("/faults", rule);
      // No ledger look may succeed before the padding is in place (one could find the entry
      // while it is still the newest): the ledger cannot be read until then.
      const blind = await addFault({ kind: "error_500", saved: false, method: "GET", path: `/v1/customers/${customer.id}/balance_transactions`, times: 1000 });
      const d = await driver(entry, pi.id, token);
      await d.step();
      await untilCreditSent(d, pi.id);
      expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1); // applied, though nobody was told
      expect((await emu<{ ledger_length: number }>(`/customers/${customer.id}/balance_transactions/pad`, { count })).ledger_length).toBe(count + 1);
      // Stripe forgets the key too: only a search back to the entry stops a second credit.
      await emu("/idempotency/expire", { key: `*${pi.id}*` });
      await removeFault(blind);
      await d.finish();
      await expectCreditedOnce(pi.id, customer.id, 2800, d.answers);
      const pages = (await stripeRequests({ method: "GET", path: `/v1/customers/${customer.id}/balance_transactions` })).filter(
        (r) => r.fault === null && r.status === 200,
      ).length;
      expect(pages).toBeGreaterThanOrEqual(Math.ceil(count / 100));
      expect(await creditKeysSent(pi.id)).toEqual([`credit-tx:${pi.id}`]);
      further.set(label, `ok, ${pages} ledger pages read`);
    }, 60_000);
  }
});

afterAll(() => {
  const width = 25;
  const pad = (s: string, w = width) => s.padEnd(w);
  const rowName = (c: CallName, e: Entry) => `${c} ← ${e}`;
  const lines = [
    "",
    "Fault matrix: one balance transaction, PI marked (rows mark and read PI ← webhook, run with marking on) or else untouched, object final, off the operator list, answers consistent (answers in order)",
    "(a read has no Idempotency-Key: under replayed 500 / key expired it fails past the SDK's retries and the credit write meets the column's fault)",
    pad("call ← entry \\ fault") + FAULTS.map((f) => pad(f)).join(""),
    ...CALLS.flatMap((c) => ENTRIES.map((e) => pad(rowName(c, e)) + FAULTS.map((f) => pad(results.get(`${c}|${e}|${f}`) ?? "not run")).join(""))),
    "",
    "Beyond the matrix",
    ...[...further.entries()].map(([k, v]) => `${pad(k, 90)}${v}`),
    "",
  ];
  console.log(lines.join("\n"));
});
