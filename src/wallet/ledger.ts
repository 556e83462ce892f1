// The wallet's ledger: typed, synchronous access to its tables (the wallet row, its entries,
// holds and kept Idempotency-Keys; the sync's batches are batches.ts). Every method runs without
// an await, so a caller that checks and writes in one method (or one `transactionSync`) cannot
// be interleaved with another request: that is what keeps the wallet from being overdrawn while
// the object admits other calls during its Stripe awaits.

import type Stripe from "stripe";
import { hex } from "../hash.js";
import type { BalanceView, EntryKind, WalletLine } from "./contract.js";
import { WALLET_SCHEMA, type EntryRow, type HoldRow, type WalletRow } from "./schema.js";

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

/** Told of every line posted or applied (not the history an opening copies), inside its transaction, with the wallet before and after. */
export type EntryObserver = (entry: EntryRow, before: WalletRow, after: WalletRow) => void;

export class WalletLedger {
  #hasSchema = false;
  #observers: EntryObserver[] = [];

  /** `extraSchema`: tables of the account's that live beside the wallet's (auto-recharge's), created with them. */
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly extraSchema: readonly string[] = [],
  ) {}

  get #sql(): SqlStorage {
    return this.storage.sql;
  }

  #ensureSchema(): void {
    if (this.#hasSchema) return;
    this.#sql.exec(WALLET_SCHEMA);
    for (const schema of this.extraSchema) this.#sql.exec(schema);
    this.#hasSchema = true;
  }

  /** Adds an observer of new lines (the wallet's events, auto-recharge), told in the order added. */
  observe(observer: EntryObserver): void {
    this.#observers.push(observer);
  }

  /** Runs `fn` as one transaction: all of its writes land, or none. Transactions nest. */
  atomically<T>(fn: () => T): T {
    this.#ensureSchema();
    return this.storage.transactionSync(fn);
  }

  /** The wallet's tables, created if need be (for the sync's records, batches.ts). */
  tables(): SqlStorage {
    this.#ensureSchema();
    return this.#sql;
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
      const row = this.#insert(entry);
      this.#sql.exec("UPDATE wallet SET available = available + ?, currency = COALESCE(currency, ?)", entry.amount, entry.currency);
      this.#observed(row, wallet);
      return "applied";
    });
  }

  /** Whether a top-up of this PaymentIntent has been credited here. */
  hasTopUp(paymentIntentId: string): boolean {
    this.#ensureSchema();
    return this.#sql.exec("SELECT 1 FROM entries WHERE payment_intent_id = ? AND kind = 'top_up' LIMIT 1", paymentIntentId).toArray().length > 0;
  }

  knowsStripe(txId: string): boolean {
    return this.#sql.exec("SELECT 1 FROM entries WHERE stripe_tx = ?", txId).toArray().length > 0;
  }

  /** Appends an entry and moves the totals by it (available by amount − held, held by held). Callers hold a transaction. */
  post(entry: NewEntry): EntryRow {
    const before = this.#observers.length > 0 ? this.row() : null;
    const row = this.#insert(entry);
    const held = entry.held ?? 0;
    this.#sql.exec("UPDATE wallet SET available = available + ?, held = held + ?", entry.amount - held, held);
    if (before) this.#observed(row, before);
    return row;
  }

  #observed(entry: EntryRow, before: WalletRow): void {
    const after = this.row();
    if (after) for (const observer of this.#observers) observer(entry, before, after);
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

export function lineOf(e: EntryRow): WalletLine {
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
