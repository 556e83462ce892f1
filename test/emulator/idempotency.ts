// Stripe's idempotency rules (docs.stripe.com/api/idempotent_requests, error-handling): a key
// remembers the endpoint and parameters of its first request and, once that request began
// executing, its result, errors included, for the key's whole life; a second request while the
// first runs gets 409 `idempotency_key_in_use`; other parameters or another endpoint get 400
// `idempotency_error`. Keys expire after a configurable lifetime (Stripe: at least 24 hours).

/** A result saved under a key: replayed byte for byte. */
export interface SavedResult {
  status: number;
  body: string;
  requestId: string;
}

interface KeyEntry {
  endpoint: string;
  fingerprint: string;
  createdAt: number;
  result: SavedResult | null;
  /** When a request with this key last ended in a way the client retries on its own (no answer, 409, 429, 5xx). */
  retryableAt: number | null;
}

export type KeyLookup =
  { kind: "new" } | { kind: "replay"; result: SavedResult } | { kind: "in_use" } | { kind: "other_params" } | { kind: "other_endpoint"; first: string };

/** The key store of one Stripe account. */
export class IdempotencyKeys {
  #keys = new Map<string, KeyEntry>();

  constructor(public ttlMs: number) {}

  /** What a request with `key` for `endpoint` and `fingerprint` meets. */
  lookup(key: string, endpoint: string, fingerprint: string): KeyLookup {
    const entry = this.#live(key);
    if (!entry) return { kind: "new" };
    if (entry.endpoint !== endpoint) return { kind: "other_endpoint", first: entry.endpoint };
    if (entry.fingerprint !== fingerprint) return { kind: "other_params" };
    if (!entry.result) return { kind: "in_use" };
    return { kind: "replay", result: entry.result };
  }

  /** Marks `key` as executing; later requests see it in use until saved or released. */
  claim(key: string, endpoint: string, fingerprint: string): void {
    this.#keys.set(key, { endpoint, fingerprint, createdAt: Date.now(), result: null, retryableAt: null });
  }

  save(key: string, result: SavedResult): void {
    const entry = this.#keys.get(key);
    if (entry) entry.result = result;
  }

  /** Forgets a claim whose request did not execute (so a retry really runs again). */
  release(key: string): void {
    const entry = this.#keys.get(key);
    if (entry && !entry.result) this.#keys.delete(key);
  }

  /** A request with `key` ended with no answer, or one the client's SDK retries (409, 429, 5xx). */
  noteRetryable(key: string): void {
    const entry = this.#keys.get(key);
    if (entry) entry.retryableAt = Date.now();
  }

  /**
   * Prunes keys as Stripe does after their lifetime: all of them, or those matching `match`.
   * `spareRetryingMs`: keys whose request is still executing, or whose last request ended
   * retryably less than that long ago, are kept.
   * Stripe keeps a key at least 24 hours and an SDK retries within seconds, so a key is never
   * forgotten between a request and the SDK's automatic retry of it; a test that compresses the
   * day into a call must not make that happen either.
   */
  expire(match?: (key: string) => boolean, spareRetryingMs = 0): number {
    let n = 0;
    const now = Date.now();
    for (const [key, entry] of [...this.#keys.entries()]) {
      const retrying = entry.retryableAt !== null && now - entry.retryableAt < spareRetryingMs;
      // A claim with no result is a request still executing: it cannot be a day old either.
      if (spareRetryingMs > 0 && (retrying || entry.result === null)) continue;
      if (!match || match(key)) {
        this.#keys.delete(key);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.#keys.size;
  }

  #live(key: string): KeyEntry | undefined {
    const entry = this.#keys.get(key);
    if (entry && Date.now() - entry.createdAt >= this.ttlMs) {
      this.#keys.delete(key);
      return undefined;
    }
    return entry;
  }
}

/**
 * An idempotency_error in Stripe's words. For another endpoint Stripe names both paths, this
 * request's first: `('/v1/invoices/in_1/pay' vs '/v1/invoices')`. Endpoints are stored as
 * `METHOD /pattern /path`, so the path is the last word.
 */
export function idempotencyErrorMessage(kind: "other_params" | "other_endpoint", key: string, endpoints?: { now: string; first: string }): string {
  const path = (endpoint: string) => endpoint.slice(endpoint.lastIndexOf(" ") + 1);
  const paths = endpoints ? `'${path(endpoints.now)}' vs '${path(endpoints.first)}'` : `'${key}'`;
  return kind === "other_params"
    ? `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`
    : `Keys for idempotent requests can only be used for the same endpoint they were first used for (${paths}). Try using a key other than '${key}' if you meant to execute a different request.`;
}
