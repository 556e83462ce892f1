// The operator view: credits waiting for a retry or stuck, with their last error and next
// retry time, and "retry now". Only with the service token; never open to a browser.

import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import { registryObject } from "../src/objects/stubs.js";
import { TEST_BINDINGS } from "./bindings.js";
import {
  addFault,
  call,
  confirm,
  deliver,
  emu,
  eventsFor,
  json,
  ledgerFor,
  paidThroughService,
  paidTopUp,
  piObject,
  removeFault,
  settledCredit,
  tokenFor,
  waitForObject,
  refuseCreditOnce,
} from "./helpers.js";

const auth = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

interface Listed {
  payment_intent_id: string;
  state: string;
  last_error: string | null;
  retry_count: number;
  next_retry_at: string | null;
  adjustments: { operation: string; state: string; direction: string; amount: number; last_error: string | null }[];
}

/** Every entry GET /operator/credits shows, page by page. */
async function listed(): Promise<Listed[]> {
  const all: Listed[] = [];
  let after: string | null = null;
  do {
    const res = await call(`/operator/credits?limit=200${after ? `&after=${after}` : ""}`, { headers: auth });
    expect(res.status).toBe(200);
    const page = await json<{ data: Listed[]; next_after: string | null }>(res);
    all.push(...page.data);
    after = page.next_after;
  } while (after);
  return all;
}

describe("operator routes", () => {
  it("list a waiting credit with its error and next retry, retry it now, then drop it from the list", async () => {
    const { customer, pi, token } = await paidTopUp(1234);
    const rule = await addFault({ kind: "error_500", saved: false, key: `credit-tx:${pi.id}*`, times: 1000 });
    expect((await confirm(token, pi.id)).status).toBe(503);

    const entry = (await listed()).find((e) => e.payment_intent_id === pi.id);
    expect(entry?.state).toBe("verified");
    expect(entry?.last_error).toContain("500");
    expect(entry?.retry_count).toBe(1);
    expect(Date.parse(entry?.next_retry_at ?? "")).toBeGreaterThan(Date.now());

    const detail = await json<{ record: { state: string }; journal: { step: string; outcome: string }[] }>(
      await call(`/operator/credits/${pi.id}`, { headers: auth }),
    );
    expect(detail.record.state).toBe("verified");
    expect(detail.journal.some((j) => j.step === "credit" && j.outcome === "ambiguous")).toBe(true);

    await removeFault(rule);
    const retried = await json<{ result: { ok: boolean }; record: { state: string } }>(
      await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: auth }),
    );
    expect(retried.result.ok).toBe(true);
    expect(retried.record.state).toBe("credited");
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1);

    expect((await listed()).map((e) => e.payment_intent_id)).not.toContain(pi.id);
  });

  it.each([
    ["no token", async (): Promise<Record<string, string>> => ({})],
    ["a browser's token", async (): Promise<Record<string, string>> => ({ authorization: `Bearer ${await tokenFor("acct_x")}` })],
    ["a wrong token", async (): Promise<Record<string, string>> => ({ authorization: "Bearer op_wrong" })],
  ])("refuse %s with 401", async (_, headers) => {
    const h = await headers();
    for (const [path, method] of [
      ["/operator/credits", "GET"],
      ["/operator/credits/pi_123", "GET"],
      ["/operator/credits/pi_123/retry", "POST"],
      ["/operator/events", "GET"],
    ] as const) {
      const res = await call(path, { method, headers: h });
      expect(res.status).toBe(401);
      expect((await json<{ error: { code: string } }>(res)).error.code).toBe("unauthenticated");
    }
  });

  it("keep a credited PI listed while a reversal Stripe refused needs attention, then drop it once written", async () => {
    const { token, pi, customerId } = await paidThroughService(1500);
    expect((await confirm(token, pi.id)).status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    // Stripe refuses every reversal write for this PI (a permanent 400), whatever the key.
    const rule = await addFault({
      kind: "error_400",
      method: "POST",
      path: `/v1/customers/${customerId}/balance_transactions`,
      key: `credit-adjust:${pi.id}*`,
      times: 1000,
    });
    try {
      await emu(`/payment_intents/${pi.id}/refund`, { amount: 500 });
      const [refunded] = await eventsFor("charge.refunded", pi.id);
      expect((await deliver(refunded?.id ?? "missing")).status).toBe(200);
      const stuck = await waitForObject(pi.id, (i) => i.adjustments.some((a) => a.state === "needs_attention"));
      expect(stuck.record?.state).toBe("credited");
      expect(stuck.record?.mark_state).toBe("off");

      // Twice: the first listing must not have pruned it.
      for (let round = 0; round < 2; round++) {
        const entry = (await listed()).find((e) => e.payment_intent_id === pi.id);
        expect(entry?.state).toBe("reversal_needs_attention");
        expect(entry?.adjustments).toHaveLength(1);
        expect(entry?.adjustments[0]).toMatchObject({ state: "needs_attention", direction: "debit", amount: 500 });
        expect(entry?.adjustments[0]?.operation).toContain("refund");
        expect(entry?.adjustments[0]?.last_error).toBeTruthy();
      }
      expect((await piObject(pi.id).inspect()).adjustments.map((a) => a.state)).toEqual(["needs_attention"]);
    } finally {
      await removeFault(rule);
    }

    // Once the operator's retry writes the reversal, nothing is owed and the list drops it.
    expect((await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: auth })).status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    expect((await ledgerFor(customerId, pi.id)).map((tx) => tx.amount).sort((a, b) => a - b)).toEqual([-1500, 500]);
    expect((await listed()).map((e) => e.payment_intent_id)).not.toContain(pi.id);
  });

  it("only read: listing twice gives the same answer and changes neither the PI object nor the registry", async () => {
    const { customer, pi, token } = await paidTopUp(1600);
    // Stripe refuses the credit: the PI needs an operator, and nothing runs on its own meanwhile.
    const refuse = await refuseCreditOnce(customer.id, pi.id);
    expect((await confirm(token, pi.id)).status).toBe(409);
    await removeFault(refuse);
    await waitForObject(pi.id, (i) => i.record?.state === "needs_attention" && i.record.mark_state === "off");
    const registryRow = () =>
      runInDurableObject(registryObject(env), async (_instance, state) =>
        state.storage.sql.exec("SELECT * FROM attention WHERE payment_intent_id = ?", pi.id).toArray(),
      );
    // A listing brings a registry entry the object reported earlier in step with it; from then
    // on, listing changes nothing.
    await listed();
    const before = { object: await piObject(pi.id).inspect(), row: await registryRow() };
    expect(before.row).toHaveLength(1);

    const first = (await listed()).find((e) => e.payment_intent_id === pi.id);
    const second = (await listed()).find((e) => e.payment_intent_id === pi.id);
    expect(first).toMatchObject({ state: "needs_attention", adjustments: [] });
    expect(second).toEqual(first);
    expect(await piObject(pi.id).inspect()).toEqual(before.object);
    expect(await registryRow()).toEqual(before.row);
  });

  it("are disabled (403) when no operator token is configured", async () => {
    const res = await buildApp().fetch(
      new Request("https://billing.test/operator/credits", { headers: auth }),
      { ...env, OPERATOR_TOKEN: "" },
      createExecutionContext(),
    );
    expect(res.status).toBe(403);
  });

  it("answer 404 for a PI with no record and 400 for a malformed id", async () => {
    expect((await call("/operator/credits/pi_NoSuchRecord000", { headers: auth })).status).toBe(404);
    expect((await call("/operator/credits/not-a-pi/retry", { method: "POST", headers: auth })).status).toBe(400);
  });

  it("give no CORS grant, even to an allowed origin", async () => {
    const res = await call("/operator/credits", {
      method: "OPTIONS",
      headers: { origin: TEST_BINDINGS.ALLOWED_ORIGINS, "access-control-request-method": "GET" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
