// Delivering events to the seller's backend: the retry schedule the consumer asks the queue for,
// what the consumer decides for each message (deliver and acknowledge, retry with the schedule's
// delay, or acknowledge without trying), and, through the real queue, a credit's event that gets
// through a receiver failing its first tries, each try signed afresh in the Standard Webhooks
// format under the same webhook-id. The receiver (test/events/receiver.ts) is shared by the whole
// run: every test scopes its rules and reads to its own account or marker.

import { createExecutionContext, createMessageBatch, getQueueResult, type QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index.js";
import { EVENTS_QUEUE } from "../../src/events/contract.js";
import { retryDelaySeconds } from "../../src/events/delivery.js";
import type { Env } from "../../src/env.js";
import { settings } from "../../src/settings.js";
import { EVENTS_SECRET, EVENTS_SECRET_ROTATED } from "../bindings.js";
import { confirm, newAccountId, paidThroughService } from "../helpers.js";
import { eventCarrying, rawDeliveries, receiverRule, type RawDelivery } from "./received.js";

// ---- driving the Worker's queue handler directly ----

/** The Worker's settings as production has them for the schedule: EVENTS_RETRY_SECONDS "5" (the default). */
const PRODUCTION_RETRY = { ...env, EVENTS_RETRY_SECONDS: "5" };

interface Sent {
  id: string;
  attempts: number;
  body: unknown;
}

interface Outcome extends QueueResult {
  /** The delay each retried message asked for, by message id. */
  delays: Record<string, number | undefined>;
}

/**
 * Hands `messages` to the Worker's queue handler as one batch of the EVENTS queue; answers what
 * it acked and retried. getQueueResult (@cloudflare/vitest-plugin 1.5) drops the options of
 * `retry()`, so each message's retry is watched here for its `delaySeconds`.
 */
async function runQueue(vars: Env, messages: Sent[]): Promise<Outcome> {
  const batch = createMessageBatch(
    EVENTS_QUEUE,
    messages.map((m) => ({ ...m, timestamp: new Date() })),
  );
  const delays: Record<string, number | undefined> = {};
  for (const message of batch.messages) {
    const retry = message.retry.bind(message);
    message.retry = (options?: QueueRetryOptions) => {
      delays[message.id] = options?.delaySeconds;
      retry(options);
    };
  }
  const ctx = createExecutionContext();
  await worker.queue(batch, vars);
  const result = await getQueueResult(batch, ctx);
  // Every retry the handler asked for is one the queue will do, and no other.
  expect(result.retryMessages.map((m) => m.msgId).sort()).toEqual(Object.keys(delays).sort());
  return { ...result, delays };
}

/** The delay each retried message was given, by message id. */
const retried = (r: Outcome) => r.delays;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the retry schedule", () => {
  it("starts at 5 s unless EVENTS_RETRY_SECONDS says otherwise", () => {
    // Blank is how wrangler.toml leaves it: the production default.
    expect(settings({ ...env, EVENTS_RETRY_SECONDS: "" }).events.retrySeconds).toBe(5);
  });

  it("with the default: 5 s, then three times longer each time, capped at 10 minutes", () => {
    const delays = Array.from({ length: 100 }, (_, i) => retryDelaySeconds(i + 1, 5));
    expect(delays.slice(0, 8)).toEqual([5, 15, 45, 135, 405, 600, 600, 600]);
    expect(delays[0]).toBeLessThanOrEqual(10);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1] as number);
    expect(Math.max(...delays)).toBe(600);
    // wrangler.toml's 100 retries: about 16 hours of trying before the dead-letter queue.
    const hours = delays.reduce((a, b) => a + b, 0) / 3600;
    expect(hours).toBeGreaterThan(15);
    expect(hours).toBeLessThan(17);
  });

  it("for every allowed first delay and any attempt: first within 10 s, never shorter than the one before, never over 600 s, and reaching 600", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 1, max: 1_000_000_000 }), (first, attempts) => {
        const delay = retryDelaySeconds(attempts, first);
        expect(retryDelaySeconds(1, first)).toBe(first);
        expect(Number.isInteger(delay)).toBe(true);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThanOrEqual(600);
        expect(retryDelaySeconds(attempts + 1, first)).toBeGreaterThanOrEqual(delay);
        // 1 s tripled six times is 729 s: by the 7th try every non-zero schedule is at the cap.
        if (first > 0 && attempts >= 7) expect(delay).toBe(600);
      }),
      { numRuns: 500 },
    );
  });
});

describe("the queue consumer's decision for each message", () => {
  it("retries a failed delivery with the schedule's delay for its attempts", async () => {
    const markers = Array.from({ length: 12 }, () => newAccountId("dlv_retry"));
    for (const m of markers) await receiverRule({ match: m, fail: [500] });
    const result = await runQueue(
      PRODUCTION_RETRY,
      markers.map((m, i) => ({ id: `msg_${m}`, attempts: i + 1, body: eventCarrying(m) })),
    );
    expect(result.ackAll).toBe(false);
    expect(result.retryBatch.retry).toBe(false);
    expect(result.explicitAcks).toEqual([]);
    expect(retried(result)).toEqual(Object.fromEntries(markers.map((m, i) => [`msg_${m}`, retryDelaySeconds(i + 1, 5)])));
    // The table the production schedule promises, spelled out.
    expect(markers.map((m) => retried(result)[`msg_${m}`])).toEqual([5, 15, 45, 135, 405, 600, 600, 600, 600, 600, 600, 600]);
    // Each was tried once, and failed (the receiver answered 500).
    for (const m of markers) expect((await rawDeliveries(m)).map((d) => d.answer)).toEqual([500]);
  });

  it("acknowledges a delivered event, retries a failed one, and acknowledges an unreadable body without sending it", async () => {
    const [ok, failing, unreadable, noType] = ["dlv_ok", "dlv_fail", "dlv_unreadable", "dlv_notype"].map((l) => newAccountId(l)) as [
      string,
      string,
      string,
      string,
    ];
    await receiverRule({ match: failing, fail: [503] });
    const result = await runQueue(PRODUCTION_RETRY, [
      { id: "m_ok", attempts: 2, body: eventCarrying(ok) },
      { id: "m_fail", attempts: 2, body: eventCarrying(failing) },
      // Not an event at all, and an event of a type the service never produces: retrying cannot help.
      { id: "m_unreadable", attempts: 1, body: `just text ${unreadable}` },
      { id: "m_notype", attempts: 1, body: { ...eventCarrying(noType), type: "credit.invented" } },
    ]);
    expect(result.explicitAcks.sort()).toEqual(["m_notype", "m_ok", "m_unreadable"]);
    expect(retried(result)).toEqual({ m_fail: 15 });
    expect((await rawDeliveries(ok)).map((d) => d.answer)).toEqual([200]);
    expect(await rawDeliveries(unreadable)).toEqual([]);
    expect(await rawDeliveries(noType)).toEqual([]);
  });

  it("acknowledges every 2xx and retries every other answer", async () => {
    // Every status a server can answer with a final response (1xx are interim).
    const status = fc.integer({ min: 200, max: 599 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(status, fc.integer({ min: 1, max: 20 })), { minLength: 1, maxLength: 8 }), async (cases) => {
        const markers = cases.map(() => newAccountId("dlv_status"));
        for (const [i, m] of markers.entries()) await receiverRule({ match: m, fail: [cases[i]?.[0] as number] });
        const result = await runQueue(
          PRODUCTION_RETRY,
          markers.map((m, i) => ({ id: `msg_${m}`, attempts: cases[i]?.[1] as number, body: eventCarrying(m) })),
        );
        const expectedAcks = markers.filter((_, i) => (cases[i]?.[0] as number) < 300).map((m) => `msg_${m}`);
        const expectedRetries = Object.fromEntries(
          markers.flatMap((m, i) => {
            const [answer, attempts] = cases[i] as [number, number];
            return answer < 300 ? [] : [[`msg_${m}`, retryDelaySeconds(attempts, 5)]];
          }),
        );
        expect(result.explicitAcks.sort()).toEqual(expectedAcks.sort());
        expect(retried(result)).toEqual(expectedRetries);
      }),
      { numRuns: 15 },
    );
  });

  it("counts a redirect as a failure and does not follow it", async () => {
    // The receiver answers each with a Location to a page of its own that would accept the event.
    const statuses = [301, 302, 303, 307, 308];
    const markers = statuses.map(() => newAccountId("dlv_redirect"));
    for (const [i, m] of markers.entries()) await receiverRule({ match: m, fail: [statuses[i] as number] });
    const result = await runQueue(
      PRODUCTION_RETRY,
      markers.map((m) => ({ id: `msg_${m}`, attempts: 1, body: eventCarrying(m) })),
    );
    expect(result.explicitAcks).toEqual([]);
    expect(retried(result)).toEqual(Object.fromEntries(markers.map((m) => [`msg_${m}`, 5])));
    for (const [i, m] of markers.entries()) {
      const seen = await rawDeliveries(m);
      expect(seen.map((d) => [d.path, d.answer])).toEqual([["/events", statuses[i]]]);
    }
  });

  it("retries a receiver that does not answer in time, or closes the connection", async () => {
    const [slow, closing] = [newAccountId("dlv_slow"), newAccountId("dlv_close")];
    await receiverRule({ match: slow, fail: ["timeout"] });
    await receiverRule({ match: closing, fail: ["close"] });
    const started = Date.now();
    const result = await runQueue({ ...PRODUCTION_RETRY, EVENTS_TIMEOUT_MS: "300" }, [
      { id: "m_slow", attempts: 3, body: eventCarrying(slow) },
      { id: "m_close", attempts: 4, body: eventCarrying(closing) },
    ]);
    // The consumer gave up on the silent receiver at its timeout, not at the queue's.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(result.explicitAcks).toEqual([]);
    expect(retried(result)).toEqual({ m_slow: 45, m_close: 135 });
    expect((await rawDeliveries(slow)).map((d) => d.answer)).toEqual(["timeout"]);
    expect((await rawDeliveries(closing)).map((d) => d.answer)).toEqual(["close"]);
  });

  it("with EVENTS_URL unset, acknowledges every event without a request, and logs each as dropped", async () => {
    const markers = [newAccountId("dlv_nourl"), newAccountId("dlv_nourl")];
    const log = vi.spyOn(console, "log");
    const result = await runQueue({ ...PRODUCTION_RETRY, EVENTS_URL: "" }, [
      { id: "m_a", attempts: 1, body: eventCarrying(markers[0] as string) },
      { id: "m_b", attempts: 5, body: eventCarrying(markers[1] as string) },
    ]);
    expect(result.explicitAcks.sort()).toEqual(["m_a", "m_b"]);
    expect(result.retryMessages).toEqual([]);
    for (const m of markers) expect(await rawDeliveries(m)).toEqual([]);
    const dropped = log.mock.calls
      .map(([line]) => (typeof line === "string" && line.startsWith("{") ? (JSON.parse(line) as Record<string, unknown>) : null))
      .filter((l) => l?.event === "event_dropped")
      .map((l) => l?.event_id);
    expect(dropped.sort()).toEqual(markers.map((m) => eventCarrying(m).id).sort());
  });
});

// ---- through the real queue ----

/** The tries of `account`'s credit.added event, in order of arrival, once one was accepted. */
function acceptedCreditTries(account: string): Promise<RawDelivery[]> {
  return vi.waitFor(
    async () => {
      const seen = (await rawDeliveries(account)).filter((d) => (JSON.parse(d.body) as { type: string }).type === "credit.added");
      expect(seen.at(-1)?.answer).toBe(200);
      return seen.sort((a, b) => a.received_at - b.received_at);
    },
    { timeout: 20_000, interval: 100 },
  );
}

/** The tries of one event, in order of arrival. */
function triesOf(deliveries: RawDelivery[], id: string): RawDelivery[] {
  return deliveries.filter((d) => d.headers["webhook-id"] === id).sort((a, b) => a.received_at - b.received_at);
}

function webhookHeaders(d: RawDelivery): Record<string, string> {
  return {
    "webhook-id": d.headers["webhook-id"] ?? "",
    "webhook-timestamp": d.headers["webhook-timestamp"] ?? "",
    "webhook-signature": d.headers["webhook-signature"] ?? "",
  };
}

/** Prints the tries of an event as seconds after the first (the delays the queue and the consumer produced). */
function printTries(label: string, tries: RawDelivery[]): void {
  const first = tries[0]?.received_at ?? 0;
  console.info(
    `${label}: ${tries.map((d) => `${String(d.answer)} at +${((d.received_at - first) / 1000).toFixed(2)} s (ts ${d.headers["webhook-timestamp"]})`).join(", ")}`,
  );
}

describe("end to end, through the EVENTS queue", () => {
  it("a credit's event gets through a receiver that fails with 500, a timeout and a closed connection: same id and body every try, each signed afresh with both secrets", async () => {
    const { accountId, token, pi } = await paidThroughService(1500);
    await receiverRule({ match: accountId, fail: [500, "timeout", "close"] });
    expect((await confirm(token, pi.id)).status).toBe(200);

    const tries = await acceptedCreditTries(accountId);
    printTries("credit.added through 500, timeout, close", tries);
    // Four tries (the test queue's maxRetries is 3): the three failures in order, then accepted.
    expect(tries.map((d) => d.answer)).toEqual([500, "timeout", "close", 200]);
    const id = tries[0]?.headers["webhook-id"] as string;
    expect(id).toMatch(/^evt_credit_added_/);
    expect(triesOf(tries, id)).toHaveLength(4);
    // Same body byte for byte every time: a receiver that dedups by webhook-id sees one event.
    expect(new Set(tries.map((d) => d.body)).size).toBe(1);
    const body = JSON.parse(tries[0]?.body as string) as { type: string; timestamp: string; data: { account_id: string; amount: number } };
    expect(body.type).toBe("credit.added");
    expect(body.data).toMatchObject({ account_id: accountId, amount: 1500 });

    const stamps = tries.map((d) => Number(d.headers["webhook-timestamp"]));
    for (const [i, d] of tries.entries()) {
      // Signed when sent: the timestamp is the try's own second, and within the receivers' five minutes.
      expect(Math.abs(d.received_at / 1000 - (stamps[i] as number))).toBeLessThan(2);
      expect(Math.abs(Date.now() / 1000 - (stamps[i] as number))).toBeLessThan(300);
      expect(d.headers["content-type"]).toBe("application/json");
      expect(d.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
      for (const secret of [EVENTS_SECRET, EVENTS_SECRET_ROTATED]) {
        expect(new Webhook(secret).verify(d.body, webhookHeaders(d))).toEqual(body);
      }
    }
    // The try after the timeout was sent at least the 1 s timeout later, so it cannot carry the
    // earlier try's timestamp: each try is signed afresh.
    expect(stamps[2]).toBeGreaterThanOrEqual((stamps[1] as number) + 1);
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]).toBeGreaterThanOrEqual(stamps[i - 1] as number);

    // What must not verify: another secret, a changed body, another id, another timestamp.
    const last = tries[3] as RawDelivery;
    const headers = webhookHeaders(last);
    const wrongSecret = `whsec_${btoa("not-the-sellers-secret-24b")}`;
    expect(() => new Webhook(wrongSecret).verify(last.body, headers)).toThrow();
    const tampered = last.body.replace('"amount":1500', '"amount":150000');
    expect(tampered).not.toBe(last.body);
    expect(() => new Webhook(EVENTS_SECRET).verify(tampered, headers)).toThrow();
    expect(() => new Webhook(EVENTS_SECRET).verify(last.body, { ...headers, "webhook-id": `${id}x` })).toThrow();
    expect(() => new Webhook(EVENTS_SECRET).verify(last.body, { ...headers, "webhook-timestamp": String(Number(headers["webhook-timestamp"]) - 1) })).toThrow();
  });

  it("a receiver that redirects is retried, not followed, until it accepts", async () => {
    const { accountId, token, pi } = await paidThroughService(900);
    await receiverRule({ match: accountId, fail: [307, 302] });
    expect((await confirm(token, pi.id)).status).toBe(200);
    const tries = await acceptedCreditTries(accountId);
    printTries("credit.added through 307, 302", tries);
    // Had a redirect been followed, the redirect's target would have recorded the event and the
    // queue would not have tried /events again.
    expect(tries.map((d) => [d.path, d.answer])).toEqual([
      ["/events", 307],
      ["/events", 302],
      ["/events", 200],
    ]);
    expect(new Set(tries.map((d) => d.headers["webhook-id"])).size).toBe(1);
  });
});
