// The wallet's ledger: typed, synchronous access to its tables. Every method runs without an
// await, so a caller that checks and writes in one method (or one `transactionSync`) cannot be
// interleaved with another request: that is what keeps the wallet from being overdrawn while
// the object admits other calls during its Stripe awaits.

import type Stripe from "stripe";
import { hex } from "../hash.js";
import type { BalanceView, EntryKind, WalletLine } from "./contract.js";
import { WALLET_SCHEMA, type BatchRow, type EntryRow, type HoldRow, type WalletRow } from "./schema.js";

/** A new entry; the ledger assigns its id and sequence. */
export interface NewEntry {
  kind: EntryKind;
  amount: number;
  held?: number;
  currency: string;
  stripe_tx?: string | null;
  payment_intent_id?: string | null;
  hold_id?: string | null;
  description?: string | null;
  metadata?: Record<string, string> | null;
  /** Spending owed to Stripe (debits and captures): the sync writes it in a batch. */
  owed?: boolean;
  created_at: number;
}

/** `prefix_` and 24 hex digits from the platform's CSPRNG: ids that another account cannot guess. */
export function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}_${hex(bytes)}`;
}

/** What a Stripe ledger entry is to the wallet, from the metadata this service writes. */
export function kindOfStripeEntry(tx: Pick<Stripe.CustomerBalanceTransaction, "metadata">): EntryKind {
  const pi = tx.metadata?.payment_intent;
  const operation = tx.metadata?.operation;
  if (pi && !operation) return "top_up";
  if (pi && operation?.startsWith("restore:")) return "restoration";
  if (pi && operation) return "reversal";
  return "stripe";
}

export class WalletLedger {
  #hasSchema = false;

  constructor(private readonly storage: DurableObjectStorage) {}

  get #sql(): SqlStorage {
    return this.storage.sql;
  }

  #ensureSchema(): void {
    if (this.#hasSchema) return;
    this.#sql.exec(WALLET_SCHEMA);
    this.#hasSchema = true;
  }

  /** Runs `fn` as one transaction: all of its writes land, or none. */
  atomically<T>(fn: () => T): T {
    this.#ensureSchema();
    return this.storage.transactionSync(fn);
  }

  row(): WalletRow | null {
    this.#ensureSchema();
    return (this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM wallet WHERE id = 1").toArray()[0] as unknown as WalletRow | undefined) ?? null;
  }

  /**
   * Opens the wallet from the customer's Stripe ledger (newest first, complete): every entry is
   * kept as history and marked as applied, and the figure is Stripe's newest `ending_balance`.
   */
  open(accountId: string, customerId: string, ledger: Stripe.CustomerBalanceTransaction[], now: number): void {
    this.atomically(() => {
      if (this.row()) return;
      const newest = ledger[0];
      const total = newest ? -(newest.ending_balance ?? 0) : 0;
      this.#sql.exec(
        "INSERT INTO wallet (id, account_id, customer_id, currency, available, opened_at, opened_from, scan_since) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
        accountId,
        customerId,
        newest?.currency ?? null,
        total,
        now,
        newest?.id ?? null,
        newest?.created ?? Math.floor(now / 1000),
      );
      let sum = 0;
      for (const tx of [...ledger].reverse()) {
        sum += -tx.amount;
        this.#insert(stripeEntry(tx));
      }
      // Stripe's figure wins; a difference (an entry Stripe's list did not show) is its own line, so the lines still add up.
      if (sum !== total && newest) {
        this.#insert({ kind: "stripe", amount: total - sum, currency: newest.currency, description: "Opening balance difference", created_at: now });
      }
    });
  }

  /** Applies a Stripe entry once (by its id): "applied", "known", or "currency" when it is in another currency. */
  applyStripe(entry: NewEntry & { stripe_tx: string }): "applied" | "known" | "currency" {
    return this.atomically(() => {
      const wallet = this.row();
      if (!wallet) throw new Error("wallet is not open");
      if (this.knowsStripe(entry.stripe_tx)) return "known";
      if (wallet.currency !== null && wallet.currency !== entry.currency) return "currency";
      this.#insert(entry);
      this.#sql.exec("UPDATE wallet SET available = available + ?, currency = COALESCE(currency, ?)", entry.amount, entry.currency);
      return "applied";
    });
  }

  knowsStripe(txId: string): boolean {
    return this.#sql.exec("SELECT 1 FROM entries WHERE stripe_tx = ?", txId).toArray().length > 0;
  }

  /** Appends an entry and moves the totals by it (available by amount − held, held by held). Callers hold a transaction. */
  post(entry: NewEntry): EntryRow {
    const row = this.#insert(entry);
    const held = entry.held ?? 0;
    this.#sql.exec("UPDATE wallet SET available = available + ?, held = held + ?", entry.amount - held, held);
    return row;
  }

  #insert(entry: NewEntry): EntryRow {
    const id = newId("wle");
    this.#sql.exec(
      `INSERT INTO entries (id, kind, amount, held, currency, stripe_tx, payment_intent_id, hold_id, description, metadata, batch, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      id,
      entry.kind,
      entry.amount,
      entry.held ?? 0,
      entry.currency,
      entry.stripe_tx ?? null,
      entry.payment_intent_id ?? null,
      entry.hold_id ?? null,
      entry.description ?? null,
      entry.metadata ? JSON.stringify(entry.metadata) : null,
      entry.owed ? 0 : null,
      entry.created_at,
    );
    return this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM entries WHERE id = ?", id).one() as unknown as EntryRow;
  }

  balance(fallbackCurrency: string): BalanceView {
    const w = this.row();
    return { available: w?.available ?? 0, held: w?.held ?? 0, currency: w?.currency ?? fallbackCurrency };
  }

  /** Sums of the lines, for checks: they must equal the running totals. */
  sums(): { total: number; held: number } {
    const r = this.#sql.exec<{ total: number | null; held: number | null }>("SELECT SUM(amount) AS total, SUM(held) AS held FROM entries").one();
    return { total: r.total ?? 0, held: r.held ?? 0 };
  }

  /** One page of lines, newest first, after the line `cursor` (a line id of this ledger). */
  lines(limit: number, cursor: string | null): { data: WalletLine[]; has_more: boolean } | null {
    this.#ensureSchema();
    let before = Number.MAX_SAFE_INTEGER;
    if (cursor !== null) {
      const at = this.#sql.exec<{ seq: number }>("SELECT seq FROM entries WHERE id = ?", cursor).toArray()[0];
      if (!at) return null;
      before = at.seq;
    }
    const rows = this.#sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM entries WHERE seq < ? ORDER BY seq DESC LIMIT ?", before, limit + 1)
      .toArray() as unknown as EntryRow[];
    return { data: rows.slice(0, limit).map(lineOf), has_more: rows.length > limit };
  }

  hold(id: string): HoldRow | null {
    this.#ensureSchema();
    return (this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM holds WHERE id = ?", id).toArray()[0] as unknown as HoldRow | undefined) ?? null;
  }

  insertHold(h: Omit<HoldRow, "ended_at">): void {
    this.#sql.exec(
      "INSERT INTO holds (id, amount, currency, status, expires_at, description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      h.id,
      h.amount,
      h.currency,
      h.status,
      h.expires_at,
      h.description,
      h.created_at,
    );
  }

  endHold(id: string, status: Exclude<HoldRow["status"], "active">, now: number): void {
    this.#sql.exec("UPDATE holds SET status = ?, ended_at = ? WHERE id = ? AND status = 'active'", status, now, id);
  }

  /** Active holds whose time is up. */
  dueHolds(now: number): HoldRow[] {
    this.#ensureSchema();
    return this.#sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM holds WHERE status = 'active' AND expires_at <= ? ORDER BY expires_at", now)
      .toArray() as unknown as HoldRow[];
  }

  nextHoldExpiry(): number | null {
    this.#ensureSchema();
    return this.#sql.exec<{ at: number | null }>("SELECT MIN(expires_at) AS at FROM holds WHERE status = 'active'").one().at;
  }

  // ---- sync to Stripe

  /** Total spending owed to Stripe and not yet in a batch. */
  owedTotal(): number {
    this.#ensureSchema();
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

  pendingBatch(): BatchRow | null {
    this.#ensureSchema();
    return (
      (this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM batches WHERE state = 'pending' ORDER BY n LIMIT 1").toArray()[0] as unknown as
        BatchRow | undefined) ?? null
    );
  }

  /**
   * Records the next batch (before anything is sent): the owed spending, or only the oldest
   * owed entry when `single` (each debit its own Stripe write). Null when nothing is owed.
   */
  cutBatch(single: boolean, now: number): BatchRow | null {
    return this.atomically(() => {
      const wallet = this.row();
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
      return this.pendingBatch();
    });
  }

  saveBatch(n: number, patch: Partial<Pick<BatchRow, "attempt" | "sent" | "last_error">>): void {
    const entries = Object.entries(patch);
    if (entries.length === 0) return;
    this.#sql.exec(`UPDATE batches SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE n = ?`, ...entries.map(([, v]) => v as SqlStorageValue), n);
  }

  finishBatch(n: number, stripeTx: string, now: number): void {
    this.#sql.exec("UPDATE batches SET state = 'done', stripe_tx = ?, last_error = NULL, done_at = ? WHERE n = ?", stripeTx, now, n);
  }

  batches(): BatchRow[] {
    this.#ensureSchema();
    return this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM batches ORDER BY n").toArray() as unknown as BatchRow[];
  }

  markSynced(now: number, scanSince: number | null): void {
    this.#sql.exec("UPDATE wallet SET synced_at = ?, scan_since = COALESCE(?, scan_since), sync_retries = 0, sync_error = NULL", now, scanSince);
  }

  // ---- idempotency keys

  keyed(key: string): { fingerprint: string; result: string } | null {
    this.#ensureSchema();
    return this.#sql.exec<{ fingerprint: string; result: string }>("SELECT fingerprint, result FROM idempotency WHERE key = ?", key).toArray()[0] ?? null;
  }

  keep(key: string, fingerprint: string, result: unknown, now: number): void {
    this.#sql.exec("INSERT INTO idempotency (key, fingerprint, result, created_at) VALUES (?, ?, ?, ?)", key, fingerprint, JSON.stringify(result), now);
  }

  oldestKey(): number | null {
    this.#ensureSchema();
    return this.#sql.exec<{ at: number | null }>("SELECT MIN(created_at) AS at FROM idempotency").one().at;
  }

  forgetKeysBefore(at: number): void {
    this.#ensureSchema();
    this.#sql.exec("DELETE FROM idempotency WHERE created_at < ?", at);
  }
}

/** A Stripe ledger entry as a wallet entry (wallet sign: credit positive). */
export function stripeEntry(tx: Stripe.CustomerBalanceTransaction): NewEntry & { stripe_tx: string } {
  return {
    kind: kindOfStripeEntry(tx),
    amount: -tx.amount,
    currency: tx.currency,
    stripe_tx: tx.id,
    payment_intent_id: tx.metadata?.payment_intent ?? null,
    description: tx.description ?? null,
    created_at: tx.created * 1000,
  };
}

function lineOf(e: EntryRow): WalletLine {
  return {
    id: e.id,
    kind: e.kind as EntryKind,
    amount: e.amount,
    held: e.held,
    currency: e.currency,
    payment_intent_id: e.payment_intent_id,
    hold_id: e.hold_id,
    balance_transaction_id: e.stripe_tx,
    description: e.description,
    metadata: e.metadata ? (JSON.parse(e.metadata) as Record<string, string>) : null,
    created: new Date(e.created_at).toISOString(),
  };
}
