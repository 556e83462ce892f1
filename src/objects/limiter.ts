// Request limits per account and per client address: one object per key (`confirm:acct:…`,
// `confirm:ip:…`, `topup:acct:…`, `topup:ip:…`) holding a token bucket in memory. Memory is
// enough: a limit is protection, not bookkeeping, and an evicted bucket simply starts full.
// (Cloudflare's rate-limiting binding would do as well in production; an object keeps the
// limits configurable per environment, which the tests rely on.)

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import type { Take } from "./contract.js";

/** A token bucket per key; its public methods are the RPC surface. */
export class RequestLimiter extends DurableObject<Env> {
  #tokens = -1;
  #at = 0;

  /** Takes one request from a bucket of `perMinute`, refilled evenly over the minute. */
  async take(perMinute: number): Promise<Take> {
    const now = Date.now();
    const perMs = perMinute / 60_000;
    this.#tokens = this.#tokens < 0 ? perMinute : Math.min(perMinute, this.#tokens + (now - this.#at) * perMs);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - this.#tokens) / perMs / 1000)) };
  }
}
