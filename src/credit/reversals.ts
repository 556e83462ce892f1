// Which reversals a credited PaymentIntent still needs, from what Stripe has told us (the
// cumulative refunded amount, each dispute's amount and status) and what is already planned.
// Pure, so the money rules can be read and tested on their own:
// - refunds and open or lost disputes take credit back; never more than was credited in total;
// - a won dispute gives back exactly what that dispute took;
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

export interface DisputeState {
  dispute_id: string;
  amount: number;
  status: "open" | "won" | "lost";
}

const total = (xs: PlannedAdjustment[], kind: PlannedAdjustment["kind"]) => xs.filter((a) => a.kind === kind).reduce((n, a) => n + a.amount, 0);

/** The adjustments to plan now, given `credited` (0 while not credited) and everything already planned. */
export function missingAdjustments(credited: number, refundedTotal: number, disputes: DisputeState[], planned: PlannedAdjustment[]): PlannedAdjustment[] {
  if (credited <= 0) return [];
  const out: PlannedAdjustment[] = [];
  const all = () => [...planned, ...out];
  const room = () => credited - total(all(), "refund") - total(all(), "dispute") + total(all(), "restore");
  const debitOf = (id: string) => all().find((a) => a.kind === "dispute" && a.dispute_id === id);

  // Restorations first: they make room for a refund that was capped earlier.
  for (const d of disputes) {
    const debit = debitOf(d.dispute_id);
    if (d.status === "won" && debit && !all().some((a) => a.kind === "restore" && a.dispute_id === d.dispute_id)) {
      out.push({ operation: `restore:${d.dispute_id}`, kind: "restore", direction: "credit", amount: debit.amount, dispute_id: d.dispute_id });
    }
  }
  const refunded = total(all(), "refund");
  if (refundedTotal > refunded && room() > 0) {
    const amount = Math.min(refundedTotal - refunded, room());
    out.push({ operation: `refund:${refunded + amount}`, kind: "refund", direction: "debit", amount, dispute_id: null });
  }
  for (const d of disputes) {
    if (d.status === "won" || debitOf(d.dispute_id)) continue;
    const amount = Math.min(d.amount, room());
    if (amount > 0) out.push({ operation: `dispute:${d.dispute_id}`, kind: "dispute", direction: "debit", amount, dispute_id: d.dispute_id });
  }
  return out;
}

/** Credited, reversed and net amounts from the adjustments written so far. */
export function netOf(credited: number, done: PlannedAdjustment[]): { credited: number; reversed: number; net: number } {
  const reversed = total(done, "refund") + total(done, "dispute") - total(done, "restore");
  return { credited, reversed, net: credited - reversed };
}
