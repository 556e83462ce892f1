// The sync's records, beside the ledger in the wallet's tables: which spending is owed to Stripe,
// the batches that write it (each recorded before it is sent, with its attempt state, so the
// ledger-write protocol survives a crash), and the wallet row's sync schedule (when the next
// sync is due, its backoff, its last failure, the last time Stripe and the wallet matched).
// Synchronous like the ledger: a batch is cut and its entries marked in one transaction.

import type { WalletLedger } from "./ledger.js";
import type { BatchRow } from "./schema.js";

export class WalletBatches {
  constructor(private readonly ledger: WalletLedger) {}

  get #sql(): SqlStorage {
    return this.ledger.tables();
  }

  /** Total spending owed to Stripe and not yet in a batch. */
  owedTotal(): number {
    return 0 - (this.#sql.exec<{ s: number | null }>("SELECT SUM(amount) AS s FROM entries WHERE batch = 0").one().s ?? 0);
  }

  setSyncDue(at: number | null, patch: { retries?: number; error?: string | null } = {}): void {
    this.#sql.exec(
      "UPDATE wallet SET sync_due_at = ?, sync_retries = COALESCE(?, sync_retries), sync_error = CASE WHEN ? THEN ? ELSE sync_error END",
      at,
      patch.retries ?? null,
      patch.error !== undefined ? 1 : 0,
      patch.error ?? null,
    );
  }

  pending(): BatchRow | null {
    return (
      (this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM batches WHERE state = 'pending' ORDER BY n LIMIT 1").toArray()[0] as unknown as
        BatchRow | undefined) ?? null
    );
  }

  /**
   * Records the next batch (before anything is sent): the owed spending, or only the oldest
   * owed entry when `single` (each debit its own Stripe write). Null when nothing is owed.
   */
  cut(single: boolean, now: number): BatchRow | null {
    return this.ledger.atomically(() => {
      const wallet = this.ledger.row();
      if (!wallet?.currency) return null;
      const owed = this.#sql
        .exec<{ seq: number; amount: number }>(`SELECT seq, amount FROM entries WHERE batch = 0 ORDER BY seq ${single ? "LIMIT 1" : ""}`)
        .toArray();
      if (owed.length === 0) return null;
      const n = (this.#sql.exec<{ n: number | null }>("SELECT MAX(n) AS n FROM batches").one().n ?? 0) + 1;
      const amount = -owed.reduce((s, e) => s + e.amount, 0);
      const last = (owed.at(-1) as { seq: number }).seq;
      this.#sql.exec(`UPDATE entries SET batch = ? WHERE batch = 0 AND seq <= ?`, n, last);
      this.#sql.exec("INSERT INTO batches (n, amount, currency, entries, created_at) VALUES (?, ?, ?, ?, ?)", n, amount, wallet.currency, owed.length, now);
      return this.pending();
    });
  }

  save(n: number, patch: Partial<Pick<BatchRow, "attempt" | "sent" | "last_error">>): void {
    const entries = Object.entries(patch);
    if (entries.length === 0) return;
    this.#sql.exec(`UPDATE batches SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE n = ?`, ...entries.map(([, v]) => v as SqlStorageValue), n);
  }

  finish(n: number, stripeTx: string, now: number): void {
    this.#sql.exec("UPDATE batches SET state = 'done', stripe_tx = ?, last_error = NULL, done_at = ? WHERE n = ?", stripeTx, now, n);
  }

  all(): BatchRow[] {
    return this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM batches ORDER BY n").toArray() as unknown as BatchRow[];
  }

  markSynced(now: number, scanSince: number | null): void {
    this.#sql.exec("UPDATE wallet SET synced_at = ?, scan_since = COALESCE(?, scan_since), sync_retries = 0, sync_error = NULL", now, scanSince);
  }
}
