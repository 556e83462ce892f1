// The EVENTS queue's consumer: delivers each event to the seller's EVENTS_URL in the Standard
// Webhooks format and leaves the retrying to the queue. A delivery that does not get a 2xx in
// time is retried with this consumer's own backoff (the first within EVENTS_RETRY_SECONDS, each
// later one three times longer, at most 10 minutes); after the queue's last try (max_retries in
// wrangler.toml) the queue moves it to the dead-letter queue (dead-letters.ts).
//
// Every try sends the same body under the same `webhook-id` (the event's id, so the receiver can
// drop what it has seen), signed afresh with the try's own `webhook-timestamp`: receivers refuse
// a timestamp more than five minutes old, and a retry may come hours later.
//
// Signing is the `standardwebhooks` package's (pure JavaScript HMAC-SHA256, which runs on
// Workers); it signs with one secret, so with several (a rotation) each signs and the
// signatures are sent space-separated, as the format allows.

import { Webhook } from "standardwebhooks";
import { logEvent } from "../log.js";
import { settings, type Settings } from "../settings.js";
import { deliveryBody, isServiceEvent, type ServiceEvent } from "./contract.js";

const MAX_DELAY_SECONDS = 600;

/** Seconds before the next try after `attempts` failed tries (1 = the first delivery failed). */
export function retryDelaySeconds(attempts: number, firstSeconds: number): number {
  return Math.min(MAX_DELAY_SECONDS, firstSeconds * 3 ** Math.max(0, Math.min(attempts - 1, 10)));
}

/** The three Standard Webhooks headers for one try of `event` at `at`. */
export function signedHeaders(event: ServiceEvent, body: string, secrets: string[], at: Date): Record<string, string> {
  const signature = secrets.map((secret) => new Webhook(secret).sign(event.id, at, body)).join(" ");
  return {
    "webhook-id": event.id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": signature,
  };
}

export type DeliveryResult = { ok: true; status: number } | { ok: false; error: string };

/** One try: POST the event to `url`; ok only on a 2xx within the timeout. Redirects are not followed (the seller's URL is the one signed for). */
export async function deliver(event: ServiceEvent, config: Settings["events"] & { url: string }, at = new Date()): Promise<DeliveryResult> {
  const body = deliveryBody(event);
  try {
    const res = await fetch(config.url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "edge-credit-events/1", ...signedHeaders(event, body, config.secrets, at) },
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(config.timeoutMs),
    });
    // The answer's body is not read beyond what frees the connection.
    await res.body?.cancel();
    return res.status >= 200 && res.status < 300 ? { ok: true, status: res.status } : { ok: false, error: `HTTP ${res.status}` };
  } catch (err) {
    return { ok: false, error: err instanceof Error && err.name === "TimeoutError" ? `no answer within ${config.timeoutMs} ms` : String(err) };
  }
}

/** The consumer of the EVENTS queue: each message is one event, acknowledged once delivered. */
export async function deliverBatch(batch: MessageBatch<unknown>, env: Parameters<typeof settings>[0]): Promise<void> {
  const config = settings(env).events;
  await Promise.all(
    batch.messages.map(async (message) => {
      const event = message.body;
      if (!isServiceEvent(event)) {
        // Retrying cannot make it readable; the log keeps its message id.
        logEvent("event_unreadable", { message_id: message.id });
        message.ack();
        return;
      }
      if (config.url === null) {
        logEvent("event_dropped", { event_id: event.id, type: event.type, why: "EVENTS_URL is not set" });
        message.ack();
        return;
      }
      const result = await deliver(event, { ...config, url: config.url });
      if (result.ok) {
        logEvent("event_delivered", { event_id: event.id, type: event.type, attempt: message.attempts, status: result.status });
        message.ack();
        return;
      }
      const delaySeconds = retryDelaySeconds(message.attempts, config.retrySeconds);
      logEvent("event_delivery_failed", {
        event_id: event.id,
        type: event.type,
        attempt: message.attempts,
        error: result.error,
        retry_in_seconds: delaySeconds,
      });
      message.retry({ delaySeconds });
    }),
  );
}
