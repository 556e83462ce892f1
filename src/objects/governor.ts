// The Stripe governor: one object (named "stripe") through which every Stripe call the service
// makes draws a permit, so that all objects together stay under one account-wide budget
// (STRIPE_RATE_LIMIT per second; Stripe allows about 25/s in test mode, 100/s live, for
// everything the account does). A burst waits its turn here instead of meeting Stripe's 429.
// Calls that credit go before reads for display. A 429 that still happens (someone else uses
// the same Stripe account) halves the rate; it climbs back by a tenth of the budget per quiet
// second. State is memory only: a restarted governor starts at the configured rate.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { settings } from "../settings.js";
import type { GovernorStatus, Permit, Priority } from "./contract.js";

interface Waiter {
  resolve: (p: Permit) => void;
  deadline: number;
}

/** How long a call may wait for a permit before it is refused (its caller retries later). */
const MAX_WAIT_MS: Record<Priority, number> = { credit: 60_000, display: 5_000 };
/** Bounds memory under a flood; beyond it, calls are refused at once. */
const MAX_QUEUED = 20_000;
/**
 * Permits that may go at once after a quiet spell: two, so a confirm's mark and credit go out
 * together, and small, because Stripe counts per second: a budget B never lets more than B + 2
 * calls into one second (keep B at least 2 under Stripe's limit).
 */
const BURST = 2;

/** The singleton rate governor; its public methods are the RPC surface. */
export class StripeGovernor extends DurableObject<Env> {
  readonly #budget: number;
  #rate: number;
  #tokens: number;
  #refilledAt = Date.now();
  #lastSlowdown = 0;
  #queues: Record<Priority, Waiter[]> = { credit: [], display: [] };
  #timer: ReturnType<typeof setTimeout> | null = null;
  #granted = 0;
  #refused = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // 0 turns the governor off in the Stripe client; an object asked anyway grants one a second.
    this.#budget = Math.max(1, settings(env).stripe.rateLimit);
    this.#rate = this.#budget;
    this.#tokens = BURST;
  }

  /** Waits for a permit to make one Stripe call. */
  async acquire(priority: Priority): Promise<Permit> {
    this.#refill();
    const queued = this.#queues.credit.length + this.#queues.display.length;
    const ahead = priority === "credit" ? this.#queues.credit.length : queued;
    if (ahead === 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#granted++;
      return { ok: true };
    }
    if (queued >= MAX_QUEUED) {
      this.#refused++;
      return { ok: false };
    }
    const now = Date.now();
    return new Promise<Permit>((resolve) => {
      this.#queues[priority].push({ resolve, deadline: now + MAX_WAIT_MS[priority] });
      this.#pump();
    });
  }

  /** Stripe answered 429: halve the rate. */
  async slowDown(): Promise<void> {
    this.#refill();
    this.#rate = Math.max(1, this.#rate / 2);
    this.#tokens = Math.min(this.#tokens, 0);
    this.#lastSlowdown = Date.now();
  }

  /** For operators and tests. */
  async status(): Promise<GovernorStatus> {
    this.#refill();
    return {
      budget: this.#budget,
      rate: this.#rate,
      queued: this.#queues.credit.length + this.#queues.display.length,
      granted: this.#granted,
      refused: this.#refused,
    };
  }

  #refill(): void {
    const now = Date.now();
    const seconds = (now - this.#refilledAt) / 1000;
    this.#refilledAt = now;
    if (this.#rate < this.#budget && now - this.#lastSlowdown > 1000) {
      this.#rate = Math.min(this.#budget, this.#rate + (this.#budget / 10) * seconds);
    }
    this.#tokens = Math.min(BURST, this.#tokens + this.#rate * seconds);
  }

  #pump(): void {
    if (this.#timer !== null) return;
    const tick = () => {
      this.#timer = null;
      this.#refill();
      const now = Date.now();
      for (const priority of ["credit", "display"] as const) {
        const queue = this.#queues[priority];
        while (queue.length > 0 && (queue[0] as Waiter).deadline < now) {
          this.#refused++;
          (queue.shift() as Waiter).resolve({ ok: false });
        }
      }
      while (this.#tokens >= 1) {
        const next = this.#queues.credit.shift() ?? this.#queues.display.shift();
        if (!next) break;
        this.#tokens -= 1;
        this.#granted++;
        next.resolve({ ok: true });
      }
      if (this.#queues.credit.length + this.#queues.display.length > 0) {
        const wait = Math.max(1, Math.ceil(((1 - this.#tokens) / this.#rate) * 1000));
        this.#timer = setTimeout(tick, wait);
      }
    };
    this.#timer = setTimeout(tick, Math.max(1, Math.ceil(((1 - this.#tokens) / this.#rate) * 1000)));
  }
}
