// The credit registry: one object (named "credits") listing the PaymentIntents that are not
// done on the happy path: credits waiting for a retry, and credits that need an operator. PI
// objects report here only when something goes wrong and when it is put right, so its load is
// proportional to failures, not to traffic. It is a view: each PI object's own record is the
// truth, and the operator route re-checks every entry it shows against that record.
//
// attention (one row per PI): payment_intent_id, state, customer_id, amount, currency,
//   last_error, retry_count, next_retry_at, updated_at
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

/** One PaymentIntent in the operator view. */
export interface AttentionEntry {
  payment_intent_id: string;
  state: string;
  customer_id: string | null;
  amount: number | null;
  currency: string | null;
  last_error: string | null;
  retry_count: number;
  next_retry_at: number | null;
  updated_at: number;
}

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

const BAD_EVENTS_SCHEMA = `CREATE TABLE IF NOT EXISTS bad_events (
  event_id TEXT PRIMARY KEY,
  type TEXT,
  error TEXT NOT NULL,
  received_at INTEGER NOT NULL
)`;

/** A signed webhook event that did not parse, as listed for an operator. */
export interface BadEvent {
  event_id: string;
  type: string | null;
  error: string;
  received_at: number;
}

/** An error description is for a person; a payload built to be huge must not fill the table. */
const BAD_EVENT_ERROR_MAX = 2000;

/** The registry's name: there is one. */
export const REGISTRY_NAME = "credits";

/** The singleton registry Durable Object; its public methods are the RPC surface. */
export class CreditRegistry extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(SCHEMA);
    ctx.storage.sql.exec(BAD_EVENTS_SCHEMA);
  }

  /** Adds or refreshes a PI's entry. */
  async upsert(entry: AttentionEntry): Promise<void> {
    const cols = Object.keys(entry) as (keyof AttentionEntry)[];
    this.ctx.storage.sql.exec(
      `INSERT INTO attention (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})
       ON CONFLICT (payment_intent_id) DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(", ")}`,
      ...cols.map((c) => entry[c]),
    );
  }

  /** Drops a PI that is done. */
  async remove(paymentIntentId: string): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM attention WHERE payment_intent_id = ?", paymentIntentId);
  }

  /** Entries by PI id, `limit` at a time after `after`; optionally one state only. */
  async list(options: { limit: number; after?: string; state?: string }): Promise<AttentionEntry[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (options.after) {
      where.push("payment_intent_id > ?");
      args.push(options.after);
    }
    if (options.state) {
      where.push("state = ?");
      args.push(options.state);
    }
    const sql = `SELECT * FROM attention ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY payment_intent_id LIMIT ?`;
    return this.ctx.storage.sql.exec<Record<string, SqlStorageValue>>(sql, ...args, options.limit).toArray() as unknown as AttentionEntry[];
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
      ? this.ctx.storage.sql.exec("SELECT * FROM bad_events WHERE event_id > ? ORDER BY event_id LIMIT ?", options.after, options.limit)
      : this.ctx.storage.sql.exec("SELECT * FROM bad_events ORDER BY event_id LIMIT ?", options.limit);
    return rows.toArray() as unknown as BadEvent[];
  }
}
