// The PaymentIntent object's durable record, in its SQLite storage. One object per PI, so the
// `credit` table holds at most one row; `journal` keeps one line per Stripe call and state
// change, for the operator and for audits. Every read and write here is synchronous
// (`ctx.storage.sql.exec`), which is what lets the object check-and-set without a race.
//
// credit (one row)
//   payment_intent_id      the PI this object is named after (an object does not know its name)
//   state                  verified → credited; or not_creditable / needs_attention (see below)
//   customer_id, amount, currency   what is owed, recorded before any Stripe write
//   credit_attempt         n in the credit key: credit-tx:{pi} for 1, credit-tx:{pi}:{n} after
//   credit_write           none: attempt n never sent; sent: sent, outcome unknown until seen
//   mark_state             pending | done   (metadata.credited on the PI, a courtesy);
//                          withdrawing | withdrawn once Stripe refused the credit: the mark
//                          must not outlive a credit that never happened
//   mark_attempts          how many marks and withdrawals were sent; the first mark uses
//                          credit-mark:{pi}, later ones credit-mark:{pi}:{n}, a withdrawal
//                          credit-unmark:{pi}:{n} (n counts both, so no key is ever reused)
//   balance_transaction_id, ending_balance   the credit, once known
//   credited_by            confirm | webhook | alarm | operator: who finished it; ledger: found
//   reason                 why not_creditable / needs_attention
//   last_error             the last Stripe failure, for the operator view
//   retry_count, next_retry_at   the alarm's backoff
//   listed                 1 while the PI is in the operator registry (see registry.ts)
//   account_id             the account to tell about balance changes (PI metadata or the caller)
//
// facts (name, value): what Stripe told us about the charge; `amount_refunded` is cumulative
// disputes: dispute_id, amount, status (open | won | lost; closed never reopens), first_seen
// adjustments (one row per reversal or restoration, planned before it is written):
//   operation     refund:{level} | dispute:{dp} | restore:{dp}; key credit-adjust:{pi}:{operation}
//   kind, direction (debit takes credit back, credit gives it back), amount, dispute_id
//   attempt, sent   the same attempt state as the credit's (see ledger-write.ts)
//   state         pending | done | needs_attention (Stripe refused it: an operator's retry
//                 reopens it, looking at the ledger first);  balance_transaction_id, ending_balance
// reports (balance_transaction_id, reported_at): ledger entries (the credit, each adjustment) the
//   account's wallet has acknowledged; one still missing here is reported again until it is
// notice (payment_intent_id, received_at, attempts): a payment_intent.succeeded webhook that
//   arrived before any record; the alarm turns it into a credit
//
// States
//   verified          Stripe said succeeded and creditable; intent recorded; not yet credited
//   credited          final: the ledger entry exists and its id is recorded
//   not_creditable    final: recorded for a webhook/operator caller (no customer, zero amount,
//                     live/test mismatch); browsers' refusals are not recorded (they cost nothing)
//   needs_attention   final until an operator acts: Stripe refused the credit permanently, or the
//                     PI says credited but no ledger entry exists

export type CreditState = "verified" | "credited" | "not_creditable" | "needs_attention";

export type MarkState = "pending" | "done" | "withdrawing" | "withdrawn";

export interface CreditRecord {
  payment_intent_id: string;
  state: CreditState;
  customer_id: string | null;
  amount: number | null;
  currency: string | null;
  credit_attempt: number;
  credit_write: "none" | "sent";
  mark_state: MarkState;
  mark_attempts: number;
  balance_transaction_id: string | null;
  ending_balance: number | null;
  credited_by: string | null;
  reason: string | null;
  last_error: string | null;
  retry_count: number;
  next_retry_at: number | null;
  listed: number;
  account_id: string | null;
  created_at: number;
  updated_at: number;
  credited_at: number | null;
}

export type DisputeStatus = "open" | "won" | "lost";

export interface DisputeFact {
  dispute_id: string;
  amount: number;
  status: DisputeStatus;
  first_seen: number;
}

export interface AdjustmentRecord {
  operation: string;
  kind: "refund" | "dispute" | "restore";
  direction: "debit" | "credit";
  amount: number;
  dispute_id: string | null;
  attempt: number;
  sent: number;
  state: "pending" | "done" | "needs_attention";
  balance_transaction_id: string | null;
  ending_balance: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface Notice {
  payment_intent_id: string;
  received_at: number;
  attempts: number;
}

export interface JournalEntry {
  seq: number;
  at: number;
  step: string;
  outcome: string;
  detail: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS credit (
  payment_intent_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  customer_id TEXT,
  amount INTEGER,
  currency TEXT,
  credit_attempt INTEGER NOT NULL DEFAULT 1,
  credit_write TEXT NOT NULL DEFAULT 'none',
  mark_state TEXT NOT NULL DEFAULT 'pending',
  mark_attempts INTEGER NOT NULL DEFAULT 0,
  balance_transaction_id TEXT,
  ending_balance INTEGER,
  credited_by TEXT,
  reason TEXT,
  last_error TEXT,
  retry_count INTEGER NOT NULL DEFAULT 0,
  next_retry_at INTEGER,
  listed INTEGER NOT NULL DEFAULT 0,
  account_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  credited_at INTEGER
);
CREATE TABLE IF NOT EXISTS journal (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  step TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail TEXT
);
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS disputes (
  dispute_id TEXT PRIMARY KEY,
  amount INTEGER NOT NULL,
  status TEXT NOT NULL,
  first_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS adjustments (
  operation TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  direction TEXT NOT NULL,
  amount INTEGER NOT NULL,
  dispute_id TEXT,
  attempt INTEGER NOT NULL DEFAULT 1,
  sent INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'pending',
  balance_transaction_id TEXT,
  ending_balance INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (balance_transaction_id TEXT PRIMARY KEY, reported_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notice (
  payment_intent_id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);`;

/** Keeps the journal bounded on a PI that fails for days. */
const JOURNAL_LIMIT = 200;

/**
 * Typed access to one PaymentIntent object's tables. The schema is created with the first
 * record, not in the constructor: an object asked about a PI that turns out to be junk (unknown,
 * someone else's) must leave no storage behind.
 */
export class CreditStore {
  #hasSchema = false;

  constructor(private readonly sql: SqlStorage) {}

  #schemaExists(): boolean {
    if (!this.#hasSchema) {
      this.#hasSchema = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'credit'").toArray().length > 0;
      // Records made before the wallet existed have no reports table; their entries are owed to it.
      if (this.#hasSchema) this.sql.exec("CREATE TABLE IF NOT EXISTS reports (balance_transaction_id TEXT PRIMARY KEY, reported_at INTEGER NOT NULL)");
    }
    return this.#hasSchema;
  }

  #ensureSchema(): void {
    if (!this.#schemaExists()) {
      this.sql.exec(SCHEMA);
      this.#hasSchema = true;
    }
  }

  load(): CreditRecord | null {
    if (!this.#schemaExists()) return null;
    const rows = this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM credit LIMIT 1").toArray();
    return rows.length === 0 ? null : (rows[0] as unknown as CreditRecord);
  }

  /** Records a new PI's state; `fields` are what is known at that point. */
  insert(paymentIntentId: string, state: CreditState, fields: Partial<CreditRecord> = {}): CreditRecord {
    this.#ensureSchema();
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
    this.sql.exec(`INSERT INTO credit (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`, ...cols.map((c) => row[c as keyof CreditRecord]));
    this.journal("state", state, fields.reason ?? null);
    return row;
  }

  /**
   * Forgets a not_creditable verdict so that the PI is assessed again (an operator's retry after
   * a setting changed, say the older server's top-ups being admitted). Nothing was credited, so
   * nothing is lost; the journal keeps the old verdict.
   */
  forgetRefusal(): void {
    this.journal("state", "reassess", this.load()?.reason ?? null);
    this.sql.exec("DELETE FROM credit WHERE state = 'not_creditable'");
  }

  /** Applies `patch` to the row and returns the new record. */
  update(patch: Partial<Omit<CreditRecord, "payment_intent_id" | "created_at">>): CreditRecord {
    const entries = Object.entries({ ...patch, updated_at: Date.now() });
    this.sql.exec(`UPDATE credit SET ${entries.map(([k]) => `${k} = ?`).join(", ")}`, ...entries.map(([, v]) => v as SqlStorageValue));
    if (patch.state) this.journal("state", patch.state, patch.reason ?? null);
    const rec = this.load();
    if (!rec) throw new Error("credit record vanished during update");
    return rec;
  }

  /** Raises the cumulative refunded amount (events arrive out of order; it never goes down). */
  noteRefunded(amountRefunded: number): number {
    this.#ensureSchema();
    this.sql.exec(
      "INSERT INTO facts (name, value) VALUES ('amount_refunded', ?) ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
      amountRefunded,
    );
    return this.refunded();
  }

  refunded(): number {
    if (!this.#schemaExists()) return 0;
    const row = this.sql.exec<{ value: number }>("SELECT value FROM facts WHERE name = 'amount_refunded'").toArray()[0];
    return row?.value ?? 0;
  }

  /** Records what a dispute event says; a closed dispute stays closed whatever arrives later. */
  noteDispute(disputeId: string, amount: number, status: DisputeStatus): void {
    this.#ensureSchema();
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
    if (!this.#schemaExists()) return [];
    return this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM disputes ORDER BY first_seen, dispute_id").toArray() as unknown as DisputeFact[];
  }

  adjustments(): AdjustmentRecord[] {
    if (!this.#schemaExists()) return [];
    return this.sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM adjustments ORDER BY created_at, operation")
      .toArray() as unknown as AdjustmentRecord[];
  }

  /** Plans an adjustment (durably, before any Stripe write for it). */
  planAdjustment(a: Pick<AdjustmentRecord, "operation" | "kind" | "direction" | "amount" | "dispute_id">): void {
    this.#ensureSchema();
    const now = Date.now();
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
    this.sql.exec(
      "UPDATE adjustments SET state = 'pending', attempt = attempt + 1, sent = 1, last_error = NULL, updated_at = ? WHERE operation = ? AND state = 'needs_attention'",
      Date.now(),
      operation,
    );
    this.journal("adjust", "reopened", operation);
  }

  /** The ledger entries the account's wallet has acknowledged. */
  reported(): Set<string> {
    if (!this.#schemaExists()) return new Set();
    return new Set(
      this.sql
        .exec<{ balance_transaction_id: string }>("SELECT balance_transaction_id FROM reports")
        .toArray()
        .map((r) => r.balance_transaction_id),
    );
  }

  noteReported(ids: string[]): void {
    for (const id of ids) this.sql.exec("INSERT INTO reports (balance_transaction_id, reported_at) VALUES (?, ?) ON CONFLICT DO NOTHING", id, Date.now());
  }

  /** Remembers a payment_intent.succeeded webhook that came before any record. */
  noteNotice(paymentIntentId: string): void {
    this.#ensureSchema();
    this.sql.exec("INSERT INTO notice (payment_intent_id, received_at) VALUES (?, ?) ON CONFLICT (payment_intent_id) DO NOTHING", paymentIntentId, Date.now());
  }

  notice(): Notice | null {
    if (!this.#schemaExists()) return null;
    return (this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM notice LIMIT 1").toArray()[0] as unknown as Notice | undefined) ?? null;
  }

  /** Counts one more try of the notice and returns it. */
  bumpNotice(): number {
    this.sql.exec("UPDATE notice SET attempts = attempts + 1");
    return this.notice()?.attempts ?? 0;
  }

  clearNotice(): void {
    if (this.#schemaExists()) this.sql.exec("DELETE FROM notice");
  }

  /** Appends one line to the journal; only once a record exists (junk leaves no trace). */
  journal(step: string, outcome: string, detail: string | null): void {
    if (!this.#schemaExists()) return;
    this.sql.exec("INSERT INTO journal (at, step, outcome, detail) VALUES (?, ?, ?, ?)", Date.now(), step, outcome, detail);
    this.sql.exec("DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ?", JOURNAL_LIMIT);
  }

  journalEntries(): JournalEntry[] {
    if (!this.#schemaExists()) return [];
    return this.sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM journal ORDER BY seq").toArray() as unknown as JournalEntry[];
  }
}
