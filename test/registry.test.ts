// The credit registry keeps its list in step with the PaymentIntent objects: a PI object's report
// is best effort, so an entry can be left behind stale or after the PI is settled. Listing asks
// each listed PI object for its own view: settled or unknown PIs are dropped, stale entries are
// refreshed, and an entry already in step is not written again. Each test uses a registry of
// its own (the service's is one object named "credits"), over the service's real PI objects.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { AttentionEntry } from "../src/objects/contract.js";
import { CreditRegistry } from "../src/objects/registry.js";
import { confirm, paidTopUp, piObject, removeFault, settledCredit, waitForObject, refuseCreditOnce } from "./helpers.js";

const freshRegistry = () => env.CREDIT_REGISTRY.getByName(`test-${crypto.randomUUID()}`);

/** An entry as a PI object might have reported it some time ago. */
function staleEntry(paymentIntentId: string, fields: Partial<AttentionEntry> = {}): AttentionEntry {
  return {
    payment_intent_id: paymentIntentId,
    state: "verified",
    customer_id: null,
    amount: null,
    currency: null,
    reason: null,
    last_error: "an earlier attempt's error",
    retry_count: 3,
    next_retry_at: null,
    updated_at: 1,
    adjustments: [],
    ...fields,
  };
}

/** A PI id no object has a record for. */
function unknownPi(): string {
  return `pi_unknown${crypto.randomUUID().replaceAll("-", "")}`;
}

/** The stored rows of `registry`, with their revisions. */
function rows(registry: ReturnType<typeof freshRegistry>) {
  return runInDurableObject(registry, async (_instance, state) =>
    state.storage.sql.exec<{ payment_intent_id: string; state: string; revision: number }>("SELECT * FROM attention ORDER BY payment_intent_id").toArray(),
  );
}

/** A PI whose credit Stripe refused: it needs an operator, with no alarm left to change it. */
async function refusedCredit() {
  const { customer, pi, token } = await paidTopUp(1700);
  const refuse = await refuseCreditOnce(customer.id, pi.id);
  expect((await confirm(token, pi.id)).status).toBe(409);
  await removeFault(refuse);
  // Nothing was marked (MARK_CREDITED is off), so nothing is left to withdraw.
  return waitForObject(pi.id, (i) => i.record?.state === "needs_attention" && i.record.mark_state === "off");
}

describe("the credit registry's list", () => {
  it("drops an entry whose PI is settled, and one for a PI with no record", async () => {
    const { pi, token } = await paidTopUp(1100);
    expect((await confirm(token, pi.id)).status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    const registry = freshRegistry();
    await registry.upsert(staleEntry(pi.id));
    await registry.upsert(staleEntry(unknownPi()));

    expect(await registry.list({ limit: 50 })).toEqual({ entries: [], nextAfter: null });
    expect(await rows(registry)).toEqual([]);
  });

  it("refreshes a stale entry from the PI object's own view, then leaves it alone", async () => {
    const inspection = await refusedCredit();
    const record = inspection.record;
    const registry = freshRegistry();
    await registry.upsert(staleEntry(record?.payment_intent_id ?? ""));

    const { entries } = await registry.list({ limit: 50 });
    expect(entries).toEqual([
      {
        payment_intent_id: record?.payment_intent_id,
        state: "needs_attention",
        customer_id: record?.customer_id,
        amount: 1700,
        currency: record?.currency,
        reason: record?.reason,
        last_error: record?.last_error,
        retry_count: record?.retry_count,
        next_retry_at: record?.next_retry_at,
        updated_at: record?.updated_at,
        adjustments: [],
      },
    ]);
    const refreshed = await rows(registry);
    expect(refreshed).toMatchObject([{ state: "needs_attention" }]);

    // In step now: listing again answers the same and writes nothing.
    expect((await registry.list({ limit: 50 })).entries).toEqual(entries);
    expect(await rows(registry)).toEqual(refreshed);
    // The object was only asked.
    expect(await piObject(record?.payment_intent_id ?? "").inspect()).toEqual(inspection);
  });

  it("leaves out an entry that is no longer in the state asked for", async () => {
    const { record } = await refusedCredit();
    const registry = freshRegistry();
    await registry.upsert(staleEntry(record?.payment_intent_id ?? "", { state: "verified" }));
    expect((await registry.list({ limit: 50, state: "verified" })).entries).toEqual([]);
    expect((await registry.list({ limit: 50, state: "needs_attention" })).entries.map((e) => e.payment_intent_id)).toEqual([record?.payment_intent_id]);
  });

  it("says where the next page starts even when every entry of a page was dropped", async () => {
    const registry = freshRegistry();
    const ids = [unknownPi(), unknownPi(), unknownPi()].sort();
    for (const id of ids) await registry.upsert(staleEntry(id));
    expect(await registry.list({ limit: 2 })).toEqual({ entries: [], nextAfter: ids[1] });
    expect(await registry.list({ limit: 2, after: ids[1] ?? "" })).toEqual({ entries: [], nextAfter: null });
  });

  it("a registry written before the entries had a reason and adjustments gains those columns and keeps its rows", async () => {
    const registry = freshRegistry();
    await runInDurableObject(registry, async (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE attention");
      sql.exec(`CREATE TABLE attention (payment_intent_id TEXT PRIMARY KEY, state TEXT NOT NULL, customer_id TEXT, amount INTEGER,
        currency TEXT, last_error TEXT, retry_count INTEGER NOT NULL, next_retry_at INTEGER, updated_at INTEGER NOT NULL)`);
      sql.exec("INSERT INTO attention VALUES ('pi_old', 'verified', 'cus_old', 500, 'usd', 'boom', 2, NULL, 1)");
      const upgraded = new CreditRegistry(state, env);
      expect(sql.exec("SELECT * FROM attention").toArray()).toEqual([
        {
          payment_intent_id: "pi_old",
          state: "verified",
          customer_id: "cus_old",
          amount: 500,
          currency: "usd",
          last_error: "boom",
          retry_count: 2,
          next_retry_at: null,
          updated_at: 1,
          reason: null,
          adjustments: "[]",
          revision: 0,
        },
      ]);
      await upgraded.upsert(staleEntry("pi_old", { reason: "a reason", adjustments: [] }));
      expect(sql.exec("SELECT reason, revision FROM attention").toArray()).toEqual([{ reason: "a reason", revision: 1 }]);
    });
  });
});
