// What the seller's spending routes answer in HTTP, from what the account object answered. One
// pure mapping for first answers and replays alike: a retry under the same Idempotency-Key gets
// the first answer's status and body again, plus `Idempotent-Replayed: true`.

import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ApiError } from "../errors.js";
import type { SpendOutcome } from "../wallet/contract.js";

/** The HTTP answer to one spending request: status, JSON body, extra headers. */
export interface SpendAnswer {
  status: ContentfulStatusCode;
  body: unknown;
  headers: Record<string, string>;
}

/** 503 with Retry-After: the wallet could not answer now, and nothing was kept. */
export function walletUnavailable(retryAfterSeconds: number): ApiError {
  const seconds = String(Math.max(1, Math.ceil(retryAfterSeconds)));
  return new ApiError(503, "stripe_unavailable", "The wallet could not answer now; try again later.", {}, { "Retry-After": seconds });
}

/** 404 hold_not_found: no such hold on this account (also another account's hold). */
export function holdNotFound(): ApiError {
  return new ApiError(404, "hold_not_found", "No such hold on this account.");
}

/**
 * Maps what the account object answered to a spending request to HTTP. Pure, and the only
 * mapping: a replayed result goes through it exactly as the first answer did, so the replay has
 * the same status and body, plus `Idempotent-Replayed: true`.
 */
export function spendAnswer(outcome: SpendOutcome): SpendAnswer {
  if (outcome.kind === "key_reused") {
    return refusal(new ApiError(409, "idempotency_key_reused", "This Idempotency-Key was used for a different request on this account."));
  }
  if (outcome.kind === "unavailable") return refusal(walletUnavailable(outcome.retryAfterSeconds));
  const headers: Record<string, string> = outcome.replayed ? { "Idempotent-Replayed": "true" } : {};
  const result = outcome.result;
  if (result.ok) {
    switch (result.op) {
      case "debit":
        return { status: 201, body: result.debit, headers };
      case "hold":
        return { status: 201, body: result.hold, headers };
      case "capture":
        return { status: 200, body: { hold_id: result.hold_id, debit: result.debit, released: result.released, balance: result.balance }, headers };
      case "release":
        return { status: 200, body: { hold_id: result.hold_id, released: result.released, balance: result.balance }, headers };
    }
  }
  const withHeaders = (answer: SpendAnswer): SpendAnswer => ({ ...answer, headers: { ...answer.headers, ...headers } });
  switch (result.code) {
    case "insufficient_credit":
      return withHeaders(
        refusal(
          new ApiError(402, "insufficient_credit", "The account's available credit does not cover this amount.", {
            available: result.available,
            currency: result.currency,
          }),
        ),
      );
    case "currency_mismatch":
      return withHeaders(refusal(new ApiError(422, "currency_mismatch", `This account's credit is in ${result.currency}.`, { currency: result.currency })));
    case "hold_not_found":
      return withHeaders(refusal(holdNotFound()));
    case "hold_not_active":
      return withHeaders(refusal(new ApiError(409, "hold_not_active", `The hold is ${result.hold_status}.`, { hold_status: result.hold_status })));
  }
}

function refusal(error: ApiError): SpendAnswer {
  return { status: error.status, body: error.body(), headers: { ...error.headers } };
}
