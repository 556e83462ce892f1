// Calling the Durable Objects from the routes: one retry policy for the RPC call itself
// (Cloudflare marks transient failures `retryable`; an `overloaded` object must not be hammered
// further), and the account → customer pairings this isolate has already seen. A failed call
// leaves nothing half-done: the objects' own records decide. Stubs come from objects/stubs.ts.

import { ApiError } from "../errors.js";
import { logEvent } from "../log.js";
import { isSettingsError } from "../settings.js";

interface DurableObjectError {
  retryable?: boolean;
  overloaded?: boolean;
}

/**
 * Runs an RPC call (building a fresh stub each time), retrying once if the platform says it may.
 * An object that fails mid-call (reset, deploy, crash) has left its record behind and its
 * watchdog alarm armed, so the caller is told to come back rather than handed a 500.
 */
export async function callObject<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      // A setting the object cannot parse will not parse on a retry either: the error boundary says so.
      if (err instanceof ApiError || isSettingsError(err)) throw err;
      const e = (typeof err === "object" && err !== null ? err : {}) as DurableObjectError;
      if (e.overloaded) throw new ApiError(429, "rate_limited", "Too many requests for this payment; try again shortly.", {}, { "Retry-After": "1" });
      if (e.retryable && attempt < 2) continue;
      logEvent("object_call_failed", { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
      throw new ApiError(503, "stripe_unavailable", "The credit could not finish now; it will finish on its own. Try again later.", {}, { "Retry-After": "1" });
    }
  }
}

/**
 * Account → Stripe customer, remembered by the Worker's isolate: the pairing never changes once
 * made (the Account object keeps the durable copy), so the hot path skips that object's RPC.
 * Only found customers are remembered. Bounded; the oldest entries go first.
 */
const knownCustomers = new Map<string, string>();
const KNOWN_CUSTOMERS_LIMIT = 10_000;

export function rememberedCustomer(accountId: string): string | undefined {
  return knownCustomers.get(accountId);
}

export function rememberCustomer(accountId: string, customerId: string): void {
  if (knownCustomers.size >= KNOWN_CUSTOMERS_LIMIT) {
    const oldest = knownCustomers.keys().next().value;
    if (oldest !== undefined) knownCustomers.delete(oldest);
  }
  knownCustomers.set(accountId, customerId);
}
