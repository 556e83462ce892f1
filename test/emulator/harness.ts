// Shared set-up for the emulator's own tests: one emulator per test file on a free 127.0.0.1
// port (started in beforeAll, always closed in afterAll), a `stripe` client pointed at it, and
// small helpers for the control API (JSON) and for raw Stripe API calls (to read headers).

import Stripe from "stripe";
import { afterAll, beforeAll } from "vitest";
import type { Emulator, EmulatorOptions, RequestRecord, Stats } from "./emulator.js";
import type { StripeErrorBody } from "./errors.js";
import { offSpec } from "./openapi.js";
import { startEmulator, type RunningEmulator } from "./server.js";
import type { WriteCounts } from "./store.js";

export const API_KEY = "sk_test_emulator";

/** What `GET /_emulator/stats` answers. */
export interface StatsView extends Stats {
  writes: WriteCounts;
  idempotency_keys: number;
}

/** A raw Stripe API answer. */
export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

export interface ApiOptions {
  /** Form parameters: a body for POST, the query string for GET. */
  params?: Record<string, string> | [string, string][];
  idempotencyKey?: string;
  /** The whole Authorization header; null sends none. Default: Bearer API_KEY. */
  authorization?: string | null;
}

export type HttpMethod = "GET" | "POST" | "DELETE";

export interface EmulatorHarness {
  readonly url: string;
  readonly port: number;
  readonly emulator: Emulator;
  /** A client with maxNetworkRetries 0, as the brief for these tests asks. */
  readonly stripe: Stripe;
  /** Another client on the same emulator, with other settings. */
  client(config?: Stripe.StripeConfig, apiKey?: string): Stripe;
  /** Calls the control API and returns its JSON; throws on a non-2xx answer. */
  control<T = Record<string, unknown>>(method: HttpMethod, path: string, body?: unknown): Promise<T>;
  /** Calls the control API and returns status and JSON, whatever the status. */
  controlRaw(method: HttpMethod, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A raw Stripe API request (form-encoded), for header and status checks. */
  api<T = Record<string, unknown>>(method: HttpMethod, path: string, options?: ApiOptions): Promise<ApiAnswer<T>>;
  stats(): Promise<StatsView>;
  requests(query?: Record<string, string>): Promise<RequestRecord[]>;
}

/** Starts an emulator for the current test file; everything is available once beforeAll ran. */
export function useEmulator(options: EmulatorOptions = {}): EmulatorHarness {
  let running: RunningEmulator | undefined;
  let stripe: Stripe | undefined;

  const live = (): RunningEmulator => {
    if (!running) throw new Error("the emulator is not running (use the harness inside tests)");
    return running;
  };

  beforeAll(async () => {
    running = await startEmulator(0, options);
    stripe = makeClient(running.port, {}, API_KEY);
  });
  afterAll(async () => {
    // Every answer and event this file's tests received was checked against Stripe's spec.
    const violations = running ? offSpec(running.emulator.spec.summary()) : [];
    await running?.close();
    running = undefined;
    if (violations.length > 0) throw new Error(violations.join("\n"));
  });

  const controlRaw = async (method: HttpMethod, path: string, body?: unknown) => {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    const res = await fetch(`${live().url}/_emulator${path}`, init);
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };

  const harness: EmulatorHarness = {
    get url() {
      return live().url;
    },
    get port() {
      return live().port;
    },
    get emulator() {
      return live().emulator;
    },
    get stripe() {
      if (!stripe) throw new Error("the emulator is not running (use the harness inside tests)");
      return stripe;
    },
    client: (config = {}, apiKey = API_KEY) => makeClient(live().port, config, apiKey),
    controlRaw,
    async control<T>(method: HttpMethod, path: string, body?: unknown): Promise<T> {
      const { status, body: json } = await controlRaw(method, path, body);
      if (status < 200 || status > 299) throw new Error(`${method} /_emulator${path} → ${status} ${JSON.stringify(json)}`);
      return json as T;
    },
    async api<T>(method: HttpMethod, path: string, opts: ApiOptions = {}): Promise<ApiAnswer<T>> {
      const headers: Record<string, string> = {};
      const authorization = opts.authorization === undefined ? `Bearer ${API_KEY}` : opts.authorization;
      if (authorization !== null) headers.authorization = authorization;
      if (opts.idempotencyKey !== undefined) headers["idempotency-key"] = opts.idempotencyKey;
      const form = new URLSearchParams(opts.params ?? []).toString();
      let target = `${live().url}${path}`;
      const init: RequestInit = { method, headers };
      if (method === "POST") {
        headers["content-type"] = "application/x-www-form-urlencoded";
        init.body = form;
      } else if (form) {
        target += `?${form}`;
      }
      const res = await fetch(target, init);
      const text = await res.text();
      return { status: res.status, headers: res.headers, text, body: (text ? JSON.parse(text) : {}) as T };
    },
    stats: () => harness.control<StatsView>("GET", "/stats"),
    async requests(query = {}) {
      const qs = new URLSearchParams(query).toString();
      return (await harness.control<{ data: RequestRecord[] }>("GET", `/requests${qs ? `?${qs}` : ""}`)).data;
    },
  };
  return harness;
}

function makeClient(port: number, config: Stripe.StripeConfig, apiKey: string): Stripe {
  return new Stripe(apiKey, {
    host: "127.0.0.1",
    port,
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: 0,
    ...config,
  });
}

/** The `error` object of a Stripe error answer. */
export function errorOf(answer: ApiAnswer<unknown>): StripeErrorBody {
  const body = answer.body as { error?: StripeErrorBody };
  if (!body.error) throw new Error(`not an error answer: ${answer.status} ${answer.text}`);
  return body.error;
}

/** Awaits a promise that must reject and returns the rejection. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

/** Awaits a Stripe client call that must fail and returns the StripeError. */
export async function stripeErrorOf(promise: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  const err = await rejectionOf(promise);
  if (!(err instanceof Stripe.errors.StripeError)) throw new Error(`expected a StripeError, got ${String(err)}`);
  return err;
}

/** Polls `probe` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 3000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A fresh unique string for keys and emails. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
