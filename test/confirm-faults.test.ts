// The Stripe SDK retries network errors and 5xx with the same Idempotency-Key. Those retries,
// and the protocol's own recovery, must never credit twice.

import { describe, expect, it } from "vitest";
import { confirm, emu, json, ledgerFor, paidTopUp, stripeRequests } from "./helpers.js";

describe("faults on the credit write during a confirm", () => {
  it("a transient 500 then an applied-but-dropped answer: the SDK's retries end in one credit", async () => {
    const { customer, pi, token } = await paidTopUp(3100);
    const key = `credit-tx:${pi.id}`;
    await emu("/faults", { kind: "error_500", saved: false, key, times: 1 });
    await emu("/faults", { kind: "drop", key, times: 1 });

    const res = await confirm(token, pi.id);
    expect(res.status).toBe(200);
    const body = await json<{ status: string; balance_transaction_id: string }>(res);
    expect(body.status).toBe("credited");

    const ledger = await ledgerFor(customer.id, pi.id);
    expect(ledger.map((tx) => [tx.id, tx.amount])).toEqual([[body.balance_transaction_id, -3100]]);
    const writes = await stripeRequests({ key });
    expect(writes.map((w) => [w.fault, w.replayed])).toEqual([
      ["error_500", false],
      ["drop", false],
      [null, true],
    ]);
  });

  it("a 500 saved under the key is replayed to every retry: the ledger is checked, then a new key credits once", async () => {
    const { customer, pi, token } = await paidTopUp(2200);
    await emu("/faults", { kind: "error_500", key: `credit-tx:${pi.id}`, times: 1 });

    const res = await confirm(token, pi.id);
    expect(res.status).toBe(200);
    const body = await json<{ balance_transaction_id: string }>(res);

    const ledger = await ledgerFor(customer.id, pi.id);
    expect(ledger.map((tx) => [tx.id, tx.amount])).toEqual([[body.balance_transaction_id, -2200]]);
    // The first key was sent (the fault fired on it), and nothing under it ever succeeded:
    // the first send got the injected 500, each retry of that key its replay.
    const firstKey = await stripeRequests({ key: `credit-tx:${pi.id}` });
    expect(firstKey.length).toBeGreaterThanOrEqual(1);
    expect(firstKey.map((r) => [r.status, r.fault, r.replayed])).toEqual([[500, "error_500", false], ...firstKey.slice(1).map(() => [500, null, true])]);
    expect(await stripeRequests({ key: `credit-tx:${pi.id}:2` })).toHaveLength(1);
    expect((await stripeRequests({ path: `/v1/customers/${customer.id}/balance_transactions`, method: "GET" })).length).toBeGreaterThanOrEqual(1);
  });
});
