// Events and their delivery. Stripe delivers at least once, unordered, and retries non-2xx
// answers with backoff; it signs `"<t>.<raw body>"` with HMAC-SHA256 under the endpoint secret
// and sends `Stripe-Signature: t=<unix>,v1=<hex>`.

import { newId, nowSeconds, type Store, type StripeEvent } from "./store.js";

/** One delivery attempt of one event, as the control API reports it. */
export interface Delivery {
  event_id: string;
  type: string;
  attempt: number;
  at: number;
  status: number | null;
  error: string | null;
}

export interface WebhookSettings {
  url: string | null;
  secret: string;
  /** First retry delay; doubles per attempt. */
  retryBaseMs: number;
  maxAttempts: number;
  apiVersion: string;
}

/** Hex HMAC-SHA256 of `${timestamp}.${payload}` under `secret`, as Stripe's v1 scheme. */
export async function signPayload(payload: string, secret: string, timestamp: number): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, enc.encode(`${timestamp}.${payload}`));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A complete `Stripe-Signature` header value for `payload`. */
export async function signatureHeader(payload: string, secret: string, timestamp = nowSeconds()): Promise<string> {
  return `t=${timestamp},v1=${await signPayload(payload, secret, timestamp)}`;
}

/** Creates events and delivers them to the configured endpoint. */
export class Webhooks {
  deliveries: Delivery[] = [];
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly store: Store,
    public settings: WebhookSettings,
    /** Sees each event as it is created (the emulator checks it against Stripe's spec). */
    private readonly created: (event: StripeEvent) => void = () => {},
  ) {}

  /**
   * Records an event for `object` (a snapshot, as Stripe sends) and schedules its delivery;
   * `previousAttributes` are the changed fields' old values, as Stripe puts them on `*.updated`
   * and `payment_method.detached` events.
   */
  emit(
    type: string,
    object: unknown,
    request: { id: string | null; idempotency_key: string | null },
    livemode: boolean,
    previousAttributes?: Record<string, unknown>,
  ): StripeEvent {
    const event: StripeEvent = {
      id: newId("evt"),
      object: "event",
      api_version: this.settings.apiVersion,
      created: nowSeconds(),
      data: previousAttributes
        ? { object: structuredClone(object), previous_attributes: structuredClone(previousAttributes) }
        : { object: structuredClone(object) },
      livemode,
      pending_webhooks: this.settings.url ? 1 : 0,
      request,
      type,
    };
    this.created(event);
    this.store.events.push(event);
    this.deliver(event);
    return event;
  }

  /** A second, distinct event object for the same change (Stripe sometimes sends two). */
  duplicate(event: StripeEvent): StripeEvent {
    const copy: StripeEvent = { ...structuredClone(event), id: newId("evt"), created: nowSeconds() };
    this.created(copy);
    this.store.events.push(copy);
    this.deliver(copy);
    return copy;
  }

  /** Starts delivering `event` (again); attempts continue in the background. */
  deliver(event: StripeEvent, attempt = 1): void {
    if (!this.settings.url) return;
    const p = this.#attempt(event, attempt).finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  /** Waits until no delivery attempt is running (scheduled retries are not waited for). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Cancels scheduled retries. */
  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  async #attempt(event: StripeEvent, attempt: number): Promise<void> {
    const url = this.settings.url;
    if (!url) return;
    const payload = JSON.stringify(event, null, 2);
    const record: Delivery = { event_id: event.id, type: event.type, attempt, at: Date.now(), status: null, error: null };
    this.deliveries.push(record);
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json; charset=utf-8",
          "stripe-signature": await signatureHeader(payload, this.settings.secret),
          "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        },
        body: payload,
      });
      record.status = res.status;
      await res.body?.cancel();
      if (res.status >= 200 && res.status < 300) return;
    } catch (err) {
      record.error = err instanceof Error ? err.message : String(err);
    }
    if (attempt >= this.settings.maxAttempts) return;
    const delay = Math.min(this.settings.retryBaseMs * 2 ** (attempt - 1), 60_000);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.deliver(event, attempt + 1);
    }, delay);
    unref(timer);
    this.#timers.add(timer);
  }
}

/** Lets Node exit while a retry is scheduled; a no-op where timers are plain numbers. */
export function unref(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer && typeof timer.unref === "function") timer.unref();
}
