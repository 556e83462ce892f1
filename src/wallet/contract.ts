// What the account object's wallet answers over RPC, and what the PaymentIntent object reports
// to it. Routes import these types; the wallet's internals stay in src/wallet.
//
// Sign convention: a wallet figure is credit the customer has (positive), the opposite of
// Stripe's customer balance (negative = credit). Every ledger line carries two changes:
// `amount`, the change to the customer's total credit (available + held: money in or spent),
// and `held`, the change to what is held. A hold moves credit from available to held (amount 0,
// held +h); a capture spends (amount −c) and ends the hold (held −h); a release ends it
// (held −h). So the lines' amounts sum to available + held, and their helds sum to held.

/** The wallet's figures: `available` may be spent; `held` is reserved by active holds. */
export interface BalanceView {
  available: number;
  held: number;
  currency: string;
}

export type EntryKind = "top_up" | "reversal" | "restoration" | "debit" | "hold" | "capture" | "release" | "stripe";

/** One ledger line, newest first in pages. `id` is the wallet's own; Stripe's id, when the line came from Stripe, is `balance_transaction_id`. */
export interface WalletLine {
  id: string;
  kind: EntryKind;
  amount: number;
  held: number;
  currency: string;
  payment_intent_id: string | null;
  hold_id: string | null;
  balance_transaction_id: string | null;
  description: string | null;
  metadata: Record<string, string> | null;
  /** ISO 8601 */
  created: string;
}

/** A spending request from the seller's backend, validated by the route. */
export type SpendRequest =
  | { op: "debit"; amount: number; currency: string; description?: string | undefined; metadata?: Record<string, string> | undefined }
  | { op: "hold"; amount: number; currency: string; expires_in_seconds: number; description?: string | undefined }
  | { op: "capture"; hold_id: string; amount?: number | undefined }
  | { op: "release"; hold_id: string };

export type HoldStatus = "active" | "captured" | "released" | "expired";

/** What a spending request did. Kept under its Idempotency-Key and replayed as it was. */
export type SpendResult =
  | { ok: true; op: "debit"; debit: { id: string; account_id: string; amount: number; currency: string; balance: BalanceView; created: string } }
  | {
      ok: true;
      op: "hold";
      hold: { id: string; account_id: string; amount: number; currency: string; status: "active"; expires_at: string; balance: BalanceView; created: string };
    }
  | { ok: true; op: "capture"; hold_id: string; debit: { id: string; amount: number }; released: number; balance: BalanceView }
  | { ok: true; op: "release"; hold_id: string; released: number; balance: BalanceView }
  | { ok: false; code: "insufficient_credit"; available: number; currency: string }
  | { ok: false; code: "currency_mismatch"; currency: string }
  | { ok: false; code: "hold_not_found" }
  | { ok: false; code: "hold_not_active"; hold_status: HoldStatus };

/** The answer to a spending request: its result (first or replayed), or why there is none. */
export type SpendOutcome =
  { kind: "result"; result: SpendResult; replayed: boolean } | { kind: "key_reused" } | { kind: "unavailable"; retryAfterSeconds: number };

export type BalanceOutcome =
  { ok: true; balance: BalanceView; stripe_synced_at: string | null } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

export type LinesPage =
  | { ok: true; data: WalletLine[]; has_more: boolean; next_cursor: string | null }
  | { ok: false; reason: "bad_cursor" }
  | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

/**
 * A customer-balance entry that a PaymentIntent object wrote (a top-up's credit, a reversal, a
 * restoration), reported to the account's wallet. `amount` keeps Stripe's sign (negative =
 * credit). The wallet applies each balance transaction once, however often it is reported.
 */
export interface StripeEntryReport {
  balance_transaction_id: string;
  customer_id: string;
  kind: "top_up" | "reversal" | "restoration";
  amount: number;
  currency: string;
  payment_intent_id: string;
  description: string | null;
  /** unix seconds, Stripe's */
  created: number;
}

/**
 * `wrong_account`: the reported customer is not this account's (its Stripe customer is another,
 * or the customer's `metadata.account_id` names another account). Nothing was applied; the
 * reporter must find the customer's own account.
 */
export type ReportOutcome = { ok: true } | { ok: false; reason: "unavailable"; retryAfterSeconds: number } | { ok: false; reason: "wrong_account" };
