// An object's outbox: the events it produced, kept in its own SQLite storage until the EVENTS
// queue has them. `add` runs inside the transaction that makes the fact true, so an event exists
// exactly when its fact does (a rolled-back write leaves no event, a crash after the commit loses
// none). `flush` sends what is waiting; a send that fails leaves the rows for the owner's alarm
// (`dueAt`). A crash between the send and its record sends the event again under the same id,
// which the receiver sees as a retry.
//
// A sent event's id is remembered for a week (its row stays, marked sent), so the same fact
// produced again by another path (the webhook's report of a credit the browser's already made,
// an entry taken in from Stripe before its report) is still one event, not a second delivery.

import { backoffMs } from "../objects/backoff.js";
import type { ServiceEvent } from "./contract.js";

const SCHEMA = `CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  event TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  sent_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (seq) WHERE sent_at IS NULL;
CREATE TABLE IF NOT EXISTS outbox_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  failures INTEGER NOT NULL DEFAULT 0,
  retry_at INTEGER,
  last_error TEXT
);`;

/** Queues accept at most 100 messages per sendBatch call. */
const SEND_BATCH = 100;
/** How long after it was produced an event not yet sent (its object died mid-send) is sent by the alarm. */
const UNSENT_GRACE_MS = 30_000;
/** How long a sent event's id keeps the same fact from being sent again. */
const REMEMBER_SENT_MS = 7 * 24 * 3600_000;

/** Sends events to the queue; throws when the queue did not take them. */
export type EventSender = (events: ServiceEvent[]) => Promise<void>;

/** The EVENTS queue as a sender: JSON bodies, so the consumer and the dead-letter archive read them as written. */
export function queueSender(queue: Queue): EventSender {
  return async (events) => {
    await queue.sendBatch(events.map((body) => ({ body, contentType: "json" as const })));
  };
}

export class Outbox {
  /** The tables exist and are committed (seen from outside any transaction). */
  #ready = false;
  #flushing: Promise<void> | null = null;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly send: EventSender,
    private readonly log: (event: string, fields: Record<string, unknown>) => void,
  ) {}

  get #sql(): SqlStorage {
    return this.storage.sql;
  }

  /**
   * Whether the tables exist. They are created by the first `add`, inside the fact's transaction,
   * so a rolled-back fact takes them with it, and an object that never produced an event (a
   * PaymentIntent object asked about a stranger's id) has none. The answer is kept once true:
   * the readers below run outside any transaction, so what they see is committed.
   */
  #exists(): boolean {
    this.#ready ||= this.#sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").toArray().length > 0;
    return this.#ready;
  }

  /** Keeps `event` for sending; an event already kept (same id: the same fact) is not added twice. Call inside the fact's transaction. */
  add(event: ServiceEvent): void {
    // Parsing the schema costs every event; once the tables are known committed, it is skipped.
    if (!this.#ready) this.#sql.exec(SCHEMA);
    this.#sql.exec("INSERT INTO outbox (id, event, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING", event.id, JSON.stringify(event), Date.now());
  }

  /** How many events wait to be sent. Outside transactions only (see #exists). */
  waiting(): number {
    if (!this.#exists()) return 0;
    return this.#sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL").one().n;
  }

  /**
   * When the owner's alarm must send what waits (null: nothing waits): after a failed send, its
   * backoff; otherwise a little after the oldest waiting event, which covers the object dying
   * between the fact's commit and the send (nothing else would come back for it). Owners arm
   * their alarm for it before each flush, so no await leaves an event with nothing to send it.
   */
  dueAt(): number | null {
    if (!this.#exists()) return null;
    const oldest = this.#sql.exec<{ at: number | null }>("SELECT MIN(created_at) AS at FROM outbox WHERE sent_at IS NULL").one().at;
    if (oldest === null) return null;
    return this.#state()?.retry_at ?? oldest + UNSENT_GRACE_MS;
  }

  /**
   * Sends every waiting event (concurrent callers share one flush, which goes on while events
   * arrive). Never throws: a failed send is recorded with its backoff and left to `dueAt`.
   */
  flush(): Promise<void> {
    if (this.waiting() === 0) return Promise.resolve();
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    for (;;) {
      const rows = this.#sql
        .exec<{ seq: number; event: string }>("SELECT seq, event FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?", SEND_BATCH)
        .toArray();
      const last = rows.at(-1);
      if (!last) return;
      try {
        await this.send(rows.map((r) => JSON.parse(r.event) as ServiceEvent));
      } catch (err) {
        const failures = (this.#state()?.failures ?? 0) + 1;
        const retryAt = Date.now() + backoffMs(failures);
        this.#sql.exec(
          "INSERT INTO outbox_state (id, failures, retry_at, last_error) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET failures = excluded.failures, retry_at = excluded.retry_at, last_error = excluded.last_error",
          failures,
          retryAt,
          String(err),
        );
        this.log("events_send_failed", { waiting: this.waiting(), failures, retry_at: retryAt, error: String(err) });
        return;
      }
      const now = Date.now();
      this.storage.transactionSync(() => {
        this.#sql.exec("UPDATE outbox SET sent_at = ? WHERE sent_at IS NULL AND seq <= ?", now, last.seq);
        this.#sql.exec("DELETE FROM outbox_state");
        this.#sql.exec("DELETE FROM outbox WHERE sent_at < ?", now - REMEMBER_SENT_MS);
      });
    }
  }

  #state(): { failures: number; retry_at: number | null; last_error: string | null } | null {
    return (
      this.#sql
        .exec<{ failures: number; retry_at: number | null; last_error: string | null }>("SELECT failures, retry_at, last_error FROM outbox_state")
        .toArray()[0] ?? null
    );
  }
}
