// Auto-recharge as the routes show it (src/routes/auto-recharge.ts): the settings, the saved
// card, this month's recharges against the limit, and the open recharge (else the latest), with
// its client_secret only while it waits for the customer to authenticate.

import type { WalletRow } from "../wallet/schema.js";
import type { AutoRechargeView, RechargeView } from "./contract.js";
import { monthOf } from "./rules.js";
import type { RechargeRow } from "./schema.js";
import type { RechargeStore } from "./store.js";

export function rechargeView(store: RechargeStore, wallet: WalletRow | null, defaultCurrency: string, now: number): AutoRechargeView {
  const config = store.config();
  const settings = store.settings(config);
  const month = monthOf(now);
  const recharged = store.monthTotal(month);
  const rec = store.open() ?? store.latest();
  return {
    settings,
    currency: wallet?.currency ?? defaultCurrency,
    payment_method: config?.payment_method ? { id: config.payment_method, brand: config.card_brand, last4: config.card_last4 } : null,
    disabled_reason: config?.disabled_reason ?? null,
    consecutive_failures: config?.failures ?? 0,
    this_month: { month, recharged, remaining: settings ? Math.max(0, settings.monthly_limit - recharged) : null },
    recharge: rec ? viewOf(rec) : null,
  };
}

function viewOf(rec: RechargeRow): RechargeView {
  return {
    number: rec.n,
    status: rec.status,
    amount: rec.amount,
    currency: rec.currency,
    payment_intent_id: rec.payment_intent_id,
    client_secret: rec.status === "action_required" ? rec.client_secret : null,
    payment_method: rec.payment_method,
    expires_at: rec.expires_at === null ? null : new Date(rec.expires_at).toISOString(),
    code: rec.code,
    decline_code: rec.decline_code,
    created: new Date(rec.created_at).toISOString(),
  };
}
