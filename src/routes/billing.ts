// Browser routes under /billing. Thin by design: authenticate, validate, ask the objects, map
// their answer to HTTP. All crediting happens in the PaymentIntent object.

import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { ConfirmResult } from "../credit/result.js";
import type { CustomerLookup } from "../objects/account.js";
import { ApiError } from "../errors.js";
import { jsonBody, requireAccount, type AppEnv } from "../http.js";
import { logEvent } from "../log.js";
import { accountObject, callObject, paymentIntentObject } from "./objects.js";
import { ConfirmPaymentAnswer, ConfirmPaymentBody, ErrorAnswer } from "./schemas.js";
import { validationHook } from "./validation.js";

/** Confirm bodies are one short id; anything near this size is not a confirm. */
const CONFIRM_MAX_BYTES = 1024;

const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: ErrorAnswer } } });

export const confirmPaymentRoute = createRoute({
  method: "post",
  path: "/confirm_payment",
  summary: "Credit a succeeded PaymentIntent to the caller's balance, exactly once",
  security: [{ bearer: [] }],
  request: { body: { required: true, content: { "application/json": { schema: ConfirmPaymentBody } } } },
  responses: {
    200: { description: "Credited now, or earlier", content: { "application/json": { schema: ConfirmPaymentAnswer } } },
    400: errorResponse("invalid_request"),
    401: errorResponse("unauthenticated"),
    404: errorResponse("payment_intent_not_found (also another account's PaymentIntent)"),
    409: errorResponse("payment_not_succeeded (with payment_intent_status) or credit_needs_attention"),
    413: errorResponse("payload_too_large"),
    415: errorResponse("unsupported_media_type"),
    422: errorResponse("payment_not_creditable"),
    503: errorResponse("stripe_unavailable; see Retry-After. The credit finishes on its own."),
  },
});

/** Maps a refusal from the PaymentIntent object to its HTTP error. */
export function confirmError(result: Exclude<ConfirmResult, { ok: true }>): ApiError {
  switch (result.code) {
    case "payment_intent_not_found":
      return new ApiError(404, result.code, "No such PaymentIntent.");
    case "payment_not_succeeded":
      return new ApiError(409, result.code, "The payment has not succeeded.", { payment_intent_status: result.paymentIntentStatus });
    case "payment_not_creditable":
      return new ApiError(422, result.code, "This payment cannot be credited.");
    case "credit_needs_attention":
      return new ApiError(409, result.code, "This payment needs a manual review before it can be credited.");
    case "stripe_unavailable":
      return unavailable(result.retryAfterSeconds);
  }
}

function unavailable(retryAfterSeconds: number): ApiError {
  return new ApiError(
    503,
    "stripe_unavailable",
    "The credit could not finish now; it will finish on its own. Try again later.",
    {},
    { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) },
  );
}

export const billing = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

billing.use("/confirm_payment", requireAccount, jsonBody(CONFIRM_MAX_BYTES));

billing.openapi(confirmPaymentRoute, async (c) => {
  const started = Date.now();
  const { payment_intent_id: paymentIntentId } = c.req.valid("json");
  const accountId = c.get("accountId");
  const lookup = await callObject(async (): Promise<CustomerLookup> => await accountObject(c.env, accountId).customerFor(accountId));
  if (!lookup.ok) {
    logEvent("confirm", { payment_intent: paymentIntentId, account: accountId, outcome: lookup.reason, duration_ms: Date.now() - started });
    // An account with no Stripe customer owns no PaymentIntent.
    if (lookup.reason === "no_customer") throw confirmError({ ok: false, code: "payment_intent_not_found" });
    throw unavailable(lookup.retryAfterSeconds);
  }
  const result = await callObject(
    async (): Promise<ConfirmResult> =>
      await paymentIntentObject(c.env, paymentIntentId).confirm(paymentIntentId, { kind: "browser", accountId, customerId: lookup.customerId }),
  );
  logEvent("confirm", {
    payment_intent: paymentIntentId,
    account: accountId,
    outcome: result.ok ? result.status : result.code,
    duration_ms: Date.now() - started,
  });
  if (!result.ok) throw confirmError(result);
  return c.json(
    {
      status: result.status,
      payment_intent_id: result.paymentIntentId,
      amount: result.amount,
      currency: result.currency,
      balance_transaction_id: result.balanceTransactionId,
    },
    200,
  );
});
