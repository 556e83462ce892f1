// Browser routes under /billing. Thin by design: authenticate, validate, ask the objects, map
// their answer to HTTP. All crediting happens in the PaymentIntent object.

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Caller, ConfirmResult } from "../credit/contract.js";
import type { Env } from "../env.js";
import { ApiError } from "../errors.js";
import { jsonBody, requireAccount, type AppEnv } from "../http.js";
import { logEvent } from "../log.js";
import type { CustomerLookup, TopUpResult } from "../objects/contract.js";
import { accountObject, paymentIntentObject } from "../objects/stubs.js";
import { settings } from "../settings.js";
import type { BalanceOutcome, LinesPage } from "../wallet/contract.js";
import { checkLimits, rateLimited } from "./limits.js";
import { callObject, rememberCustomer, rememberedCustomer } from "./object-calls.js";
import {
  BalanceAnswer,
  ClientIdempotencyKey,
  ConfirmPaymentAnswer,
  ConfirmPaymentBody,
  ErrorAnswer,
  LedgerAnswer,
  LedgerQuery,
  TopUpAnswer,
  TopUpBody,
} from "./schemas.js";
import { validationHook } from "./validation.js";

/** Browser bodies are a few short fields; anything near this size is not one of ours. */
const BODY_MAX_BYTES = 1024;

const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: ErrorAnswer } } });

const confirmPaymentRoute = createRoute({
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
    429: errorResponse("rate_limited: over the account's or address's confirm limit, or a PaymentIntent hammered beyond its queue; see Retry-After"),
    503: errorResponse("stripe_unavailable; see Retry-After. The credit finishes on its own."),
  },
});

/** Maps a refusal from the PaymentIntent object to its HTTP error. */
function confirmError(result: Exclude<ConfirmResult, { ok: true }>): ApiError {
  switch (result.code) {
    case "payment_intent_not_found":
      return new ApiError(404, result.code, "No such PaymentIntent.");
    case "payment_not_succeeded":
      return new ApiError(409, result.code, "The payment has not succeeded.", { payment_intent_status: result.paymentIntentStatus });
    case "payment_not_creditable":
      // The owner learns why (a stranger was already answered 404 by the object).
      return new ApiError(422, result.code, "This payment cannot be credited.", { reason: result.reason });
    case "credit_needs_attention":
      return new ApiError(409, result.code, "This payment needs a manual review before it can be credited.");
    case "stripe_unavailable":
      return unavailable(result.retryAfterSeconds);
    case "rate_limited":
      return rateLimited(result.retryAfterSeconds);
  }
}

function unavailable(retryAfterSeconds: number, message = "The credit could not finish now; it will finish on its own. Try again later."): ApiError {
  return new ApiError(503, "stripe_unavailable", message, {}, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });
}

/** A read of the wallet that needed Stripe (its one-time opening) and could not reach it. */
const WALLET_UNREADABLE = "The account's credit could not be read now (Stripe is unreachable); try again later.";

export const billing = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

billing.use("/confirm_payment", requireAccount, jsonBody(BODY_MAX_BYTES));

billing.openapi(confirmPaymentRoute, async (c) => {
  const started = Date.now();
  const { payment_intent_id: paymentIntentId } = c.req.valid("json");
  const accountId = c.get("accountId");
  // A replay of a credit (the page asking again, a refresh) says nothing new and is the most
  // common confirm: debug, since every line costs CPU time. Everything else is info.
  const logConfirm = (outcome: string, stripeCalls = 0) =>
    logEvent("confirm", {
      level: outcome === "already_credited" ? "debug" : "info",
      payment_intent: paymentIntentId,
      account: accountId,
      outcome,
      stripe_calls: stripeCalls,
      duration_ms: Date.now() - started,
    });
  // Over its limit, a caller is answered only what costs nothing: an answer already recorded for
  // it, found from storage alone (the objects' storage-only reads know nothing of limits).
  const limit = await checkLimits(c, "confirm", accountId);
  const lookup = await customerOf(c.env, accountId, { storageOnly: !limit.ok });
  if (!lookup.ok) {
    if (!limit.ok) {
      logConfirm("rate_limited");
      throw rateLimited(limit.retryAfterSeconds);
    }
    logConfirm(lookup.reason);
    // An account with no Stripe customer owns no PaymentIntent.
    if (lookup.reason === "no_customer") throw confirmError({ ok: false, code: "payment_intent_not_found" });
    throw unavailable(lookup.retryAfterSeconds);
  }
  const caller: Caller = { kind: "browser", accountId, customerId: lookup.customerId };
  let result: ConfirmResult;
  if (limit.ok) {
    result = await callObject(async (): Promise<ConfirmResult> => await paymentIntentObject(c.env, paymentIntentId).confirm(paymentIntentId, caller));
  } else {
    const recorded = await callObject(
      async (): Promise<ConfirmResult | null> => await paymentIntentObject(c.env, paymentIntentId).recorded(paymentIntentId, caller),
    );
    if (!recorded) {
      logConfirm("rate_limited");
      throw rateLimited(limit.retryAfterSeconds);
    }
    result = recorded;
  }
  logConfirm(result.ok ? result.status : result.code, result.stripeCalls);
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

/**
 * The account's Stripe customer: remembered by this isolate, else the account object's answer;
 * with `storageOnly`, from what that object has stored (no Stripe search).
 */
async function customerOf(env: Env, accountId: string, options: { storageOnly: boolean }): Promise<CustomerLookup> {
  const remembered = rememberedCustomer(accountId);
  if (remembered) return { ok: true, customerId: remembered };
  const lookup = await callObject(async (): Promise<CustomerLookup> =>
    options.storageOnly ? await accountObject(env, accountId).knownCustomer(accountId) : await accountObject(env, accountId).customerFor(accountId),
  );
  if (lookup.ok) rememberCustomer(accountId, lookup.customerId);
  return lookup;
}

const topUpRoute = createRoute({
  method: "post",
  path: "/top_ups",
  summary: "Create a PaymentIntent to top up the caller's credit",
  security: [{ bearer: [] }],
  request: {
    headers: z.object({ "idempotency-key": ClientIdempotencyKey }),
    body: { required: true, content: { "application/json": { schema: TopUpBody } } },
  },
  responses: {
    201: { description: "Created; pay it with client_secret, then confirm", content: { "application/json": { schema: TopUpAnswer } } },
    400: errorResponse("invalid_request (including amounts and currencies outside the configured limits)"),
    401: errorResponse("unauthenticated"),
    409: errorResponse("idempotency_key_reused: the same Idempotency-Key with another amount or currency"),
    422: errorResponse("currency_mismatch: the account's credit is in another currency (error.currency)"),
    429: errorResponse("rate_limited"),
    413: errorResponse("payload_too_large"),
    415: errorResponse("unsupported_media_type"),
    503: errorResponse("stripe_unavailable"),
  },
});

billing.use("/top_ups", requireAccount, jsonBody(BODY_MAX_BYTES));

billing.openapi(topUpRoute, async (c) => {
  const { amount, currency, save_payment_method: savePaymentMethod = false } = c.req.valid("json");
  const clientKey = c.req.valid("header")["idempotency-key"] ?? null;
  const limits = settings(c.env).topUps;
  if (!limits.currencies.includes(currency)) throw new ApiError(400, "invalid_request", `currency: must be one of ${limits.currencies.join(", ")}`);
  if (amount < limits.min || amount > limits.max) throw new ApiError(400, "invalid_request", `amount: must be between ${limits.min} and ${limits.max}`);
  const accountId = c.get("accountId");
  const limit = await checkLimits(c, "topup", accountId);
  if (!limit.ok) throw rateLimited(limit.retryAfterSeconds);
  const result = await callObject(
    async (): Promise<TopUpResult> => await accountObject(c.env, accountId).createTopUp(accountId, amount, currency, clientKey, savePaymentMethod),
  );
  logEvent("top_up", {
    account: accountId,
    amount,
    currency,
    save_payment_method: savePaymentMethod,
    outcome: result.ok ? "created" : result.reason,
    payment_intent: result.ok ? result.paymentIntentId : null,
  });
  if (!result.ok) {
    if (result.reason === "idempotency_conflict") throw new ApiError(409, "idempotency_key_reused", "This Idempotency-Key was used for a different top-up.");
    if (result.reason === "refused") throw new ApiError(400, "invalid_request", "Stripe refused this top-up.");
    if (result.reason === "currency_mismatch") {
      throw new ApiError(422, "currency_mismatch", `This account's credit is in ${result.currency}; top up in ${result.currency}.`, {
        currency: result.currency,
      });
    }
    throw unavailable(result.retryAfterSeconds);
  }
  return c.json({ payment_intent_id: result.paymentIntentId, client_secret: result.clientSecret, amount: result.amount, currency: result.currency }, 201);
});

const balanceRoute = createRoute({
  method: "get",
  path: "/balance",
  summary: "The caller's prepaid credit: available to spend, and held",
  security: [{ bearer: [] }],
  responses: {
    200: { description: "The wallet's figures; `balance` is `available`", content: { "application/json": { schema: BalanceAnswer } } },
    401: errorResponse("unauthenticated"),
    503: errorResponse("stripe_unavailable"),
  },
});

billing.use("/balance", requireAccount);

billing.openapi(balanceRoute, async (c) => {
  const accountId = c.get("accountId");
  const result = await callObject(async (): Promise<BalanceOutcome> => await accountObject(c.env, accountId).walletBalance(accountId));
  if (!result.ok) throw unavailable(result.retryAfterSeconds, WALLET_UNREADABLE);
  const { available, held, currency } = result.balance;
  return c.json({ balance: available, available, held, currency }, 200);
});

const ledgerRoute = createRoute({
  method: "get",
  path: "/transactions",
  summary: "The caller's ledger (top-ups, reversals, debits, holds and what became of them), newest first",
  security: [{ bearer: [] }],
  request: { query: LedgerQuery },
  responses: {
    200: { description: "One page; pass next_cursor as cursor for the next", content: { "application/json": { schema: LedgerAnswer } } },
    400: errorResponse("invalid_request"),
    401: errorResponse("unauthenticated"),
    503: errorResponse("stripe_unavailable"),
  },
});

billing.use("/transactions", requireAccount);

billing.openapi(ledgerRoute, async (c) => {
  const { limit, cursor } = c.req.valid("query");
  const accountId = c.get("accountId");
  return c.json(await walletPage(c.env, accountId, limit, cursor), 200);
});

/** One page of the account's wallet ledger (for /billing/transactions and the seller's /transactions). */
export async function walletPage(env: Env, accountId: string, limit: number | undefined, cursor: string | undefined) {
  const page = await callObject(async (): Promise<LinesPage> => await accountObject(env, accountId).walletLines(accountId, limit ?? 20, cursor ?? null));
  if (!page.ok) {
    if (page.reason === "bad_cursor") throw new ApiError(400, "invalid_request", "cursor: not a position in this ledger");
    throw unavailable(page.retryAfterSeconds, WALLET_UNREADABLE);
  }
  return { data: page.data, has_more: page.has_more, next_cursor: page.next_cursor };
}
