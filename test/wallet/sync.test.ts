// Stripe's customer balance mirrors the wallet, each batch of spending written exactly once:
// after a sync, −(Stripe's balance) = available + held, and every batch n is one Stripe entry
// with metadata.wallet_batch = n, whatever Stripe did on the way (every fault the emulator can
// inject, on the batch write and on the ledger look that guards it), across restarts of the
// account object, with entries written to Stripe from elsewhere, and for a customer the older
// server made (the wallet opens from its ledger with one read, and never reads it again to spend).

import { abortAllDurableObjects } from "cloudflare:test";
import { afterAll, describe, expect, it } from "vitest";
import type { BatchRow } from "../../src/wallet/schema.js";
import { addFault, createCustomer, emu, newAccountId, removeFault, stripeRequests, waitForRequest } from "../helpers.js";
import {
  accountAlarm,
  accountStub,
  allLines,
  debit,
  expectLinesAddUp,
  fundedAccount,
  hold,
  report,
  spend,
  stripeLedger,
  stripeBalance,
  totals,
  writeStripeEntry,
  type StripeEntry,
} from "./helpers.js";

/** The Idempotency-Keys of the account's batch writes: `wallet-debits:{customer}:{n}` and their `:{attempt}`s. */
const batchKeys = (customerId: string) => `wallet-debits:${customerId}:*`;

/** The batch writes Stripe received for this customer (every attempt, replays and faults included). */
async function batchWrites(customerId: string) {
  return stripeRequests({ method: "POST", path: `/v1/customers/${customerId}/balance_transactions`, key: batchKeys(customerId) });
}

/** GETs of the customer's ledger (the opening read, the ledger looks, the intake). */
async function ledgerReads(customerId: string) {
  return stripeRequests({ method: "GET", path: `/v1/customers/${customerId}/balance_transactions` });
}

/**
 * Runs syncNow until the wallet says it is in step with Stripe: no sync error, nothing owed,
 * no batch pending. Bounded; each round meets the faults still armed (the SDK's own retries
 * included), so the bound is about how many a scenario arms, not about time.
 */
async function syncUntilSettled(accountId: string, rounds = 12): Promise<{ ok: boolean; error: string | null }[]> {
  const answers: { ok: boolean; error: string | null }[] = [];
  for (let round = 0; round < rounds; round++) {
    const answer = await accountStub(accountId).syncNow(accountId);
    answers.push(answer);
    const i = await accountStub(accountId).inspectWallet();
    if (answer.ok && i.owed === 0 && i.wallet?.sync_error === null && i.batches.every((b) => b.state === "done")) return answers;
  }
  const i = await accountStub(accountId).inspectWallet();
  throw new Error(`the wallet of ${accountId} never settled: ${JSON.stringify({ answers, wallet: i.wallet, batches: i.batches, owed: i.owed })}`);
}

/**
 * The mirror holds: Stripe's balance is −(available + held), every batch is done and is exactly
 * one Stripe entry carrying its number (and no Stripe entry claims a batch the wallet lacks),
 * of the batch's amount, and the wallet's lines add up. Returns the batches.
 */
async function expectMirrored(accountId: string, customerId: string): Promise<BatchRow[]> {
  const i = await accountStub(accountId).inspectWallet();
  const w = i.wallet;
  expect(w).not.toBeNull();
  // (`+ 0`: an empty sum may come back as −0, which is nothing owed all the same.)
  expect(i.owed + 0).toBe(0);
  expect(w?.sync_error).toBeNull();
  expect(await stripeBalance(customerId)).toBe(0 - ((w?.available ?? 0) + (w?.held ?? 0)));
  const ledger = await stripeLedger(customerId);
  const batchEntries = ledger.filter((tx) => tx.metadata.wallet_batch !== undefined);
  expect(batchEntries.map((tx) => Number(tx.metadata.wallet_batch)).sort((x, y) => x - y)).toEqual(i.batches.map((b) => b.n));
  for (const b of i.batches) {
    const entries = batchEntries.filter((tx) => tx.metadata.wallet_batch === String(b.n));
    expect(entries, `batch ${b.n}`).toHaveLength(1);
    expect(b.state).toBe("done");
    expect(b.stripe_tx).toBe(entries[0]?.id);
    expect(entries[0]).toMatchObject({ amount: b.amount, metadata: { account_id: accountId } });
  }
  await expectLinesAddUp(accountId);
  return i.batches;
}

describe("a sync", () => {
  // Invariant: after a sync, −(Stripe's balance) = available + held (holds are not spending, so
  // Stripe's figure counts them as the customer's), each batch is one Stripe entry carrying its
  // number, and a sync with nothing owed writes nothing.
  it("mirrors the wallet in one balance transaction per batch; a second sync writes nothing", async () => {
    const a = await fundedAccount(1000);
    for (const amount of [100, 30, 7]) expect((await debit(a.accountId, amount)).ok).toBe(true);
    await hold(a.accountId, 200);
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect(await stripeBalance(a.customer.id)).toBe(-(663 + 200));
    expect((await expectMirrored(a.accountId, a.customer.id)).map((b) => ({ n: b.n, amount: b.amount, entries: b.entries }))).toEqual([
      { n: 1, amount: 137, entries: 3 },
    ]);

    // A capture is spending too: the next batch.
    const h = await hold(a.accountId, 50);
    expect((await debit(a.accountId, 13)).ok).toBe(true);
    expect(await spend(a.accountId, { op: "capture", hold_id: h.id, amount: 40 }, `cap-${h.id}`)).toMatchObject({ result: { ok: true } });
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect((await expectMirrored(a.accountId, a.customer.id)).map((b) => b.amount)).toEqual([137, 53]);

    const writes = (await batchWrites(a.customer.id)).length;
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect(await batchWrites(a.customer.id)).toHaveLength(writes);
    expect((await stripeLedger(a.customer.id)).filter((tx) => tx.metadata.wallet_batch !== undefined)).toHaveLength(2);
  });

  // Invariant: by default (STRIPE_SYNC_SECONDS = 60) a debit is not written to Stripe at once:
  // the account object's alarm is set about a minute after the first unsynced debit, and
  // nothing is written before the sync runs.
  it("STRIPE_SYNC_SECONDS default 60: the alarm is set about 60 s ahead; no Stripe write until the sync", async () => {
    const a = await fundedAccount(1000);
    const before = Date.now();
    expect((await debit(a.accountId, 10)).ok).toBe(true);
    const after = Date.now();
    const alarm = await accountAlarm(a.accountId);
    expect(alarm).not.toBeNull();
    expect(alarm as number).toBeGreaterThanOrEqual(before + 60_000 - 1000);
    expect(alarm as number).toBeLessThanOrEqual(after + 60_000 + 1000);
    expect((await debit(a.accountId, 10)).ok).toBe(true);
    // A later debit does not push the sync back.
    expect(await accountAlarm(a.accountId)).toBe(alarm);
    expect(await batchWrites(a.customer.id)).toHaveLength(0);
    expect((await a.stub.inspectWallet()).owed).toBe(20);
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect(await batchWrites(a.customer.id)).toHaveLength(1);
    await expectMirrored(a.accountId, a.customer.id);
  });
});

// ---- The fault matrix -------------------------------------------------------------------------

type Where = { method: "GET" | "POST"; path: string; key?: string };
type Rule = Record<string, unknown>;

/** A cell: the rules armed before the first sync, and whether Stripe forgets the batch keys after it. */
interface Cell {
  name: string;
  rules: (write: Where, look: Where) => Rule[];
  expireKeys?: boolean;
  /** The keys the first batch must have been written under, when the cell decides them. */
  keys?: (base: string) => string[];
}

/** Applied, the answer lost, and the SDK's retry refused (the 429 fires on the key's second request): outcome unknown, entry in Stripe. */
const unknownApplied = (write: Where): Rule[] => [
  { ...write, kind: "drop", times: 1 },
  { ...write, kind: "rate_limit", every: 2, times: 1 },
];
/** Hangs past the timeout on every one of the SDK's tries, never applied: outcome unknown, nothing in Stripe. */
const unknownNotApplied = (write: Where): Rule[] => [{ ...write, kind: "hang", times: 3 }];

// Three in a row outlast the SDK's two retries, so the wallet's protocol has to recover by itself.
const WRITE_CELLS: Cell[] = [
  { name: "500 before apply ×3", rules: (w) => [{ ...w, kind: "error_500", saved: false, times: 3 }] },
  { name: "500 before apply ×5", rules: (w) => [{ ...w, kind: "error_500", saved: false, times: 5 }] },
  { name: "500 saved and replayed, applied", rules: (w) => [{ ...w, kind: "error_500", saved: true, apply: true, times: 1 }], keys: (b) => [b] },
  { name: "500 saved and replayed, not applied", rules: (w) => [{ ...w, kind: "error_500", saved: true, times: 1 }], keys: (b) => [b, `${b}:2`] },
  { name: "applied then dropped ×3", rules: (w) => [{ ...w, kind: "drop", times: 3 }], keys: (b) => [b] },
  { name: "applied, dropped with every replay ×5", rules: (w) => [{ ...w, kind: "drop", replays: true, times: 5 }], keys: (b) => [b] },
  { name: "429 ×3", rules: (w) => [{ ...w, kind: "rate_limit", times: 3 }], keys: (b) => [b] },
  { name: "429 ×3 (Stripe-Should-Retry: true)", rules: (w) => [{ ...w, kind: "rate_limit", should_retry: true, times: 3 }], keys: (b) => [b] },
  { name: "409 in use ×3", rules: (w) => [{ ...w, kind: "in_use", times: 3 }], keys: (b) => [b] },
  { name: "hang past the timeout, applied ×3", rules: (w) => [{ ...w, kind: "hang", apply: true, times: 3 }], keys: (b) => [b] },
  { name: "hang past the timeout, not applied ×3", rules: unknownNotApplied, keys: (b) => [b] },
  // A refused request finished without writing; whether Stripe saved the refusal under its key
  // cannot be told from outside, so the next try looks at the ledger and moves to the next key.
  { name: "400 refused, not saved", rules: (w) => [{ ...w, kind: "error_400", saved: false, times: 1 }], keys: (b) => [b, `${b}:2`] },
  { name: "400 refused, saved under the key (as Stripe does)", rules: (w) => [{ ...w, kind: "error_400", times: 1 }], keys: (b) => [b, `${b}:2`] },
  { name: "outcome unknown, then the key expired", rules: unknownApplied, expireKeys: true, keys: (b) => [b] },
];

/** The look's faults, each after a write whose outcome is unknown (so the look is what decides). */
const LOOK_FAULTS: [string, (look: Where) => Rule[]][] = [
  ["500 ×3", (l) => [{ ...l, kind: "error_500", saved: false, times: 3 }]],
  ["500 ×5", (l) => [{ ...l, kind: "error_500", saved: false, times: 5 }]],
  ["429 ×3", (l) => [{ ...l, kind: "rate_limit", times: 3 }]],
  ["409 ×3", (l) => [{ ...l, kind: "in_use", times: 3 }]],
  ["hang ×3", (l) => [{ ...l, kind: "hang", times: 3 }]],
  ["dropped ×3", (l) => [{ ...l, kind: "drop", times: 3 }]],
  ["400", (l) => [{ ...l, kind: "error_400", times: 1 }]],
];
const LOOK_CELLS: Cell[] = [
  ...LOOK_FAULTS.flatMap(([name, look]): Cell[] => [
    { name: `look: ${name}, after a write applied`, rules: (w, l) => [...unknownApplied(w), ...look(l)], keys: (b) => [b] },
    { name: `look: ${name}, after a write not applied`, rules: (w, l) => [...unknownNotApplied(w), ...look(l)], keys: (b) => [b] },
  ]),
  {
    // Applied under a saved 500, the key pruned, and the look that must find it fails first.
    name: "look: 500 ×3 after a write applied under a saved 500, then the key expired",
    rules: (w, l) => [
      { ...w, kind: "error_500", saved: true, apply: true, times: 1 },
      { ...l, kind: "error_500", saved: false, times: 3 },
    ],
    expireKeys: true,
    keys: (b) => [b],
  },
];

const matrix = new Map<string, string>();

async function runCell(cell: Cell): Promise<void> {
  matrix.set(cell.name, "FAILED");
  const a = await fundedAccount(1000);
  const cus = a.customer.id;
  for (const amount of [100, 30]) expect((await debit(a.accountId, amount)).ok).toBe(true);
  await hold(a.accountId, 200);
  const write: Where = { method: "POST", path: `/v1/customers/${cus}/balance_transactions`, key: batchKeys(cus) };
  const look: Where = { method: "GET", path: `/v1/customers/${cus}/balance_transactions` };
  const ids: number[] = [];
  try {
    for (const rule of cell.rules(write, look)) ids.push(await addFault(rule));
    const first = await a.stub.syncNow(a.accountId);
    if (cell.expireKeys) {
      expect(first.ok).toBe(false);
      await emu("/idempotency/expire", { key: `wallet-debits:${cus}*` });
    }
    const answers = [first, ...(await syncUntilSettled(a.accountId))];
    // Every rule of the cell fired: no cell passes without meeting its fault.
    const rules = (await emu<{ data: { id: number; kind: string; fired: number }[] }>("/faults")).data.filter((r) => ids.includes(r.id));
    for (const r of rules) expect(r.fired, `${r.kind} (rule ${r.id})`).toBeGreaterThan(0);
    // Then more spending, synced with Stripe behaving: the second batch is written once too.
    expect((await debit(a.accountId, 20)).ok).toBe(true);
    await syncUntilSettled(a.accountId);
    const batches = await expectMirrored(a.accountId, cus);
    expect(batches.map((b) => b.amount)).toEqual([130, 20]);
    if (cell.keys) {
      const sent = [...new Set((await stripeRequests({ key: `wallet-debits:${cus}:1*` })).map((r) => r.idempotency_key))];
      expect(sent).toEqual(cell.keys(`wallet-debits:${cus}:1`));
    }
    matrix.set(cell.name, `ok (${answers.filter((x) => !x.ok).length} failed syncs first)`);
  } finally {
    for (const id of ids) await removeFault(id);
  }
}

describe.concurrent("the sync under Stripe's faults: the batch write", () => {
  for (const cell of WRITE_CELLS) it(cell.name, () => runCell(cell));
});

describe.concurrent("the sync under Stripe's faults: the ledger look", () => {
  for (const cell of LOOK_CELLS) it(cell.name, () => runCell(cell));
});

describe("the batch recorded, then the object gone before it was written", () => {
  // Invariant: a batch is recorded (and marked sent) before it is sent, so a sync that dies
  // before Stripe answered leaves a pending batch, and the next sync reads the ledger before
  // writing again: one entry, under the batch's own key.
  it("the first write hangs and fails: the batch is pending, sent; a fresh sync looks first, then writes it once", async () => {
    const a = await fundedAccount(1000);
    const cus = a.customer.id;
    expect((await debit(a.accountId, 75)).ok).toBe(true);
    // Hangs on every try for as long as it is armed, so that no sync (the alarm's included) can
    // write the batch until the pending state has been looked at.
    const id = await addFault({ method: "POST", path: `/v1/customers/${cus}/balance_transactions`, key: batchKeys(cus), kind: "hang", times: 1000 });
    try {
      expect((await a.stub.syncNow(a.accountId)).ok).toBe(false);
      expect((await a.stub.inspectWallet()).batches).toMatchObject([{ n: 1, state: "pending", sent: 1, amount: 75 }]);
      expect((await stripeLedger(cus)).filter((tx) => tx.metadata.wallet_batch !== undefined)).toHaveLength(0);
    } finally {
      await removeFault(id);
    }
    const readsBefore = (await ledgerReads(cus)).length;
    await syncUntilSettled(a.accountId);
    // A look came before the write that landed, and that write used the batch's own key.
    const log = await stripeRequests({ path: `/v1/customers/${cus}/balance_transactions` });
    const landed = log.findIndex((r) => r.method === "POST" && r.idempotency_key === `wallet-debits:${cus}:1` && r.status === 200);
    expect(landed).toBeGreaterThan(-1);
    expect(log.slice(0, landed).filter((r) => r.method === "GET").length).toBeGreaterThan(readsBefore);
    await expectMirrored(a.accountId, cus);
  });
});

// Restarts cut off every object of this file's runtime, so they run alone, after the rest.
describe("the object restarted in the middle of a batch write", () => {
  // Invariant: a restart of the account object while a batch write is in flight (its outcome
  // unknown to the object) never writes the batch twice and never loses it.
  for (const applied of [true, false]) {
    it(`${applied ? "applied at Stripe" : "not yet applied"} when the object died → written once after the restart`, async () => {
      const a = await fundedAccount(1000);
      const cus = a.customer.id;
      expect((await debit(a.accountId, 60)).ok).toBe(true);
      expect((await debit(a.accountId, 40)).ok).toBe(true);
      const write = { method: "POST", path: `/v1/customers/${cus}/balance_transactions` };
      const id = applied ? await addFault({ ...write, key: batchKeys(cus), kind: "hang", apply: true, times: 1 }) : null;
      if (!applied) await emu("/latency", { ...write, ms: 1500 });
      try {
        const inFlight = a.stub.syncNow(a.accountId).catch((err: unknown) => ({ ok: false, error: String(err) }));
        await waitForRequest({ key: batchKeys(cus) });
        await abortAllDurableObjects();
        expect((await inFlight).ok).toBe(false);
      } finally {
        if (id !== null) await removeFault(id);
        if (!applied) await emu("/latency", { ...write, ms: 0 });
      }
      // A new instance, from storage alone: the batch was recorded and sent before the object died.
      expect((await accountStub(a.accountId).inspectWallet()).batches).toMatchObject([{ n: 1, state: "pending", sent: 1, amount: 100 }]);
      await syncUntilSettled(a.accountId);
      expect((await expectMirrored(a.accountId, cus)).map((b) => b.amount)).toEqual([100]);
      expect(await totals(a.accountId)).toEqual({ available: 900, held: 0 });
    });
  }
});

// ---- Entries from elsewhere -----------------------------------------------------------------------

describe("entries written to Stripe from elsewhere", () => {
  // Invariant: an entry in the customer's Stripe ledger that the wallet did not make or hear
  // of (an invoice that used the balance, a Dashboard adjustment) is taken in at the next sync,
  // once however many syncs follow, and the mirror holds.
  it("an invoice's use of the balance and a Dashboard credit become `stripe` lines, once", async () => {
    const a = await fundedAccount(1000);
    expect((await debit(a.accountId, 100)).ok).toBe(true);
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    const invoice = await writeStripeEntry(a.customer.id, 200);
    const dashboard = await writeStripeEntry(a.customer.id, -50, { description: "Goodwill credit" });
    for (let i = 0; i < 2; i++) {
      expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
      const lines = await allLines(a.accountId);
      for (const tx of [invoice, dashboard]) {
        const taken = lines.filter((l) => l.balance_transaction_id === tx.id);
        expect(taken).toHaveLength(1);
        expect(taken[0]).toMatchObject({ kind: "stripe", amount: -tx.amount, held: 0 });
      }
      expect(await totals(a.accountId)).toEqual({ available: 750, held: 0 });
      await expectMirrored(a.accountId, a.customer.id);
    }
  });

  // Invariant: an entry taken in from Stripe may take available below zero (the customer owes
  // it); then every debit and hold is refused until a credit brings available back above the
  // amount asked.
  it("a foreign debit below zero: debits refused until a credit brings available back", async () => {
    const a = await fundedAccount(100);
    await writeStripeEntry(a.customer.id, 300);
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect(await totals(a.accountId)).toEqual({ available: -200, held: 0 });
    expect(await debit(a.accountId, 1)).toEqual({ ok: false, code: "insufficient_credit", available: -200, currency: "usd" });
    const refusedHold = await spend(a.accountId, { op: "hold", amount: 1, currency: "usd", expires_in_seconds: 60 }, "neg-hold");
    expect(refusedHold).toMatchObject({ kind: "result", result: { ok: false, code: "insufficient_credit", available: -200 } });
    // A credit that leaves it at zero still covers nothing.
    await writeStripeEntry(a.customer.id, -200, { description: "Partial settlement" });
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect(await debit(a.accountId, 1)).toMatchObject({ ok: false, code: "insufficient_credit", available: 0 });
    await writeStripeEntry(a.customer.id, -50, { description: "Top-up by hand" });
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    expect(await debit(a.accountId, 50)).toMatchObject({ ok: true, debit: { balance: { available: 0 } } });
    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    await expectMirrored(a.accountId, a.customer.id);
    expect(await stripeBalance(a.customer.id)).toBe(0);
  });
});

// ---- Opening ----------------------------------------------------------------------------------

describe("a customer the older server made", () => {
  // Invariant: the wallet opens from the customer's Stripe ledger once, with Stripe's figure
  // (available = −balance) and every entry it already includes remembered; from then on neither
  // reading the balance nor spending asks Stripe anything, and a later report of an entry the
  // opening included changes nothing.
  it("opens with one ledger read at available = −balance; then no Stripe request; a later report of an included entry changes nothing", async () => {
    const accountId = newAccountId();
    const customer = await createCustomer(accountId);
    const entries: StripeEntry[] = [];
    entries.push(await writeStripeEntry(customer.id, -1000, { description: "legacy top-up", metadata: { payment_intent: "pi_legacyOpening1" } }));
    entries.push(await writeStripeEntry(customer.id, -500, { description: "Dashboard credit" }));
    entries.push(await writeStripeEntry(customer.id, 200, { description: "API usage (per call)" }));
    expect(await stripeBalance(customer.id)).toBe(-1300);

    const searches = async () =>
      (await stripeRequests({ path: "/v1/customers/search" })).filter((r) => String((r.params as Record<string, unknown> | null)?.query).includes(accountId))
        .length;
    const customerCalls = async () => (await stripeRequests({ path: `/v1/customers/${customer.id}/**` })).length;
    const readsBefore = (await ledgerReads(customer.id)).length;
    const stub = accountStub(accountId);
    expect(await stub.walletBalance(accountId)).toMatchObject({ ok: true, balance: { available: 1300, held: 0, currency: "usd" } });
    expect(await ledgerReads(customer.id)).toHaveLength(readsBefore + 1);

    const calls = await customerCalls();
    const searched = await searches();
    await stub.walletBalance(accountId);
    expect((await debit(accountId, 100)).ok).toBe(true);
    expect((await debit(accountId, 100)).ok).toBe(true);
    await hold(accountId, 100);
    await stub.walletBalance(accountId);
    await allLines(accountId);
    expect(await customerCalls()).toBe(calls);
    expect(await searches()).toBe(searched);

    // The opening's lines: each Stripe entry once, by its id, of the kind its metadata says.
    const lines = await allLines(accountId);
    const kinds = entries.map((tx) => lines.filter((l) => l.balance_transaction_id === tx.id).map((l) => `${l.kind} ${l.amount}`));
    expect(kinds).toEqual([["top_up 1000"], ["stripe 500"], ["stripe -200"]]);

    const legacyCredit = entries[0] as StripeEntry;
    const told = await stub.applyStripeEntries(accountId, [
      report(customer.id, { balance_transaction_id: legacyCredit.id, amount: -1000, payment_intent_id: "pi_legacyOpening1", kind: "top_up" }),
    ]);
    expect(told).toEqual({ ok: true });
    expect(await totals(accountId)).toEqual({ available: 1000, held: 100 });
    expect((await allLines(accountId)).filter((l) => l.balance_transaction_id === legacyCredit.id)).toHaveLength(1);
    expect(await customerCalls()).toBe(calls);

    // The sync finds nothing new in the opened ledger and mirrors the spending.
    expect(await stub.syncNow(accountId)).toEqual({ ok: true, error: null });
    await expectMirrored(accountId, customer.id);
    expect(await totals(accountId)).toEqual({ available: 1000, held: 100 });
  });
});

// ---- Reports ----------------------------------------------------------------------------------

describe("reports of the same entry", () => {
  // Invariant: the wallet applies each balance transaction once by its id, however often and
  // however concurrently it is reported, and the sync that later sees it in Stripe's ledger
  // does not apply it again.
  it("the same balance_transaction_id twice, then 20 times at once: counted once", async () => {
    const a = await fundedAccount(1000);
    const tx = await writeStripeEntry(a.customer.id, -300, { metadata: { payment_intent: "pi_reportedTwice" } });
    const r = report(a.customer.id, { balance_transaction_id: tx.id, amount: -300, payment_intent_id: "pi_reportedTwice" });
    expect(await a.stub.applyStripeEntries(a.accountId, [r])).toEqual({ ok: true });
    expect(await a.stub.applyStripeEntries(a.accountId, [r])).toEqual({ ok: true });
    expect(await totals(a.accountId)).toEqual({ available: 1300, held: 0 });
    const told = await Promise.all(Array.from({ length: 20 }, () => a.stub.applyStripeEntries(a.accountId, [r, r])));
    expect(told.every((t) => t.ok)).toBe(true);
    expect(await totals(a.accountId)).toEqual({ available: 1300, held: 0 });

    const fresh = await writeStripeEntry(a.customer.id, -25, { metadata: { payment_intent: "pi_reportedConcurrently" } });
    const r2 = report(a.customer.id, { balance_transaction_id: fresh.id, amount: -25, payment_intent_id: "pi_reportedConcurrently" });
    await Promise.all(Array.from({ length: 20 }, () => a.stub.applyStripeEntries(a.accountId, [r2])));
    expect(await totals(a.accountId)).toEqual({ available: 1325, held: 0 });

    expect(await a.stub.syncNow(a.accountId)).toEqual({ ok: true, error: null });
    const lines = await allLines(a.accountId);
    expect(lines.filter((l) => l.balance_transaction_id === tx.id)).toHaveLength(1);
    expect(lines.filter((l) => l.balance_transaction_id === fresh.id)).toHaveLength(1);
    expect(await totals(a.accountId)).toEqual({ available: 1325, held: 0 });
    await expectMirrored(a.accountId, a.customer.id);
  });
});

afterAll(() => {
  const pad = (s: string) => s.padEnd(80);
  console.log(
    ["", "Wallet sync under faults: Stripe's balance = −(available + held), each batch one entry", ...[...matrix].map(([k, v]) => pad(k) + v), ""].join("\n"),
  );
});
