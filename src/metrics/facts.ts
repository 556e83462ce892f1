// What the service counts, at the place each thing happens: a credit, a debit, a reversal, a
// recharge started, a Stripe call (its kind, status and latency), a wait for a Stripe permit.
// Each fact goes two ways, both synchronous and neither able to fail the work it describes:
//   - a data point to Workers Analytics Engine (the METRICS binding), which production's console
//     reads back with SQL (analytics.ts); no binding, no write (local writes are dropped anyway);
//   - this isolate's own minute counters (counters.ts), which the console reads locally.
// Recording is a function call, not an object call: the debit path gains no round trip.

import type { SpendResult } from "../wallet/contract.js";
import { counters } from "./counters.js";

/** Money facts: `amount` in the currency's minor unit, positive. */
export type MoneyFact = { name: "credit" | "debit" | "reversal" | "recharge"; amount: number; currency: string };
/** One Stripe request as it ended: `status` is the HTTP status, or "network" for no answer. */
export type StripeCallFact = { name: "stripe_call"; kind: string; status: string; ms: number };
/** One permit taken (or refused) from the Stripe governor, and how long the call waited for it. */
export type GovernorWaitFact = { name: "governor_wait"; priority: string; granted: boolean; ms: number };
export type Fact = MoneyFact | StripeCallFact | GovernorWaitFact;

export const MONEY_FACTS = ["credit", "debit", "reversal", "recharge"] as const;

/**
 * The data point's layout, the contract with the SQL in analytics.ts (and README's query):
 * index1 and blob1 the fact's name; blob2 its detail (a currency, a Stripe call's kind, a
 * priority); blob3 its status (a Stripe HTTP status, "network", "granted", "refused"; empty for
 * money); double1 the amount in minor units (money); double2 the milliseconds (calls, waits).
 */
export function dataPoint(fact: Fact): { detail: string; status: string; amount: number; ms: number } {
  switch (fact.name) {
    case "stripe_call":
      return { detail: fact.kind, status: fact.status, amount: 0, ms: fact.ms };
    case "governor_wait":
      return { detail: fact.priority, status: fact.granted ? "granted" : "refused", amount: 0, ms: fact.ms };
    default:
      return { detail: fact.currency, status: "", amount: fact.amount, ms: 0 };
  }
}

/** The binding as the Worker's Env has it when wrangler.toml declares it; optional, so a deployment without it records locally only. */
export interface MetricsEnv {
  METRICS?: AnalyticsEngineDataset;
}

/** Records `fact`. Never throws: a metric that cannot be written is not worth a failed credit. */
export function record(env: MetricsEnv, fact: Fact, now = Date.now()): void {
  const point = dataPoint(fact);
  counters.add(fact.name, point.detail, point.status, point.amount, point.ms, now);
  try {
    env.METRICS?.writeDataPoint({ indexes: [fact.name], blobs: [fact.name, point.detail, point.status], doubles: [point.amount, point.ms] });
  } catch {
    // Analytics Engine drops what it cannot take; so do we.
  }
}

/** A spending request that took credit (a debit, or a hold's capture) is a debit; holds and releases move none. Call for first answers only, not replays. */
export function recordSpending(env: MetricsEnv, result: SpendResult, now = Date.now()): void {
  if (!result.ok) return;
  if (result.op === "debit") record(env, { name: "debit", amount: result.debit.amount, currency: result.debit.currency }, now);
  else if (result.op === "capture" && result.debit.amount > 0)
    record(env, { name: "debit", amount: result.debit.amount, currency: result.balance.currency }, now);
}

/**
 * A Stripe request's kind: its method and path with the ids taken out, so that calls group by
 * what they do (`GET /v1/payment_intents/:id`). An id is a segment with an underscore and a
 * capital letter or digit (`pi_3Nf…`, `cus_Q2…`); resource names (`balance_transactions`) have neither.
 */
export function stripeCallKind(method: string, url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return `${method.toUpperCase()} ?`;
  }
  const segments = path.split("/").map((s) => (s.includes("_") && /[A-Z0-9]/.test(s) ? ":id" : s));
  return `${method.toUpperCase()} ${segments.join("/")}`;
}
