// The operator view: credits waiting for a retry or stuck, with their last error and next
// retry time, and "retry now". Only with the service token; never open to a browser.

import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { TEST_BINDINGS } from "./bindings.js";
import { addFault, call, confirm, json, ledgerFor, paidTopUp, removeFault, tokenFor } from "./helpers.js";

const auth = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

interface Listed {
  payment_intent_id: string;
  state: string;
  last_error: string | null;
  retry_count: number;
  next_retry_at: string | null;
}

describe("operator routes", () => {
  it("list a waiting credit with its error and next retry, retry it now, then drop it from the list", async () => {
    const { customer, pi, token } = await paidTopUp(1234);
    const rule = await addFault({ kind: "error_500", saved: false, key: `credit-tx:${pi.id}*`, times: 1000 });
    expect((await confirm(token, pi.id)).status).toBe(503);

    const list = await json<{ data: Listed[] }>(await call("/operator/credits", { headers: auth }));
    const entry = list.data.find((e) => e.payment_intent_id === pi.id);
    expect(entry?.state).toBe("verified");
    expect(entry?.last_error).toContain("500");
    expect(entry?.retry_count).toBe(1);
    expect(Date.parse(entry?.next_retry_at ?? "")).toBeGreaterThan(Date.now());

    const detail = await json<{ record: { state: string }; journal: { step: string; outcome: string }[] }>(await call(`/operator/credits/${pi.id}`, { headers: auth }));
    expect(detail.record.state).toBe("verified");
    expect(detail.journal.some((j) => j.step === "credit" && j.outcome === "ambiguous")).toBe(true);

    await removeFault(rule);
    const retried = await json<{ result: { ok: boolean }; record: { state: string } }>(await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: auth }));
    expect(retried.result.ok).toBe(true);
    expect(retried.record.state).toBe("credited");
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1);

    const after = await json<{ data: Listed[] }>(await call("/operator/credits", { headers: auth }));
    expect(after.data.map((e) => e.payment_intent_id)).not.toContain(pi.id);
  });

  it.each([
    ["no token", async (): Promise<Record<string, string>> => ({})],
    ["a browser's token", async (): Promise<Record<string, string>> => ({ authorization: `Bearer ${await tokenFor("acct_x")}` })],
    ["a wrong token", async (): Promise<Record<string, string>> => ({ authorization: "Bearer op_wrong" })],
  ])("refuse %s with 401", async (_, headers) => {
    const h = await headers();
    for (const [path, method] of [["/operator/credits", "GET"], ["/operator/credits/pi_123/retry", "POST"]] as const) {
      const res = await call(path, { method, headers: h });
      expect(res.status).toBe(401);
      expect((await json<{ error: { code: string } }>(res)).error.code).toBe("unauthenticated");
    }
  });

  it("are disabled (403) when no operator token is configured", async () => {
    const res = await buildApp().fetch(new Request("https://billing.test/operator/credits", { headers: auth }), { ...env, OPERATOR_TOKEN: "" }, createExecutionContext());
    expect(res.status).toBe(403);
  });

  it("answer 404 for a PI with no record and 400 for a malformed id", async () => {
    expect((await call("/operator/credits/pi_NoSuchRecord000", { headers: auth })).status).toBe(404);
    expect((await call("/operator/credits/not-a-pi/retry", { method: "POST", headers: auth })).status).toBe(400);
  });

  it("give no CORS grant, even to an allowed origin", async () => {
    const res = await call("/operator/credits", { method: "OPTIONS", headers: { origin: TEST_BINDINGS.ALLOWED_ORIGINS, "access-control-request-method": "GET" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
