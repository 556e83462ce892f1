// The one place a Stripe client is built: the `stripe` package over fetch (Workers have no Node
// http), pointed at STRIPE_API_BASE, with a pinned API version so that response shapes cannot
// change under us when Stripe's default moves.

import Stripe from "stripe";
import { intSetting, type Env } from "../env.js";
import { GOVERNOR_NAME, type Priority } from "../objects/governor.js";

/** The API version this service is written and tested against. */
export const STRIPE_API_VERSION = "2026-10-28.endive";

/**
 * Clients by configuration. Building one instantiates every Stripe resource class, which costs
 * milliseconds of CPU; objects of one class share an isolate, so they share clients (a client
 * holds configuration only, no per-request state).
 */
const clients = new Map<string, Stripe>();

/**
 * A Stripe client for `env`, whose every call first draws a permit from the Stripe governor at
 * `priority`. The SDK retries network errors, 409 and 5xx with the same key.
 */
export function createStripe(env: Env, priority: Priority = "credit"): Stripe {
  const id = [env.STRIPE_SECRET_KEY, env.STRIPE_API_BASE, env.STRIPE_MAX_NETWORK_RETRIES, env.STRIPE_TIMEOUT_MS, env.STRIPE_RATE_LIMIT, priority].join("|");
  let client = clients.get(id);
  if (!client) {
    client = buildClient(env, priority);
    if (clients.size > 16) clients.clear();
    clients.set(id, client);
  }
  return client;
}

function buildClient(env: Env, priority: Priority): Stripe {
  const base = new URL(env.STRIPE_API_BASE || "https://api.stripe.com");
  const protocol = base.protocol === "http:" ? "http" : "https";
  return new Stripe(env.STRIPE_SECRET_KEY, {
    apiVersion: STRIPE_API_VERSION,
    httpClient: Stripe.createFetchHttpClient(governedFetch(env, priority)),
    host: base.hostname,
    port: base.port ? Number(base.port) : protocol === "http" ? 80 : 443,
    protocol,
    maxNetworkRetries: intSetting(env.STRIPE_MAX_NETWORK_RETRIES, 2),
    timeout: intSetting(env.STRIPE_TIMEOUT_MS, 10_000),
    telemetry: false,
  });
}

/**
 * fetch, after a permit from the governor. A refused permit fails the call like a dropped
 * connection would (the protocol retries it later); a 429 from Stripe slows the governor down.
 */
function governedFetch(env: Env, priority: Priority): typeof fetch {
  if (intSetting(env.STRIPE_RATE_LIMIT, 20) === 0 || !env.STRIPE_GOVERNOR) return (input, init) => fetch(input, init);
  return async (input, init) => {
    const governor = env.STRIPE_GOVERNOR.get(env.STRIPE_GOVERNOR.idFromName(GOVERNOR_NAME));
    const permit = await governor.acquire(priority);
    if (!permit.ok) throw new Error("The Stripe call budget is exhausted for now");
    const res = await fetch(input, init);
    if (res.status === 429) await governor.slowDown();
    return res;
  };
}

/** Whether the configured key is a live-mode key (`sk_live_`/`rk_live_`); PIs must match it. */
export function isLiveKey(key: string): boolean {
  return key.startsWith("sk_live_") || key.startsWith("rk_live_");
}
