// The seller's server-to-server routes under /v1/accounts/{account_id}: spend an account's
// credit (debits, holds, their capture and release) and read its wallet. Thin like the browser
// routes: check the service token, validate, ask the account object (which answers alone, with
// no Stripe call), map its answer to HTTP. No CORS: no browser page calls these.
//
// Every POST takes an Idempotency-Key. The account object keeps each answer under its key with
// a fingerprint of the request (operation, hold id, body as sent); a retry with the same key
// and body gets the first answer again, whatever it was, through the same mapping
// (`spendAnswer` in spend-answer.ts), with `Idempotent-Replayed: true`. Refusals made here
// (400, 401, 404 for a hold id that cannot be one, 413, 415) happen before the object is
// asked, so none is kept.

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError } from "../errors.js";
import { parsedJsonBody, requireIdempotencyKey, requireService, type AppEnv } from "../http.js";
import { HOLD_ID } from "../ids.js";
import { logEvent } from "../log.js";
import { accountObject } from "../objects/stubs.js";
import type { BalanceOutcome, SpendOutcome, SpendRequest } from "../wallet/contract.js";
import { requestFingerprint } from "../wallet/fingerprint.js";
import { walletPage } from "./billing.js";
import { callObject } from "./object-calls.js";
import {
  AccountParams,
  CaptureAnswer,
  CaptureBody,
  DebitAnswer,
  DebitBody,
  ErrorAnswer,
  HOLD_DEFAULT_SECONDS,
  HoldAnswer,
  HoldBody,
  HoldParams,
  LedgerAnswer,
  LedgerQuery,
  ReleaseAnswer,
  ReleaseBody,
  SellerBalanceAnswer,
  SellerIdempotencyKey,
} from "./schemas.js";
import { holdNotFound, spendAnswer, walletUnavailable } from "./spend-answer.js";
import { validationHook } from "./validation.js";

/** A seller's body is a few fields and at most 20 metadata pairs; 8 KiB is room for them. */
export const SELLER_BODY_MAX_BYTES = 8 * 1024;

/** Answered when the wallet could not answer now (the object failed mid-call): come back. */
const RETRY_AFTER_FALLBACK_SECONDS = 1;

/** A hold id from the path, or 404 without asking the object: anything else cannot name a hold. */
function holdParam(value: string): string {
  if (!HOLD_ID.test(value)) throw holdNotFound();
  return value;
}

/** Asks the account object to spend, under the request's Idempotency-Key, and answers with `spendAnswer`. */
async function spend(c: Context<AppEnv>, accountId: string, request: SpendRequest, holdId: string | null): Promise<Response> {
  const started = Date.now();
  const key = c.get("idempotencyKey");
  const fingerprint = await requestFingerprint(request.op, holdId, c.get("rawBody") ?? {});
  const outcome = await callObject(async (): Promise<SpendOutcome> => await accountObject(c.env, accountId).spend(accountId, request, key, fingerprint)).catch(
    (err: unknown): SpendOutcome => {
      // The object failed mid-call (callObject's 503): answered as the wallet's own "unavailable".
      if (err instanceof ApiError && err.status === 503) {
        return { kind: "unavailable", retryAfterSeconds: Number(err.headers["Retry-After"] ?? RETRY_AFTER_FALLBACK_SECONDS) };
      }
      throw err;
    },
  );
  const answer = spendAnswer(outcome);
  // A spend that went through is in the wallet's ledger (id, amount, time): a log line for it
  // too would cost every debit its relay (about 1 ms locally) to say nothing new. Refusals,
  // replays and failures are logged: they are what an operator looks for.
  const firstSuccess = outcome.kind === "result" && outcome.result.ok && !outcome.replayed;
  if (!firstSuccess)
    logEvent("spend", {
      account: accountId,
      op: request.op,
      hold: holdId,
      outcome: outcome.kind === "result" ? (outcome.result.ok ? "ok" : outcome.result.code) : outcome.kind,
      replayed: outcome.kind === "result" && outcome.replayed,
      status: answer.status,
      duration_ms: Date.now() - started,
    });
  return c.json(answer.body, answer.status, answer.headers);
}

const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: ErrorAnswer } } });
const json = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { "application/json": { schema } } });

const security = [{ service: [] }];
const postMiddleware = (optionalBody: boolean) => [requireService, requireIdempotencyKey, parsedJsonBody(SELLER_BODY_MAX_BYTES, { optional: optionalBody })];
const postHeaders = { headers: z.object({ "idempotency-key": SellerIdempotencyKey }) };
const writeErrors = {
  400: errorResponse("invalid_request: a field out of range, an unknown field, a missing or over-long Idempotency-Key, or a malformed account id"),
  401: errorResponse("unauthenticated: no valid service token"),
  409: errorResponse("idempotency_key_reused: this key was used with another request"),
  413: errorResponse("payload_too_large: body over 8 KiB"),
  415: errorResponse("unsupported_media_type"),
  429: errorResponse("rate_limited: the account's object is overloaded; see Retry-After"),
  503: errorResponse("stripe_unavailable: the wallet could not answer now; see Retry-After. Retry with the same key"),
};

export const debitRoute = createRoute({
  method: "post",
  path: "/{account_id}/debits",
  summary: "Spend credit now: never takes available below zero, never calls Stripe",
  security,
  middleware: postMiddleware(false),
  request: { params: AccountParams, ...postHeaders, body: { required: true, content: { "application/json": { schema: DebitBody } } } },
  responses: {
    201: json("Debited (or the first answer replayed: Idempotent-Replayed: true)", DebitAnswer),
    ...writeErrors,
    402: errorResponse("insufficient_credit: error.available and error.currency say what there is"),
    422: errorResponse("currency_mismatch: the account's credit is in error.currency"),
  },
});

export const holdRoute = createRoute({
  method: "post",
  path: "/{account_id}/holds",
  summary: "Reserve credit: it leaves available until captured, released, or expired (then released on its own)",
  security,
  middleware: postMiddleware(false),
  request: { params: AccountParams, ...postHeaders, body: { required: true, content: { "application/json": { schema: HoldBody } } } },
  responses: {
    201: json("Held", HoldAnswer),
    ...writeErrors,
    402: errorResponse("insufficient_credit"),
    422: errorResponse("currency_mismatch"),
  },
});

export const captureRoute = createRoute({
  method: "post",
  path: "/{account_id}/holds/{hold_id}/capture",
  summary: "Spend a hold (the whole of it unless amount says less or more); the rest is released",
  security,
  middleware: postMiddleware(true),
  request: { params: HoldParams, ...postHeaders, body: { required: false, content: { "application/json": { schema: CaptureBody } } } },
  responses: {
    200: json("Captured", CaptureAnswer),
    ...writeErrors,
    402: errorResponse("insufficient_credit: more than held, and available does not cover the excess; the hold stays"),
    404: errorResponse("hold_not_found (also another account's hold)"),
    409: errorResponse("hold_not_active (error.hold_status: captured, released or expired), or idempotency_key_reused"),
  },
});

export const releaseRoute = createRoute({
  method: "post",
  path: "/{account_id}/holds/{hold_id}/release",
  summary: "Give a hold's credit back to available",
  security,
  middleware: postMiddleware(true),
  request: { params: HoldParams, ...postHeaders, body: { required: false, content: { "application/json": { schema: ReleaseBody } } } },
  responses: {
    200: json("Released", ReleaseAnswer),
    ...writeErrors,
    404: errorResponse("hold_not_found (also another account's hold)"),
    409: errorResponse("hold_not_active (error.hold_status), or idempotency_key_reused"),
  },
});

export const sellerBalanceRoute = createRoute({
  method: "get",
  path: "/{account_id}/balance",
  summary: "The account's wallet: available, held, and when Stripe last matched it",
  security,
  middleware: [requireService],
  request: { params: AccountParams },
  responses: {
    200: json("The wallet's figures", SellerBalanceAnswer),
    400: errorResponse("invalid_request: a malformed account id"),
    401: errorResponse("unauthenticated"),
    429: errorResponse("rate_limited: the account's object is overloaded; see Retry-After"),
    503: errorResponse("stripe_unavailable; see Retry-After"),
  },
});

export const sellerLedgerRoute = createRoute({
  method: "get",
  path: "/{account_id}/transactions",
  summary: "The account's ledger, newest first: top-ups, reversals, debits, holds, captures, releases, entries from Stripe",
  security,
  middleware: [requireService],
  request: { params: AccountParams, query: LedgerQuery },
  responses: {
    200: json("One page; pass next_cursor as cursor for the next", LedgerAnswer),
    400: errorResponse("invalid_request: a malformed account id, limit or cursor, or a cursor not in this ledger"),
    401: errorResponse("unauthenticated"),
    429: errorResponse("rate_limited: the account's object is overloaded; see Retry-After"),
    503: errorResponse("stripe_unavailable; see Retry-After"),
  },
});

export const accounts = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

// Handlers answer with `spendAnswer`'s status, which is one of each route's documented statuses;
// the typed-response check cannot follow a status chosen at run time, hence `as never`.

accounts.openapi(debitRoute, async (c) => {
  const { account_id: accountId } = c.req.valid("param");
  const { amount, currency, description, metadata } = c.req.valid("json");
  const request: SpendRequest = { op: "debit", amount, currency, ...(description === undefined ? {} : { description }), ...(metadata ? { metadata } : {}) };
  return (await spend(c, accountId, request, null)) as never;
});

accounts.openapi(holdRoute, async (c) => {
  const { account_id: accountId } = c.req.valid("param");
  const { amount, currency, expires_in_seconds: expires, description } = c.req.valid("json");
  const request: SpendRequest = {
    op: "hold",
    amount,
    currency,
    expires_in_seconds: expires ?? HOLD_DEFAULT_SECONDS,
    ...(description === undefined ? {} : { description }),
  };
  return (await spend(c, accountId, request, null)) as never;
});

accounts.openapi(captureRoute, async (c) => {
  const { account_id: accountId, hold_id: rawHoldId } = c.req.valid("param");
  const holdId = holdParam(rawHoldId);
  const { amount } = c.req.valid("json");
  const request: SpendRequest = { op: "capture", hold_id: holdId, ...(amount === undefined ? {} : { amount }) };
  return (await spend(c, accountId, request, holdId)) as never;
});

accounts.openapi(releaseRoute, async (c) => {
  const { account_id: accountId, hold_id: rawHoldId } = c.req.valid("param");
  const holdId = holdParam(rawHoldId);
  return (await spend(c, accountId, { op: "release", hold_id: holdId }, holdId)) as never;
});

accounts.openapi(sellerBalanceRoute, async (c) => {
  const { account_id: accountId } = c.req.valid("param");
  const result = await callObject(async (): Promise<BalanceOutcome> => await accountObject(c.env, accountId).walletBalance(accountId));
  if (!result.ok) throw walletUnavailable(result.retryAfterSeconds);
  const { available, held, currency } = result.balance;
  return c.json({ available, held, currency, stripe_synced_at: result.stripe_synced_at }, 200);
});

accounts.openapi(sellerLedgerRoute, async (c) => {
  const { account_id: accountId } = c.req.valid("param");
  const { limit, cursor } = c.req.valid("query");
  return c.json(await walletPage(c.env, accountId, limit, cursor), 200);
});
