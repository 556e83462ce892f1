// Idempotency-Keys, derived only from the PaymentIntent id and a durably counted attempt, so
// that every retry of one logical write, from any instance, sends the same key with the same
// parameters (Stripe rejects a reused key with other parameters: idempotency_error).

/** `credit-mark:{pi}` for the first mark, `credit-mark:{pi}:{n}` for later ones. */
export function markKey(paymentIntentId: string, attempt: number): string {
  return attempt <= 1 ? `credit-mark:${paymentIntentId}` : `credit-mark:${paymentIntentId}:${attempt}`;
}

/** `credit-tx:{pi}` for the first credit write, `credit-tx:{pi}:{n}` once an attempt is known to have failed. */
export function creditKey(paymentIntentId: string, attempt: number): string {
  return attempt <= 1 ? `credit-tx:${paymentIntentId}` : `credit-tx:${paymentIntentId}:${attempt}`;
}

/** The balance transaction that credits a PaymentIntent; identical for every attempt. */
export function creditParams(paymentIntentId: string, amount: number, currency: string) {
  return {
    amount: -amount,
    currency,
    description: `Prepaid credit from ${paymentIntentId}`,
    metadata: { payment_intent: paymentIntentId },
  };
}
