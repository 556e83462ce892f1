// The events auto-recharge produces (src/recharge/recharger.ts), built from a recharge's record.
// Each names its recharge (`{account}_{n}`), so a step run twice (a retried alarm, a crash
// after the commit) is one event; recharge.disabled names the switch-off's revision.

import type { RechargeRow } from "../recharge/schema.js";
import { eventId, type RechargeDisabledData, type RechargeEventData, type ServiceEvent } from "./contract.js";

export type RechargeEventType = "recharge.succeeded" | "recharge.failed" | "recharge.action_required";

export function rechargeEvent(type: RechargeEventType, rec: RechargeRow, accountId: string, consecutiveFailures: number): ServiceEvent {
  const data: RechargeEventData = {
    account_id: accountId,
    recharge: rec.n,
    payment_intent_id: rec.payment_intent_id,
    amount: rec.amount,
    currency: rec.currency,
    code: rec.code,
    decline_code: rec.decline_code,
    expires_at: rec.expires_at === null ? null : new Date(rec.expires_at).toISOString(),
    consecutive_failures: consecutiveFailures,
  };
  return { id: eventId(type, `${accountId}_${rec.n}`), type, created: new Date(rec.updated_at).toISOString(), data };
}

export function rechargeDisabledEvent(accountId: string, reason: RechargeDisabledData["reason"], revision: number, consecutiveFailures: number): ServiceEvent {
  const data: RechargeDisabledData = { account_id: accountId, reason, consecutive_failures: consecutiveFailures };
  return { id: eventId("recharge.disabled", `${accountId}_${revision}`), type: "recharge.disabled", created: new Date().toISOString(), data };
}
