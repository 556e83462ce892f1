// When a recharge starts, and what a failure leads to: pure, so the rails can be read and
// property-tested on their own. The trigger is evaluated inside the wallet write that moves
// `available` (src/recharge/recharger.ts), so these see the balance exactly as that write left it.

import type { RechargeSettings } from "./contract.js";

/** After a failed recharge, the next one waits at least this long. */
export const RETRY_AFTER_FAILURE_MS = 3600_000;
/** A recharge waiting for the customer to authenticate is cancelled after this long. */
export const ACTION_WINDOW_MS = 24 * 3600_000;
/** This many failed recharges in a row switch auto-recharge off. */
export const MAX_CONSECUTIVE_FAILURES = 3;
/**
 * A recharge whose creation Stripe has not answered for this long is given up (its key is good
 * for 24 h; after that a retry under it could make a second PaymentIntent).
 */
export const GIVE_UP_MS = 20 * 3600_000;

export interface TriggerFacts {
  settings: RechargeSettings | null;
  /** The saved card, if any. */
  card: string | null;
  available: number;
  /** A recharge is pending, processing or waiting for authentication. */
  open: boolean;
  lastFailureAt: number | null;
  /** Recharged this calendar month (open and succeeded recharges). */
  monthTotal: number;
  now: number;
}

export type TriggerVerdict = { start: true } | { start: false; reason: "off" | "no_card" | "above_threshold" | "open" | "after_failure" | "monthly_limit" };

/** Whether a recharge starts now. */
export function shouldRecharge(f: TriggerFacts): TriggerVerdict {
  const s = f.settings;
  if (!s?.enabled) return { start: false, reason: "off" };
  if (f.card === null) return { start: false, reason: "no_card" };
  if (f.available >= s.threshold) return { start: false, reason: "above_threshold" };
  if (f.open) return { start: false, reason: "open" };
  if (f.lastFailureAt !== null && f.now - f.lastFailureAt < RETRY_AFTER_FAILURE_MS) return { start: false, reason: "after_failure" };
  if (f.monthTotal + s.amount > s.monthly_limit) return { start: false, reason: "monthly_limit" };
  return { start: true };
}

/** The calendar month (UTC) of a time: "2026-12". */
export function monthOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

/** What the user may set: a recharge within the top-up limits, and a monthly limit that allows at least one. */
export function settingsProblem(s: RechargeSettings, limits: { min: number; max: number }): string | null {
  if (s.amount < limits.min || s.amount > limits.max) return `amount: must be between ${limits.min} and ${limits.max}`;
  if (s.monthly_limit < s.amount) return "monthly_limit: must be at least amount";
  return null;
}
