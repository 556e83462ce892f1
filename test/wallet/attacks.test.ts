// The wallet and the seller's API under attack: what a hostile caller, a careless seller and a
// bad night at Stripe can do to an account's credit, each written as the property that must
// still hold. Overspending through concurrency, restarts and slow Stripe; Idempotency-Keys
// raced, reused, padded and oversized; another account's holds, cursors and look-alike ids;
// tokens in the wrong place; amounts at the edges of JSON; credit taken back after it was
// spent; Stripe down while a wallet first opens; a flood of debits; and a payment whose metadata
// names one account while its money is another's.
//
// Every wallet here is funded with real money paths: a top-up confirmed by the browser, a
// webhook, or an entry already on the customer's Stripe ledger when the wallet first opens.

import { abortAllDurableObjects, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Inspection } from "../../src/credit/contract.js";
import {
  addFault,
  authed,
  call,
  confirm,
  createCustomer,
  createPaymentIntent,
  deliver,
  drainAlarms,
  emu,
  eventsFor,
  ledgerFor,
  newAccountId,
  paidThroughService,
  removeFault,
  stripeRequests,
  SERVICE_TOKEN,
  seller,
  settledCredit,
  tokenFor,
  topUp,
  topUpMetadata,
  waitForObject,
  waitForRequest,
} from "../helpers.js";
import {
  accountStub,
  allLines,
  expectLinesAddUp,
  freshKey,
  fundedAccount,
  stripeBalance,
  stripeLedger,
  totals,
  untilPast,
  writeStripeEntry,
} from "./helpers.js";

// ---- Talking to the seller's API ------------------------------------------------------------

interface Balance {
  available: number;
  held: number;
  currency: string;
}

/** Every field any seller answer may carry; each test reads the ones its route has. */
interface Body {
  id?: string;
  account_id?: string;
  amount?: number;
  currency?: string;
  status?: string;
  expires_at?: string;
  hold_id?: string;
  released?: number;
  debit?: { id: string; amount: number };
  balance?: Balance;
  available?: number;
  held?: number;
  error?: { code: string; message: string; available?: number; currency?: string; hold_status?: string };
}

/** One answer of the seller's API, reduced to what the checks read. */
interface Answer {
  status: number;
  body: Body;
  text: string;
  replayed: boolean;
  retryAfter: string | null;
}

async function answerOf(res: Response): Promise<Answer> {
  const text = await res.text();
  return {
    status: res.status,
    body: (text === "" ? {} : JSON.parse(text)) as Body,
    text,
    replayed: res.headers.get("idempotent-replayed") === "true",
    retryAfter: res.headers.get("retry-after"),
  };
}

const base = (accountId: string) => `/v1/accounts/${accountId}`;

/** A POST to the seller's API with `rawBody` sent byte for byte (so JSON oddities reach the route as written). */
async function postRaw(path: string, rawBody: string, key: string): Promise<Answer> {
  return answerOf(await seller(path, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key }, body: rawBody }));
}

/** A JSON POST to `/v1/accounts/{accountId}{path}` under `key`. */
function post(accountId: string, path: string, body: unknown, key: string = freshKey("atk")): Promise<Answer> {
  return postRaw(`${base(accountId)}${path}`, JSON.stringify(body), key);
}

async function sellerBalance(accountId: string): Promise<Balance> {
  const a = await answerOf(await seller(`${base(accountId)}/balance`));
  expect(a.status).toBe(200);
  return { available: a.body.available ?? NaN, held: a.body.held ?? NaN, currency: a.body.currency ?? "" };
}

/**
 * Syncs until the wallet is in step with Stripe (nothing owed, no batch pending, no error), then
 * checks the mirror: −(Stripe's balance) = available + held, and every batch is one Stripe entry.
 */
async function expectMirroredAfterSync(accountId: string, customerId: string): Promise<void> {
  const stub = accountStub(accountId);
  for (let round = 0; ; round++) {
    const answer = await stub.syncNow(accountId);
    const i = await stub.inspectWallet();
    if (answer.ok && i.owed === 0 && i.batches.every((b) => b.state === "done")) break;
    if (round >= 10) throw new Error(`the wallet of ${accountId} never settled: ${JSON.stringify({ answer, wallet: i.wallet, batches: i.batches })}`);
  }
  const i = await stub.inspectWallet();
  expect(await stripeBalance(customerId)).toBe(0 - ((i.wallet?.available ?? 0) + (i.wallet?.held ?? 0)));
  const written = (await stripeLedger(customerId)).filter((tx) => tx.metadata.wallet_batch !== undefined);
  expect(written.map((tx) => Number(tx.metadata.wallet_batch)).sort((x, y) => x - y)).toEqual(i.batches.map((b) => b.n));
  for (const b of i.batches) expect(written.find((tx) => tx.metadata.wallet_batch === String(b.n))?.amount).toBe(b.amount);
  await expectLinesAddUp(accountId);
}

/** A small deterministic generator, so a failing run can be read again as it was. */
function lcg(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

// ---- Overspending ---------------------------------------------------------------------------

/** One spending request as the seller sends it, and every answer it got (a 503 is retried with the same key and body). */
interface Sent {
  path: string;
  body: unknown;
  key: string;
  answers: Answer[];
}

function request(accountId: string, path: string, body: unknown): Sent {
  return { path: `${base(accountId)}${path}`, body, key: freshKey("chaos"), answers: [] };
}

async function fire(r: Sent): Promise<Sent> {
  r.answers.push(await postRaw(r.path, JSON.stringify(r.body), r.key));
  return r;
}

/** The answer a request ends with: the first that is not a 503 (a 503 keeps nothing, so the seller retries it). */
const final = (r: Sent): Answer | undefined => r.answers.find((a) => a.status !== 503);

/** Retries, with the same key and body, every request whose last answer was 503, as a seller's backend would. */
async function retryUnavailable(requests: Sent[]): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const open = requests.filter((r) => r.answers.at(-1)?.status === 503);
    if (open.length === 0) return;
    for (const r of open) expect(Number(r.answers.at(-1)?.retryAfter)).toBeGreaterThanOrEqual(1);
    await Promise.all(open.map(fire));
  }
  throw new Error("requests still answered 503 after 10 rounds");
}

describe("overspending: concurrency, Stripe slow, the object restarted", () => {
  // Invariant: however spending requests interleave, and whatever restarts cut them off, no
  // answer shows available below zero; every key has one effect, and every answer under a key
  // (the first, and each replay) is the same; the ledger holds exactly the debits, holds and
  // captures the answers granted; its lines add up; and after a sync Stripe mirrors the wallet.
  it("60 debits and holds wait on a slow first opening that a restart cuts off; then captures above the hold, racing releases, more debits and a sync cut off mid-write", async () => {
    const FUND = 5000;
    const accountId = newAccountId("chaos");
    const customer = await createCustomer(accountId);
    await writeStripeEntry(customer.id, -FUND, { description: "Credit from the older server" });
    const slow = { path: `/v1/customers/${customer.id}/**` };
    await emu("/latency", { ...slow, ms: 300 });
    const rand = lcg(12);
    const all: Sent[] = [];
    try {
      // The wallet opens from Stripe's ledger (one slow read); everything waits on it; the object dies during it.
      const first = [
        ...Array.from({ length: 40 }, () => request(accountId, "/debits", { amount: 10 + rand(190), currency: "usd" })),
        ...Array.from({ length: 20 }, () => request(accountId, "/holds", { amount: 100 + rand(200), currency: "usd" })),
      ];
      all.push(...first);
      const inFlight = Promise.all(first.map(fire));
      await waitForRequest({ method: "GET", path: `/v1/customers/${customer.id}/balance_transactions` });
      await abortAllDurableObjects();
      await inFlight;
      await retryUnavailable(first);

      const holds = first.flatMap((r) => {
        const a = final(r);
        return a?.status === 201 && a.body.id?.startsWith("hold_") ? [{ id: a.body.id, amount: a.body.amount ?? 0 }] : [];
      });
      expect(holds.length).toBeGreaterThan(4);

      // Captures (whole, less, above the hold), releases racing captures of the same hold, more debits.
      const second: Sent[] = [];
      holds.forEach((h, i) => {
        const capture = (body: unknown) => request(accountId, `/holds/${h.id}/capture`, body);
        const release = () => request(accountId, `/holds/${h.id}/release`, {});
        if (i % 4 === 0) second.push(capture({}), release());
        if (i % 4 === 1) second.push(capture({ amount: h.amount + 50 + rand(500) }));
        if (i % 4 === 2) second.push(capture({ amount: 1 + rand(h.amount) }), release());
        if (i % 4 === 3) second.push(release(), capture({ amount: h.amount + 1 }));
      });
      second.push(...Array.from({ length: 60 }, () => request(accountId, "/debits", { amount: 1 + rand(150), currency: "usd" })));
      // Shuffled, then sent in waves, so the restart below lands among them.
      for (let i = second.length - 1; i > 0; i--) {
        const j = rand(i + 1);
        [second[i], second[j]] = [second[j] as Sent, second[i] as Sent];
      }
      all.push(...second);
      const syncing = accountStub(accountId)
        .syncNow(accountId)
        .catch(() => null);
      const waves = (async () => {
        for (let i = 0; i < second.length; i += 8) await Promise.all(second.slice(i, i + 8).map(fire));
      })();
      await waitForRequest({ method: "POST", key: `wallet-debits:${customer.id}:*` });
      await abortAllDurableObjects();
      await Promise.all([waves, syncing]);
      await retryUnavailable(second);
    } finally {
      await emu("/latency", { ...slow, ms: 0 });
    }
    const tally = (status: number) => all.filter((r) => final(r)?.status === status).length;
    console.log(
      `[chaos] ${all.length} requests: ${all.filter((r) => r.answers[0]?.status === 503).length} answered 503 by a restart, then retried; ` +
        `final answers 200: ${tally(200)}, 201: ${tally(201)}, 402: ${tally(402)}, 409: ${tally(409)}`,
    );

    // Every answer: never below zero; under one key, one answer, replayed identically.
    for (const r of all) {
      const kept = r.answers.filter((a) => a.status !== 503);
      expect(kept.length, r.key).toBeGreaterThan(0);
      for (const a of kept) {
        expect([200, 201, 402, 409], a.text).toContain(a.status);
        expect(a.text).toBe(kept[0]?.text);
        if (a.body.balance) expect(a.body.balance.available).toBeGreaterThanOrEqual(0);
        if (a.status === 402) expect(a.body.error?.available).toBeGreaterThanOrEqual(0);
      }
      expect(kept.slice(1).every((a) => a.replayed)).toBe(true);
    }

    // What the answers granted is exactly what the ledger holds.
    const granted = all.map((r) => ({ r, a: final(r) as Answer }));
    const debits = granted.filter(({ r, a }) => r.path.endsWith("/debits") && a.status === 201).map(({ a }) => a.body);
    const holdsMade = granted.filter(({ r, a }) => r.path.endsWith("/holds") && a.status === 201).map(({ a }) => a.body);
    const captures = granted.filter(({ r, a }) => r.path.endsWith("/capture") && a.status === 200).map(({ a }) => a.body);
    const releases = granted.filter(({ r, a }) => r.path.endsWith("/release") && a.status === 200).map(({ a }) => a.body);
    const ended = new Set([...captures, ...releases].map((b) => b.hold_id));
    expect(ended.size).toBe(captures.length + releases.length);
    const spent = debits.reduce((s, d) => s + (d.amount ?? 0), 0) + captures.reduce((s, c) => s + (c.debit?.amount ?? 0), 0);
    const held = holdsMade.filter((h) => !ended.has(h.id)).reduce((s, h) => s + (h.amount ?? 0), 0);
    expect(await totals(accountId)).toEqual({ available: FUND - spent - held, held });

    const lines = await allLines(accountId);
    const ids = (kind: string) => lines.filter((l) => l.kind === kind).map((l) => l.id);
    expect(ids("debit").sort()).toEqual(debits.map((d) => d.id).sort());
    expect(ids("capture").sort()).toEqual(captures.map((c) => c.debit?.id).sort());
    expect(
      lines
        .filter((l) => l.kind === "hold")
        .map((l) => l.hold_id)
        .sort(),
    ).toEqual(holdsMade.map((h) => h.id).sort());
    expect(
      lines
        .filter((l) => l.kind === "release")
        .map((l) => l.hold_id)
        .sort(),
    ).toEqual(releases.map((r) => r.hold_id).sort());
    await expectMirroredAfterSync(accountId, customer.id);
  });

  // Invariant: a capture and a release of one hold, sent at the same moment, end it once: one
  // is granted and the other is told the hold is no longer active, naming what became of it.
  it("a capture racing its own release, on 20 holds at once: one wins each race, the other is 409 naming the winner", async () => {
    const f = await fundedAccount(4000);
    const holds = await Promise.all(Array.from({ length: 20 }, () => post(f.accountId, "/holds", { amount: 100, currency: "usd" })));
    const races = await Promise.all(
      holds.map(async (h, i) => {
        const id = h.body.id as string;
        const capture = post(f.accountId, `/holds/${id}/capture`, i % 2 === 0 ? {} : { amount: 150 });
        const release = post(f.accountId, `/holds/${id}/release`, {});
        const [c, r] = i % 3 === 0 ? [await capture, await release] : await Promise.all([capture, release]);
        return { c, r };
      }),
    );
    let spent = 0;
    for (const { c, r } of races) {
      expect([c.status, r.status].sort()).toEqual([200, 409]);
      const loser = c.status === 409 ? c : r;
      expect(loser.body.error).toMatchObject({ code: "hold_not_active", hold_status: c.status === 200 ? "captured" : "released" });
      if (c.status === 200) spent += c.body.debit?.amount ?? 0;
    }
    expect(await totals(f.accountId)).toEqual({ available: 4000 - spent, held: 0 });
    await expectLinesAddUp(f.accountId);
  });

  // Invariant: a hold that expires while captures arrive ends once, either captured (before its
  // time) or released as expired (after), never both; and an expired hold's credit is back.
  it("captures racing hold expiry (1 s holds, captures sprayed across the moment): each hold ends once", async () => {
    const f = await fundedAccount(3000);
    const holds = await Promise.all(Array.from({ length: 10 }, () => post(f.accountId, "/holds", { amount: 200, currency: "usd", expires_in_seconds: 1 })));
    const expiries = holds.map((h) => Date.parse(h.body.expires_at as string));
    const latest = Math.max(...expiries);
    // One capture every 15 ms from 75 ms before the first expiry, and the alarm in the middle of them.
    const start = Math.min(...expiries) - 75;
    await untilPast(start);
    const [captures] = await Promise.all([
      Promise.all(
        holds.map(async (h, i) => {
          await untilPast(start + i * 15);
          return post(f.accountId, `/holds/${h.body.id as string}/capture`, {});
        }),
      ),
      untilPast(start + 75).then(() => runDurableObjectAlarm(f.stub)),
    ]);
    await untilPast(latest);
    await runDurableObjectAlarm(f.stub);
    const lines = await allLines(f.accountId);
    let spent = 0;
    holds.forEach((h, i) => {
      const c = captures[i] as Answer;
      const ends = lines.filter((l) => l.hold_id === h.body.id && l.kind !== "hold");
      expect(ends).toHaveLength(1);
      if (c.status === 200) {
        expect(ends[0]?.kind).toBe("capture");
        // Granted only while the hold was live.
        expect(Date.parse(ends[0]?.created as string)).toBeLessThan(Date.parse(h.body.expires_at as string));
        spent += 200;
      } else {
        expect(c.body.error).toMatchObject({ code: "hold_not_active", hold_status: "expired" });
        expect(ends[0]).toMatchObject({ kind: "release", description: "Hold expired" });
      }
    });
    console.log(`[expiry race] captured before expiry: ${spent / 200}, found expired: ${10 - spent / 200}`);
    expect(await totals(f.accountId)).toEqual({ available: 3000 - spent, held: 0 });
    await expectLinesAddUp(f.accountId);
  });
});

// ---- Idempotency-Keys -----------------------------------------------------------------------

describe("Idempotency-Keys under attack", () => {
  // Invariant: one key, one effect. 50 identical requests at once spend once, and all 50 answers
  // have the same status and body (49 of them marked replayed).
  it("the same key and body 50 times at once: one debit, 50 identical answers", async () => {
    const f = await fundedAccount(1000);
    const key = freshKey("same");
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(f.accountId, "/debits", { amount: 70, currency: "usd" }, key)));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(201));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    expect(await totals(f.accountId)).toEqual({ available: 930, held: 0 });
    expect((await allLines(f.accountId)).filter((l) => l.kind === "debit")).toHaveLength(1);
  });

  // Invariant: 50 different bodies under one key at once: exactly one is run, every other is 409,
  // and the one effect is the winner's amount.
  it("the same key with 50 different bodies at once: one 201, 49 × 409, the debit taken is the winner's", async () => {
    const f = await fundedAccount(5000);
    const key = freshKey("diff");
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post(f.accountId, "/debits", { amount: i + 1, currency: "usd" }, key)));
    const won = answers.filter((a) => a.status === 201);
    expect(won).toHaveLength(1);
    expect(answers.filter((a) => a.status === 409).every((a) => a.body.error?.code === "idempotency_key_reused")).toBe(true);
    expect(answers.filter((a) => a.status === 409)).toHaveLength(49);
    expect(await totals(f.accountId)).toEqual({ available: 5000 - (won[0]?.body.amount ?? NaN), held: 0 });
  });

  // Invariant: the same key on two accounts is two keys, also when sent at the same moment.
  it("one key on two accounts at once: two independent debits", async () => {
    const [a, b] = await Promise.all([fundedAccount(1000), fundedAccount(1000)]);
    const key = freshKey("shared");
    const [x, y] = await Promise.all([
      post(a.accountId, "/debits", { amount: 100, currency: "usd" }, key),
      post(b.accountId, "/debits", { amount: 300, currency: "usd" }, key),
    ]);
    expect([x.status, y.status, x.replayed, y.replayed]).toEqual([201, 201, false, false]);
    expect(await totals(a.accountId)).toEqual({ available: 900, held: 0 });
    expect(await totals(b.accountId)).toEqual({ available: 700, held: 0 });
  });

  // Invariant: a key names one request: a debit's key used for a hold (same amount) is 409, and nothing is held.
  it("a debit's key reused for a hold of the same amount: 409, nothing held", async () => {
    const f = await fundedAccount(1000);
    const key = freshKey("op");
    expect((await post(f.accountId, "/debits", { amount: 100, currency: "usd" }, key)).status).toBe(201);
    const h = await post(f.accountId, "/holds", { amount: 100, currency: "usd" }, key);
    expect(h.status).toBe(409);
    expect(h.body.error?.code).toBe("idempotency_key_reused");
    expect(await totals(f.accountId)).toEqual({ available: 900, held: 0 });
  });

  // Invariant: keys are 1..255 printable ASCII characters; anything else is 400 and kept nowhere,
  // so it spends nothing; padding a key with whitespace (which HTTP strips) does not make it new.
  it("odd keys: spaces inside work; padded with whitespace is the same key; control characters, Latin-1 and 256 characters are 400, nothing spent", async () => {
    const f = await fundedAccount(1000);
    const body = { amount: 10, currency: "usd" };
    const spaced = `a key with  spaces ${freshKey()}`;
    expect((await post(f.accountId, "/debits", body, spaced)).status).toBe(201);
    const padded = await post(f.accountId, "/debits", body, ` \t${spaced}\t `);
    expect([padded.status, padded.replayed]).toEqual([201, true]);

    for (const key of [`tab\tinside-${freshKey()}`, `ctl\u0001-${freshKey()}`, `del\u007f-${freshKey()}`, `cl\u00e9-${freshKey()}`]) {
      const a = await post(f.accountId, "/debits", body, key);
      expect(a.status, JSON.stringify(key)).toBe(400);
      expect(a.body.error?.code).toBe("invalid_request");
    }
    // Beyond Latin-1, workerd sends the key as UTF-8 bytes: still not printable ASCII.
    const cyrillic = await post(f.accountId, "/debits", body, `ключ-${freshKey()}`);
    expect([cyrillic.status, cyrillic.body.error?.code]).toEqual([400, "invalid_request"]);

    const long = `${freshKey("long")}-`.padEnd(255, "x");
    const over = `${long}y`;
    for (let i = 0; i < 2; i++) expect((await post(f.accountId, "/debits", body, over)).status).toBe(400);
    const first = await post(f.accountId, "/debits", body, long);
    expect([first.status, first.replayed]).toEqual([201, false]);
    const again = await post(f.accountId, "/debits", body, long);
    expect([again.status, again.replayed, again.text]).toEqual([201, true, first.text]);
    expect(await totals(f.accountId)).toEqual({ available: 980, held: 0 });
  });

  // Invariant: answers kept under keys are durable: after the object restarts, a key still
  // replays its first answer and spends nothing more.
  it("a replay after the account object restarted: the first answer, identical, nothing spent again", async () => {
    const f = await fundedAccount(1000);
    const key = freshKey("durable");
    const first = await post(f.accountId, "/debits", { amount: 250, currency: "usd" }, key);
    expect(first.status).toBe(201);
    const refused = await post(f.accountId, "/debits", { amount: 5000, currency: "usd" }, `${key}-402`);
    expect(refused.status).toBe(402);
    await abortAllDurableObjects();
    const again = await post(f.accountId, "/debits", { amount: 250, currency: "usd" }, key);
    expect([again.status, again.replayed, again.text]).toEqual([201, true, first.text]);
    const refusedAgain = await post(f.accountId, "/debits", { amount: 5000, currency: "usd" }, `${key}-402`);
    expect([refusedAgain.status, refusedAgain.replayed, refusedAgain.text]).toEqual([402, true, refused.text]);
    expect(await totals(f.accountId)).toEqual({ available: 750, held: 0 });
  });
});

// ---- Another account's things ---------------------------------------------------------------

describe("cross-account", () => {
  // Invariant: a hold belongs to its account: through another account's URL it is 404 (also
  // racing its owner's capture), and stays exactly as it was.
  it("A's hold captured and released through B's URL, also racing A's own capture: 404, A's capture is the only effect", async () => {
    const [a, b] = await Promise.all([fundedAccount(1000), fundedAccount(1000)]);
    const h = await post(a.accountId, "/holds", { amount: 400, currency: "usd" });
    const id = h.body.id as string;
    for (const path of [`/holds/${id}/capture`, `/holds/${id}/release`]) {
      const x = await post(b.accountId, path, {});
      expect([x.status, x.body.error?.code]).toEqual([404, "hold_not_found"]);
    }
    expect(await totals(a.accountId)).toEqual({ available: 600, held: 400 });
    const [theirs, mine] = await Promise.all([post(b.accountId, `/holds/${id}/capture`, {}), post(a.accountId, `/holds/${id}/capture`, {})]);
    expect([theirs.status, mine.status]).toEqual([404, 200]);
    expect(await totals(a.accountId)).toEqual({ available: 600, held: 0 });
    expect(await totals(b.accountId)).toEqual({ available: 1000, held: 0 });
  });

  // Invariant: one account's ledger cursor means nothing on another's: 400, never their lines.
  it("A's ledger cursor used on B: 400", async () => {
    const [a, b] = await Promise.all([fundedAccount(1000), fundedAccount(1000)]);
    const cursor = (await allLines(a.accountId))[0]?.id as string;
    const res = await answerOf(await seller(`${base(b.accountId)}/transactions?cursor=${cursor}`));
    expect([res.status, res.body.error?.code]).toEqual([400, "invalid_request"]);
  });

  // Invariant: an account id is exact: another case is another account, and an id that is not
  // one (an encoded slash, dot segments, 129 characters) is refused before any wallet is touched.
  it("look-alike account ids: another case is another (empty) account; %2F, dot segments and 129 characters never reach a wallet", async () => {
    const f = await fundedAccount(1000);
    const body = { amount: 100, currency: "usd" };
    const upper = await post(f.accountId.toUpperCase(), "/debits", body);
    expect([upper.status, upper.body.error?.available]).toEqual([402, 0]);
    for (const id of [`${f.accountId}%2Fx`, `${f.accountId}%2F..%2F${f.accountId}`, "..", "%2e%2e", ".", `${f.accountId}%00`]) {
      const a = await post(id, "/debits", body);
      expect([400, 404], `${id}: ${a.text}`).toContain(a.status);
    }
    // The dot segments resolve before routing: /v1/accounts/../debits is /v1/debits.
    const dotted = await answerOf(
      await seller(`/v1/accounts/x/../${f.accountId}/debits`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": freshKey() },
        body: JSON.stringify(body),
      }),
    );
    // Normalised by the URL parser to the account's own route: the same account, spent once.
    expect(dotted.status).toBe(201);
    const long = `a${"b".repeat(127)}`;
    expect((await post(long, "/debits", body)).status).toBe(402);
    expect((await post(`${long}c`, "/debits", body)).status).toBe(400);
    expect(await totals(f.accountId)).toEqual({ available: 900, held: 0 });
  });
});

// ---- Who may call ---------------------------------------------------------------------------

describe("auth", () => {
  const debitInit = (headers: Record<string, string>): RequestInit => ({
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": freshKey(), ...headers },
    body: JSON.stringify({ amount: 1, currency: "usd" }),
  });

  // Invariant: the service token is only ever read from the Authorization header.
  it("the service token in a query string, a cookie or another header is refused; with the header's whitespace trimmed it is the token", async () => {
    const f = await fundedAccount(100);
    const path = `${base(f.accountId)}/debits`;
    for (const [url, headers] of [
      [`${path}?token=${SERVICE_TOKEN}`, {}],
      [`${path}?access_token=${SERVICE_TOKEN}`, {}],
      [`${path}?authorization=Bearer%20${SERVICE_TOKEN}`, {}],
      [path, { cookie: `token=${SERVICE_TOKEN}; authorization=Bearer ${SERVICE_TOKEN}` }],
      [path, { "x-authorization": `Bearer ${SERVICE_TOKEN}` }],
      [path, { "proxy-authorization": `Bearer ${SERVICE_TOKEN}` }],
      [path, { authorization: `Bearer ${SERVICE_TOKEN}, Bearer ${SERVICE_TOKEN}` }],
    ] as const) {
      const res = await call(url, debitInit(headers));
      expect(res.status, `${url} ${JSON.stringify(headers)}`).toBe(401);
    }
    // HTTP strips a header value's leading and trailing whitespace (a trailing newline included)
    // before anyone reads it: what is left is the token itself, and it is accepted.
    for (const authorization of [`  Bearer   ${SERVICE_TOKEN}  \t`, `Bearer ${SERVICE_TOKEN}\r\n`, `Bearer\t${SERVICE_TOKEN}\n`]) {
      expect((await call(path, debitInit({ authorization }))).status, JSON.stringify(authorization)).toBe(201);
    }
    // Inside the token, whitespace makes it another token.
    expect((await call(path, debitInit({ authorization: `Bearer ${SERVICE_TOKEN.slice(0, 5)} ${SERVICE_TOKEN.slice(5)}` }))).status).toBe(401);
    expect(await totals(f.accountId)).toEqual({ available: 97, held: 0 });
  });

  // Invariant: a browser's sign-in never opens the seller's API, whatever it carries: a JWT
  // whose subject is the service token, or one signed with the service token as the key.
  it("JWTs are refused: one whose sub is the service token, one signed with it, a browser's own for its account", async () => {
    const f = await fundedAccount(100);
    const path = `${base(f.accountId)}/debits`;
    const tokens = [await tokenFor(SERVICE_TOKEN), await tokenFor(f.accountId, {}, SERVICE_TOKEN.padEnd(32, "0")), await tokenFor(f.accountId)];
    for (const jwt of tokens) {
      expect((await call(path, debitInit({ authorization: `Bearer ${jwt}` }))).status).toBe(401);
      expect((await authed(jwt, `${base(f.accountId)}/balance`)).status).toBe(401);
    }
    expect(await totals(f.accountId)).toEqual({ available: 100, held: 0 });
  });

  // Invariant: with DEMO_MODE off (as deployed, and as this project's test bindings leave it),
  // the demo's spend route does not exist, whoever calls.
  it("/demo/spend and /demo/sign_in with DEMO_MODE off: 404, nothing spent", async () => {
    expect(env.DEMO_MODE).not.toBe("true");
    const f = await fundedAccount(100);
    for (const token of [f.token, SERVICE_TOKEN]) {
      const res = await call("/demo/spend", debitInit({ authorization: `Bearer ${token}` }));
      expect(res.status).toBe(404);
    }
    expect(
      (await call("/demo/sign_in", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ account_id: f.accountId }) }))
        .status,
    ).toBe(404);
    expect(await totals(f.accountId)).toEqual({ available: 100, held: 0 });
  });
});

// ---- Money at the edges ---------------------------------------------------------------------

describe("money at the edges", () => {
  /** An account whose customer was made elsewhere with `amount` on its Stripe balance: the wallet opens from it on first use. */
  async function openedWith(amount: number) {
    const accountId = newAccountId("edge");
    const customer = await createCustomer(accountId);
    await writeStripeEntry(customer.id, -amount, { description: "Credit from the older server" });
    return { accountId, customer };
  }

  // Invariant: the largest amount is spendable when it is all there, and refused when one short.
  it("1; 99,999,999 with exactly that much (201) and with one less (402)", async () => {
    const [full, short] = await Promise.all([openedWith(99_999_999), openedWith(99_999_998)]);
    const one = await post(full.accountId, "/debits", { amount: 1, currency: "usd" });
    expect([one.status, one.body.balance?.available]).toEqual([201, 99_999_998]);
    const exact = await openedWith(99_999_999);
    const all = await post(exact.accountId, "/debits", { amount: 99_999_999, currency: "usd" });
    expect([all.status, all.body.balance?.available]).toEqual([201, 0]);
    const over = await post(short.accountId, "/debits", { amount: 99_999_999, currency: "usd" });
    expect([over.status, over.body.error?.code, over.body.error?.available]).toEqual([402, "insufficient_credit", 99_999_998]);
    expect((await post(short.accountId, "/debits", { amount: 100_000_000, currency: "usd" })).status).toBe(400);
    expect(await totals(exact.accountId)).toEqual({ available: 0, held: 0 });
    await expectMirroredAfterSync(exact.accountId, exact.customer.id);
  });

  // Invariant: an account with no credit at all (no customer, or a customer with nothing paid)
  // refuses a currency it would not accept as 422 naming the accepted one, and an accepted one as 402.
  it("no credit at all: eur is 422 naming usd, usd is 402 with available 0; the same before and after the wallet exists", async () => {
    const nobody = newAccountId("empty");
    for (const path of ["/debits", "/holds"]) {
      const eur = await post(nobody, path, { amount: 1, currency: "eur" });
      expect([eur.status, eur.body.error?.code, eur.body.error?.currency]).toEqual([422, "currency_mismatch", "usd"]);
      const usd = await post(nobody, path, { amount: 1, currency: "usd" });
      expect([usd.status, usd.body.error?.code, usd.body.error?.available]).toEqual([402, "insufficient_credit", 0]);
    }
    // A top-up created but never paid: the customer and an empty wallet exist, with no currency yet.
    const accountId = newAccountId("unpaid");
    expect((await topUp(await tokenFor(accountId), { amount: 1000, currency: "usd" })).status).toBe(201);
    expect((await accountStub(accountId).inspectWallet()).wallet).toMatchObject({ currency: null, available: 0 });
    expect((await post(accountId, "/debits", { amount: 1, currency: "eur" })).status).toBe(422);
    expect((await post(accountId, "/debits", { amount: 1, currency: "usd" })).status).toBe(402);
    expect((await accountStub(accountId).inspectWallet()).wallet).toMatchObject({ currency: null, available: 0 });
  });

  // Invariant: whatever JSON the route accepts, the amount it states is the amount taken, and the
  // Idempotency-Key compares the body as parsed, so a retry that writes the number another way is
  // the same request, and one whose parse differs is not.
  it("JSON numbers and duplicate keys: accepted ones take exactly the amount the answer states; the rest are 400 and take nothing", async () => {
    const f = await fundedAccount(5000);
    const path = `${base(f.accountId)}/debits`;
    let expected = 5000;
    for (const [raw, amount] of [
      ['{"amount":1e2,"currency":"usd"}', 100],
      ['{"amount":100.0,"currency":"usd"}', 100],
      ['{"amount":1.00000000000000001,"currency":"usd"}', 1],
      ['{"amount":1,"amount":999,"currency":"usd"}', 999],
      ['{"amount":"x","currency":"usd","amount":7}', 7],
    ] as const) {
      const a = await postRaw(path, raw, freshKey("num"));
      expect([a.status, a.body.amount], raw).toEqual([201, amount]);
      expected -= amount;
      expect(a.body.balance?.available).toBe(expected);
      expect((await totals(f.accountId)).available, raw).toBe(expected);
    }
    for (const raw of [
      '{"amount":"100","currency":"usd"}',
      '{"amount":-0,"currency":"usd"}',
      '{"amount":0,"currency":"usd"}',
      '{"amount":1.0000000000000002,"currency":"usd"}',
      '{"amount":9007199254740993,"currency":"usd"}',
      '{"amount":1e400,"currency":"usd"}',
      '{"amount":999,"amount":-1,"currency":"usd"}',
      '{"amount":1,"currency":"usd","currency":"USD"}',
      '{"amount":null,"currency":"usd"}',
      '{"amount":[1],"currency":"usd"}',
    ]) {
      const a = await postRaw(path, raw, freshKey("num"));
      expect([a.status, a.body.error?.code], raw).toEqual([400, "invalid_request"]);
    }
    // A currency that parses to eur whatever came first: refused as eur.
    const eur = await postRaw(path, '{"amount":1,"currency":"usd","currency":"eur"}', freshKey("num"));
    expect([eur.status, eur.body.error?.code]).toEqual([422, "currency_mismatch"]);
    expect((await totals(f.accountId)).available).toBe(expected);

    // The key compares parsed JSON: 1e2 and 100 are one request; the duplicate key's winner decides.
    const key = freshKey("parsed");
    expect((await postRaw(path, '{"amount":1e2,"currency":"usd"}', key)).status).toBe(201);
    const same = await postRaw(path, '{"currency":"usd","amount":100}', key);
    expect([same.status, same.replayed]).toEqual([201, true]);
    const dupKey = freshKey("dup");
    expect((await postRaw(path, '{"amount":1,"amount":50,"currency":"usd"}', dupKey)).body.amount).toBe(50);
    expect((await postRaw(path, '{"amount":50,"currency":"usd"}', dupKey)).replayed).toBe(true);
    expect((await postRaw(path, '{"amount":1,"currency":"usd"}', dupKey)).status).toBe(409);
    expect((await totals(f.accountId)).available).toBe(expected - 150);
    await expectLinesAddUp(f.accountId);
  });
});

// ---- Credit taken back after it was spent ---------------------------------------------------

describe("a top-up refunded after its credit was spent", () => {
  // Invariant: a reversal may take available below zero (the customer owes it); then every debit
  // and hold is refused, both the seller and the browser see the debt, and after a sync
  // Stripe's balance is −(available + held): the customer owes Stripe's side the same 900.
  it("credit 1000, debit 900, full refund: available −900, debits and holds 402, Stripe owed 900 after a sync", async () => {
    const p = await paidThroughService(1000);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    const spent = await post(p.accountId, "/debits", { amount: 900, currency: "usd" });
    expect([spent.status, spent.body.balance?.available]).toEqual([201, 100]);

    await emu(`/payment_intents/${p.pi.id}/refund`, {});
    const [event] = await eventsFor("charge.refunded", p.pi.id);
    expect((await deliver(event?.id as string)).status).toBe(200);
    await waitForObject(p.pi.id, (i: Inspection) => settledCredit(i) && i.amounts?.net === 0 && i.wallet_pending.length === 0);

    expect(await sellerBalance(p.accountId)).toEqual({ available: -900, held: 0, currency: "usd" });
    const browser = await answerOf(await authed(p.token, "/billing/balance"));
    expect(browser.body).toMatchObject({ balance: -900, available: -900, held: 0 });
    for (const path of ["/debits", "/holds"]) {
      const a = await post(p.accountId, path, { amount: 1, currency: "usd" });
      expect([a.status, a.body.error?.code, a.body.error?.available]).toEqual([402, "insufficient_credit", -900]);
    }
    expect((await ledgerFor(p.customerId, p.pi.id)).map((tx) => tx.amount).sort((x, y) => x - y)).toEqual([-1000, 1000]);
    await expectMirroredAfterSync(p.accountId, p.customerId);
    expect(await stripeBalance(p.customerId)).toBe(900);
    expect(await totals(p.accountId)).toEqual({ available: -900, held: 0 });
  });
});

// ---- Stripe down while the wallet first opens -----------------------------------------------

describe("Stripe failing on every retry while the wallet first opens", () => {
  // Invariant: a request the wallet could not answer (it cannot open without Stripe's ledger)
  // is 503 with Retry-After and keeps nothing under its key: once Stripe is back, the same key
  // is a fresh request, answered 201 once and replayed after.
  it("503 with Retry-After, nothing kept; after the fault, the same key is a fresh 201", async () => {
    const accountId = newAccountId("down");
    const customer = await createCustomer(accountId);
    await writeStripeEntry(customer.id, -1000, { description: "Credit from the older server" });
    const key = freshKey("down");
    const body = { amount: 300, currency: "usd" };
    const fault = await addFault({ kind: "error_500", method: "GET", path: `/v1/customers/${customer.id}/balance_transactions`, times: 50 });
    try {
      for (const path of ["/debits", "/holds"]) {
        const a = await post(accountId, path, body, path === "/debits" ? key : `${key}-hold`);
        expect([a.status, a.body.error?.code], a.text).toEqual([503, "stripe_unavailable"]);
        expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
      }
      expect((await accountStub(accountId).inspectWallet()).wallet).toBeNull();
    } finally {
      await removeFault(fault);
    }
    const fresh = await post(accountId, "/debits", body, key);
    expect([fresh.status, fresh.replayed, fresh.body.balance?.available]).toEqual([201, false, 700]);
    const again = await post(accountId, "/debits", body, key);
    expect([again.status, again.replayed, again.text]).toEqual([201, true, fresh.text]);
    expect(await totals(accountId)).toEqual({ available: 700, held: 0 });
  });
});

describe("an older customer with a long Stripe ledger, opened by 50 debits at once", () => {
  // Invariant: the wallet opens once, from the whole ledger (every page), with Stripe's figure;
  // the debits that waited on the opening are then decided one by one against it.
  it("2,501 entries over 26 pages: one pass over the ledger, available 1,000, exactly 33 debits of 30 granted", async () => {
    const accountId = newAccountId("long");
    const customer = await createCustomer(accountId);
    await emu(`/customers/${customer.id}/balance_transactions/pad`, { count: 2500, amount: 3 });
    await writeStripeEntry(customer.id, -1000, { description: "Credit from the older server" });
    await emu("/latency", { path: `/v1/customers/${customer.id}/**`, ms: 20 });
    try {
      const answers = await Promise.all(Array.from({ length: 50 }, () => post(accountId, "/debits", { amount: 30, currency: "usd" })));
      expect(answers.filter((a) => a.status === 201)).toHaveLength(33);
      expect(answers.filter((a) => a.status === 402).every((a) => a.body.error?.available === 10)).toBe(true);
    } finally {
      await emu("/latency", { path: `/v1/customers/${customer.id}/**`, ms: 0 });
    }
    const reads = await stripeRequests({ method: "GET", path: `/v1/customers/${customer.id}/balance_transactions` });
    expect(reads).toHaveLength(26);
    expect(await totals(accountId)).toEqual({ available: 10, held: 0 });
    expect((await allLines(accountId)).length).toBe(2501 + 33);
    await expectMirroredAfterSync(accountId, customer.id);
  });
});

// ---- A flood ----------------------------------------------------------------------------------

describe("a flood of debits", () => {
  // Invariant: 2,000 debits of 1 against exactly 2,000: every one granted, each with its own
  // balance from 1,999 down to 0, 2,000 debit lines, and one sync writes them as one batch.
  it("2,000 debits of 1 at once on an account funded 2,000: all 201, 2,000 lines, one batch of 2,000", async () => {
    const f = await fundedAccount(2000);
    const answers = await Promise.all(
      Array.from({ length: 2000 }, (_, i) => post(f.accountId, "/debits", { amount: 1, currency: "usd" }, `flood-${f.accountId}-${i}`)),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(2000);
    expect(answers.map((a) => a.body.balance?.available).sort((x, y) => (x ?? 0) - (y ?? 0))).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    expect((await allLines(f.accountId)).filter((l) => l.kind === "debit")).toHaveLength(2000);
    expect(await totals(f.accountId)).toEqual({ available: 0, held: 0 });
    expect((await post(f.accountId, "/debits", { amount: 1, currency: "usd" })).status).toBe(402);

    await expectMirroredAfterSync(f.accountId, f.customer.id);
    expect((await accountStub(f.accountId).inspectWallet()).batches).toMatchObject([{ n: 1, amount: 2000, entries: 2000, state: "done" }]);
    expect(await stripeBalance(f.customer.id)).toBe(0);
  });
});

// ---- A payment whose metadata names another account -----------------------------------------

describe("a top-up whose metadata names account B while its customer is A's", () => {
  /**
   * Pays such a PaymentIntent directly in the emulator and delivers its webhook; waits until the
   * credit is written, then lets the PI object's alarm do whatever it does with its reports.
   */
  async function misdirected(customerId: string, namedAccount: string, amount: number) {
    const pi = await createPaymentIntent({ customer: customerId, amount, metadata: topUpMetadata(namedAccount) });
    const [event] = await eventsFor("payment_intent.succeeded", pi.id);
    expect((await deliver(event?.id as string)).status).toBe(200);
    await waitForObject(pi.id, settledCredit);
    await drainAlarms(pi.id, 10);
    return pi;
  }

  // Invariant: money is the customer's: the credit is written on A's customer, never lands in
  // B's wallet, and reaches A's wallet (at A's next sync, which takes in Stripe's entries).
  it("B has a wallet: the credit never reaches it; A's wallet takes it in at its next sync, once", async () => {
    const [a, b] = await Promise.all([fundedAccount(1000), fundedAccount(300)]);
    const pi = await misdirected(a.customer.id, b.accountId, 700);
    expect((await ledgerFor(a.customer.id, pi.id)).map((tx) => tx.amount)).toEqual([-700]);
    expect(await ledgerFor(b.customer.id, pi.id)).toEqual([]);
    expect(await totals(b.accountId)).toEqual({ available: 300, held: 0 });
    expect((await allLines(b.accountId)).some((l) => l.payment_intent_id === pi.id)).toBe(false);

    await expectMirroredAfterSync(a.accountId, a.customer.id);
    expect(await totals(a.accountId)).toEqual({ available: 1700, held: 0 });
    expect((await allLines(a.accountId)).filter((l) => l.payment_intent_id === pi.id)).toMatchObject([{ kind: "top_up", amount: 700 }]);
    expect(await totals(b.accountId)).toEqual({ available: 300, held: 0 });
  });

  // Invariant: the same, when B has no Stripe customer and no wallet yet: B must not be tied to
  // A's customer, and must not be able to spend any of A's credit.
  it("B has no customer yet: B's wallet gets none of A's credit and is not tied to A's customer", async () => {
    const a = await fundedAccount(1000);
    const bId = newAccountId("named");
    const pi = await misdirected(a.customer.id, bId, 700);
    expect((await ledgerFor(a.customer.id, pi.id)).map((tx) => tx.amount)).toEqual([-700]);

    expect(await sellerBalance(bId)).toMatchObject({ available: 0, held: 0 });
    const stolen = await post(bId, "/debits", { amount: 1, currency: "usd" });
    expect([stolen.status, stolen.body.error?.code]).toEqual([402, "insufficient_credit"]);
    expect((await accountStub(bId).inspectWallet()).wallet?.customer_id ?? null).not.toBe(a.customer.id);

    await expectMirroredAfterSync(a.accountId, a.customer.id);
    expect(await totals(a.accountId)).toEqual({ available: 1700, held: 0 });
  });

  // Invariant: a browser's confirm answers 200 only once its wallet has the credit (README: "a
  // 200 means the credit is spendable"). A's browser owns this PaymentIntent (A's customer paid it).
  it("A's browser confirms it: 200 only once A's wallet has the 700", async () => {
    const [a, b] = await Promise.all([fundedAccount(1000), fundedAccount(300)]);
    const pi = await createPaymentIntent({ customer: a.customer.id, amount: 700, metadata: topUpMetadata(b.accountId) });
    const res = await confirm(a.token, pi.id);
    // Anything but 200 (not yet, or refused) promises nothing; a 200 promises A's wallet has it.
    if (res.status === 200) expect(await sellerBalance(a.accountId)).toMatchObject({ available: 1700 });
    expect(await totals(b.accountId)).toEqual({ available: 300, held: 0 });
  });
});

// ---- Entries on the customer's ledger that look like the wallet's own ------------------------

describe("a Stripe entry carrying another account's wallet_batch metadata", () => {
  // Invariant (README): after a sync, −(Stripe's balance) = available + held. Only this
  // wallet's own batches are its spending; an entry that merely carries `wallet_batch` (a
  // Dashboard adjustment copied from one, another account's batch) is an entry from elsewhere.
  it("is taken in at the next sync like any foreign entry; Stripe still mirrors the wallet", async () => {
    const f = await fundedAccount(1000);
    expect((await post(f.accountId, "/debits", { amount: 100, currency: "usd" })).status).toBe(201);
    await writeStripeEntry(f.customer.id, 250, { description: "Manual charge", metadata: { wallet_batch: "1", account_id: "someone_else" } });
    expect(await accountStub(f.accountId).syncNow(f.accountId)).toEqual({ ok: true, error: null });
    const w = await totals(f.accountId);
    expect(await stripeBalance(f.customer.id)).toBe(0 - (w.available + w.held));
    expect(w).toEqual({ available: 650, held: 0 });
  });
});
