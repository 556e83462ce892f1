// Whether a PaymentIntent, as Stripe returned it, may be credited for a caller: pure, so that
// the refusal rules can be read and tested on their own. Order matters: first who
// owns it (a stranger learns nothing else), then its status, then whether it is creditable.

import type { Settings } from "../settings.js";
import { hasTopUpMarker, isLegacyTopUp, type LegacyTopUps } from "./top-up.js";

/** The fields of a Stripe PaymentIntent that decide a credit. */
export interface PaymentIntentFacts {
  id: string;
  status: string;
  customer: string | { id: string } | null;
  amount_received: number;
  currency: string;
  livemode: boolean;
  metadata: Record<string, string> | null;
  /** Unix seconds, as Stripe sends it. */
  created: number;
}

/**
 * What the service accepts as a top-up. `liveKey`: the service runs with a live key, so only
 * live PaymentIntents may be credited, and test ones only with a test key. `currencies`:
 * TOPUP_CURRENCIES, lowercase. `legacy`: the older server's top-ups, when the operator admits them.
 */
export interface CreditRules {
  liveKey: boolean;
  currencies: string[];
  legacy: LegacyTopUps | null;
}

export type NotCreditableReason = "no_customer" | "zero_amount" | "livemode_mismatch" | "not_a_top_up" | "currency_not_accepted";

export type Assessment =
  | { ok: true; customer: string; amount: number; currency: string; creditedElsewhere: boolean }
  | { ok: false; refusal: "not_owned"; customer: string | null }
  | { ok: false; refusal: "not_succeeded"; status: string; customer: string | null }
  | { ok: false; refusal: "not_creditable"; reason: NotCreditableReason; customer: string | null };

/** The rules from the settings: the Stripe key's mode, the accepted currencies, the legacy top-ups. */
export function creditRules(s: Settings): CreditRules {
  return { liveKey: s.stripe.liveKey, currencies: s.topUps.currencies, legacy: s.topUps.legacy };
}

/** The PI's customer id, whether Stripe sent an id or an expanded object. */
export function customerIdOf(pi: PaymentIntentFacts): string | null {
  if (pi.customer === null) return null;
  return typeof pi.customer === "string" ? pi.customer : pi.customer.id;
}

/**
 * Assesses `pi` for a caller whose Stripe customer is `owner` (null: the caller is Stripe or
 * the object itself, and the PI's own customer is the owner), under `rules`.
 */
export function assessPaymentIntent(pi: PaymentIntentFacts, owner: string | null, rules: CreditRules): Assessment {
  const customer = customerIdOf(pi);
  if (owner !== null && customer !== owner) return { ok: false, refusal: "not_owned", customer };
  if (pi.status !== "succeeded") return { ok: false, refusal: "not_succeeded", status: pi.status, customer };
  const refuse = (reason: NotCreditableReason): Assessment => ({ ok: false, refusal: "not_creditable", reason, customer });
  if (customer === null) return refuse("no_customer");
  if (!Number.isInteger(pi.amount_received) || pi.amount_received <= 0) return refuse("zero_amount");
  if (pi.livemode !== rules.liveKey) return refuse("livemode_mismatch");
  if (!hasTopUpMarker(pi.metadata) && !isLegacyTopUp(pi.metadata, pi.created, rules.legacy)) return refuse("not_a_top_up");
  const currency = pi.currency.toLowerCase();
  if (!rules.currencies.includes(currency)) return refuse("currency_not_accepted");
  return {
    ok: true,
    customer,
    amount: pi.amount_received,
    currency,
    creditedElsewhere: pi.metadata?.credited === "true",
  };
}
