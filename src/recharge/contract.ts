// What the account object answers about auto-recharge over RPC: the settings, the saved card,
// the month's spending against its limit, and the recharge open now (or the last one). Routes
// import these types; the machinery stays in src/recharge.

/** What the user sets (minor units of the wallet's currency). */
export interface RechargeSettings {
  enabled: boolean;
  /** A write that leaves `available` below this starts a recharge. */
  threshold: number;
  /** What one recharge charges and credits. */
  amount: number;
  /** The most recharged in one calendar month (UTC). */
  monthly_limit: number;
}

/**
 * pending: recorded, its PaymentIntent being created (or the creation's outcome not yet known);
 * processing: Stripe took the payment, the credit is on its way; action_required: the bank asks
 * the customer to authenticate; succeeded: credited; failed: declined or refused; canceled: not
 * authenticated within a day, or auto-recharge turned off before it was sent.
 */
export type RechargeStatus = "pending" | "processing" | "action_required" | "succeeded" | "failed" | "canceled";

export const OPEN_STATUSES: readonly RechargeStatus[] = ["pending", "processing", "action_required"];

export interface RechargeView {
  number: number;
  status: RechargeStatus;
  amount: number;
  currency: string;
  payment_intent_id: string | null;
  /** Only while action_required, for Stripe.js on the account's own page (and the seller's backend). */
  client_secret: string | null;
  payment_method: string;
  /** action_required: when it is cancelled if not completed (ISO 8601). */
  expires_at: string | null;
  code: string | null;
  decline_code: string | null;
  created: string;
}

export interface SavedCardView {
  id: string;
  brand: string | null;
  last4: string | null;
}

export interface AutoRechargeView {
  /** Null until set once. */
  settings: RechargeSettings | null;
  currency: string;
  payment_method: SavedCardView | null;
  /** Why auto-recharge switched itself off (null: it did not). */
  disabled_reason: "declined" | "card_removed" | null;
  consecutive_failures: number;
  this_month: { month: string; recharged: number; remaining: number | null };
  /** The open recharge, else the latest. */
  recharge: RechargeView | null;
}

export type ConfigureOutcome =
  { ok: true; view: AutoRechargeView } | { ok: false; reason: "no_saved_card" } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };
