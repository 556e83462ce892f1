// The events a wallet produces: a credit event for each top-up, reversal and restoration it
// applies (and each debit and capture, if EVENTS_SPENDING asks), and the balance alerts. Every
// ledger line the wallet writes passes through `onEntry` inside the line's own transaction, so
// an alert fires from any write that moves `available` (debit, hold, capture, release, expiry,
// reversal, an entry taken in from Stripe), exactly when that write commits, and once: the
// object runs one transaction at a time, so 200 concurrent debits crossing the threshold cross
// it in exactly one of them.
//
// The rules (`crossings`, pure):
// - balance.low: `available` goes from at or above the threshold to below it, and the last alert
//   of the pair was not already low; balance.recovered: back at or above it after a low.
// - balance.depleted: `available` goes from above zero to zero or below.
// - A threshold of 0 turns low and recovered off; an outstanding low is then forgotten.
// Held credit does not count: a hold lowers `available` and may fire balance.low.

import type { EntryRow, WalletRow } from "../wallet/schema.js";
import { lineOf } from "../wallet/ledger.js";
import { eventId, type BalanceEventData, type EntryEventData, type EventType, type ServiceEvent } from "./contract.js";
import type { Outbox } from "./outbox.js";

export type AlertType = "balance.low" | "balance.depleted" | "balance.recovered";

/** Which alerts a change of `available` from `before` to `after` fires, and whether a low is then outstanding. */
export function crossings(before: number, after: number, threshold: number, lowSent: boolean): { alerts: AlertType[]; lowSent: boolean } {
  const alerts: AlertType[] = [];
  // Threshold 0 is "off", however it became 0 (the account's setting or LOW_BALANCE_THRESHOLD):
  // an outstanding low is forgotten without a word, as PUT …/settings does.
  let low = lowSent && threshold > 0;
  if (threshold > 0 && !low && before >= threshold && after < threshold) {
    alerts.push("balance.low");
    low = true;
  } else if (low && after >= threshold) {
    alerts.push("balance.recovered");
    low = false;
  }
  if (before > 0 && after <= 0) alerts.push("balance.depleted");
  return { alerts, lowSent: low };
}

interface AlertRow {
  /** The account's own threshold; null: the service's LOW_BALANCE_THRESHOLD. */
  threshold: number | null;
  low_sent: number;
  revision: number;
}

/** An account's low-balance threshold, and whether it is the account's own or the service's default. */
export interface ThresholdView {
  low_balance_threshold: number;
  source: "account" | "default";
}

const CREDIT_EVENTS: Partial<Record<string, EventType>> = {
  top_up: "credit.added",
  reversal: "credit.reversed",
  restoration: "credit.restored",
};

export class WalletEvents {
  /**
   * `tables` is the wallet's SQL with its schema in place (balance_alerts is one of the wallet's
   * tables, src/wallet/schema.ts, created outside any transaction: a table created inside a
   * debit's transaction would vanish if it rolled back, under a flag that said it was there).
   */
  constructor(
    private readonly tables: () => SqlStorage,
    private readonly outbox: Outbox,
    private readonly options: () => { defaultThreshold: number; spending: boolean },
  ) {}

  get #sql(): SqlStorage {
    return this.tables();
  }

  #row(): AlertRow {
    return (
      (this.#sql.exec<Record<string, SqlStorageValue>>("SELECT threshold, low_sent, revision FROM balance_alerts WHERE id = 1").toArray()[0] as unknown as
        AlertRow | undefined) ?? { threshold: null, low_sent: 0, revision: 0 }
    );
  }

  #save(row: AlertRow): void {
    this.#sql.exec(
      "INSERT INTO balance_alerts (id, threshold, low_sent, revision) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET threshold = excluded.threshold, low_sent = excluded.low_sent, revision = excluded.revision",
      row.threshold,
      row.low_sent,
      row.revision,
    );
  }

  threshold(): ThresholdView {
    const own = this.#row().threshold;
    return own === null ? { low_balance_threshold: this.options().defaultThreshold, source: "default" } : { low_balance_threshold: own, source: "account" };
  }

  /**
   * Sets the account's threshold (null: back to the default). A low alert outstanding is answered
   * with balance.recovered if `available` is at or above the new threshold; a threshold of 0
   * turns the alerts off and forgets it without a word. Call inside a transaction.
   */
  setThreshold(value: number | null, wallet: WalletRow | null): ThresholdView {
    const row = this.#row();
    const next: AlertRow = { threshold: value, low_sent: row.low_sent, revision: row.revision + 1 };
    const view = value === null ? this.options().defaultThreshold : value;
    if (row.low_sent === 1 && view === 0) next.low_sent = 0;
    else if (row.low_sent === 1 && wallet && wallet.available >= view) {
      next.low_sent = 0;
      this.outbox.add(this.#alert("balance.recovered", `${wallet.account_id}_t${next.revision}`, wallet, view));
    }
    this.#save(next);
    return this.threshold();
  }

  /** Called by the ledger for every line it posts, inside the line's transaction, with the wallet before and after. */
  onEntry(entry: EntryRow, before: WalletRow, after: WalletRow): void {
    const credit = CREDIT_EVENTS[entry.kind];
    if (credit && entry.stripe_tx) this.outbox.add(this.#entryEvent(credit, entry.stripe_tx, entry, after));
    if (this.options().spending && (entry.kind === "debit" || entry.kind === "capture"))
      this.outbox.add(this.#entryEvent("credit.spent", entry.id, entry, after));
    if (before.available === after.available) return;
    const row = this.#row();
    const threshold = row.threshold ?? this.options().defaultThreshold;
    const { alerts, lowSent } = crossings(before.available, after.available, threshold, row.low_sent === 1);
    for (const type of alerts) this.outbox.add(this.#alert(type, `${after.account_id}_${entry.seq}`, after, threshold));
    if (lowSent !== (row.low_sent === 1)) this.#save({ ...row, low_sent: lowSent ? 1 : 0 });
  }

  /**
   * A reported entry the wallet already had: applied from another report, taken in from Stripe,
   * or part of the history the wallet opened with (a credit written just before the wallet's
   * first read of the ledger). Its credit event is produced now, under the same id; the outbox
   * keeps a fact it already has, or has sent, from going out twice.
   */
  announce(stripeTx: string): void {
    const entry = this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM entries WHERE stripe_tx = ?", stripeTx).toArray()[0] as unknown as
      EntryRow | undefined;
    const wallet = this.#sql.exec<Record<string, SqlStorageValue>>("SELECT * FROM wallet WHERE id = 1").toArray()[0] as unknown as WalletRow | undefined;
    const type = entry ? CREDIT_EVENTS[entry.kind] : undefined;
    if (entry && wallet && type) this.outbox.add(this.#entryEvent(type, stripeTx, entry, wallet));
  }

  #entryEvent(type: EventType, fact: string, entry: EntryRow, after: WalletRow): ServiceEvent {
    const data: EntryEventData = { ...lineOf(entry), account_id: after.account_id, balance: balanceOf(after, entry.currency) };
    return { id: eventId(type, fact), type, created: new Date(entry.created_at).toISOString(), data };
  }

  #alert(type: AlertType, fact: string, wallet: WalletRow, threshold: number): ServiceEvent {
    const data: BalanceEventData = { account_id: wallet.account_id, ...balanceOf(wallet, wallet.currency ?? ""), threshold };
    return { id: eventId(type, fact), type, created: new Date().toISOString(), data };
  }
}

function balanceOf(wallet: WalletRow, fallbackCurrency: string): { available: number; held: number; currency: string } {
  return { available: wallet.available, held: wallet.held, currency: wallet.currency ?? fallbackCurrency };
}
