// The Stripe emulator: one in-memory Stripe account served as a Hono app on Web standards, so
// the same code runs under Node (`npm run emulator`, the test set-up, the benchmark).
//
// Every API request goes through one pipeline, in Stripe's order:
//   auth (401, not saved; a publishable key only where Stripe.js may call) → injected 429 / 409
//   (not saved) → Idempotency-Key lookup (replay, 409 in use, 400 idempotency_error) → parameter
//   validation, first against Stripe's OpenAPI spec (openapi.ts), then the endpoint's own (400,
//   not saved) → claim the key → latency → injected 500 / 400 / drop / hang → run (a 200's body
//   checked against the spec) → save the result under the key → answer.
// Fault rules with `replays: true` also fire on an answer replayed from a saved key.

import { Hono, type Context } from "hono";
import { cors } from "hono/cors";
import { balanceTransactionEndpoints } from "./balance-transactions.js";
import { controlApi } from "./control.js";
import { customerEndpoints } from "./customers.js";
import type { Endpoint } from "./endpoint.js";
import { StripeFailure, type StripeErrorBody } from "./errors.js";
import { Faults, type FaultKind, type FaultRule } from "./faults.js";
import { idempotencyErrorMessage, IdempotencyKeys, type SavedResult } from "./idempotency.js";
import { canonical, decodeForm, validate, type FormRecord, type FormValue } from "./params.js";
import { paymentIntentEndpoints } from "./payment-intents.js";
import { paymentMethodEndpoints } from "./payment-methods.js";
import { SpecCheck, unrecognized } from "./openapi.js";
import { newId, Store } from "./store.js";
import { Webhooks } from "./webhooks.js";

/** A response carrying this header must be turned into a dropped connection by the server adapter. */
export const DROP_HEADER = "x-emulator-drop-connection";

/** The API version the emulator reports; the service pins the same. */
export const EMULATOR_API_VERSION = "2026-10-28.endive";

export interface EmulatorOptions {
  /** Added to every Stripe API request (ms). */
  latencyMs?: number;
  webhookUrl?: string | null;
  webhookSecret?: string;
  webhookRetryBaseMs?: number;
  webhookMaxAttempts?: number;
  /** How long customer search lags behind writes (ms). */
  searchLagMs?: number;
  /** Idempotency-Key lifetime (ms); Stripe keeps keys at least 24 hours. */
  idempotencyTtlMs?: number;
  /** The longest a `hang` fault waits for the caller to give up (ms). */
  hangMs?: number;
  /** Stripe's rate limit: API requests allowed per second (0 = none); beyond it, 429. */
  rateLimitPerSecond?: number;
  /** Receives one line per API request; omit for silence. */
  log?: (line: string) => void;
  /**
   * Checks every API request against Stripe's OpenAPI spec and refuses what Stripe refuses, and
   * every answer and event against the spec's schemas (openapi.ts). Default on.
   */
  specCheck?: boolean;
}

/** One API request as the control API's request log reports it. */
export interface RequestRecord {
  id: string;
  at: number;
  method: string;
  path: string;
  endpoint: string;
  idempotency_key: string | null;
  params: unknown;
  /** 0 while the request is still being served. */
  status: number;
  replayed: boolean;
  fault: string | null;
  /** Refused because Stripe's OpenAPI spec does not allow it (openapi.ts). */
  refused_by_spec: boolean;
  duration_ms: number;
}

export interface Stats {
  requests: number;
  /** Requests per endpoint, named `METHOD /pattern`. */
  calls: Record<string, number>;
  /** Requests per Idempotency-Key. */
  keys: Record<string, number>;
  replays: number;
  faults_fired: number;
  /** Requests refused by the configured rate limit. */
  rate_limited: number;
}

const LOG_LIMIT = 100_000;

/** Fault kinds that fire once a request runs (after the key lookup, latency and the claim). */
const LATE_FAULTS: readonly FaultKind[] = ["error_500", "error_400", "drop", "hang"];

const FAILED_500 = { status: 500, body: { error: { type: "api_error", message: "An unknown error occurred while processing the request." } } };
const REFUSED_400 = {
  status: 400,
  body: { error: { type: "invalid_request_error", code: "parameter_invalid", message: "Invalid request: a parameter was refused (injected error_400)." } },
};
const KEY_PATTERN = /^(sk|rk)_(test|live)_[A-Za-z0-9_]+$/;
/** Stripe.js's key: good only where the caller also proves its right to the object (a client_secret). */
const PUBLISHABLE_KEY_PATTERN = /^pk_(test|live)_[A-Za-z0-9_]+$/;

/** The emulator's whole state and behaviour; `app.fetch` serves it. */
export class Emulator {
  readonly options: Required<Omit<EmulatorOptions, "log" | "webhookUrl" | "specCheck">> & { webhookUrl: string | null };
  store: Store;
  keys: IdempotencyKeys;
  faults: Faults;
  webhooks: Webhooks;
  log: RequestRecord[] = [];
  stats: Stats = emptyStats();
  /** What the checks against Stripe's spec found; the same switch for the emulator's whole life. */
  readonly spec: SpecCheck;
  readonly app: Hono;
  readonly #print: ((line: string) => void) | undefined;

  constructor(options: EmulatorOptions = {}) {
    this.options = {
      latencyMs: options.latencyMs ?? 0,
      webhookUrl: options.webhookUrl ?? null,
      webhookSecret: options.webhookSecret ?? "whsec_emulator",
      webhookRetryBaseMs: options.webhookRetryBaseMs ?? 1000,
      webhookMaxAttempts: options.webhookMaxAttempts ?? 8,
      searchLagMs: options.searchLagMs ?? 0,
      idempotencyTtlMs: options.idempotencyTtlMs ?? 24 * 60 * 60 * 1000,
      hangMs: options.hangMs ?? 120_000,
      rateLimitPerSecond: options.rateLimitPerSecond ?? 0,
    };
    this.#print = options.log;
    this.spec = new SpecCheck(options.specCheck ?? true);
    this.store = new Store(this.options.searchLagMs);
    this.keys = new IdempotencyKeys(this.options.idempotencyTtlMs);
    this.faults = new Faults(this.options.latencyMs);
    this.webhooks = this.#newWebhooks();
    this.app = this.#buildApp();
  }

  /** Serves one request (the Hono app's fetch). */
  fetch = (request: Request): Response | Promise<Response> => this.app.fetch(request);

  /** Forgets every object, key, fault, log line and counter; keeps the start-up options. */
  reset(): void {
    this.webhooks.stop();
    this.store = new Store(this.options.searchLagMs);
    this.keys = new IdempotencyKeys(this.options.idempotencyTtlMs);
    this.faults = new Faults(this.options.latencyMs);
    this.webhooks = this.#newWebhooks();
    this.log = [];
    this.stats = emptyStats();
    this.spec.reset();
  }

  /** Applies changed options to the live state (used by the control API). */
  reconfigure(): void {
    this.store.searchLagMs = this.options.searchLagMs;
    this.keys.ttlMs = this.options.idempotencyTtlMs;
    this.faults.defaultLatencyMs = this.options.latencyMs;
    this.webhooks.settings = this.#webhookSettings();
  }

  #newWebhooks(): Webhooks {
    return new Webhooks(this.store, this.#webhookSettings(), (event) => this.spec.event(event));
  }

  #webhookSettings() {
    return {
      url: this.options.webhookUrl,
      secret: this.options.webhookSecret,
      retryBaseMs: this.options.webhookRetryBaseMs,
      maxAttempts: this.options.webhookMaxAttempts,
      apiVersion: EMULATOR_API_VERSION,
    };
  }

  #buildApp(): Hono {
    const app = new Hono();
    app.route("/_emulator", controlApi(this));
    // Stripe.js calls the API from the shop's page, on another origin: like Stripe, any origin
    // may call (no cookies are involved; the key and the client_secret are the credentials).
    // The same for the Stripe.js stand-in's own 3-D Secure route (under /v3/, beside the script).
    const anyOrigin = cors({
      origin: "*",
      allowMethods: ["GET", "POST", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key", "Stripe-Version"],
      exposeHeaders: ["Request-Id"],
      maxAge: 300,
    });
    app.use("/v1/*", anyOrigin);
    app.use("/v3/*", anyOrigin);
    const endpoints = [...customerEndpoints, ...balanceTransactionEndpoints, ...paymentIntentEndpoints, ...paymentMethodEndpoints];
    for (const endpoint of endpoints) {
      app.on(endpoint.method, endpoint.pattern, (c) => this.#serve(c, endpoint));
    }
    this.spec.prepare(endpoints);
    app.notFound((c) => {
      const path = new URL(c.req.url).pathname;
      if (path.startsWith("/v1/")) this.spec.unrouted(c.req.method, path);
      return stripeError(newId("req"), 404, unrecognized(c.req.method, path));
    });
    return app;
  }

  async #serve(c: Context, endpoint: Endpoint): Promise<Response> {
    const started = Date.now();
    const requestId = newId("req");
    const method = c.req.method;
    const url = new URL(c.req.url);
    const name = `${endpoint.method} ${endpoint.pattern}`;
    const key = method === "POST" ? (c.req.header("idempotency-key") ?? null) : null;
    const record: RequestRecord = {
      id: requestId,
      at: started,
      method,
      path: url.pathname,
      endpoint: name,
      idempotency_key: key,
      params: null,
      status: 0,
      replayed: false,
      fault: null,
      refused_by_spec: false,
      duration_ms: 0,
    };
    this.stats.requests++;
    this.stats.calls[name] = (this.stats.calls[name] ?? 0) + 1;
    if (key !== null) this.stats.keys[key] = (this.stats.keys[key] ?? 0) + 1;
    // Logged on arrival with status 0, completed in place: tests can see a request in flight.
    if (this.log.length >= LOG_LIMIT) this.log.shift();
    this.log.push(record);

    const finish = (res: Response, extra: Partial<RequestRecord> = {}): Response => {
      Object.assign(record, extra, { status: res.status, duration_ms: Date.now() - started });
      if (key !== null && (res.status === 409 || res.status === 429 || res.status >= 500)) this.keys.noteRetryable(key);
      this.#print?.(
        `${method} ${url.pathname}${url.search} → ${record.status} ${record.duration_ms}ms` +
          (key ? ` key=${key}` : "") +
          (record.replayed ? " replayed" : "") +
          (record.fault ? ` fault=${record.fault}` : "") +
          (record.refused_by_spec ? ` refused by Stripe's spec: ${record.status === 404 ? "unknown URL" : "parameters"}` : ""),
      );
      return res;
    };

    const apiKey = apiKeyOf(c.req.header("authorization") ?? "");
    const publishable = PUBLISHABLE_KEY_PATTERN.test(apiKey);
    if (publishable && endpoint.publishable !== true) {
      return finish(
        stripeError(requestId, 401, {
          type: "invalid_request_error",
          message:
            "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.",
        }),
      );
    }
    if (!publishable && !KEY_PATTERN.test(apiKey)) {
      return finish(
        stripeError(requestId, 401, {
          type: "invalid_request_error",
          message: apiKey ? `Invalid API Key provided: ${apiKey.slice(0, 8)}***` : "You did not provide an API key.",
        }),
      );
    }
    const livemode = apiKey.includes("_live_");
    if (key !== null && key.length > 255) {
      return finish(stripeError(requestId, 400, { type: "invalid_request_error", message: "Idempotency-Key must be at most 255 characters long." }));
    }

    if (this.#overRateLimit()) {
      this.stats.rate_limited++;
      return finish(
        stripeError(requestId, 429, {
          type: "invalid_request_error",
          code: "rate_limit",
          message: "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        }),
        { fault: "rate_limited" },
      );
    }

    const early = this.faults.take(["rate_limit", "in_use"], method, url.pathname, key);
    if (early) {
      this.stats.faults_fired++;
      if (early.kind === "rate_limit") {
        const headers: Record<string, string> = early.should_retry === null ? {} : { "stripe-should-retry": String(early.should_retry) };
        return finish(
          stripeError(requestId, 429, { type: "invalid_request_error", code: "rate_limit", message: "Too many requests hit the API too quickly." }, headers),
          { fault: early.kind },
        );
      }
      return finish(stripeError(requestId, 409, { type: "invalid_request_error", code: "idempotency_key_in_use", message: inUseMessage(key) }), {
        fault: early.kind,
      });
    }

    let form: FormRecord;
    try {
      form = decodeForm((method === "POST" ? new URLSearchParams(await c.req.text()) : url.searchParams).entries());
    } catch (err) {
      if (err instanceof StripeFailure) return finish(stripeError(requestId, err.status, err.body));
      throw err;
    }
    record.params = form;
    const fingerprint = canonical(form);

    if (key !== null) {
      const found = this.keys.lookup(key, name + " " + url.pathname, fingerprint);
      if (found.kind === "replay") {
        await this.#delay(method, url.pathname, c.req.raw.signal);
        this.stats.replays++;
        // Only rules with `replays: true` reach a replay; what they answer is never saved (the
        // key already holds the original result, which the next clean retry gets).
        const late = this.faults.take(LATE_FAULTS, method, url.pathname, key, true);
        if (late) {
          this.stats.faults_fired++;
          const extra = { replayed: true, fault: late.kind };
          if (late.kind === "hang") await this.#hang(c.req.raw.signal);
          if (late.kind === "drop" || late.kind === "hang") return finish(dropResponse(), extra);
          const refused = late.kind === "error_400" ? REFUSED_400 : FAILED_500;
          return finish(toResponse(saved(requestId, refused.status, refused.body), key), extra);
        }
        return finish(replay(requestId, key, found.result), { replayed: true });
      }
      if (found.kind === "in_use") {
        return finish(stripeError(requestId, 409, { type: "invalid_request_error", code: "idempotency_key_in_use", message: inUseMessage(key) }));
      }
      if (found.kind === "other_params") {
        return finish(stripeError(requestId, 400, { type: "idempotency_error", message: idempotencyErrorMessage(found.kind, key) }));
      }
      if (found.kind === "other_endpoint") {
        const message = idempotencyErrorMessage(found.kind, key, { now: name + " " + url.pathname, first: found.first });
        return finish(stripeError(requestId, 400, { type: "idempotency_error", message }));
      }
    }

    // Stripe's own spec first: what it refuses, Stripe refuses, whatever the endpoint models.
    const spec = url.pathname.startsWith("/v1/") ? this.spec.request(method, url.pathname, form) : { op: null, refused: null };
    if (spec.refused) return finish(stripeError(requestId, spec.refused.status, spec.refused.error), { refused_by_spec: true });

    let params;
    try {
      params = validate(form, endpoint.spec, endpoint.required);
      endpoint.refine?.(params);
    } catch (err) {
      if (err instanceof StripeFailure) return finish(stripeError(requestId, err.status, err.body));
      throw err;
    }

    if (key !== null) this.keys.claim(key, name + " " + url.pathname, fingerprint);
    await this.#delay(method, url.pathname, c.req.raw.signal);

    const fault = this.faults.take(LATE_FAULTS, method, url.pathname, key);
    if (fault) this.stats.faults_fired++;
    const run = (): SavedResult => {
      if (fault?.kind === "error_500") {
        // With `apply`, the write happens and the answer is still a 500: Stripe's docs say a 500
        // may or may not have applied the request.
        if (fault.apply) execute();
        return saved(requestId, FAILED_500.status, FAILED_500.body);
      }
      // A permanent refusal found while running: nothing applied, saved like any such 4xx.
      if (fault?.kind === "error_400") return saved(requestId, REFUSED_400.status, REFUSED_400.body);
      return execute();
    };
    const execute = (): SavedResult => {
      try {
        const body = endpoint.run({
          params,
          path: c.req.param(),
          store: this.store,
          webhooks: this.webhooks,
          request: { id: requestId, idempotency_key: key },
          livemode,
          publishable,
          url: url.pathname,
          origin: url.origin,
          expand: expandOf(form.expand),
        });
        this.spec.answer(spec.op, body);
        return saved(requestId, 200, body);
      } catch (err) {
        if (err instanceof StripeFailure) return saved(requestId, err.status, { error: err.body });
        return saved(requestId, 500, { error: { type: "api_error", message: err instanceof Error ? err.message : "internal error" } });
      }
    };

    if (fault?.kind === "hang") {
      const applied = fault.apply ? run() : null;
      if (key !== null && applied && !(fault.saved === false)) this.keys.save(key, applied);
      await this.#hang(c.req.raw.signal);
      // A claim with nothing saved must not outlive the request (release keeps saved results).
      if (key !== null) this.keys.release(key);
      return finish(dropResponse(), { fault: fault.kind });
    }

    const result = run();
    const keep = !((fault?.kind === "error_500" || fault?.kind === "error_400") && !fault.saved);
    if (key !== null) {
      if (keep) this.keys.save(key, result);
      else this.keys.release(key);
    }
    if (fault?.kind === "drop") return finish(dropResponse(), { fault: fault.kind });
    return finish(toResponse(result, key), { fault: fault?.kind ?? null });
  }

  /** Requests admitted in the current one-second window, as Stripe counts its per-second limit. */
  #window = { start: 0, count: 0 };

  #overRateLimit(): boolean {
    const limit = this.options.rateLimitPerSecond;
    if (limit <= 0) return false;
    const now = Date.now();
    if (now - this.#window.start >= 1000) this.#window = { start: now, count: 0 };
    if (this.#window.count >= limit) return true;
    this.#window.count++;
    return false;
  }

  async #delay(method: string, path: string, signal: AbortSignal): Promise<void> {
    const ms = this.faults.latencyFor(method, path);
    if (ms > 0) await sleep(ms, signal);
  }

  async #hang(signal: AbortSignal): Promise<void> {
    await sleep(this.options.hangMs, signal);
  }
}

/** `expand[]=a&expand[]=b` (or `expand[0]=a`), as decoded; anything else expands nothing. */
function expandOf(value: FormValue | undefined): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  if (value !== undefined && typeof value === "object") return Object.values(value).filter((v): v is string => typeof v === "string");
  return typeof value === "string" ? [value] : [];
}

/** Stripe takes the secret key as a Bearer token or as the Basic-auth user name (`curl -u sk_test_...:`). */
function apiKeyOf(authorization: string): string {
  if (authorization.startsWith("Bearer ")) return authorization.slice(7).trim();
  if (authorization.startsWith("Basic ")) {
    try {
      return (atob(authorization.slice(6).trim()).split(":")[0] ?? "").trim();
    } catch {
      return "";
    }
  }
  return "";
}

function emptyStats(): Stats {
  return { requests: 0, calls: {}, keys: {}, replays: 0, faults_fired: 0, rate_limited: 0 };
}

/** Resolves after `ms`, or as soon as `signal` aborts (the caller went away). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

function inUseMessage(key: string | null): string {
  return `There is currently another in-progress request using this idempotent key (that probably means you submitted twice, and the other request is still going through): '${key ?? ""}'. Please try again later.`;
}

function saved(requestId: string, status: number, body: unknown): SavedResult {
  return { status, body: JSON.stringify(body, null, 2), requestId };
}

function toResponse(result: SavedResult, key: string | null): Response {
  const headers: Record<string, string> = { "content-type": "application/json", "request-id": result.requestId };
  if (key !== null) headers["idempotency-key"] = key;
  return new Response(result.body, { status: result.status, headers });
}

function replay(requestId: string, key: string, result: SavedResult): Response {
  const res = toResponse({ ...result, requestId }, key);
  res.headers.set("idempotent-replayed", "true");
  res.headers.set("original-request", result.requestId);
  return res;
}

function stripeError(requestId: string, status: number, body: StripeErrorBody, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: body }, null, 2), {
    status,
    headers: { "content-type": "application/json", "request-id": requestId, ...headers },
  });
}

function dropResponse(): Response {
  return new Response(null, { status: 599, headers: { [DROP_HEADER]: "1" } });
}

export type { FaultRule };
