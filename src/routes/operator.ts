// Operator routes: which credits are waiting for a retry or need a person, what happened to
// one, "retry now", the signed webhook events that did not parse, the service's own events
// that could not be delivered (list, redeliver), and an account's wallet
// (its figures, its batches to Stripe, why a sync failed) with "sync now", and the Stripe governor. Guarded by a service
// token (OPERATOR_TOKEN), compared in constant time; no CORS, so no browser page can call them.
// Disabled when no token is configured.

import { Hono } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { bearerToken } from "../auth.js";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";
import { ACCOUNT_ID } from "../ids.js";
import type { AttentionPage, BadEvent } from "../objects/contract.js";
import type { DeadLetterPage } from "../events/contract.js";
import { accountObject, deadLettersObject, governorObject, paymentIntentObject, registryObject } from "../objects/stubs.js";
import { metricsView } from "../metrics/analytics.js";
import { WINDOWS, type MetricsWindow } from "../metrics/view.js";
import { settings } from "../settings.js";
import { PaymentIntentId } from "./schemas.js";

export const operator = new Hono<AppEnv>();

operator.use("*", async (c, next) => {
  const expected = settings(c.env).auth.operatorToken;
  if (!expected) throw new ApiError(403, "forbidden", "Operator routes are disabled: OPERATOR_TOKEN is not set.");
  const token = bearerToken(c.req.header("authorization"), "operator");
  if (!(await timingSafeEqual(token, expected))) {
    throw new ApiError(401, "unauthenticated", "The operator token is invalid.", {}, { "WWW-Authenticate": 'Bearer realm="operator"' });
  }
  await next();
});

function piParam(value: string): string {
  if (!PaymentIntentId.safeParse(value).success) throw new ApiError(400, "invalid_request", "Not a PaymentIntent id.");
  return value;
}

/** `limit` from the query: 50 unless given, a whole number within 1..200 (SQLite refuses a LIMIT of 2.5). */
function limitParam(value: string | undefined): number {
  return Math.min(Math.max(Math.trunc(Number(value ?? 50)) || 50, 1), 200);
}

const isoOrNull = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * Credits waiting for a retry or an operator, with any reversal or restoration still owed. A
 * read: the registry answers each entry as its PI object says it is now (the registry keeps
 * its own list in step; see src/objects/registry.ts).
 */
operator.get("/credits", async (c) => {
  const limit = limitParam(c.req.query("limit"));
  const after = c.req.query("after");
  const state = c.req.query("state");
  const page: AttentionPage = await registryObject(c.env).list({ limit, ...(after ? { after } : {}), ...(state ? { state } : {}) });
  return c.json({
    data: page.entries.map((e) => ({
      payment_intent_id: e.payment_intent_id,
      state: e.state,
      customer_id: e.customer_id,
      amount: e.amount,
      currency: e.currency,
      reason: e.reason,
      last_error: e.last_error,
      retry_count: e.retry_count,
      next_retry_at: isoOrNull(e.next_retry_at),
      updated_at: new Date(e.updated_at).toISOString(),
      adjustments: e.adjustments.map((a) => ({ operation: a.operation, state: a.state, direction: a.direction, amount: a.amount, last_error: a.last_error })),
    })),
    next_after: page.nextAfter,
  });
});

/** Signed webhook events that did not parse: acknowledged to Stripe, kept here for a person. */
operator.get("/events", async (c) => {
  const limit = limitParam(c.req.query("limit"));
  const after = c.req.query("after");
  const events: BadEvent[] = await registryObject(c.env).listBadEvents({ limit, ...(after ? { after } : {}) });
  const last = events.at(-1);
  return c.json({
    data: events.map((e) => ({ event_id: e.event_id, type: e.type, error: e.error, received_at: new Date(e.received_at).toISOString() })),
    next_after: events.length === limit && last ? last.event_id : null,
  });
});

/** Events the queue gave up delivering to EVENTS_URL, newest first: each as it was produced, and how often it died. */
operator.get("/events/dead_letters", async (c) => {
  const limit = limitParam(c.req.query("limit"));
  const page: DeadLetterPage | null = await deadLettersObject(c.env).list(limit, c.req.query("after") ?? null);
  if (!page) throw new ApiError(400, "invalid_request", "after must be the next_after of a previous page.");
  return c.json({ data: page.data, next_after: page.next_cursor });
});

/** Sends one dead-lettered event again (same id, same body, signed afresh) and takes it off the list. */
operator.post("/events/dead_letters/:event_id/redeliver", async (c) => {
  const eventId = c.req.param("event_id");
  if (!/^evt_[A-Za-z0-9_.:@|-]{1,300}$/.test(eventId)) throw new ApiError(404, "dead_letter_not_found", "No dead-lettered event has this id.");
  const outcome = await deadLettersObject(c.env).redeliver(eventId);
  if (!outcome.ok && outcome.reason === "not_found") throw new ApiError(404, "dead_letter_not_found", "No dead-lettered event has this id.");
  if (!outcome.ok) throw unavailable(outcome.retryAfterSeconds);
  return c.json({ id: eventId, redelivered: true }, 202);
});

/** Sends the oldest dead-lettered events again, up to `limit` (50) per call; `remaining` says whether to call again. */
operator.post("/events/dead_letters/redeliver", async (c) => {
  // Strict, unlike the lists' limit: a request that changes things must say what it means.
  const raw = c.req.query("limit") ?? "50";
  const limit = /^\d{1,3}$/.test(raw) ? Number(raw) : 0;
  if (limit < 1 || limit > 200) throw new ApiError(400, "invalid_request", "limit must be a whole number from 1 to 200.");
  const outcome = await deadLettersObject(c.env).redeliverAll(limit);
  if (!outcome.ok) throw unavailable(outcome.retryAfterSeconds);
  return c.json({ redelivered: outcome.redelivered, remaining: outcome.remaining }, 202);
});

function unavailable(retryAfterSeconds: number): ApiError {
  return new ApiError(503, "events_unavailable", "The events queue did not take the event; try again.", {}, { "Retry-After": String(retryAfterSeconds) });
}

/** One PI's record and journal. */
operator.get("/credits/:pi", async (c) => {
  const pi = piParam(c.req.param("pi"));
  const found = await paymentIntentObject(c.env, pi).inspect();
  if (!found.record) throw new ApiError(404, "payment_intent_not_found", "No record for this PaymentIntent.");
  return c.json(found);
});

/** Retry one PI now instead of waiting for its alarm. */
operator.post("/credits/:pi/retry", async (c) => {
  const pi = piParam(c.req.param("pi"));
  const outcome = await paymentIntentObject(c.env, pi).retryNow();
  if (!outcome.record) throw new ApiError(404, "payment_intent_not_found", "No record for this PaymentIntent.");
  return c.json(outcome);
});

function accountParam(value: string): string {
  if (!ACCOUNT_ID.test(value)) throw new ApiError(400, "invalid_request", "Not an account id.");
  return value;
}

/** An account's wallet as stored: figures, the sync's state and last error, every batch written to Stripe, and its newest ledger lines. */
operator.get("/accounts/:account/wallet", async (c) => {
  const account = accountParam(c.req.param("account"));
  const stub = accountObject(c.env, account);
  const found = await stub.inspectWallet();
  if (!found.wallet) throw new ApiError(404, "not_found", "This account's wallet is not open.");
  // The wallet is open, so its lines are read from storage: "unavailable" is not an answer here.
  const lines = await stub.walletLines(account, limitParam(c.req.query("limit")), null);
  const ledger = lines.ok ? { data: lines.data, has_more: lines.has_more, next_cursor: lines.next_cursor } : null;
  return c.json({ ...found, ledger });
});

/** Writes the wallet's owed spending to Stripe and takes in Stripe's entries now, instead of waiting for its alarm. */
operator.post("/accounts/:account/wallet/sync", async (c) => {
  const account = accountParam(c.req.param("account"));
  const result = await accountObject(c.env, account).syncNow(account);
  return c.json({ ...result, ...(await accountObject(c.env, account).inspectWallet()) });
});

/**
 * Credits, debits, reversals and recharges, Stripe calls by kind, and waits for Stripe permits,
 * over the last hour (by minute) or day (by quarter hour). From Analytics Engine when
 * ANALYTICS_ACCOUNT_ID and ANALYTICS_API_TOKEN are set (every location); otherwise what the
 * isolate that answers counted (under `wrangler dev`, everything).
 */
operator.get("/metrics", async (c) => {
  const window = c.req.query("window") ?? "hour";
  if (!Object.hasOwn(WINDOWS, window)) throw new ApiError(400, "invalid_request", "window must be hour or day.");
  return c.json(await metricsView(settings(c.env).analytics, window as MetricsWindow, Date.now()));
});

/**
 * The Stripe governor: the budget, the rate now (lower after a 429), how far ahead permits are
 * promised, and how many were leased, in how many round trips, and refused. Off (null) when
 * STRIPE_RATE_LIMIT is 0.
 */
operator.get("/governor", async (c) => {
  if (settings(c.env).stripe.rateLimit === 0) return c.json({ governor: null });
  return c.json({ governor: await governorObject(c.env).status() });
});
