// Events the queue gave up on: after its last try (maxRetries 3 in tests: four tries) an event
// lands in the dead-letter archive exactly as produced, an operator lists it and redelivers it
// (one, or in bulk) under the same webhook-id with the same body, and one that dies again comes
// back counted twice. The archive is one object for the whole run and other files may add to
// it, so every check looks for this file's own events and accounts, never at the whole list, and
// the bulk redelivery (which sends the oldest letters, whoever's) runs on an archive of its own.

import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { deliveryBody, eventId, type DeadLetter, type ServiceEvent } from "../../src/events/contract.js";
import { TEST_BINDINGS } from "../bindings.js";
import { call, callWith, confirm, json, paidThroughService } from "../helpers.js";
import { rawDeliveries, receiverClear, receiverRule, type RawDelivery } from "./received.js";

// ---- the receiver ----

/** The receiver answers 500 to every delivery about `match` until `receiverUp(match)`. */
const receiverDown = (match: string) => receiverRule({ match, down: true });
const receiverUp = receiverClear;

/** The deliveries of `account`'s credit.added event, in order of arrival. */
async function creditTries(account: string): Promise<RawDelivery[]> {
  const data = await rawDeliveries(account);
  return data.filter((d) => (JSON.parse(d.body) as { type: string }).type === "credit.added").sort((a, b) => a.received_at - b.received_at);
}

// ---- the operator's API ----

const OPERATOR = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

function operator(path: string, init: RequestInit = {}): Promise<Response> {
  return call(`/operator/events/dead_letters${path}`, { ...init, headers: { ...OPERATOR, ...(init.headers as Record<string, string>) } });
}

/** Every dead letter listed, page by page, newest first. */
async function allLetters(limit = 200): Promise<DeadLetter[]> {
  const letters: DeadLetter[] = [];
  let after: string | null = null;
  for (;;) {
    const res = await operator(`?limit=${limit}${after ? `&after=${after}` : ""}`);
    expect(res.status).toBe(200);
    const page = await json<{ data: DeadLetter[]; next_after: string | null }>(res);
    letters.push(...page.data);
    if (page.next_after === null) return letters;
    after = page.next_after;
  }
}

/** The listed dead letters about `account`. */
async function lettersOf(account: string): Promise<DeadLetter[]> {
  return (await allLetters()).filter((l) => (l.event.data as { account_id?: string }).account_id === account);
}

const WAIT = { timeout: 25_000, interval: 100 };

/** A fresh account credited while the receiver is down for it; answers once its credit.added is in the archive. */
async function deadCredit(amount: number): Promise<{ accountId: string; letter: DeadLetter; tries: RawDelivery[] }> {
  const { accountId, token, pi } = await paidThroughService(amount);
  await receiverDown(accountId);
  expect((await confirm(token, pi.id)).status).toBe(200);
  const letter = await vi.waitFor(async () => {
    const [found] = await lettersOf(accountId);
    expect(found?.event.type).toBe("credit.added");
    return found as DeadLetter;
  }, WAIT);
  return { accountId, letter, tries: await creditTries(accountId) };
}

/** Waits for the accepted try of `account`'s event that follows the `before` tries already seen. */
async function acceptedAfter(account: string, before: number): Promise<RawDelivery[]> {
  return vi.waitFor(async () => {
    const tries = await creditTries(account);
    expect(tries.length).toBeGreaterThan(before);
    expect(tries.at(-1)?.answer).toBe(200);
    return tries;
  }, WAIT);
}

function printTries(label: string, tries: RawDelivery[]): void {
  const first = tries[0]?.received_at ?? 0;
  console.info(`${label}: ${tries.map((d) => `${String(d.answer)} at +${((d.received_at - first) / 1000).toFixed(2)} s`).join(", ")}`);
}

describe("dead letters", () => {
  it("a receiver down for good: four tries, then the event is listed as produced; redelivered once it is back, under the same id and body", async () => {
    const { accountId, letter, tries } = await deadCredit(1300);
    printTries("down for good", tries);
    // Four tries (the first and maxRetries 3), every one refused, all the same event.
    expect(tries.map((d) => d.answer)).toEqual([500, 500, 500, 500]);
    expect(new Set(tries.map((d) => d.headers["webhook-id"]))).toEqual(new Set([letter.event.id]));
    // Exactly as produced: the archived event renders to the very body that was sent.
    expect(new Set(tries.map((d) => d.body))).toEqual(new Set([deliveryBody(letter.event)]));
    expect(letter.event.id).toMatch(/^evt_credit_added_/);
    expect(letter.event.data).toMatchObject({ account_id: accountId, amount: 1300 });
    expect(letter.times).toBe(1);
    expect(Date.parse(letter.dead_lettered_at)).toBeGreaterThanOrEqual((tries.at(-1)?.received_at ?? 0) - 2000);
    // No fifth try: the queue handed it over instead.
    expect(await creditTries(accountId)).toHaveLength(4);

    // An unknown id, and one that is not an event id: 404, and this letter is untouched.
    for (const unknown of [`${letter.event.id}_nope`, "evt_credit_added_txn_unknown0000", "not-an-event"]) {
      const res = await operator(`/${encodeURIComponent(unknown)}/redeliver`, { method: "POST" });
      expect(res.status).toBe(404);
      expect((await json<{ error: { code: string } }>(res)).error.code).toBe("dead_letter_not_found");
    }
    expect(await lettersOf(accountId)).toEqual([letter]);
    expect(await creditTries(accountId)).toHaveLength(4);

    await receiverUp(accountId);
    const res = await operator(`/${letter.event.id}/redeliver`, { method: "POST" });
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ id: letter.event.id, redelivered: true });
    expect(await lettersOf(accountId)).toEqual([]);

    const after = await acceptedAfter(accountId, 4);
    const redelivered = after.slice(4);
    expect(redelivered.map((d) => d.answer)).toEqual([200]);
    expect(redelivered[0]?.headers["webhook-id"]).toBe(letter.event.id);
    expect(redelivered[0]?.body).toBe(tries[0]?.body);
    // Signed afresh, not replayed: its timestamp is its own, not the dead tries'.
    expect(Number(redelivered[0]?.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(Number(tries.at(-1)?.headers["webhook-timestamp"]));
    // Redelivering it again now: it is no longer there.
    const again = await operator(`/${letter.event.id}/redeliver`, { method: "POST" });
    expect(again.status).toBe(404);
  });

  it("an event that dies again after a redelivery is listed again, counted twice", async () => {
    const { accountId, letter } = await deadCredit(1100);
    const first = Date.parse(letter.dead_lettered_at);
    // Redelivered while the receiver is still down: four more tries, then back in the archive.
    expect((await operator(`/${letter.event.id}/redeliver`, { method: "POST" })).status).toBe(202);
    const again = await vi.waitFor(async () => {
      const tries = await creditTries(accountId);
      expect(tries).toHaveLength(8);
      const [found] = await lettersOf(accountId);
      expect(found).toBeDefined();
      return found as DeadLetter;
    }, WAIT);
    expect(again.times).toBe(2);
    expect(again.event).toEqual(letter.event);
    expect(Date.parse(again.dead_lettered_at)).toBeGreaterThanOrEqual(first);
    const tries = await creditTries(accountId);
    printTries("died twice", tries);
    expect(tries.map((d) => d.answer)).toEqual(Array(8).fill(500));
    expect(new Set(tries.map((d) => d.headers["webhook-id"]))).toEqual(new Set([letter.event.id]));
    // Listed once, not once per death.
    expect(await lettersOf(accountId)).toHaveLength(1);

    // Leave nothing behind for the bulk redelivery of other tests.
    await receiverUp(accountId);
    expect((await operator(`/${letter.event.id}/redeliver`, { method: "POST" })).status).toBe(202);
    await acceptedAfter(accountId, 8);
  });

  it("lists newest first, page by page", async () => {
    // Three accounts whose events die one after another.
    const dead = [];
    for (const amount of [700, 800, 900]) dead.push(await deadCredit(amount));
    const ids = dead.map((d) => d.letter.event.id);

    // Pages of one: ours each once, newest first, as in one big page (other files' letters may come and go meanwhile).
    const ours = (letters: DeadLetter[]) => letters.map((l) => l.event.id).filter((id) => ids.includes(id));
    const paged = await allLetters(1);
    expect(ours(paged)).toEqual([...ids].reverse());
    expect(ours(await allLetters())).toEqual([...ids].reverse());

    // Leave nothing behind: each sent again by id, and accepted.
    for (const d of dead) {
      await receiverUp(d.accountId);
      expect((await operator(`/${d.letter.event.id}/redeliver`, { method: "POST" })).status).toBe(202);
    }
    for (const d of dead) await acceptedAfter(d.accountId, 4);
  });

  it("redelivers in bulk, oldest first, counting down what remains", async () => {
    // A private archive behind the route, so that no other file's letters are sent (or counted).
    const archive = env.DEAD_LETTERS.getByName(`bulk-${crypto.randomUUID()}`);
    const vars = { DEAD_LETTERS: { getByName: () => archive } };
    const accountIds = [0, 1, 2].map(() => `bulk_${crypto.randomUUID().slice(0, 12)}`);
    const events: ServiceEvent[] = accountIds.map((account, i) => ({
      id: eventId("balance.low", `${account}_${i + 1}`),
      type: "balance.low",
      created: new Date(Date.now() - 60_000).toISOString(),
      data: { account_id: account, available: 10, held: 0, currency: "usd", threshold: 100 },
    }));
    for (const e of events) await archive.keep([e]);

    const remaining: number[] = [];
    for (let call = 0; call < 3; call++) {
      const res = await callWith(vars, "/operator/events/dead_letters/redeliver?limit=1", { method: "POST", headers: OPERATOR });
      expect(res.status).toBe(202);
      const outcome = await json<{ redelivered: number; remaining: number }>(res);
      expect(outcome.redelivered).toBe(1);
      remaining.push(outcome.remaining);
      // What remains is what is still listed, and the oldest went first.
      const left = (await archive.list(200, null))?.data.map((l) => l.event.id);
      expect(left).toEqual(
        events
          .slice(call + 1)
          .map((e) => e.id)
          .reverse(),
      );
    }
    expect(remaining).toEqual([2, 1, 0]);
    const res = await callWith(vars, "/operator/events/dead_letters/redeliver?limit=50", { method: "POST", headers: OPERATOR });
    expect(await json(res)).toEqual({ redelivered: 0, remaining: 0 });

    // Each arrives as it was kept: same id, same body.
    for (const [i, account] of accountIds.entries()) {
      const event = events[i] as ServiceEvent;
      const tries = await vi.waitFor(async () => {
        const data = await rawDeliveries(account);
        expect(data).toHaveLength(1);
        return data;
      }, WAIT);
      expect(tries.map((t) => [t.headers["webhook-id"], t.body, t.answer])).toEqual([[event.id, deliveryBody(event), 200]]);
    }
  });

  it("refuses a cursor that is not one it gave", async () => {
    for (const after of ["abc", "-1", "1.5", "9007199254740993"]) {
      const res = await operator(`?after=${after}`);
      expect(res.status).toBe(400);
      expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_request");
    }
  });

  it("answers only the operator", async () => {
    const routes: [string, string][] = [
      ["GET", ""],
      ["POST", "/evt_credit_added_txn_x/redeliver"],
      ["POST", "/redeliver"],
    ];
    for (const [method, path] of routes) {
      const refused: Record<string, string>[] = [
        {},
        { authorization: "Bearer op_wrong_token_0123456789" },
        // The seller's service token is not the operator's.
        { authorization: `Bearer ${TEST_BINDINGS.SERVICE_TOKEN.split(",")[0]}` },
      ];
      for (const headers of refused) {
        const res = await call(`/operator/events/dead_letters${path}`, { method, headers });
        expect(res.status).toBe(401);
        expect((await json<{ error: { code: string } }>(res)).error.code).toBe("unauthenticated");
      }
    }
  });
});
