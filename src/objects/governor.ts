// The Stripe governor: one object (named "stripe") that keeps every Stripe call the service makes
// under one account-wide budget (STRIPE_RATE_LIMIT per second; Stripe allows about 25/s in test
// mode, 100/s live, for everything the account does), so a burst waits its turn instead of
// meeting Stripe's 429.
//
// It hands out permits in leases, not one by one: each isolate's pool (src/stripe/permits.ts)
// asks for as many as it has calls waiting, plus a few it expects, and spends them itself, so
// the common Stripe call makes no round trip here. A lease is a schedule, not a heap: the
// permits are spaced at the budget's rate (a cell-rate schedule: each permit is due one
// interval after the last, and up to BURST may go at once after a quiet spell), so however
// many permits a lease holds, Stripe never sees more than the budget plus the burst in a
// second. Nothing waits here: the answer says when each permit may be used, and the pool waits.
//
// Calls that credit may be scheduled up to a minute ahead; display reads only a few seconds,
// so under a backlog they are refused (the page shows what it has) and credits keep the budget.
// A 429 that still happens (someone else uses the same Stripe account) halves the rate; it
// climbs back by a tenth of the budget per quiet second. State is memory only: a restarted
// governor starts at the configured rate.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { settings } from "../settings.js";
import type { GovernorStatus, Lease, Priority } from "./contract.js";

/** How far ahead a call may be scheduled before it is refused (its caller retries later). */
const MAX_WAIT_MS: Record<Priority, number> = { credit: 60_000, display: 5_000 };
/**
 * Permits that may go at once after a quiet spell: small, because Stripe counts per second: a
 * budget B never lets more than B + BURST calls into one second (keep B that far under Stripe's limit).
 */
export const BURST = 2;
/** The most permits one lease holds: bounds what an isolate that goes quiet leaves unspent. */
export const LEASE_MAX = 16;

/** The singleton rate governor; its public methods are the RPC surface. */
export class StripeGovernor extends DurableObject<Env> {
  readonly #budget: number;
  #rate: number;
  /** When the next permit is due on the schedule (ms); a permit may go up to BURST - 1 intervals early. */
  #due = 0;
  #adjustedAt = Date.now();
  #lastSlowdown = 0;
  #granted = 0;
  #refused = 0;
  #leases = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // 0 turns the governor off in the Stripe client; an object asked anyway grants one a second.
    this.#budget = Math.max(1, settings(env).stripe.rateLimit);
    this.#rate = this.#budget;
  }

  /**
   * Up to `want` permits (at least one, at most LEASE_MAX) for calls at `priority`: each permit's
   * offset in ms from now, in order, or a refusal when even the first would be due too far ahead.
   */
  async lease(priority: Priority, want: number): Promise<Lease> {
    this.#leases++;
    const now = Date.now();
    this.#recover(now);
    const interval = 1000 / this.#rate;
    const early = (BURST - 1) * interval;
    const count = Math.max(1, Math.min(LEASE_MAX, Math.floor(want) || 1));
    const offsets: number[] = [];
    let due = this.#due;
    for (let i = 0; i < count; i++) {
      const at = Math.max(now, due - early);
      if (at - now > MAX_WAIT_MS[priority]) break;
      offsets.push(Math.ceil(at - now));
      due = Math.max(due, at) + interval;
    }
    if (offsets.length === 0) {
      this.#refused++;
      return { ok: false, retryAfterMs: Math.ceil(this.#due - early - now - MAX_WAIT_MS[priority]) };
    }
    this.#due = due;
    this.#granted += offsets.length;
    return { ok: true, offsets, intervalMs: interval };
  }

  /**
   * Stripe answered 429: halve the rate, once per second however many calls of that second were
   * refused (they were all sent at the old rate; halving for each would stall the budget for a
   * minute), and nothing more goes out for one new interval.
   */
  async slowDown(): Promise<void> {
    const now = Date.now();
    this.#recover(now);
    if (now - this.#lastSlowdown < 1000) return;
    this.#rate = Math.max(1, this.#rate / 2);
    // Past the burst's allowance too: the next permit is one new interval away.
    this.#due = Math.max(this.#due, now) + BURST * (1000 / this.#rate);
    this.#lastSlowdown = now;
  }

  /** For operators and tests. */
  async status(): Promise<GovernorStatus> {
    const now = Date.now();
    this.#recover(now);
    return {
      budget: this.#budget,
      rate: this.#rate,
      backlog_ms: Math.max(0, Math.ceil(this.#due - now)),
      granted: this.#granted,
      refused: this.#refused,
      leases: this.#leases,
    };
  }

  /** After a slowdown, the rate climbs back by a tenth of the budget per second without another 429. */
  #recover(now: number): void {
    const seconds = (now - this.#adjustedAt) / 1000;
    this.#adjustedAt = now;
    if (this.#rate < this.#budget && now - this.#lastSlowdown > 1000) {
      this.#rate = Math.min(this.#budget, this.#rate + (this.#budget / 10) * seconds);
    }
  }
}
