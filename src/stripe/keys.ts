// Every Idempotency-Key the service sends, and the credit's write parameters. Keys derive only
// from what the write is about (a PaymentIntent and an operation, an account, a batch) and a
// durably counted attempt, so that every retry of one logical write, from any instance, sends
// the same key with the same parameters (Stripe refuses a reused key with other parameters:
// idempotency_error).

import type Stripe from "stripe";
import { sha256Hex } from "../hash.js";

/** `{base}` for the first attempt, `{base}:{n}` after. */
export function attemptKey(base: string, attempt: number): string {
  return attempt <= 1 ? base : `${base}:${attempt}`;
}

/** `credit-mark:{pi}` for the first mark, `credit-mark:{pi}:{n}` for later ones. */
export function markKey(paymentIntentId: string, attempt: number): string {
  return attemptKey(`credit-mark:${paymentIntentId}`, attempt);
}

/** `credit-unmark:{pi}:{n}`: taking the mark back after Stripe refused the credit; n counts marks and withdrawals alike. */
export function unmarkKey(paymentIntentId: string, attempt: number): string {
  return `credit-unmark:${paymentIntentId}:${attempt}`;
}

/** `credit-tx:{pi}` for the first credit write, `credit-tx:{pi}:{n}` once an attempt is known to have failed. */
export function creditKey(paymentIntentId: string, attempt: number): string {
  return attemptKey(`credit-tx:${paymentIntentId}`, attempt);
}

/** `credit-adjust:{pi}:{operation}`: one reversal (or its restoration) of a PaymentIntent's credit. */
export function adjustmentKey(paymentIntentId: string, operation: string, attempt: number): string {
  return attemptKey(`credit-adjust:${paymentIntentId}:${operation}`, attempt);
}

/** The balance transaction that credits a PaymentIntent; identical for every attempt. */
export function creditParams(paymentIntentId: string, amount: number, currency: string): Stripe.CustomerCreateBalanceTransactionParams {
  return {
    amount: -amount,
    currency,
    description: `Prepaid credit from ${paymentIntentId}`,
    metadata: { payment_intent: paymentIntentId },
  };
}

/**
 * A reversal (`debit`: a refund or dispute takes credit back) or a restoration (`credit`: a won
 * dispute gives it back). `metadata.operation` tells these apart from the credit itself.
 */
export function adjustmentParams(
  paymentIntentId: string,
  operation: string,
  direction: "debit" | "credit",
  amount: number,
  currency: string,
): Stripe.CustomerCreateBalanceTransactionParams {
  return {
    amount: direction === "debit" ? amount : -amount,
    currency,
    description: `${direction === "debit" ? "Reversal" : "Restoration"} (${operation}) of credit from ${paymentIntentId}`,
    metadata: { payment_intent: paymentIntentId, operation },
  };
}

/**
 * `topup:{hex SHA-256 of [accountId, clientKey] as JSON}`: a browser's Idempotency-Key scoped to
 * its account. Joining the parts with a separator would be ambiguous (account `a` with key `x:k`
 * and account `a:x` with key `k`); the JSON array keeps each part whole, and the hash keeps the
 * key short (Stripe accepts 255 characters) whatever the client sent.
 */
export async function topUpKey(accountId: string, clientKey: string): Promise<string> {
  return `topup:${await sha256Hex(JSON.stringify([accountId, clientKey]))}`;
}

/** `customer:{account}`: the account's one Stripe customer, however many first top-ups race to create it. */
export function customerKey(accountId: string): string {
  return `customer:${accountId}`;
}

/** `wallet-debits:{customer}:{n}`: batch n of a customer's spending, written to its Stripe balance. */
export function batchKey(customerId: string, n: number, attempt: number): string {
  return attemptKey(`wallet-debits:${customerId}:${n}`, attempt);
}

/**
 * `recharge:{account}:{n}`: recharge n of an account, recorded before it is sent, so a retry
 * after a crash or a lost answer (within Stripe's 24 h) returns the same PaymentIntent.
 */
export function rechargeKey(accountId: string, n: number): string {
  return `recharge:${accountId}:${n}`;
}

/** `recharge-cancel:{account}:{n}`: cancelling recharge n's PaymentIntent when nobody completed it in time. */
export function rechargeCancelKey(accountId: string, n: number): string {
  return `recharge-cancel:${accountId}:${n}`;
}
