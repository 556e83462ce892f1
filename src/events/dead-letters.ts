// The dead-letter archive: one object (named "events") that keeps every event the EVENTS queue
// gave up on, for an operator to list and redeliver. The dead-letter queue's consumer
// (`keepDeadLetters`) stores what it receives here before acknowledging it, so nothing the
// queue hands over is lost; an event that dies again after a redelivery comes back to its row.
//
// dead_letters (one row per event id)
//   event            the event as produced (JSON), delivered again as it was: same id, same body
//   seq              this archive's arrival counter: the list is newest first, paged by it
//   times            how many times the event reached the dead-letter queue
//   dead_lettered_at ms, the latest arrival
//   listed           1 while it waits for an operator; 0 once redelivered (the row stays a month,
//                    so an event that dies again counts on: `times` tells a receiver that keeps
//                    refusing one event from one that was down once)

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { logEvent } from "../log.js";
import { deadLettersObject } from "../objects/stubs.js";
import { isServiceEvent, type DeadLetter, type DeadLetterPage, type RedeliverOutcome, type ServiceEvent } from "./contract.js";

const SCHEMA = `CREATE TABLE IF NOT EXISTS dead_letters (
  event_id TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  seq INTEGER NOT NULL,
  times INTEGER NOT NULL DEFAULT 1,
  dead_lettered_at INTEGER NOT NULL,
  listed INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS dead_letters_seq ON dead_letters (seq) WHERE listed = 1`;

/** How long a redelivered event's row is kept to go on counting its deaths. */
const KEEP_REDELIVERED_MS = 30 * 24 * 3600_000;

interface Row {
  event_id: string;
  event: string;
  seq: number;
  times: number;
  dead_lettered_at: number;
  listed: number;
}

/** The dead-letter queue's consumer: keeps each event in the archive, then acknowledges the batch. */
export async function keepDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const events = batch.messages.map((m) => m.body).filter(isServiceEvent);
  if (events.length < batch.messages.length) logEvent("dead_letter_unreadable", { count: batch.messages.length - events.length });
  // A failure here throws: the queue retries the whole batch, and the archive keeps each event once.
  await deadLettersObject(env).keep(events);
  batch.ackAll();
}

export class EventDeadLetters extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(SCHEMA);
  }

  /** Keeps events the queue gave up on; one that is already here counts one more time. */
  async keep(events: ServiceEvent[]): Promise<void> {
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      for (const event of events) {
        const seq = this.ctx.storage.sql.exec<{ n: number | null }>("SELECT MAX(seq) AS n FROM dead_letters").one().n ?? 0;
        this.ctx.storage.sql.exec(
          `INSERT INTO dead_letters (event_id, event, seq, times, dead_lettered_at) VALUES (?, ?, ?, 1, ?)
           ON CONFLICT (event_id) DO UPDATE SET seq = excluded.seq, times = times + 1, dead_lettered_at = excluded.dead_lettered_at, listed = 1`,
          event.id,
          JSON.stringify(event),
          seq + 1,
          now,
        );
      }
    });
    for (const event of events) logEvent("event_dead_lettered", { event_id: event.id, type: event.type });
  }

  /** Newest first; `after` is the `next_cursor` of the previous page. */
  async list(limit: number, after: string | null): Promise<DeadLetterPage | null> {
    const before = after === null ? Number.MAX_SAFE_INTEGER : Number(after);
    if (!Number.isSafeInteger(before) || before < 0) return null;
    const rows = this.ctx.storage.sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM dead_letters WHERE listed = 1 AND seq < ? ORDER BY seq DESC LIMIT ?", before, limit + 1)
      .toArray() as unknown as Row[];
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { data: page.map(letterOf), has_more: rows.length > limit, next_cursor: rows.length > limit && last ? String(last.seq) : null };
  }

  /** Sends one dead-lettered event to the EVENTS queue again (same id, same body) and takes it off the list. */
  async redeliver(eventId: string): Promise<RedeliverOutcome> {
    const row = this.ctx.storage.sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM dead_letters WHERE event_id = ? AND listed = 1", eventId)
      .toArray()[0] as unknown as Row | undefined;
    if (!row) return { ok: false, reason: "not_found" };
    return this.#send([row]);
  }

  /** Sends up to `limit` of them again, oldest first; answers how many and whether more remain. */
  async redeliverAll(limit: number): Promise<{ ok: true; redelivered: number; remaining: number } | Extract<RedeliverOutcome, { reason: "unavailable" }>> {
    const rows = this.ctx.storage.sql
      .exec<Record<string, SqlStorageValue>>("SELECT * FROM dead_letters WHERE listed = 1 ORDER BY seq LIMIT ?", limit)
      .toArray() as unknown as Row[];
    if (rows.length > 0) {
      const sent = await this.#send(rows);
      if (!sent.ok) return { ok: false, reason: "unavailable", retryAfterSeconds: 5 };
    }
    const remaining = this.ctx.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM dead_letters WHERE listed = 1").one().n;
    return { ok: true, redelivered: rows.length, remaining };
  }

  async #send(rows: Row[]): Promise<RedeliverOutcome> {
    try {
      await this.env.EVENTS.sendBatch(rows.map((r) => ({ body: JSON.parse(r.event) as ServiceEvent, contentType: "json" as const })));
    } catch (err) {
      logEvent("event_redelivery_failed", { count: rows.length, error: String(err) });
      return { ok: false, reason: "unavailable", retryAfterSeconds: 5 };
    }
    // Only the rows sent: one that died again while this send was on its way has a new seq and stays listed.
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      for (const r of rows) this.ctx.storage.sql.exec("UPDATE dead_letters SET listed = 0 WHERE event_id = ? AND seq = ?", r.event_id, r.seq);
      this.ctx.storage.sql.exec("DELETE FROM dead_letters WHERE listed = 0 AND dead_lettered_at < ?", now - KEEP_REDELIVERED_MS);
    });
    for (const r of rows) logEvent("event_redelivered", { event_id: r.event_id });
    return { ok: true };
  }
}

function letterOf(r: Row): DeadLetter {
  return { event: JSON.parse(r.event) as ServiceEvent, dead_lettered_at: new Date(r.dead_lettered_at).toISOString(), times: r.times };
}
