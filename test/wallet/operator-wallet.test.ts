// The operator's view of a wallet: its figures, its batches to Stripe and why a sync failed,
// and "sync now" once the cause is fixed.

import { describe, expect, it } from "vitest";
import { TEST_BINDINGS } from "../bindings.js";
import { addFault, call, json, newAccountId, removeFault, SERVICE_TOKEN } from "../helpers.js";
import { debit, fundedAccount, stripeBalance, totals } from "./helpers.js";

const operator = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

interface WalletView {
  ok?: boolean;
  error?: string | null;
  wallet: { available: number; held: number; sync_error: string | null; synced_at: number | null } | null;
  batches: { n: number; state: string; attempt: number; last_error: string | null }[];
  owed: number;
}

describe("GET /operator/accounts/{account}/wallet and POST …/wallet/sync", () => {
  it("show a sync Stripe refused, with its error, and finish it once the cause is gone", async () => {
    const f = await fundedAccount(1000);
    expect(await debit(f.accountId, 300)).toMatchObject({ ok: true });
    const fault = await addFault({
      kind: "error_400",
      method: "POST",
      path: `/v1/customers/${f.customer.id}/balance_transactions`,
      key: "wallet-debits:*",
      times: 1,
    });
    try {
      const failed = await json<WalletView>(await call(`/operator/accounts/${f.accountId}/wallet/sync`, { method: "POST", headers: operator }));
      expect(failed.ok).toBe(false);
      expect(failed.error).toMatch(/400/);
      const seen = await json<WalletView>(await call(`/operator/accounts/${f.accountId}/wallet`, { headers: operator }));
      expect(seen.wallet?.sync_error).toMatch(/400/);
      expect(seen.batches).toMatchObject([{ n: 1, state: "pending", attempt: 2 }]);
      expect(await stripeBalance(f.customer.id)).toBe(-1000);
    } finally {
      await removeFault(fault);
    }
    const fixed = await json<WalletView>(await call(`/operator/accounts/${f.accountId}/wallet/sync`, { method: "POST", headers: operator }));
    expect(fixed).toMatchObject({ ok: true, error: null, owed: 0, batches: [{ n: 1, state: "done" }] });
    expect(fixed.wallet?.sync_error).toBeNull();
    expect(await stripeBalance(f.customer.id)).toBe(-700);
    expect(await totals(f.accountId)).toEqual({ available: 700, held: 0 });
    // The lookup shows the ledger too, newest first: the debit, then the top-up.
    const looked = await json<WalletView & { ledger: { data: { kind: string; amount: number }[]; has_more: boolean } }>(
      await call(`/operator/accounts/${f.accountId}/wallet?limit=1`, { headers: operator }),
    );
    expect(looked.ledger.data.map((l) => [l.kind, l.amount])).toEqual([["debit", -300]]);
    expect(looked.ledger.has_more).toBe(true);
  });

  it("answer 404 for an account with no wallet, 400 for a malformed id, 401 for the seller's token", async () => {
    expect((await call(`/operator/accounts/${newAccountId()}/wallet`, { headers: operator })).status).toBe(404);
    expect((await call(`/operator/accounts/${encodeURIComponent("a b")}/wallet`, { headers: operator })).status).toBe(400);
    expect((await call(`/operator/accounts/${newAccountId()}/wallet`, { headers: { authorization: `Bearer ${SERVICE_TOKEN}` } })).status).toBe(401);
  });
});
