// One customer-balance write, exactly once: the credit of a PaymentIntent, or one reversal of
// it. Stripe's Idempotency-Key protects a write only while Stripe keeps the key (at least 24 h)
// and only until a 500 is saved under it; the durable attempt state here covers the rest:
//
//   1. Record "sent" before the call (write-ahead), so a crash leaves the outcome unknown, not lost.
//   2. When a previous send's outcome is unknown, read the ledger first: an entry that is this
//      write ends it. The look comes first because a pruned key would run the write again.
//   3. Send under the attempt's key. If Stripe replays a saved failure, that key's request has
//      finished: read the ledger again, and only if it still has nothing, move to the next key
//      (`{base}:2`, ...). Any other unknown outcome waits for a later try with the same key.
//
// Used by the PaymentIntent object (its credit and reversals, inside its serialised attempts)
// and by the wallet (its batches of spending, inside its one sync at a time).

import type Stripe from "stripe";
import type { BalanceTransactions } from "./balance-transactions.js";
import { attemptKey } from "./keys.js";

/** What one write is and where its attempt state lives. */
export interface LedgerWrite {
  customerId: string;
  /** The key of the first attempt; later attempts append `:{n}`. */
  keyBase: string;
  /** Identical on every attempt (Stripe refuses a reused key with other parameters). */
  params: Stripe.CustomerCreateBalanceTransactionParams;
  /** Whether a ledger entry is this write. */
  matches: (tx: Stripe.CustomerBalanceTransaction) => boolean;
  /** No entry for this write can be older than this (unix seconds); bounds the ledger scan. */
  sinceSeconds: number;
  attempt: number;
  sent: boolean;
  /** Persists the attempt state durably; called before the Stripe call that depends on it. */
  save(state: { attempt: number; sent: boolean }): void;
}

/** The part of a balance transaction the records keep. */
export interface LedgerEntry {
  id: string;
  ending_balance: number;
  created: number;
}

export type WriteOutcome = { kind: "done"; entry: LedgerEntry; via: string } | { kind: "unavailable"; error: string } | { kind: "refused"; error: string };

/**
 * How far before a write was planned its ledger search looks: Stripe's clock and ours may
 * disagree, and a listing may lag a write. One hour is far beyond either.
 */
export const LEDGER_SLACK_SECONDS = 3600;

/** A first key, then a next key after a replayed failure, then one more. */
const MAX_SENDS = 3;

/** Performs ledger writes and ledger searches, journaling each step. */
export class LedgerWriter {
  constructor(
    private readonly ledger: BalanceTransactions,
    private readonly journal: (step: string, outcome: string, detail: string | null) => void,
  ) {}

  /** Writes `w` exactly once, or says why it could not finish now. */
  async write(w: LedgerWrite, step: string): Promise<WriteOutcome> {
    let { attempt, sent } = w;
    let lastError = "no answer";
    for (let send = 0; send < MAX_SENDS; send++) {
      if (sent) {
        const found = await this.find(w.customerId, w.sinceSeconds, w.matches);
        if (found === "unavailable") return { kind: "unavailable", error: `ledger: unavailable (${lastError})` };
        if (found) return { kind: "done", entry: found, via: "ledger" };
      } else {
        sent = true;
        w.save({ attempt, sent });
      }
      const key = attemptKey(w.keyBase, attempt);
      const sentNow = await this.ledger.create(w.customerId, w.params, key);
      if (sentNow.ok) {
        this.journal(step, "done", `${key} → ${sentNow.value.id}`);
        return { kind: "done", entry: entryOf(sentNow.value), via: key };
      }
      const failure = sentNow.failure;
      lastError = `${step}: ${failure.message}`;
      this.journal(step, failure.kind, `${key}: ${failure.message}`);
      if (failure.kind === "permanent" || failure.kind === "not_found") return { kind: "refused", error: lastError };
      if (!(failure.kind === "ambiguous" && failure.replayed)) return { kind: "unavailable", error: lastError };
      // A replayed failure: this key's request has finished. Nothing in the ledger → next key.
      const found = await this.find(w.customerId, w.sinceSeconds, w.matches);
      if (found === "unavailable") return { kind: "unavailable", error: lastError };
      if (found) return { kind: "done", entry: found, via: "ledger" };
      attempt += 1;
      sent = false;
      w.save({ attempt, sent });
    }
    return { kind: "unavailable", error: lastError };
  }

  /**
   * The oldest ledger entry of `customerId` that `matches`, scanning newest first all the way
   * back to `sinceSeconds`. "None" is answered only from a
   * complete scan: a scan cut short for any reason is "unavailable", never "none", because
   * "none" lets write() send again under a new key. More than one match means something outside
   * this object wrote too; the oldest is the one that counts, and the journal says so.
   */
  async find(
    customerId: string,
    sinceSeconds: number,
    matches: (tx: Stripe.CustomerBalanceTransaction) => boolean,
  ): Promise<LedgerEntry | null | "unavailable"> {
    const found: Stripe.CustomerBalanceTransaction[] = [];
    const read = await this.ledger.scan(customerId, (tx) => {
      if (tx.created < sinceSeconds) return "stop";
      if (matches(tx)) found.push(tx);
      return "continue";
    });
    if (!read.ok) {
      this.journal("ledger", read.failure.kind, read.failure.message);
      return "unavailable";
    }
    if (found.length > 1) this.journal("ledger", "duplicates", found.map((t) => t.id).join(","));
    const oldest = found.at(-1);
    this.journal("ledger", oldest ? "found" : "none", oldest?.id ?? null);
    return oldest ? entryOf(oldest) : null;
  }
}

function entryOf(tx: Stripe.CustomerBalanceTransaction): LedgerEntry {
  return { id: tx.id, ending_balance: tx.ending_balance ?? 0, created: tx.created };
}
