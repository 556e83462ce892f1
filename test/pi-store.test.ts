// The PaymentIntent object's store (src/objects/payment-intent/store.ts) on a real object's
// storage: each table is made when first written, never for what is only read, so junk leaves
// nothing and a credit makes only the tables it uses; the journal keeps its newest 200 lines;
// and a transaction that threw after making a table does not leave the store believing in it.

import { runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CreditStore } from "../src/objects/payment-intent/store.js";
import { piObject } from "./helpers.js";

let seq = 0;
/** A PaymentIntent object no other test touches, and so no confirm ever ran in. */
const freshPi = () => `pi_store${Date.now().toString(36)}${++seq}`;

/** The object's own tables (not the platform's nor SQLite's). */
function tables(storage: DurableObjectStorage): string[] {
  return storage.sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .toArray()
    .map((r) => r.name)
    .sort();
}

/** Runs `fn` with a store on a fresh PaymentIntent object's storage. */
function withStore<T>(fn: (store: CreditStore, storage: DurableObjectStorage, pi: string) => T | Promise<T>): Promise<T> {
  const pi = freshPi();
  return runInDurableObject(piObject(pi), (_instance, state) => fn(new CreditStore(state.storage), state.storage, pi));
}

describe("the PaymentIntent object's tables", () => {
  it("reading makes none: a record, notice, refund, disputes, adjustments, reports and journal all read as empty", async () => {
    const made = await withStore((store, storage) => {
      expect(store.load()).toBeNull();
      expect(store.notice()).toBeNull();
      expect(store.refunded()).toBe(0);
      expect(store.disputes()).toEqual([]);
      expect(store.adjustments()).toEqual([]);
      expect(store.reported()).toEqual(new Set());
      expect(store.journalEntries()).toEqual([]);
      // A journal line with no record is not written (junk leaves no trace), nor is a notice cleared that never was.
      store.journal("read", "from_event", "x");
      store.clearNotice();
      return tables(storage);
    });
    expect(made).toEqual([]);
  });

  it("a credit makes only its record, its journal and the wallet's reports", async () => {
    const made = await withStore((store, storage, pi) => {
      store.insert(pi, "verified", { customer_id: "cus_1", amount: 500, currency: "usd", mark_state: "off" });
      store.update({ state: "credited", balance_transaction_id: "cbtxn_1" });
      store.journal("credit", "recorded", "cbtxn_1");
      store.noteReported(["cbtxn_1"]);
      expect(store.reported()).toEqual(new Set(["cbtxn_1"]));
      expect(store.journalEntries().map((l) => l.outcome)).toEqual(["verified", "credited", "recorded"]);
      return tables(storage);
    });
    expect(made).toEqual(["credit", "journal", "reports"]);
  });

  it("a webhook's notice, a refund, a dispute and a reversal each make their own table when first written", async () => {
    const made = await withStore((store, storage, pi) => {
      store.noteNotice(pi, null);
      expect(tables(storage)).toEqual(["credit", "journal", "notice", "notice_facts"]);
      expect(store.notice()).toMatchObject({ payment_intent_id: pi, facts: null });
      store.clearNotice();
      expect(store.notice()).toBeNull();
      expect(store.noteRefunded(300)).toBe(300);
      store.noteDispute("dp_1", 200, "open");
      store.planAdjustment({ operation: "refund:300", kind: "refund", direction: "debit", amount: 300, dispute_id: null });
      expect(store.adjustments().map((a) => a.operation)).toEqual(["refund:300"]);
      return tables(storage);
    });
    expect(made).toEqual(["adjustments", "credit", "disputes", "facts", "journal", "notice", "notice_facts"]);
  });

  it("a transaction that threw after making a table leaves the store looking again, not believing in the table", async () => {
    await withStore((store, storage, pi) => {
      store.insert(pi, "credited", { customer_id: "cus_1", amount: 500, currency: "usd" });
      expect(() =>
        store.atomically(() => {
          store.noteRefunded(100);
          throw new Error("the write after it failed");
        }),
      ).toThrow("the write after it failed");
      // The table went with the transaction; the store must not query it as if it were there.
      expect(tables(storage)).not.toContain("facts");
      expect(store.refunded()).toBe(0);
      expect(store.noteRefunded(100)).toBe(100);
    });
  });

  it("a record made before tables were made on demand (every table, a journal numbered by AUTOINCREMENT) goes on as before", async () => {
    await withStore((store, storage, pi) => {
      storage.sql.exec(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, step TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT)",
      );
      store.insert(pi, "credited", { customer_id: "cus_1", amount: 500, currency: "usd" });
      store.journal("wallet", "told", "acct_1: cbtxn_1");
      store.noteReported(["cbtxn_1"]);
      expect(store.journalEntries().map((l) => l.seq)).toEqual([1, 2]);
      expect(store.reported()).toEqual(new Set(["cbtxn_1"]));
    });
  });
});

describe("the journal", () => {
  it("keeps the newest 200 lines, in order, whatever the number written", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 450 }), async (lines) => {
        const kept = await withStore((store, _storage, pi) => {
          store.insert(pi, "verified", { customer_id: "cus_1", amount: 500, currency: "usd" });
          for (let i = 0; i < lines; i++) store.journal("step", "line", String(i));
          return store.journalEntries();
        });
        // The insert's own line, then the lines written; the oldest go first.
        const all = ["verified", ...Array.from({ length: lines }, (_, i) => String(i))];
        expect(kept.map((l) => (l.step === "state" ? l.outcome : l.detail))).toEqual(all.slice(-200));
        const seqs = kept.map((l) => l.seq);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        expect(seqs.at(-1)).toBe(lines + 1);
      }),
      { numRuns: 12 },
    );
  });
});
