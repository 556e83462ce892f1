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
  url: string;
}

export interface Endpoint {
  method: "GET" | "POST" | "DELETE";
  /** A Hono route pattern, e.g. `/v1/customers/:id`. */
  pattern: string;
  spec: FieldSpec;
  required?: readonly string[];
  /**
   * Runs synchronously, so one request's reads and writes are atomic with respect to others.
   * Returns the response body or throws a StripeFailure.
   */
  run(ctx: RunContext): unknown;
}
