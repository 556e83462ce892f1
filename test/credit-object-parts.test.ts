// The pure parts of the PaymentIntent object, on their own: what each caller is told about an
// attempt's outcome (a stranger learns only "not found"), which records answer for themselves,
// the operator's word for a record, and the in-memory attempt lock (one attempt at a time,
// bounded waiting per customer, junk remembered briefly).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AdjustmentRecord, CreditRecord } from "../src/credit/contract.js";
import { operatorState } from "../src/credit/operator-state.js";
import { answerFor, owesWork, recordedOutcome, type Outcome } from "../src/objects/payment-intent/answers.js";
import { Attempts } from "../src/objects/payment-intent/attempts.js";

function record(patch: Partial<CreditRecord> = {}): CreditRecord {
  return {
    payment_intent_id: "pi_1",
    state: "credited",
    customer_id: "cus_owner",
    amount: 500,
    currency: "usd",
    credit_attempt: 1,
    credit_write: "sent",
    mark_state: "done",
    mark_attempts: 1,
    balance_transaction_id: "cbtxn_1",
    ending_balance: -500,
    credited_by: "confirm",
    reason: null,
    last_error: null,
    retry_count: 0,
    next_retry_at: null,
    listed: 0,
    account_id: "acct_1",
    created_at: 1,
    updated_at: 1,
    credited_at: 1,
    ...patch,
  };
}

function adjustment(state: AdjustmentRecord["state"]): AdjustmentRecord {
  return {
    operation: "refund:500",
    kind: "refund",
    direction: "debit",
    amount: 500,
    dispute_id: null,
    attempt: 1,
    sent: 0,
    state,
    balance_transaction_id: null,
    ending_balance: null,
    last_error: null,
    created_at: 1,
    updated_at: 1,
  };
}

const customer = fc.constantFrom("cus_owner", "cus_stranger", null);
const outcome: fc.Arbitrary<Outcome> = fc.oneof(
  fc.record({ kind: fc.constant("credited" as const), fresh: fc.boolean() }),
  fc.constant({ kind: "unknown_pi" as const }),
  fc.record({ kind: fc.constant("not_owned" as const), customer }),
  fc.record({ kind: fc.constant("not_succeeded" as const), status: fc.constantFrom("processing", "requires_payment_method"), customer }),
  fc.record({ kind: fc.constant("not_creditable" as const), reason: fc.constantFrom("not_a_top_up", "zero_amount"), customer }),
  fc.record({ kind: fc.constant("needs_attention" as const), customer }),
  fc.record({ kind: fc.constant("unavailable" as const), retryAfterSeconds: fc.integer({ min: 1, max: 300 }), customer }),
);

describe("answerFor: what each caller is told", () => {
  it("a caller who is not the PI's customer is told nothing but payment_intent_not_found, whatever happened", () => {
    fc.assert(
      fc.property(outcome, (o) => {
        const answer = answerFor(o, "cus_stranger", record({ customer_id: "cus_owner" }));
        const about = "customer" in o ? o.customer : "cus_owner";
        // Outcomes about the stranger's own PI are another property.
        if (about === "cus_stranger") return;
        // The one exception: an attempt that failed before it knew whose the PI is says so to anyone.
        if (o.kind === "unavailable" && about === null) expect(answer).toMatchObject({ ok: false, code: "stripe_unavailable" });
        else expect(answer).toEqual({ ok: false, code: "payment_intent_not_found" });
      }),
    );
  });

  it("the owner of a credited PI gets its credit; the webhook, alarm and operator (no owner) see everything", () => {
    const rec = record();
    const expected = { ok: true, paymentIntentId: "pi_1", amount: 500, currency: "usd", balanceTransactionId: "cbtxn_1" };
    expect(answerFor({ kind: "credited", fresh: true }, "cus_owner", rec)).toEqual({ ...expected, status: "credited" });
    expect(answerFor({ kind: "credited", fresh: false }, null, rec)).toEqual({ ...expected, status: "already_credited" });
    // "credited" with no credited record behind it is never a 200.
    expect(answerFor({ kind: "credited", fresh: true }, null, record({ state: "verified" }))).toEqual({ ok: false, code: "payment_intent_not_found" });
    expect(answerFor({ kind: "credited", fresh: true }, null, null)).toEqual({ ok: false, code: "payment_intent_not_found" });
  });

  it("the owner is told why a PI is not credited", () => {
    const rec = record({ state: "not_creditable" });
    expect(answerFor({ kind: "not_succeeded", status: "processing", customer: "cus_owner" }, "cus_owner", rec)).toEqual({
      ok: false,
      code: "payment_not_succeeded",
      paymentIntentStatus: "processing",
    });
    expect(answerFor({ kind: "not_creditable", reason: "not_a_top_up", customer: "cus_owner" }, "cus_owner", rec)).toEqual({
      ok: false,
      code: "payment_not_creditable",
      reason: "not_a_top_up",
    });
    expect(answerFor({ kind: "needs_attention", customer: "cus_owner" }, "cus_owner", rec)).toEqual({ ok: false, code: "credit_needs_attention" });
    expect(answerFor({ kind: "unavailable", retryAfterSeconds: 7, customer: "cus_owner" }, "cus_owner", rec)).toEqual({
      ok: false,
      code: "stripe_unavailable",
      retryAfterSeconds: 7,
    });
  });
});

describe("recordedOutcome: which records answer for themselves", () => {
  it("final states answer; a credit to write, or one the wallet lacks, needs an attempt", () => {
    expect(recordedOutcome(record(), false)).toEqual({ kind: "credited", fresh: false });
    expect(recordedOutcome(record(), true)).toBeNull();
    expect(recordedOutcome(record({ state: "verified" }), false)).toBeNull();
    expect(recordedOutcome(record({ state: "not_creditable", reason: "zero_amount" }), false)).toEqual({
      kind: "not_creditable",
      reason: "zero_amount",
      customer: "cus_owner",
    });
    expect(recordedOutcome(record({ state: "needs_attention" }), true)).toEqual({ kind: "needs_attention", customer: "cus_owner" });
  });

  it("the alarm has work for verified and credited records, and for a mark still to withdraw", () => {
    expect(owesWork(record({ state: "verified" }))).toBe(true);
    expect(owesWork(record())).toBe(true);
    expect(owesWork(record({ state: "needs_attention", mark_state: "withdrawing" }))).toBe(true);
    expect(owesWork(record({ state: "needs_attention", mark_state: "withdrawn" }))).toBe(false);
    expect(owesWork(record({ state: "not_creditable" }))).toBe(false);
  });
});

describe("operatorState", () => {
  it("names the first thing owed after a credit, in order of urgency", () => {
    expect(operatorState(record({ state: "verified" }), [])).toBe("verified");
    expect(operatorState(record(), [adjustment("needs_attention"), adjustment("pending")], true)).toBe("reversal_needs_attention");
    expect(operatorState(record(), [adjustment("pending")], true)).toBe("reversal_pending");
    expect(operatorState(record({ mark_state: "pending" }), [adjustment("done")], true)).toBe("credited_wallet_pending");
    expect(operatorState(record({ mark_state: "pending" }), [])).toBe("credited_mark_pending");
    expect(operatorState(record(), [adjustment("done")])).toBe("credited");
  });
});

describe("Attempts: one attempt at a time", () => {
  function deferred() {
    let resolve!: (o: Outcome) => void;
    const promise = new Promise<Outcome>((r) => (resolve = r));
    return { promise, resolve };
  }

  it("refuses a second attempt while one is in flight, and frees the slot when it ends", async () => {
    const attempts = new Attempts();
    const gate = deferred();
    const first = attempts.start(
      null,
      () => gate.promise,
      async () => ({ kind: "unknown_pi" }),
    );
    expect(attempts.running).toBe(first);
    expect(() =>
      attempts.start(
        null,
        () => gate.promise,
        async () => ({ kind: "unknown_pi" }),
      ),
    ).toThrow(/already in flight/);
    gate.resolve({ kind: "credited", fresh: true });
    await expect(first.promise).resolves.toEqual({ kind: "credited", fresh: true });
    expect(attempts.running).toBeNull();
  });

  it("a body that throws becomes the crash handler's outcome and frees the slot", async () => {
    const attempts = new Attempts();
    const crashed = attempts.start(
      null,
      async () => {
        throw new Error("boom");
      },
      async (err) => ({ kind: "unavailable", retryAfterSeconds: 2, customer: String(err).includes("boom") ? "seen" : null }),
    );
    await expect(crashed.promise).resolves.toEqual({ kind: "unavailable", retryAfterSeconds: 2, customer: "seen" });
    expect(attempts.running).toBeNull();
  });

  it("each customer gets `limit` places in the waiting room; the webhook and alarm are never turned away", async () => {
    const attempts = new Attempts();
    const gate = deferred();
    const running = attempts.start(
      "cus_a",
      () => gate.promise,
      async () => ({ kind: "unknown_pi" }),
    );
    const a1 = attempts.join(running, "cus_a", 2);
    const a2 = attempts.join(running, "cus_a", 2);
    await expect(attempts.join(running, "cus_a", 2)).resolves.toBe("full");
    const b1 = attempts.join(running, "cus_b", 2);
    const system = Array.from({ length: 5 }, () => attempts.join(running, null, 2));
    gate.resolve({ kind: "credited", fresh: true });
    for (const waiter of [a1, a2, b1, ...system]) await expect(waiter).resolves.toEqual({ kind: "credited", fresh: true });
    // The places are given back: the next attempt's waiters are admitted again.
    const next = attempts.start(
      "cus_a",
      async () => ({ kind: "credited", fresh: false }),
      async () => ({ kind: "unknown_pi" }),
    );
    await expect(attempts.join(next, "cus_a", 2)).resolves.toEqual({ kind: "credited", fresh: false });
  });

  it("remembers an unknown PI for everyone, and 'not yours' per customer, for a minute", async () => {
    let now = 1_000_000;
    const attempts = new Attempts(() => now);
    await attempts.start(
      "cus_a",
      async () => ({ kind: "not_owned", customer: "cus_x" }),
      async () => ({ kind: "unknown_pi" }),
    ).promise;
    expect(attempts.knownJunk("cus_a")).toBe(true);
    expect(attempts.knownJunk("cus_b")).toBe(false);
    expect(attempts.knownJunk(null)).toBe(false);
    await attempts.start(
      null,
      async () => ({ kind: "unknown_pi" }),
      async () => ({ kind: "unknown_pi" }),
    ).promise;
    expect(attempts.knownJunk("cus_b")).toBe(true);
    now += 60_001;
    expect(attempts.knownJunk("cus_a")).toBe(false);
    expect(attempts.knownJunk(null)).toBe(false);
  });
});
