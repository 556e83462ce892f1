// The operator console's figures for a window (the last hour by minute, the last day by quarter
// hour), built from minute rows, whichever source they came from: this isolate's counters or
// Analytics Engine. One function for both, so the two cannot disagree on what a figure means.

import { MONEY_FACTS } from "./facts.js";
import type { Row } from "./counters.js";

export const WINDOWS = {
  hour: { bucketSeconds: 60, buckets: 60 },
  day: { bucketSeconds: 900, buckets: 96 },
} as const;
export type MetricsWindow = keyof typeof WINDOWS;

export interface MoneySeries {
  /** Facts per bucket, oldest first. */
  count: number[];
  total: { count: number; amounts: Record<string, number> };
}

export interface StripeCallSeries {
  kind: string;
  count: number;
  /** Answered with a status of 400 or more, or not answered at all. */
  errors: number;
  per_minute: number;
  mean_latency_ms: number;
  series: number[];
}

export interface MetricsView {
  source: "local" | "analytics_engine";
  /** "isolate": what the process that answered counted since `started_at`; "all": every location. */
  scope: "isolate" | "all";
  started_at: string | null;
  window: MetricsWindow;
  bucket_seconds: number;
  buckets: string[];
  facts: Record<(typeof MONEY_FACTS)[number], MoneySeries>;
  stripe: {
    calls: StripeCallSeries[];
    governor_waits: { count: number; refused: number; mean_wait_ms: number; max_wait_ms: number };
  };
}

/** The first bucket's start (seconds) of `window` ending with the bucket that holds `nowMs`. */
export function windowStart(window: MetricsWindow, nowMs: number): number {
  const { bucketSeconds, buckets } = WINDOWS[window];
  const last = Math.floor(nowMs / 1000 / bucketSeconds) * bucketSeconds;
  return last - (buckets - 1) * bucketSeconds;
}

const round = (n: number) => Math.round(n * 10) / 10;
const failed = (status: string) => !/^[123]\d\d$/.test(status);

export function summarize(
  rows: readonly Row[],
  window: MetricsWindow,
  nowMs: number,
  source: { source: MetricsView["source"]; scope: MetricsView["scope"]; startedAt: number | null },
): MetricsView {
  const { bucketSeconds, buckets } = WINDOWS[window];
  const start = windowStart(window, nowMs);
  const zeros = () => new Array<number>(buckets).fill(0);
  const facts = Object.fromEntries(MONEY_FACTS.map((f) => [f, { count: zeros(), total: { count: 0, amounts: {} } }])) as MetricsView["facts"];
  const calls = new Map<string, StripeCallSeries & { ms: number }>();
  const waits = { count: 0, refused: 0, ms: 0, max_wait_ms: 0 };

  for (const row of rows) {
    const i = Math.floor((row.t - start) / bucketSeconds);
    if (i < 0 || i >= buckets) continue;
    if ((MONEY_FACTS as readonly string[]).includes(row.fact)) {
      const f = facts[row.fact as (typeof MONEY_FACTS)[number]];
      f.count[i] = (f.count[i] ?? 0) + row.count;
      f.total.count += row.count;
      f.total.amounts[row.detail] = (f.total.amounts[row.detail] ?? 0) + row.amount;
    } else if (row.fact === "stripe_call") {
      let c = calls.get(row.detail);
      if (!c) {
        c = { kind: row.detail, count: 0, errors: 0, per_minute: 0, mean_latency_ms: 0, series: zeros(), ms: 0 };
        calls.set(row.detail, c);
      }
      c.count += row.count;
      if (failed(row.status)) c.errors += row.count;
      c.ms += row.ms;
      c.series[i] = (c.series[i] ?? 0) + row.count;
    } else if (row.fact === "governor_wait") {
      waits.count += row.count;
      if (row.status === "refused") waits.refused += row.count;
      waits.ms += row.ms;
      waits.max_wait_ms = Math.max(waits.max_wait_ms, row.max_ms);
    }
  }

  const minutes = (buckets * bucketSeconds) / 60;
  return {
    source: source.source,
    scope: source.scope,
    started_at: source.startedAt === null ? null : new Date(source.startedAt).toISOString(),
    window,
    bucket_seconds: bucketSeconds,
    buckets: Array.from({ length: buckets }, (_, i) => new Date((start + i * bucketSeconds) * 1000).toISOString()),
    facts,
    stripe: {
      calls: [...calls.values()]
        .sort((a, b) => b.count - a.count || a.kind.localeCompare(b.kind))
        .map(({ ms, ...c }) => ({ ...c, per_minute: round(c.count / minutes), mean_latency_ms: c.count ? round(ms / c.count) : 0 })),
      governor_waits: {
        count: waits.count,
        refused: waits.refused,
        mean_wait_ms: waits.count ? round(waits.ms / waits.count) : 0,
        max_wait_ms: round(waits.max_wait_ms),
      },
    },
  };
}
