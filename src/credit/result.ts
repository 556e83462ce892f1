// What the PaymentIntent object answers over RPC. Errors do not survive a Durable Object RPC
// call as classes, so every outcome is a value of this union and the Worker maps it to HTTP.

/** Who is asking: a signed-in browser (with its Stripe customer), Stripe's webhook, or the object's own alarm / an operator. */
export type Caller = { kind: "browser"; accountId: string; customerId: string } | { kind: "webhook" } | { kind: "alarm" } | { kind: "operator" };

export interface Credited {
  ok: true;
  status: "credited" | "already_credited";
  paymentIntentId: string;
  amount: number;
  currency: string;
  balanceTransactionId: string;
}

export type Refused =
  | { ok: false; code: "payment_intent_not_found" }
  | { ok: false; code: "payment_not_succeeded"; paymentIntentStatus: string }
  | { ok: false; code: "payment_not_creditable"; reason: string }
  | { ok: false; code: "credit_needs_attention" }
  | { ok: false; code: "stripe_unavailable"; retryAfterSeconds: number }
  | { ok: false; code: "rate_limited"; retryAfterSeconds: number };

/** `stripeCalls`: the Stripe calls this caller's answer cost (0 when joined or answered from storage), for logs. */
export type ConfirmResult = (Credited | Refused) & { stripeCalls?: number };
