// The rule of what a PaymentIntent object still owes the account's wallet, on its own.

import { describe, expect, it } from "vitest";
import { walletReportsOwed } from "../../src/credit/wallet-reports.js";
import type { AdjustmentRecord, CreditRecord } from "../../src/credit/contract.js";

const credited = {
  payment_intent_id: "pi_1",
  state: "credited",
  customer_id: "cus_1",
  amount: 1000,
  currency: "usd",
  balance_transaction_id: "cbtxn_credit",
  credited_at: 1_700_000_000_000,
  updated_at: 1_700_000_000_000,
} as CreditRecord;

function adjustment(operation: string, direction: "debit" | "credit", state: AdjustmentRecord["state"], tx: string | null): AdjustmentRecord {
  return { operation, direction, state, amount: 300, balance_transaction_id: tx, updated_at: 1_700_000_100_000 } as AdjustmentRecord;
}

describe("walletReportsOwed", () => {
  it("owes the credit (Stripe's sign: negative) until the wallet acknowledged it", () => {
    expect(walletReportsOwed(credited, [], new Set())).toEqual([
      expect.objectContaining({
        balance_transaction_id: "cbtxn_credit",
        kind: "top_up",
        amount: -1000,
        customer_id: "cus_1",
        payment_intent_id: "pi_1",
        created: 1_700_000_000,
      }),
    ]);
    expect(walletReportsOwed(credited, [], new Set(["cbtxn_credit"]))).toEqual([]);
  });

  it("owes each written reversal (positive) and restoration (negative), never a pending or refused one", () => {
    const owed = walletReportsOwed(
      credited,
      [
        adjustment("dispute:dp_1", "debit", "done", "cbtxn_rev"),
        adjustment("restore:dp_1", "credit", "done", "cbtxn_back"),
        adjustment("refund:300", "debit", "pending", null),
        adjustment("refund:600", "debit", "needs_attention", null),
      ],
      new Set(["cbtxn_credit"]),
    );
    expect(owed.map((r) => [r.balance_transaction_id, r.kind, r.amount])).toEqual([
      ["cbtxn_rev", "reversal", 300],
      ["cbtxn_back", "restoration", -300],
    ]);
  });

  it("owes nothing for a PI that is not credited", () => {
    for (const state of ["verified", "not_creditable", "needs_attention"] as const) {
      expect(
        walletReportsOwed({ ...credited, state, balance_transaction_id: null }, [adjustment("refund:300", "debit", "done", "cbtxn_x")], new Set()),
      ).toEqual([]);
    }
  });
});
