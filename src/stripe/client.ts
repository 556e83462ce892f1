// The one place a Stripe SDK client is built: the `stripe` package over fetch (Workers have no
// Node http), pointed at STRIPE_API_BASE, with a pinned API version so that response shapes
// cannot change under us when Stripe's default moves, and every request drawing a permit from
// the isolate's share of the Stripe governor's budget first (permits.ts). Only the gateways in this folder use it (gateway.ts).

import Stripe from "stripe";
import type { Env } from "../env.js";
import type { Priority } from "../objects/contract.js";
import { record, stripeCallKind } from "../metrics/facts.js";
import { governorObject } from "../objects/stubs.js";
import { settings } from "../settings.js";
import { PermitPool } from "./permits.js";

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

/**
 * The SDK client for `env` at `priority`. The SDK retries network errors, 409 and 5xx with the
 * same key. Its own timeout would also count the wait for a permit, which under a backlog is
 * longer than any Stripe call should take, so the per-call timeout is applied in the governed
 * fetch, after the permit, and the SDK's covers the longest wait on top of it.
 */
export function stripeClient(env: Env, priority: Priority): Stripe {
  const s = settings(env).stripe;
  const id = [s.secretKey, s.apiBase, s.maxNetworkRetries, s.timeoutMs, s.rateLimit, priority].join("|");
  let client = clients.get(id);
  if (!client) {
    const base = new URL(s.apiBase);
    const protocol = base.protocol === "http:" ? "http" : "https";
    const governed = s.rateLimit > 0;
    client = new Stripe(s.secretKey, {
      apiVersion: STRIPE_API_VERSION,
      httpClient: Stripe.createFetchHttpClient(governed ? governedFetch(env, priority, s.timeoutMs) : measuredFetch(env)),
      host: base.hostname,
      port: base.port ? Number(base.port) : protocol === "http" ? 80 : 443,
      protocol,
      maxNetworkRetries: s.maxNetworkRetries,
      timeout: governed ? s.timeoutMs + PERMIT_WAIT_MAX_MS : s.timeoutMs,
      telemetry: false,
    });
    if (clients.size >= CLIENTS_LIMIT) clients.clear();
    clients.set(id, client);
  }
  return client;
}

/**
 * fetch, each request (each of the SDK's retries too) counted as a Stripe call of its kind, with
 * its status and latency (src/metrics). The wait for a permit is not in it: that is counted as a
 * governor wait. A request that got no answer is "network".
 */
function measuredFetch(env: Env): typeof fetch {
  return async (input, init) => {
    const started = Date.now();
    const url = input instanceof Request ? input.url : String(input);
    const kind = stripeCallKind(init?.method ?? (input instanceof Request ? input.method : "GET"), url);
    try {
      const res = await fetch(input, init);
      record(env, { name: "stripe_call", kind, status: String(res.status), ms: Date.now() - started });
      return res;
    } catch (err) {
      record(env, { name: "stripe_call", kind, status: "network", ms: Date.now() - started });
      throw err;
    }
  };
}

/** The longest a call may wait for its permit (the governor refuses a credit call further ahead). */
const PERMIT_WAIT_MAX_MS = 61_000;

/** The isolate's permit pools, one per governor namespace (tests bind more than one). */
const pools = new WeakMap<object, PermitPool>();

function poolOf(env: Env): PermitPool {
  let pool = pools.get(env.STRIPE_GOVERNOR);
  if (!pool) {
    pool = new PermitPool(() => governorObject(env));
    pools.set(env.STRIPE_GOVERNOR, pool);
  }
  return pool;
}

/**
 * fetch, after a permit from the isolate's pool, timed out `timeoutMs` after the permit. A
 * refused permit fails the call like a dropped connection would (the SDK retries it, then the
 * caller's protocol); a 429 from Stripe slows the governor down.
 */
function governedFetch(env: Env, priority: Priority, timeoutMs: number): typeof fetch {
  const send = measuredFetch(env);
  return async (input, init) => {
    const waitStarted = Date.now();
    const granted = await poolOf(env).take(priority);
    record(env, { name: "governor_wait", priority, granted, ms: Date.now() - waitStarted });
    if (!granted) throw new Error("The Stripe call budget is exhausted for now");
    // Aborted without a reason, as the SDK's own timeout does, so the SDK reports a timeout.
    const timeout = new AbortController();
    setTimeout(() => timeout.abort(), timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout.signal]) : timeout.signal;
    const res = await send(input, { ...init, signal });
    if (res.status === 429) await governorObject(env).slowDown();
    return res;
  };
}
