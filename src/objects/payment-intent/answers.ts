// What an attempt concluded, and what each caller is told about it: pure, so that the rules
// (a stranger learns only "not found"; a credit the wallet does not have yet is not a 200) can
// be read and tested on their own. An attempt runs from one point of view; its outcome is
// turned into an answer per caller, since browsers of different customers may wait on it.

import type { ConfirmResult, CreditRecord } from "../../credit/contract.js";

/** What one attempt concluded, independent of who asked. */
export type Outcome =
  | { kind: "credited"; fresh: boolean }
  | { kind: "unknown_pi" }
  | { kind: "not_owned"; customer: string | null }
  | { kind: "not_succeeded"; status: string; customer: string | null }
  | { kind: "not_creditable"; reason: string; customer: string | null }
  | { kind: "needs_attention"; customer: string | null }
  | { kind: "unavailable"; retryAfterSeconds: number; customer: string | null };

/** Retry-After for a caller whose answer could not be had now (Stripe unreachable, the wallet not told yet). */
export const RETRY_AFTER_SECONDS = 2;

/**
 * The answer for a caller whose Stripe customer is `owner` (null: Stripe's webhook, the alarm
 * or an operator, who may see everything). `rec` is the record as it stands after the attempt.
 */
export function answerFor(outcome: Outcome, owner: string | null, rec: CreditRecord | null): ConfirmResult {
  const notFound = { ok: false, code: "payment_intent_not_found" } as const;
  const foreign = (customer: string | null) => owner !== null && customer !== owner;
  switch (outcome.kind) {
    case "credited":
      if (!rec || rec.state !== "credited" || foreign(rec.customer_id)) return notFound;
      return {
        ok: true,
        status: outcome.fresh ? "credited" : "already_credited",
        paymentIntentId: rec.payment_intent_id,
        amount: rec.amount as number,
        currency: rec.currency as string,
        balanceTransactionId: rec.balance_transaction_id as string,
      };
    case "unknown_pi":
    case "not_owned":
      return notFound;
    case "not_succeeded":
      return foreign(outcome.customer) ? notFound : { ok: false, code: "payment_not_succeeded", paymentIntentStatus: outcome.status };
    case "not_creditable":
      return foreign(outcome.customer) ? notFound : { ok: false, code: "payment_not_creditable", reason: outcome.reason };
    case "needs_attention":
      return foreign(outcome.customer) ? notFound : { ok: false, code: "credit_needs_attention" };
    case "unavailable":
      // An attempt that failed before it knew the PI's customer says nothing about whose it is.
      return outcome.customer !== null && foreign(outcome.customer)
        ? notFound
        : { ok: false, code: "stripe_unavailable", retryAfterSeconds: outcome.retryAfterSeconds };
  }
}

/**
 * The outcome a record already stands for, with no attempt: final states answer for themselves,
 * and so does a credit the wallet has (`walletOwed` false). Null: an attempt must run (a credit
 * still to write, or one the wallet does not have yet).
 */
export function recordedOutcome(rec: CreditRecord, walletOwed: boolean): Outcome | null {
  switch (rec.state) {
    case "credited":
      return walletOwed ? null : { kind: "credited", fresh: false };
    case "not_creditable":
      return { kind: "not_creditable", reason: rec.reason ?? "not_creditable", customer: rec.customer_id };
    case "needs_attention":
      return { kind: "needs_attention", customer: rec.customer_id };
    case "verified":
      return null;
  }
}

/** Whether the alarm has work for a record in this state (the rest wait for an operator or are final). */
export function owesWork(rec: CreditRecord): boolean {
  return rec.state === "verified" || rec.state === "credited" || (rec.state === "needs_attention" && rec.mark_state === "withdrawing");
}
