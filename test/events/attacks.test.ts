// Attacks on the seller's events from outside, by a security reviewer and a payments SRE: can
// anyone make an event about an account that is not theirs, or put one account's data in
// another's events (paths, tokens, payments, ids built from account ids); can a payment that is
// not a top-up make credit or balance events; does a flood of concurrent spending around a
// threshold give exactly the alerts the final ledger implies; does a crash at any await lose or
// invent one; does a hostile receiver (slow, odd 2xx, 410/429, silent) get each event as promised;
// and does bad input at the operator's dead-letter routes ever change anything or answer 500.
//
// Every check reads events as the seller's backend does (test/events/received.ts: verified, one
// per webhook-id) and scopes itself to its own fresh accounts: the receiver is shared by the run.

import {
  abortAllDurableObjects,
  createExecutionContext,
  createMessageBatch,
  evictDurableObject,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index.js";
import { EVENTS_QUEUE, eventId, type BalanceEventData, type DeadLetter, type ServiceEvent } from "../../src/events/contract.js";
import type { Outbox } from "../../src/events/outbox.js";
import { WalletEvents } from "../../src/events/wallet-events.js";
import type { Env } from "../../src/env.js";
import { logEvent } from "../../src/log.js";
import type { WalletLine } from "../../src/wallet/contract.js";
import type { EntryRow, WalletRow } from "../../src/wallet/schema.js";
import { Wallet, type WalletHost } from "../../src/wallet/wallet.js";
import { TEST_BINDINGS } from "../bindings.js";
import {
  call,
  callWith,
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  json,
  lastEvent,
  newAccountId,
  payWithTestCard,
  postSigned,
  refuseCreditOnce,
  removeFault,
  seller,
  stripePaymentIntent,
  tokenFor,
  topUp,
  topUpMetadata,
} from "../helpers.js";
import { accountStub } from "../wallet/helpers.js";
import {
  countByType,
  eventCarrying,
  ofAccount,
  ofType,
  rawDeliveries,
  receivedFor,
  receiverRule,
  waitForEvents,
  waitForTypes,
  type Received,
} from "./received.js";

// ---- the seller's side ----------------------------------------------------------------------

let keys = 0;
/** An Idempotency-Key no other request of the run uses. */
function freshKey(label: string): string {
  keys++;
  return `atk-${label}-${Date.now().toString(36)}-${keys}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A POST to the seller's API with the service token and a fresh Idempotency-Key (unless `key` is given). */
function post(path: string, body: unknown, key = freshKey("p")): Promise<Response> {
  return seller(path, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key }, body: JSON.stringify(body) });
}

const debit = (accountId: string, amount: number, key?: string) =>
  post(`/v1/accounts/${encodeURIComponent(accountId)}/debits`, { amount, currency: "usd" }, key);
const hold = (accountId: string, amount: number) =>
  post(`/v1/accounts/${encodeURIComponent(accountId)}/holds`, { amount, currency: "usd", expires_in_seconds: 600 });

function putSettings(path: string, value: unknown, authorization = `Bearer ${TEST_BINDINGS.SERVICE_TOKEN.split(",")[0]}`): Promise<Response> {
  return call(path, { method: "PUT", headers: { "content-type": "application/json", authorization }, body: JSON.stringify({ low_balance_threshold: value }) });
}

async function thresholdOf(accountId: string): Promise<number> {
  const res = await seller(`/v1/accounts/${encodeURIComponent(accountId)}/settings`);
  expect(res.status).toBe(200);
  return (await json<{ low_balance_threshold: number }>(res)).low_balance_threshold;
}

async function setThreshold(accountId: string, value: number): Promise<void> {
  expect((await putSettings(`/v1/accounts/${encodeURIComponent(accountId)}/settings`, value)).status).toBe(200);
}

/**
 * `accountId` (any id a token may name) tops up `amount` through the service and confirms it; the
 * threshold, when given, is set before the credit lands, so every line of the ledger is replayed
 * under it (the top-up itself, from 0 up, fires nothing).
 */
async function fundedAs(accountId: string, amount: number, threshold?: number) {
  const token = await tokenFor(accountId);
  const created = await topUp(token, { amount, currency: "usd" });
  expect(created.status).toBe(201);
  const { payment_intent_id: piId } = await json<{ payment_intent_id: string }>(created);
  await payWithTestCard(piId);
  if (threshold !== undefined) await setThreshold(accountId, threshold);
  // As a browser does: a 503 (Stripe or the object busy, e.g. many accounts topping up at once) is retried after a moment.
  await vi.waitFor(
    async () => {
      const res = await confirm(token, piId);
      expect(res.status).toBe(200);
    },
    { timeout: 10_000, interval: 250 },
  );
  const { customer } = (await stripePaymentIntent(piId)) as unknown as { customer: string };
  return { accountId, token, piId, customerId: customer };
}

/** Every line of the account's ledger as the seller's API lists it, oldest first. */
async function ledgerOf(accountId: string): Promise<WalletLine[]> {
  const lines: WalletLine[] = [];
  let cursor: string | null = null;
  for (;;) {
    const res = await seller(`/v1/accounts/${encodeURIComponent(accountId)}/transactions?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status).toBe(200);
    const page = await json<{ data: WalletLine[]; has_more: boolean; next_cursor: string | null }>(res);
    lines.push(...page.data);
    if (!page.has_more) return lines.reverse();
    cursor = page.next_cursor;
  }
}

// ---- the rules, replayed over a ledger (the reference) --------------------------------------

type Alert = "balance.low" | "balance.recovered" | "balance.depleted";
const ALERTS: readonly Alert[] = ["balance.low", "balance.recovered", "balance.depleted"];

interface Expected {
  id: string;
  type: Alert;
  seq: number;
  data: BalanceEventData;
}

/**
 * The alerts a ledger implies, written from the issue's words rather than from crossings(): a
 * line is the write at its position (seq, 1-based, oldest first) and moves `available` by
 * amount − held; low when it takes available from at or above t to below it while no low is
 * outstanding; recovered when available is back at or above t while one is; depleted when it
 * takes available from above zero to zero or below. Each is named by the line that fired it.
 */
function expectedAlerts(accountId: string, lines: WalletLine[], t: number): Expected[] {
  const out: Expected[] = [];
  let available = 0;
  let held = 0;
  let lowOutstanding = false;
  lines.forEach((line, i) => {
    const seq = i + 1;
    const before = available;
    available += line.amount - line.held;
    held += line.held;
    if (available === before) return;
    const fire = (type: Alert) =>
      out.push({ id: eventId(type, `${accountId}_${seq}`), type, seq, data: { account_id: accountId, available, held, currency: "usd", threshold: t } });
    if (t > 0 && !lowOutstanding && before >= t && available < t) {
      fire("balance.low");
      lowOutstanding = true;
    } else if (t > 0 && lowOutstanding && available >= t) {
      fire("balance.recovered");
      lowOutstanding = false;
    }
    if (before > 0 && available <= 0) fire("balance.depleted");
  });
  return out;
}

const isAlert = (e: Received) => (ALERTS as readonly string[]).includes(e.type);

/**
 * Waits until the account's received alerts include every expected one, then (after the settle
 * that lets a stray or duplicate show up) checks they are exactly the expected ones: same ids,
 * same data, none invented, none missing.
 */
async function expectAlertsMatchLedger(accountId: string, t: number, timeoutMs = 15_000): Promise<{ expected: Expected[]; received: Received[] }> {
  const expected = expectedAlerts(accountId, await ledgerOf(accountId), t);
  const want = new Set(expected.map((e) => e.id));
  const events = await waitForEvents(
    ofAccount(accountId),
    (got) => {
      const have = new Set(got.filter(isAlert).map((e) => e.id));
      return [...want].every((id) => have.has(id));
    },
    timeoutMs,
  );
  const received = events.filter(isAlert);
  expect(received.map((e) => e.id).sort()).toEqual([...want].sort());
  for (const e of expected) {
    const got = received.find((r) => r.id === e.id);
    expect({ id: got?.id, type: got?.type, data: got?.data }).toEqual({ id: e.id, type: e.type, data: e.data });
  }
  return { expected, received };
}

// ---- 1. event ids ---------------------------------------------------------------------------

/**
 * The events WalletEvents produces for one fact, through its real code, with storage reduced to
 * the one row it reads (the account's alert state) and an outbox that records what it is given.
 */
function producedBy(row: { threshold: number | null; low_sent: number; revision: number }, run: (events: WalletEvents) => void): ServiceEvent[] {
  const produced: ServiceEvent[] = [];
  const sql = { exec: (query: string) => ({ toArray: () => (query.startsWith("SELECT threshold") ? [row] : []) }) } as unknown as SqlStorage;
  const outbox = { add: (event: ServiceEvent) => produced.push(event) } as unknown as Outbox;
  run(
    new WalletEvents(
      () => sql,
      outbox,
      () => ({ defaultThreshold: 100, spending: false }),
    ),
  );
  return produced;
}

function walletRow(accountId: string, available: number): WalletRow {
  return { account_id: accountId, customer_id: "cus_x", currency: "usd", available, held: 0 } as WalletRow;
}

/** A fact that names alerts by account: a ledger line (its seq) or a threshold change (the alert state's revision). */
type Fact = { account: string; seq: number } | { account: string; revision: number };

/**
 * Every alert the real code can name after a fact: a line that takes 100 to 0 under a threshold
 * of 100 (low and depleted) or, with a low outstanding, 0 to 200 (recovered); a threshold change
 * that answers an outstanding low (recovered).
 */
function idsOf(fact: Fact): ServiceEvent[] {
  if ("seq" in fact) {
    const line = (amount: number) => ({ seq: fact.seq, id: "wle_x", kind: "debit", amount, held: 0, currency: "usd", stripe_tx: null }) as EntryRow;
    return [
      ...producedBy({ threshold: null, low_sent: 0, revision: 0 }, (e) => e.onEntry(line(-100), walletRow(fact.account, 100), walletRow(fact.account, 0))),
      ...producedBy({ threshold: null, low_sent: 1, revision: 0 }, (e) => e.onEntry(line(200), walletRow(fact.account, 0), walletRow(fact.account, 200))),
    ];
  }
  return producedBy({ threshold: 100, low_sent: 1, revision: fact.revision - 1 }, (e) => e.setThreshold(50, walletRow(fact.account, 60)));
}

// Account ids that are all underscores, digits and "t" collide most easily if any can: "a_1" + 23
// and "a_1_2" + 3, "x" + revision 5 and "x_t5" + a line.
const trickyAccount = fc.stringMatching(/^[a_1t2]{1,8}$/).filter((s) => !/^\.{1,2}$/.test(s));
const fact: fc.Arbitrary<Fact> = fc.oneof(
  fc.record({ account: trickyAccount, seq: fc.integer({ min: 1, max: 400 }) }),
  fc.record({ account: trickyAccount, revision: fc.integer({ min: 1, max: 400 }) }),
);

describe("event ids: one fact of one account, one id", () => {
  it("two different facts (lines or threshold changes) of any two accounts never share an event id, and each event names its own account", () => {
    fc.assert(
      fc.property(fact, fact, (a, b) => {
        const [ea, eb] = [idsOf(a), idsOf(b)];
        expect(ea.length).toBeGreaterThan(0);
        for (const [f, events] of [
          [a, ea],
          [b, eb],
        ] as const) {
          for (const e of events) expect((e.data as BalanceEventData).account_id).toBe(f.account);
        }
        const same = JSON.stringify(a) === JSON.stringify(b);
        const shared = ea.map((e) => e.id).filter((id) => eb.some((o) => o.id === id));
        expect(shared.length > 0).toBe(same);
      }),
      { numRuns: 3000 },
    );
    // The pairs named in the brief, spelled out: distinct because a line's number is all digits and
    // comes after the account's last "_", so the id reads back to one account and one line.
    expect(idsOf({ account: "a_1", seq: 23 }).map((e) => e.id)).toEqual([
      "evt_balance_low_a_1_23",
      "evt_balance_depleted_a_1_23",
      "evt_balance_recovered_a_1_23",
    ]);
    expect(idsOf({ account: "a_1_2", seq: 3 }).map((e) => e.id)).toEqual([
      "evt_balance_low_a_1_2_3",
      "evt_balance_depleted_a_1_2_3",
      "evt_balance_recovered_a_1_2_3",
    ]);
    expect(idsOf({ account: "x", revision: 5 }).map((e) => e.id)).toEqual(["evt_balance_recovered_x_t5"]);
  });

  it("accounts X_1 and X_1_2 crossing at lines 23 and 3: two ids, each account hears only its own", async () => {
    const base = newAccountId("ids");
    const [one, oneTwo] = [`${base}_1`, `${base}_1_2`];
    await Promise.all([fundedAs(one, 1000, 500), fundedAs(oneTwo, 1000, 500)]);
    // X_1: lines 2..22 are 21 debits of 1 (979 left), line 23 takes it to 499.
    for (let i = 0; i < 21; i++) expect((await debit(one, 1)).status).toBe(201);
    expect((await debit(one, 480)).status).toBe(201);
    // X_1_2: line 2 a debit of 1, line 3 takes it to 498.
    expect((await debit(oneTwo, 1)).status).toBe(201);
    expect((await debit(oneTwo, 501)).status).toBe(201);
    expect(await ledgerOf(one)).toHaveLength(23);
    expect(await ledgerOf(oneTwo)).toHaveLength(3);

    const [a, b] = await Promise.all([waitForTypes(ofAccount(one), { "balance.low": 1 }), waitForTypes(ofAccount(oneTwo), { "balance.low": 1 })]);
    expect(ofType(a, "balance.low").map((e) => [e.id, e.data.available])).toEqual([[eventId("balance.low", `${one}_23`), 499]]);
    expect(ofType(b, "balance.low").map((e) => [e.id, e.data.available])).toEqual([[eventId("balance.low", `${oneTwo}_3`), 498]]);
    for (const [account, events] of [
      [one, a],
      [oneTwo, b],
    ] as const) {
      expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1 });
      expect(events.every((e) => e.data.account_id === account)).toBe(true);
    }
    expect(a.map((e) => e.id).filter((id) => b.some((o) => o.id === id))).toEqual([]);
  });
});

// ---- 2. a stranger's account ----------------------------------------------------------------

describe("another account's path, token, hold or payment", () => {
  it("no path trick on the settings route changes any account but the one it names; malformed ids are 4xx, never 500", async () => {
    const base = newAccountId("path");
    // Accounts whose ids differ only by the characters a router might treat specially.
    const accounts = { a: base, colon: `${base}:x`, at: `${base}@x`, pipe: `${base}|x`, dots: `${base}...`, upper: base.toUpperCase() };
    const values = { a: 11, colon: 22, at: 33, pipe: 44, dots: 55, upper: 66 };
    for (const [k, id] of Object.entries(accounts)) await setThreshold(id, values[k as keyof typeof values]);

    const refused: string[] = [
      `${base}%2F..%2F${accounts.colon}`,
      `${base}%2F${accounts.at}`,
      `${base}%252F${accounts.pipe}`,
      `${base}%5C${accounts.colon}`,
      `${base}%00`,
      `${base}%20`,
      `${base}%0A`,
      `${base}%`,
      `${base}%ZZ`,
      `%D0%B0${base.slice(1)}`, // a Cyrillic "а" for the Latin "a"
      encodeURIComponent(`${base}/`),
      "%2E",
      "%2E%2E%2F" + base,
      "x".repeat(129),
      "x".repeat(20_000),
    ];
    const answers: string[] = [];
    for (const id of refused) {
      const res = await putSettings(`/v1/accounts/${id}/settings`, 999);
      answers.push(`${id.slice(0, 60)} → ${res.status}`);
      await res.body?.cancel();
    }
    expect(answers.filter((a) => !/ → 4\d\d$/.test(a))).toEqual([]);
    console.info(`settings path tricks: ${answers.map((a) => a.split(" → ")[1]).join(" ")}`);
    // Spellings of one id reach that id and no other: ":" "@" "|" percent-encoded or not.
    expect((await putSettings(`/v1/accounts/${encodeURIComponent(accounts.colon)}/settings`, 23)).status).toBe(200);
    expect((await putSettings(`/v1/accounts/${accounts.pipe.replace("|", "%7C")}/settings`, 45)).status).toBe(200);
    // A 128-character id is an account of its own.
    const longest = `${base}_${"9".repeat(127 - base.length)}`;
    expect(longest).toHaveLength(128);
    expect((await putSettings(`/v1/accounts/${longest}/settings`, 77)).status).toBe(200);

    expect({
      a: await thresholdOf(accounts.a),
      colon: await thresholdOf(accounts.colon),
      at: await thresholdOf(accounts.at),
      pipe: await thresholdOf(accounts.pipe),
      dots: await thresholdOf(accounts.dots),
      upper: await thresholdOf(accounts.upper),
      longest: await thresholdOf(longest),
      // 127 characters of the long one: not the same account.
      shorter: await thresholdOf(longest.slice(0, 127)),
    }).toEqual({ a: 11, colon: 23, at: 33, pipe: 45, dots: 55, upper: 66, longest: 77, shorter: 0 });
  });

  it("a browser's token, the operator's token or a forged one reach neither the settings route nor the dead-letter routes, and change nothing", async () => {
    const accountId = newAccountId("tok");
    await setThreshold(accountId, 321);
    const browser = await tokenFor(accountId);
    const forged = await tokenFor(accountId, {}, "not-the-secret-for-hs256-tokens-0123456789");
    const service = TEST_BINDINGS.SERVICE_TOKEN.split(",")[0] ?? "";
    const settingsPath = `/v1/accounts/${accountId}/settings`;
    const cases: { who: string; authorization: string; method: string; path: string }[] = [];
    for (const [who, token] of [
      ["browser", browser],
      ["forged", forged],
      ["operator", TEST_BINDINGS.OPERATOR_TOKEN],
    ] as const) {
      cases.push(
        { who, authorization: `Bearer ${token}`, method: "PUT", path: settingsPath },
        { who, authorization: `Bearer ${token}`, method: "GET", path: settingsPath },
      );
    }
    for (const [who, token] of [
      ["browser", browser],
      ["forged", forged],
      ["service", service],
    ] as const) {
      for (const [method, path] of [
        ["GET", "/operator/events/dead_letters"],
        ["POST", "/operator/events/dead_letters/evt_balance_low_x_1/redeliver"],
        ["POST", "/operator/events/dead_letters/redeliver"],
      ] as const)
        cases.push({ who, authorization: `Bearer ${token}`, method, path });
    }
    const answers = await Promise.all(
      cases.map(async ({ who, authorization, method, path }) => {
        const res = await call(path, {
          method,
          headers: { authorization, "content-type": "application/json" },
          ...(method === "PUT" ? { body: JSON.stringify({ low_balance_threshold: 0 }) } : {}),
        });
        return `${who} ${method} ${path}: ${res.status} ${(await json<{ error?: { code: string } }>(res)).error?.code}`;
      }),
    );
    expect(answers).toEqual(cases.map(({ who, method, path }) => `${who} ${method} ${path}: 401 unauthenticated`));
    expect(await thresholdOf(accountId)).toBe(321);
  });

  it("account B's path cannot release or capture A's hold, and one Idempotency-Key on A and on B is two requests: each account's alerts are its own", async () => {
    const [a, b] = await Promise.all([fundedAs(newAccountId("holdA"), 1000, 500), fundedAs(newAccountId("holdB"), 1000, 500)]);
    const held = await hold(a.accountId, 600);
    expect(held.status).toBe(201);
    const { id: holdId } = await json<{ id: string }>(held);
    await waitForTypes(ofAccount(a.accountId), { "balance.low": 1 });

    for (const action of ["release", "capture"]) {
      const res = await post(`/v1/accounts/${b.accountId}/holds/${holdId}/${action}`, {});
      expect([action, res.status, (await json<{ error?: { code: string } }>(res)).error?.code]).toEqual([action, 404, "hold_not_found"]);
    }
    // The same key on both accounts: two debits, each crossing its own threshold (A: 400 → 100; B: 1000 → 100).
    const key = freshKey("shared");
    const [da, db] = await Promise.all([debit(a.accountId, 300, key), debit(b.accountId, 900, key)]);
    expect([da.status, db.status]).toEqual([201, 201]);
    expect(da.headers.get("idempotent-replayed")).toBeNull();
    expect(db.headers.get("idempotent-replayed")).toBeNull();

    const [ea, eb] = await Promise.all([
      waitForTypes(ofAccount(a.accountId), { "balance.low": 1 }),
      waitForTypes(ofAccount(b.accountId), { "balance.low": 1 }),
    ]);
    // A's hold is still held: its low is still outstanding (no recovered), and the debit fired nothing new.
    expect(countByType(ea)).toEqual({ "credit.added": 1, "balance.low": 1 });
    expect(ofType(ea, "balance.low")[0]?.data).toEqual({ account_id: a.accountId, available: 400, held: 600, currency: "usd", threshold: 500 });
    expect(countByType(eb)).toEqual({ "credit.added": 1, "balance.low": 1 });
    expect(ofType(eb, "balance.low")[0]?.data).toEqual({ account_id: b.accountId, available: 100, held: 0, currency: "usd", threshold: 500 });
    expect(await json(await seller(`/v1/accounts/${a.accountId}/balance`))).toMatchObject({ available: 100, held: 600 });
  });

  it("a browser confirming another account's top-up, and a top-up whose metadata names another account: the payer's account alone hears of the credit", async () => {
    // 1. A's token confirms B's top-up: 404, and only B's own confirm makes an event (B's).
    const [a, b] = [newAccountId("strA"), newAccountId("strB")];
    const bCustomer = await createCustomer(b);
    await createCustomer(a);
    const bPi = await createPaymentIntent({ customer: bCustomer.id, amount: 1200, metadata: topUpMetadata(b) });
    expect((await confirm(await tokenFor(a), bPi.id)).status).toBe(404);
    expect((await confirm(await tokenFor(b), bPi.id)).status).toBe(200);

    // 2. A top-up paid by P's customer whose metadata names O: confirmed by P, and its webhook too.
    const [payer, other] = [newAccountId("payer"), newAccountId("other")];
    const payerCustomer = await createCustomer(payer);
    await createCustomer(other);
    const pi = await createPaymentIntent({ customer: payerCustomer.id, amount: 1700, metadata: topUpMetadata(other) });
    expect((await confirm(await tokenFor(other), pi.id)).status).toBe(404);
    expect((await confirm(await tokenFor(payer), pi.id)).status).toBe(200);
    expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
    // 3. Another such payment reported by the webhook alone.
    const viaWebhook = await createPaymentIntent({ customer: payerCustomer.id, amount: 900, metadata: topUpMetadata(other) });
    expect((await deliver(await lastEvent("payment_intent.succeeded", viaWebhook.id))).status).toBe(200);

    const bEvents = await waitForTypes(ofAccount(b), { "credit.added": 1 });
    expect(bEvents.map((e) => [e.type, e.data.account_id, e.data.payment_intent_id, e.data.amount])).toEqual([["credit.added", b, bPi.id, 1200]]);
    const payerEvents = await waitForTypes(ofAccount(payer), { "credit.added": 2 });
    expect(payerEvents.map((e) => [e.type, e.data.account_id, e.data.payment_intent_id, e.data.amount]).sort()).toEqual(
      [
        ["credit.added", payer, pi.id, 1700],
        ["credit.added", payer, viaWebhook.id, 900],
      ].sort(),
    );
    // The strangers' accounts hear nothing, under their own name or through another's event.
    expect(await receivedFor(ofAccount(a))).toEqual([]);
    expect(await receivedFor(ofAccount(other))).toEqual([]);
    expect(await rawDeliveries(other)).toEqual([]);
  });
});

describe("another account's name in a payment's metadata, when its credit needs an operator", () => {
  it("a top-up paid by P's customer, naming O, reported by webhook and refused by Stripe: the credit.needs_attention names P, whose customer and payment it is, not O", async () => {
    const [payer, other] = [newAccountId("attP"), newAccountId("attO")];
    const payerCustomer = await createCustomer(payer);
    await createCustomer(other);
    const pi = await createPaymentIntent({ customer: payerCustomer.id, amount: 1300, metadata: topUpMetadata(other) });
    const fault = await refuseCreditOnce(payerCustomer.id, pi.id);
    try {
      expect((await deliver(await lastEvent("payment_intent.succeeded", pi.id))).status).toBe(200);
      const events = await waitForEvents(pi.id, (got) => got.some((e) => e.type === "credit.needs_attention"));
      expect(events.map((e) => [e.type, e.data.payment_intent_id, e.data.customer_id])).toEqual([["credit.needs_attention", pi.id, payerCustomer.id]]);
      // The money is P's (P's customer paid; a successful credit goes to P's wallet, as the test
      // above shows): the event that asks for an operator must say so, and O must hear nothing.
      expect(events[0]?.data.account_id).toBe(payer);
      expect(await receivedFor(ofAccount(other))).toEqual([]);
    } finally {
      await removeFault(fault);
    }
  });
});

// ---- 3. payments that are not top-ups -------------------------------------------------------

describe("a payment that is not a top-up", () => {
  it("no marker, unpaid, or another account's: no credit event and no balance event, even with a low outstanding that a credit would answer", async () => {
    const p = await fundedAs(newAccountId("nottop"), 1000, 800);
    expect((await debit(p.accountId, 500)).status).toBe(201); // 500 < 800: low, now outstanding
    await waitForTypes(ofAccount(p.accountId), { "balance.low": 1 });

    // A 5,000 payment of the account's own customer with no top-up marker.
    const plain = await createPaymentIntent({ customer: p.customerId, amount: 5000, metadata: { account_id: p.accountId, purpose: "subscription" } });
    expect((await confirm(p.token, plain.id)).status).toBe(422);
    expect((await deliver(await lastEvent("payment_intent.succeeded", plain.id))).status).toBe(200);
    // A marked top-up that was never paid, reported as succeeded by a signed (but false) notice.
    const unpaid = await createPaymentIntent({ customer: p.customerId, amount: 5000, status: "requires_payment_method", metadata: topUpMetadata(p.accountId) });
    const early = await confirm(p.token, unpaid.id);
    expect(early.status).toBeGreaterThanOrEqual(400);
    expect(early.status).toBeLessThan(500);
    expect((await postSigned("payment_intent.succeeded", { id: unpaid.id, object: "payment_intent", status: "succeeded" })).status).toBe(200);
    // Another account's top-up, marked for it, confirmed by this account and delivered by webhook.
    const stranger = newAccountId("strng");
    const strangerCustomer = await createCustomer(stranger);
    const theirs = await createPaymentIntent({ customer: strangerCustomer.id, amount: 5000, metadata: topUpMetadata(stranger) });
    expect((await confirm(p.token, theirs.id)).status).toBe(404);
    expect((await deliver(await lastEvent("payment_intent.succeeded", theirs.id))).status).toBe(200);

    // The marker: a debit to zero fires depleted (and nothing could have recovered the low first).
    expect((await debit(p.accountId, 500)).status).toBe(201);
    const events = await waitForTypes(ofAccount(p.accountId), { "balance.depleted": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1, "balance.depleted": 1 });
    expect(ofType(events, "credit.added").map((e) => e.data.payment_intent_id)).toEqual([p.piId]);
    expect(await json(await seller(`/v1/accounts/${p.accountId}/balance`))).toMatchObject({ available: 0, held: 0 });
    // The stranger's own credit is the stranger's event.
    const theirEvents = await waitForTypes(ofAccount(stranger), { "credit.added": 1 });
    expect(theirEvents.map((e) => [e.type, e.data.payment_intent_id])).toEqual([["credit.added", theirs.id]]);
  });
});

// ---- 4. a flood -----------------------------------------------------------------------------

/** A small deterministic generator, so a failing flood replays the same mix. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("a flood around the threshold", () => {
  it("300 concurrent clients debiting, holding, releasing and capturing (and a top-up): the alerts are exactly those the final ledger implies, low and recovered alternate", async () => {
    const T = 1000;
    const p = await fundedAs(newAccountId("flood"), 2000, T);
    const random = prng(14);
    const account = `/v1/accounts/${p.accountId}`;
    type Client = () => Promise<number[]>;
    /** Three rounds of a hold of `amount` and then `end` of it (a release, or a capture of part or all). */
    const holder =
      (amount: number, end: (holdId: string) => Promise<Response>): Client =>
      async () => {
        const statuses: number[] = [];
        for (let round = 0; round < 3; round++) {
          const res = await hold(p.accountId, amount);
          statuses.push(res.status);
          if (res.status !== 201) continue;
          const { id } = await json<{ id: string }>(res);
          statuses.push((await end(id)).status);
        }
        return statuses;
      };
    const clients: Client[] = [
      ...Array.from({ length: 120 }, (_, i): Client => async () => [(await debit(p.accountId, (i % 5) + 1)).status]),
      ...Array.from({ length: 100 }, () => holder(10, (id) => post(`${account}/holds/${id}/release`, {}))),
      ...Array.from({ length: 50 }, () => holder(8, (id) => post(`${account}/holds/${id}/capture`, { amount: 3 }))),
      ...Array.from({ length: 30 }, () => holder(5, (id) => post(`${account}/holds/${id}/capture`, {}))),
    ];
    // Shuffled (Fisher–Yates on the fixed generator), so spending and giving back interleave.
    for (let i = clients.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [clients[i], clients[j]] = [clients[j] as Client, clients[i] as Client];
    }
    const topUpMore = async () => {
      const pi = await createPaymentIntent({ customer: p.customerId, amount: 400, metadata: topUpMetadata(p.accountId) });
      return [(await confirm(p.token, pi.id)).status];
    };
    const started = Date.now();
    const statuses = (await Promise.all([...clients.map((client) => client()), topUpMore()])).flat();
    // Every request was answered as written or refused for want of credit; none failed.
    expect(statuses.filter((s) => ![200, 201, 402].includes(s))).toEqual([]);

    const { expected, received } = await expectAlertsMatchLedger(p.accountId, T, 20_000);
    const seqOf = (e: Received) => Number(e.id.split("_").at(-1));
    const pair = [...received]
      .sort((x, y) => seqOf(x) - seqOf(y))
      .filter((e) => e.type !== "balance.depleted")
      .map((e) => e.type);
    pair.forEach((type, i) => expect(type).toBe(i % 2 === 0 ? "balance.low" : "balance.recovered"));
    // The flood did cross both ways, more than once (else this proves little).
    const counts = countByType(received);
    expect(counts["balance.low"]).toBeGreaterThanOrEqual(2);
    expect(counts["balance.recovered"]).toBeGreaterThanOrEqual(1);
    // The replay ends where the wallet is.
    const last = await json<{ available: number; held: number }>(await seller(`${account}/balance`));
    const lines = await ledgerOf(p.accountId);
    expect(lines.reduce((n, l) => n + l.amount - l.held, 0)).toBe(last.available);
    console.info(
      `flood: ${statuses.length} answers (${statuses.filter((s) => s === 402).length} refused) in ${Date.now() - started} ms, ${lines.length} ledger lines, alerts ${JSON.stringify(counts)} (expected ${expected.length})`,
    );
  });
});

// ---- 5. a crash at every await --------------------------------------------------------------

/**
 * A wallet host over the account object's real storage and queue that dies at its `crashAt`-th
 * I/O (an alarm read or write, a send to the queue): "before", the call never happens; "after",
 * it happens but its caller never hears back. From then on every I/O hangs, as in a dead object;
 * what was committed stays, what was in memory is gone with the instance.
 *
 * One exception keeps the model true to the platform: an I/O started in the same synchronous
 * run as a committed transaction is written with it (the runtime coalesces the writes of one
 * run into one atomic batch), so the object cannot die between the two; there "before" is taken
 * as "after". Whatever an await separates from the commit can be cut off from it.
 */
function crashingHost(state: DurableObjectState, crashAt: number, mode: "before" | "after") {
  let n = 0;
  const names: string[] = [];
  let crashed = false;
  let committedThisRun = false;
  let onCrash: () => void = () => undefined;
  const died = new Promise<void>((resolve) => (onCrash = resolve));
  const never = <T>() => new Promise<T>(() => undefined);
  const io = <T>(name: string, op: () => Promise<T>): Promise<T> => {
    if (crashed) return never<T>();
    n++;
    names.push(committedThisRun ? `${name} (with the commit)` : name);
    if (n !== crashAt) return op();
    crashed = true;
    if (mode === "before" && !committedThisRun) {
      onCrash();
      return never<T>();
    }
    return op().then(() => {
      onCrash();
      return never<T>();
    });
  };
  const storage = new Proxy(state.storage, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (prop === "getAlarm" || prop === "setAlarm" || prop === "deleteAlarm")
        return (...args: unknown[]) => io(prop, () => fn.apply(target, args) as Promise<unknown>);
      if (prop === "transactionSync")
        return (...args: unknown[]) => {
          const result = fn.apply(target, args);
          // Until this synchronous run ends (the first await), what starts is batched with the commit.
          committedThisRun = true;
          queueMicrotask(() => (committedThisRun = false));
          return result;
        };
      return fn.bind(target);
    },
  });
  const queue = {
    send: (body: unknown) => io("send", () => env.EVENTS.send(body)),
    sendBatch: (messages: Iterable<MessageSendRequest>) => io("sendBatch", () => env.EVENTS.sendBatch(messages)),
  };
  const host: WalletHost = {
    storage,
    env: { ...env, EVENTS: queue } as unknown as Env,
    stripe: () => {
      throw new Error("no Stripe call is expected");
    },
    customer: () => Promise.reject(new Error("no customer lookup is expected")),
    adoptCustomer: () => undefined,
    log: logEvent,
  };
  return { host, died, crashed: () => crashed, ios: () => [...names] };
}

/** Unsent events in the account object's outbox, and its alarm. */
async function outboxState(accountId: string): Promise<{ unsent: number; alarm: number | null }> {
  return runInDurableObject(accountStub(accountId), async (_i, state) => {
    const hasOutbox = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").toArray().length > 0;
    const unsent = hasOutbox ? state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL").one().n : 0;
    return { unsent, alarm: await state.storage.getAlarm() };
  });
}

describe("a crash in the middle of a burst that crosses the threshold", () => {
  it.each([
    { name: "the third debit crosses", threshold: 500 },
    { name: "the first debit crosses", threshold: 800 },
  ])(
    "dies at each I/O of the burst in turn, before it and after it ($name): after the alarm, every crossing the ledger holds is delivered once by id, none invented",
    async ({ threshold }) => {
      // 1000, four debits of 250 one after another (750, 500, 250, 0): under 500 the third is low,
      // under 800 the first; the fourth is depleted. A first run that never dies counts the burst's
      // I/Os (alarm reads and writes, sends); then one run per I/O and mode dies there.
      const burstOn = async (crashAt: number, mode: "before" | "after") => {
        const { accountId } = await fundedAs(newAccountId(`crash${crashAt}${mode[0]}`), 1000, threshold);
        const stub = accountStub(accountId);
        // A clean slate: the alarm the top-up left (its event's grace time) runs now, so the burst
        // itself must arm one before each send, and a crash can fall between its write and that.
        await runDurableObjectAlarm(stub);
        expect(await outboxState(accountId)).toEqual({ unsent: 0, alarm: null });
        const run = await runInDurableObject(stub, async (_i, state) => {
          const c = crashingHost(state, crashAt, mode);
          const wallet = new Wallet(c.host);
          const burst = (async () => {
            for (let i = 0; i < 4; i++) await wallet.spend(accountId, { op: "debit", amount: 250, currency: "usd" }, `crash-${accountId}-${i}`, "fp");
          })();
          await Promise.race([burst, c.died]);
          return { crashed: c.crashed(), ios: c.ios() };
        });
        // The object restarts (its memory gone), and nothing calls it: only its alarm can send what waits.
        await evictDurableObject(stub);
        const left = await outboxState(accountId);
        const stuck = left.unsent > 0 && left.alarm === null;
        for (let i = 0; i < 5 && (await runDurableObjectAlarm(stub)); i++) if ((await outboxState(accountId)).unsent === 0) break;
        return { crashAt, mode, accountId, stuck, unsent: (await outboxState(accountId)).unsent, ...run };
      };
      const whole = await burstOn(Number.MAX_SAFE_INTEGER, "before");
      expect(whole.crashed).toBe(false);
      const points = whole.ios.map((_, i) => i + 1);
      const outcomes = [whole, ...(await Promise.all(points.flatMap((k) => [burstOn(k, "before"), burstOn(k, "after")])))];
      expect(outcomes.filter((o) => o.crashed)).toHaveLength(2 * points.length);
      console.info(
        `threshold ${threshold}: burst I/Os ${whole.ios.join(", ")}; runs (died at: unsent events left with no alarm): ${outcomes.map((o) => `${o.crashed ? `${o.crashAt}${o.mode[0]}` : "none"}:${o.stuck ? `${o.unsent} stuck` : "ok"}`).join(" ")}`,
      );
      // No crash leaves an event waiting with no alarm to send it.
      expect(outcomes.filter((o) => o.stuck).map((o) => `${o.crashAt}${o.mode[0]}: ${o.unsent} unsent, no alarm`)).toEqual([]);
      const checked = await Promise.all(outcomes.map(async (o) => ({ ...o, ...(await expectAlertsMatchLedger(o.accountId, threshold)) })));
      // The crash fell on both sides of the crossing: some ledgers hold the low and died after it.
      expect(checked.some((o) => o.crashed && o.expected.some((e) => e.type === "balance.low"))).toBe(true);
    },
  );

  it("the account object is aborted mid-burst of 40 concurrent debits (three times, at different moments): the alarm delivers each crossing once, none invented", async () => {
    const accounts: string[] = [];
    for (const delayMs of [0, 10, 30]) {
      const { accountId } = await fundedAs(newAccountId(`abort${delayMs}`), 1000, 500);
      accounts.push(accountId);
      const burst = Promise.all(Array.from({ length: 40 }, async () => (await debit(accountId, 25)).status));
      await new Promise((r) => setTimeout(r, delayMs));
      await abortAllDurableObjects();
      const statuses = await burst;
      console.info(
        `aborted after ${delayMs} ms: ${JSON.stringify(Object.fromEntries([201, 402, 503].map((s) => [s, statuses.filter((x) => x === s).length])))}`,
      );
      // A debit cut off is told to come back (503), never a 500.
      expect(statuses.filter((s) => ![201, 402, 503].includes(s))).toEqual([]);
    }
    for (const accountId of accounts) {
      const stub = accountStub(accountId);
      for (let i = 0; i < 5 && (await runDurableObjectAlarm(stub)); i++) if ((await outboxState(accountId)).unsent === 0) break;
      expect((await outboxState(accountId)).unsent).toBe(0);
    }
    for (const accountId of accounts) await expectAlertsMatchLedger(accountId, 500);
  });
});

// ---- 6. a hostile receiver ------------------------------------------------------------------

/** Hands one message to the Worker's queue handler as a batch of the EVENTS queue; what it acked and retried. */
async function runQueue(vars: Env, body: ServiceEvent, attempts = 1) {
  const batch = createMessageBatch(EVENTS_QUEUE, [{ id: "m", timestamp: new Date(), attempts, body }]);
  const ctx = createExecutionContext();
  await worker.queue(batch, vars);
  return getQueueResult(batch, ctx);
}

const OPERATOR = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

async function deadLetters(): Promise<DeadLetter[]> {
  const res = await call("/operator/events/dead_letters?limit=200", { headers: OPERATOR });
  expect(res.status).toBe(200);
  return (await json<{ data: DeadLetter[] }>(res)).data;
}

describe("a hostile receiver", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("one that answers 200 after 900 ms (timeout 1000 ms) is a delivery, acknowledged once; one that answers after 1100 ms is retried", async () => {
    const [slowOk, tooSlow] = [newAccountId("rx900"), newAccountId("rx1100")];
    // The receiver answers at once; this wrapper holds its answer back as a slow server would,
    // honouring the sender's abort signal as a real connection does.
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      const body = await request.clone().text();
      const holdMs = body.includes(slowOk) ? 900 : body.includes(tooSlow) ? 1100 : 0;
      const started = Date.now();
      const res = await realFetch(input, init);
      if (holdMs === 0) return res;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, Math.max(0, holdMs - (Date.now() - started)));
        init?.signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(init.signal?.reason as Error);
        });
      });
      return res;
    });
    const ok = await runQueue(env, eventCarrying(slowOk));
    expect({ acks: ok.explicitAcks, retries: ok.retryMessages.length }).toEqual({ acks: ["m"], retries: 0 });
    const late = await runQueue(env, eventCarrying(tooSlow));
    expect({ acks: late.explicitAcks, retries: late.retryMessages.map((m) => m.msgId) }).toEqual({ acks: [], retries: ["m"] });
    vi.restoreAllMocks();
    expect((await rawDeliveries(slowOk)).map((d) => d.headers["webhook-id"])).toEqual([eventId("credit.added", `txn_${slowOk}`)]);
  });

  it("201 and 204 are success (one delivery each); 410 and 429 are retried under the same id and body until accepted", async () => {
    const cases = [201, 204, 410, 429].map((status) => ({ status, accountId: newAccountId(`rx${status}`) }));
    for (const c of cases) await receiverRule({ match: c.accountId, fail: [c.status] });
    await Promise.all(cases.map((c) => fundedAs(c.accountId, 500)));
    for (const c of cases) {
      await waitForTypes(ofAccount(c.accountId), { "credit.added": 1 });
      const tries = await rawDeliveries(c.accountId);
      const retried = c.status >= 400;
      expect({ status: c.status, answers: tries.map((d) => d.answer) }).toEqual({ status: c.status, answers: retried ? [c.status, 200] : [c.status] });
      expect(new Set(tries.map((d) => d.headers["webhook-id"])).size).toBe(1);
      expect(new Set(tries.map((d) => d.body)).size).toBe(1);
    }
  });

  it("one that is silent on every try: four tries of one id, each cut at the timeout, then the dead-letter list, and redelivered by the operator under that id", async () => {
    const accountId = newAccountId("rxmute");
    await receiverRule({ match: accountId, fail: ["timeout", "timeout", "timeout", "timeout"] });
    const started = Date.now();
    await fundedAs(accountId, 700);
    const letter = await vi.waitFor(
      async () => {
        const found = (await deadLetters()).find((l) => (l.event.data as { account_id?: string }).account_id === accountId);
        expect(found).toBeDefined();
        return found as DeadLetter;
      },
      { timeout: 20_000, interval: 200 },
    );
    const tries = await rawDeliveries(accountId);
    expect(tries.map((d) => d.answer)).toEqual(["timeout", "timeout", "timeout", "timeout"]);
    expect(new Set(tries.map((d) => d.headers["webhook-id"]))).toEqual(new Set([letter.event.id]));
    // Each try waited for the timeout (1000 ms), not for the queue's own patience.
    expect(Date.now() - started).toBeGreaterThanOrEqual(4000);

    const res = await call(`/operator/events/dead_letters/${letter.event.id}/redeliver`, { method: "POST", headers: OPERATOR });
    expect(res.status).toBe(202);
    const events = await waitForEvents(ofAccount(accountId), () => true);
    expect(events.map((e) => [e.id, e.type])).toEqual([[letter.event.id, "credit.added"]]);
    const all = await rawDeliveries(accountId);
    expect(all.map((d) => d.answer)).toEqual(["timeout", "timeout", "timeout", "timeout", 200]);
  });
});

// ---- 7. bad input at the operator's routes --------------------------------------------------

/** A dead-letter archive that records what the routes ask of it (so no real letter is touched). */
function fakeArchive() {
  const asked: string[] = [];
  const archive = {
    list: (limit: number, after: string | null) => {
      asked.push(`list ${limit} ${after}`);
      return Promise.resolve({ data: [], has_more: false, next_cursor: null });
    },
    redeliver: (id: string) => {
      asked.push(`redeliver ${id}`);
      return Promise.resolve({ ok: false, reason: "not_found" });
    },
    redeliverAll: (limit: number) => {
      asked.push(`redeliverAll ${limit}`);
      return Promise.resolve({ ok: true, redelivered: 0, remaining: 0 });
    },
  };
  return { asked, vars: { DEAD_LETTERS: { getByName: () => archive } } };
}

describe("bad input at the dead-letter routes", () => {
  it("odd limits and cursors on the list: a valid page or 400 invalid_request, never a 500", async () => {
    const answers: string[] = [];
    const queries = [
      ...["-1", "0", "1e9", "abc", "2.5", "", "9".repeat(400), "%00", "Infinity"].map((v) => `limit=${v}`),
      ...["-1", "abc", "1e30", "1.5", "NaN", "Infinity", "", "0x10", "9".repeat(10_000), "%E2%82%AC"].map((v) => `after=${v}`),
      "limit=abc&after=-1",
    ];
    for (const q of queries) {
      const res = await call(`/operator/events/dead_letters?${q}`, { headers: OPERATOR });
      const body = await json<{ data?: unknown[]; next_after?: unknown; error?: { code: string } }>(res);
      const valid =
        (res.status === 200 && Array.isArray(body.data) && body.data.length <= 200 && (body.next_after === null || typeof body.next_after === "string")) ||
        (res.status === 400 && body.error?.code === "invalid_request");
      answers.push(`${q.slice(0, 40)} → ${res.status} ${valid ? "ok" : JSON.stringify(body).slice(0, 120)}`);
    }
    expect(answers.filter((a) => !a.endsWith(" ok"))).toEqual([]);
  });

  it("odd event ids to redeliver: 4xx, never a 500, and the archive is not asked about an id that cannot be one", async () => {
    const { asked, vars } = fakeArchive();
    const ids = [
      `evt_${"a".repeat(10_000)}`,
      "evt_a%2Fb",
      "evt_a%2F..%2F..%2Fredeliver",
      "evt_%C3%A9",
      "evt_%F0%9F%92%A5",
      "evt_a%00b",
      "evt_a%20b",
      "evt_a%",
      "evt_%E0%A4%A",
      "%2E%2E",
    ];
    for (const id of ids) {
      const res = await callWith(vars, `/operator/events/dead_letters/${id}/redeliver`, { method: "POST", headers: OPERATOR });
      expect({ id: id.slice(0, 40), status: res.status }).toEqual({ id: id.slice(0, 40), status: 404 });
    }
    // A raw "/" makes another path: no route, 404.
    const slash = await callWith(vars, "/operator/events/dead_letters/evt_a/b/redeliver", { method: "POST", headers: OPERATOR });
    expect(slash.status).toBe(404);
    expect(asked).toEqual([]);
    // A well-formed id is looked up: the archive's "not found" is the 404 (the same answer).
    const wellFormed = await callWith(vars, "/operator/events/dead_letters/evt_balance_low_a:b@c|d-1_2/redeliver", { method: "POST", headers: OPERATOR });
    expect(wellFormed.status).toBe(404);
    expect(asked).toEqual(["redeliver evt_balance_low_a:b@c|d-1_2"]);

    // And on the real archive: the same odd ids are 404, never a 500.
    for (const id of ids) {
      const res = await call(`/operator/events/dead_letters/${id}/redeliver`, { method: "POST", headers: OPERATOR });
      expect({ id: id.slice(0, 40), status: res.status }).toEqual({ id: id.slice(0, 40), status: 404 });
    }
  });

  it("a bulk redelivery whose limit is not a whole number from 1 to 200 redelivers nothing (400); one within asks for exactly that many", async () => {
    const answers: string[] = [];
    for (const limit of ["-1", "0", "abc", "1e9", "201", "2.5", "200"]) {
      const { asked, vars } = fakeArchive();
      const res = await callWith(vars, `/operator/events/dead_letters/redeliver?limit=${limit}`, { method: "POST", headers: OPERATOR });
      answers.push(`limit=${limit}: ${res.status} ${asked.join(",") || "nothing asked"}`);
    }
    expect(answers).toEqual([
      "limit=-1: 400 nothing asked",
      "limit=0: 400 nothing asked",
      "limit=abc: 400 nothing asked",
      "limit=1e9: 400 nothing asked",
      "limit=201: 400 nothing asked",
      "limit=2.5: 400 nothing asked",
      "limit=200: 202 redeliverAll 200",
    ]);
  });
});
