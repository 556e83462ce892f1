// Operator routes: which credits are waiting for a retry or need a person, what happened to
// one, "retry now", the signed webhook events that did not parse, and an account's wallet
// (its figures, its batches to Stripe, why a sync failed) with "sync now". Guarded by a service
// token (OPERATOR_TOKEN), compared in constant time; no CORS, so no browser page can call them.
// Disabled when no token is configured.

import { Hono } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { bearerToken } from "../auth.js";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";
import type { Env } from "../env.js";
import { operatorState } from "../objects/payment-intent.js";
import { REGISTRY_NAME, type AttentionEntry, type BadEvent } from "../objects/registry.js";
import { ACCOUNT_ID } from "../ids.js";
import { accountObject, paymentIntentObject } from "./objects.js";
import { PaymentIntentId } from "./schemas.js";

export const operator = new Hono<AppEnv>();

operator.use("*", async (c, next) => {
  const expected = c.env.OPERATOR_TOKEN;
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

/** `limit` from the query: 50 unless given, within 1..200. */
function limitParam(value: string | undefined): number {
  return Math.min(Math.max(Number(value ?? 50) || 50, 1), 200);
}

/** The operator registry (one object). */
function registry(env: Env) {
  return env.CREDIT_REGISTRY.get(env.CREDIT_REGISTRY.idFromName(REGISTRY_NAME));
}

/**
 * Credits waiting for a retry or an operator, as each PI object's own record says now. This
 * route only reads and prunes: the state shown is `operatorState` of the record and its
 * adjustments, and an entry is dropped only when nothing at all is owed any more (credited,
 * marked, every adjustment written). The objects keep the registry up to date themselves.
 */
operator.get("/credits", async (c) => {
  const limit = limitParam(c.req.query("limit"));
  const after = c.req.query("after");
  const state = c.req.query("state");
  const list = registry(c.env);
  const entries: AttentionEntry[] = await list.list({ limit, ...(after ? { after } : {}), ...(state ? { state } : {}) });
  const checked = await Promise.all(
    entries.map(async (entry) => {
      const { record, adjustments, wallet_pending: walletPending } = await paymentIntentObject(c.env, entry.payment_intent_id).inspect();
      const settled =
        record?.state === "credited" && record.mark_state === "done" && walletPending.length === 0 && adjustments.every((a) => a.state === "done");
      if (!record || settled) {
        await list.remove(entry.payment_intent_id);
        return null;
      }
      return {
        payment_intent_id: record.payment_intent_id,
        state: operatorState(record, adjustments, walletPending.length > 0),
        customer_id: record.customer_id,
        amount: record.amount,
        currency: record.currency,
        reason: record.reason,
        last_error: record.last_error,
        retry_count: record.retry_count,
        next_retry_at: record.next_retry_at === null ? null : new Date(record.next_retry_at).toISOString(),
        updated_at: new Date(record.updated_at).toISOString(),
        // Reversals and restorations still owed: the ones an operator must look at, and those waiting to be written.
        adjustments: adjustments
          .filter((a) => a.state !== "done")
          .map((a) => ({ operation: a.operation, state: a.state, direction: a.direction, amount: a.amount, last_error: a.last_error })),
      };
    }),
  );
  const last = entries.at(-1);
  return c.json({ data: checked.filter((e) => e !== null), next_after: entries.length === limit && last ? last.payment_intent_id : null });
});

/** Signed webhook events that did not parse: acknowledged to Stripe, kept here for a person. */
operator.get("/events", async (c) => {
  const limit = limitParam(c.req.query("limit"));
  const after = c.req.query("after");
  const events: BadEvent[] = await registry(c.env).listBadEvents({ limit, ...(after ? { after } : {}) });
  const last = events.at(-1);
  return c.json({
    data: events.map((e) => ({ event_id: e.event_id, type: e.type, error: e.error, received_at: new Date(e.received_at).toISOString() })),
    next_after: events.length === limit && last ? last.event_id : null,
  });
});

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

/** An account's wallet as stored: figures, the sync's state and last error, every batch written to Stripe. */
operator.get("/accounts/:account/wallet", async (c) => {
  const account = accountParam(c.req.param("account"));
  const found = await accountObject(c.env, account).inspectWallet();
  if (!found.wallet) throw new ApiError(404, "not_found", "This account's wallet is not open.");
  return c.json(found);
});

/** Writes the wallet's owed spending to Stripe and takes in Stripe's entries now, instead of waiting for its alarm. */
operator.post("/accounts/:account/wallet/sync", async (c) => {
  const account = accountParam(c.req.param("account"));
  const result = await accountObject(c.env, account).syncNow(account);
  return c.json({ ...result, ...(await accountObject(c.env, account).inspectWallet()) });
});
