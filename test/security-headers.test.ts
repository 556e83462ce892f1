// Security headers: the page (its document served by the Worker from the asset store, so that
// its Content-Security-Policy can name the configured Stripe.js origin) and every API answer,
// errors included. HSTS only where the request came over https to a host that is not local.

import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

import { pagePolicy } from "../src/security.js";
import { settings } from "../src/settings.js";
import { call, callWith, policyDirectives } from "./helpers.js";

/** Stripe.js from Stripe, a publishable key, demo off: as deployed, whatever a local .dev.vars says. */
const DEPLOYED = { STRIPE_JS_URL: "", STRIPE_PUBLISHABLE_KEY: "pk_test_page", DEMO_MODE: "false" };

/** What every answer carries, page or API. */
function expectCommonHeaders(res: Response): void {
  expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  expect(res.headers.get("x-frame-options")).toBe("DENY");
  expect(policyDirectives(res.headers.get("content-security-policy")).get("frame-ancestors")).toEqual(["'none'"]);
}

const STRIPE_SCRIPTS = ["https://js.stripe.com", "https://*.js.stripe.com"];

describe("the page", () => {
  it("is served by the Worker with a policy that runs only its own scripts and Stripe.js", async () => {
    const res = await callWith(DEPLOYED, "/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await res.text()).toContain("<title>Prepaid credit</title>");
    expectCommonHeaders(res);
    const csp = policyDirectives(res.headers.get("content-security-policy"));
    // No 'unsafe-inline', no 'unsafe-eval', no wildcard: an injected <script> or onclick= does not run.
    expect(csp.get("script-src")).toEqual(["'self'", ...STRIPE_SCRIPTS]);
    expect(csp.get("connect-src")).toEqual(["'self'", "https://api.stripe.com"]);
    expect(csp.get("frame-src")).toEqual([...STRIPE_SCRIPTS, "https://hooks.stripe.com"]);
    expect(csp.get("style-src")).toEqual(["'self'"]);
    expect(csp.get("default-src")).toEqual(["'self'"]);
    expect(csp.get("object-src")).toEqual(["'none'"]);
    expect(csp.get("base-uri")).toEqual(["'none'"]);
    // The test origin is https and not local: HSTS is on.
    expect(res.headers.get("strict-transport-security")).toMatch(/^max-age=\d{7,}/);
  });

  it("has no inline script or style for the policy to refuse", async () => {
    const html = await (await call("/")).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html).not.toMatch(/<style[\s>]/i);
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/\son[a-z]+=/i);
  });

  it("answers HEAD with the headers and no body", async () => {
    const res = await callWith(DEPLOYED, "/", { method: "HEAD" });
    expect(res.status).toBe(200);
    expectCommonHeaders(res);
    expect(policyDirectives(res.headers.get("content-security-policy")).get("script-src")).toContain("'self'");
    expect(await res.text()).toBe("");
  });

  it("allows a stand-in Stripe.js's origin, from STRIPE_JS_URL, for its script and its API calls only", () => {
    const policy = policyDirectives(pagePolicy(settings({ ...env, STRIPE_JS_URL: "http://127.0.0.1:12111/v3/" })));
    expect(policy.get("script-src")).toEqual(["'self'", ...STRIPE_SCRIPTS, "http://127.0.0.1:12111"]);
    expect(policy.get("connect-src")).toEqual(["'self'", "https://api.stripe.com", "http://127.0.0.1:12111"]);
    expect(policy.get("frame-src")).not.toContain("http://127.0.0.1:12111");
    // Stripe's own URL adds nothing: its origins are there already.
    expect(pagePolicy(settings({ ...env, STRIPE_JS_URL: "https://js.stripe.com/v3/" }))).toBe(pagePolicy(settings({ ...env, STRIPE_JS_URL: "" })));
  });
});

describe("the operator console", () => {
  it("is served by the Worker with a policy that loads and talks to its own origin only, and submits no form", async () => {
    const res = await callWith(DEPLOYED, "/operator");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain("<title>Operator console</title>");
    expectCommonHeaders(res);
    const csp = policyDirectives(res.headers.get("content-security-policy"));
    for (const directive of ["default-src", "script-src", "connect-src", "style-src"]) expect(csp.get(directive)).toEqual(["'self'"]);
    expect(csp.get("form-action")).toEqual(["'none'"]);
    expect(csp.get("object-src")).toEqual(["'none'"]);
    expect(csp.get("base-uri")).toEqual(["'none'"]);
    expect(res.headers.get("content-security-policy")).not.toMatch(/stripe/);
    // Nothing inline for the policy to refuse, and the token field has no name a form could send.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html).not.toMatch(/<style[\s>]/i);
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    expect(html).toMatch(/<input[^>]*type="password"/);
    expect(html).not.toMatch(/<input[^>]*type="password"[^>]*\sname=/);
  });

  it("is the same page with or without the operator token set: it holds nothing secret", async () => {
    const on = await callWith(DEPLOYED, "/operator");
    const off = await callWith({ ...DEPLOYED, OPERATOR_TOKEN: "" }, "/operator");
    expect(off.status).toBe(200);
    expect(await off.text()).toBe(await on.text());
  });
});

describe("the API", () => {
  it("answers with the headers and a policy that allows nothing, on success and on errors", async () => {
    const answers = [
      await call("/healthz"),
      await call("/billing/config"),
      await call("/openapi.json"),
      await call("/billing/balance"),
      await call("/no/such/route"),
      await call("/billing/top_ups", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" }),
      await call("/billing/balance", { method: "OPTIONS", headers: { origin: "https://app.example.com", "access-control-request-method": "GET" } }),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 401, 404, 401, 204]);
    for (const res of answers) {
      expectCommonHeaders(res);
      expect(policyDirectives(res.headers.get("content-security-policy")).get("default-src")).toEqual(["'none'"]);
      expect(policyDirectives(res.headers.get("content-security-policy")).has("script-src")).toBe(false);
    }
  });

  it("sends HSTS only over https to a host that is not local", async () => {
    const hsts = async (url: string) => (await exports.default.fetch(new Request(url))).headers.get("strict-transport-security");
    expect(await hsts("https://billing.example.com/healthz")).toMatch(/^max-age=\d+; includeSubDomains$/);
    expect(await hsts("http://billing.example.com/healthz")).toBeNull();
    expect(await hsts("https://localhost/healthz")).toBeNull();
    expect(await hsts("http://127.0.0.1:8787/healthz")).toBeNull();
    expect(await hsts("https://127.0.0.1/")).toBeNull();
  });
});

describe("GET /billing/config", () => {
  it("tells the page where Stripe.js is and its publishable key, without signing in", async () => {
    const res = await callWith(DEPLOYED, "/billing/config");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ publishable_key: "pk_test_page", stripe_js_url: "https://js.stripe.com/v3/", demo_mode: false });

    const local = await callWith({ STRIPE_JS_URL: "http://127.0.0.1:12111/v3/", STRIPE_PUBLISHABLE_KEY: "", DEMO_MODE: "true" }, "/billing/config");
    expect(await local.json()).toEqual({ publishable_key: null, stripe_js_url: "http://127.0.0.1:12111/v3/", demo_mode: true });
  });

  it("is public and cross-origin readable by the allowed origins, like the other browser routes", async () => {
    const res = await call("/billing/config", { headers: { origin: "https://app.example.com" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect((await call("/billing/config", { method: "POST" })).status).toBe(405);
  });
});
