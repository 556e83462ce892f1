// The reversal rules on their own (src/credit/reversals.ts): which debits and restorations a
// credited PaymentIntent still needs, given the cumulative refunded amount, its disputes and
// what is already planned, and what has been written. Examples first, then properties drawn
// with fast-check over whole histories of refunds, disputes, refused writes and operator retries.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { missingAdjustments, netOf, type AdjustmentState, type DisputeState, type PlannedAdjustment } from "../src/credit/reversals.js";

type WriteResult = AdjustmentState["state"];

/** The planner's answer as the object stores it: each planned adjustment with what became of it. */
function record(planned: PlannedAdjustment[], result: WriteResult | ((a: PlannedAdjustment, i: number) => WriteResult)): AdjustmentState[] {
  return planned.map((a, i) => ({ ...a, state: typeof result === "function" ? result(a, i) : result }));
}

const net = (credited: number, adjustments: AdjustmentState[]) =>
  netOf(
    credited,
    adjustments.filter((a) => a.state === "done"),
  );
const dispute = (id: string, amount: number, status: DisputeState["status"]): DisputeState => ({ dispute_id: id, amount, status });

describe("missingAdjustments: examples", () => {
  it("nothing before the credit, nothing without refunds or disputes", () => {
    expect(missingAdjustments(0, 500, [dispute("dp_1", 500, "open")], [])).toEqual([]);
    expect(missingAdjustments(1000, 0, [], [])).toEqual([]);
  });

  it("a refund is named by the refunded level it brings the PI to, and planned once", () => {
    const first = missingAdjustments(1000, 300, [], []);
    expect(first).toEqual([{ operation: "refund:300", kind: "refund", direction: "debit", amount: 300, dispute_id: null }]);
    const done = record(first, "done");
    expect(missingAdjustments(1000, 300, [], done)).toEqual([]);
    expect(missingAdjustments(1000, 500, [], done)).toEqual([{ operation: "refund:500", kind: "refund", direction: "debit", amount: 200, dispute_id: null }]);
    // An older, smaller cumulative total (an event delivered late) plans nothing.
    expect(missingAdjustments(1000, 200, [], done)).toEqual([]);
  });

  it("a refund larger than what is left takes back only what is left", () => {
    const disputed = record(missingAdjustments(1000, 0, [dispute("dp_1", 600, "open")], []), "done");
    expect(missingAdjustments(1000, 1000, [dispute("dp_1", 600, "open")], disputed)).toEqual([
      { operation: "refund:400", kind: "refund", direction: "debit", amount: 400, dispute_id: null },
    ]);
  });

  it("a won dispute gives back what its written debit took, which makes room for a capped refund", () => {
    const d = dispute("dp_1", 600, "open");
    let planned = record(missingAdjustments(1000, 0, [d], []), "done");
    planned = [...planned, ...record(missingAdjustments(1000, 1000, [d], planned), "done")];
    expect(net(1000, planned).net).toBe(0);
    const won = { ...d, status: "won" as const };
    const restore = missingAdjustments(1000, 1000, [won], planned);
    expect(restore).toEqual([{ operation: "restore:dp_1", kind: "restore", direction: "credit", amount: 600, dispute_id: "dp_1" }]);
    planned = [...planned, ...record(restore, "done")];
    // Only once the restoration is written is there room for the rest of the refund.
    expect(missingAdjustments(1000, 1000, [won], planned)).toEqual([
      { operation: "refund:1000", kind: "refund", direction: "debit", amount: 600, dispute_id: null },
    ]);
  });

  it("won before its creation was seen: nothing taken, nothing given back", () => {
    expect(missingAdjustments(1200, 0, [dispute("dp_1", 1200, "won")], [])).toEqual([]);
  });

  it("no restoration from a debit Stripe refused (a refused debit took nothing)", () => {
    const planned = record(missingAdjustments(1000, 0, [dispute("dp_1", 1000, "open")], []), "needs_attention");
    expect(missingAdjustments(1000, 0, [dispute("dp_1", 1000, "won")], planned)).toEqual([]);
  });

  it("no restoration from a debit not written yet", () => {
    const planned = record(missingAdjustments(1000, 0, [dispute("dp_1", 1000, "open")], []), "pending");
    expect(missingAdjustments(1000, 0, [dispute("dp_1", 1000, "won")], planned)).toEqual([]);
  });

  it("a refused restoration makes no room: a later refund cannot take back more than was credited", () => {
    let planned = record(missingAdjustments(1000, 0, [dispute("dp_1", 1000, "open")], []), "done");
    planned = [...planned, ...record(missingAdjustments(1000, 0, [dispute("dp_1", 1000, "won")], planned), "needs_attention")];
    expect(planned.map((a) => a.operation)).toEqual(["dispute:dp_1", "restore:dp_1"]);
    expect(missingAdjustments(1000, 1000, [dispute("dp_1", 1000, "won")], planned)).toEqual([]);
    expect(net(1000, planned)).toEqual({ credited: 1000, reversed: 1000, net: 0 });
  });
});

describe("netOf", () => {
  it("counts debits as reversed and restorations as given back", () => {
    const done: PlannedAdjustment[] = [
      { operation: "refund:300", kind: "refund", direction: "debit", amount: 300, dispute_id: null },
      { operation: "dispute:dp_1", kind: "dispute", direction: "debit", amount: 700, dispute_id: "dp_1" },
      { operation: "restore:dp_1", kind: "restore", direction: "credit", amount: 700, dispute_id: "dp_1" },
    ];
    expect(netOf(1000, [])).toEqual({ credited: 1000, reversed: 0, net: 1000 });
    expect(netOf(1000, done.slice(0, 2))).toEqual({ credited: 1000, reversed: 1000, net: 0 });
    expect(netOf(1000, done)).toEqual({ credited: 1000, reversed: 300, net: 700 });
  });
});

// ---- Properties over whole histories -------------------------------------------------------

/** One thing that happens to a credited PaymentIntent. */
type Step =
  { kind: "refund"; by: number } | { kind: "open"; amount: number } | { kind: "close"; which: number; won: boolean } | { kind: "retry"; which: number };

/** What Stripe does with the writes planned after a step: writes[i] for the i-th (written when absent). */
interface Move {
  step: Step;
  writes: readonly boolean[];
}

const stepArb = (credited: number, maxDisputes: number): fc.Arbitrary<Step> =>
  fc.oneof(
    fc.record({ kind: fc.constant("refund" as const), by: fc.integer({ min: 1, max: credited }) }),
    ...(maxDisputes > 0 ? [fc.record({ kind: fc.constant("open" as const), amount: fc.integer({ min: 1, max: credited }) })] : []),
    fc.record({ kind: fc.constant("close" as const), which: fc.nat(), won: fc.boolean() }),
    fc.record({ kind: fc.constant("retry" as const), which: fc.nat() }),
  );

const historyArb = (opts: { refusals: boolean; maxDisputes: number }) =>
  fc.integer({ min: 1, max: 10_000 }).chain((credited) =>
    fc.record({
      credited: fc.constant(credited),
      moves: fc.array(
        fc.record({ step: stepArb(credited, opts.maxDisputes), writes: opts.refusals ? fc.array(fc.boolean(), { maxLength: 4 }) : fc.constant<boolean[]>([]) }),
        { maxLength: 25 },
      ),
    }),
  );

/**
 * Plays a history as the object would: after each step, plan and "write" until nothing more
 * is planned (the object's alarm runs again while anything is owed), checking after every write.
 * Returns the final state.
 */
function play(credited: number, moves: Move[], check: (adjustments: AdjustmentState[]) => void) {
  let refunded = 0;
  const disputes: DisputeState[] = [];
  let adjustments: AdjustmentState[] = [];
  let opened = 0;
  for (const { step, writes } of moves) {
    switch (step.kind) {
      case "refund":
        refunded = Math.min(credited, refunded + step.by);
        break;
      case "open":
        disputes.push(dispute(`dp_${++opened}`, step.amount, "open"));
        break;
      case "close": {
        const open = disputes.filter((d) => d.status === "open");
        const d = open[step.which % Math.max(1, open.length)];
        if (d) d.status = step.won ? "won" : "lost";
        break;
      }
      case "retry": {
        // An operator retry writes a refused adjustment (after a ledger look finds nothing).
        const stuck = adjustments.filter((a) => a.state === "needs_attention");
        const a = stuck[step.which % Math.max(1, stuck.length)];
        if (a) adjustments = adjustments.map((x) => (x === a ? { ...x, state: "done" } : x));
        check(adjustments);
        break;
      }
    }
    let w = 0;
    for (let round = 0; round < 10; round++) {
      const planned = missingAdjustments(credited, refunded, disputes, adjustments);
      if (planned.length === 0) break;
      // Planning is idempotent in its names: nothing already planned is planned again.
      const names = new Set(adjustments.map((a) => a.operation));
      for (const a of planned) {
        expect(names.has(a.operation)).toBe(false);
        expect(a.amount).toBeGreaterThan(0);
        names.add(a.operation);
        adjustments = [...adjustments, { ...a, state: "pending" }];
        check(adjustments);
        const written = writes[w++] ?? true;
        adjustments = adjustments.map((x) => (x.operation === a.operation ? { ...x, state: written ? "done" : "needs_attention" } : x));
        check(adjustments);
      }
    }
    // Settled: asking again plans nothing.
    expect(missingAdjustments(credited, refunded, disputes, adjustments)).toEqual([]);
  }
  return { refunded, disputes, adjustments };
}

describe("missingAdjustments: properties", () => {
  it("credited − reversed stays within [0, credited] at every moment, whichever writes Stripe refuses", () => {
    fc.assert(
      fc.property(historyArb({ refusals: true, maxDisputes: 3 }), ({ credited, moves }) => {
        play(credited, moves, (adjustments) => {
          const { net: n } = net(credited, adjustments);
          expect(n).toBeGreaterThanOrEqual(0);
          expect(n).toBeLessThanOrEqual(credited);
        });
      }),
      { numRuns: 500 },
    );
  });

  it("with every write accepted, at most one dispute (one charge has one): net = credited − refunded − disputed not won, at least 0", () => {
    fc.assert(
      fc.property(historyArb({ refusals: false, maxDisputes: 1 }), ({ credited, moves }) => {
        // A charge has at most one dispute: keep only the first "open".
        let seenOpen = false;
        const oneDispute = moves.filter((m) => m.step.kind !== "open" || (!seenOpen && (seenOpen = true)));
        const end = play(credited, oneDispute, (adjustments) => {
          const { net: n } = net(credited, adjustments);
          expect(n).toBeGreaterThanOrEqual(0);
          expect(n).toBeLessThanOrEqual(credited);
        });
        const notWon = end.disputes.filter((d) => d.status !== "won").reduce((s, d) => s + d.amount, 0);
        expect(net(credited, end.adjustments).net).toBe(Math.max(0, credited - end.refunded - notWon));
      }),
      { numRuns: 500 },
    );
  });
});
