// What the wallet's tests share: the account object over RPC (spending requests fingerprinted as
// the seller route fingerprints them), accounts funded by a real top-up, the seller's HTTP API,
// Stripe's side of the customer balance, and the checks every wallet test ends with.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { accountObject } from "../../src/objects/stubs.js";
import type { SpendOutcome, SpendRequest, SpendResult, StripeEntryReport, WalletLine } from "../../src/wallet/contract.js";
import { requestFingerprint } from "../../src/wallet/fingerprint.js";
import { TEST_BINDINGS } from "../bindings.js";
import { confirm, emu, paidTopUp, seller } from "../helpers.js";

/** The account object of `accountId`. */
export function accountStub(accountId: string) {
  return accountObject(env, accountId);
}

/**
 * A spending request sent to the account object, fingerprinted as the seller route does: the
 * operation, the hold id from the path, and the body as the seller would send it.
 */
export async function spend(accountId: string, request: SpendRequest, key: string): Promise<SpendOutcome> {
  const { op, ...rest } = request;
  const holdId = "hold_id" in request ? request.hold_id : null;
  const body = Object.fromEntries(Object.entries(rest).filter(([k]) => k !== "hold_id"));
  return accountStub(accountId).spend(accountId, request, key, await requestFingerprint(op, holdId, body));
}

let keys = 0;
/** An Idempotency-Key no other request of the run uses. */
export function freshKey(label = "k"): string {
  keys++;
  return `${label}-${Date.now().toString(36)}-${keys}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The result of an outcome that must have one (not key_reused, not unavailable). */
export function resultOf(outcome: SpendOutcome): SpendResult {
  if (outcome.kind !== "result") throw new Error(`expected a result, got ${JSON.stringify(outcome)}`);
  return outcome.result;
}

/** A debit under a fresh key; its result. */
export async function debit(accountId: string, amount: number, currency = "usd"): Promise<SpendResult> {
  return resultOf(await spend(accountId, { op: "debit", amount, currency }, freshKey("debit")));
}

/** A hold under a fresh key; the hold, or throws when refused. */
export async function hold(accountId: string, amount: number, expiresInSeconds = 600) {
  const r = resultOf(await spend(accountId, { op: "hold", amount, currency: "usd", expires_in_seconds: expiresInSeconds }, freshKey("hold")));
  if (!r.ok || r.op !== "hold") throw new Error(`hold refused: ${JSON.stringify(r)}`);
  return r.hold;
}

/** An account whose wallet holds `amount` usd from a real top-up: paid in the emulator, confirmed by the browser. */
export async function fundedAccount(amount = 1000) {
  const paid = await paidTopUp(amount);
  const res = await confirm(paid.token, paid.pi.id);
  expect(res.status).toBe(200);
  const balance = await accountStub(paid.accountId).walletBalance(paid.accountId);
  expect(balance).toMatchObject({ ok: true, balance: { available: amount, held: 0, currency: "usd" } });
  return { ...paid, stub: accountStub(paid.accountId) };
}

/** The wallet's running totals as stored (no hold is expired by reading them). */
export async function totals(accountId: string): Promise<{ available: number; held: number }> {
  const w = (await accountStub(accountId).inspectWallet()).wallet;
  if (!w) throw new Error(`the wallet of ${accountId} is not open`);
  return { available: w.available, held: w.held };
}

/** The ledger's lines add up to the running totals: Σamount = available + held, Σheld = held. */
export async function expectLinesAddUp(accountId: string): Promise<void> {
  const i = await accountStub(accountId).inspectWallet();
  expect(i.wallet).not.toBeNull();
  expect(i.sums).toEqual({ total: (i.wallet?.available ?? 0) + (i.wallet?.held ?? 0), held: i.wallet?.held ?? 0 });
}

/** Every line of the wallet's ledger, newest first, paging with its cursor. */
export async function allLines(accountId: string): Promise<WalletLine[]> {
  const out: WalletLine[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page = await accountStub(accountId).walletLines(accountId, 100, cursor);
    if (!page.ok) throw new Error(`walletLines: ${JSON.stringify(page)}`);
    out.push(...page.data);
    if (!page.has_more) return out;
    cursor = page.next_cursor;
  }
}

/** A balance transaction as the emulator stores it. */
export interface StripeEntry {
  id: string;
  amount: number;
  currency: string;
  ending_balance: number;
  created: number;
  description: string | null;
  metadata: Record<string, string>;
}

/** The customer's whole Stripe ledger, newest first (the control API: no request log line, no rate limit). */
export async function stripeLedger(customerId: string): Promise<StripeEntry[]> {
  return (await emu<{ data: StripeEntry[] }>(`/customers/${customerId}/balance_transactions`)).data;
}

/** The customer's Stripe balance: the newest entry's ending_balance (negative = credit). */
export async function stripeBalance(customerId: string): Promise<number> {
  return (await stripeLedger(customerId))[0]?.ending_balance ?? 0;
}

/**
 * A balance transaction written straight through the emulator's Stripe API, as a Dashboard
 * adjustment, an invoice, or the older server would write it. Stripe's sign: negative = credit.
 */
export async function writeStripeEntry(customerId: string, amount: number, fields: { description?: string; metadata?: Record<string, string> } = {}) {
  const body = new URLSearchParams({ amount: String(amount), currency: "usd" });
  if (fields.description) body.set("description", fields.description);
  for (const [k, v] of Object.entries(fields.metadata ?? {})) body.set(`metadata[${k}]`, v);
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/customers/${customerId}/balance_transactions`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}`, "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  expect(res.status).toBe(200);
  return res.json<StripeEntry>();
}

/** A report as a PaymentIntent object sends it (Stripe's sign: negative = credit). */
export function report(
  customerId: string,
  fields: Partial<StripeEntryReport> & Pick<StripeEntryReport, "balance_transaction_id" | "amount">,
): StripeEntryReport {
  return {
    customer_id: customerId,
    kind: fields.amount < 0 ? "top_up" : "reversal",
    currency: "usd",
    payment_intent_id: "pi_reported",
    description: null,
    created: Math.floor(Date.now() / 1000),
    ...fields,
  };
}

/** A POST to the seller's API for `accountId` (`path` after /v1/accounts/{id}) with the service token, under `key`. */
export function sellerPost(accountId: string, path: string, body: unknown, key: string): Promise<Response> {
  return seller(`/v1/accounts/${accountId}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify(body),
  });
}

/** The account object's alarm time (ms), or null. */
export function accountAlarm(accountId: string): Promise<number | null> {
  return runInDurableObject(accountStub(accountId), (_instance, state) => state.storage.getAlarm());
}

/** Resolves once `Date.now()` has passed `isoOrMs` (waiting on the clock, not on a guess). */
export async function untilPast(isoOrMs: string | number): Promise<void> {
  const at = typeof isoOrMs === "number" ? isoOrMs : Date.parse(isoOrMs);
  while (Date.now() <= at) await new Promise((r) => setTimeout(r, Math.max(5, Math.min(100, at - Date.now() + 5))));
}
