// What the PaymentIntent object (src/objects/payment-intent/) answers over RPC, and the record it
// shows operators: the only types the routes import from the credit side. Errors do not survive
// a Durable Object RPC call as classes, so every outcome is a value and the Worker maps it to HTTP.

import type { PaymentIntentFacts } from "./policy.js";

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

/** What a verified Stripe webhook says about a PaymentIntent. */
export type WebhookFact =
  /**
   * `paymentIntent`: the PI as the signed event (or our own create call's answer) carried it,
   * when it parsed; the object credits from it without reading the PI again where it can be
   * trusted to be current (protocol.ts).
   */
  | { kind: "succeeded"; paymentIntent?: PaymentIntentFacts }
  | { kind: "refunded"; amountRefunded: number }
  | { kind: "dispute"; disputeId: string; amount: number; status: DisputeStatus };

/** How the Worker asks: `storageOnly` when the caller is over its request limit (answer only what costs nothing). */
export interface ConfirmOptions {
  storageOnly?: boolean;
}

/** Everything the object knows about its PI, for tests and operators. */
export interface Inspection {
  record: CreditRecord | null;
  amounts: { credited: number; reversed: number; net: number } | null;
  amount_refunded: number;
  disputes: DisputeFact[];
  adjustments: AdjustmentRecord[];
  journal: JournalEntry[];
  /** When the attempt running right now (in this instance's memory) started, or null. */
  attempt_started_at: number | null;
  /** Ledger entries of this PI that the account's wallet has not acknowledged yet. */
  wallet_pending: string[];
}

// The durable record, as stored (src/objects/payment-intent/store.ts) and shown to operators.
// States:
//   verified          Stripe said succeeded and creditable; intent recorded; not yet credited
//   credited          final: the ledger entry exists and its id is recorded
//   not_creditable    final: recorded for a webhook/operator caller (no customer, zero amount,
//                     live/test mismatch); browsers' refusals are not recorded (they cost nothing)
//   needs_attention   final until an operator acts: Stripe refused the credit permanently, or the
//                     PI says credited but no ledger entry exists

export type CreditState = "verified" | "credited" | "not_creditable" | "needs_attention";

/** `off`: not marked, because MARK_CREDITED was off when the PI was recorded (no older server runs). */
export type MarkState = "off" | "pending" | "done" | "withdrawing" | "withdrawn";

export interface CreditRecord {
  payment_intent_id: string;
  state: CreditState;
  customer_id: string | null;
  amount: number | null;
  currency: string | null;
  credit_attempt: number;
  credit_write: "none" | "sent";
  mark_state: MarkState;
  mark_attempts: number;
  balance_transaction_id: string | null;
  ending_balance: number | null;
  credited_by: string | null;
  reason: string | null;
  last_error: string | null;
  retry_count: number;
  next_retry_at: number | null;
  listed: number;
  account_id: string | null;
  created_at: number;
  updated_at: number;
  credited_at: number | null;
}

export type DisputeStatus = "open" | "won" | "lost";

export interface DisputeFact {
  dispute_id: string;
  amount: number;
  status: DisputeStatus;
  first_seen: number;
}

export interface AdjustmentRecord {
  operation: string;
  kind: "refund" | "dispute" | "restore";
  direction: "debit" | "credit";
  amount: number;
  dispute_id: string | null;
  attempt: number;
  sent: number;
  state: "pending" | "done" | "needs_attention";
  balance_transaction_id: string | null;
  ending_balance: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface Notice {
  payment_intent_id: string;
  received_at: number;
  attempts: number;
  /** The PI as the webhook's event carried it, if it did. */
  facts: PaymentIntentFacts | null;
}

export interface JournalEntry {
  seq: number;
  at: number;
  step: string;
  outcome: string;
  detail: string | null;
}
