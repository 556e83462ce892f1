// The balance alerts: balance.low once per crossing of the account's threshold (from at or above
// to below), again only after balance.recovered; balance.recovered only after a low;
// balance.depleted when available goes from above zero to zero or below; held credit does not
// count. First the rule itself (crossings(), pure) against a reference model over random runs of
// balances, then the running Worker: 200 concurrent debits, holds, top-ups, and the per-account
// threshold's API (PUT/GET /v1/accounts/{id}/settings).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eventId, type BalanceEventData } from "../../src/events/contract.js";
import { crossings, type AlertType } from "../../src/events/wallet-events.js";
import { TEST_BINDINGS } from "../bindings.js";
import { call, confirm, createPaymentIntent, json, newAccountId, paidThroughService, seller, topUpMetadata } from "../helpers.js";
import { countByType, ofAccount, ofType, waitForTypes, type Received } from "./received.js";

/** Runs crossings() along `values` (available after each write), as the wallet does entry by entry. */
function run(values: number[], threshold: number, lowSent = false): { steps: AlertType[][]; lowSent: boolean } {
  const steps: AlertType[][] = [];
  let low = lowSent;
  for (let i = 1; i < values.length; i++) {
    const r = crossings(values[i - 1] as number, values[i] as number, threshold, low);
    steps.push(r.alerts);
    low = r.lowSent;
  }
  return { steps, lowSent: low };
}

/**
 * The rules stated over the whole run rather than step by step (the reference): with a threshold
 * t > 0 and no low outstanding at the start, a step fires
 * - low when it goes from >= t to < t: every such crossing, since the run was at or above t
 *   just before it, so whatever low came earlier has been answered by a recovery;
 * - recovered when it goes from < t to >= t and the run had been at or above t before the
 *   previous value (only then was the dip below t announced by a low; a run that starts below
 *   t and rises has nothing to recover from);
 * - depleted when it goes from > 0 to <= 0, whatever the threshold.
 */
function reference(values: number[], t: number): AlertType[][] {
  const steps: AlertType[][] = [];
  for (let i = 1; i < values.length; i++) {
    const before = values[i - 1] as number;
    const after = values[i] as number;
    const announcedDip = values.slice(0, i - 1).some((v) => v >= t);
    const alerts: AlertType[] = [];
    if (t > 0 && before >= t && after < t) alerts.push("balance.low");
    if (t > 0 && before < t && after >= t && announcedDip) alerts.push("balance.recovered");
    if (before > 0 && after <= 0) alerts.push("balance.depleted");
    steps.push(alerts);
  }
  return steps;
}

// Balances and thresholds in a small range, so that runs cross the threshold and zero often.
const balance = fc.integer({ min: -30, max: 60 });
const balances = fc.array(balance, { minLength: 1, maxLength: 40 });
const threshold = fc.integer({ min: 0, max: 40 });
const RUNS = { numRuns: 2000 };

describe("crossings(): the rule", () => {
  it("matches the reference over random runs of balances and thresholds", () => {
    fc.assert(
      fc.property(balances, threshold, (values, t) => {
        expect(run(values, t).steps).toEqual(reference(values, t));
      }),
      RUNS,
    );
  });

  it("low and recovered strictly alternate, starting with low (or with recovered when a low was outstanding); the state it returns says which came last", () => {
    fc.assert(
      fc.property(balances, threshold, fc.boolean(), (values, t, lowAtStart) => {
        const { steps, lowSent } = run(values, t, lowAtStart);
        const pair = steps.flat().filter((a) => a !== "balance.depleted");
        pair.forEach((a, i) => {
          const lowTurn = (i % 2 === 0) !== lowAtStart;
          expect(a).toBe(lowTurn ? "balance.low" : "balance.recovered");
        });
        // A threshold of 0 is "off": an outstanding low is forgotten, without a recovered.
        const untouched = steps.length === 0 ? lowAtStart : lowAtStart && t > 0;
        expect(lowSent).toBe(pair.length === 0 ? untouched : pair.at(-1) === "balance.low");
      }),
      RUNS,
    );
  });

  it("each alert only where its condition holds: low from >= t to < t, recovered at >= t, depleted from > 0 to <= 0; at most one of each per step", () => {
    fc.assert(
      fc.property(balance, balance, threshold, fc.boolean(), (before, after, t, lowSent) => {
        const { alerts, lowSent: next } = crossings(before, after, t, lowSent);
        expect(new Set(alerts).size).toBe(alerts.length);
        expect(alerts.includes("balance.low") && alerts.includes("balance.recovered")).toBe(false);
        if (alerts.includes("balance.low")) expect(before >= t && after < t && t > 0 && !lowSent).toBe(true);
        if (alerts.includes("balance.recovered")) expect(after >= t && lowSent).toBe(true);
        expect(alerts.includes("balance.depleted")).toBe(before > 0 && after <= 0);
        // A step that fires neither leaves the state as it was, except that a threshold of 0 forgets a low.
        if (!alerts.includes("balance.low") && !alerts.includes("balance.recovered")) expect(next).toBe(lowSent && t > 0);
      }),
      { numRuns: 5000 },
    );
  });

  it("a threshold of 0 means no low and no recovered, whatever the run; depleted still fires", () => {
    fc.assert(
      fc.property(balances, (values) => {
        const alerts = run(values, 0).steps.flat();
        expect(alerts.filter((a) => a !== "balance.depleted")).toEqual([]);
        const falls = values.slice(1).filter((v, i) => (values[i] as number) > 0 && v <= 0).length;
        expect(alerts.length).toBe(falls);
      }),
      RUNS,
    );
  });

  it("balance.depleted fires again only after available was positive again", () => {
    fc.assert(
      fc.property(balances, threshold, (values, t) => {
        const { steps } = run(values, t);
        const at = steps.flatMap((alerts, i) => (alerts.includes("balance.depleted") ? [i + 1] : []));
        for (let k = 1; k < at.length; k++) {
          const between = values.slice((at[k - 1] as number) + 1, at[k]);
          expect(between.some((v) => v > 0)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it.each([
    { name: "exactly at the threshold is not low", values: [1000, 500], t: 500, alerts: [[]] },
    { name: "one below it is", values: [1000, 499], t: 500, alerts: [["balance.low"]] },
    { name: "from exactly the threshold to below is a crossing", values: [500, 499], t: 500, alerts: [["balance.low"]] },
    { name: "back to exactly the threshold recovers", values: [1000, 400, 500], t: 500, alerts: [["balance.low"], ["balance.recovered"]] },
    { name: "low once while it keeps falling", values: [1000, 400, 300, 100], t: 500, alerts: [["balance.low"], [], []] },
    { name: "straight to zero: low, then depleted, in one step", values: [1000, 0], t: 500, alerts: [["balance.low", "balance.depleted"]] },
    { name: "a wallet that starts empty and fills has nothing to recover from", values: [0, 1000], t: 500, alerts: [[]] },
    { name: "below zero is depleted too, once", values: [10, -5, -20], t: 0, alerts: [["balance.depleted"], []] },
  ])("$name", ({ values, t, alerts }) => {
    expect(run(values, t).steps).toEqual(alerts);
  });

  it("a threshold turned to 0 (LOW_BALANCE_THRESHOLD changed) forgets an outstanding low without a recovered, as the account's own 0 does", () => {
    expect(crossings(100, 50, 0, true)).toEqual({ alerts: [], lowSent: false });
    expect(crossings(100, -5, 0, true)).toEqual({ alerts: ["balance.depleted"], lowSent: false });
  });
});

// The Worker. Each account is funded by a top-up made through the service, so its wallet is open
// from the start and its credit.added is among its events.

type Balance = BalanceEventData;

async function funded(amount: number) {
  const p = await paidThroughService(amount);
  expect((await confirm(p.token, p.pi.id)).status).toBe(200);
  return p;
}

/** Another top-up of the same account, confirmed. */
async function topUpMore(p: Awaited<ReturnType<typeof funded>>, amount: number): Promise<void> {
  const pi = await createPaymentIntent({ customer: p.customerId, amount, metadata: topUpMetadata(p.accountId) });
  expect((await confirm(p.token, pi.id)).status).toBe(200);
}

let keys = 0;
function post(path: string, body: unknown): Promise<Response> {
  keys++;
  return seller(path, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": `cross-${Date.now().toString(36)}-${keys}-${Math.random().toString(36).slice(2, 8)}` },
    body: JSON.stringify(body),
  });
}

const debit = (accountId: string, amount: number) => post(`/v1/accounts/${accountId}/debits`, { amount, currency: "usd" });

function putSettings(accountId: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return seller(`/v1/accounts/${accountId}/settings`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

async function setThreshold(accountId: string, value: number | null): Promise<void> {
  const res = await putSettings(accountId, { low_balance_threshold: value });
  expect(res.status).toBe(200);
}

interface Settings {
  object: string;
  account_id: string;
  low_balance_threshold: number;
  low_balance_threshold_source: "account" | "default";
}

async function getSettings(accountId: string): Promise<Settings> {
  const res = await seller(`/v1/accounts/${accountId}/settings`);
  expect(res.status).toBe(200);
  return json<Settings>(res);
}

function the(events: Received[], type: "balance.low" | "balance.recovered" | "balance.depleted"): Received<Balance>[] {
  return ofType<Balance>(events, type);
}

describe("alerts from the running wallet", () => {
  it("200 concurrent debits that take available from 2000 to 0 across a threshold of 1000: one balance.low, one balance.depleted", async () => {
    const p = await funded(2000);
    await setThreshold(p.accountId, 1000);
    const statuses = await Promise.all(Array.from({ length: 200 }, async () => (await debit(p.accountId, 10)).status));
    expect(statuses.filter((s) => s === 201)).toHaveLength(200);

    const events = await waitForTypes(ofAccount(p.accountId), { "balance.low": 1, "balance.depleted": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1, "balance.depleted": 1 });
    // The crossing debit is the one that took available from 1000 to 990, whichever request it was.
    expect(the(events, "balance.low")[0]?.data).toEqual({ account_id: p.accountId, available: 990, held: 0, currency: "usd", threshold: 1000 });
    expect(the(events, "balance.depleted")[0]?.data).toEqual({ account_id: p.accountId, available: 0, held: 0, currency: "usd", threshold: 1000 });
  });

  it("200 concurrent debits asking for more than there is: the refused ones change nothing, one balance.low and no depleted while credit is left", async () => {
    const p = await funded(2000);
    await setThreshold(p.accountId, 1500);
    // 200 × 15 = 3000 asked; 133 fit (1995), 5 is left, the other 67 are refused.
    const statuses = await Promise.all(Array.from({ length: 200 }, async () => (await debit(p.accountId, 15)).status));
    expect(statuses.filter((s) => s === 201)).toHaveLength(133);
    expect(statuses.filter((s) => s === 402)).toHaveLength(67);

    const events = await waitForTypes(ofAccount(p.accountId), { "balance.low": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1 });
    const low = the(events, "balance.low")[0]?.data;
    // The crossing took available from at or above 1500 to below it: from 1505 to 1490.
    expect(low).toMatchObject({ available: 1490, threshold: 1500 });
  });

  it("low, recovered by a top-up, low again on the next crossing; depleted again only after available was positive", async () => {
    const p = await funded(1000);
    const match = ofAccount(p.accountId);
    await setThreshold(p.accountId, 600);

    expect((await debit(p.accountId, 500)).status).toBe(201); // 500: low
    expect((await debit(p.accountId, 100)).status).toBe(201); // 400: still low, nothing
    await waitForTypes(match, { "balance.low": 1 });
    await topUpMore(p, 700); // 1100: recovered
    let events = await waitForTypes(match, { "balance.recovered": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 2, "balance.low": 1, "balance.recovered": 1 });
    expect(the(events, "balance.recovered")[0]?.data).toMatchObject({ available: 1100, threshold: 600 });

    expect((await debit(p.accountId, 1100)).status).toBe(201); // 0: low and depleted
    expect((await debit(p.accountId, 1)).status).toBe(402); // refused: nothing
    await topUpMore(p, 500); // 500: positive, still below 600: nothing
    expect((await debit(p.accountId, 500)).status).toBe(201); // 0: depleted again, no low (one is outstanding)
    events = await waitForTypes(match, { "balance.low": 2, "balance.depleted": 2 });
    expect(countByType(events)).toEqual({ "credit.added": 3, "balance.low": 2, "balance.recovered": 1, "balance.depleted": 2 });
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    // An alert's id is derived from its fact, the write that crossed: the debit that took 1100 to
    // 0 fired both the second low and the first depleted, so they name the same fact.
    const lowFact = (the(events, "balance.low").find((e) => e.data.available === 0)?.id ?? "").slice(eventId("balance.low", "").length);
    const firstDepleted = the(events, "balance.depleted").filter((e) => e.id === eventId("balance.depleted", lowFact));
    expect(firstDepleted).toHaveLength(1);
  });

  it("a hold that takes available below the threshold fires balance.low (held credit does not count); releasing it fires balance.recovered", async () => {
    const p = await funded(1000);
    const match = ofAccount(p.accountId);
    await setThreshold(p.accountId, 500);

    const held = await post(`/v1/accounts/${p.accountId}/holds`, { amount: 600, currency: "usd", expires_in_seconds: 600 });
    expect(held.status).toBe(201);
    const { id: holdId } = await json<{ id: string }>(held);
    let events = await waitForTypes(match, { "balance.low": 1 });
    expect(the(events, "balance.low")[0]?.data).toEqual({ account_id: p.accountId, available: 400, held: 600, currency: "usd", threshold: 500 });

    expect((await post(`/v1/accounts/${p.accountId}/holds/${holdId}/release`, {})).status).toBe(200);
    events = await waitForTypes(match, { "balance.recovered": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1, "balance.recovered": 1 });
    expect(the(events, "balance.recovered")[0]?.data).toEqual({ account_id: p.accountId, available: 1000, held: 0, currency: "usd", threshold: 500 });
  });

  it("capturing a hold spends credit already out of available: no alert of its own", async () => {
    const p = await funded(1000);
    const match = ofAccount(p.accountId);
    await setThreshold(p.accountId, 500);
    const held = await post(`/v1/accounts/${p.accountId}/holds`, { amount: 600, currency: "usd", expires_in_seconds: 600 });
    const { id: holdId } = await json<{ id: string }>(held);
    await waitForTypes(match, { "balance.low": 1 });
    expect((await post(`/v1/accounts/${p.accountId}/holds/${holdId}/capture`, {})).status).toBe(200);
    // A debit after it, as a marker: once its depleted arrives, anything from the capture would have too.
    expect((await debit(p.accountId, 400)).status).toBe(201);
    const events = await waitForTypes(match, { "balance.depleted": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 1, "balance.depleted": 1 });
  });

  it("with no threshold (the default, 0) a fall to zero is balance.depleted only", async () => {
    const p = await funded(800);
    expect(await getSettings(p.accountId)).toMatchObject({ low_balance_threshold: 0, low_balance_threshold_source: "default" });
    expect((await debit(p.accountId, 300)).status).toBe(201);
    expect((await debit(p.accountId, 500)).status).toBe(201);
    const events = await waitForTypes(ofAccount(p.accountId), { "balance.depleted": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.depleted": 1 });
    expect(the(events, "balance.depleted")[0]?.data).toMatchObject({ available: 0, threshold: 0 });
  });

  it("a threshold lowered under available while a low is outstanding answers it with balance.recovered; turned off (0), it is forgotten without a word", async () => {
    const p = await funded(1000);
    const match = ofAccount(p.accountId);
    await setThreshold(p.accountId, 800);
    expect((await debit(p.accountId, 300)).status).toBe(201); // 700 < 800: low
    await waitForTypes(match, { "balance.low": 1 });
    await setThreshold(p.accountId, 600); // 700 >= 600: recovered
    let events = await waitForTypes(match, { "balance.recovered": 1 });
    expect(the(events, "balance.recovered")[0]?.data).toMatchObject({ available: 700, threshold: 600 });

    expect((await debit(p.accountId, 200)).status).toBe(201); // 500 < 600: low again
    await waitForTypes(match, { "balance.low": 2 });
    await setThreshold(p.accountId, 0); // off: no recovered
    await setThreshold(p.accountId, 0); // the same again: still nothing
    expect((await debit(p.accountId, 100)).status).toBe(201); // 400, threshold 0: nothing
    expect((await debit(p.accountId, 400)).status).toBe(201); // 0: depleted, the marker
    events = await waitForTypes(match, { "balance.depleted": 1 });
    expect(countByType(events)).toEqual({ "credit.added": 1, "balance.low": 2, "balance.recovered": 1, "balance.depleted": 1 });
  });
});

describe("PUT/GET /v1/accounts/{account_id}/settings", () => {
  it("shows the default, then the account's own value, then the default again after null", async () => {
    const p = await funded(1000);
    expect(await getSettings(p.accountId)).toEqual({
      object: "account_settings",
      account_id: p.accountId,
      low_balance_threshold: 0,
      low_balance_threshold_source: "default",
    });
    const put = await putSettings(p.accountId, { low_balance_threshold: 750 });
    expect(put.status).toBe(200);
    const own = { object: "account_settings", account_id: p.accountId, low_balance_threshold: 750, low_balance_threshold_source: "account" };
    expect(await json(put)).toEqual(own);
    expect(await getSettings(p.accountId)).toEqual(own);
    // 0 is the account's own value too (alerts off for it, whatever the default).
    await setThreshold(p.accountId, 0);
    expect(await getSettings(p.accountId)).toMatchObject({ low_balance_threshold: 0, low_balance_threshold_source: "account" });
    const reset = await putSettings(p.accountId, { low_balance_threshold: null });
    expect(await json(reset)).toMatchObject({ low_balance_threshold: 0, low_balance_threshold_source: "default" });
    expect(await getSettings(p.accountId)).toMatchObject({ low_balance_threshold: 0, low_balance_threshold_source: "default" });
  });

  it("an account with no wallet yet can be given a threshold, and it holds once credit arrives", async () => {
    const p = await paidThroughService(1000);
    await setThreshold(p.accountId, 900);
    expect((await confirm(p.token, p.pi.id)).status).toBe(200);
    expect((await debit(p.accountId, 200)).status).toBe(201);
    const events = await waitForTypes(ofAccount(p.accountId), { "balance.low": 1 });
    expect(the(events, "balance.low")[0]?.data).toMatchObject({ available: 800, threshold: 900 });
  });

  const bad: { name: string; init: (accountId: string) => Promise<Response>; status: number; code: string }[] = [
    { name: "a negative threshold", init: (a) => putSettings(a, { low_balance_threshold: -1 }), status: 400, code: "invalid_request" },
    { name: "a fractional threshold", init: (a) => putSettings(a, { low_balance_threshold: 12.5 }), status: 400, code: "invalid_request" },
    { name: "a string", init: (a) => putSettings(a, { low_balance_threshold: "500" }), status: 400, code: "invalid_request" },
    { name: "an unknown field", init: (a) => putSettings(a, { low_balance_threshold: 500, auto_recharge: true }), status: 400, code: "invalid_request" },
    { name: "no threshold at all", init: (a) => putSettings(a, {}), status: 400, code: "invalid_request" },
    { name: "a missing body", init: (a) => putSettings(a, "", { body: null }), status: 400, code: "invalid_request" },
    { name: "a body that is not JSON", init: (a) => putSettings(a, "{low_balance_threshold: 5"), status: 400, code: "invalid_request" },
    {
      name: "a form instead of JSON",
      init: (a) => putSettings(a, "low_balance_threshold=500", { headers: { "content-type": "application/x-www-form-urlencoded" } }),
      status: 415,
      code: "unsupported_media_type",
    },
    // fetch() labels a string body text/plain when no Content-Type is given.
    { name: "no content type", init: (a) => putSettings(a, { low_balance_threshold: 500 }, { headers: {} }), status: 415, code: "unsupported_media_type" },
    {
      name: "a body over 1 KiB",
      init: (a) => putSettings(a, { low_balance_threshold: 500, note: "x".repeat(2000) }),
      status: 413,
      code: "payload_too_large",
    },
    {
      name: "no service token",
      init: (a) =>
        call(`/v1/accounts/${a}/settings`, {
          method: "PUT",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ low_balance_threshold: 500 }),
        }),
      status: 401,
      code: "unauthenticated",
    },
    {
      name: "the operator's token instead of the service's",
      init: (a) =>
        putSettings(
          a,
          { low_balance_threshold: 500 },
          { headers: { "content-type": "application/json", authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } },
        ),
      status: 401,
      code: "unauthenticated",
    },
  ];

  it.each(bad)("$name is refused ($status) and changes nothing", async ({ init, status, code }) => {
    const p = await funded(1000);
    await setThreshold(p.accountId, 300);
    const res = await init(p.accountId);
    expect({ status: res.status, code: (await json<{ error?: { code: string } }>(res)).error?.code }).toEqual({ status, code });
    expect(await getSettings(p.accountId)).toMatchObject({ low_balance_threshold: 300, low_balance_threshold_source: "account" });
  });

  it("a malformed account id is 400 before any object is asked", async () => {
    const res = await putSettings("not an id!", { low_balance_threshold: 500 });
    expect(res.status).toBe(400);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_request");
  });

  it("GET needs the service token too", async () => {
    const res = await call(`/v1/accounts/${newAccountId()}/settings`);
    expect(res.status).toBe(401);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("unauthenticated");
  });
});
