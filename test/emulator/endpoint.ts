// What one Stripe API endpoint of the emulator declares; the pipeline in app.ts does the rest
// (auth, idempotency, latency, faults, logging) the same way for every endpoint.

import type { FieldSpec, Params } from "./params.js";
import type { Store } from "./store.js";
import type { Webhooks } from "./webhooks.js";

/** Everything an endpoint's `run` may touch. */
export interface RunContext {
  params: Params;
  path: Record<string, string>;
  store: Store;
  webhooks: Webhooks;
  /** Attached to the events this request causes, as Stripe's `event.request`. */
  request: { id: string; idempotency_key: string | null };
  livemode: boolean;
  /** The caller used a publishable key (pk_…), as Stripe.js does: only `publishable` endpoints get here. */
  publishable: boolean;
  url: string;
  /** The emulator's own origin (`http://127.0.0.1:port`), for URLs it hands out. */
  origin: string;
  /** The request's `expand[]` values (Stripe: "payment_method" puts the object in place of its id). */
  expand: readonly string[];
}

export interface Endpoint {
  method: "GET" | "POST" | "DELETE";
  /** A Hono route pattern, e.g. `/v1/customers/:id`. */
  pattern: string;
  spec: FieldSpec;
  required?: readonly string[];
  /**
   * Stripe.js may call it with a publishable key, proving its right to the object with the
   * object's client_secret (checked by `run`). Any other endpoint refuses a publishable key.
   */
  publishable?: boolean;
  /**
   * Checks the parameters together once each one has been validated against `spec` (a parameter
   * only allowed with another, two that exclude each other): a 400 from here is parameter
   * validation, so, as Stripe, it is never saved under an Idempotency-Key.
   */
  refine?(params: Params): void;
  /**
   * Runs synchronously, so one request's reads and writes are atomic with respect to others.
   * Returns the response body or throws a StripeFailure.
   */
  run(ctx: RunContext): unknown;
}
