// The one word an operator sees for a PaymentIntent: the record's state, or, once credited, the
// first thing still owed after the credit. Pure, so that the registry, the operator routes and
// the object all say the same thing.

import type { AdjustmentRecord, CreditRecord } from "./contract.js";

export function operatorState(rec: CreditRecord, adjustments: AdjustmentRecord[], walletOwed = false): string {
  if (rec.state !== "credited") return rec.state;
  if (adjustments.some((a) => a.state === "needs_attention")) return "reversal_needs_attention";
  if (adjustments.some((a) => a.state === "pending")) return "reversal_pending";
  if (walletOwed) return "credited_wallet_pending";
  return rec.mark_state === "pending" ? "credited_mark_pending" : "credited";
}
