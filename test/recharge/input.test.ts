// The settings routes refuse what they must, with stable codes and no state change: bad bodies
// (a property over random settings against the rule as stated: 400 invalid_request unless every
// setting is a whole number in range and the recharge is within the top-up limits and the
// monthly limit allows one), enabling without a saved card (409), callers who are not who the
// route is for (401). And strangers: a card is saved only from the account's own top-up, on its
// own customer, and a recharge never charges another account's card.

import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import type { RechargeSettings } from "../../src/recharge/contract.js";
import { MAX_AMOUNT } from "../../src/routes/schemas.js";
import { TEST_BINDINGS } from "../bindings.js";
import { authed, call, confirm, json, newAccountId, payWithTestCard, SERVICE_TOKEN, stripeRequests, tokenFor, topUp } from "../helpers.js";
import {
  accountAlarm,
  accountWithCard,
  browserView,
  cardSaves,
  configRow,
  configure,
  customerPIs,
  debitOk,
  putSettings,
  rechargePIs,
  rewrite,
  settleRecharges,
  stripeCredits,
  stripePI,
  view,
  walletOf,
  type AutoRechargeAnswer,
} from "./helpers.js";

const TOPUP_MIN = 500;
const TOPUP_MAX = 100_000;
const GOOD: RechargeSettings = { enabled: false, threshold: 500, amount: 2000, monthly_limit: 10_000 };

/** The four settings of a view. */
const settingsOf = (v: AutoRechargeAnswer) => ({ enabled: v.enabled, threshold: v.threshold, amount: v.amount, monthly_limit: v.monthly_limit });

/** PUT /billing/auto_recharge as the browser of `token`. */
function browserPut(token: string, body: unknown, contentType = "application/json"): Promise<Response> {
  return authed(token, "/billing/auto_recharge", {
    method: "PUT",
    headers: { "content-type": contentType },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function errorCode(res: Response): Promise<string> {
  return (await json<{ error?: { code?: string } }>(res)).error?.code ?? `(no error, status ${res.status})`;
}

/** The rule as the API states it, written independently of the code: null when the body is acceptable. */
function expectedRefusal(body: Record<string, unknown>): "invalid_request" | null {
  const keys = Object.keys(body).sort();
  if (keys.join(",") !== "amount,enabled,monthly_limit,threshold") return "invalid_request";
  const whole = (v: unknown, min: number, max: number) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
  if (typeof body.enabled !== "boolean") return "invalid_request";
  if (!whole(body.threshold, 1, MAX_AMOUNT)) return "invalid_request";
  if (!whole(body.amount, TOPUP_MIN, TOPUP_MAX)) return "invalid_request";
  if (!whole(body.monthly_limit, 1, MAX_AMOUNT) || (body.monthly_limit as number) < (body.amount as number)) return "invalid_request";
  return null;
}

/** A setting's value: mostly near the edges that matter, sometimes not a whole number at all. */
const near = (...edges: number[]) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...edges).chain((e) => fc.integer({ min: e - 2, max: e + 2 })) },
    { weight: 2, arbitrary: fc.integer({ min: -10, max: MAX_AMOUNT + 10 }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(1.5, "600", null, true, [], {}, -0.5, 1e12) },
  );

const settingsBody: fc.Arbitrary<Record<string, unknown>> = fc.record({
  enabled: fc.oneof({ weight: 9, arbitrary: fc.boolean() }, { weight: 1, arbitrary: fc.constantFrom<unknown>("true", 1, null) }),
  threshold: near(0, 1, MAX_AMOUNT),
  amount: near(TOPUP_MIN, TOPUP_MAX),
  monthly_limit: near(TOPUP_MIN, 2000, TOPUP_MAX, MAX_AMOUNT),
});
// Mostly the four settings and nothing else; sometimes one missing, or one too many.
const bodies = fc.oneof(
  { weight: 8, arbitrary: settingsBody },
  {
    weight: 1,
    arbitrary: fc
      .tuple(settingsBody, fc.constantFrom("enabled", "threshold", "amount", "monthly_limit"))
      .map(([b, missing]) => Object.fromEntries(Object.entries(b).filter(([k]) => k !== missing))),
  },
  { weight: 1, arbitrary: settingsBody.map((b) => ({ ...b, currency: "usd" })) },
);

describe("bad input: stable codes, nothing changed", () => {
  // Random bodies, sent alternately to the seller's and the browser's route of an account with no
  // saved card: each is answered as the stated rule says (400 invalid_request when anything is
  // wrong; a valid one is taken when it leaves auto-recharge off, 409 no_saved_card when it would
  // turn it on), and the stored settings change only on a 200.
  it("PUT over random settings: 200, 400 invalid_request or 409 no_saved_card exactly as the rule says; state changes only on 200", async () => {
    const accountId = newAccountId("rin");
    const token = await tokenFor(accountId);
    let current = settingsOf(await configure(accountId, GOOD));
    let i = 0;
    await fc.assert(
      fc.asyncProperty(bodies, async (b) => {
        const res = i++ % 2 === 0 ? await putSettings(accountId, b) : await browserPut(token, b);
        const refusal = expectedRefusal(b);
        const answer = await json<AutoRechargeAnswer & { error?: { code: string } }>(res);
        if (refusal !== null) expect([res.status, answer.error?.code]).toEqual([400, refusal]);
        else if ("enabled" in b && b.enabled === true) expect([res.status, answer.error?.code]).toEqual([409, "no_saved_card"]);
        else {
          expect(res.status).toBe(200);
          expect(settingsOf(answer)).toEqual(b);
          current = settingsOf(answer);
        }
        expect(settingsOf(await view(accountId))).toEqual(current);
      }),
      { numRuns: 60 },
    );
  });

  // The cases the issue names, one by one, on both routes, with the settings unchanged after all of them.
  it("missing, extra, out-of-range and non-JSON bodies: 400 invalid_request on both routes; wrong media type 415", async () => {
    const accountId = newAccountId("rin");
    const token = await tokenFor(accountId);
    await configure(accountId, GOOD);
    const { threshold: _t, ...noThreshold } = GOOD;
    const bad: unknown[] = [
      noThreshold,
      { ...GOOD, currency: "usd" },
      { ...GOOD, amount: TOPUP_MIN - 1 },
      { ...GOOD, amount: TOPUP_MAX + 1, monthly_limit: TOPUP_MAX + 1 },
      { ...GOOD, monthly_limit: GOOD.amount - 1 },
      { ...GOOD, threshold: 0 },
      { ...GOOD, threshold: -500 },
      { ...GOOD, threshold: 1.5 },
      { ...GOOD, enabled: "false" },
      "{not json",
      "[]",
      "",
    ];
    for (const b of bad) {
      for (const res of [await putSettings(accountId, b), await browserPut(token, b)]) {
        expect([res.status, await errorCode(res)], JSON.stringify(b)).toEqual([400, "invalid_request"]);
      }
    }
    for (const res of [
      await call(`/v1/accounts/${accountId}/auto_recharge`, {
        method: "PUT",
        headers: { authorization: `Bearer ${SERVICE_TOKEN}`, "content-type": "text/plain" },
        body: JSON.stringify(GOOD),
      }),
      await browserPut(token, GOOD, "text/plain"),
    ]) {
      expect([res.status, await errorCode(res)]).toEqual([415, "unsupported_media_type"]);
    }
    expect(settingsOf(await view(accountId))).toEqual(GOOD);
  });

  // Turning it on needs a card saved by a top-up; the refusal leaves the settings as they were.
  it("enabling without a saved card: 409 no_saved_card, settings unchanged", async () => {
    const accountId = newAccountId("rin");
    const token = await tokenFor(accountId);
    await configure(accountId, GOOD);
    for (const res of [await putSettings(accountId, { ...GOOD, enabled: true }), await browserPut(token, { ...GOOD, enabled: true, threshold: 900 })]) {
      expect([res.status, await errorCode(res)]).toEqual([409, "no_saved_card"]);
    }
    expect(settingsOf(await view(accountId))).toEqual(GOOD);
    expect(await configRow(accountId)).toMatchObject({ enabled: 0, threshold: 500, payment_method: null });
  });
});

describe("who may call", () => {
  // The seller's route takes only a service token; the browser's only the account's own JWT.
  // Every other credential is 401 unauthenticated, for reads and writes alike, and a refused
  // write changes nothing.
  it("no token, a wrong token, a browser JWT on the seller's route, the service token on the browser's: 401", async () => {
    const accountId = newAccountId("rin");
    const token = await tokenFor(accountId);
    await configure(accountId, GOOD);
    const forged = await tokenFor(accountId, {}, "not-the-secret-0123456789abcdef0123456789");
    const other = { ...GOOD, threshold: 777 };
    const sellerPath = `/v1/accounts/${accountId}/auto_recharge`;
    const as = (authorization: string | null, path: string, method: "GET" | "PUT") =>
      call(path, {
        method,
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
        ...(method === "PUT" ? { body: JSON.stringify(other) } : {}),
      });
    const refused: [string | null, string][] = [
      [null, sellerPath],
      ["Bearer svc_wrong_token", sellerPath],
      [`Bearer ${token}`, sellerPath],
      [`Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}`, sellerPath],
      [null, "/billing/auto_recharge"],
      [`Bearer ${forged}`, "/billing/auto_recharge"],
      [`Bearer ${SERVICE_TOKEN}`, "/billing/auto_recharge"],
      ["Bearer not.a.jwt", "/billing/auto_recharge"],
    ];
    for (const [authorization, path] of refused) {
      for (const method of ["GET", "PUT"] as const) {
        const res = await as(authorization, path, method);
        expect([res.status, await errorCode(res)], `${method} ${path} as ${authorization}`).toEqual([401, "unauthenticated"]);
      }
    }
    expect(settingsOf(await view(accountId))).toEqual(GOOD);
    // The rotated service token is still a service token.
    const rotated = TEST_BINDINGS.SERVICE_TOKEN.split(",")[1] as string;
    expect((await as(`Bearer ${rotated}`, sellerPath, "GET")).status).toBe(200);
  });

  // The browser's route has no account in its path: whatever the request names, the answer is
  // the signed-in account's own, and a body naming another account is refused.
  it("the browser's route is always the caller's own account", async () => {
    const victim = await accountWithCard(1000);
    await configure(victim.accountId, { ...GOOD, enabled: true });
    const strangerId = newAccountId("rin");
    const stranger = await tokenFor(strangerId);
    for (const path of [`/billing/auto_recharge?account_id=${victim.accountId}`, `/billing/auto_recharge/../auto_recharge?account=${victim.accountId}`]) {
      const res = await authed(stranger, path);
      expect(res.status).toBe(200);
      const seen = await json<AutoRechargeAnswer>(res);
      expect(seen).toMatchObject({ account_id: strangerId, enabled: false, payment_method: null, recharge: null });
    }
    const res = await browserPut(stranger, { ...GOOD, account_id: victim.accountId });
    expect([res.status, await errorCode(res)]).toEqual([400, "invalid_request"]);
    expect(await view(victim.accountId)).toMatchObject({ enabled: true, payment_method: { id: victim.paymentMethod } });
    expect((await browserView(victim.token)).account_id).toBe(victim.accountId);
  });
});

describe("strangers", () => {
  // A top-up made without "save my card" saves nothing, though it is paid with a card; and a
  // card can only come from a top-up of the account's own customer: another account's top-up,
  // even noted as due for saving in this account's storage, is read, found to be another
  // customer's card, and dropped.
  it("a card is saved only from the account's own top-up with save_payment_method", async () => {
    const accountId = newAccountId("rin");
    const token = await tokenFor(accountId);
    const plain = await json<{ payment_intent_id: string }>(await topUp(token, { amount: 1000, currency: "usd" }));
    await payWithTestCard(plain.payment_intent_id);
    expect((await confirm(token, plain.payment_intent_id)).status).toBe(200);
    await accountAlarm(accountId);
    expect((await view(accountId)).payment_method).toBeNull();

    const other = await accountWithCard(1000);
    // Another's top-up is not this account's to confirm (nor to learn about).
    expect((await confirm(token, other.topUpId)).status).toBe(404);
    // Even noted as due here, its card belongs to another customer and is dropped.
    const reads = async () => (await stripeRequests({ method: "GET", path: `/v1/payment_intents/${other.topUpId}` })).length;
    const readsBefore = await reads();
    await rewrite(accountId, "INSERT INTO card_saves (payment_intent_id, due_at, created_at) VALUES (?, ?, ?)", other.topUpId, Date.now() - 1, Date.now());
    // Any write sets the account's due work going (here a debit of 1).
    await debitOk(accountId, 1);
    await vi.waitFor(async () => expect(await cardSaves(accountId)).toEqual([]));
    // It was looked at (read from Stripe, then dropped), and not saved.
    expect(await reads()).toBe(readsBefore + 1);
    expect((await view(accountId)).payment_method).toBeNull();
    expect((await configRow(accountId))?.payment_method ?? null).toBeNull();
    expect(await env.CARD_INDEX.getByName(other.paymentMethod).accountOf()).toBe(other.accountId);
    expect((await stripePI(other.topUpId)).customer).toBe(other.customerId);
  });

  // Each account recharges on its own card, for its own customer. Were an account's record ever
  // to name another account's card, Stripe refuses to charge it for this customer: the recharge
  // fails, nothing is charged, and the other's card is untouched and still works for its owner.
  it("an off-session recharge never charges another account's card", async () => {
    const a = await accountWithCard(1000);
    const b = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 1000, monthly_limit: 10_000 });
    await configure(b.accountId, { enabled: true, threshold: 500, amount: 1000, monthly_limit: 10_000 });
    await Promise.all([debitOk(a.accountId, 600), debitOk(b.accountId, 600)]);
    await Promise.all([settleRecharges(a.accountId), settleRecharges(b.accountId)]);
    for (const x of [a, b]) {
      expect((await rechargePIs(x.customerId)).map((pi) => [pi.customer, pi.payment_method, pi.status])).toEqual([
        [x.customerId, x.paymentMethod, "succeeded"],
      ]);
    }

    // A's record names B's card.
    await rewrite(a.accountId, "UPDATE auto_recharge SET payment_method = ? WHERE id = 1", b.paymentMethod);
    await debitOk(a.accountId, 1000);
    const rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => [r.n, r.status, r.payment_method])).toEqual([
      [1, "succeeded", a.paymentMethod],
      [2, "failed", b.paymentMethod],
    ]);
    expect(rows[1]?.payment_intent_id).toBeNull();
    const everyPI = [...(await customerPIs(a.customerId)), ...(await customerPIs(b.customerId))];
    expect(everyPI.filter((pi) => pi.payment_method === b.paymentMethod).map((pi) => pi.customer)).toEqual([b.customerId, b.customerId]);
    expect(await walletOf(a.accountId)).toEqual({ available: 400, held: 0 });
    for (const pi of await rechargePIs(a.customerId)) expect(await stripeCredits(a.customerId, pi.id)).toEqual([-1000]);

    // B's card still pays B's recharges.
    await debitOk(b.accountId, 1000);
    expect((await settleRecharges(b.accountId)).map((r) => [r.status, r.payment_method])).toEqual([
      ["succeeded", b.paymentMethod],
      ["succeeded", b.paymentMethod],
    ]);
  });
});
