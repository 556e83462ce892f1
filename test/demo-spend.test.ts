// The demo's "Use credit" route (src/routes/demo.ts) inside workerd: it exists only with
// DEMO_MODE on, needs the browser's sign-in, says plainly when SERVICE_TOKEN is missing, and
// otherwise answers exactly what the seller's POST /v1/accounts/{account}/debits answers.
// The test bindings leave DEMO_MODE off, so these requests go to an app handed an env with it on.

import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import type { Env } from "../src/env.js";
import { confirm, newAccountId, ORIGIN, paidTopUp, tokenFor } from "./helpers.js";

const app = buildApp();

async function spend(settings: Partial<Env>, token: string | null, body: unknown, key: string | null): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`${ORIGIN}/demo/spend`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...(key ? { "idempotency-key": key } : {}) },
      body: JSON.stringify(body),
    }),
    { ...env, DEMO_MODE: "true", ...settings },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

describe("POST /demo/spend", () => {
  it("is 404 unless DEMO_MODE is on", async () => {
    const token = await tokenFor(newAccountId("demo"));
    const res = await spend({ DEMO_MODE: undefined }, token, { amount: 100, currency: "usd" }, "k");
    expect(res.status).toBe(404);
  });

  it("needs the browser's sign-in, and refuses the service token itself", async () => {
    expect((await spend({}, null, { amount: 100, currency: "usd" }, "k")).status).toBe(401);
    const service = env.SERVICE_TOKEN?.split(",")[0] ?? "";
    expect((await spend({}, service, { amount: 100, currency: "usd" }, "k")).status).toBe(401);
  });

  it("is 503 service_token_missing when SERVICE_TOKEN is unset or blank", async () => {
    const token = await tokenFor(newAccountId("demo"));
    for (const setting of [undefined, "", " , "]) {
      const res = await spend({ SERVICE_TOKEN: setting }, token, { amount: 100, currency: "usd" }, "k");
      expect(res.status).toBe(503);
      expect((await res.json<{ error: { code: string } }>()).error.code).toBe("service_token_missing");
    }
  });

  it("answers what the seller's debit route answers, under the browser's Idempotency-Key", async () => {
    const { accountId, pi, token } = await paidTopUp(300);
    expect((await confirm(token, pi.id)).status).toBe(200);
    const first = await spend({}, token, { amount: 200, currency: "usd" }, "demo-k1");
    expect(first.status).toBe(201);
    const debit = await first.json<{ id: string; account_id: string; balance: { available: number } }>();
    expect(debit).toMatchObject({ account_id: accountId, balance: { available: 100 } });
    const replay = await spend({}, token, { amount: 200, currency: "usd" }, "demo-k1");
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(await replay.json()).toEqual(debit);
    const short = await spend({}, token, { amount: 200, currency: "usd" }, "demo-k2");
    expect(short.status).toBe(402);
    expect(await short.json()).toMatchObject({ error: { code: "insufficient_credit", available: 100 } });
    expect((await spend({}, token, { amount: 50, currency: "usd" }, null)).status).toBe(400);
    expect((await spend({}, token, { amount: 0.5, currency: "usd" }, "demo-k3")).status).toBe(400);
  });
});
