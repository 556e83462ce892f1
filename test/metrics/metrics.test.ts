// Metrics (src/metrics): each fact is counted where it happens and written to Analytics Engine;
// the operator console's figures are the same summary of minute rows whether they come from the
// isolate's counters or from Analytics Engine's SQL API; the SQL is built from a checked dataset
// name and aligned to the console's buckets; GET /operator/metrics shows a real credit, a debit
// (once, however often it is replayed) and the Stripe calls they made.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/errors.js";
import { AnalyticsError, metricsQuery, metricsView, parseAnswer, readAnalytics } from "../../src/metrics/analytics.js";
import { Counters, type Row } from "../../src/metrics/counters.js";
import { dataPoint, record, recordSpending, stripeCallKind, type Fact } from "../../src/metrics/facts.js";
import { summarize, windowStart, WINDOWS, type MetricsView } from "../../src/metrics/view.js";
import { TEST_BINDINGS } from "../bindings.js";
import { call, confirm, deliver, emu, eventsFor, json, paidThroughService, paidTopUp, settledCredit, tokenFor, waitForObject } from "../helpers.js";
import { accountWithCard, configure, debitOk, rechargeRows } from "../recharge/helpers.js";
import { freshKey, sellerPost } from "../wallet/helpers.js";

const operator = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };
const LOCAL = { source: "local" as const, scope: "isolate" as const, startedAt: 0 };
// 2026-12-02 18:07:30 UTC: mid-minute and mid-quarter-hour.
const NOW = Date.UTC(2026, 11, 2, 18, 7, 30);

describe("facts", () => {
  it("name a Stripe call by its method and path, ids taken out", () => {
    expect(stripeCallKind("get", "http://127.0.0.1:1/v1/payment_intents/pi_3Nf7aB2?expand[]=x")).toBe("GET /v1/payment_intents/:id");
    expect(stripeCallKind("POST", "https://api.stripe.com/v1/customers/cus_Q2x9/balance_transactions")).toBe("POST /v1/customers/:id/balance_transactions");
    expect(stripeCallKind("GET", "https://api.stripe.com/v1/customers/search")).toBe("GET /v1/customers/search");
    expect(stripeCallKind("POST", "not a url")).toBe("POST ?");
  });

  it("go to Analytics Engine in the documented layout, and a dataset that throws changes nothing", () => {
    const points: unknown[] = [];
    const env = { METRICS: { writeDataPoint: (p: unknown) => void points.push(p) } };
    record(env, { name: "credit", amount: 1200, currency: "usd" }, NOW);
    record(env, { name: "stripe_call", kind: "GET /v1/payment_intents/:id", status: "200", ms: 42 }, NOW);
    record(env, { name: "governor_wait", priority: "credit", granted: false, ms: 7 }, NOW);
    expect(points).toEqual([
      { indexes: ["credit"], blobs: ["credit", "usd", ""], doubles: [1200, 0] },
      { indexes: ["stripe_call"], blobs: ["stripe_call", "GET /v1/payment_intents/:id", "200"], doubles: [0, 42] },
      { indexes: ["governor_wait"], blobs: ["governor_wait", "credit", "refused"], doubles: [0, 7] },
    ]);
    const broken = {
      METRICS: {
        writeDataPoint: () => {
          throw new Error("over the limit");
        },
      },
    };
    expect(() => record(broken, { name: "debit", amount: 5, currency: "usd" }, NOW)).not.toThrow();
    expect(() => record({}, { name: "debit", amount: 5, currency: "usd" }, NOW)).not.toThrow();
  });

  it("count a debit and a capture as debits, a hold, a release and a refusal as nothing", () => {
    const points: unknown[] = [];
    const env = { METRICS: { writeDataPoint: (p: unknown) => void points.push(p) } };
    const balance = { available: 0, held: 0, currency: "usd" };
    recordSpending(env, { ok: true, op: "debit", debit: { id: "d", account_id: "a", amount: 300, currency: "usd", balance, created: "" } });
    recordSpending(env, { ok: true, op: "capture", hold_id: "h", debit: { id: "d2", amount: 200 }, released: 100, balance });
    recordSpending(env, { ok: true, op: "release", hold_id: "h", released: 100, balance });
    recordSpending(env, {
      ok: true,
      op: "hold",
      hold: { id: "h", account_id: "a", amount: 1, currency: "usd", status: "active", expires_at: "", balance, created: "" },
    });
    recordSpending(env, { ok: false, code: "insufficient_credit", available: 0, currency: "usd" });
    expect(points.map((p) => (p as { doubles: number[] }).doubles[0])).toEqual([300, 200]);
  });
});

/** Facts at random times within the last day and a half before NOW. */
const timedFacts = fc.array(
  fc.record({
    ago: fc.integer({ min: 0, max: 36 * 3600 * 1000 }),
    fact: fc.oneof(
      fc.record({
        name: fc.constantFrom("credit", "debit", "reversal", "recharge"),
        amount: fc.integer({ min: 1, max: 10_000 }),
        currency: fc.constantFrom("usd", "eur"),
      }),
      fc.record({
        name: fc.constant("stripe_call"),
        kind: fc.constantFrom("GET /v1/payment_intents/:id", "POST /v1/customers/:id/balance_transactions"),
        status: fc.constantFrom("200", "402", "500", "network"),
        ms: fc.integer({ min: 0, max: 5000 }),
      }),
      fc.record({
        name: fc.constant("governor_wait"),
        priority: fc.constantFrom("credit", "display"),
        granted: fc.boolean(),
        ms: fc.integer({ min: 0, max: 60_000 }),
      }),
    ),
  }),
  { maxLength: 200 },
);

describe("the console's summary", () => {
  it("puts every fact of the window in its bucket, and none from before it (a property over random facts)", () => {
    fc.assert(
      fc.property(timedFacts, fc.constantFrom("hour" as const, "day" as const), (facts, window) => {
        const counters = new Counters();
        for (const { ago, fact } of facts) {
          const p = dataPoint(fact);
          counters.add(fact.name, p.detail, p.status, p.amount, p.ms, NOW - ago);
        }
        const start = windowStart(window, NOW);
        const view = summarize(counters.rows(start), window, NOW, LOCAL);
        const { bucketSeconds, buckets } = WINDOWS[window];
        expect(view.buckets).toHaveLength(buckets);
        expect(Date.parse(view.buckets.at(-1) as string) / 1000).toBe(Math.floor(NOW / 1000 / bucketSeconds) * bucketSeconds);
        const inWindow = facts.filter(({ ago }) => (NOW - ago) / 1000 >= start);
        for (const name of ["credit", "debit", "reversal", "recharge"] as const) {
          const mine = inWindow.filter((f) => f.fact.name === name);
          const series = view.facts[name];
          expect(series.total.count).toBe(mine.length);
          expect(series.count.reduce((a, b) => a + b, 0)).toBe(mine.length);
          for (const currency of ["usd", "eur"]) {
            const sum = mine
              .filter((f) => (f.fact as { currency: string }).currency === currency)
              .reduce((a, f) => a + (f.fact as { amount: number }).amount, 0);
            expect(series.total.amounts[currency] ?? 0).toBe(sum);
          }
          // Each fact sits in the bucket of its time.
          for (const f of mine) {
            const i = Math.floor(((NOW - f.ago) / 1000 - start) / bucketSeconds);
            expect(series.count[i]).toBeGreaterThan(0);
          }
        }
        const calls = inWindow.filter((f) => f.fact.name === "stripe_call") as { fact: Extract<Fact, { name: "stripe_call" }> }[];
        expect(view.stripe.calls.reduce((a, c) => a + c.count, 0)).toBe(calls.length);
        expect(view.stripe.calls.reduce((a, c) => a + c.errors, 0)).toBe(calls.filter((c) => c.fact.status !== "200").length);
        for (const c of view.stripe.calls) expect(c.series.reduce((a, b) => a + b, 0)).toBe(c.count);
        const waits = inWindow.filter((f) => f.fact.name === "governor_wait") as { fact: Extract<Fact, { name: "governor_wait" }> }[];
        expect(view.stripe.governor_waits.count).toBe(waits.length);
        expect(view.stripe.governor_waits.refused).toBe(waits.filter((w) => !w.fact.granted).length);
        expect(view.stripe.governor_waits.max_wait_ms).toBe(Math.max(0, ...waits.map((w) => w.fact.ms)));
      }),
    );
  });

  it("gives calls per minute, errors and mean latency by kind", () => {
    const rows: Row[] = [
      { t: windowStart("hour", NOW), fact: "stripe_call", detail: "GET /v1/x/:id", status: "200", count: 90, amount: 0, ms: 900, max_ms: 30 },
      { t: windowStart("hour", NOW) + 60, fact: "stripe_call", detail: "GET /v1/x/:id", status: "500", count: 30, amount: 0, ms: 2100, max_ms: 90 },
      { t: windowStart("hour", NOW) - 60, fact: "stripe_call", detail: "GET /v1/x/:id", status: "200", count: 1000, amount: 0, ms: 1, max_ms: 1 },
    ];
    const [kind] = summarize(rows, "hour", NOW, LOCAL).stripe.calls;
    expect(kind).toMatchObject({ kind: "GET /v1/x/:id", count: 120, errors: 30, per_minute: 2, mean_latency_ms: 25 });
    expect(kind?.series.slice(0, 2)).toEqual([90, 30]);
  });

  it("forgets minutes older than a day", () => {
    const counters = new Counters();
    counters.add("credit", "usd", "", 1, 0, NOW - 25 * 3600 * 1000);
    counters.add("credit", "usd", "", 1, 0, NOW);
    expect(counters.rows(0)).toHaveLength(1);
  });
});

describe("the Analytics Engine query", () => {
  it("asks for the window's buckets from its first, weighted by the sample interval", () => {
    expect(metricsQuery("edge_credit_metrics", "hour", NOW)).toBe(
      [
        "SELECT",
        "  toUnixTimestamp(toStartOfInterval(timestamp, INTERVAL '60' SECOND)) AS t,",
        "  blob1 AS fact, blob2 AS detail, blob3 AS status,",
        "  SUM(_sample_interval) AS count,",
        "  SUM(_sample_interval * double1) AS amount,",
        "  SUM(_sample_interval * double2) AS ms,",
        "  MAX(double2) AS max_ms",
        "FROM edge_credit_metrics",
        "WHERE timestamp >= toDateTime('2026-12-02 17:08:00')",
        "GROUP BY t, fact, detail, status",
        "ORDER BY t",
        "LIMIT 20000",
        "FORMAT JSON",
      ].join("\n"),
    );
    const day = metricsQuery("edge_credit_metrics", "day", NOW);
    expect(day).toContain("INTERVAL '900' SECOND");
    // 96 quarter hours ending with 18:00's: from 18:15 the day before.
    expect(day).toContain("toDateTime('2026-12-01 18:15:00')");
  });

  it("refuses a dataset name that is not an identifier", () => {
    for (const bad of ["metrics; DROP TABLE x", "a b", "1abc", "", "x'--"]) expect(() => metricsQuery(bad, "hour", NOW)).toThrow(/not a dataset name/);
  });

  it("reads the SQL API's answer (numbers quoted or not) into the same summary the counters give", async () => {
    const t = windowStart("hour", NOW) + 120;
    const sent: { url: string; auth: string | null; body: string }[] = [];
    const fetcher = (async (url: string, init: RequestInit) => {
      sent.push({ url, auth: new Headers(init.headers).get("authorization"), body: init.body as string });
      return Response.json({
        meta: [],
        data: [
          { t: String(t), fact: "credit", detail: "usd", status: "", count: "2", amount: 3000, ms: 0, max_ms: 0 },
          { t, fact: "stripe_call", detail: "GET /v1/payment_intents/:id", status: "200", count: 2, amount: 0, ms: 80, max_ms: 50 },
        ],
        rows: 2,
      });
    }) as unknown as typeof fetch;
    const config = { accountId: "0123456789abcdef0123456789abcdef", apiToken: "cf-token", dataset: "edge_credit_metrics" };
    const rows = await readAnalytics(config, "hour", NOW, fetcher);
    expect(sent).toEqual([
      {
        url: "https://api.cloudflare.com/client/v4/accounts/0123456789abcdef0123456789abcdef/analytics_engine/sql",
        auth: "Bearer cf-token",
        body: metricsQuery("edge_credit_metrics", "hour", NOW),
      },
    ]);
    const counters = new Counters();
    counters.add("credit", "usd", "", 1000, 0, t * 1000);
    counters.add("credit", "usd", "", 2000, 0, t * 1000);
    counters.add("stripe_call", "GET /v1/payment_intents/:id", "200", 0, 30, t * 1000);
    counters.add("stripe_call", "GET /v1/payment_intents/:id", "200", 0, 50, t * 1000);
    const strip = (v: MetricsView) => ({ ...v, source: null, scope: null, started_at: null });
    expect(strip(summarize(rows, "hour", NOW, { source: "analytics_engine", scope: "all", startedAt: null }))).toEqual(
      strip(summarize(counters.rows(0), "hour", NOW, LOCAL)),
    );
  });

  it("says why when the SQL API fails or answers in another shape", async () => {
    const config = { accountId: "0123456789abcdef0123456789abcdef", apiToken: "t", dataset: "d" };
    const answering = (res: Response) => (async () => res) as unknown as typeof fetch;
    await expect(readAnalytics(config, "hour", NOW, answering(new Response("no", { status: 403 })))).rejects.toThrow(/answered 403/);
    await expect(readAnalytics(config, "hour", NOW, answering(new Response("<html>")))).rejects.toThrow(/not JSON/);
    await expect(readAnalytics(config, "hour", NOW, answering(Response.json({ data: [{ t: "soon" }] })))).rejects.toThrow(AnalyticsError);
    const down = (async () => {
      throw new TypeError("fetch failed");
    }) as unknown as typeof fetch;
    await expect(readAnalytics(config, "hour", NOW, down)).rejects.toThrow(/did not answer/);
    expect(() => parseAnswer({ errors: ["bad token"] })).toThrow(AnalyticsError);
  });

  it("is what the console shows when configured: a 502 metrics_unavailable when it cannot be read", async () => {
    const config = { accountId: "0123456789abcdef0123456789abcdef", apiToken: "t", dataset: "d" };
    const refused = (async () => new Response("Authentication error", { status: 403 })) as unknown as typeof fetch;
    const err = await metricsView(config, "hour", NOW, refused).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(502);
    expect((err as ApiError).body().error.code).toBe("metrics_unavailable");
    const empty = (async () => Response.json({ data: [] })) as unknown as typeof fetch;
    expect(await metricsView(config, "day", NOW, empty)).toMatchObject({ source: "analytics_engine", scope: "all", started_at: null, window: "day" });
  });
});

async function metrics(window = "hour"): Promise<MetricsView> {
  const res = await call(`/operator/metrics?window=${window}`, { headers: operator });
  expect(res.status).toBe(200);
  return json<MetricsView>(res);
}

describe("GET /operator/metrics", () => {
  it("counts a real credit, its Stripe calls, and a debit once however often it is replayed", async () => {
    const before = await metrics();
    const paid = await paidTopUp(1500);
    expect((await confirm(paid.token, paid.pi.id)).status).toBe(200);
    const key = freshKey("metrics");
    for (let i = 0; i < 3; i++) expect((await sellerPost(paid.accountId, "/debits", { amount: 400, currency: "usd" }, key)).status).toBe(201);
    const after = await metrics();

    expect(after).toMatchObject({ source: "local", scope: "isolate", window: "hour", bucket_seconds: 60 });
    // Since this isolate began counting: a real time, not the epoch workerd's clock reads at module load.
    expect(Date.parse(after.started_at as string)).toBeGreaterThan(Date.UTC(2024, 0, 1));
    expect(Date.parse(after.started_at as string)).toBeLessThanOrEqual(Date.now());
    // Other tests' objects may finish credits in the background; this one is among them.
    expect(after.facts.credit.total.count - before.facts.credit.total.count).toBeGreaterThanOrEqual(1);
    expect((after.facts.credit.total.amounts.usd ?? 0) - (before.facts.credit.total.amounts.usd ?? 0)).toBeGreaterThanOrEqual(1500);
    // Nothing debits in the background: exactly this one, not its two replays.
    expect(after.facts.debit.total.count - before.facts.debit.total.count).toBe(1);
    expect((after.facts.debit.total.amounts.usd ?? 0) - (before.facts.debit.total.amounts.usd ?? 0)).toBe(400);
    expect(after.facts.debit.count.at(-1) ?? 0).toBeGreaterThanOrEqual(1);
    const calls = (v: MetricsView, kind: string) => v.stripe.calls.find((c) => c.kind === kind)?.count ?? 0;
    expect(calls(after, "POST /v1/customers/:id/balance_transactions")).toBeGreaterThan(calls(before, "POST /v1/customers/:id/balance_transactions"));
    expect(calls(after, "GET /v1/payment_intents/:id")).toBeGreaterThan(calls(before, "GET /v1/payment_intents/:id"));
    // The governor is on in these tests: every call waited for a permit, and each wait is counted.
    expect(after.stripe.governor_waits.count).toBeGreaterThan(before.stripe.governor_waits.count);

    const day = await metrics("day");
    expect(day).toMatchObject({ window: "day", bucket_seconds: 900 });
    expect(day.buckets).toHaveLength(96);
    expect(day.facts.debit.total.count).toBeGreaterThanOrEqual(1);
  });

  it("counts a refund's reversal and a recharge that succeeded", async () => {
    const before = await metrics();
    const paid = await paidThroughService(2000);
    expect((await confirm(paid.token, paid.pi.id)).status).toBe(200);
    await emu(`/payment_intents/${paid.pi.id}/refund`, { amount: 300 });
    for (const e of await eventsFor("charge.refunded", paid.pi.id)) expect((await deliver(e.id)).status).toBe(200);
    await waitForObject(paid.pi.id, (x) => settledCredit(x) && x.amounts?.net === 1700);

    const a = await accountWithCard(2000);
    await configure(a.accountId, { enabled: true, threshold: 1500, amount: 2000, monthly_limit: 10_000 });
    await debitOk(a.accountId, 600);
    await expect.poll(async () => (await rechargeRows(a.accountId)).map((r) => r.status), { timeout: 15_000 }).toEqual(["succeeded"]);

    const after = await metrics();
    // Nothing else in these tests refunds or recharges in the background.
    expect(after.facts.reversal.total.count - before.facts.reversal.total.count).toBe(1);
    expect((after.facts.reversal.total.amounts.usd ?? 0) - (before.facts.reversal.total.amounts.usd ?? 0)).toBe(300);
    expect(after.facts.recharge.total.count - before.facts.recharge.total.count).toBe(1);
    expect((after.facts.recharge.total.amounts.usd ?? 0) - (before.facts.recharge.total.amounts.usd ?? 0)).toBe(2000);
  });

  it("refuses a window it does not have, a browser's token and no token, and changes nothing", async () => {
    const res = await call("/operator/metrics?window=week", { headers: operator });
    expect(res.status).toBe(400);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("invalid_request");
    const paid = await tokenFor("acct_metrics_browser");
    for (const authorization of [`Bearer ${paid}`, "Bearer wrong-operator-token", ""]) {
      const refused = await call("/operator/metrics", { headers: authorization ? { authorization } : {} });
      expect(refused.status).toBe(401);
      expect((await json<{ error: { code: string } }>(refused)).error.code).toBe("unauthenticated");
    }
  });
});
