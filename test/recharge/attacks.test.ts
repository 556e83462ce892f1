// Auto-recharge attacked from outside: strangers (another account's sign-in, the seller's token
// on another path, a card saved by one account offered for another, forged detach events), money
// (a recharge's credit raced by every path under a slow Stripe and crashes; settings changed while
// a recharge is recorded but not sent, or sent but not answered), crashes at each await of a
// recharge's life, a Stripe that fails on every retry of the create, the cancel and the card read
// and then recovers, a flood of debits and setting changes, and malformed settings. Each test
// ends on the rails the README's "Auto-recharge" section promises (`expectRails`).

import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import type { RechargeSettings } from "../../src/recharge/contract.js";
import { monthOf } from "../../src/recharge/rules.js";
import type { RechargeRow } from "../../src/recharge/schema.js";
import { MAX_AMOUNT } from "../../src/routes/schemas.js";
import { TEST_BINDINGS } from "../bindings.js";
import {
  addFault,
  authed,
  call,
  confirm,
  deliver,
  emu,
  eventsFor,
  json,
  ledgerFor,
  markingOn,
  markSettled,
  newAccountId,
  payWithTestCard,
  piObject,
  postWebhook,
  removeFault,
  SERVICE_TOKEN,
  settledCredit,
  stripeRequests,
  tokenFor,
  topUp,
  waitForObject,
  waitForRequest,
} from "../helpers.js";
import { signatureHeader } from "../emulator/webhooks.js";
import {
  accountStub,
  accountWithCard,
  authenticateOnPage,
  browserView,
  cardBehaves,
  configure,
  debit,
  debitOk,
  nudge,
  putSettings,
  rechargePIs,
  rechargeRows,
  rewrite,
  settleRecharges,
  snapshot,
  stripeCredits,
  stripePI,
  tagOf,
  view,
  walletCredits,
  walletOf,
  type AutoRechargeAnswer,
  type SavedCard,
} from "./helpers.js";

const OPEN = new Set<RechargeRow["status"]>(["pending", "processing", "action_required"]);
const SECRET = { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}`, "content-type": "application/x-www-form-urlencoded" };
const ON: RechargeSettings = { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 };

/** The four settings of a view. */
const settingsOf = (v: AutoRechargeAnswer) => ({ enabled: v.enabled, threshold: v.threshold, amount: v.amount, monthly_limit: v.monthly_limit });

async function errorCode(res: Response): Promise<string> {
  return (await json<{ error?: { code?: string } }>(res)).error?.code ?? `(no error, status ${res.status})`;
}

/**
 * What the clock would do for steps waiting on a backoff (at most minutes): makes them due now.
 * A recharge waiting a day for the customer keeps its day.
 */
async function dueNow(accountId: string): Promise<void> {
  const now = Date.now();
  await rewrite(accountId, "UPDATE recharges SET due_at = ? WHERE due_at IS NOT NULL AND due_at < ?", now - 1, now + 3600_000);
  await rewrite(accountId, "UPDATE card_saves SET due_at = ? WHERE due_at IS NOT NULL AND due_at < ?", now - 1, now + 3600_000);
}

/** Lets time pass and alarms run until `ready` holds for the recharge records; answers them. */
async function driveUntil(accountId: string, ready: (rows: RechargeRow[]) => boolean, timeout = 15_000): Promise<RechargeRow[]> {
  let rows: RechargeRow[] = [];
  await vi.waitFor(
    async () => {
      rows = await rechargeRows(accountId);
      if (ready(rows)) return;
      await dueNow(accountId);
      await nudge(accountId);
      throw new Error(`not yet: ${JSON.stringify(rows.map((r) => [r.n, r.status, r.due_at, r.last_error]))}`);
    },
    { timeout, interval: 40 },
  );
  return rows;
}

const closed = (rows: RechargeRow[]) => rows.every((r) => !OPEN.has(r.status));

/** How often the emulator's fault rule `id` fired: a test whose fault never fired proves nothing. */
async function fired(id: number): Promise<number> {
  const { data } = await emu<{ data: { id: number; fired: number }[] }>("/faults");
  return data.find((r) => r.id === id)?.fired ?? 0;
}

/** The Idempotency-Keys of every creation request Stripe saw for recharge `n` of the account (any key that starts as its key does). */
async function creationKeys(accountId: string, n: number): Promise<string[]> {
  const requests = await stripeRequests({ method: "POST", path: "/v1/payment_intents", key: `recharge:${accountId}:${n}*` });
  return [...new Set(requests.map((r) => r.idempotency_key ?? "(none)"))];
}

/** The account object's stored alarm (null: none). */
function accountAlarmAt(accountId: string): Promise<number | null> {
  return runInDurableObject(accountStub(accountId), (_i, state) => state.storage.getAlarm());
}

/**
 * The rails, checked against the account's storage, Stripe and the wallet together:
 * - at most one recharge is open;
 * - this month's recharges that took or may take money add up to at most `limit`;
 * - every PaymentIntent Stripe holds with `metadata.recharge` is on this customer and card, one
 *   per recharge number, and names a recharge that was sent (at the end: the one recorded for it);
 * - every succeeded recharge has one credit of its amount in Stripe's ledger and one wallet line,
 *   a failed or cancelled one has none, and every recharge credit in the wallet closed its recharge;
 * - with `available`: the wallet's figure is exactly that plus what was recharged.
 */
async function expectRails(a: SavedCard, opts: { limit?: number; available?: number; final?: boolean } = {}): Promise<RechargeRow[]> {
  const made = await rechargePIs(a.customerId);
  const { rows, wallet, credits } = await snapshot(a.accountId);
  const ledger = await ledgerFor(a.customerId);

  expect(rows.filter((r) => OPEN.has(r.status)).length, "open recharges").toBeLessThanOrEqual(1);
  if (opts.limit !== undefined) {
    const counted = rows.filter((r) => r.month === monthOf(Date.now()) && r.status !== "failed" && r.status !== "canceled");
    expect(
      counted.reduce((s, r) => s + r.amount, 0),
      "recharged this month",
    ).toBeLessThanOrEqual(opts.limit);
  }
  const tags = made.map((pi) => pi.metadata.recharge);
  expect(new Set(tags).size, `one PaymentIntent per recharge: ${tags.join(",")}`).toBe(tags.length);
  for (const pi of made) {
    expect(pi.customer).toBe(a.customerId);
    expect(pi.payment_method ?? pi.last_payment_error?.payment_method?.id).toBe(a.paymentMethod);
    const n = Number(pi.metadata.recharge?.slice(a.accountId.length + 1));
    expect(pi.metadata.recharge).toBe(tagOf(a.accountId, n));
    const rec = rows.find((r) => r.n === n);
    expect(rec?.sent, `recharge ${n} was sent`).toBe(1);
    if (opts.final) expect(rec?.payment_intent_id).toBe(pi.id);
  }
  const creditsOf = (pi: string | null) => ({
    stripe: ledger.filter((tx) => pi !== null && tx.metadata.payment_intent === pi).map((tx) => tx.amount),
    wallet: credits.filter((l) => pi !== null && l.payment_intent_id === pi).map((l) => l.amount),
  });
  for (const r of rows) {
    if (r.status === "succeeded") expect(creditsOf(r.payment_intent_id), `recharge ${r.n}`).toEqual({ stripe: [-r.amount], wallet: [r.amount] });
    if (r.status === "failed" || r.status === "canceled") expect(creditsOf(r.payment_intent_id), `recharge ${r.n}`).toEqual({ stripe: [], wallet: [] });
  }
  const rechargeIds = new Set(made.map((pi) => pi.id));
  const rechargeCredits = credits.filter((l) => rechargeIds.has(l.payment_intent_id));
  expect(rechargeCredits.map((l) => l.payment_intent_id).sort()).toEqual(
    rows
      .filter((r) => r.status === "succeeded")
      .map((r) => r.payment_intent_id)
      .sort(),
  );
  if (opts.available !== undefined) {
    const recharged = rechargeCredits.reduce((s, l) => s + l.amount, 0);
    expect(wallet.available).toBe(opts.available + recharged);
  }
  return rows;
}

/**
 * Keeps the account's recharge runner busy for about two seconds: a card save is owed (as a
 * credited "save my card" top-up leaves it) and Stripe does not answer its read twice. A recharge
 * recorded meanwhile waits, recorded but not sent, until the runner comes round to it. Answers
 * once the read is in flight. The account's `available` must stay at or above its threshold after 1.
 */
async function holdRunner(a: SavedCard): Promise<number> {
  const path = `/v1/payment_intents/${a.topUpId}`;
  const fault = await addFault({ kind: "hang", method: "GET", path, times: 2 });
  await rewrite(a.accountId, "INSERT INTO card_saves (payment_intent_id, due_at, created_at) VALUES (?, ?, ?)", a.topUpId, Date.now() - 1, Date.now());
  // Any write sets owed work going.
  await debitOk(a.accountId, 1);
  await waitForRequest({ method: "GET", path });
  return fault;
}

/** A PaymentIntent made with the secret key (the seller's other code, or an attacker holding it): form-encoded params. */
async function stripeCreatePI(params: Record<string, string>): Promise<{ id: string; status: string; payment_method: string | null }> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents`, { method: "POST", headers: SECRET, body: new URLSearchParams(params) });
  const body = await res.json<{ id: string; status: string; payment_method: string | null }>();
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

/** Stripe.js on a page: confirms `paymentIntentId` with the publishable key, its client secret and `paymentMethod`. */
function pageConfirm(paymentIntentId: string, clientSecret: string, paymentMethod: string): Promise<Response> {
  return fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/${paymentIntentId}/confirm`, {
    method: "POST",
    headers: { authorization: "Bearer pk_test_emulator", "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_secret: clientSecret, payment_method: paymentMethod }),
  });
}

/** A `payment_method.detached` payload for `paymentMethod`, as Stripe sends it (the card no longer names a customer). */
function detachedPayload(paymentMethod: string): string {
  return JSON.stringify({
    id: `evt_${newAccountId("d").replace(/[^A-Za-z0-9]/g, "")}`,
    object: "event",
    type: "payment_method.detached",
    livemode: false,
    created: Math.floor(Date.now() / 1000),
    data: { object: { id: paymentMethod, object: "payment_method", customer: null }, previous_attributes: { customer: "cus_x" } },
  });
}

/** An account with a saved card whose recharge 1 waits for the customer to authenticate; its PaymentIntent and client secret. */
async function waitingRecharge(): Promise<SavedCard & { pi: string; clientSecret: string }> {
  const a = await accountWithCard(1000);
  await configure(a.accountId, ON);
  await cardBehaves(a.paymentMethod, "authentication_required");
  await debitOk(a.accountId, 600);
  const [rec] = await settleRecharges(a.accountId);
  expect(rec).toMatchObject({ n: 1, status: "action_required" });
  return { ...a, pi: rec?.payment_intent_id as string, clientSecret: rec?.client_secret as string };
}

describe("strangers", () => {
  // The browser's route has no account in it: another account's sign-in reads and writes only
  // its own auto-recharge, even while this account's recharge waits with a client secret that
  // would let anyone holding it pay on its card. The seller's one token reaches any account by
  // its path, and a PUT on B's path changes B alone.
  it("another account's sign-in never sees or changes this account's auto-recharge; the seller's PUT on B's path changes only B", async () => {
    const victim = await waitingRecharge();
    const before = await view(victim.accountId);
    expect(before.recharge?.client_secret).toBe(victim.clientSecret);

    const strangerId = newAccountId("ratk");
    const stranger = await tokenFor(strangerId);
    const put = (body: unknown) =>
      authed(stranger, "/billing/auto_recharge", { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const seen = await authed(stranger, `/billing/auto_recharge?account_id=${victim.accountId}`);
    const text = await seen.text();
    expect(seen.status).toBe(200);
    for (const secret of [victim.accountId, victim.pi, victim.clientSecret, victim.paymentMethod]) expect(text).not.toContain(secret);
    expect([(await put({ ...ON, enabled: true })).status]).toEqual([409]);
    const own = await put({ ...ON, enabled: false, threshold: 1 });
    expect(own.status).toBe(200);
    expect(await json<AutoRechargeAnswer>(own)).toMatchObject({ account_id: strangerId, threshold: 1, payment_method: null, recharge: null });
    // The victim's recharge PaymentIntent is not the stranger's to confirm, nor to learn about.
    const refused = await confirm(stranger, victim.pi);
    expect([refused.status, await errorCode(refused)]).toEqual([404, "payment_intent_not_found"]);

    // The seller's token on another account's path: that account changes, the victim does not.
    const other = newAccountId("ratk");
    const res = await putSettings(other, { ...ON, enabled: false, threshold: 4321 });
    expect(res.status).toBe(200);
    expect((await view(other)).threshold).toBe(4321);

    expect(await view(victim.accountId)).toEqual(before);
    expect(await browserView(victim.token)).toEqual(before);
    expect((await rechargeRows(victim.accountId)).map((r) => [r.n, r.status])).toEqual([[1, "action_required"]]);
  });

  // A's card can pay only for A's customer. A PaymentIntent on A's customer whose metadata
  // names B (made with the secret key, saving a new card) credits A, whose customer paid, and
  // saves nobody's card: B's browser cannot confirm it, B's wallet and card are untouched, and
  // A keeps the card it chose. B's own top-up paid on the page with A's saved card is refused by
  // Stripe; paid with B's own card, it saves B's card, not A's. Then each account's recharge
  // charges its own card for its own customer.
  it("a card saved by A is never charged for B, whatever the metadata or the page say", async () => {
    const a = await accountWithCard(1000, "ratk");
    const b = await accountWithCard(1000, "ratk");
    await configure(a.accountId, ON);
    await configure(b.accountId, ON);

    const named = await stripeCreatePI({
      amount: "1500",
      currency: "usd",
      customer: a.customerId,
      payment_method: "pm_card_mastercard",
      confirm: "true",
      setup_future_usage: "off_session",
      "automatic_payment_methods[enabled]": "true",
      "automatic_payment_methods[allow_redirects]": "never",
      "metadata[account_id]": b.accountId,
      "metadata[edge_credit]": "top_up",
    });
    expect(named.status).toBe("succeeded");
    const refused = await confirm(b.token, named.id);
    expect([refused.status, await errorCode(refused)]).toEqual([404, "payment_intent_not_found"]);
    const [succeeded] = await eventsFor("payment_intent.succeeded", named.id);
    expect((await deliver(succeeded?.id as string)).status).toBe(200);
    await waitForObject(named.id, settledCredit);
    await vi.waitFor(async () => expect((await walletCredits(a.accountId, named.id)).map((l) => l.amount)).toEqual([1500]));
    expect(await walletCredits(b.accountId, named.id)).toEqual([]);
    expect(await walletOf(b.accountId)).toEqual({ available: 1000, held: 0 });
    expect(await env.CARD_INDEX.getByName(named.payment_method as string).accountOf()).toBeNull();

    // B's "save my card" top-up, paid on the page with A's saved card: Stripe refuses.
    const created = await json<{ payment_intent_id: string; client_secret: string }>(
      await topUp(b.token, { amount: 700, currency: "usd", save_payment_method: true }),
    );
    const stolen = await pageConfirm(created.payment_intent_id, created.client_secret, a.paymentMethod);
    expect(stolen.status).toBe(400);
    expect((await json<{ error: { message: string } }>(stolen)).error.message).toContain("does not belong to the Customer");
    expect((await confirm(b.token, created.payment_intent_id)).status).toBe(409);
    // Paid with B's own card: that card is B's saved card, not A's.
    await payWithTestCard(created.payment_intent_id, "pm_card_amex");
    expect((await confirm(b.token, created.payment_intent_id)).status).toBe(200);
    const saved = (await stripePI(created.payment_intent_id)).payment_method as string;
    const bView = await vi.waitFor(async () => {
      await nudge(b.accountId);
      const v = await view(b.accountId);
      expect(v.payment_method?.id).toBe(saved);
      return v;
    });
    expect(bView.payment_method).toMatchObject({ brand: "amex" });
    const bCard: SavedCard = { ...b, paymentMethod: saved };
    expect((await view(a.accountId)).payment_method?.id).toBe(a.paymentMethod);
    expect(await env.CARD_INDEX.getByName(a.paymentMethod).accountOf()).toBe(a.accountId);

    // Each recharges on its own card, for its own customer.
    await Promise.all([debitOk(a.accountId, 2100), debitOk(b.accountId, 1300)]);
    await Promise.all([settleRecharges(a.accountId), settleRecharges(b.accountId)]);
    for (const x of [a, bCard]) {
      expect((await rechargePIs(x.customerId)).map((pi) => [pi.customer, pi.payment_method, pi.status])).toEqual([
        [x.customerId, x.paymentMethod, "succeeded"],
      ]);
      await expectRails(x, { final: true });
    }
    expect(await walletOf(a.accountId)).toEqual({ available: 1000 + 1500 - 1 * 2100 + 2000, held: 0 });
    expect(await walletOf(b.accountId)).toEqual({ available: 1000 + 700 - 1300 + 2000, held: 0 });
  });

  // payment_method.detached switches auto-recharge off, so a forged one would be a way to stop
  // an account's recharges: unsigned, signed with another secret, or signed for another body,
  // it is 400 invalid_signature and changes nothing. Signed (Stripe's word) for a card A no
  // longer uses (replaced by a newer save) or for another account's card, A keeps its card and
  // stays on.
  it("forged detach events are refused; genuine ones for a card A does not use change nothing of A's", async () => {
    const a = await accountWithCard(1000, "ratk");
    const old = a.paymentMethod;
    // A newer "save my card" top-up replaces the card A recharges with.
    const created = await json<{ payment_intent_id: string }>(await topUp(a.token, { amount: 500, currency: "usd", save_payment_method: true }));
    await payWithTestCard(created.payment_intent_id, "pm_card_mastercard");
    expect((await confirm(a.token, created.payment_intent_id)).status).toBe(200);
    const newer = (await stripePI(created.payment_intent_id)).payment_method as string;
    await vi.waitFor(async () => {
      await nudge(a.accountId);
      expect((await view(a.accountId)).payment_method?.id).toBe(newer);
    });
    await configure(a.accountId, ON);
    const before = await view(a.accountId);
    const other = await accountWithCard(1000, "ratk");

    const forged = detachedPayload(newer);
    const attempts: [string, string | null][] = [
      [forged, null],
      [forged, await signatureHeader(forged, "whsec_not_the_secret")],
      [forged, await signatureHeader(detachedPayload(other.paymentMethod), TEST_BINDINGS.STRIPE_WEBHOOK_SECRET)],
      [forged, "t=1,v1=00"],
    ];
    for (const [payload, signature] of attempts) {
      const res = await postWebhook(payload, signature);
      expect([res.status, await errorCode(res)]).toEqual([400, "invalid_signature"]);
    }
    for (const pm of [old, other.paymentMethod]) {
      const payload = detachedPayload(pm);
      expect((await postWebhook(payload, await signatureHeader(payload, TEST_BINDINGS.STRIPE_WEBHOOK_SECRET))).status).toBe(200);
    }
    expect(await view(a.accountId)).toEqual(before);
    expect(before).toMatchObject({ enabled: true, payment_method: { id: newer } });
    // The other account's card was its saved card: that account, and only it, forgot it.
    expect((await view(other.accountId)).payment_method).toBeNull();
    // Still on, on the newer card.
    await debitOk(a.accountId, 1100);
    const [rec] = await settleRecharges(a.accountId);
    expect(rec).toMatchObject({ status: "succeeded", payment_method: newer });
  });
});

describe("money", () => {
  // One account, one dip per run: its recharge's credit is raced by the browser's confirms,
  // Stripe's webhook deliveries, the account's alarm, the PaymentIntent object's alarm and an
  // eviction of every object, in a random order and number, while Stripe's ledger writes are slow
  // and (some runs) the account's own answer from Stripe is late. Exactly one credit, in both
  // ledgers; every 200 names that one balance transaction.
  it("a recharge's credit is counted once whoever races for it, under a slow Stripe and evictions", async () => {
    const a = await accountWithCard(1000, "ratk");
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 1000, monthly_limit: MAX_AMOUNT });
    const ledgerPath = `/v1/customers/${a.customerId}/balance_transactions`;
    let n = 0;
    let spent = 0;
    const actor = fc.constantFrom("confirm", "webhook", "account_alarm", "pi_alarm", "evict");
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(actor, { minLength: 2, maxLength: 7 }), fc.boolean(), fc.integer({ min: 50, max: 250 }), async (actors, late, slowMs) => {
          n++;
          await emu("/latency", { ms: slowMs, method: "POST", path: ledgerPath });
          const key = `recharge:${a.accountId}:${n}*`;
          const fault = late ? await addFault({ kind: "hang", apply: true, times: 1, method: "POST", path: "/v1/payment_intents", key }) : null;
          const { available } = await walletOf(a.accountId);
          spent += available - 499;
          await debitOk(a.accountId, available - 499);
          if (fault !== null) await waitForRequest({ key, method: "POST" });
          const pi = await vi.waitFor(
            async () => {
              const made = (await rechargePIs(a.customerId)).find((p) => p.metadata.recharge === tagOf(a.accountId, n));
              expect(made?.status).toBe("succeeded");
              return made?.id as string;
            },
            { timeout: 5000, interval: 30 },
          );
          const [event] = await eventsFor("payment_intent.succeeded", pi);
          const answers: Response[] = [];
          await Promise.all(
            actors.map(async (who) => {
              try {
                if (who === "confirm") answers.push(await confirm(a.token, pi));
                if (who === "webhook") await deliver(event?.id as string);
                if (who === "account_alarm") await runDurableObjectAlarm(accountStub(a.accountId));
                if (who === "pi_alarm") await runDurableObjectAlarm(piObject(pi));
                if (who === "evict") await abortAllDurableObjects();
              } catch {
                // An eviction cuts off calls in flight; what they started is finished by alarms.
              }
            }),
          );
          if (fault !== null) await removeFault(fault);
          await emu("/latency", { ms: 0, method: "POST", path: ledgerPath });
          const rows = await driveUntil(a.accountId, closed);
          await waitForObject(pi, settledCredit);
          expect(rows.find((r) => r.n === n)).toMatchObject({ status: "succeeded", payment_intent_id: pi });
          const [tx] = await ledgerFor(a.customerId, pi);
          expect(await stripeCredits(a.customerId, pi)).toEqual([-1000]);
          expect((await walletCredits(a.accountId, pi)).map((l) => l.amount)).toEqual([1000]);
          for (const res of answers) {
            if (res.status !== 200) {
              expect([res.status, await errorCode(res)]).toEqual([503, "stripe_unavailable"]);
              continue;
            }
            expect((await json<{ balance_transaction_id: string }>(res)).balance_transaction_id).toBe(tx?.id);
          }
          await expectRails(a, { final: true, available: 1000 - spent });
        }),
        { numRuns: 5, endOnFailure: true },
      );
    } finally {
      await emu("/latency", { ms: 0, method: "POST", path: ledgerPath });
    }
  }, 40_000);

  // Turning auto-recharge off stops a recharge that is recorded but not yet sent: the runner is
  // held on a card read while a debit records recharge 1 and the user turns it off. Nothing is
  // sent to Stripe under its key; it ends cancelled (code "disabled"), takes nothing from the
  // month, and turning it back on starts recharge 2, which pays.
  it("turned off while recorded but not sent: nothing reaches Stripe, the recharge is cancelled", async () => {
    const a = await accountWithCard(1000, "ratk");
    await configure(a.accountId, ON);
    const fault = await holdRunner(a);
    try {
      await debitOk(a.accountId, 600);
      const [recorded] = await rechargeRows(a.accountId);
      expect(recorded).toMatchObject({ n: 1, status: "pending", sent: 0 });
      await configure(a.accountId, { ...ON, enabled: false });
      const rows = await driveUntil(a.accountId, closed);
      expect(rows.map((r) => [r.n, r.status, r.code, r.sent])).toEqual([[1, "canceled", "disabled", 0]]);
    } finally {
      await removeFault(fault);
    }
    expect(await stripeRequests({ key: `recharge:${a.accountId}:*` })).toEqual([]);
    expect(await rechargePIs(a.customerId)).toEqual([]);
    expect((await view(a.accountId)).this_month.recharged).toBe(0);
    expect(await walletOf(a.accountId)).toEqual({ available: 399, held: 0 });

    await configure(a.accountId, ON);
    const rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => [r.n, r.status])).toEqual([
      [1, "canceled"],
      [2, "succeeded"],
    ]);
    await expectRails(a, { final: true, available: 399, limit: ON.monthly_limit });
  });

  // The monthly limit is the user's ceiling for what auto-recharge may charge this month. A
  // recharge recorded under the old settings (5000 of 10000) but not yet sent when the user
  // lowers both the amount and the limit to 1000 must not then charge 5000.
  it("limit lowered while a recharge is recorded but not sent: nothing beyond the new limit is charged", async () => {
    const a = await accountWithCard(1000, "ratk");
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 5000, monthly_limit: 10_000 });
    const lowered: RechargeSettings = { enabled: true, threshold: 500, amount: 1000, monthly_limit: 1000 };
    const fault = await holdRunner(a);
    try {
      await debitOk(a.accountId, 600);
      expect(await rechargeRows(a.accountId)).toMatchObject([{ n: 1, status: "pending", sent: 0, amount: 5000 }]);
      await configure(a.accountId, lowered);
      await driveUntil(a.accountId, closed);
    } finally {
      await removeFault(fault);
    }
    const charged = (await rechargePIs(a.customerId)).filter((pi) => pi.status === "succeeded").reduce((s, pi) => s + pi.amount, 0);
    expect(charged).toBeLessThanOrEqual(lowered.monthly_limit);
    await expectRails(a, { final: true, available: 399, limit: lowered.monthly_limit });
  });

  // Once sent, a recharge cannot be called back: Stripe may have charged it. Turning
  // auto-recharge off and lowering the amount while Stripe's answer is late leaves exactly that
  // one payment, of the recorded amount, credited once, and nothing after it.
  it("turned off and the amount lowered while sent but unanswered: one charge of the recorded amount, credited once, nothing more", async () => {
    const a = await accountWithCard(1000, "ratk");
    await configure(a.accountId, ON);
    const key = `recharge:${a.accountId}:1*`;
    const fault = await addFault({ kind: "hang", apply: true, times: 1, method: "POST", path: "/v1/payment_intents", key });
    await debitOk(a.accountId, 600);
    await waitForRequest({ key });
    await configure(a.accountId, { ...ON, enabled: false, amount: 500 });
    const rows = await driveUntil(a.accountId, closed);
    await removeFault(fault);
    expect(rows.map((r) => [r.n, r.status, r.amount])).toEqual([[1, "succeeded", 2000]]);
    // Below the threshold again, but off: nothing more.
    await debitOk(a.accountId, 2000);
    expect(await settleRecharges(a.accountId)).toHaveLength(1);
    expect((await rechargePIs(a.customerId)).map((pi) => pi.amount)).toEqual([2000]);
    expect(await view(a.accountId)).toMatchObject({ enabled: false, amount: 500, this_month: { recharged: 2000 } });
    await expectRails(a, { final: true, available: 400 - 2000 });
  });
});

/** Where a recharge's life awaits something, and the fault that holds it there until the object is evicted. */
interface Cut {
  name: string;
  card: "succeed" | "decline" | "authentication_required";
  /** "dip": a debit starts the recharge; "expire": a waiting recharge's day has passed and the alarm runs; "completed_expire": the same, after the customer paid on the page. */
  start: "dip" | "expire" | "completed_expire";
  /** The fault that holds the await (one shot), set before the recharge's step starts. */
  fault?: (a: SavedCard, pi: string | null) => Record<string, unknown>;
  /** Or: once the step has started, sets its fault itself (a call that only then has a path); answers the fault ids and the recharge's PaymentIntent. */
  after?: (a: SavedCard) => Promise<{ ids: number[]; pi: string }>;
  /** The request that is in flight when the object is evicted. */
  inFlight: (a: SavedCard, pi: string | null) => { method: string; path: string; key?: string };
  end: { status: RechargeRow["status"]; code?: string; failures: number; credited: boolean };
}

const CUTS: Cut[] = [
  {
    name: "creating, the card declined (the decline saved under the key)",
    card: "decline",
    start: "dip",
    fault: (a) => ({ kind: "hang", apply: true, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` }),
    inFlight: (a) => ({ method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` }),
    end: { status: "failed", code: "card_declined", failures: 1, credited: false },
  },
  {
    name: "creating, the bank asks for authentication",
    card: "authentication_required",
    start: "dip",
    fault: (a) => ({ kind: "hang", apply: true, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` }),
    inFlight: (a) => ({ method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` }),
    end: { status: "action_required", failures: 0, credited: false },
  },
  {
    name: "crediting: the PaymentIntent object's ledger write",
    card: "succeed",
    start: "dip",
    fault: (a) => ({ kind: "hang", apply: true, method: "POST", path: `/v1/customers/${a.customerId}/balance_transactions`, key: "credit-tx:*" }),
    inFlight: (a) => ({ method: "POST", path: `/v1/customers/${a.customerId}/balance_transactions`, key: "credit-tx:*" }),
    end: { status: "succeeded", failures: 0, credited: true },
  },
  {
    name: "crediting: the mark on the PaymentIntent (marking on)",
    card: "succeed",
    start: "dip",
    // Stripe's answer to the creation is held back until the mark's fault, scoped to the recharge's
    // own PaymentIntent, is in place, and its object marks what it credits (MARK_CREDITED, off by default).
    fault: (a) => ({ kind: "hang", apply: true, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` }),
    after: async (a) => {
      await waitForRequest({ method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` });
      const [made] = await rechargePIs(a.customerId);
      const pi = made?.id as string;
      await markingOn(pi);
      return { ids: [await addFault({ kind: "hang", apply: true, times: 1, method: "POST", path: `/v1/payment_intents/${pi}`, key: "credit-mark:*" })], pi };
    },
    inFlight: (_a, pi) => ({ method: "POST", path: `/v1/payment_intents/${pi}`, key: "credit-mark:*" }),
    end: { status: "succeeded", failures: 0, credited: true },
  },
  {
    name: "cancelling a recharge nobody authenticated",
    card: "authentication_required",
    start: "expire",
    fault: (_a, pi) => ({ kind: "hang", apply: true, method: "POST", path: `/v1/payment_intents/${pi}/cancel` }),
    inFlight: (_a, pi) => ({ method: "POST", path: `/v1/payment_intents/${pi}/cancel` }),
    end: { status: "failed", code: "authentication_required", failures: 1, credited: false },
  },
  {
    name: "reading the PaymentIntent after its cancel was refused (the customer paid at the last moment)",
    card: "authentication_required",
    start: "completed_expire",
    fault: (_a, pi) => ({ kind: "hang", method: "GET", path: `/v1/payment_intents/${pi}` }),
    inFlight: (_a, pi) => ({ method: "GET", path: `/v1/payment_intents/${pi}` }),
    end: { status: "succeeded", failures: 0, credited: true },
  },
];

describe("crashes at each await of a recharge's life", () => {
  // The fault holds the recharge at one await; every object is evicted there. Right after, the
  // work still owed is covered by an armed alarm (the account's for its own steps, the
  // PaymentIntent object's for a credit handed to it), at most one recharge is open, and once
  // the alarms have run: one PaymentIntent for the recharge number, one credit if it was paid,
  // one failure counted if it failed (a decline replayed after the crash is the same decline).
  it.each(CUTS)("$name", async (cut) => {
    const a = await accountWithCard(1000, "rcut");
    await configure(a.accountId, ON);
    let pi: string | null = null;
    if (cut.start !== "dip") {
      await cardBehaves(a.paymentMethod, "authentication_required");
      await debitOk(a.accountId, 600);
      const [rec] = await settleRecharges(a.accountId);
      expect(rec?.status).toBe("action_required");
      pi = rec?.payment_intent_id as string;
      if (cut.start === "completed_expire") expect(await authenticateOnPage(pi, rec?.client_secret as string, a.paymentMethod, "complete")).toBe("succeeded");
      const past = Date.now() - 1000;
      await rewrite(a.accountId, "UPDATE recharges SET expires_at = ?, due_at = ? WHERE n = 1", past, past);
    } else {
      await cardBehaves(a.paymentMethod, cut.card);
    }
    const faults = cut.fault ? [await addFault({ times: 1, ...cut.fault(a, pi) })] : [];
    try {
      if (cut.start === "dip") await debitOk(a.accountId, 600);
      // The day has passed: the alarm armed for the expiry fires now, run by the platform (which
      // retries an alarm whose object went away mid-run, as the runtime does in production).
      else await runInDurableObject(accountStub(a.accountId), (_i, state) => state.storage.setAlarm(Date.now()));
      if (cut.after) {
        const set = await cut.after(a);
        faults.push(...set.ids);
        pi = set.pi;
      }
      await waitForRequest(cut.inFlight(a, pi));
      await abortAllDurableObjects();

      const rows = await rechargeRows(a.accountId);
      expect(rows.filter((r) => OPEN.has(r.status)).length).toBeLessThanOrEqual(1);
      const open = rows.find((r) => OPEN.has(r.status));
      if (open && open.due_at !== null) {
        // Armed for the step itself, not merely for other work (the wallet's sync is a minute away).
        const at = await accountAlarmAt(a.accountId);
        expect(at, "the account's alarm while its step is owed").not.toBeNull();
        expect(at).toBeLessThanOrEqual(open.due_at + 5000);
      }
      if (open?.status === "processing" && open.handed === 1) {
        const handed = piObject(open.payment_intent_id as string);
        const { record } = await handed.inspect();
        if (record?.state !== "credited" || !markSettled(record.mark_state)) {
          expect(
            await runInDurableObject(handed, (_i, state) => state.storage.getAlarm()),
            "the PaymentIntent object's alarm while its credit is owed",
          ).not.toBeNull();
        }
      }
    } finally {
      for (const id of faults) await removeFault(id);
    }

    const rows = await driveUntil(a.accountId, (r) =>
      r.every((x) => !OPEN.has(x.status) || (x.status === "action_required" && (x.expires_at ?? 0) > Date.now())),
    );
    const made = await rechargePIs(a.customerId);
    expect(made.map((p) => p.metadata.recharge)).toEqual([tagOf(a.accountId, 1)]);
    expect(rows.map((r) => [r.n, r.status, r.payment_intent_id])).toEqual([[1, cut.end.status, made[0]?.id]]);
    if (cut.end.code) expect(rows[0]?.code).toBe(cut.end.code);
    if (cut.end.credited) await waitForObject(made[0]?.id as string, settledCredit);
    expect(await stripeCredits(a.customerId, made[0]?.id as string)).toEqual(cut.end.credited ? [-2000] : []);
    expect((await view(a.accountId)).consecutive_failures).toBe(cut.end.failures);
    await expectRails(a, { final: true, available: 400, limit: ON.monthly_limit });
  });
});

describe("Stripe failing on every retry, then recovering", () => {
  // The creation's key answers a saved 500 on every retry (Stripe saved the error; with `apply`
  // it made the PaymentIntent first). The key can never tell, so the customer's PaymentIntents
  // are looked through: one made is found and credited once; none made closes the recharge
  // without counting it as the card's failure, and the next write below the threshold starts a
  // new recharge under a new key once Stripe is well.
  it.each([
    { apply: true, end: ["succeeded"] },
    { apply: false, end: ["failed", "succeeded"] },
  ])("create answered a saved 500 (applied: $apply): found by its tag or given up, never charged twice", async ({ apply, end }) => {
    const a = await accountWithCard(1000, "rflt");
    await configure(a.accountId, ON);
    const fault = await addFault({ kind: "error_500", apply, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` });
    await debitOk(a.accountId, 600);
    let rows = await driveUntil(a.accountId, closed);
    expect(await fired(fault)).toBe(1);
    await removeFault(fault);
    expect(rows[0]).toMatchObject({ n: 1, status: end[0] });
    expect(await creationKeys(a.accountId, 1)).toEqual([`recharge:${a.accountId}:1`]);
    if (!apply) {
      expect(rows[0]).toMatchObject({ code: "stripe_unavailable", payment_intent_id: null });
      expect((await view(a.accountId)).consecutive_failures).toBe(0);
      await debitOk(a.accountId, 1);
      rows = await driveUntil(a.accountId, closed);
    }
    expect(rows.map((r) => r.status)).toEqual(end);
    expect(await rechargePIs(a.customerId)).toHaveLength(1);
    await expectRails(a, { final: true, available: 400 - (apply ? 0 : 1), limit: ON.monthly_limit });
  });

  // Dropped connections on the creation (the first applied, every retry's replay dropped too) and
  // 429s on every try: each leaves the recharge
  // pending with its key, and once Stripe answers again the same key finishes it: one
  // PaymentIntent, one credit.
  it.each([
    {
      name: "dropped on every retry",
      faults: (a: SavedCard) => [{ kind: "drop", replays: true, times: 3, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` }],
    },
    {
      name: "429 on every try",
      faults: (a: SavedCard) => [
        { kind: "rate_limit", should_retry: true, times: 3, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1*` },
      ],
    },
  ])("create $name: pending until Stripe recovers, then one PaymentIntent, one credit", async ({ faults }) => {
    const a = await accountWithCard(1000, "rflt");
    await configure(a.accountId, ON);
    const ids: number[] = [];
    for (const f of faults(a)) ids.push(await addFault(f));
    try {
      await debitOk(a.accountId, 600);
      const rows = await driveUntil(a.accountId, closed);
      expect(rows.map((r) => [r.n, r.status])).toEqual([[1, "succeeded"]]);
      // The first call failed on all its retries; a later one, under the same key, finished it.
      expect(await Promise.all(ids.map(fired))).toEqual([3]);
      expect(rows[0]?.tries).toBeGreaterThanOrEqual(2);
      expect(await creationKeys(a.accountId, 1)).toEqual([`recharge:${a.accountId}:1`]);
    } finally {
      for (const id of ids) await removeFault(id);
    }
    expect(await rechargePIs(a.customerId)).toHaveLength(1);
    await expectRails(a, { final: true, available: 400, limit: ON.monthly_limit });
  });

  // The cancellation of a recharge nobody authenticated, dropped on every retry (Stripe
  // cancelled it): the same key's replay, once answered, closes it as failed.
  it("cancel dropped on every retry: resolved by the same key once answered", async () => {
    const a = await waitingRecharge();
    const fault = await addFault({ kind: "drop", replays: true, times: 3, method: "POST", path: `/v1/payment_intents/${a.pi}/cancel` });
    const past = Date.now() - 1000;
    await rewrite(a.accountId, "UPDATE recharges SET expires_at = ?, due_at = ? WHERE n = 1", past, past);
    const rows = await driveUntil(a.accountId, closed);
    expect(await fired(fault)).toBe(3);
    await removeFault(fault);
    expect(rows.map((r) => [r.status, r.code])).toEqual([["failed", "authentication_required"]]);
    expect(await stripePI(a.pi)).toMatchObject({ status: "canceled" });
    await expectRails(a, { final: true, available: 400 });
  });

  // The cancellation's key answers a saved 500 (Stripe cancelled the PaymentIntent, then failed
  // to answer): every retry under the key replays the 500 for the key's 24 hours. Once Stripe
  // itself is well again, the account must learn the PaymentIntent's state some other way (a read)
  // rather than keep a recharge open, and every later recharge blocked, for a day.
  it("cancel answered a saved 500: the recharge closes once Stripe recovers, not a day later", async () => {
    const a = await waitingRecharge();
    const fault = await addFault({ kind: "error_500", apply: true, method: "POST", path: `/v1/payment_intents/${a.pi}/cancel` });
    const past = Date.now() - 1000;
    await rewrite(a.accountId, "UPDATE recharges SET expires_at = ?, due_at = ? WHERE n = 1", past, past);
    await runDurableObjectAlarm(accountStub(a.accountId));
    expect(await fired(fault)).toBe(1);
    await removeFault(fault);
    expect(await stripePI(a.pi)).toMatchObject({ status: "canceled" });
    // Stripe is well: two more tries (each one alarm run, its backoff skipped) are plenty to learn it.
    for (let i = 0; i < 2; i++) {
      await dueNow(a.accountId);
      await runDurableObjectAlarm(accountStub(a.accountId));
    }
    expect((await rechargeRows(a.accountId)).map((r) => [r.status, r.code])).toEqual([["failed", "authentication_required"]]);
  });

  // A card save owed (a "save my card" top-up credited) whose read fails on every retry of a
  // call: tried again later, and saved once Stripe answers. Failing the last allowed time, it is
  // dropped: nothing left owed, the account not holding work for it.
  it.each([
    { triesBefore: 0, saved: true },
    { triesBefore: 7, saved: false },
  ])("the card read failing on every retry (tries before: $triesBefore): saved once Stripe answers, or dropped", async ({ triesBefore, saved }) => {
    const a = await accountWithCard(1000, "rflt");
    const path = `/v1/payment_intents/${a.topUpId}`;
    await rewrite(a.accountId, "UPDATE auto_recharge SET payment_method = NULL, card_brand = NULL, card_last4 = NULL WHERE id = 1");
    await rewrite(
      a.accountId,
      "INSERT INTO card_saves (payment_intent_id, due_at, tries, created_at) VALUES (?, ?, ?, ?)",
      a.topUpId,
      Date.now() - 1,
      triesBefore,
      Date.now(),
    );
    const fault = await addFault({ kind: "error_500", saved: false, times: 3, method: "GET", path });
    const reads = async () => (await stripeRequests({ method: "GET", path })).length;
    const before = await reads();
    await debitOk(a.accountId, 1);
    await vi.waitFor(
      async () => {
        await dueNow(a.accountId);
        await nudge(a.accountId);
        const saves = await runInDurableObject(accountStub(a.accountId), (_i, s) => s.storage.sql.exec("SELECT * FROM card_saves").toArray());
        expect(saves).toEqual([]);
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(await fired(fault)).toBe(3);
    await removeFault(fault);
    expect((await view(a.accountId)).payment_method?.id ?? null).toBe(saved ? a.paymentMethod : null);
    expect(await reads()).toBe(before + (saved ? 4 : 3));
    expect(await runInDurableObject(accountStub(a.accountId), (_i, s) => s.storage.sql.exec("SELECT MIN(due_at) AS d FROM card_saves").one().d)).toBeNull();
  });
});

describe("a flood", () => {
  // 200 debits and 20 setting changes (on and off, thresholds up and down) at once, while a
  // sampler reads the records between them: never two recharges open, and at the end the rails
  // and the wallet's arithmetic hold, and the settings stored are one of those sent.
  it("200 concurrent debits and concurrent PUTs toggling enabled and threshold: never two open, consistent at the end", async () => {
    const a = await accountWithCard(5000, "rfld");
    const limit = 8000;
    await configure(a.accountId, { enabled: true, threshold: 2500, amount: 1000, monthly_limit: limit });
    let sampling = true;
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        const rows = await rechargeRows(a.accountId);
        expect(rows.filter((r) => OPEN.has(r.status)).length).toBeLessThanOrEqual(1);
        samples++;
      }
    })();
    const puts: RechargeSettings[] = [];
    const answers = await Promise.all([
      ...Array.from({ length: 200 }, () => debit(a.accountId, 20)),
      ...Array.from({ length: 20 }, async (_v, i) => {
        const settings = { enabled: i % 3 !== 0, threshold: 1000 + ((i * 379) % 3500), amount: 1000, monthly_limit: limit };
        const res = await putSettings(a.accountId, settings);
        puts.push(settings);
        return res;
      }),
    ]);
    sampling = false;
    await sampler;
    expect(answers.slice(0, 200).every((r) => r.status === 201)).toBe(true);
    expect(answers.slice(200).map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(samples).toBeGreaterThan(0);
    const rows = await driveUntil(a.accountId, closed);
    expect(rows.length).toBeGreaterThanOrEqual(1);
    await expectRails(a, { final: true, available: 5000 - 200 * 20, limit });
    const stored = settingsOf(await view(a.accountId));
    expect(puts).toContainEqual(stored);
  });
});

describe("bad input", () => {
  // Every malformed body on both routes, for an account whose auto-recharge is on with a card
  // and whose available is just above the threshold (so a wrongly accepted PUT could start a
  // recharge): a 4xx with a stable code each time, the settings unchanged, nothing recorded and
  // nothing sent to Stripe.
  it("malformed settings, media types and sizes: a stable 4xx on both routes, nothing changed, nothing charged", async () => {
    const a = await accountWithCard(1000, "rbad");
    const good = { enabled: true, threshold: 900, amount: 2000, monthly_limit: 10_000 };
    await configure(a.accountId, good);
    const before = await view(a.accountId);
    const G = JSON.stringify(good).slice(1, -1);
    const invalid: string[] = [
      // Types.
      `{${G.replace('"enabled":true', '"enabled":"true"')}}`,
      `{${G.replace('"enabled":true', '"enabled":1')}}`,
      `{${G.replace('"enabled":true', '"enabled":null')}}`,
      `{${G.replace('"threshold":900', '"threshold":"901"')}}`,
      `{${G.replace('"threshold":900', '"threshold":[901]')}}`,
      `{${G.replace('"threshold":900', '"threshold":{"value":901}')}}`,
      `{${G.replace('"threshold":900', '"threshold":true')}}`,
      `{${G.replace('"amount":2000', '"amount":null')}}`,
      // Huge, tiny, fractional, negative.
      `{${G.replace('"threshold":900', '"threshold":1e400')}}`,
      `{${G.replace('"threshold":900', '"threshold":9007199254740993')}}`,
      `{${G.replace('"monthly_limit":10000', `"monthly_limit":${MAX_AMOUNT + 1}`)}}`,
      `{${G.replace('"threshold":900', '"threshold":-0')}}`,
      `{${G.replace('"threshold":900', '"threshold":1e-7')}}`,
      `{${G.replace('"threshold":900', '"threshold":900.5')}}`,
      `{${G.replace('"amount":2000', '"amount":-2000')}}`,
      `{${G.replace('"amount":2000', '"amount":20000000')}}`,
      `{${G.replace('"monthly_limit":10000', '"monthly_limit":1999')}}`,
      // Shapes.
      `[${JSON.stringify(good)}]`,
      `"${JSON.stringify(good).replace(/"/g, '\\"')}"`,
      "null",
      "{}",
      `{${G},"account_id":"${a.accountId}x"}`,
      `{${G},"currency":"eur"}`,
      `{${G},"__proto__":{"enabled":false}}`,
      `{${G},"constructor":{"prototype":{"enabled":false}}}`,
      `{${G.replace('"enabled":true,', "")}}`,
      `{${G}`,
      `{${G},}`,
      "[".repeat(500) + "]".repeat(500),
      "",
    ];
    const sellerPath = `/v1/accounts/${a.accountId}/auto_recharge`;
    const send = (route: "seller" | "browser", body: string, headers: Record<string, string> = { "content-type": "application/json" }) =>
      call(route === "seller" ? sellerPath : "/billing/auto_recharge", {
        method: "PUT",
        headers: { authorization: `Bearer ${route === "seller" ? SERVICE_TOKEN : a.token}`, ...headers },
        body,
      });
    for (const route of ["seller", "browser"] as const) {
      for (const body of invalid) {
        const res = await send(route, body);
        expect([res.status, await errorCode(res)], `${route}: ${body.slice(0, 80)}`).toEqual([400, "invalid_request"]);
      }
      // Over 1 KiB, whatever it is made of (valid JSON padded with spaces included).
      for (const body of [`{${G}${" ".repeat(1100)}}`, `{${G},"note":"${"x".repeat(2000)}"}`]) {
        const res = await send(route, body);
        expect([res.status, await errorCode(res)], `${route}: oversize`).toEqual([413, "payload_too_large"]);
      }
      const lower = JSON.stringify({ ...good, threshold: 950 });
      for (const type of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", "text/json", ""]) {
        const res = await send(route, lower, type === "" ? {} : { "content-type": type });
        expect([res.status, await errorCode(res)], `${route}: ${type || "no content-type"}`).toEqual([415, "unsupported_media_type"]);
      }
      for (const method of ["POST", "PATCH", "DELETE"]) {
        const res = await call(route === "seller" ? sellerPath : "/billing/auto_recharge", {
          method,
          headers: { authorization: `Bearer ${route === "seller" ? SERVICE_TOKEN : a.token}`, "content-type": "application/json" },
          body: lower,
        });
        expect([res.status, await errorCode(res)], `${route}: ${method}`).toEqual([405, "method_not_allowed"]);
        expect(res.headers.get("allow")).toContain("PUT");
      }
    }
    // Malformed account ids on the seller's path: refused before any object is reached.
    for (const bad of ["a%2Fb", "x".repeat(129), "..", "acct%20x", "%C3%A9t%C3%A9"]) {
      const res = await call(`/v1/accounts/${bad}/auto_recharge`, {
        method: "PUT",
        headers: { authorization: `Bearer ${SERVICE_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify(good),
      });
      expect(res.status, bad).toBeGreaterThanOrEqual(400);
      expect(res.status, bad).toBeLessThan(500);
    }

    expect(await view(a.accountId)).toEqual(before);
    expect(await rechargeRows(a.accountId)).toEqual([]);
    expect(await stripeRequests({ key: `recharge:${a.accountId}:*` })).toEqual([]);
    // Still the settings that were set: one more unit spent crosses 900 and recharges.
    await debitOk(a.accountId, 101);
    expect((await settleRecharges(a.accountId)).map((r) => r.status)).toEqual(["succeeded"]);
  });
});
