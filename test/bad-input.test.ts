// Bad input, table-driven: every case gets its exact 4xx and stable code, never a 500, and
// changes nothing. Each case has a paid top-up of its own (its own account, customer and
// PaymentIntent) and aims at it where it can, so "nothing changed" is checked against something
// that could have changed: no Stripe traffic for it, no customer lookup for the account, no
// record in its object, and a valid confirm still credits it afterwards. No case depends on
// another or on the order they run in.
//
// Then: a wrong method on every route is 405 with `Allow`, before any route middleware (auth,
// body checks) answers; unknown paths are 404.

import { HTTPException } from "hono/http-exception";
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { SignJWT, UnsecuredJWT } from "jose";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { TEST_BINDINGS } from "./bindings.js";
import { call, confirm, json, ledgerFor, paidTopUp, piObject, stripeRequests, stripeTraffic, tokenFor } from "./helpers.js";

type Fixture = Awaited<ReturnType<typeof paidTopUp>>;

const now = () => Math.floor(Date.now() / 1000);
const secret = new TextEncoder().encode(TEST_BINDINGS.AUTH_JWT_SECRET);

interface ErrorBody {
  error: { code: string; message: string };
}

interface Case {
  name: string;
  status: number;
  code: string;
  /** Builds the request from this case's own fixture. */
  request: (f: Fixture) => Promise<RequestInit> | RequestInit;
}

const jsonPost = (body: string, token: string, contentType = "application/json"): RequestInit => ({
  method: "POST",
  headers: { "content-type": contentType, authorization: `Bearer ${token}` },
  body,
});

const withToken = (token: string, f: Fixture): RequestInit => jsonPost(JSON.stringify({ payment_intent_id: f.pi.id }), token);

const bodyCases: [string, (f: Fixture) => string][] = [
  ["malformed JSON", () => '{"payment_intent_id": '],
  ["an empty body", () => ""],
  ["a JSON array", (f) => JSON.stringify([f.pi.id])],
  ["a JSON string", (f) => JSON.stringify(f.pi.id)],
  ["JSON null", () => "null"],
  ["an empty object", () => "{}"],
  ["a number id", () => JSON.stringify({ payment_intent_id: 123 })],
  ["a null id", () => JSON.stringify({ payment_intent_id: null })],
  ["an object id", (f) => JSON.stringify({ payment_intent_id: { id: f.pi.id } })],
  ["an extra field", (f) => JSON.stringify({ payment_intent_id: f.pi.id, amount: 1 })],
  ["a misspelt field", (f) => JSON.stringify({ paymentIntentId: f.pi.id })],
  ["a charge id", () => JSON.stringify({ payment_intent_id: "ch_3PqR8sT2eZvKYlo2" })],
  ["a customer id", (f) => JSON.stringify({ payment_intent_id: f.customer.id })],
  ["an upper-case prefix", (f) => JSON.stringify({ payment_intent_id: f.pi.id.replace("pi_", "PI_") })],
  ["a bare prefix", () => JSON.stringify({ payment_intent_id: "pi_" })],
  ["a 256-character id", () => JSON.stringify({ payment_intent_id: `pi_${"a".repeat(253)}` })],
  ["a client secret", (f) => JSON.stringify({ payment_intent_id: `${f.pi.id}_secret_abc` })],
  ["unicode letters", () => JSON.stringify({ payment_intent_id: "pi_абвгд" })],
  ["a NUL character", (f) => JSON.stringify({ payment_intent_id: `${f.pi.id}\u0000` })],
  ["a newline", (f) => JSON.stringify({ payment_intent_id: `${f.pi.id}\n` })],
  ["a space", (f) => JSON.stringify({ payment_intent_id: ` ${f.pi.id}` })],
  ["a path traversal", () => JSON.stringify({ payment_intent_id: "pi_abc/../../v1/customers" })],
  ["a query injection", () => JSON.stringify({ payment_intent_id: "pi_abc?expand[]=customer" })],
];

const cases: Case[] = [
  ...bodyCases.map(([name, body]): Case => ({ name, status: 400, code: "invalid_request", request: (f) => jsonPost(body(f), f.token) })),
  {
    name: "an oversized body",
    status: 413,
    code: "payload_too_large",
    request: (f) => jsonPost(JSON.stringify({ payment_intent_id: f.pi.id, pad: "x".repeat(5000) }), f.token),
  },
  { name: "a 1 MB body", status: 413, code: "payload_too_large", request: (f) => jsonPost("{" + " ".repeat(1 << 20) + "}", f.token) },
  {
    name: "text/plain",
    status: 415,
    code: "unsupported_media_type",
    request: (f) => jsonPost(JSON.stringify({ payment_intent_id: f.pi.id }), f.token, "text/plain"),
  },
  {
    name: "a form body",
    status: 415,
    code: "unsupported_media_type",
    request: (f) => jsonPost(`payment_intent_id=${f.pi.id}`, f.token, "application/x-www-form-urlencoded"),
  },
  {
    name: "no content-type",
    status: 415,
    code: "unsupported_media_type",
    request: (f) => ({ method: "POST", headers: { authorization: `Bearer ${f.token}` }, body: JSON.stringify({ payment_intent_id: f.pi.id }) }),
  },
  {
    name: "no Authorization header",
    status: 401,
    code: "unauthenticated",
    request: (f) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ payment_intent_id: f.pi.id }) }),
  },
  { name: "an empty bearer", status: 401, code: "unauthenticated", request: (f) => withToken("", f) },
  { name: "a garbage token", status: 401, code: "unauthenticated", request: (f) => withToken("not.a.jwt", f) },
  {
    name: "Basic auth",
    status: 401,
    code: "unauthenticated",
    request: (f) => ({ ...withToken("x", f), headers: { "content-type": "application/json", authorization: `Basic ${btoa(`${f.accountId}:x`)}` } }),
  },
  {
    name: "an expired token",
    status: 401,
    code: "unauthenticated",
    request: async (f) => withToken(await tokenFor(f.accountId, { iat: now() - 7200, exp: now() - 60 }), f),
  },
  {
    name: "a not-yet-valid token",
    status: 401,
    code: "unauthenticated",
    request: async (f) => withToken(await tokenFor(f.accountId, { nbf: now() + 600 }), f),
  },
  {
    name: "a token signed with another secret",
    status: 401,
    code: "unauthenticated",
    request: async (f) => withToken(await tokenFor(f.accountId, {}, "an-attackers-own-secret-that-is-long-enough"), f),
  },
  {
    name: "an alg:none token",
    status: 401,
    code: "unauthenticated",
    request: (f) =>
      withToken(
        new UnsecuredJWT({})
          .setSubject(f.accountId)
          .setExpirationTime(now() + 600)
          .encode(),
        f,
      ),
  },
  {
    name: "an HS512 token under the same secret",
    status: 401,
    code: "unauthenticated",
    request: async (f) =>
      withToken(
        await new SignJWT({})
          .setProtectedHeader({ alg: "HS512" })
          .setSubject(f.accountId)
          .setExpirationTime(now() + 600)
          .sign(secret),
        f,
      ),
  },
  {
    name: "a token without exp",
    status: 401,
    code: "unauthenticated",
    request: async (f) => withToken(await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(f.accountId).sign(secret), f),
  },
  {
    name: "a token without sub",
    status: 401,
    code: "unauthenticated",
    request: async (f) =>
      withToken(
        await new SignJWT({})
          .setProtectedHeader({ alg: "HS256" })
          .setExpirationTime(now() + 600)
          .sign(secret),
        f,
      ),
  },
  {
    name: "a sub that could inject into a Stripe search",
    status: 401,
    code: "unauthenticated",
    request: async (f) =>
      withToken(
        await new SignJWT({})
          .setProtectedHeader({ alg: "HS256" })
          .setSubject("x' OR metadata['account_id']:'")
          .setExpirationTime(now() + 600)
          .sign(secret),
        f,
      ),
  },
  {
    name: "a tampered payload",
    status: 401,
    code: "unauthenticated",
    request: async (f) => {
      const [h, , s] = (await tokenFor("someone_else")).split(".");
      const payload = btoa(JSON.stringify({ sub: f.accountId, exp: now() + 600 }))
        .replace(/=+$/, "")
        .replace(/\+/g, "-")
        .replace(/\//g, "_");
      return withToken(`${h}.${payload}.${s}`, f);
    },
  },
  {
    name: "a wrong method (GET) with a valid token",
    status: 405,
    code: "method_not_allowed",
    request: (f) => ({ method: "GET", headers: { authorization: `Bearer ${f.token}` } }),
  },
  {
    name: "a wrong method (PUT) with a valid token and body",
    status: 405,
    code: "method_not_allowed",
    request: (f) => ({ ...withToken(f.token, f), method: "PUT" }),
  },
];

/** Customer searches the emulator saw for this account (the service's lookup of its customer). */
async function customerSearches(accountId: string): Promise<number> {
  const searches = await stripeRequests({ path: "/v1/customers/search" });
  return searches.filter((r) => JSON.stringify(r.params).includes(accountId)).length;
}

/** Nothing happened to the fixture's PaymentIntent, customer or account. */
async function expectUntouched(f: Fixture): Promise<void> {
  expect((await stripeTraffic(f.pi.id, f.customer.id)).all).toHaveLength(0);
  expect(await customerSearches(f.accountId)).toBe(0);
  expect(await ledgerFor(f.customer.id, f.pi.id)).toHaveLength(0);
  expect((await piObject(f.pi.id).inspect()).record).toBeNull();
}

/** The fixture was creditable all along: a valid confirm credits it, once. */
async function expectStillCreditable(f: Fixture): Promise<void> {
  const res = await confirm(f.token, f.pi.id);
  expect(res.status).toBe(200);
  expect((await json<{ status: string }>(res)).status).toBe("credited");
  expect(await ledgerFor(f.customer.id, f.pi.id)).toHaveLength(1);
}

describe("bad input on POST /billing/confirm_payment", () => {
  it.each(cases)("$name → $status $code, and nothing changed", async ({ request, status, code }) => {
    const f = await paidTopUp(7300);
    const res = await call("/billing/confirm_payment", await request(f));
    const body = await json<ErrorBody>(res);
    expect(res.status).toBe(status);
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(0);
    if (status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    if (status === 405) expect(res.headers.get("allow")).toBe("POST, OPTIONS");
    await expectUntouched(f);
    await expectStillCreditable(f);
  });

  it("a 255-character id is well-formed: it passes validation and is simply not found, touching nothing else", async () => {
    const f = await paidTopUp(7300);
    const unknown = `pi_${"a".repeat(252)}`;
    const res = await confirm(f.token, unknown);
    expect(res.status).toBe(404);
    expect((await json<ErrorBody>(res)).error.code).toBe("payment_intent_not_found");
    // It got as far as the account's customer lookup, and no further for the account's own PI.
    expect((await stripeTraffic(f.pi.id, f.customer.id)).all).toHaveLength(0);
    expect(await ledgerFor(f.customer.id, f.pi.id)).toHaveLength(0);
    expect((await piObject(unknown).inspect()).record).toBeNull();
    await expectStillCreditable(f);
  });

  it("malformed JSON is named as such; any other malformed request is not blamed on its body", async () => {
    const f = await paidTopUp(7300);
    const bad = await call("/billing/confirm_payment", jsonPost('{"payment_intent_id": ', f.token));
    expect(bad.status).toBe(400);
    expect(await json<ErrorBody>(bad)).toEqual({ error: { code: "invalid_request", message: "The request body is not valid JSON." } });

    // A 400 that Hono raises for another reason (as its own middleware may).
    const app = buildApp();
    app.get("/probe", () => {
      throw new HTTPException(400, { message: "Bad Request" });
    });
    const res = await app.fetch(new Request("https://billing.test/probe"), env, createExecutionContext());
    expect(res.status).toBe(400);
    const body = await json<ErrorBody>(res);
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.message).not.toMatch(/JSON|body/i);
  });
});

describe("a wrong method: 405 with Allow, before auth and body checks", () => {
  const operator = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };
  // Each public route, its allowed methods, and a method it does not take.
  const routes: [string, string, string[]][] = [
    ["/billing/confirm_payment", "GET", ["POST", "OPTIONS"]],
    ["/billing/confirm_payment", "DELETE", ["POST", "OPTIONS"]],
    ["/billing/top_ups", "GET", ["POST", "OPTIONS"]],
    ["/billing/top_ups", "PATCH", ["POST", "OPTIONS"]],
    ["/billing/balance", "POST", ["GET", "HEAD", "OPTIONS"]],
    ["/billing/transactions", "DELETE", ["GET", "HEAD", "OPTIONS"]],
    ["/stripe/webhook", "GET", ["POST"]],
    ["/stripe/webhook", "PUT", ["POST"]],
    ["/healthz", "POST", ["GET", "HEAD"]],
    ["/openapi.json", "POST", ["GET", "HEAD"]],
    ["/operator/credits", "POST", ["GET", "HEAD"]],
    ["/operator/credits/pi_405Probe", "DELETE", ["GET", "HEAD"]],
    ["/operator/credits/pi_405Probe/retry", "GET", ["POST"]],
    ["/operator/events", "POST", ["GET", "HEAD"]],
  ];

  it.each(routes)("%s %s → 405, Allow: %s", async (path, method, allowed) => {
    // No credentials and a body no route would accept: the method is what is wrong, and said first.
    const res = await call(path, { method, ...(method === "GET" || method === "HEAD" ? {} : { headers: { "content-type": "text/plain" }, body: "x" }) });
    expect(res.status).toBe(405);
    expect((await json<ErrorBody>(res)).error.code).toBe("method_not_allowed");
    expect((res.headers.get("allow") ?? "").split(", ").sort()).toEqual([...allowed].sort());
  });

  it("the webhook's 405 records nothing", async () => {
    const f = await paidTopUp(7300);
    const res = await call("/stripe/webhook", {
      method: "PUT",
      headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" },
      body: JSON.stringify({ id: "evt_x", type: "payment_intent.succeeded", data: { object: { id: f.pi.id } } }),
    });
    expect(res.status).toBe(405);
    await expectUntouched(f);
  });

  it("an operator's wrong method is 405 with the token too, and its retry route did nothing", async () => {
    const f = await paidTopUp(7300);
    const res = await call(`/operator/credits/${f.pi.id}/retry`, { method: "GET", headers: operator });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    await expectUntouched(f);
  });

  it("allowed methods still work: HEAD on health, and the CORS preflight on a billing route", async () => {
    const head = await call("/healthz", { method: "HEAD" });
    expect(head.status).toBe(200);
    const preflight = await call("/billing/confirm_payment", {
      method: "OPTIONS",
      headers: { origin: TEST_BINDINGS.ALLOWED_ORIGINS, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(TEST_BINDINGS.ALLOWED_ORIGINS);
  });

  it.each([
    ["GET", "/billing/nope"],
    ["PUT", "/billing/nope"],
    ["GET", "/healthz/"],
    ["POST", "/nothing/here"],
  ])("an unknown path stays 404 not_found (%s %s)", async (method, path) => {
    const res = await call(path, { method });
    expect(res.status).toBe(404);
    expect((await json<ErrorBody>(res)).error.code).toBe("not_found");
  });
});
