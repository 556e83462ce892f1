// Production's metrics: the facts every isolate wrote to Workers Analytics Engine (facts.ts),
// read back through its SQL API as the same minute rows the local counters give, so view.ts
// summarizes both alike. The SQL API needs an account id and an API token with Account
// Analytics: Read (ANALYTICS_ACCOUNT_ID, ANALYTICS_API_TOKEN); README's Operator console
// section gives the query to run by hand.

import { z } from "zod";
import { ApiError } from "../errors.js";
import { counters, type Row } from "./counters.js";
import { summarize, WINDOWS, windowStart, type MetricsView, type MetricsWindow } from "./view.js";

export interface AnalyticsConfig {
  accountId: string;
  apiToken: string;
  dataset: string;
}

/** A dataset name goes into the SQL as an identifier, so it must be one (settings.ts checks it too). */
const DATASET = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Enough for a day of quarter hours × every fact, currency, Stripe call kind and status. */
const ROW_LIMIT = 20_000;

/** `2026-12-02 18:15:00`: the SQL API's datetime literal (UTC). */
function sqlDateTime(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 19).replace("T", " ");
}

/**
 * The query for `window` ending at `nowMs`: one row per bucket and (fact, detail, status), with
 * counts and sums weighted by `_sample_interval` (Analytics Engine samples at high rates; each
 * stored point stands for that many written). The bucket is the window's own (a minute, a
 * quarter hour), so a day is 96 buckets, not 1,440.
 */
export function metricsQuery(dataset: string, window: MetricsWindow, nowMs: number): string {
  if (!DATASET.test(dataset)) throw new Error(`not a dataset name: ${dataset}`);
  const { bucketSeconds } = WINDOWS[window];
  const start = windowStart(window, nowMs);
  return [
    "SELECT",
    `  toUnixTimestamp(toStartOfInterval(timestamp, INTERVAL '${bucketSeconds}' SECOND)) AS t,`,
    "  blob1 AS fact, blob2 AS detail, blob3 AS status,",
    "  SUM(_sample_interval) AS count,",
    "  SUM(_sample_interval * double1) AS amount,",
    "  SUM(_sample_interval * double2) AS ms,",
    "  MAX(double2) AS max_ms",
    `FROM ${dataset}`,
    `WHERE timestamp >= toDateTime('${sqlDateTime(start)}')`,
    "GROUP BY t, fact, detail, status",
    "ORDER BY t",
    `LIMIT ${ROW_LIMIT}`,
    "FORMAT JSON",
  ].join("\n");
}

/** Numbers may come quoted (64-bit integers in JSON output), so each is coerced and must be finite. */
const num = z.coerce.number().refine(Number.isFinite);
const Answer = z.object({
  data: z.array(z.object({ t: num, fact: z.string(), detail: z.string(), status: z.string(), count: num, amount: num, ms: num, max_ms: num })),
});

export class AnalyticsError extends Error {
  override name = "AnalyticsError";
}

/** The SQL API's answer as rows; anything else (an error page, a changed shape) is an AnalyticsError. */
export function parseAnswer(body: unknown): Row[] {
  const parsed = Answer.safeParse(body);
  if (!parsed.success) throw new AnalyticsError(`Analytics Engine answered in an unexpected shape: ${parsed.error.issues[0]?.message ?? ""}`);
  return parsed.data.data;
}

/** Runs the window's query against the SQL API. `fetcher` is the platform's fetch (tests hand in their own). */
export async function readAnalytics(config: AnalyticsConfig, window: MetricsWindow, nowMs: number, fetcher: typeof fetch = fetch): Promise<Row[]> {
  const url = `https://api.cloudflare.com/client/v4/accounts/${config.accountId}/analytics_engine/sql`;
  let res: Response;
  try {
    res = await fetcher(url, {
      method: "POST",
      headers: { authorization: `Bearer ${config.apiToken}` },
      body: metricsQuery(config.dataset, window, nowMs),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new AnalyticsError(`Analytics Engine did not answer: ${String(err)}`);
  }
  if (!res.ok) throw new AnalyticsError(`Analytics Engine answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new AnalyticsError("Analytics Engine's answer is not JSON");
  }
  return parseAnswer(body);
}

/**
 * The console's figures for `window`: from Analytics Engine when it is configured (a 502
 * metrics_unavailable when it cannot be read), else this isolate's counters.
 */
export async function metricsView(config: AnalyticsConfig | null, window: MetricsWindow, nowMs: number, fetcher: typeof fetch = fetch): Promise<MetricsView> {
  if (!config) return summarize(counters.rows(windowStart(window, nowMs)), window, nowMs, { source: "local", scope: "isolate", startedAt: counters.startedAt });
  try {
    return summarize(await readAnalytics(config, window, nowMs, fetcher), window, nowMs, { source: "analytics_engine", scope: "all", startedAt: null });
  } catch (err) {
    if (err instanceof AnalyticsError) throw new ApiError(502, "metrics_unavailable", err.message);
    throw err;
  }
}
