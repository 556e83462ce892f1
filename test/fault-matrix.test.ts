// The fault matrix: every Stripe call of the credit protocol × every way Stripe fails. After
// each cell's alarms have run (and the browser has retried when nothing was scheduled), the
// PaymentIntent must have exactly one balance transaction of the right amount, be marked, have
// its object in its final state, and every answer given along the way must agree with that.
// The table printed at the end shows which cells hold.

import { afterAll, describe, expect, it } from "vitest";
import { TEST_BINDINGS } from "./bindings.js";
import { answerOf, call, confirm, emu, expectCreditedOnce, json, paidTopUp, settle, type Answer } from "./helpers.js";

type CallName = "read PI" | "mark" | "credit write" | "ledger list";
type FaultName = "500 before apply" | "applied then dropped" | "429" | "409 in use" | "hang past timeout" | "replayed 500" | "key expired";

const CALLS: CallName[] = ["read PI", "mark", "credit write", "ledger list"];
const FAULTS: FaultName[] = ["500 before apply", "applied then dropped", "429", "409 in use", "hang past timeout", "replayed 500", "key expired"];

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

/** The fault rules for one cell; null where the fault cannot apply (a GET carries no Idempotency-Key). */
function faultRules(fault: FaultName, target: Target): Record<string, unknown>[] | null {
  const at = { method: target.method, path: target.path, ...(target.key ? { key: target.key } : {}) };
  // Three in a row outlast the SDK's own two retries, so the protocol has to recover by itself.
  switch (fault) {
    case "500 before apply":
      return [{ ...at, kind: "error_500", saved: false, times: 3 }];
    case "applied then dropped":
      return [{ ...at, kind: "drop", times: 3 }];
    case "429":
      return [{ ...at, kind: "rate_limit", times: 3 }];
    case "409 in use":
      return [{ ...at, kind: "in_use", times: 3 }];
    case "hang past timeout":
      return [{ ...at, kind: "hang", apply: true, times: 3 }];
    case "replayed 500":
      // The worst kind: the write was applied, yet the 500 is what every retry of the key replays.
      return target.key ? [{ ...at, kind: "error_500", saved: true, apply: true, times: 1 }] : null;
    case "key expired":
      // Applied, answer lost, the SDK's retry refused (the 429 fires on the second request only):
      // the outcome stays unknown while the key expires.
      return target.key ? [{ ...at, kind: "drop", times: 1 }, { ...at, kind: "rate_limit", every: 2, times: 1 }] : null;
  }
}

const results = new Map<string, string>();

async function runCell(callName: CallName, fault: FaultName): Promise<void> {
  const amount = 1000 + Math.floor(Math.random() * 9000);
  const { customer, pi, token } = await paidTopUp(amount);
  const target = targetOf(callName, pi.id, customer.id);
  let rules = faultRules(fault, target);
  if (rules === null) {
    results.set(`${callName}|${fault}`, "n/a");
    return;
  }
  if (callName === "ledger list") {
    // The ledger is read only when a credit write's outcome is unknown: make it so first.
    const write = targetOf("credit write", pi.id, customer.id);
    rules = [...(faultRules("key expired", write) ?? []), ...rules];
  }
  for (const rule of rules) await emu("/faults", rule);

  const answers: Answer[] = [await answerOf(await confirm(token, pi.id))];
  if (fault === "key expired") await emu("/idempotency/expire", { key: `*${pi.id}*` });
  await settle(pi.id, token, answers);
  await expectCreditedOnce(pi.id, customer.id, amount, answers);
  // Nothing left for an operator.
  const listed = await json<{ data: { payment_intent_id: string }[] }>(
    await call("/operator/credits", { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } }),
  );
  expect(listed.data.map((e) => e.payment_intent_id)).not.toContain(pi.id);

  results.set(`${callName}|${fault}`, `ok ${answers.map((a) => a.status).join("→")}`);
}

describe("fault matrix", () => {
  for (const callName of CALLS) {
    for (const fault of FAULTS) {
      it(`${callName} × ${fault}`, async () => {
        results.set(`${callName}|${fault}`, "FAILED");
        await runCell(callName, fault);
      });
    }
  }

  afterAll(() => {
    const width = 25;
    const pad = (s: string) => s.padEnd(width);
    const lines = [
      "",
      "Fault matrix: one balance transaction, PI marked, object final, answers consistent (answers in order)",
      pad("call \\ fault") + FAULTS.map(pad).join(""),
      ...CALLS.map((c) => pad(c) + FAULTS.map((f) => pad(results.get(`${c}|${f}`) ?? "not run")).join("")),
      "",
    ];
    console.log(lines.join("\n"));
  });
});
