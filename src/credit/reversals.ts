// Which reversals a credited PaymentIntent still needs, from what Stripe has told us (the
// cumulative refunded amount, each dispute's amount and status) and what is already planned.
// Pure, so the money rules can be read and tested on their own:
// - refunds and open or lost disputes take credit back; never more than was credited in total;
// - a won dispute gives back exactly what that dispute took, and only once that debit was
//   written: a debit Stripe refused took nothing, so there is nothing to give back;
// - room for new debits counts every planned debit (it will be written, or an operator is on
//   it) but only restorations already written: a restoration Stripe refused gave nothing back.
//   So credited − reversed stays within [0, credited] whichever writes succeed, at every moment;
// - each operation has a stable name, so a redelivered event plans nothing new: a refund is
//   named by the refunded level it brings the PI to (refund:300, then refund:500), a dispute by
//   its id (dispute:dp_…, restore:dp_…).

export interface PlannedAdjustment {
  operation: string;
  kind: "refund" | "dispute" | "restore";
  direction: "debit" | "credit";
  amount: number;
  dispute_id: string | null;
}

/** A planned adjustment and what became of it (newly planned ones are pending). */
export interface AdjustmentState extends PlannedAdjustment {
  state: "pending" | "done" | "needs_attention";
}

export interface DisputeState {
  dispute_id: string;
  amount: number;
  status: "open" | "won" | "lost";
}

const total = (xs: PlannedAdjustment[], kind: PlannedAdjustment["kind"]) => xs.filter((a) => a.kind === kind).reduce((n, a) => n + a.amount, 0);

/** The adjustments to plan now, given `credited` (0 while not credited) and everything already planned. */
export function missingAdjustments(credited: number, refundedTotal: number, disputes: DisputeState[], planned: AdjustmentState[]): PlannedAdjustment[] {
  if (credited <= 0) return [];
  const out: AdjustmentState[] = [];
  const all = () => [...planned, ...out];
  const written = () => all().filter((a) => a.state === "done");
  const room = () => credited - total(all(), "refund") - total(all(), "dispute") + total(written(), "restore");
  const debitOf = (id: string) => all().find((a) => a.kind === "dispute" && a.dispute_id === id);

  // Restorations first (they make room for a refund that was capped earlier), each only from
  // its dispute's debit once that debit is written.
  for (const d of disputes) {
    const debit = debitOf(d.dispute_id);
    if (d.status === "won" && debit?.state === "done" && !all().some((a) => a.kind === "restore" && a.dispute_id === d.dispute_id)) {
      out.push({
        operation: `restore:${d.dispute_id}`,
        kind: "restore",
        direction: "credit",
        amount: debit.amount,
        dispute_id: d.dispute_id,
        state: "pending",
      });
    }
  }
  const refunded = total(all(), "refund");
  if (refundedTotal > refunded && room() > 0) {
    const amount = Math.min(refundedTotal - refunded, room());
    out.push({ operation: `refund:${refunded + amount}`, kind: "refund", direction: "debit", amount, dispute_id: null, state: "pending" });
  }
  for (const d of disputes) {
    if (d.status === "won" || debitOf(d.dispute_id)) continue;
    const amount = Math.min(d.amount, room());
    if (amount > 0) out.push({ operation: `dispute:${d.dispute_id}`, kind: "dispute", direction: "debit", amount, dispute_id: d.dispute_id, state: "pending" });
  }
  return out.map(({ state: _state, ...a }) => a);
}

/** Credited, reversed and net amounts from the adjustments written so far. */
export function netOf(credited: number, done: PlannedAdjustment[]): { credited: number; reversed: number; net: number } {
  const reversed = total(done, "refund") + total(done, "dispute") - total(done, "restore");
  return { credited, reversed, net: credited - reversed };
}
