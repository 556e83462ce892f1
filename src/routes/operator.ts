// Operator routes: which credits are waiting for a retry or need a person, what happened to
// one, and "retry now". Guarded by a service token (OPERATOR_TOKEN), compared in constant
// time; no CORS, so no browser page can call them. Disabled when no token is configured.

import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { timingSafeEqual } from "hono/utils/buffer";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";
import { REGISTRY_NAME, type AttentionEntry } from "../objects/registry.js";
import { paymentIntentObject } from "./objects.js";
import { PaymentIntentId } from "./schemas.js";

export const operator = new Hono<AppEnv>();

operator.use("*", async (c, next) => {
  const expected = c.env.OPERATOR_TOKEN;
  if (!expected) throw new ApiError(403, "forbidden", "Operator routes are disabled: OPERATOR_TOKEN is not set.");
  return bearerAuth<AppEnv>({ verifyToken: (token) => timingSafeEqual(token, expected) })(c, next);
});

function piParam(value: string): string {
  if (!PaymentIntentId.safeParse(value).success) throw new ApiError(400, "invalid_request", "Not a PaymentIntent id.");
  return value;
}

/** Credits waiting for a retry or an operator, checked against each PI object's own record. */
operator.get("/credits", async (c) => {
  const limit = Math.min(Math.max(Number(c.req.query("limit") ?? 50) || 50, 1), 200);
  const after = c.req.query("after");
  const state = c.req.query("state");
  const registry = c.env.CREDIT_REGISTRY.get(c.env.CREDIT_REGISTRY.idFromName(REGISTRY_NAME));
  const entries: AttentionEntry[] = await registry.list({ limit, ...(after ? { after } : {}), ...(state ? { state } : {}) });
  const checked = await Promise.all(
    entries.map(async (entry) => {
      const { record } = await paymentIntentObject(c.env, entry.payment_intent_id).inspect();
      if (!record || (record.state === "credited" && record.mark_state === "done")) {
        await registry.remove(entry.payment_intent_id);
        return null;
      }
      return {
        payment_intent_id: record.payment_intent_id,
        state: record.state === "credited" ? "credited_mark_pending" : record.state,
        customer_id: record.customer_id,
        amount: record.amount,
        currency: record.currency,
        reason: record.reason,
        last_error: record.last_error,
        retry_count: record.retry_count,
        next_retry_at: record.next_retry_at === null ? null : new Date(record.next_retry_at).toISOString(),
        updated_at: new Date(record.updated_at).toISOString(),
      };
    }),
  );
  const last = entries.at(-1);
  return c.json({ data: checked.filter((e) => e !== null), next_after: entries.length === limit && last ? last.payment_intent_id : null });
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
