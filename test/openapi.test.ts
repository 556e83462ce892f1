// /openapi.json is generated from the schemas that validate requests. Checked against the real
// routes both ways: every documented operation exists and answers with a documented status, and
// every public route of the app is documented.

import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { call, confirm, json, paidTopUp } from "./helpers.js";

interface Doc {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: { content: Record<string, { schema: unknown }> } }>>;
  components: { schemas: Record<string, { properties?: Record<string, { example?: unknown }> }> };
}

const PUBLIC = /^\/(billing|stripe|healthz|v1)/;

async function loadDoc(): Promise<Doc> {
  const res = await call("/openapi.json");
  expect(res.status).toBe(200);
  return json<Doc>(res);
}

describe("/openapi.json", () => {
  it("documents exactly the public routes the app serves", async () => {
    const doc = await loadDoc();
    expect(doc.openapi).toMatch(/^3\.1/);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    const served = buildApp()
      .routes.filter((r) => r.method !== "ALL" && PUBLIC.test(r.path))
      .map((r) => `${r.method} ${r.path.replace(/\/$/, "").replace(/:([a-z_]+)/g, "{$1}")}`);
    expect(new Set(documented)).toEqual(new Set(served));
    expect(documented.sort()).toEqual(
      [
        "GET /billing/auto_recharge",
        "PUT /billing/auto_recharge",
        "GET /billing/balance",
        "GET /billing/config",
        "GET /billing/transactions",
        "GET /healthz",
        "POST /billing/confirm_payment",
        "POST /billing/top_ups",
        "POST /stripe/webhook",
        "POST /v1/accounts/{account_id}/debits",
        "POST /v1/accounts/{account_id}/holds",
        "POST /v1/accounts/{account_id}/holds/{hold_id}/capture",
        "POST /v1/accounts/{account_id}/holds/{hold_id}/release",
        "GET /v1/accounts/{account_id}/balance",
        "GET /v1/accounts/{account_id}/transactions",
        "GET /v1/accounts/{account_id}/settings",
        "PUT /v1/accounts/{account_id}/settings",
        "GET /v1/accounts/{account_id}/auto_recharge",
        "PUT /v1/accounts/{account_id}/auto_recharge",
      ].sort(),
    );
  });

  it("every documented operation answers an empty request with a status it documents", async () => {
    const doc = await loadDoc();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const res = await call(path, {
          method: method.toUpperCase(),
          ...(method === "post" || method === "put" ? { headers: { "content-type": "application/json" }, body: "{}" } : {}),
        });
        expect(Object.keys(op.responses), `${method} ${path} answered ${res.status}`).toContain(String(res.status));
      }
    }
  });

  it("the seller's routes are under the service-token scheme, the browser's under the JWT", async () => {
    const doc = (await loadDoc()) as Doc & {
      paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
      components: { securitySchemes?: Record<string, { type: string; scheme: string }> };
    };
    expect(doc.components.securitySchemes?.service).toMatchObject({ type: "http", scheme: "bearer" });
    expect(doc.components.securitySchemes?.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (path.startsWith("/v1/")) expect(op.security, `${method} ${path}`).toEqual([{ service: [] }]);
        // The page's settings are read before anyone signs in: the one public browser route.
        if (path.startsWith("/billing/")) expect(op.security, `${method} ${path}`).toEqual(path === "/billing/config" ? [] : [{ bearer: [] }]);
      }
    }
  });

  it("the documented examples pass the real validation", async () => {
    const doc = await loadDoc();
    const example = doc.components.schemas.ConfirmPaymentRequest?.properties?.payment_intent_id?.example;
    expect(typeof example).toBe("string");
    const { token } = await paidTopUp();
    // Well-formed per the schema, so not a 400: simply not this caller's PaymentIntent.
    expect((await confirm(token, example as string)).status).toBe(404);
  });
});
