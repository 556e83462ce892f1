// `credit.needs_attention`: produced by a PaymentIntent object in the transaction that puts a
// credit or a reversal into needs_attention, so the seller's operators hear of it once per time
// it happens. The id is the PaymentIntent, what stopped (the credit, or one reversal or
// restoration) and the attempt that stopped: an operator's retry that fails again is a new fact.

import type { CreditRecord } from "../credit/contract.js";
import { eventId, type AttentionEventData, type ServiceEvent } from "./contract.js";

export interface AttentionFact {
  /** The account whose customer paid (not merely the one the PaymentIntent's metadata names); null when unknown. */
  accountId: string | null;
  subject: "credit" | "adjustment";
  /** The reversal's or restoration's operation (subject "adjustment"). */
  operation?: string;
  /** Which attempt stopped (the credit's or the adjustment's attempt number); 0 when there was none. */
  attempt: number;
  reason: string;
  error: string | null;
}

export function attentionEvent(rec: CreditRecord, fact: AttentionFact): ServiceEvent {
  const what = fact.subject === "credit" ? "credit" : (fact.operation ?? "adjustment");
  const data: AttentionEventData = {
    payment_intent_id: rec.payment_intent_id,
    account_id: fact.accountId,
    customer_id: rec.customer_id,
    amount: rec.amount,
    currency: rec.currency,
    subject: fact.subject,
    operation: fact.operation ?? null,
    reason: fact.reason,
    error: fact.error,
  };
  return {
    id: eventId("credit.needs_attention", `${rec.payment_intent_id}_${what}_${fact.attempt}`),
    type: "credit.needs_attention",
    created: new Date().toISOString(),
    data,
  };
}
