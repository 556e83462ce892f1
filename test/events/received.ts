// What the seller's receiver (test/events/receiver.ts) got, read the way a seller's backend reads
// it: every delivery's signature verified with the `standardwebhooks` package, then one event per
// `webhook-id` (a retry or a re-send of one fact is the same event to the seller). The tests of
// what the service produces count these events; how often each was delivered is delivery's
// business (test/events/delivery.test.ts).

import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { vi } from "vitest";
import { eventId, type EventType, type ServiceEvent } from "../../src/events/contract.js";
import { EVENTS_SECRET } from "../bindings.js";

/** One event as the seller's backend received it. */
export interface Received<D = Record<string, unknown>> {
  /** The `webhook-id`: the event's id, derived from its fact. */
  id: string;
  type: EventType;
  timestamp: string;
  data: D;
  /** How many deliveries carried this id (retries and re-sends). */
  deliveries: number;
}

/** One delivery as the receiver recorded it (every try, retries included). */
export interface RawDelivery {
  /** /events, or /_receiver/redirected for a redirect that was followed. */
  path: string;
  headers: Record<string, string>;
  body: string;
  answer: number | "timeout" | "close";
  received_at: number;
}

/** The receiver's control API, beside EVENTS_URL (…/events) in the Worker's bindings. */
function receiverBase(): string {
  const url = (env as unknown as { EVENTS_URL?: string }).EVENTS_URL;
  if (!url?.endsWith("/events")) throw new Error(`EVENTS_URL is not the test receiver: ${String(url)}`);
  return url.slice(0, -"/events".length);
}

/** A failure the receiver answers with: a status, no answer at all, or a closed connection. */
export type Failure = number | "timeout" | "close";

/** Tells the receiver to fail the next deliveries whose body contains `match` (`fail`, in order), or all of them while `down`. */
export async function receiverRule(rule: { match: string; fail?: Failure[]; down?: boolean }): Promise<void> {
  const res = await fetch(`${receiverBase()}/_receiver/rules`, { method: "POST", body: JSON.stringify(rule) });
  if (res.status !== 200) throw new Error(`receiver rule: ${res.status}`);
  await res.body?.cancel();
}

/** Lifts every rule about `match`: the receiver accepts its deliveries again. */
export async function receiverClear(match: string): Promise<void> {
  const res = await fetch(`${receiverBase()}/_receiver/rules/clear`, { method: "POST", body: JSON.stringify({ match }) });
  if (res.status !== 200) throw new Error(`receiver clear: ${res.status}`);
  await res.body?.cancel();
}

/** A well-formed event (not one the service produced) whose body carries `marker`, so receiver rules and reads can find it. */
export function eventCarrying(marker: string): ServiceEvent {
  return {
    id: eventId("credit.added", `txn_${marker}`),
    type: "credit.added",
    created: new Date().toISOString(),
    data: { account_id: marker, amount: 1000, currency: "usd" } as unknown as ServiceEvent["data"],
  };
}

/** The body text an account's events carry (its `data.account_id`, quoted, so no other account's id can match it). */
export function ofAccount(accountId: string): string {
  return `"account_id":"${accountId}"`;
}

/** Every delivery whose body contains `match`, in the order received. */
export async function rawDeliveries(match: string): Promise<RawDelivery[]> {
  const res = await fetch(`${receiverBase()}/_receiver/deliveries?match=${encodeURIComponent(match)}`);
  if (!res.ok) throw new Error(`receiver: ${res.status}`);
  return (await res.json<{ data: RawDelivery[] }>()).data;
}

const verifier = new Webhook(EVENTS_SECRET);

/**
 * The events whose body contains `match` (use `ofAccount`), one per webhook-id, in the order
 * first received. Throws if a delivery's signature does not verify, or if two deliveries of one
 * id differ in body: either would be a different event to the seller.
 */
export async function receivedFor(match: string): Promise<Received[]> {
  const byId = new Map<string, Received & { body: string }>();
  for (const d of await rawDeliveries(match)) {
    // verify() checks the signature over id.timestamp.body and that the timestamp is within five
    // minutes (as a seller's backend would); it returns the parsed body.
    const body = verifier.verify(d.body, d.headers) as { type: EventType; timestamp: string; data: Record<string, unknown> };
    const id = d.headers["webhook-id"] ?? "";
    const seen = byId.get(id);
    if (seen) {
      if (seen.body !== d.body) throw new Error(`two bodies for ${id}:\n${seen.body}\n${d.body}`);
      seen.deliveries++;
      continue;
    }
    byId.set(id, { id, type: body.type, timestamp: body.timestamp, data: body.data, deliveries: 1, body: d.body });
  }
  return [...byId.values()].map(({ body: _body, ...event }) => event);
}

/** The received events of `type` among `events`. */
export function ofType<D = Record<string, unknown>>(events: Received[], type: EventType): Received<D>[] {
  return events.filter((e) => e.type === type) as Received<D>[];
}

/** How many distinct events of each type, as {type: count} (a readable thing to compare whole). */
export function countByType(events: Received[]): Partial<Record<EventType, number>> {
  const counts: Partial<Record<EventType, number>> = {};
  for (const e of events) counts[e.type] = (counts[e.type] ?? 0) + 1;
  return counts;
}

/** How long a late duplicate gets to show up after the awaited events arrived (queue batches wait 50 ms in tests). */
export const SETTLE_MS = 600;

/**
 * Waits (at most `timeoutMs`) until the events for `match` satisfy `ready`, then a further
 * SETTLE_MS so that a duplicate or a stray event sent after them would be seen too, and returns
 * them as they are then.
 */
export async function waitForEvents(match: string, ready: (events: Received[]) => boolean, timeoutMs = 10_000): Promise<Received[]> {
  await vi.waitFor(
    async () => {
      const events = await receivedFor(match);
      if (!ready(events)) throw new Error(`not yet: ${JSON.stringify(countByType(events))}`);
    },
    { timeout: timeoutMs, interval: 50 },
  );
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  return receivedFor(match);
}

/** Waits until at least `counts` of each type arrived for `match` (then settles); see waitForEvents. */
export function waitForTypes(match: string, counts: Partial<Record<EventType, number>>, timeoutMs?: number): Promise<Received[]> {
  return waitForEvents(
    match,
    (events) => {
      const have = countByType(events);
      return Object.entries(counts).every(([type, n]) => (have[type as EventType] ?? 0) >= (n ?? 0));
    },
    timeoutMs,
  );
}
