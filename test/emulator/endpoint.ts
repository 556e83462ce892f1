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
   * Runs synchronously, so one request's reads and writes are atomic with respect to others.
   * Returns the response body or throws a StripeFailure.
   */
  run(ctx: RunContext): unknown;
}
