// Reaching the Durable Objects from the Worker: stubs by name, and one retry policy for the RPC
// call itself (Cloudflare marks transient failures `retryable`; an `overloaded` object must not
// be hammered further). A failed call leaves nothing half-done: the objects' own records decide.

import type { Env } from "../env.js";
import { ApiError } from "../errors.js";

/** The PaymentIntent object for `paymentIntentId`. */
export function paymentIntentObject(env: Env, paymentIntentId: string) {
  return env.PAYMENT_INTENTS.get(env.PAYMENT_INTENTS.idFromName(paymentIntentId));
}

/** The Account object for `accountId`. */
export function accountObject(env: Env, accountId: string) {
  return env.ACCOUNTS.get(env.ACCOUNTS.idFromName(accountId));
}

interface DurableObjectError {
  retryable?: boolean;
  overloaded?: boolean;
}

/** Runs an RPC call (building a fresh stub each time), retrying once if the platform says it may. */
export async function callObject<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      const e = (typeof err === "object" && err !== null ? err : {}) as DurableObjectError;
      if (e.overloaded) throw new ApiError(429, "rate_limited", "Too many requests for this payment; try again shortly.", {}, { "Retry-After": "1" });
      if (e.retryable && attempt < 2) continue;
      throw err;
    }
  }
}
