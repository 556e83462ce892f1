// Bad input, table-driven: every case gets its 4xx and stable code, never a 500, and changes
// nothing. All cases aim at one real, payable PaymentIntent where they can, so "nothing
// changed" is checked against something that could have changed: no Stripe traffic for it, no
// customer lookup for the account, and a valid confirm still credits it afterwards.

import { SignJWT, UnsecuredJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { TEST_BINDINGS } from "./bindings.js";
import { call, confirm, json, ledgerFor, paidTopUp, stripeRequests, stripeTraffic, tokenFor } from "./helpers.js";

type Fixture = Awaited<ReturnType<typeof paidTopUp>>;
let f: Fixture;

beforeAll(async () => {
  f = await paidTopUp(7300);
});

const now = () => Math.floor(Date.now() / 1000);
const secret = new TextEncoder().encode(TEST_BINDINGS.AUTH_JWT_SECRET);

interface Case {
  name: string;
  status: number;
  code: string;
  /** Builds the request from the fixture. */
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
  { name: "an oversized body", status: 413, code: "payload_too_large", request: (f) => jsonPost(JSON.stringify({ payment_intent_id: f.pi.id, pad: "x".repeat(5000) }), f.token) },
  { name: "a 1 MB body", status: 413, code: "payload_too_large", request: (f) => jsonPost("{" + " ".repeat(1 << 20) + "}", f.token) },
  { name: "text/plain", status: 415, code: "unsupported_media_type", request: (f) => jsonPost(JSON.stringify({ payment_intent_id: f.pi.id }), f.token, "text/plain") },
  { name: "a form body", status: 415, code: "unsupported_media_type", request: (f) => jsonPost(`payment_intent_id=${f.pi.id}`, f.token, "application/x-www-form-urlencoded") },
  {
    name: "no content-type",
    status: 415,
    code: "unsupported_media_type",
    request: (f) => ({ method: "POST", headers: { authorization: `Bearer ${f.token}` }, body: JSON.stringify({ payment_intent_id: f.pi.id }) }),
  },
  { name: "no Authorization header", status: 401, code: "unauthenticated", request: (f) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ payment_intent_id: f.pi.id }) }) },
  { name: "an empty bearer", status: 401, code: "unauthenticated", request: (f) => withToken("", f) },
  { name: "a garbage token", status: 401, code: "unauthenticated", request: (f) => withToken("not.a.jwt", f) },
  {
    name: "Basic auth",
    status: 401,
    code: "unauthenticated",
    request: (f) => ({ ...withToken("x", f), headers: { "content-type": "application/json", authorization: `Basic ${btoa(`${f.accountId}:x`)}` } }),
  },
  { name: "an expired token", status: 401, code: "unauthenticated", request: async (f) => withToken(await tokenFor(f.accountId, { iat: now() - 7200, exp: now() - 60 }), f) },
  { name: "a not-yet-valid token", status: 401, code: "unauthenticated", request: async (f) => withToken(await tokenFor(f.accountId, { nbf: now() + 600 }), f) },
  { name: "a token signed with another secret", status: 401, code: "unauthenticated", request: async (f) => withToken(await tokenFor(f.accountId, {}, "an-attackers-own-secret-that-is-long-enough"), f) },
  {
    name: "an alg:none token",
    status: 401,
    code: "unauthenticated",
    request: (f) => withToken(new UnsecuredJWT({}).setSubject(f.accountId).setExpirationTime(now() + 600).encode(), f),
  },
  {
    name: "an HS512 token under the same secret",
    status: 401,
    code: "unauthenticated",
    request: async (f) => withToken(await new SignJWT({}).setProtectedHeader({ alg: "HS512" }).setSubject(f.accountId).setExpirationTime(now() + 600).sign(secret), f),
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
    request: async (f) => withToken(await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setExpirationTime(now() + 600).sign(secret), f),
  },
  {
    name: "a sub that could inject into a Stripe search",
    status: 401,
    code: "unauthenticated",
    request: async (f) => withToken(await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("x' OR metadata['account_id']:'").setExpirationTime(now() + 600).sign(secret), f),
  },
  {
    name: "a tampered payload",
    status: 401,
    code: "unauthenticated",
    request: async (f) => {
      const [h, , s] = (await tokenFor("someone_else")).split(".");
      const payload = btoa(JSON.stringify({ sub: f.accountId, exp: now() + 600 })).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
      return withToken(`${h}.${payload}.${s}`, f);
    },
  },
];

describe("bad input on POST /billing/confirm_payment", () => {
  it.each(cases)("$name → $status $code", async ({ request, status, code }) => {
    const res = await call("/billing/confirm_payment", await request(f));
    const body = await json<{ error: { code: string; message: string } }>(res);
    expect(res.status).toBe(status);
    expect(body.error.code).toBe(code);
    expect(typeof body.error.message).toBe("string");
  });

  it("a 255-character id is well-formed: it passes validation and is simply not found", async () => {
    const res = await confirm(f.token, `pi_${"a".repeat(252)}`);
    expect(res.status).toBe(404);
  });

  it("none of the bad requests reached Stripe or changed anything", async () => {
    const traffic = await stripeTraffic(f.pi.id, f.customer.id);
    expect(traffic.all).toHaveLength(0);
    const searches = await stripeRequests({ path: "/v1/customers/search" });
    // Only the 255-character case above passed auth and validation, so at most one lookup.
    expect(searches.filter((r) => JSON.stringify(r.params).includes(f.accountId)).length).toBeLessThanOrEqual(1);
    expect(await ledgerFor(f.customer.id, f.pi.id)).toHaveLength(0);

    const res = await confirm(f.token, f.pi.id);
    expect(res.status).toBe(200);
    expect(await ledgerFor(f.customer.id, f.pi.id)).toHaveLength(1);
  });

  it("an unknown route is a JSON 404, and GET on the confirm route is not a 500", async () => {
    const nope = await call("/billing/nope");
    expect(nope.status).toBe(404);
    expect((await json<{ error: { code: string } }>(nope)).error.code).toBe("not_found");
    const get = await call("/billing/confirm_payment", { headers: { authorization: `Bearer ${f.token}` } });
    expect(get.status).toBeLessThan(500);
  });
});
