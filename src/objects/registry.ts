// The credit registry: one object (named "credits") listing the PaymentIntents that are not
// done on the happy path: credits waiting for a retry, and credits that need an operator. PI
// objects report here only when something goes wrong and when it is put right, so its load is
// proportional to failures, not to traffic.
//
// It is a view: each PI object's own record is the truth. A PI object's report is best effort
// (a failed RPC is logged, not retried), so an entry can outlive what it reports. Listing
// therefore asks each listed PI object for its own view (`operatorView`) and keeps the entry in
// step with it: refreshed when it changed, dropped once nothing is owed. A report that arrives
// while that answer is on its way wins (each write bumps the row's revision, and the answer is
// applied only to the revision it was asked about).
//
// attention (one row per PI): an AttentionEntry (src/objects/contract.ts), its owed adjustments
//   as JSON, and `revision`, this object's write counter for the row
// bad_events (one row per event id): signed webhook events that did not parse as the event
//   their type says (a field missing or of another type), acknowledged to Stripe so that it
//   stops redelivering them, and kept here for an operator to look at. Unlike `attention` this is
//   the only record of them: no PI object holds anything for an event that did not parse.
//   event_id    the event's id; a payload with no id is named by its hash (sha256:{hex})
//   type        the event's type, when it had one
//   error       what did not parse (the schema's first issues), bounded
//   received_at first delivery, ms since the epoch (redeliveries change nothing)

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { logEvent } from "../log.js";
import type { AttentionEntry, AttentionPage, AttentionQuery, BadEvent, OperatorView, OwedAdjustment } from "./contract.js";
import { paymentIntentObject } from "./stubs.js";

const SCHEMA = `CREATE TABLE IF NOT EXISTS attention (
  payment_intent_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  customer_id TEXT,
  amount INTEGER,
  currency TEXT,
  last_error TEXT,
  retry_count INTEGER NOT NULL,
  next_retry_at INTEGER,
  updated_at INTEGER NOT NULL
)`;

/** Columns added after the first release: a registry created before them gains them on start. */
const ADDED_COLUMNS: Record<string, string> = {
  reason: "TEXT",
  adjustments: "TEXT NOT NULL DEFAULT '[]'",
  revision: "INTEGER NOT NULL DEFAULT 0",
};

const BAD_EVENTS_SCHEMA = `CREATE TABLE IF NOT EXISTS bad_events (
  event_id TEXT PRIMARY KEY,
  type TEXT,
  error TEXT NOT NULL,
  received_at INTEGER NOT NULL
)`;

/** An error description is for a person; a payload built to be huge must not fill the table. */
const BAD_EVENT_ERROR_MAX = 2000;

/** An attention row as stored. */
type AttentionRow = Omit<AttentionEntry, "adjustments"> & { adjustments: string; revision: number };

/** An entry's scalar fields, in one order: its columns, and what two entries are compared on. */
const ENTRY_FIELDS = [
  "payment_intent_id",
  "state",
  "customer_id",
  "amount",
  "currency",
  "reason",
  "last_error",
  "retry_count",
  "next_retry_at",
  "updated_at",
] as const satisfies readonly (keyof AttentionEntry)[];

/** The entry as its row stores it: every field, the owed adjustments as JSON. */
function columnsOf(entry: AttentionEntry): SqlStorageValue[] {
  const adjustments = entry.adjustments.map((a): OwedAdjustment => ({
    operation: a.operation,
    state: a.state,
    direction: a.direction,
    amount: a.amount,
    last_error: a.last_error,
  }));
  return [...ENTRY_FIELDS.map((f) => entry[f]), JSON.stringify(adjustments)];
}

/** Two entries say the same when every column would be the same. */
function canonical(entry: AttentionEntry): string {
  return JSON.stringify(columnsOf(entry));
}

function entryOf(row: AttentionRow): AttentionEntry {
  const { revision: _revision, adjustments, ...fields } = row;
  return { ...fields, adjustments: JSON.parse(adjustments) as OwedAdjustment[] };
}

/** The singleton registry Durable Object; its public methods are the RPC surface. */
export class CreditRegistry extends DurableObject<Env> {
  /** The last revision written; rows only ever get a higher one. */
  #revision: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    sql.exec(SCHEMA);
    const columns = new Set(sql.exec("SELECT * FROM attention LIMIT 0").columnNames);
    for (const [name, type] of Object.entries(ADDED_COLUMNS)) {
      if (!columns.has(name)) sql.exec(`ALTER TABLE attention ADD COLUMN ${name} ${type}`);
    }
    sql.exec(BAD_EVENTS_SCHEMA);
    this.#revision = sql.exec<{ top: number }>("SELECT coalesce(max(revision), 0) AS top FROM attention").one().top;
  }

  /** Adds or refreshes a PI's entry. */
  async upsert(entry: AttentionEntry): Promise<void> {
    this.#write(entry);
  }

  /** Drops a PI that is done. */
  async remove(paymentIntentId: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM attention WHERE payment_intent_id = ?", paymentIntentId);
  }

  /**
   * Entries by PI id, `limit` rows at a time after `after`, each as its PI object says it is now
   * (see the top of this file); optionally one state only. A page can hold fewer than `limit`
   * entries (some were settled) and still not be the last: `nextAfter` says.
   */
  async list(query: AttentionQuery): Promise<AttentionPage> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.after) {
      where.push("payment_intent_id > ?");
      args.push(query.after);
    }
    if (query.state) {
      where.push("state = ?");
      args.push(query.state);
    }
    const sql = `SELECT * FROM attention ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY payment_intent_id LIMIT ?`;
    const rows = this.ctx.storage.sql.exec<AttentionRow>(sql, ...args, query.limit).toArray();
    const checked = await Promise.all(rows.map((row) => this.#reconcile(row)));
    const last = rows.at(-1);
    return {
      entries: checked.filter((e): e is AttentionEntry => e !== null && (!query.state || e.state === query.state)),
      nextAfter: rows.length === query.limit && last ? last.payment_intent_id : null,
    };
  }

  /** Lists a signed event that did not parse; a redelivery of it keeps the first row. */
  async noteBadEvent(event: { event_id: string; type: string | null; error: string }): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT INTO bad_events (event_id, type, error, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
      event.event_id,
      event.type,
      event.error.slice(0, BAD_EVENT_ERROR_MAX),
      Date.now(),
    );
  }

  /** Bad events by id, `limit` at a time after `after`. */
  async listBadEvents(options: { limit: number; after?: string }): Promise<BadEvent[]> {
    const rows = options.after
      ? this.ctx.storage.sql.exec<Record<keyof BadEvent, SqlStorageValue>>(
          "SELECT * FROM bad_events WHERE event_id > ? ORDER BY event_id LIMIT ?",
          options.after,
          options.limit,
        )
      : this.ctx.storage.sql.exec<Record<keyof BadEvent, SqlStorageValue>>("SELECT * FROM bad_events ORDER BY event_id LIMIT ?", options.limit);
    return rows.toArray() as unknown as BadEvent[];
  }

  /**
   * The listed entry brought in step with its PI object's own view: refreshed, or dropped once
   * settled (or when the object has no record). An object that cannot answer now keeps its
   * entry as last reported: the list still shows it, and the next listing asks again.
   */
  async #reconcile(row: AttentionRow): Promise<AttentionEntry | null> {
    let view: OperatorView;
    try {
      view = await paymentIntentObject(this.env, row.payment_intent_id).operatorView();
    } catch (err) {
      logEvent("registry_check_failed", { payment_intent: row.payment_intent_id, error: String(err) });
      return entryOf(row);
    }
    // The object reported (or removed) the entry while its answer was on the way: that write stands.
    const current = this.#row(row.payment_intent_id);
    if (!current || current.revision !== row.revision) return current ? entryOf(current) : null;
    if (view.settled || !view.entry) {
      this.ctx.storage.sql.exec("DELETE FROM attention WHERE payment_intent_id = ? AND revision = ?", row.payment_intent_id, row.revision);
      return null;
    }
    if (canonical(view.entry) !== canonical(entryOf(row))) this.#write(view.entry);
    return view.entry;
  }

  #row(paymentIntentId: string): AttentionRow | null {
    return this.ctx.storage.sql.exec<AttentionRow>("SELECT * FROM attention WHERE payment_intent_id = ?", paymentIntentId).toArray()[0] ?? null;
  }

  #write(entry: AttentionEntry): void {
    this.#revision += 1;
    const columns = [...ENTRY_FIELDS, "adjustments", "revision"];
    this.ctx.storage.sql.exec(
      `INSERT INTO attention (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})
       ON CONFLICT (payment_intent_id) DO UPDATE SET ${columns
         .slice(1)
         .map((c) => `${c} = excluded.${c}`)
         .join(", ")}`,
      ...columnsOf(entry),
      this.#revision,
    );
  }
}
