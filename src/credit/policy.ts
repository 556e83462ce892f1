// Whether a PaymentIntent, as Stripe returned it, may be credited for a caller: pure, so that
// the refusal rules can be read and tested on their own. Order matters (DESIGN.md): first who
// owns it (a stranger learns nothing else), then its status, then whether it is creditable.

/** The fields of a Stripe PaymentIntent that decide a credit. */
export interface PaymentIntentFacts {
  id: string;
  status: string;
  customer: string | { id: string } | null;
  amount_received: number;
  currency: string;
  livemode: boolean;
  metadata: Record<string, string> | null;
}

export type NotCreditableReason = "no_customer" | "zero_amount" | "livemode_mismatch";

export type Assessment =
  | { ok: true; customer: string; amount: number; currency: string; creditedElsewhere: boolean }
  | { ok: false; refusal: "not_owned"; customer: string | null }
  | { ok: false; refusal: "not_succeeded"; status: string; customer: string | null }
  | { ok: false; refusal: "not_creditable"; reason: NotCreditableReason; customer: string | null };

/** The PI's customer id, whether Stripe sent an id or an expanded object. */
export function customerIdOf(pi: PaymentIntentFacts): string | null {
  if (pi.customer === null) return null;
  return typeof pi.customer === "string" ? pi.customer : pi.customer.id;
}

/**
 * Assesses `pi` for a caller whose Stripe customer is `owner` (null: the caller is Stripe or
 * the object itself, and the PI's own customer is the owner). `liveKey`: the service runs
 * with a live key, so only live PaymentIntents may be credited, and test ones only with a test key.
 */
export function assessPaymentIntent(pi: PaymentIntentFacts, owner: string | null, liveKey: boolean): Assessment {
  const customer = customerIdOf(pi);
  if (owner !== null && customer !== owner) return { ok: false, refusal: "not_owned", customer };
  if (pi.status !== "succeeded") return { ok: false, refusal: "not_succeeded", status: pi.status, customer };
  if (customer === null) return { ok: false, refusal: "not_creditable", reason: "no_customer", customer };
  if (!Number.isInteger(pi.amount_received) || pi.amount_received <= 0) {
    return { ok: false, refusal: "not_creditable", reason: "zero_amount", customer };
  }
  if (pi.livemode !== liveKey) return { ok: false, refusal: "not_creditable", reason: "livemode_mismatch", customer };
  return {
    ok: true,
    customer,
    amount: pi.amount_received,
    currency: pi.currency.toLowerCase(),
    creditedElsewhere: pi.metadata?.credited === "true",
  };
}
