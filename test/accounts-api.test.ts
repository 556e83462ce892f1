// The seller's server-to-server API (/v1/accounts/{account_id}/…): the service token, bad input
// refused before the wallet is asked (so never kept under its Idempotency-Key) with nothing
// changed, the 405 guard, no CORS; then spending itself: debits, holds, captures, releases,
// replays, reused keys, 402s, another account's hold, the ledger and its cursor. The mapping of
// every wallet answer to HTTP is one pure function, tested on its own in spend-answer.test.ts.
//
// The wallet behind these routes is the account object's (src/wallet); tests under "spending"
// and every "nothing changed" check read it through GET /v1/accounts/{id}/balance and
// /transactions.

import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildApp } from "../src/app.js";
import { TEST_BINDINGS } from "./bindings.js";
import {
  authed,
  call,
  confirm,
  createPaymentIntent,
  json,
  newAccountId,
  paidTopUp,
  SERVICE_TOKEN,
  seller,
  stripeRequests,
  tokenFor,
  topUpMetadata,
} from "./helpers.js";

const ROTATED_TOKEN = TEST_BINDINGS.SERVICE_TOKEN.split(",")[1] ?? "";

interface ErrorBody {
  error: { code: string; message: string; available?: number; currency?: string; hold_status?: string };
}

interface Balance {
  available: number;
  held: number;
  currency: string;
}

interface Debit {
  id: string;
  account_id: string;
  amount: number;
  currency: string;
  balance: Balance;
  created: string;
}

interface Hold {
  id: string;
  account_id: string;
  amount: number;
  currency: string;
  status: string;
  expires_at: string;
  balance: Balance;
  created: string;
}

interface Line {
  id: string;
  kind: string;
  amount: number;
  held: number;
  currency: string;
  hold_id: string | null;
  description: string | null;
  metadata: Record<string, string> | null;
  created: string;
}

interface Page {
  data: Line[];
  has_more: boolean;
  next_cursor: string | null;
}

afterEach(() => {
  vi.restoreAllMocks();
});

const base = (accountId: string) => `/v1/accounts/${encodeURIComponent(accountId)}`;

let keys = 0;
/** A fresh Idempotency-Key. */
const newKey = (label = "k") => `${label}-${Date.now().toString(36)}-${++keys}-${Math.random().toString(36).slice(2, 8)}`;

/** A JSON POST to the seller's API with an Idempotency-Key (a fresh one unless given). */
function post(path: string, body: unknown, key: string = newKey(), headers: Record<string, string> = {}): Promise<Response> {
  return seller(path, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key, ...headers }, body: JSON.stringify(body) });
}

const debit = (accountId: string, body: unknown, key?: string) => post(`${base(accountId)}/debits`, body, key);
const hold = (accountId: string, body: unknown, key?: string) => post(`${base(accountId)}/holds`, body, key);
const capture = (accountId: string, holdId: string, body: unknown = {}, key?: string) => post(`${base(accountId)}/holds/${holdId}/capture`, body, key);
const release = (accountId: string, holdId: string, key?: string) => post(`${base(accountId)}/holds/${holdId}/release`, {}, key);

/** An account with a customer and a confirmed top-up of `amount` usd: credit in its wallet. */
async function funded(amount = 5000) {
  const f = await paidTopUp(amount);
  const res = await confirm(f.token, f.pi.id);
  expect(res.status).toBe(200);
  return f;
}

/** Another confirmed top-up for the same account. */
async function topUpMore(f: Awaited<ReturnType<typeof funded>>, amount: number): Promise<void> {
  const pi = await createPaymentIntent({ customer: f.customer.id, amount, metadata: topUpMetadata(f.accountId) });
  expect((await confirm(f.token, pi.id)).status).toBe(200);
}

async function balanceOf(accountId: string): Promise<Balance> {
  const res = await seller(`${base(accountId)}/balance`);
  expect(res.status).toBe(200);
  const { available, held, currency } = await json<Balance>(res);
  return { available, held, currency };
}

async function linesOf(accountId: string, query = "limit=100"): Promise<Page> {
  const res = await seller(`${base(accountId)}/transactions?${query}`);
  expect(res.status).toBe(200);
  return json<Page>(res);
}

/** What a bad request must not change: the wallet's figures and ledger, and Stripe's ledger writes. */
async function snapshot(f: { accountId: string; customer: { id: string } }) {
  const [b, t, writes] = await Promise.all([
    seller(`${base(f.accountId)}/balance`),
    seller(`${base(f.accountId)}/transactions?limit=100`),
    stripeRequests({ path: `/v1/customers/${f.customer.id}/balance_transactions`, method: "POST" }),
  ]);
  const balance = await json<Balance & { stripe_synced_at?: unknown }>(b);
  // When Stripe last matched the wallet may move on its own (a sync); the figures may not.
  delete balance.stripe_synced_at;
  return { balanceStatus: b.status, balance, ledgerStatus: t.status, ledger: await json<unknown>(t), stripeWrites: writes.length };
}

const isoTime = (value: string) => new Date(value).toISOString() === value;

describe("auth: Authorization: Bearer <SERVICE_TOKEN>", () => {
  /** A debit with an invalid body: 400 proves the token was accepted, 401 that it was not. */
  async function probe(authorization: string | null, e?: object): Promise<Response> {
    const init: RequestInit = {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": newKey(), ...(authorization === null ? {} : { authorization }) },
      body: "{}",
    };
    const path = `${base(newAccountId())}/debits`;
    if (e) return buildApp().fetch(new Request(`https://billing.test${path}`, init), e, createExecutionContext());
    return call(path, init);
  }

  async function expectRefused(res: Response, message?: RegExp): Promise<void> {
    expect(res.status).toBe(401);
    const body = await json<ErrorBody>(res);
    expect(body.error.code).toBe("unauthenticated");
    if (message) expect(body.error.message).toMatch(message);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="accounts"');
  }

  it.each([
    ["the current token", `Bearer ${SERVICE_TOKEN}`],
    ["the second (rotated) token", `Bearer ${ROTATED_TOKEN}`],
    ["the scheme in lower case", `bearer ${SERVICE_TOKEN}`],
  ])("accepts %s", async (_, authorization) => {
    const res = await probe(authorization);
    expect(res.status).toBe(400);
    expect((await json<ErrorBody>(res)).error.code).toBe("invalid_request");
  });

  it.each([
    ["no header", async () => null, /missing/i],
    ["Basic credentials carrying the token", async () => `Basic ${btoa(`seller:${SERVICE_TOKEN}`)}`, /Bearer scheme/],
    ["the token with no scheme", async () => SERVICE_TOKEN, /Bearer scheme/],
    ["the Bearer scheme with no token", async () => "Bearer", /no token/],
    ["a browser's JWT for the same account", async () => `Bearer ${await tokenFor(newAccountId())}`, /invalid/],
    ["the OPERATOR_TOKEN", async () => `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}`, /invalid/],
    ["a wrong token", async () => "Bearer svc_wrong_token", /invalid/],
    ["the token with a suffix", async () => `Bearer ${SERVICE_TOKEN}x`, /invalid/],
    ["a prefix of the token", async () => `Bearer ${SERVICE_TOKEN.slice(0, -1)}`, /invalid/],
    ["the whole comma-separated setting", async () => `Bearer ${TEST_BINDINGS.SERVICE_TOKEN}`, /malformed/],
    ["two tokens", async () => `Bearer ${SERVICE_TOKEN} ${ROTATED_TOKEN}`, /malformed/],
  ])("refuses %s: 401 unauthenticated with WWW-Authenticate", async (_, header, message) => {
    await expectRefused(await probe(await header()), message);
  });

  it("a browser's JWT is refused even on its own account's routes", async () => {
    const accountId = newAccountId();
    const jwt = await tokenFor(accountId);
    await expectRefused(await authed(jwt, `${base(accountId)}/balance`));
    await expectRefused(await authed(jwt, `${base(accountId)}/transactions`));
    await expectRefused(
      await authed(jwt, `${base(accountId)}/debits`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": newKey() },
        body: JSON.stringify({ amount: 100, currency: "usd" }),
      }),
    );
  });

  it("auth is checked first: no token and no Idempotency-Key and a bad body is 401, on every route", async () => {
    const a = base(newAccountId());
    const hold = "hold_0123456789abcdef01234567";
    for (const [method, path] of [
      ["POST", `${a}/debits`],
      ["POST", `${a}/holds`],
      ["POST", `${a}/holds/${hold}/capture`],
      ["POST", `${a}/holds/${hold}/release`],
      ["GET", `${a}/balance`],
      ["GET", `${a}/transactions?limit=0`],
    ] as const) {
      const res = await call(path, { method, ...(method === "POST" ? { headers: { "content-type": "text/plain" }, body: "x" } : {}) });
      await expectRefused(res);
    }
  });

  it.each([
    ["unset", undefined],
    ["empty", ""],
    ["only commas and spaces", " , ,"],
  ])("SERVICE_TOKEN %s: every request is 401, and the log says so once", async (_, value) => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
    const e = { ...env, SERVICE_TOKEN: value };
    for (const token of [SERVICE_TOKEN, ROTATED_TOKEN, "", "anything"]) {
      await expectRefused(await probe(token === "" ? null : `Bearer ${token}`, e), /not configured/);
    }
    // Once per isolate: at most one line whichever test got here first, and none of them a token.
    expect(lines.filter((l) => l.includes('"service_token_missing"')).length).toBeLessThanOrEqual(1);
    expect(lines.join("\n")).not.toContain(SERVICE_TOKEN);
  });

  it.each([SERVICE_TOKEN, ROTATED_TOKEN])("the operator routes refuse a service token (%s)", async (token) => {
    for (const [method, path] of [
      ["GET", "/operator/credits"],
      ["GET", "/operator/events"],
      ["POST", "/operator/credits/pi_ServiceProbe123/retry"],
    ] as const) {
      const res = await call(path, { method, headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(401);
      expect((await json<ErrorBody>(res)).error.code).toBe("unauthenticated");
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="operator"');
    }
  });

  it("the browser routes refuse a service token", async () => {
    const res = await authed(SERVICE_TOKEN, "/billing/balance");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="billing"');
  });
});

describe("a wrong method is 405 with Allow; no CORS on the seller's routes", () => {
  const a = "/v1/accounts/acct_405probe";
  const h = "hold_0123456789abcdef01234567";
  it.each([
    [`${a}/debits`, "DELETE", ["POST"]],
    [`${a}/debits`, "GET", ["POST"]],
    [`${a}/holds`, "PUT", ["POST"]],
    [`${a}/holds/${h}/capture`, "GET", ["POST"]],
    [`${a}/holds/${h}/release`, "DELETE", ["POST"]],
    [`${a}/balance`, "POST", ["GET", "HEAD"]],
    [`${a}/transactions`, "DELETE", ["GET", "HEAD"]],
    [`${a}/debits`, "OPTIONS", ["POST"]],
  ])("%s %s → 405, Allow: %s, before auth", async (path, method, allowed) => {
    const res = await call(path, {
      method,
      headers: { origin: TEST_BINDINGS.ALLOWED_ORIGINS, "access-control-request-method": "POST" },
      ...(method === "GET" || method === "HEAD" || method === "OPTIONS" ? {} : { body: "x" }),
    });
    expect(res.status).toBe(405);
    expect((await json<ErrorBody>(res)).error.code).toBe("method_not_allowed");
    expect((res.headers.get("allow") ?? "").split(", ").sort()).toEqual([...allowed].sort());
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("an answer to an allowed origin carries no CORS grant", async () => {
    const res = await seller(`${base(newAccountId())}/balance`, { headers: { origin: TEST_BINDINGS.ALLOWED_ORIGINS } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("an unknown path under /v1/accounts is 404 not_found (with a valid token)", async () => {
    const res = await seller(`${base(newAccountId())}/refunds`, { method: "POST" });
    expect(res.status).toBe(404);
    expect((await json<ErrorBody>(res)).error.code).toBe("not_found");
  });
});

type Fixture = Awaited<ReturnType<typeof funded>>;

interface BadCase {
  name: string;
  status: number;
  code: string;
  /** What the message must name (the field). */
  message?: RegExp;
  /** Path (under the fixture's account unless absolute) and request. */
  request: (f: Fixture, key: string) => [string, RequestInit];
  /** The wallet answered (a 404 for an unknown hold): its answer is kept under the key. */
  kept?: boolean;
}

const WELL_FORMED_HOLD = "hold_0123456789abcdef01234567";

function jsonRequest(body: string, key: string | null, contentType: string | null = "application/json", extra: Record<string, string> = {}): RequestInit {
  return {
    method: "POST",
    headers: { ...(contentType === null ? {} : { "content-type": contentType }), ...(key === null ? {} : { "idempotency-key": key }), ...extra },
    body,
  };
}

/** A 400 for a body sent to one of the spending routes (`path` after the account's base). */
const badBody =
  (label: string, path: string) =>
  (body: string, message?: RegExp) =>
  (name: string): BadCase => ({
    name: `${label}: ${name}`,
    status: 400,
    code: "invalid_request",
    ...(message ? { message } : {}),
    request: (f, key) => [`${base(f.accountId)}${path}`, jsonRequest(body, key)],
  });

const debitWith = (body: unknown, message?: RegExp) => badBody("debit", "/debits")(JSON.stringify(body), message);
const holdWith = (body: unknown, message?: RegExp) => badBody("hold", "/holds")(JSON.stringify(body), message);
const captureWith = badBody("capture", `/holds/${WELL_FORMED_HOLD}/capture`);

const manyKeys = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, "v"]));

const badCases: BadCase[] = [
  debitWith({ amount: -500, currency: "usd" }, /^amount: /)("a negative amount"),
  debitWith({ amount: 0, currency: "usd" }, /^amount: /)("a zero amount"),
  debitWith({ amount: 1.5, currency: "usd" }, /^amount: /)("a fractional amount"),
  debitWith({ amount: "500", currency: "usd" }, /^amount: /)("a string amount"),
  debitWith({ amount: 1e20, currency: "usd" }, /^amount: /)("an amount of 1e20"),
  debitWith({ amount: 100_000_000, currency: "usd" }, /^amount: /)("an amount over Stripe's largest (100,000,000)"),
  debitWith({ amount: null, currency: "usd" }, /^amount: /)("a null amount"),
  debitWith({ currency: "usd" }, /^amount: /)("no amount"),
  debitWith({ amount: 500, currency: "us" }, /^currency: /)("a two-letter currency"),
  debitWith({ amount: 500, currency: "USD" }, /^currency: /)("an upper-case currency"),
  debitWith({ amount: 500, currency: "us1" }, /^currency: /)("a currency with a digit"),
  debitWith({ amount: 500 }, /^currency: /)("no currency"),
  debitWith({ amount: 500, currency: "usd", account_id: "acct_other" }, /account_id/)("an unknown field"),
  debitWith({ amount: 500, currency: "usd", metadata: { order: 42 } }, /^metadata\.order: /)("metadata with a number value"),
  debitWith({ amount: 500, currency: "usd", metadata: manyKeys }, /^metadata: .*20/)("21 metadata keys"),
  debitWith({ amount: 500, currency: "usd", metadata: { ["k".repeat(41)]: "v" } }, /^metadata/)("a 41-character metadata key"),
  debitWith({ amount: 500, currency: "usd", metadata: { order: "x".repeat(501) } }, /^metadata\.order: /)("a 501-character metadata value"),
  debitWith({ amount: 500, currency: "usd", metadata: ["a"] }, /^metadata: /)("metadata that is an array"),
  debitWith({ amount: 500, currency: "usd", description: "d".repeat(501) }, /^description: /)("a 501-character description"),
  debitWith({ amount: 500, currency: "usd", description: 7 }, /^description: /)("a number description"),
  debitWith([500, "usd"])("a JSON array"),
  {
    name: "debit: metadata with a __proto__ key",
    status: 400,
    code: "invalid_request",
    message: /__proto__/,
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest('{"amount": 500, "currency": "usd", "metadata": {"__proto__": "x"}}', key)],
  },
  {
    name: "debit: no Idempotency-Key",
    status: 400,
    code: "invalid_request",
    message: /^Idempotency-Key header is required$/,
    request: (f) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), null)],
  },
  {
    name: "debit: an empty Idempotency-Key",
    status: 400,
    code: "invalid_request",
    message: /^Idempotency-Key header is required$/,
    request: (f) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), "")],
  },
  {
    name: "debit: a 256-character Idempotency-Key",
    status: 400,
    code: "invalid_request",
    message: /^Idempotency-Key: .*255/,
    request: (f) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), "k".repeat(256))],
  },
  {
    name: "debit: an Idempotency-Key with a tab",
    status: 400,
    code: "invalid_request",
    message: /^Idempotency-Key: .*printable/,
    request: (f) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), "order\t42")],
  },
  {
    name: "debit: malformed JSON",
    status: 400,
    code: "invalid_request",
    message: /not valid JSON/,
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest('{"amount": 500, "currency": ', key)],
  },
  {
    name: "debit: an empty body",
    status: 400,
    code: "invalid_request",
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest("", key)],
  },
  {
    name: "debit: text/plain",
    status: 415,
    code: "unsupported_media_type",
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), key, "text/plain")],
  },
  {
    name: "debit: a form body",
    status: 415,
    code: "unsupported_media_type",
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest("amount=500&currency=usd", key, "application/x-www-form-urlencoded")],
  },
  {
    name: "debit: no content-type",
    status: 415,
    code: "unsupported_media_type",
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), key, null)],
  },
  {
    name: "debit: a 9 KiB body",
    status: 413,
    code: "payload_too_large",
    request: (f, key) => [`${base(f.accountId)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd", description: "x".repeat(9 * 1024) }), key)],
  },
  {
    name: "debit: an account id with a space",
    status: 400,
    code: "invalid_request",
    message: /^account_id: /,
    request: (f, key) => [`${base(`${f.accountId} x`)}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), key)],
  },
  {
    name: "debit: a 129-character account id",
    status: 400,
    code: "invalid_request",
    message: /^account_id: /,
    request: (f, key) => [`${base("a".repeat(129))}/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), key)],
  },
  {
    name: "debit: an account id with an encoded slash",
    status: 400,
    code: "invalid_request",
    message: /^account_id: /,
    request: (f, key) => [`/v1/accounts/${f.accountId}%2F..%2Fother/debits`, jsonRequest(JSON.stringify({ amount: 500, currency: "usd" }), key)],
  },
  holdWith({ amount: 500, currency: "usd", expires_in_seconds: 0 }, /^expires_in_seconds: /)("expires_in_seconds 0"),
  holdWith({ amount: 500, currency: "usd", expires_in_seconds: 86_401 }, /^expires_in_seconds: /)("expires_in_seconds 86401"),
  holdWith({ amount: 500, currency: "usd", expires_in_seconds: 1.5 }, /^expires_in_seconds: /)("expires_in_seconds 1.5"),
  holdWith({ amount: 500, currency: "usd", expires_in_seconds: "600" }, /^expires_in_seconds: /)("expires_in_seconds as a string"),
  holdWith({ amount: 0, currency: "usd" }, /^amount: /)("a zero amount"),
  holdWith({ amount: 500, currency: "usd", metadata: { a: "b" } }, /metadata/)("metadata (holds take none)"),
  captureWith(JSON.stringify({ amount: 0 }), /^amount: /)("amount 0"),
  captureWith(JSON.stringify({ amount: -100 }), /^amount: /)("a negative amount"),
  captureWith(JSON.stringify({ amount: 100_000_000 }), /^amount: /)("an amount over Stripe's largest"),
  captureWith(JSON.stringify({ amount: 100, currency: "usd" }), /currency/)("an unknown field"),
  captureWith("null")("a JSON null body"),
  {
    name: "capture: text/plain with a body",
    status: 415,
    code: "unsupported_media_type",
    request: (f, key) => [`${base(f.accountId)}/holds/${WELL_FORMED_HOLD}/capture`, jsonRequest("{}", key, "text/plain")],
  },
  {
    name: "capture: a body with no content-type",
    status: 415,
    code: "unsupported_media_type",
    request: (f, key) => [`${base(f.accountId)}/holds/${WELL_FORMED_HOLD}/capture`, jsonRequest("{}", key, null)],
  },
  {
    name: "capture: no Idempotency-Key",
    status: 400,
    code: "invalid_request",
    message: /^Idempotency-Key header is required$/,
    request: (f) => [`${base(f.accountId)}/holds/${WELL_FORMED_HOLD}/capture`, jsonRequest("", null, null)],
  },
  {
    name: "release: a body with a field",
    status: 400,
    code: "invalid_request",
    message: /amount/,
    request: (f, key) => [`${base(f.accountId)}/holds/${WELL_FORMED_HOLD}/release`, jsonRequest(JSON.stringify({ amount: 100 }), key)],
  },
  {
    name: "capture: a malformed hold id (too short)",
    status: 404,
    code: "hold_not_found",
    request: (f, key) => [`${base(f.accountId)}/holds/hold_x/capture`, jsonRequest("{}", key)],
  },
  {
    name: "release: a hold id of another kind",
    status: 404,
    code: "hold_not_found",
    request: (f, key) => [`${base(f.accountId)}/holds/wdb_0123456789abcdef01234567/release`, jsonRequest("{}", key)],
  },
  {
    name: "release: a hold id with a path traversal",
    status: 404,
    code: "hold_not_found",
    request: (f, key) => [`${base(f.accountId)}/holds/hold_01234567%2F..%2F..%2Fdebits/release`, jsonRequest("{}", key)],
  },
  {
    name: "capture: an unknown (well-formed) hold",
    status: 404,
    code: "hold_not_found",
    kept: true,
    request: (f, key) => [`${base(f.accountId)}/holds/${WELL_FORMED_HOLD}/capture`, jsonRequest("{}", key)],
  },
  {
    name: "release: an unknown (well-formed) hold",
    status: 404,
    code: "hold_not_found",
    kept: true,
    request: (f, key) => [`${base(f.accountId)}/holds/${WELL_FORMED_HOLD}/release`, jsonRequest("", key, null)],
  },
  {
    name: "balance: a malformed account id",
    status: 400,
    code: "invalid_request",
    message: /^account_id: /,
    request: () => [`${base("bad id")}/balance`, { method: "GET" }],
  },
  {
    name: "transactions: limit=0",
    status: 400,
    code: "invalid_request",
    message: /^limit: /,
    request: (f) => [`${base(f.accountId)}/transactions?limit=0`, { method: "GET" }],
  },
  {
    name: "transactions: a cursor that is not an id",
    status: 400,
    code: "invalid_request",
    message: /^cursor: /,
    request: (f) => [`${base(f.accountId)}/transactions?cursor=..%2F..%2Fx`, { method: "GET" }],
  },
  {
    name: "transactions: an unknown cursor",
    status: 400,
    code: "invalid_request",
    message: /^cursor: /,
    request: (f) => [`${base(f.accountId)}/transactions?cursor=wle_doesnotexist0000`, { method: "GET" }],
  },
  {
    name: "transactions: an unknown parameter",
    status: 400,
    code: "invalid_request",
    request: (f) => [`${base(f.accountId)}/transactions?account_id=acct_other`, { method: "GET" }],
  },
];

describe("bad input: its exact 4xx, never a 500, and nothing changed", () => {
  it.each(badCases)("$name → $status $code", async (c) => {
    const f = await funded(5000);
    const key = newKey("bad");
    const before = await snapshot(f);
    const [path, init] = c.request(f, key);
    const res = await seller(path, init);
    const body = await json<ErrorBody>(res);
    expect(res.status).toBe(c.status);
    expect(body.error.code).toBe(c.code);
    expect(body.error.message.length).toBeGreaterThan(0);
    if (c.message) expect(body.error.message).toMatch(c.message);
    expect(res.headers.get("idempotent-replayed")).toBeNull();

    // Nothing changed: the wallet (read through the seller's own routes) and Stripe's ledger.
    expect(before.balanceStatus).toBe(200);
    expect(before.balance).toEqual({ available: 5000, held: 0, currency: "usd" });
    expect(await snapshot(f)).toEqual(before);

    // A refusal made before the wallet was asked is not kept under its key: the key is still free.
    if (!c.kept) {
      const valid = await debit(f.accountId, { amount: 100, currency: "usd" }, key);
      expect(valid.status).toBe(201);
      expect(valid.headers.get("idempotent-replayed")).toBeNull();
      expect((await balanceOf(f.accountId)).available).toBe(4900);
    }
  });

  it("counts at least 25 cases", () => {
    expect(badCases.length).toBeGreaterThanOrEqual(25);
  });
});

describe("spending", () => {
  it("a debit: 201 with the wallet's figures; the balance, the ledger and the browser's routes show it", async () => {
    const f = await funded(5000);
    const res = await debit(f.accountId, { amount: 1200, currency: "usd", description: "1,200 tokens", metadata: { request_id: "req_1" } });
    expect(res.status).toBe(201);
    expect(res.headers.get("idempotent-replayed")).toBeNull();
    const d = await json<Debit>(res);
    expect(d).toMatchObject({ account_id: f.accountId, amount: 1200, currency: "usd", balance: { available: 3800, held: 0, currency: "usd" } });
    expect(d.id.length).toBeGreaterThan(0);
    expect(isoTime(d.created)).toBe(true);

    const seen = await json<Balance & { stripe_synced_at: string | null }>(await seller(`${base(f.accountId)}/balance`));
    expect(seen).toMatchObject({ available: 3800, held: 0, currency: "usd" });
    expect(seen.stripe_synced_at === null || isoTime(seen.stripe_synced_at)).toBe(true);

    const page = await linesOf(f.accountId);
    expect(page.data[0]).toMatchObject({
      kind: "debit",
      amount: -1200,
      held: 0,
      currency: "usd",
      description: "1,200 tokens",
      metadata: { request_id: "req_1" },
    });
    expect(page.data.some((l) => l.kind === "top_up" && l.amount === 5000)).toBe(true);

    const browser = await authed(f.token, "/billing/balance");
    expect(await json(browser)).toEqual({ balance: 3800, available: 3800, held: 0, currency: "usd" });
    const browserLines = await json<Page>(await authed(f.token, "/billing/transactions"));
    expect(browserLines.data[0]).toMatchObject({ kind: "debit", amount: -1200 });
  });

  it("the same key and body replays the first answer with Idempotent-Replayed, and spends once", async () => {
    const f = await funded(5000);
    const key = newKey();
    const first = await debit(f.accountId, { amount: 700, currency: "usd", metadata: { a: "1", b: "2" } }, key);
    expect(first.status).toBe(201);
    const firstBody = await json<Debit>(first);
    // The same body, compared as parsed JSON: key order and whitespace do not matter.
    const again = await seller(`${base(f.accountId)}/debits`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key },
      body: '{ "metadata": {"b": "2", "a": "1"},\n "currency": "usd", "amount": 700 }',
    });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(again)).toEqual(firstBody);
    expect(await balanceOf(f.accountId)).toEqual({ available: 4300, held: 0, currency: "usd" });
    expect((await linesOf(f.accountId)).data.filter((l) => l.kind === "debit")).toHaveLength(1);
  });

  it("the same key with another body, or for another operation, is 409 idempotency_key_reused; on another account it is another key", async () => {
    const f = await funded(5000);
    const key = newKey();
    expect((await debit(f.accountId, { amount: 700, currency: "usd" }, key)).status).toBe(201);
    for (const res of [
      await debit(f.accountId, { amount: 701, currency: "usd" }, key),
      await debit(f.accountId, { amount: 700, currency: "usd", description: "x" }, key),
      await hold(f.accountId, { amount: 700, currency: "usd" }, key),
    ]) {
      expect(res.status).toBe(409);
      expect((await json<ErrorBody>(res)).error.code).toBe("idempotency_key_reused");
    }
    expect(await balanceOf(f.accountId)).toEqual({ available: 4300, held: 0, currency: "usd" });

    const other = await funded(5000);
    const theirs = await debit(other.accountId, { amount: 900, currency: "usd" }, key);
    expect(theirs.status).toBe(201);
    expect(theirs.headers.get("idempotent-replayed")).toBeNull();
    expect((await balanceOf(other.accountId)).available).toBe(4100);
  });

  it("more than available is 402 insufficient_credit with what is available; replayed as 402 even after a top-up covers it", async () => {
    const f = await funded(1000);
    const key = newKey();
    const res = await debit(f.accountId, { amount: 1500, currency: "usd" }, key);
    expect(res.status).toBe(402);
    const body = await json<ErrorBody>(res);
    expect(body.error).toMatchObject({ code: "insufficient_credit", available: 1000, currency: "usd" });
    expect(await balanceOf(f.accountId)).toEqual({ available: 1000, held: 0, currency: "usd" });

    await topUpMore(f, 1000);
    expect((await balanceOf(f.accountId)).available).toBe(2000);
    const replay = await debit(f.accountId, { amount: 1500, currency: "usd" }, key);
    expect(replay.status).toBe(402);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(replay)).toEqual(body);
    expect((await balanceOf(f.accountId)).available).toBe(2000);

    const fresh = await debit(f.accountId, { amount: 1500, currency: "usd" });
    expect(fresh.status).toBe(201);
    expect((await balanceOf(f.accountId)).available).toBe(500);
  });

  it("an account with no credit at all is 402 with available 0", async () => {
    const res = await debit(newAccountId(), { amount: 100, currency: "usd" });
    expect(res.status).toBe(402);
    expect((await json<ErrorBody>(res)).error).toMatchObject({ code: "insufficient_credit", available: 0 });
  });

  it("a currency the wallet does not use is 422 currency_mismatch naming the wallet's", async () => {
    const f = await funded(5000);
    for (const res of [await debit(f.accountId, { amount: 100, currency: "eur" }), await hold(f.accountId, { amount: 100, currency: "eur" })]) {
      expect(res.status).toBe(422);
      expect((await json<ErrorBody>(res)).error).toMatchObject({ code: "currency_mismatch", currency: "usd" });
    }
    expect(await balanceOf(f.accountId)).toEqual({ available: 5000, held: 0, currency: "usd" });
  });

  it("concurrent debits never overdraw: 40 debits of 100 against 1,000 → exactly 10 succeed", async () => {
    const f = await funded(1000);
    const answers = await Promise.all(Array.from({ length: 40 }, () => debit(f.accountId, { amount: 100, currency: "usd" })));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(10);
    expect(statuses.filter((s) => s === 402)).toHaveLength(30);
    expect(await balanceOf(f.accountId)).toEqual({ available: 0, held: 0, currency: "usd" });
  });

  it("a hold: 201 active, expiring in 600 s by default; captured whole with no body; then 409 hold_not_active", async () => {
    const f = await funded(5000);
    const res = await hold(f.accountId, { amount: 700, currency: "usd", description: "a session" });
    expect(res.status).toBe(201);
    const h = await json<Hold>(res);
    expect(h).toMatchObject({
      account_id: f.accountId,
      amount: 700,
      currency: "usd",
      status: "active",
      balance: { available: 4300, held: 700, currency: "usd" },
    });
    expect(h.id).toMatch(/^hold_[A-Za-z0-9]{8,64}$/);
    expect(isoTime(h.expires_at) && isoTime(h.created)).toBe(true);
    expect(Date.parse(h.expires_at) - Date.parse(h.created)).toBeGreaterThanOrEqual(599_000);
    expect(Date.parse(h.expires_at) - Date.parse(h.created)).toBeLessThanOrEqual(601_000);
    expect(await balanceOf(f.accountId)).toEqual({ available: 4300, held: 700, currency: "usd" });

    // No body and no content-type: the whole hold.
    const captured = await seller(`${base(f.accountId)}/holds/${h.id}/capture`, { method: "POST", headers: { "idempotency-key": newKey() } });
    expect(captured.status).toBe(200);
    const c = await json<{ hold_id: string; debit: { id: string; amount: number }; released: number; balance: Balance }>(captured);
    expect(c).toMatchObject({ hold_id: h.id, debit: { amount: 700 }, released: 0, balance: { available: 4300, held: 0, currency: "usd" } });

    for (const again of [await capture(f.accountId, h.id), await release(f.accountId, h.id)]) {
      expect(again.status).toBe(409);
      expect((await json<ErrorBody>(again)).error).toMatchObject({ code: "hold_not_active", hold_status: "captured" });
    }
    expect(await balanceOf(f.accountId)).toEqual({ available: 4300, held: 0, currency: "usd" });
  });

  it("expires_in_seconds sets expires_at", async () => {
    const f = await funded(5000);
    const h = await json<Hold>(await hold(f.accountId, { amount: 100, currency: "usd", expires_in_seconds: 86_400 }));
    expect(Date.parse(h.expires_at) - Date.parse(h.created)).toBeGreaterThanOrEqual(86_399_000);
    expect(Date.parse(h.expires_at) - Date.parse(h.created)).toBeLessThanOrEqual(86_401_000);
  });

  it("a partial capture spends the amount and releases the rest", async () => {
    const f = await funded(5000);
    const h = await json<Hold>(await hold(f.accountId, { amount: 1000, currency: "usd" }));
    const res = await capture(f.accountId, h.id, { amount: 400 });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ hold_id: h.id, debit: { amount: 400 }, released: 600, balance: { available: 4600, held: 0 } });
  });

  it("capturing more than held takes the excess from available, or is 402 and the hold stays", async () => {
    const f = await funded(1000);
    const h = await json<Hold>(await hold(f.accountId, { amount: 800, currency: "usd" }));
    const over = await capture(f.accountId, h.id, { amount: 1100 });
    expect(over.status).toBe(402);
    expect((await json<ErrorBody>(over)).error).toMatchObject({ code: "insufficient_credit", available: 200, currency: "usd" });
    expect(await balanceOf(f.accountId)).toEqual({ available: 200, held: 800, currency: "usd" });

    const within = await capture(f.accountId, h.id, { amount: 950 });
    expect(within.status).toBe(200);
    expect(await json(within)).toMatchObject({ debit: { amount: 950 }, released: 0, balance: { available: 50, held: 0 } });
  });

  it("a release gives the hold back (empty body with a JSON content-type); replayed with the header; a second release is 409", async () => {
    const f = await funded(5000);
    const h = await json<Hold>(await hold(f.accountId, { amount: 500, currency: "usd" }));
    const key = newKey();
    const send = () =>
      seller(`${base(f.accountId)}/holds/${h.id}/release`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key },
        body: "",
      });
    const res = await send();
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toEqual({ hold_id: h.id, released: 500, balance: { available: 5000, held: 0, currency: "usd" } });
    const replay = await send();
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(replay)).toEqual(body);

    const second = await release(f.accountId, h.id);
    expect(second.status).toBe(409);
    expect((await json<ErrorBody>(second)).error).toMatchObject({ code: "hold_not_active", hold_status: "released" });
  });

  it("no body, an empty body and `{}` are the same request under one key", async () => {
    const f = await funded(5000);
    const h = await json<Hold>(await hold(f.accountId, { amount: 300, currency: "usd" }));
    const key = newKey();
    const first = await seller(`${base(f.accountId)}/holds/${h.id}/capture`, { method: "POST", headers: { "idempotency-key": key } });
    expect(first.status).toBe(200);
    const second = await capture(f.accountId, h.id, {}, key);
    expect(second.status).toBe(200);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    const firstBody = await json(first);
    expect(await json(second)).toEqual(firstBody);
    // An empty body is no body, whatever its content type says (as `curl -d ''` sends it).
    const formEmpty = await seller(`${base(f.accountId)}/holds/${h.id}/capture`, {
      method: "POST",
      headers: { "idempotency-key": key, "content-type": "application/x-www-form-urlencoded" },
      body: "",
    });
    expect(formEmpty.status).toBe(200);
    expect(formEmpty.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(formEmpty)).toEqual(firstBody);
    // The whole hold is `{}` too, but `{"amount": 300}` says something else: another request.
    const explicit = await capture(f.accountId, h.id, { amount: 300 }, key);
    expect(explicit.status).toBe(409);
    expect((await json<ErrorBody>(explicit)).error.code).toBe("idempotency_key_reused");
  });

  it("another account's hold id is 404 hold_not_found, and their hold stays active", async () => {
    const a = await funded(5000);
    const b = await funded(5000);
    const theirs = await json<Hold>(await hold(b.accountId, { amount: 600, currency: "usd" }));
    for (const res of [await capture(a.accountId, theirs.id), await release(a.accountId, theirs.id)]) {
      expect(res.status).toBe(404);
      expect((await json<ErrorBody>(res)).error.code).toBe("hold_not_found");
    }
    expect(await balanceOf(a.accountId)).toEqual({ available: 5000, held: 0, currency: "usd" });
    expect(await balanceOf(b.accountId)).toEqual({ available: 4400, held: 600, currency: "usd" });
    expect((await release(b.accountId, theirs.id)).status).toBe(200);
  });

  it("the ledger lists every kind newest first, across pages; a cursor from another account is 400", async () => {
    const f = await funded(5000);
    await debit(f.accountId, { amount: 100, currency: "usd" });
    const h1 = await json<Hold>(await hold(f.accountId, { amount: 200, currency: "usd" }));
    await capture(f.accountId, h1.id, { amount: 150 });
    const h2 = await json<Hold>(await hold(f.accountId, { amount: 300, currency: "usd" }));
    await release(f.accountId, h2.id);

    const all = await linesOf(f.accountId);
    const kinds = all.data.map((l) => l.kind);
    for (const kind of ["top_up", "debit", "hold", "capture", "release"]) expect(kinds).toContain(kind);
    expect(all.data[0]).toMatchObject({ kind: "release", hold_id: h2.id, amount: 0, held: -300 });
    const created = all.data.map((l) => Date.parse(l.created));
    expect([...created].sort((x, y) => y - x)).toEqual(created);
    // The lines' amounts sum to available + held, their helds to held.
    const figures = await balanceOf(f.accountId);
    expect(all.data.reduce((s, l) => s + l.amount, 0)).toBe(figures.available + figures.held);
    expect(all.data.reduce((s, l) => s + l.held, 0)).toBe(figures.held);

    const paged: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 20; i++) {
      const page: Page = await linesOf(f.accountId, `limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      paged.push(...page.data.map((l) => l.id));
      expect(page.has_more).toBe(page.next_cursor !== null);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    expect(paged).toEqual(all.data.map((l) => l.id));

    const browser = await json<Page>(await authed(f.token, "/billing/transactions?limit=100"));
    expect(browser.data.map((l) => l.id)).toEqual(all.data.map((l) => l.id));

    const other = await funded(700);
    const theirCursor = (await linesOf(other.accountId)).data[0]?.id ?? "";
    for (const res of [
      await seller(`${base(f.accountId)}/transactions?cursor=${theirCursor}`),
      await authed(f.token, `/billing/transactions?cursor=${theirCursor}`),
    ]) {
      expect(res.status).toBe(400);
      expect((await json<ErrorBody>(res)).error.code).toBe("invalid_request");
    }
  });
});
