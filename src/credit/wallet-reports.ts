// What a PaymentIntent object owes the account's wallet: each ledger entry it wrote (its credit,
// each reversal and restoration) that the wallet has not acknowledged yet. Keyed by the balance
// transaction, so reporting one twice is harmless: the wallet applies each once. Pure, so the
// rule can be read and tested on its own.

import type { AdjustmentRecord, CreditRecord } from "./contract.js";
import { adjustmentParams, creditParams } from "../stripe/keys.js";
import type { StripeEntryReport } from "../wallet/contract.js";

/** The reports still owed for `rec`, given its adjustments and the entries already `reported`. */
export function walletReportsOwed(rec: CreditRecord, adjustments: AdjustmentRecord[], reported: Set<string>): StripeEntryReport[] {
  if (rec.state !== "credited" || !rec.balance_transaction_id || !rec.customer_id || !rec.currency) return [];
  const pi = rec.payment_intent_id;
  const owed: StripeEntryReport[] = [];
  if (!reported.has(rec.balance_transaction_id)) {
    owed.push({
      balance_transaction_id: rec.balance_transaction_id,
      customer_id: rec.customer_id,
      kind: "top_up",
      amount: -(rec.amount ?? 0),
      currency: rec.currency,
      payment_intent_id: pi,
      description: creditParams(pi, rec.amount ?? 0, rec.currency).description ?? null,
      created: Math.floor((rec.credited_at ?? rec.updated_at) / 1000),
    });
  }
  for (const a of adjustments) {
    if (a.state !== "done" || !a.balance_transaction_id || reported.has(a.balance_transaction_id)) continue;
    const params = adjustmentParams(pi, a.operation, a.direction, a.amount, rec.currency);
    owed.push({
      balance_transaction_id: a.balance_transaction_id,
      customer_id: rec.customer_id,
      // Stripe's sign: a reversal takes credit back (positive), a restoration gives it back (negative).
      kind: a.direction === "credit" ? "restoration" : "reversal",
      amount: params.amount,
      currency: rec.currency,
      payment_intent_id: pi,
      description: params.description ?? null,
      created: Math.floor(a.updated_at / 1000),
    });
  }
  return owed;
}
