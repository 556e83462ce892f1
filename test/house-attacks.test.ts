// A stranger's attacks on the public surface: answers that would go out without the security
// headers or with a policy that lets an injected script run; secrets leaking through the page's
// settings or an error's body; a caller over its request limit learning another account's
// PaymentIntent from what is recorded; the operator's list read or driven by anyone else; and
// odd methods, headers, bodies and ids that must be a 4xx with a stable code, never a 500.

import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { TEST_BINDINGS } from "./bindings.js";
import {
  ORIGIN,
  alarmOf,
  answerOf,
  authed,
  call,
  confirm,
  createPaymentIntent,
  drainAlarms,
  newAccountId,
  operatorEntry,
  paidTopUp,
  piObject,
  removeFault,
  seller,
  stripeRequests,
  tokenFor,
  waitForObject,
  refuseCreditOnce,
  callWith,
  policyDirectives,
} from "./helpers.js";

/** Stripe.js from Stripe, a publishable key, demo off: as deployed. */
const DEPLOYED = { STRIPE_JS_URL: "", STRIPE_PUBLISHABLE_KEY: "pk_test_house", DEMO_MODE: "false" };

/** The headers every answer must carry, and a policy under which no injected or foreign script runs. */
function expectGuarded(res: Response, what: string): void {
  expect(res.headers.get("x-content-type-options"), what).toBe("nosniff");
  expect(res.headers.get("x-frame-options"), what).toBe("DENY");
  expect(res.headers.get("referrer-policy"), what).toBe("no-referrer");
  const policy = res.headers.get("content-security-policy");
  expect(policy, what).not.toBeNull();
  expect(policy, what).not.toMatch(/unsafe-inline|unsafe-eval|unsafe-hashes|strict-dynamic|\s\*(\s|;|$)|data:\s*[^;]*script/);
  const csp = policyDirectives(policy);
  expect(csp.get("frame-ancestors"), what).toEqual(["'none'"]);
  expect(csp.get("base-uri"), what).toEqual(["'none'"]);
  const scripts = csp.get("script-src") ?? csp.get("default-src");
  expect(scripts, what).toBeDefined();
  for (const source of scripts ?? []) {
    expect(["'none'", "'self'", "https://js.stripe.com", "https://*.js.stripe.com"], `${what}: script source ${source}`).toContain(source);
  }
}

/** An API answer: a JSON document that may load, frame or run nothing. */
function expectApiPolicy(res: Response, what: string): void {
  expectGuarded(res, what);
  expect(policyDirectives(res.headers.get("content-security-policy")).get("default-src"), what).toEqual(["'none'"]);
}

/** A 4xx with the contract's stable error shape. */
async function expectStable4xx(res: Response, what: string): Promise<string> {
  expect(res.status, what).toBeGreaterThanOrEqual(400);
  expect(res.status, what).toBeLessThan(500);
  const text = await res.text();
  if (res.status === 405 || text !== "") {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof body.error?.code, `${what}: ${text}`).toBe("string");
    expect(typeof body.error?.message, `${what}: ${text}`).toBe("string");
    return body.error?.code as string;
  }
  return "";
}

/** Every secret the test service holds. */
const SECRETS = [
  TEST_BINDINGS.STRIPE_SECRET_KEY,
  TEST_BINDINGS.STRIPE_WEBHOOK_SECRET,
  TEST_BINDINGS.AUTH_JWT_SECRET,
  TEST_BINDINGS.OPERATOR_TOKEN,
  ...TEST_BINDINGS.SERVICE_TOKEN.split(","),
];

const MISCONFIGURED = { error: { code: "misconfigured", message: "The service is misconfigured; its operator has been told." } };

// ---- the page and its headers --------------------------------------------------------------

describe("every answer carries the headers, and no policy lets an injected or foreign script run", () => {
  it("the page, however it is asked for", async () => {
    const page = [
      ["GET /", await callWith(DEPLOYED, "/")],
      ["GET /?query", await callWith(DEPLOYED, "/?x=%3Cscript%3Ealert(1)%3C/script%3E")],
      ["GET /#fragment", await callWith(DEPLOYED, "/#<script>")],
      ["HEAD /", await callWith(DEPLOYED, "/", { method: "HEAD" })],
      ["GET / as a navigation", await callWith(DEPLOYED, "/", { headers: { "sec-fetch-mode": "navigate", accept: "text/html" } })],
    ] as const;
    for (const [what, res] of page) {
      expect(res.status, what).toBe(200);
      expectGuarded(res, what);
      expect(policyDirectives(res.headers.get("content-security-policy")).get("script-src"), what).toEqual([
        "'self'",
        "https://js.stripe.com",
        "https://*.js.stripe.com",
      ]);
    }
  });

  it("the page's conditional request (304) keeps the page's own policy", async () => {
    const etag = (await callWith(DEPLOYED, "/")).headers.get("etag");
    expect(etag).not.toBeNull();
    const res = await callWith(DEPLOYED, "/", { headers: { "if-none-match": etag ?? "" } });
    expect(res.status).toBe(304);
    expectGuarded(res, "conditional GET /");
    expect(policyDirectives(res.headers.get("content-security-policy")).get("script-src")).toContain("'self'");
  });

  it("other paths to the page's file are not the page: no HTML without its policy", async () => {
    for (const path of ["/index.html", "/index", "//", "/index.html/", "/%2F", "/./index.html", "/INDEX.HTML"]) {
      const res = await callWith(DEPLOYED, path);
      expectGuarded(res, path);
      if (res.status === 200) expect(policyDirectives(res.headers.get("content-security-policy")).get("script-src"), path).toBeDefined();
      else expect(res.headers.get("content-type") ?? "", path).not.toMatch(/html/);
    }
  });

  it("methods other than GET and HEAD on the page's path are API answers", async () => {
    for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
      const res = await callWith(DEPLOYED, "/", { method, headers: { origin: "https://evil.example", "access-control-request-method": "GET" } });
      expect(res.status, method).toBeGreaterThanOrEqual(400);
      expect(res.status, method).toBeLessThan(500);
      expectApiPolicy(res, `${method} /`);
      expect(res.headers.get("content-type") ?? "", method).not.toMatch(/html/);
    }
  });

  it("errors: 400, 401, 404, 405, 413, 415, and preflights from allowed and foreign origins", async () => {
    const token = await tokenFor(newAccountId("hdr"));
    const answers: [string, Response][] = [
      ["401", await call("/billing/balance")],
      ["401 operator", await call("/operator/credits")],
      ["401 seller", await call("/v1/accounts/x/balance")],
      ["404", await call("/no/such/route")],
      ["404 trailing slash", await call("/billing/config/")],
      ["404 case", await call("/BILLING/CONFIG")],
      ["405", await call("/healthz", { method: "POST" })],
      ["405 webhook", await call("/stripe/webhook")],
      [
        "413",
        await authed(token, "/billing/confirm_payment", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ payment_intent_id: `pi_${"a".repeat(5000)}` }),
        }),
      ],
      ["415", await authed(token, "/billing/confirm_payment", { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" })],
      ["400", await authed(token, "/billing/confirm_payment", { method: "POST", headers: { "content-type": "application/json" }, body: "{" })],
      [
        "preflight, allowed origin",
        await call("/billing/confirm_payment", {
          method: "OPTIONS",
          headers: { origin: "https://app.example.com", "access-control-request-method": "POST" },
        }),
      ],
      [
        "preflight, foreign origin",
        await call("/billing/confirm_payment", { method: "OPTIONS", headers: { origin: "https://evil.example", "access-control-request-method": "POST" } }),
      ],
      ["OPTIONS outside /billing", await call("/operator/credits", { method: "OPTIONS" })],
    ];
    expect(answers.map(([what, r]) => `${what}: ${r.status}`)).toEqual([
      "401: 401",
      "401 operator: 401",
      "401 seller: 401",
      "404: 404",
      "404 trailing slash: 404",
      "404 case: 404",
      "405: 405",
      "405 webhook: 405",
      "413: 413",
      "415: 415",
      "400: 400",
      "preflight, allowed origin: 204",
      "preflight, foreign origin: 204",
      "OPTIONS outside /billing: 405",
    ]);
    for (const [what, res] of answers) expectApiPolicy(res, what);
    // A foreign origin's preflight is not granted.
    expect(answers[12]?.[1].headers.get("access-control-allow-origin")).toBeNull();
  });

  it("a 500 misconfigured, on the API and on the page, carries the headers too", async () => {
    const bad = { ...DEPLOYED, TOPUP_MAX: "abc" };
    for (const path of ["/billing/config", "/"]) {
      const res = await callWith(bad, path);
      expect(res.status, path).toBe(500);
      expect(await res.clone().json(), path).toEqual(MISCONFIGURED);
      expectApiPolicy(res, `misconfigured ${path}`);
    }
    // A Stripe.js URL that is not http(s) stops the page; it never reaches the policy.
    const scriptUrl = await callWith({ ...DEPLOYED, STRIPE_JS_URL: "javascript:alert(1)" }, "/");
    expect(scriptUrl.status).toBe(500);
    expectApiPolicy(scriptUrl, "javascript: Stripe.js URL");
  });

  it("an unexpected failure serving the page is an opaque 500 with the headers", async () => {
    const broken = { ...DEPLOYED, ASSETS: { fetch: () => Promise.reject(new Error("asset store down: internal-detail-7f3a")) } };
    const res = await callWith(broken, "/");
    expect(res.status).toBe(500);
    const text = await res.clone().text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal_error", message: "Something went wrong on our side." } });
    expect(text).not.toContain("internal-detail");
    expectApiPolicy(res, "page 500");
  });

  it("a Stripe.js URL cannot add a directive or a wildcard to the page's policy", async () => {
    for (const jsUrl of ["https://evil.example;script-src/v3/", "https://evil.example,script-src/v3/", "https://u:p@stand-in.example:8443/v3/?q=1#f"]) {
      const res = await callWith({ ...DEPLOYED, STRIPE_JS_URL: jsUrl }, "/");
      if (res.status === 500) {
        expect(await res.json(), jsUrl).toEqual(MISCONFIGURED);
        continue;
      }
      const policy = res.headers.get("content-security-policy") ?? "";
      expect(policy.split(",")).toHaveLength(1);
      const csp = policyDirectives(policy);
      expect([...csp.keys()].sort(), jsUrl).toEqual(
        ["base-uri", "connect-src", "default-src", "form-action", "frame-ancestors", "frame-src", "img-src", "object-src", "script-src", "style-src"].sort(),
      );
      expect(csp.get("script-src")?.slice(0, 3), jsUrl).toEqual(["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]);
      expect(csp.get("script-src")?.length, jsUrl).toBeLessThanOrEqual(4);
      expect(policy, jsUrl).not.toContain("u:p@");
    }
  });
});

// ---- secrets -------------------------------------------------------------------------------

describe("no secret leaves through GET /billing/config or an error's body", () => {
  it("the page's settings are exactly the three public ones", async () => {
    const res = await call("/billing/config", { headers: { origin: "https://evil.example" } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(Object.keys(JSON.parse(text) as object).sort()).toEqual(["demo_mode", "publishable_key", "stripe_js_url"]);
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    // Readable by scripts only on the allowed origins.
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("a secret key put where the publishable key belongs is never published", async () => {
    for (const key of ["sk_live_leakedsecret123", "rk_live_leakedsecret123", "sk_test_leakedsecret123", "whsec_leakedsecret123"]) {
      const res = await callWith({ ...DEPLOYED, STRIPE_PUBLISHABLE_KEY: key }, "/billing/config");
      const text = await res.text();
      expect(text, key).not.toContain("leakedsecret");
      expect(res.status, key).toBe(500);
      expect(JSON.parse(text), key).toEqual(MISCONFIGURED);
    }
    // A real publishable key is published as it is.
    const ok = await callWith({ ...DEPLOYED, STRIPE_PUBLISHABLE_KEY: "pk_live_abc123" }, "/billing/config");
    expect((await ok.json<{ publishable_key: string }>()).publishable_key).toBe("pk_live_abc123");
  });

  it("a bad setting's name and value reach only the log, on every route that reads settings", async () => {
    const token = await tokenFor(newAccountId("leak"));
    const bad = { TOPUP_MAX: "sk_live_valueleak", LEGACY_TOPUP_METADATA: "whsec_valueleak" };
    const requests: [string, RequestInit][] = [
      ["/billing/config", {}],
      ["/", {}],
      ["/billing/balance", { headers: { authorization: `Bearer ${token}` } }],
      ["/operator/credits", { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } }],
      ["/v1/accounts/leak/balance", { headers: { authorization: `Bearer ${TEST_BINDINGS.SERVICE_TOKEN.split(",")[0]}` } }],
      ["/stripe/webhook", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" }, body: "{}" }],
      ["/demo/sign_in", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }],
    ];
    for (const [path, init] of requests) {
      const res = await callWith(bad, path, init);
      const text = await res.text();
      expect(res.status, path).toBe(500);
      expect(JSON.parse(text), path).toEqual(MISCONFIGURED);
      expect(text, path).not.toMatch(/TOPUP_MAX|LEGACY|valueleak|Invalid settings/);
      expectApiPolicy(res, path);
    }
  });

  it("an object that fails unexpectedly answers an opaque error, never its message", async () => {
    const broken = {
      CREDIT_REGISTRY: {
        getByName: () => ({
          list: () => Promise.reject(new Error(`registry exploded ${TEST_BINDINGS.STRIPE_SECRET_KEY}`)),
        }),
      },
    };
    const res = await callWith(broken, "/operator/credits", { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } });
    expect(res.status).toBe(500);
    const text = await res.clone().text();
    expect(JSON.parse(text)).toEqual({ error: { code: "internal_error", message: "Something went wrong on our side." } });
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    expectApiPolicy(res, "object 500");
  });
});

// ---- a caller over its limit ---------------------------------------------------------------

let ipSeq = 0;
function newIp(): string {
  ipSeq++;
  return `198.51.100.${ipSeq}`;
}

const oneConfirmAMinute = { ...env, CONFIRM_LIMIT_PER_MINUTE: "1" };

async function confirmOverLimit(token: string, paymentIntentId: string, ip: string) {
  return answerOf(
    await buildApp().fetch(
      new Request(`${ORIGIN}/billing/confirm_payment`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "cf-connecting-ip": ip },
        body: JSON.stringify({ payment_intent_id: paymentIntentId }),
      }),
      oneConfirmAMinute,
      createExecutionContext(),
    ),
  );
}

describe("a stranger over its confirm limit learns nothing of another account's PaymentIntents", () => {
  it("a credited, a refused and an unknown PaymentIntent all get the same answer; the owner still gets its own", async () => {
    // The victim: one credit (recorded), and one payment refused as not a top-up (a browser's
    // refusal is not recorded: junk leaves nothing behind).
    const victim = await paidTopUp(1900);
    expect((await answerOf(await confirm(victim.token, victim.pi.id))).status).toBe(200);
    const refused = await createPaymentIntent({ customer: victim.customer.id, amount: 1000, metadata: { account_id: victim.accountId } });
    expect((await answerOf(await confirm(victim.token, refused.id))).status).toBe(422);
    // One that needs an operator: Stripe refused its credit.
    const stuck = await paidTopUp(2100);
    const fault = await refuseCreditOnce(stuck.customer.id, stuck.pi.id);
    expect((await answerOf(await confirm(stuck.token, stuck.pi.id))).code).toBe("credit_needs_attention");
    await removeFault(fault);

    // The stranger: a customer of its own (stored), then over its one confirm a minute.
    const stranger = await paidTopUp(1000);
    const ip = newIp();
    expect((await confirmOverLimit(stranger.token, stranger.pi.id, ip)).status).toBe(200);
    const unknown = `pi_neverseen${crypto.randomUUID().replaceAll("-", "")}`;
    const targets = [unknown, victim.pi.id, refused.id, stuck.pi.id];
    const stripeCalls = async () => (await stripeRequests({ path: "/v1/payment_intents/**" })).filter((r) => targets.some((id) => r.path.includes(id))).length;
    const before = await stripeCalls();

    const answers = {
      unknown: await confirmOverLimit(stranger.token, unknown, ip),
      credited: await confirmOverLimit(stranger.token, victim.pi.id, ip),
      refused: await confirmOverLimit(stranger.token, refused.id, ip),
      stuck: await confirmOverLimit(stranger.token, stuck.pi.id, ip),
    };
    const shape = (a: { status: number; code: string }) => `${a.status} ${a.code}`;
    expect(shape(answers.unknown)).toBe("429 rate_limited");
    expect(shape(answers.credited)).toBe(shape(answers.unknown));
    expect(shape(answers.refused)).toBe(shape(answers.unknown));
    expect(shape(answers.stuck)).toBe(shape(answers.unknown));
    // Nothing of it reached Stripe, and the unknown id left nothing behind.
    expect(await stripeCalls()).toBe(before);
    expect((await piObject(unknown).inspect()).record).toBeNull();
    expect(await alarmOf(unknown)).toBeNull();

    // The owner over its limit is still answered what is recorded for it.
    const ownerIp = newIp();
    const other = await createPaymentIntent({ customer: victim.customer.id, amount: 600, metadata: { account_id: victim.accountId } });
    await confirmOverLimit(victim.token, other.id, ownerIp);
    expect(shape(await confirmOverLimit(victim.token, victim.pi.id, ownerIp))).toBe("200 already_credited");
    const stuckIp = newIp();
    await confirmOverLimit(stuck.token, `pi_burn${crypto.randomUUID().replaceAll("-", "")}`, stuckIp);
    expect(shape(await confirmOverLimit(stuck.token, stuck.pi.id, stuckIp))).toBe("409 credit_needs_attention");
  });
});

// ---- the operator's list -------------------------------------------------------------------

const operatorAuth = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

describe("GET /operator/credits", () => {
  it("is refused to anyone without the operator token, before the registry is asked anything", async () => {
    // A stale entry the registry would drop on an operator's listing (its PI has no record).
    const pi = `pi_stale${crypto.randomUUID().replaceAll("-", "")}`;
    const registry = env.CREDIT_REGISTRY.getByName("credits");
    await registry.upsert({
      payment_intent_id: pi,
      state: "verified",
      customer_id: null,
      amount: null,
      currency: null,
      reason: null,
      last_error: "x",
      retry_count: 1,
      next_retry_at: null,
      updated_at: 1,
      adjustments: [],
    });
    const stillThere = () =>
      runInDurableObject(registry, async (_i, state) => state.storage.sql.exec("SELECT 1 FROM attention WHERE payment_intent_id = ?", pi).toArray().length);

    const browser = await tokenFor(newAccountId("op"));
    const attempts: [string, RequestInit][] = [
      ["no token", {}],
      ["a browser's token", { headers: { authorization: `Bearer ${browser}` } }],
      ["the seller's token", { headers: { authorization: `Bearer ${TEST_BINDINGS.SERVICE_TOKEN.split(",")[0]}` } }],
      ["the operator token as Basic", { headers: { authorization: `Basic ${TEST_BINDINGS.OPERATOR_TOKEN}` } }],
      ["a prefix of it", { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN.slice(0, -1)}` } }],
      ["it and more", { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}x` } }],
      ["it twice", { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN} ${TEST_BINDINGS.OPERATOR_TOKEN}` } }],
      ["in a cookie", { headers: { cookie: `token=${TEST_BINDINGS.OPERATOR_TOKEN}` } }],
      ["HEAD, no token", { method: "HEAD" }],
    ];
    for (const [what, init] of attempts) {
      const res = await call(`/operator/credits?limit=200&token=${TEST_BINDINGS.OPERATOR_TOKEN}`, init);
      expect(res.status, what).toBe(401);
      expectApiPolicy(res, what);
      expect(await stillThere(), what).toBe(1);
    }
    // The operator's listing drops it: the PI object has no record.
    expect((await call("/operator/credits?limit=200", { headers: operatorAuth })).status).toBe(200);
    expect(await stillThere()).toBe(0);
  });

  it("changes nothing in the PaymentIntent objects and calls Stripe for none of them", async () => {
    const stuck = await paidTopUp(2300);
    const fault = await refuseCreditOnce(stuck.customer.id, stuck.pi.id);
    expect((await answerOf(await confirm(stuck.token, stuck.pi.id))).code).toBe("credit_needs_attention");
    await removeFault(fault);
    // Whatever the object still owes (its event to the seller) runs first; nothing was marked, so nothing is withdrawn.
    await drainAlarms(stuck.pi.id);
    const settled = await waitForObject(stuck.pi.id, (i) => i.record?.state === "needs_attention" && i.record.mark_state === "off");
    const calls = (await stripeRequests({ path: `/v1/payment_intents/${stuck.pi.id}**` })).length;
    const ledgerCalls = (await stripeRequests({ path: `/v1/customers/${stuck.customer.id}/**` })).length;

    for (let i = 0; i < 3; i++) expect((await operatorEntry(stuck.pi.id))?.state).toBe("needs_attention");
    const after = await piObject(stuck.pi.id).inspect();
    expect(after.record).toEqual(settled.record);
    expect(after.journal).toEqual(settled.journal);
    expect(after.adjustments).toEqual(settled.adjustments);
    expect(await alarmOf(stuck.pi.id)).toBeNull();
    expect((await stripeRequests({ path: `/v1/payment_intents/${stuck.pi.id}**` })).length).toBe(calls);
    expect((await stripeRequests({ path: `/v1/customers/${stuck.customer.id}/**` })).length).toBe(ledgerCalls);
  });

  it("odd query values are a page, never a 500; an injected state is only a value", async () => {
    const queries = [
      "limit=-1",
      "limit=0",
      "limit=1e999",
      "limit=NaN",
      "limit=abc",
      "limit=3.7",
      "state=%27%3B%20DROP%20TABLE%20attention%3B%20--",
      "state=%E2%9C%93",
      "after=%00",
      `after=${"z".repeat(4000)}`,
      "after=%ZZ",
      "state=needs_attention&state=verified",
      "limit=1&limit=2",
    ];
    for (const q of queries) {
      const res = await call(`/operator/credits?${q}`, { headers: operatorAuth });
      expect(res.status, q).toBe(200);
      const body = await res.json<{ data: unknown[] }>();
      expect(Array.isArray(body.data), q).toBe(true);
      expect(body.data.length, q).toBeLessThanOrEqual(200);
    }
    expect((await call("/operator/credits?limit=1", { headers: operatorAuth })).status).toBe(200);
  });

  it("odd ids on the operator's one-PI routes are a 4xx", async () => {
    for (const id of ["%ZZ", "pi_%00", `pi_${"a".repeat(300)}`, "pi_%C3%A9", "..", "pi_a%2Fb", "%F0%9F%92%B3"]) {
      const res = await call(`/operator/credits/${id}`, { headers: operatorAuth });
      await expectStable4xx(res, `GET /operator/credits/${id}`);
      const retry = await call(`/operator/credits/${id}/retry`, { method: "POST", headers: operatorAuth });
      await expectStable4xx(retry, `POST retry ${id}`);
    }
    for (const id of ["%ZZ", "a%2Fb", "%00", "x".repeat(200), "%E2%9C%93"]) {
      await expectStable4xx(await call(`/operator/accounts/${id}/wallet`, { headers: operatorAuth }), `wallet ${id}`);
    }
  });
});

// ---- bad input, looking for a 500 ------------------------------------------------------------

describe("bad input is a 4xx with a stable code, never a 500", () => {
  it("odd confirm bodies", async () => {
    const token = await tokenFor(newAccountId("odd"));
    const bodies: [string, BodyInit, string?][] = [
      ["null", "null"],
      ["array", "[]"],
      ["string", '"pi_abc"'],
      ["huge number", "1e400"],
      ["deep nesting", `${"[".repeat(500)}${"]".repeat(500)}`],
      ["BOM", `\uFEFF{"payment_intent_id":"pi_abc"}`],
      ["unicode id", '{"payment_intent_id":"pi_é✓💳"}'],
      ["unicode escapes", '{"payment_intent_id":"pi_\\u0000abc"}'],
      ["lone surrogate", '{"payment_intent_id":"pi_\\ud800"}'],
      ["array id", '{"payment_intent_id":["pi_abc"]}'],
      ["object id", '{"payment_intent_id":{"toString":"pi_abc"}}'],
      ["proto key", '{"payment_intent_id":"pi_abc","__proto__":{"x":1}}'],
      ["extra key", '{"payment_intent_id":"pi_abc","amount":1}'],
      ["invalid utf-8", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
      ["empty", ""],
      ["latin1 charset", '{"payment_intent_id":"pi_abc"}', "application/json; charset=iso-8859-1"],
      ["utf-16 body", new Uint8Array([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]), "application/json; charset=utf-16"],
      ["json-ish type", "{}", "application/json-patch+json"],
    ];
    for (const [what, body, type] of bodies) {
      const res = await authed(token, "/billing/confirm_payment", { method: "POST", headers: { "content-type": type ?? "application/json" }, body });
      expect(res.status, what).not.toBe(200);
      await expectStable4xx(res, what);
    }
  });

  it("a streamed body with no length, over the limit", async () => {
    const token = await tokenFor(newAccountId("stream"));
    const chunk = new TextEncoder().encode(`{"payment_intent_id":"pi_${"a".repeat(2000)}"}`);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await authed(token, "/billing/confirm_payment", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(await expectStable4xx(res, "stream")).toBe("payload_too_large");
  });

  it("odd top-ups and ledger queries", async () => {
    const token = await tokenFor(newAccountId("oddtop"));
    const topUps: [string, unknown, string?][] = [
      ["huge", { amount: 1e308, currency: "usd" }],
      ["fraction", { amount: 500.5, currency: "usd" }],
      ["negative zero", { amount: -0, currency: "usd" }],
      ["string amount", { amount: "500", currency: "usd" }],
      ["upper currency", { amount: 500, currency: "USD" }],
      ["unicode currency", { amount: 500, currency: "üsd" }],
      ["unaccepted currency", { amount: 500, currency: "xxx" }],
      ["long key", { amount: 500, currency: "usd" }, "k".repeat(101)],
      ["latin1 key", { amount: 500, currency: "usd" }, "clé"],
      ["key with spaces", { amount: 500, currency: "usd" }, "a b"],
    ];
    for (const [what, body, key] of topUps) {
      const res = await authed(token, "/billing/top_ups", {
        method: "POST",
        headers: { "content-type": "application/json", ...(key === undefined ? {} : { "idempotency-key": key }) },
        body: JSON.stringify(body),
      });
      expect(await expectStable4xx(res, what), what).toBe("invalid_request");
    }
    for (const q of ["limit=0", "limit=-1", "limit=1e9", "limit=abc", "cursor=garbage", `cursor=${"c".repeat(4000)}`, "cursor=%E2%9C%93", "cursor=%ZZ"]) {
      const res = await authed(token, `/billing/transactions?${q}`);
      if (res.status !== 200) await expectStable4xx(res, q);
    }
  });

  it("odd Authorization headers are a 401", async () => {
    // A real token's header over another subject, with the signature left off.
    const unsigned = async (subject: string) => {
      const [header] = (await tokenFor("x")).split(".");
      return `${header}.${btoa(JSON.stringify({ sub: subject, exp: Math.floor(Date.now() / 1000) + 60 })).replace(/=+$/, "")}.`;
    };
    const headers = [
      `Bearer ${"a".repeat(20000)}`,
      "Bearer a.b.c",
      "Bearer ..",
      "Bearer \u00e9",
      "Bearer\ttoken",
      "Bearer  a.b.c  x",
      "bearer",
      "Negotiate abc",
      `Bearer ${await unsigned("victim")}`,
      `Bearer ${btoa('{"alg":"none"}')}.${btoa('{"sub":"victim"}')}.`,
    ];
    for (const authorization of headers) {
      const res = await call("/billing/balance", { headers: { authorization } });
      expect(await expectStable4xx(res, authorization.slice(0, 40))).toBe("unauthenticated");
    }
  });

  it("odd methods and paths on every route", async () => {
    const paths = [
      "/",
      "/healthz",
      "/billing/config",
      "/billing/balance",
      "/openapi.json",
      "/stripe/webhook",
      "/operator/credits",
      "/v1/accounts/a/balance",
      "/demo/sign_in",
    ];
    for (const path of paths) {
      for (const method of ["PUT", "DELETE", "PATCH", "PROPFIND"]) {
        const res = await call(path, { method });
        await expectStable4xx(res, `${method} ${path}`);
        expectApiPolicy(res, `${method} ${path}`);
      }
    }
    for (const path of [
      "/billing/%E0%A4%A",
      "/%ZZ",
      "/billing/config%00",
      "/v1/accounts/%ZZ/balance",
      "/v1/accounts/%F0%9F%92%B3/balance",
      `/v1/accounts/${"a".repeat(200)}/balance`,
    ]) {
      const res = await seller(path);
      await expectStable4xx(res, path);
    }
  });

  it("odd webhook deliveries", async () => {
    const deliveries: [string, RequestInit][] = [
      ["no signature", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }],
      ["garbage signature", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": "t=abc,v1=%%%" }, body: "{}" }],
      ["unicode body", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" }, body: '{"x":"💳"}' }],
      ["no body", { method: "POST", headers: { "stripe-signature": "t=1,v1=00" } }],
      ["huge", { method: "POST", headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=00" }, body: "x".repeat(2_000_000) }],
    ];
    for (const [what, init] of deliveries) await expectStable4xx(await call("/stripe/webhook", init), what);
  });

  it("a stranger with no Stripe customer gets 404 and has no customer made for it", async () => {
    const accountId = newAccountId("nocust");
    const victim = await paidTopUp(800);
    const res = await confirm(await tokenFor(accountId), victim.pi.id);
    expect(await expectStable4xx(res, "no customer")).toBe("payment_intent_not_found");
    const creations = (await stripeRequests({ path: "/v1/customers" })).filter((r) => r.method === "POST" && JSON.stringify(r.params).includes(accountId));
    expect(creations).toHaveLength(0);
  });
});
