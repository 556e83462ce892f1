// Typed, synchronous access to one PaymentIntent object's tables (schema.ts). Every read and
// write is `ctx.storage.sql.exec`, with no await, which is what lets the object check and set
// without a race; a change that takes several statements (the record and its journal line) is
// one `transactionSync`, so a crash never keeps half of it.

import type { AdjustmentRecord, CreditRecord, CreditState, DisputeFact, DisputeStatus, JournalEntry, Notice } from "../../credit/contract.js";
import type { PaymentIntentFacts } from "../../credit/policy.js";
import { TABLES, type Table } from "./schema.js";

/** Keeps the journal bounded on a PI that fails for days. */
const JOURNAL_LIMIT = 200;

/**
 * Typed access to one PaymentIntent object's tables. Each table is created when first written
 * (schema.ts), none in the constructor: an object asked about a PI that turns out to be junk
 * (unknown, someone else's) must leave no storage behind.
 */
export class CreditStore {
  /** Which tables exist, as far as this instance has looked or made them. */
  readonly #tables = new Map<Table, boolean>();
  private readonly sql: SqlStorage;

  constructor(private readonly storage: DurableObjectStorage) {
    this.sql = storage.sql;
  }

  /**
   * Runs `write` as one transaction: all of its statements land, or none. A table it made is
   * gone again if it throws, so what this instance knows of its tables is looked up afresh.
   */
  #atomically<T>(write: () => T): T {
    try {
      return this.storage.transactionSync(write);
    } catch (err) {
      this.#tables.clear();
      throw err;
    }
  }

  /** Several changes (a record's and its event's, outbox.ts) as one transaction. */
  atomically<T>(write: () => T): T {
    return this.#atomically(write);
  }

  #has(table: Table): boolean {
    let known = this.#tables.get(table);
    if (known === undefined) {
      known = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table).toArray().length > 0;
      this.#tables.set(table, known);
    }
    return known;
  }

  #ensure(...tables: Table[]): void {
    for (const table of tables) {
      if (this.#has(table)) continue;
      this.sql.exec(TABLES[table]);
      this.#tables.set(table, true);
    }
  }

  /** Whatever is written about a PI has its record's table and journal to go with it. */
  #ensureCore(...more: Table[]): void {
    this.#ensure("credit", "journal", ...more);
  }

  load(): CreditRecord | null {
    if (!this.#has("credit")) return null;
    const rows = this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM credit LIMIT 1").toArray();
    return rows.length === 0 ? null : (rows[0] as unknown as CreditRecord);
  }

  /** Records a new PI's state; `fields` are what is known at that point. */
  insert(paymentIntentId: string, state: CreditState, fields: Partial<CreditRecord> = {}): CreditRecord {
    this.#ensureCore();
    const now = Date.now();
    const row: CreditRecord = {
      payment_intent_id: paymentIntentId,
      state,
      customer_id: null,
      amount: null,
      currency: null,
      credit_attempt: 1,
      credit_write: "none",
      mark_state: "pending",
      mark_attempts: 0,
      balance_transaction_id: null,
      ending_balance: null,
      credited_by: null,
      reason: null,
      last_error: null,
      retry_count: 0,
      next_retry_at: null,
      listed: 0,
      account_id: null,
      created_at: now,
      updated_at: now,
      credited_at: null,
      ...fields,
    };
    const cols = Object.keys(row);
    this.#atomically(() => {
      this.sql.exec(`INSERT INTO credit (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, ...cols.map((c) => row[c as keyof CreditRecord]));
      this.journal("state", state, fields.reason ?? null);
    });
    return row;
  }

  /**
   * Forgets a not_creditable verdict so that the PI is assessed again (an operator's retry after
   * a setting changed, say the older server's top-ups being admitted). Nothing was credited, so
   * nothing is lost; the journal keeps the old verdict.
   */
  forgetRefusal(): void {
    this.#atomically(() => {
      this.journal("state", "reassess", this.load()?.reason ?? null);
      this.sql.exec("DELETE FROM credit WHERE state = 'not_creditable'");
    });
  }

  /** Applies `patch` to the row and returns the new record. */
  update(patch: Partial<Omit<CreditRecord, "payment_intent_id" | "created_at">>): CreditRecord {
    const entries = Object.entries({ ...patch, updated_at: Date.now() });
    return this.#atomically(() => {
      this.sql.exec(`UPDATE credit SET ${entries.map(([k]) => `${k} = ?`).join(", ")}`, ...entries.map(([, v]) => v as SqlStorageValue));
      if (patch.state) this.journal("state", patch.state, patch.reason ?? null);
      const rec = this.load();
      if (!rec) throw new Error("credit record vanished during update");
      return rec;
    });
  }

  /** Raises the cumulative refunded amount (events arrive out of order; it never goes down). */
  noteRefunded(amountRefunded: number): number {
    this.#ensureCore("facts");
    this.sql.exec(
      "INSERT INTO facts (name, value) VALUES ('amount_refunded', ?) ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
      amountRefunded,
    );
    return this.refunded();
  }

  refunded(): number {
    if (!this.#has("facts")) return 0;
    const row = this.sql.exec<{ value: number }>("SELECT value FROM facts WHERE name = 'amount_refunded'").toArray()[0];
    return row?.value ?? 0;
  }

  /** Records what a dispute event says; a closed dispute stays closed whatever arrives later. */
  noteDispute(disputeId: string, amount: number, status: DisputeStatus): void {
    this.#ensureCore("disputes");
    this.sql.exec(
      `INSERT INTO disputes (dispute_id, amount, status, first_seen) VALUES (?, ?, ?, ?)
       ON CONFLICT (dispute_id) DO UPDATE SET status = CASE WHEN status = 'open' THEN excluded.status ELSE status END`,
      disputeId,
      amount,
      status,
      Date.now(),
    );
  }

  disputes(): DisputeFact[] {
    if (!this.#has("disputes")) return [];
    return this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM disputes ORDER BY first_seen, dispute_id").toArray() as unknown as DisputeFact[];
  }

  adjustments(): AdjustmentRecord[] {
    if (!this.#has("adjustments")) return [];
    return this.sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM adjustments ORDER BY created_at, operation")
      .toArray() as unknown as AdjustmentRecord[];
  }

  /** Plans an adjustment (durably, before any Stripe write for it). */
  planAdjustment(a: Pick<AdjustmentRecord, "operation" | "kind" | "direction" | "amount" | "dispute_id">): void {
    this.#ensureCore("adjustments");
    const now = Date.now();
    this.#atomically(() => {
      this.sql.exec(
        "INSERT INTO adjustments (operation, kind, direction, amount, dispute_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (operation) DO NOTHING",
        a.operation,
        a.kind,
        a.direction,
        a.amount,
        a.dispute_id,
        now,
        now,
      );
      this.journal("adjust", "planned", `${a.operation} ${a.direction} ${a.amount}`);
    });
  }

  updateAdjustment(operation: string, patch: Partial<Omit<AdjustmentRecord, "operation" | "created_at">>): void {
    const entries = Object.entries({ ...patch, updated_at: Date.now() });
    this.sql.exec(
      `UPDATE adjustments SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE operation = ?`,
      ...entries.map(([, v]) => v as SqlStorageValue),
      operation,
    );
  }

  /**
   * Reopens an adjustment Stripe refused, for an operator's retry: a new key (the refusal may be
   * saved under the old one), and "sent" so that the ledger is searched before anything is written.
   */
  reopenAdjustment(operation: string): void {
    this.#atomically(() => {
      this.sql.exec(
        "UPDATE adjustments SET state = 'pending', attempt = attempt + 1, sent = 1, last_error = NULL, updated_at = ? WHERE operation = ? AND state = 'needs_attention'",
        Date.now(),
        operation,
      );
      this.journal("adjust", "reopened", operation);
    });
  }

  /** The ledger entries the account's wallet has acknowledged. */
  reported(): Set<string> {
    if (!this.#has("reports")) return new Set();
    return new Set(
      this.sql
        .exec<{ balance_transaction_id: string }>("SELECT balance_transaction_id FROM reports")
        .toArray()
        .map((r) => r.balance_transaction_id),
    );
  }

  noteReported(ids: string[]): void {
    this.#ensureCore("reports");
    this.#atomically(() => {
      for (const id of ids) this.sql.exec("INSERT INTO reports (balance_transaction_id, reported_at) VALUES (?, ?) ON CONFLICT DO NOTHING", id, Date.now());
    });
  }

  /**
   * Remembers a payment_intent.succeeded webhook that came before any record, with the PI as its
   * event carried it (the first that did: a PI's succeeded events all describe one success).
   */
  noteNotice(paymentIntentId: string, facts: PaymentIntentFacts | null): void {
    this.#ensureCore("notice", "notice_facts");
    this.#atomically(() => {
      this.sql.exec(
        "INSERT INTO notice (payment_intent_id, received_at) VALUES (?, ?) ON CONFLICT (payment_intent_id) DO NOTHING",
        paymentIntentId,
        Date.now(),
      );
      if (facts)
        this.sql.exec("INSERT INTO notice_facts (payment_intent_id, facts) VALUES (?, ?) ON CONFLICT DO NOTHING", paymentIntentId, JSON.stringify(facts));
    });
  }

  notice(): Notice | null {
    if (!this.#has("notice")) return null;
    const row = this.sql.exec<{ payment_intent_id: string; received_at: number; attempts: number }>("SELECT * FROM notice LIMIT 1").toArray()[0];
    if (!row) return null;
    const facts = this.#has("notice_facts")
      ? this.sql.exec<{ facts: string }>("SELECT facts FROM notice_facts WHERE payment_intent_id = ?", row.payment_intent_id).toArray()[0]
      : undefined;
    return { ...row, facts: facts ? (JSON.parse(facts.facts) as PaymentIntentFacts) : null };
  }

  /** Counts one more try of the notice and returns it. */
  bumpNotice(): number {
    this.sql.exec("UPDATE notice SET attempts = attempts + 1");
    return this.notice()?.attempts ?? 0;
  }

  clearNotice(): void {
    if (!this.#has("notice")) return;
    this.#atomically(() => {
      this.sql.exec("DELETE FROM notice");
      if (this.#has("notice_facts")) this.sql.exec("DELETE FROM notice_facts");
    });
  }

  /** Appends one line to the journal; only once a record exists (junk leaves no trace). */
  journal(step: string, outcome: string, detail: string | null): void {
    if (!this.#has("credit")) return;
    this.#ensure("journal");
    this.#atomically(() => {
      const { seq } = this.sql
        .exec<{ seq: number }>("INSERT INTO journal (at, step, outcome, detail) VALUES (?, ?, ?, ?) RETURNING seq", Date.now(), step, outcome, detail)
        .one();
      // Only a journal past its bound has lines to drop: a credit's few lines cost no delete.
      if (seq > JOURNAL_LIMIT) this.sql.exec("DELETE FROM journal WHERE seq <= ?", seq - JOURNAL_LIMIT);
    });
  }

  journalEntries(): JournalEntry[] {
    if (!this.#has("journal")) return [];
    return this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM journal ORDER BY seq").toArray() as unknown as JournalEntry[];
  }
}
