// The settings (src/settings.ts): what an unset setting means, that every bad value is refused
// with its name rather than read as a default, that each env object is parsed once, and what a
// request meets when the service is misconfigured, in the Worker or inside an object.

import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildApp } from "../src/app.js";
import type { Env } from "../src/env.js";
import { isSettingsError, parseSettings, settings, SettingsError, type SettingsSource } from "../src/settings.js";
import { accountObject } from "../src/objects/stubs.js";
import { json, newAccountId, ORIGIN, tokenFor } from "./helpers.js";

const KEY = { STRIPE_SECRET_KEY: "sk_test_settings" };

afterEach(() => {
  vi.restoreAllMocks();
});

describe("defaults", () => {
  it("an unset setting is its default", () => {
    expect(parseSettings(KEY)).toEqual({
      stripe: {
        secretKey: "sk_test_settings",
        apiBase: "https://api.stripe.com",
        webhookSecrets: [],
        publishableKey: null,
        jsUrl: "https://js.stripe.com/v3/",
        timeoutMs: 10_000,
        maxNetworkRetries: 2,
        rateLimit: 20,
        liveKey: false,
      },
      auth: { jwtSecret: null, jwksUrl: null, issuer: null, audience: null, operatorToken: null, serviceTokens: [] },
      allowedOrigins: [],
      demoMode: false,
      reverseOnRefund: true,
      topUps: { min: 500, max: 100_000, currencies: ["usd"], defaultCurrency: "usd", legacy: null },
      limits: { confirmPerAccount: 120, confirmPerAddress: 600, topUpPerAccount: 20, topUpPerAddress: 60, objectQueue: 100 },
      syncSeconds: 60,
      events: { url: null, secrets: [], spending: false, retrySeconds: 5, timeoutMs: 15_000, lowBalanceThreshold: 0 },
      // No older server runs beside this one unless an operator says so: PaymentIntents are not marked.
      markCredited: false,
      // The console counts for itself until Analytics Engine's SQL API is configured.
      analytics: null,
      logLevel: "info",
    });
  });

  it('an empty value (wrangler.toml writes "") is the default too', () => {
    const blank: SettingsSource = { ...KEY, TOPUP_MAX: "", REVERSE_ON_REFUND: " ", TOPUP_CURRENCIES: "", AUTH_JWKS_URL: "", STRIPE_JS_URL: "" };
    expect(parseSettings(blank)).toEqual(parseSettings(KEY));
  });

  it("reads set values: lists split on commas, flags and currencies in any case, a live key", () => {
    const s = parseSettings({
      STRIPE_SECRET_KEY: "sk_live_abc",
      STRIPE_WEBHOOK_SECRET: "whsec_old, whsec_new",
      SERVICE_TOKEN: "a,,b",
      ALLOWED_ORIGINS: "https://a.example, https://b.example",
      DEMO_MODE: "TRUE",
      REVERSE_ON_REFUND: "false",
      TOPUP_CURRENCIES: "EUR, usd",
      TOPUP_MIN: "0100",
      STRIPE_RATE_LIMIT: "0",
      LEGACY_TOPUP_METADATA: "source=old-server",
      LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01",
      MARK_CREDITED: "True",
      LOG_LEVEL: " WARN ",
    });
    expect(s.stripe.liveKey).toBe(true);
    expect(s.markCredited).toBe(true);
    expect(s.logLevel).toBe("warn");
    expect(s.stripe.webhookSecrets).toEqual(["whsec_old", "whsec_new"]);
    expect(s.auth.serviceTokens).toEqual(["a", "b"]);
    expect(s.allowedOrigins).toEqual(["https://a.example", "https://b.example"]);
    expect(s.demoMode).toBe(true);
    expect(s.reverseOnRefund).toBe(false);
    expect(s.topUps).toMatchObject({ min: 100, currencies: ["eur", "usd"], defaultCurrency: "eur" });
    expect(s.topUps.legacy).toEqual({ key: "source", value: "old-server", createdBefore: Date.UTC(2024, 5, 1) / 1000 });
    expect(s.stripe.rateLimit).toBe(0);
  });

  it("reads the events' settings: several signing secrets, spaces or commas between them", () => {
    const a = "whsec_dGVzdC1ldmVudHMtc2VjcmV0LTAxMjM0NTY3";
    const b = "whsec_cm90YXRlZC1ldmVudHMtc2VjcmV0LWFiY2RlZg==";
    const s = parseSettings({
      ...KEY,
      EVENTS_URL: "https://seller.example/hooks/credit",
      EVENTS_SECRET: ` ${a},  ${b} `,
      EVENTS_SPENDING: "true",
      EVENTS_RETRY_SECONDS: "10",
      EVENTS_TIMEOUT_MS: "2000",
      LOW_BALANCE_THRESHOLD: "500",
    });
    expect(s.events).toEqual({
      url: "https://seller.example/hooks/credit",
      secrets: [a, b],
      spending: true,
      retrySeconds: 10,
      timeoutMs: 2000,
      lowBalanceThreshold: 500,
    });
  });

  it("the test run's own bindings (wrangler.toml and the test settings) parse", () => {
    const s = settings(env);
    expect(s.auth.serviceTokens).toHaveLength(2);
    expect(s.stripe.timeoutMs).toBe(5000);
    // The product default, which every test expects unless it turns marking on for its own PI.
    expect(s.markCredited).toBe(false);
  });
});

describe("a bad value is an error naming the setting, never a default", () => {
  it.each<[string, SettingsSource, RegExp]>([
    ["a number that is not one", { TOPUP_MAX: "abc" }, /TOPUP_MAX must be a whole number/],
    ["a negative number", { STRIPE_TIMEOUT_MS: "-5" }, /STRIPE_TIMEOUT_MS must be a whole number/],
    ["a fraction", { STRIPE_SYNC_SECONDS: "1.5" }, /STRIPE_SYNC_SECONDS must be a whole number/],
    ["a flag that is neither true nor false", { REVERSE_ON_REFUND: "yes" }, /REVERSE_ON_REFUND must be "true" or "false"/],
    ["a mark setting that is neither true nor false", { MARK_CREDITED: "1" }, /MARK_CREDITED must be "true" or "false"/],
    ["a log level that is not one", { LOG_LEVEL: "verbose" }, /LOG_LEVEL must be one of debug, info, warn, error, off/],
    ["a currency that is not a code", { TOPUP_CURRENCIES: "usd,dollars" }, /TOPUP_CURRENCIES must be three-letter ISO currency codes/],
    ["no currency at all", { TOPUP_CURRENCIES: " , " }, /TOPUP_CURRENCIES must name at least one currency/],
    ["a minimum above the maximum", { TOPUP_MIN: "1000", TOPUP_MAX: "500" }, /TOPUP_MAX must be at least TOPUP_MIN/],
    ["a zero minimum", { TOPUP_MIN: "0" }, /TOPUP_MIN must be at least 1/],
    [
      "JWKS without an issuer",
      { AUTH_JWKS_URL: "https://idp.example.com/jwks.json", AUTH_AUDIENCE: "billing" },
      /AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE/,
    ],
    ["JWKS without an audience", { AUTH_JWKS_URL: "https://idp.example.com/jwks.json", AUTH_ISSUER: "https://idp.example.com/" }, /AUTH_JWKS_URL needs/],
    ["half a legacy pair", { LEGACY_TOPUP_METADATA: "source=old-server" }, /LEGACY_TOPUP_METADATA and LEGACY_TOPUP_CREATED_BEFORE must be set together/],
    [
      "a legacy cutoff in milliseconds",
      { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: "1700000000000" },
      /LEGACY_TOPUP_CREATED_BEFORE must be/,
    ],
    ["a URL that is not one", { STRIPE_API_BASE: "not a url" }, /STRIPE_API_BASE must be an http\(s\) URL/],
    ["a URL that is not http(s)", { STRIPE_JS_URL: "javascript:alert(1)" }, /STRIPE_JS_URL must be an http\(s\) URL/],
    ["an events URL with nothing to sign with", { EVENTS_URL: "https://seller.example/hooks" }, /EVENTS_URL needs EVENTS_SECRET/],
    ["an events secret that is not a whsec_ secret", { EVENTS_SECRET: "my-password" }, /EVENTS_SECRET must be whsec_ secrets/],
    ["one bad secret among good ones", { EVENTS_SECRET: "whsec_dGVzdC1ldmVudHMtc2VjcmV0LTAxMjM0NTY3 whsec_short" }, /EVENTS_SECRET must be whsec_/],
    ["a first retry later than 10 s", { EVENTS_RETRY_SECONDS: "11" }, /EVENTS_RETRY_SECONDS must be at most 10/],
    ["a negative threshold", { LOW_BALANCE_THRESHOLD: "-1" }, /LOW_BALANCE_THRESHOLD must be a whole number/],
  ])("%s", (_, values, message) => {
    const bad = { ...KEY, ...values };
    expect(() => parseSettings(bad)).toThrow(SettingsError);
    expect(() => parseSettings(bad)).toThrow(message);
    expect(() => settings(bad)).toThrow(message);
  });

  it("reads Analytics Engine's settings: both or neither, a real account id, a dataset name", () => {
    expect(parseSettings({ ...KEY }).analytics).toBeNull();
    const account = "0123456789abcdef0123456789abcdef";
    expect(parseSettings({ ...KEY, ANALYTICS_ACCOUNT_ID: account, ANALYTICS_API_TOKEN: "cf" }).analytics).toEqual({
      accountId: account,
      apiToken: "cf",
      dataset: "edge_credit_metrics",
    });
    expect(() => parseSettings({ ...KEY, ANALYTICS_ACCOUNT_ID: account })).toThrow(/ANALYTICS_ACCOUNT_ID and ANALYTICS_API_TOKEN go together/);
    expect(() => parseSettings({ ...KEY, ANALYTICS_API_TOKEN: "cf" })).toThrow(/go together/);
    expect(() => parseSettings({ ...KEY, ANALYTICS_ACCOUNT_ID: "my-account", ANALYTICS_API_TOKEN: "cf" })).toThrow(
      /ANALYTICS_ACCOUNT_ID must be a Cloudflare account id/,
    );
    expect(() => parseSettings({ ...KEY, ANALYTICS_DATASET: "x; DROP" })).toThrow(/ANALYTICS_DATASET must be a dataset name/);
  });

  it("no Stripe key is an error", () => {
    expect(() => parseSettings({})).toThrow(/STRIPE_SECRET_KEY must be set/);
    expect(() => parseSettings({ STRIPE_SECRET_KEY: " " })).toThrow(/STRIPE_SECRET_KEY must be set/);
  });

  it("names every bad setting at once, by name and not by position in a list", () => {
    let error: unknown = null;
    try {
      parseSettings({ ...KEY, TOPUP_MAX: "abc", REVERSE_ON_REFUND: "yes", TOPUP_CURRENCIES: "usd,dollars" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(SettingsError);
    const message = (error as Error).message;
    expect(message).toMatch(/^Invalid settings: /);
    for (const name of ["TOPUP_MAX", "REVERSE_ON_REFUND", "TOPUP_CURRENCIES must"]) expect(message).toContain(name);
    expect(message).not.toContain("TOPUP_CURRENCIES.1");
  });

  it("is recognised also as it arrives from an object (a plain Error with the message)", () => {
    expect(isSettingsError(new SettingsError("Invalid settings: TOPUP_MAX must be a whole number, 0 or more"))).toBe(true);
    expect(isSettingsError(new Error("Invalid settings: TOPUP_MAX must be a whole number, 0 or more"))).toBe(true);
    expect(isSettingsError(new Error("Network connection lost."))).toBe(false);
    expect(isSettingsError("Invalid settings: not an Error")).toBe(false);
  });
});

describe("parsed once per env object", () => {
  it("the same object gives the same result; a modified copy gets its own", () => {
    const base = { ...KEY, REVERSE_ON_REFUND: "true" };
    const first = settings(base);
    expect(settings(base)).toBe(first);
    const copy = { ...base, REVERSE_ON_REFUND: "false" };
    expect(settings(copy)).not.toBe(first);
    expect(settings(copy).reverseOnRefund).toBe(false);
    expect(settings(base).reverseOnRefund).toBe(true);
  });

  it("a bad env is refused every time it is read, not remembered as good", () => {
    const bad = { ...KEY, TOPUP_MAX: "abc" };
    expect(() => settings(bad)).toThrow(/TOPUP_MAX/);
    expect(() => settings(bad)).toThrow(/TOPUP_MAX/);
  });
});

/** What `run` returned, and the `settings_invalid` log lines written meanwhile. */
async function withSettingsLog<T>(run: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const logged = vi.spyOn(console, "log");
  const result = await run();
  const lines = logged.mock.calls.map(([line]) => String(line)).filter((line) => line.includes('"event":"settings_invalid"'));
  return { result, lines };
}

async function expectMisconfigured(res: Response): Promise<void> {
  expect(res.status).toBe(500);
  expect(await json(res)).toEqual({ error: { code: "misconfigured", message: "The service is misconfigured; its operator has been told." } });
}

describe("a request to a misconfigured service", () => {
  const app = buildApp();

  async function balance(e: Env, token: string): Promise<Response> {
    const ctx = createExecutionContext();
    const res = await app.fetch(new Request(`${ORIGIN}/billing/balance`, { headers: { authorization: `Bearer ${token}` } }), e, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  }

  it("is answered 500 misconfigured, and the log line names the setting", async () => {
    const token = await tokenFor(newAccountId("settings"));
    const { result, lines } = await withSettingsLog(() => balance({ ...env, TOPUP_MAX: "abc" }, token));
    await expectMisconfigured(result);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ event: "settings_invalid", level: "error", path: "/billing/balance" });
    expect(lines[0]).toContain("TOPUP_MAX must be a whole number");
  });

  it("the same app with a good env answers as usual", async () => {
    expect((await balance(env, await tokenFor(newAccountId("settings")))).status).toBe(200);
  });

  it("a bad setting met inside an object is answered the same way, not as the object being unavailable", async () => {
    const accountId = newAccountId("settings");
    const token = await tokenFor(accountId);
    // The account object reads its settings from its own env when asked for the balance; the
    // Worker's are fine, so the error is raised inside the object and crosses the RPC call.
    await runInDurableObject(accountObject(env, accountId), (instance) => {
      Object.assign(instance, { env: { ...env, TOPUP_CURRENCIES: "dollars" } });
    });
    const { result, lines } = await withSettingsLog(() => balance(env, token));
    await expectMisconfigured(result);
    expect(lines.some((line) => line.includes("TOPUP_CURRENCIES must be three-letter"))).toBe(true);
  });
});
