// Identity: tokens from an identity provider's JWKS (issuer and audience enforced, no algorithm
// confusion with the HS256 secret), and CORS for the configured origins only.

import { env } from "cloudflare:workers";
import { createExecutionContext } from "cloudflare:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { buildApp } from "../src/app.js";
import { TEST_BINDINGS } from "./bindings.js";
import { call, json, tokenFor } from "./helpers.js";

const JWKS_URL = "https://idp.example.com/.well-known/jwks.json";
const jwksEnv = { ...env, AUTH_JWKS_URL: JWKS_URL, AUTH_ISSUER: "https://idp.example.com/", AUTH_AUDIENCE: "billing" };

let privateKey: CryptoKey;
let jwks: { keys: unknown[] };

beforeAll(async () => {
  const pair = await generateKeyPair("RS256", { extractable: true });
  privateKey = pair.privateKey;
  jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "RS256", use: "sig" }] };
});

afterEach(() => {
  vi.restoreAllMocks();
});

function serveJwks(): void {
  const real = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    if (url === JWKS_URL) return Promise.resolve(Response.json(jwks));
    return real(input, init);
  });
}

function idpToken(claims: { iss?: string; aud?: string; sub?: string } = {}): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setSubject(claims.sub ?? "acct_idp_user")
    .setIssuer(claims.iss ?? "https://idp.example.com/")
    .setAudience(claims.aud ?? "billing")
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(privateKey);
}

/** A confirm with an invalid body: 400 proves the token was accepted, 401 that it was not. */
async function probe(token: string, e: object = jwksEnv): Promise<number> {
  const app = buildApp();
  const res = await app.fetch(
    new Request("https://billing.test/billing/confirm_payment", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: "{}",
    }),
    e,
    createExecutionContext(),
  );
  return res.status;
}

describe("tokens from an identity provider (JWKS)", () => {
  it("accepts a token with the configured issuer and audience", async () => {
    serveJwks();
    expect(await probe(await idpToken())).toBe(400);
  });

  it.each([
    ["another audience", { aud: "some-other-app" }],
    ["another issuer", { iss: "https://evil.example.com/" }],
  ])("refuses a token for %s", async (_, claims) => {
    serveJwks();
    expect(await probe(await idpToken(claims))).toBe(401);
  });

  it("refuses an HS256 token signed with the shared secret when JWKS is configured", async () => {
    serveJwks();
    expect(await probe(await tokenFor("acct_idp_user"))).toBe(401);
  });

  it("fails closed when JWKS is configured without issuer and audience: no token passes, the service answers misconfigured", async () => {
    serveJwks();
    expect(await probe(await idpToken(), { ...env, AUTH_JWKS_URL: JWKS_URL })).toBe(500);
  });

  it("fails closed when the HS256 secret is missing", async () => {
    expect(await probe(await tokenFor("acct_x"), { ...env, AUTH_JWT_SECRET: "" })).toBe(401);
  });
});

describe("CORS", () => {
  const preflight = (origin: string) =>
    call("/billing/confirm_payment", {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });

  it("allows a configured origin", async () => {
    const res = await preflight(TEST_BINDINGS.ALLOWED_ORIGINS);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(TEST_BINDINGS.ALLOWED_ORIGINS);
    expect(res.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
  });

  it("gives another origin no CORS grant", async () => {
    const res = await preflight("https://evil.example.com");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("health is open to anyone", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ ok: true });
  });
});

describe("401 messages name what is wrong with the Authorization header", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const confirmWith = (authorization: string | null) =>
    call("/billing/confirm_payment", {
      method: "POST",
      headers: { "content-type": "application/json", ...(authorization === null ? {} : { authorization }) },
      body: JSON.stringify({ payment_intent_id: "pi_AuthProbe000" }),
    });

  it.each([
    ["no header", async () => null, /missing/i],
    ["an empty header", async () => "", /missing/i],
    ["Basic credentials", async () => `Basic ${btoa("acct_x:secret")}`, /must use the Bearer scheme/],
    ["a Digest header", async () => 'Digest username="acct_x"', /must use the Bearer scheme/],
    ["a token with no scheme", async () => await tokenFor("acct_x"), /must use the Bearer scheme/],
    ["the Bearer scheme with no token", async () => "Bearer", /no token/],
    ["a token in two parts", async () => "Bearer abc def", /malformed/],
    ["a token that is not a JWT", async () => "Bearer abc$def", /malformed/],
    ["a token of two segments", async () => "Bearer abc.def", /malformed/],
    ["an expired token", async () => `Bearer ${await tokenFor("acct_x", { iat: now() - 7200, exp: now() - 60 })}`, /expired/],
    ["a token not valid yet", async () => `Bearer ${await tokenFor("acct_x", { nbf: now() + 600 })}`, /not valid yet/],
    ["a forged token", async () => `Bearer ${await tokenFor("acct_x", {}, "an-attackers-own-secret-that-is-long-enough")}`, /invalid/],
    ["a JWT-shaped string", async () => "Bearer not.a.jwt", /invalid/],
  ])("%s on a billing route", async (_, header, message) => {
    const res = await confirmWith(await header());
    expect(res.status).toBe(401);
    const body = await json<{ error: { code: string; message: string } }>(res);
    expect(body.error.code).toBe("unauthenticated");
    expect(body.error.message).toMatch(message);
    expect(body.error.message).not.toMatch(/JSON|body/);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="billing"');
  });

  it("the scheme name is case-insensitive (RFC 9110): a valid token under `bearer` is accepted", async () => {
    const res = await buildApp().fetch(
      new Request("https://billing.test/billing/confirm_payment", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `bearer ${await tokenFor("acct_x")}` },
        body: "{}",
      }),
      env,
      createExecutionContext(),
    );
    // 400 for the empty body: the token got through.
    expect(res.status).toBe(400);
  });

  it.each([
    ["no header", null, /missing/i],
    ["Basic credentials", `Basic ${btoa("operator:secret")}`, /must use the Bearer scheme/],
    ["the Bearer scheme with no token", "Bearer", /no token/],
    ["a wrong token", "Bearer op_wrong", /operator token is invalid/],
  ])("%s on an operator route", async (_, authorization, message) => {
    const res = await call("/operator/credits", { headers: authorization === null ? {} : { authorization } });
    expect(res.status).toBe(401);
    const body = await json<{ error: { code: string; message: string } }>(res);
    expect(body.error.code).toBe("unauthenticated");
    expect(body.error.message).toMatch(message);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="operator"');
  });
});
