// What the Durable Objects other than the PaymentIntent object (src/credit/contract.ts) answer
// over RPC, and the names of the singletons: the credit registry (the operator's list), the
// request limiter, the Stripe governor and the account object (its wallet's types are in
// src/wallet/contract.ts). Routes and the Stripe client import these, never an object's file.

import type { AdjustmentRecord } from "../credit/contract.js";
import type { BatchRow, WalletRow } from "../wallet/schema.js";

// ---- The credit registry (src/objects/registry.ts) ------------------------------------------

/** The registry's name: there is one. */
export const REGISTRY_NAME = "credits";

/** A reversal or restoration still owed on a credited PaymentIntent, as an operator sees it. */
export interface OwedAdjustment {
  operation: string;
  state: Exclude<AdjustmentRecord["state"], "done">;
  direction: AdjustmentRecord["direction"];
  amount: number;
  last_error: string | null;
}

/**
 * One PaymentIntent waiting for a retry or an operator, as the registry stores and lists it.
 * `state` is `operatorState` of the PI object's record; times are ms since the epoch.
 */
export interface AttentionEntry {
  payment_intent_id: string;
  state: string;
  customer_id: string | null;
  amount: number | null;
  currency: string | null;
  reason: string | null;
  last_error: string | null;
  retry_count: number;
  next_retry_at: number | null;
  updated_at: number;
  adjustments: OwedAdjustment[];
}

/**
 * What a PaymentIntent object says of itself to the registry (its `operatorView()`): whether
 * nothing at all is owed any more, and the entry as the registry should store it (null when
 * the object has no record).
 */
export interface OperatorView {
  settled: boolean;
  entry: AttentionEntry | null;
}

/** A page of the registry's list: entries by PI id, `state` only if asked. */
export interface AttentionQuery {
  limit: number;
  after?: string;
  state?: string;
}

/** One page, and where the next starts (null on the last page). */
export interface AttentionPage {
  entries: AttentionEntry[];
  nextAfter: string | null;
}

/** A signed webhook event that did not parse, as listed for an operator; `received_at` in ms. */
export interface BadEvent {
  event_id: string;
  type: string | null;
  error: string;
  received_at: number;
}

// ---- The request limiter (src/objects/limiter.ts) -------------------------------------------

/** One request taken from a bucket, or how long until one would be. */
export type Take = { ok: true } | { ok: false; retryAfterSeconds: number };

// ---- The Stripe governor (src/objects/governor.ts) ------------------------------------------

/** The governor's name: there is one. */
export const GOVERNOR_NAME = "stripe";

/** Whose call it is: crediting (and creating payments) first, display reads after. */
export type Priority = "credit" | "display";

/**
 * Permits to make Stripe calls: each one's offset in ms from when the governor answered, in
 * order, and the spacing between calls at the rate now; or a refusal, when the schedule is already further ahead than the priority may wait.
 */
export type Lease = { ok: true; offsets: number[]; intervalMs: number } | { ok: false; retryAfterMs: number };

/** The governor's figures, for operators and tests. */
export interface GovernorStatus {
  /** STRIPE_RATE_LIMIT: calls per second for the whole service. */
  budget: number;
  /** The rate now: the budget, or less after a 429 from Stripe. */
  rate: number;
  /** How far ahead permits are already promised: the wait a new call would have. */
  backlog_ms: number;
  /** Permits leased since the governor started. */
  granted: number;
  /** Leases refused because the wait would have been too long. */
  refused: number;
  /** Lease calls served (round trips to this object). */
  leases: number;
}

// ---- The account object (src/objects/account.ts) --------------------------------------------

/** The account's Stripe customer: known, known not to exist (yet), or not knowable now. */
export type CustomerLookup =
  { ok: true; customerId: string } | { ok: false; reason: "no_customer" } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

/** A top-up PaymentIntent created for the browser to pay, or why none was. */
export type TopUpResult =
  | { ok: true; paymentIntentId: string; clientSecret: string; amount: number; currency: string }
  | { ok: false; reason: "idempotency_conflict" }
  | { ok: false; reason: "refused"; message: string }
  | { ok: false; reason: "currency_mismatch"; currency: string }
  | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

/** The wallet as stored, for tests and operators. */
export interface WalletInspection {
  wallet: WalletRow | null;
  sums: { total: number; held: number };
  batches: BatchRow[];
  owed: number;
}
