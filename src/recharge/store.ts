// Auto-recharge's records: typed, synchronous access to its tables (schema.ts). No method
// awaits, so a caller that checks and writes inside one transaction (the wallet write that
// starts a recharge) cannot be interleaved with another request.

import type { RechargeSettings } from "./contract.js";
import type { AutoRechargeRow, CardSaveRow, RechargeRow } from "./schema.js";

type Row = Record<string, SqlStorageValue>;

const OPEN = "status IN ('pending', 'processing', 'action_required')";
/** Recharges that count against the month: all but those that took no money. */
const COUNTED = "status NOT IN ('failed', 'canceled')";

export class RechargeStore {
  /** `tables`: the account's SQL with the wallet's and these tables in place. */
  constructor(private readonly tables: () => SqlStorage) {}

  get #sql(): SqlStorage {
    return this.tables();
  }

  #first<T>(query: string, ...args: SqlStorageValue[]): T | null {
    return (this.#sql.exec<Row>(query, ...args).toArray()[0] as unknown as T | undefined) ?? null;
  }

  config(): AutoRechargeRow | null {
    return this.#first<AutoRechargeRow>("SELECT * FROM auto_recharge WHERE id = 1");
  }

  settings(row = this.config()): RechargeSettings | null {
    if (!row || row.threshold === null || row.amount === null || row.monthly_limit === null) return null;
    return { enabled: row.enabled === 1, threshold: row.threshold, amount: row.amount, monthly_limit: row.monthly_limit };
  }

  #ensureConfig(): void {
    this.#sql.exec("INSERT INTO auto_recharge (id) VALUES (1) ON CONFLICT (id) DO NOTHING");
  }

  /** The user's settings. Turning it on starts afresh: no failures counted, no reason to be off. */
  saveSettings(s: RechargeSettings): void {
    this.#ensureConfig();
    const turnedOn = s.enabled && this.config()?.enabled !== 1;
    this.#sql.exec(
      "UPDATE auto_recharge SET enabled = ?, threshold = ?, amount = ?, monthly_limit = ? WHERE id = 1",
      s.enabled ? 1 : 0,
      s.threshold,
      s.amount,
      s.monthly_limit,
    );
    if (turnedOn) this.#sql.exec("UPDATE auto_recharge SET failures = 0, last_failure_at = NULL, disabled_reason = NULL WHERE id = 1");
  }

  saveCard(paymentMethod: string, brand: string | null, last4: string | null): void {
    this.#ensureConfig();
    this.#sql.exec("UPDATE auto_recharge SET payment_method = ?, card_brand = ?, card_last4 = ? WHERE id = 1", paymentMethod, brand, last4);
  }

  clearCard(): void {
    this.#sql.exec("UPDATE auto_recharge SET payment_method = NULL, card_brand = NULL, card_last4 = NULL WHERE id = 1");
  }

  /** Counts a failed recharge; answers how many in a row. */
  noteFailure(now: number): number {
    this.#ensureConfig();
    this.#sql.exec("UPDATE auto_recharge SET failures = failures + 1, last_failure_at = ? WHERE id = 1", now);
    return this.config()?.failures ?? 1;
  }

  resetFailures(): void {
    this.#sql.exec("UPDATE auto_recharge SET failures = 0, last_failure_at = NULL WHERE id = 1");
  }

  /** Switches auto-recharge off; answers the revision that names the event. */
  disable(reason: "declined" | "card_removed"): number {
    this.#sql.exec("UPDATE auto_recharge SET enabled = 0, disabled_reason = ?, revision = revision + 1 WHERE id = 1", reason);
    return this.config()?.revision ?? 1;
  }

  // ---- recharges

  open(): RechargeRow | null {
    return this.#first<RechargeRow>(`SELECT * FROM recharges WHERE ${OPEN} ORDER BY n LIMIT 1`);
  }

  latest(): RechargeRow | null {
    return this.#first<RechargeRow>("SELECT * FROM recharges ORDER BY n DESC LIMIT 1");
  }

  get(n: number): RechargeRow | null {
    return this.#first<RechargeRow>("SELECT * FROM recharges WHERE n = ?", n);
  }

  byPaymentIntent(paymentIntentId: string): RechargeRow | null {
    return this.#first<RechargeRow>("SELECT * FROM recharges WHERE payment_intent_id = ?", paymentIntentId);
  }

  monthTotal(month: string): number {
    return this.#sql.exec<{ total: number | null }>(`SELECT SUM(amount) AS total FROM recharges WHERE month = ? AND ${COUNTED}`, month).one().total ?? 0;
  }

  /** Records recharge n+1 as pending, due now; answers it. */
  start(fields: Pick<RechargeRow, "amount" | "currency" | "customer_id" | "payment_method" | "month">, now: number): RechargeRow {
    const n = (this.#sql.exec<{ n: number | null }>("SELECT MAX(n) AS n FROM recharges").one().n ?? 0) + 1;
    this.#sql.exec(
      "INSERT INTO recharges (n, status, amount, currency, customer_id, payment_method, month, due_at, created_at, updated_at) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)",
      n,
      fields.amount,
      fields.currency,
      fields.customer_id,
      fields.payment_method,
      fields.month,
      now,
      now,
      now,
    );
    return this.get(n) as RechargeRow;
  }

  update(n: number, fields: Partial<Omit<RechargeRow, "n" | "created_at">>, now = Date.now()): RechargeRow {
    const entries = Object.entries({ ...fields, updated_at: now });
    this.#sql.exec(`UPDATE recharges SET ${entries.map(([k]) => `${k} = ?`).join(", ")} WHERE n = ?`, ...(entries.map(([, v]) => v) as SqlStorageValue[]), n);
    return this.get(n) as RechargeRow;
  }

  // ---- cards to save

  noteSave(paymentIntentId: string, now: number): void {
    this.#sql.exec("INSERT INTO card_saves (payment_intent_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", paymentIntentId, now);
  }

  /** The top-up was credited: its card is read and saved next. */
  saveDue(paymentIntentId: string, now: number): boolean {
    return this.#sql.exec("UPDATE card_saves SET due_at = ? WHERE payment_intent_id = ? AND due_at IS NULL", now, paymentIntentId).rowsWritten > 0;
  }

  dueSave(now: number): CardSaveRow | null {
    return this.#first<CardSaveRow>("SELECT * FROM card_saves WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT 1", now);
  }

  retrySave(paymentIntentId: string, dueAt: number): void {
    this.#sql.exec("UPDATE card_saves SET due_at = ?, tries = tries + 1 WHERE payment_intent_id = ?", dueAt, paymentIntentId);
  }

  dropSave(paymentIntentId: string): void {
    this.#sql.exec("DELETE FROM card_saves WHERE payment_intent_id = ?", paymentIntentId);
  }

  /** Top-ups with "save my card" never paid within `before`: forgotten. */
  forgetSavesBefore(before: number): void {
    this.#sql.exec("DELETE FROM card_saves WHERE due_at IS NULL AND created_at < ?", before);
  }

  /** The earliest work owed: a recharge step or a card to save. */
  dueAt(): number | null {
    const recharge = this.#sql.exec<{ at: number | null }>(`SELECT MIN(due_at) AS at FROM recharges WHERE ${OPEN}`).one().at;
    const save = this.#sql.exec<{ at: number | null }>("SELECT MIN(due_at) AS at FROM card_saves").one().at;
    const times = [recharge, save].filter((t): t is number => t !== null);
    return times.length === 0 ? null : Math.min(...times);
  }
}
