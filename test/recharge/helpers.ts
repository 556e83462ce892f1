// What the auto-recharge tests share: an account with a card saved the way a browser saves one
// (a top-up with `save_payment_method: true`, paid in the emulator, confirmed through the
// service), the settings routes, the seller's debits, the account object's recharge records as
// stored, Stripe's side (the recharge PaymentIntents, the customer's ledger, the card's
// behaviour) and a driver that lets the account's and the PaymentIntent objects' alarms run
// until nothing more is due.

import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import type { RechargeSettings, RechargeView } from "../../src/recharge/contract.js";
import type { AutoRechargeRow, RechargeRow } from "../../src/recharge/schema.js";
import type { WalletLine } from "../../src/wallet/contract.js";
import { TEST_BINDINGS } from "../bindings.js";
import { authed, confirm, emu, json, ledgerFor, newAccountId, payWithTestCard, piObject, seller, tokenFor, topUp } from "../helpers.js";
import { accountStub, allLines, freshKey } from "../wallet/helpers.js";

export { accountStub, freshKey };

/** The seller's view of auto-recharge (GET /v1/accounts/{id}/auto_recharge). */
export interface AutoRechargeAnswer {
  object: "auto_recharge";
  account_id: string;
  enabled: boolean;
  threshold: number | null;
  amount: number | null;
  monthly_limit: number | null;
  currency: string;
  payment_method: { id: string; brand: string | null; last4: string | null } | null;
  disabled_reason: "declined" | "card_removed" | null;
  consecutive_failures: number;
  this_month: { month: string; recharged: number; remaining: number | null };
  recharge: RechargeView | null;
}

/** A PaymentIntent as Stripe's API answers it (the fields these tests read). */
export interface StripePaymentIntent {
  id: string;
  status: string;
  amount: number;
  customer: string | null;
  payment_method: string | null;
  client_secret: string;
  metadata: Record<string, string>;
  setup_future_usage: string | null;
  last_payment_error: { code?: string; decline_code?: string; payment_method?: { id: string } } | null;
}

const SECRET = { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}` };

/** What a card saved for an account is made of. */
export interface SavedCard {
  accountId: string;
  token: string;
  customerId: string;
  /** The top-up that saved the card. */
  topUpId: string;
  /** The saved PaymentMethod (`pm_…`, made from `pm_card_visa`). */
  paymentMethod: string;
}

/**
 * A fresh account whose wallet holds `amount` from a top-up made with "save my card", and whose
 * card is saved: created through the service, paid in the emulator as Stripe.js pays, confirmed
 * by the browser, then waited for until GET /billing/auto_recharge names the card.
 */
export async function accountWithCard(amount = 1000, label = "rch"): Promise<SavedCard> {
  const accountId = newAccountId(label);
  const token = await tokenFor(accountId);
  return { accountId, token, ...(await saveCard(accountId, token, amount)) };
}

/** A top-up of `amount` with `save_payment_method: true`, paid with `card` and confirmed; waits until the card is saved. */
export async function saveCard(accountId: string, token: string, amount = 1000, card = "pm_card_visa") {
  const created = await topUp(token, { amount, currency: "usd", save_payment_method: true });
  expect(created.status).toBe(201);
  const { payment_intent_id: topUpId } = await json<{ payment_intent_id: string }>(created);
  const paid = await payWithTestCard(topUpId, card);
  expect(paid.status).toBe("succeeded");
  expect((await confirm(token, topUpId)).status).toBe(200);
  const pi = await stripePI(topUpId);
  expect(pi.setup_future_usage).toBe("off_session");
  const view = await waitForView(accountId, (v) => v.payment_method?.id === pi.payment_method);
  return { customerId: pi.customer as string, topUpId, paymentMethod: view.payment_method?.id as string };
}

/** GET /v1/accounts/{id}/auto_recharge with the service token. */
export async function view(accountId: string): Promise<AutoRechargeAnswer> {
  const res = await seller(`/v1/accounts/${accountId}/auto_recharge`);
  expect(res.status).toBe(200);
  return json<AutoRechargeAnswer>(res);
}

/** GET /billing/auto_recharge as the signed-in browser. */
export async function browserView(token: string): Promise<AutoRechargeAnswer> {
  const res = await authed(token, "/billing/auto_recharge");
  expect(res.status).toBe(200);
  return json<AutoRechargeAnswer>(res);
}

/**
 * Polls the seller's view until `ready` holds, running the account object's alarm (and its
 * recharges' PaymentIntent objects' alarms) between looks, as the platform would in time.
 */
export async function waitForView(accountId: string, ready: (v: AutoRechargeAnswer) => boolean, timeout = 10_000): Promise<AutoRechargeAnswer> {
  let last: AutoRechargeAnswer | null = null;
  await vi.waitFor(
    async () => {
      last = await view(accountId);
      if (ready(last)) return;
      await nudge(accountId);
      throw new Error(`not yet: ${JSON.stringify(last)}`);
    },
    { timeout, interval: 30 },
  );
  return last as unknown as AutoRechargeAnswer;
}

/** PUT the seller's auto-recharge settings (raw body, so tests can send anything). */
export function putSettings(accountId: string, body: unknown): Promise<Response> {
  return seller(`/v1/accounts/${accountId}/auto_recharge`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Sets the settings and expects them taken. */
export async function configure(accountId: string, settings: RechargeSettings): Promise<AutoRechargeAnswer> {
  const res = await putSettings(accountId, settings);
  const body = await json<AutoRechargeAnswer>(res);
  expect(res.status, JSON.stringify(body)).toBe(200);
  expect(body).toMatchObject(settings);
  return body;
}

/** POST /v1/accounts/{id}/debits under a fresh Idempotency-Key. */
export function debit(accountId: string, amount: number, key = freshKey("debit")): Promise<Response> {
  return seller(`/v1/accounts/${accountId}/debits`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify({ amount, currency: "usd" }),
  });
}

/** A debit that must be accepted; answers `available` after it. */
export async function debitOk(accountId: string, amount: number): Promise<number> {
  const res = await debit(accountId, amount);
  const body = await json<{ balance: { available: number } }>(res);
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body.balance.available;
}

/** The account's recharge records as stored, oldest first. */
export function rechargeRows(accountId: string): Promise<RechargeRow[]> {
  return runInDurableObject(accountStub(accountId), (_i, state) => {
    const exists = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'recharges'").toArray().length > 0;
    return exists ? (state.storage.sql.exec("SELECT * FROM recharges ORDER BY n").toArray() as unknown as RechargeRow[]) : [];
  });
}

/** The account's auto-recharge row as stored (null before anything was set). */
export function configRow(accountId: string): Promise<AutoRechargeRow | null> {
  return runInDurableObject(
    accountStub(accountId),
    (_i, state) => (state.storage.sql.exec("SELECT * FROM auto_recharge WHERE id = 1").toArray()[0] as unknown as AutoRechargeRow | undefined) ?? null,
  );
}

/** The top-ups whose card is still to be saved, as noted in the account's storage. */
export function cardSaves(accountId: string): Promise<string[]> {
  return runInDurableObject(accountStub(accountId), (_i, state) =>
    state.storage.sql
      .exec<{ payment_intent_id: string }>("SELECT payment_intent_id FROM card_saves")
      .toArray()
      .map((r) => r.payment_intent_id),
  );
}

/** Runs `sql` in the account object's storage (a test moving a stored time into the past, as the clock would). */
export async function rewrite(accountId: string, sql: string, ...args: SqlStorageValue[]): Promise<void> {
  await runInDurableObject(accountStub(accountId), (_i, state) => {
    state.storage.sql.exec(sql, ...args);
  });
}

/** Skips the hour's wait after a failed recharge: the failure is dated two hours ago. */
export function skipFailureWait(accountId: string): Promise<void> {
  return rewrite(accountId, "UPDATE auto_recharge SET last_failure_at = ? WHERE id = 1 AND last_failure_at IS NOT NULL", Date.now() - 2 * 3600_000);
}

/** Runs the account object's alarm now if one is set. */
export function accountAlarm(accountId: string): Promise<boolean> {
  return runDurableObjectAlarm(accountStub(accountId));
}

/** One round of what the platform does in time: the account's alarm, and the alarms of its recharges' PaymentIntent objects. */
export async function nudge(accountId: string): Promise<void> {
  await accountAlarm(accountId);
  const pis = (await rechargeRows(accountId)).filter((r) => r.payment_intent_id !== null && r.status === "processing");
  for (const r of pis) await runDurableObjectAlarm(piObject(r.payment_intent_id as string));
}

const OPEN = new Set<RechargeRow["status"]>(["pending", "processing", "action_required"]);

/**
 * Lets every recharge step run until none is due: no recharge is pending or processing (one
 * waiting for the customer to authenticate stays so until it expires). Answers the records.
 */
export async function settleRecharges(accountId: string, timeout = 10_000): Promise<RechargeRow[]> {
  let rows: RechargeRow[] = [];
  await vi.waitFor(
    async () => {
      rows = await rechargeRows(accountId);
      if (rows.every((r) => !OPEN.has(r.status) || r.status === "action_required")) return;
      await nudge(accountId);
      throw new Error(`recharges still moving: ${JSON.stringify(rows.map((r) => [r.n, r.status, r.last_error]))}`);
    },
    { timeout, interval: 30 },
  );
  return rows;
}

/** The recharges, the wallet's figures and its top-up lines, read together in one synchronous step of the account object. */
export function snapshot(accountId: string): Promise<{
  rows: RechargeRow[];
  wallet: { available: number; held: number };
  credits: { payment_intent_id: string; amount: number }[];
}> {
  return runInDurableObject(accountStub(accountId), (_i, state) => {
    const sql = state.storage.sql;
    const wallet = sql.exec<{ available: number; held: number }>("SELECT available, held FROM wallet").one();
    return {
      rows: sql.exec("SELECT * FROM recharges ORDER BY n").toArray() as unknown as RechargeRow[],
      wallet: { available: wallet.available, held: wallet.held },
      credits: sql
        .exec<{ payment_intent_id: string; amount: number }>("SELECT payment_intent_id, amount FROM entries WHERE kind = 'top_up' ORDER BY seq")
        .toArray(),
    };
  });
}

/** The account's wallet figures as stored. */
export async function walletOf(accountId: string): Promise<{ available: number; held: number }> {
  const w = (await accountStub(accountId).inspectWallet()).wallet;
  if (!w) throw new Error(`no wallet for ${accountId}`);
  return { available: w.available, held: w.held };
}

/** The wallet's top-up lines for `paymentIntentId`. */
export async function walletCredits(accountId: string, paymentIntentId: string): Promise<WalletLine[]> {
  return (await allLines(accountId)).filter((l) => l.kind === "top_up" && l.payment_intent_id === paymentIntentId);
}

/** A PaymentIntent read from Stripe (the emulator) with the secret key. */
export async function stripePI(id: string): Promise<StripePaymentIntent> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/${id}`, { headers: SECRET });
  expect(res.status).toBe(200);
  return res.json<StripePaymentIntent>();
}

/** Every PaymentIntent of the customer, as `GET /v1/payment_intents?customer=` lists them. */
export async function customerPIs(customerId: string): Promise<StripePaymentIntent[]> {
  const out: StripePaymentIntent[] = [];
  let after: string | null = null;
  for (;;) {
    const q: URLSearchParams = new URLSearchParams({ customer: customerId, limit: "100", ...(after ? { starting_after: after } : {}) });
    const res: Response = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents?${q.toString()}`, { headers: SECRET });
    const page: { data: StripePaymentIntent[]; has_more: boolean } = await res.json();
    out.push(...page.data);
    if (!page.has_more || page.data.length === 0) return out;
    after = page.data.at(-1)?.id ?? null;
  }
}

/** The customer's PaymentIntents that are recharges (`metadata.recharge`). */
export async function rechargePIs(customerId: string): Promise<StripePaymentIntent[]> {
  return (await customerPIs(customerId)).filter((pi) => pi.metadata.recharge !== undefined);
}

/** Stripe's balance transactions for `paymentIntentId`, as amounts (Stripe's sign: negative = credit). */
export async function stripeCredits(customerId: string, paymentIntentId: string): Promise<number[]> {
  return (await ledgerFor(customerId, paymentIntentId)).map((tx) => tx.amount);
}

/** Switches how a stored card answers from now on. */
export async function cardBehaves(paymentMethod: string, behaviour: "succeed" | "decline" | "insufficient_funds" | "authentication_required"): Promise<void> {
  await emu(`/payment_methods/${paymentMethod}`, { behaviour });
}

/**
 * What the page does for a recharge waiting for authentication: confirms it with Stripe.js (the
 * publishable key, the client_secret, the saved card), then the cardholder answers the bank's
 * challenge (`outcome`). Answers the PaymentIntent's status after.
 */
export async function authenticateOnPage(paymentIntentId: string, clientSecret: string, paymentMethod: string, outcome: "complete" | "fail"): Promise<string> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/${paymentIntentId}/confirm`, {
    method: "POST",
    headers: { authorization: "Bearer pk_test_emulator", "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_secret: clientSecret, payment_method: paymentMethod }),
  });
  const confirmed = await res.json<{ status?: string; error?: unknown }>();
  expect(res.status, JSON.stringify(confirmed)).toBe(200);
  expect(confirmed.status).toBe("requires_action");
  return (await emu<{ status: string }>(`/payment_intents/${paymentIntentId}/authenticate`, { outcome })).status;
}

/** The recharge tag `metadata.recharge` of recharge n. */
export function tagOf(accountId: string, n: number): string {
  return `${accountId}:${n}`;
}
