// The one place a Stripe SDK client is built: the `stripe` package over fetch (Workers have no
// Node http), pointed at STRIPE_API_BASE, with a pinned API version so that response shapes
// cannot change under us when Stripe's default moves, and every request drawing a permit from
// the Stripe governor first. Only the gateways in this folder use it (gateway.ts).

import Stripe from "stripe";
import type { Env } from "../env.js";
import type { Priority } from "../objects/contract.js";
import { governorObject } from "../objects/stubs.js";
import { settings } from "../settings.js";

/** The API version this service is written and tested against. */
export const STRIPE_API_VERSION = "2026-10-28.endive";

/**
 * Clients by configuration. Building one instantiates every Stripe resource class, which costs
 * milliseconds of CPU; objects of one class share an isolate, so they share clients (a client
 * holds configuration only, no per-request state).
 */
const clients = new Map<string, Stripe>();
/** Configurations an isolate sees: one in production, a few in tests. */
const CLIENTS_LIMIT = 16;

/** The SDK client for `env` at `priority`. The SDK retries network errors, 409 and 5xx with the same key. */
export function stripeClient(env: Env, priority: Priority): Stripe {
  const s = settings(env).stripe;
  const id = [s.secretKey, s.apiBase, s.maxNetworkRetries, s.timeoutMs, s.rateLimit, priority].join("|");
  let client = clients.get(id);
  if (!client) {
    const base = new URL(s.apiBase);
    const protocol = base.protocol === "http:" ? "http" : "https";
    client = new Stripe(s.secretKey, {
      apiVersion: STRIPE_API_VERSION,
      httpClient: Stripe.createFetchHttpClient(s.rateLimit === 0 ? plainFetch : governedFetch(env, priority)),
      host: base.hostname,
      port: base.port ? Number(base.port) : protocol === "http" ? 80 : 443,
      protocol,
      maxNetworkRetries: s.maxNetworkRetries,
      timeout: s.timeoutMs,
      telemetry: false,
    });
    if (clients.size >= CLIENTS_LIMIT) clients.clear();
    clients.set(id, client);
  }
  return client;
}

const plainFetch: typeof fetch = (input, init) => fetch(input, init);

/**
 * fetch, after a permit from the governor. A refused permit fails the call like a dropped
 * connection would (the caller's protocol retries it later); a 429 from Stripe slows the
 * governor down.
 */
function governedFetch(env: Env, priority: Priority): typeof fetch {
  return async (input, init) => {
    const governor = governorObject(env);
    const permit = await governor.acquire(priority);
    if (!permit.ok) throw new Error("The Stripe call budget is exhausted for now");
    const res = await fetch(input, init);
    if (res.status === 429) await governor.slowDown();
    return res;
  };
}
