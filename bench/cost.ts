// The cost rows of `npm run bench`: what one credit and one debit cost this service in CPU and in
// Stripe calls, each row next to GET /healthz measured just before it on the same stack at the
// same concurrency (the floor: what any request costs locally, before the service does anything).
//   browser …   paid top-ups credited by POST /billing/confirm_payment, `concurrency` at a time
//   webhook …   paid top-ups credited by the emulator's signed payment_intent.succeeded delivery
//               alone (no browser confirm), `concurrency` deliveries in flight at a time
//   debit …     POST /v1/accounts/{id}/debits on one credited account, `concurrency` at a time
//   governed burst   paid top-ups confirmed 10 at a time under the shipped Stripe budget
// CPU is read from /proc (bench/cpu.ts) before each row and after the stack has gone quiet, so
// alarms and log lines that follow the answers are counted with the row that caused them.

import type { Emulator } from "../test/emulator/emulator.js";
import { cpuSpent, type CpuSample, type StackCpu } from "./cpu.js";
import { drive } from "./spend.js";
import { OPERATOR_TOKEN, SERVICE_TOKEN } from "./settings.js";
import type { TopUp, TopUps } from "./top-ups.js";

type Prepared = TopUp;

export interface CostContext {
  emu: Emulator;
  /** Where requests go (wrangler dev's public port). */
  url: string;
  cpu: StackCpu;
  /** `count` succeeded top-ups over accounts of `perAccount` each, whose customers the accounts know; `deliver`: send their webhooks. */
  prepare: (count: number, perAccount: number, amount?: number) => Promise<Prepared[]>;
  /** Credits the emulator's ledger holds for these PaymentIntents. */
  creditsFor: (pis: Set<string>) => number;
  serviceToken: string;
  operatorToken?: string;
  /** What this stack's settings differ in from the main one's (e.g. LOG_LEVEL off). */
  settings: Record<string, string>;
  /** GET /healthz requests per floor (default 600). */
  floorRequests?: number;
  /** Started just before a row's own requests and stopped once the stack is quiet after them (bench/profile.ts). */
  profiler?: { start: () => Promise<void>; stop: () => Promise<void> };
}

/** The rows' context on the Worker at `url` (its workerd's processes: `cpu`), paid top-ups made by `paid`, with the benchmark's tokens. */
export function costContext(
  emu: Emulator,
  paid: TopUps,
  edge: { url: string; cpu: StackCpu },
  settings: Record<string, string>,
  more: Pick<CostContext, "floorRequests" | "profiler"> = {},
): CostContext {
  return {
    emu,
    url: edge.url,
    cpu: edge.cpu,
    prepare: (count, perAccount, amount) => paid.prepare({ name: "edge", url: edge.url }, count, perAccount, amount),
    creditsFor: paid.creditsFor,
    serviceToken: SERVICE_TOKEN,
    operatorToken: OPERATOR_TOKEN,
    settings,
    ...more,
  };
}

/** GET /healthz at a concurrency: the floor a row is compared with. */
export interface Floor {
  n: number;
  concurrency: number;
  p50_ms: number;
  per_s: number;
  /** The Worker's workerd, CPU ms per request. */
  cpu_ms: number;
  /** Every process of the stack (the Worker's workerd, wrangler's proxy and its Node process), CPU ms per request. */
  cpu_all_ms: number;
}

export interface CostRow {
  name: string;
  settings: Record<string, string>;
  n: number;
  concurrency: number;
  /** Answers by HTTP status (webhook rows: the deliveries' answers). */
  statuses: Record<string, number>;
  /** Credits (or debits) done. */
  done: number;
  stripe_calls: number;
  stripe_calls_per_unit: number | null;
  p50_ms: number;
  p99_ms: number;
  /** Credits (or debits) per second, from the first request to the last credit. */
  per_s: number;
  floor: Floor;
  /** The Worker's workerd, CPU ms per credit (or debit), before the floor is taken off. */
  cpu_ms_gross: number;
  cpu_ms_floor: number;
  /** Net of the floor: what the credit itself costs over an empty request. */
  cpu_ms_per_credit?: number;
  cpu_ms_per_debit?: number;
  /** Per credit (or debit), every process of the stack, gross: the Worker's workerd, the proxy, wrangler's Node. */
  cpu_by_process: CpuSample;
  cpu_all_ms_floor: number;
  /** Set when wrangler dev restarted the Worker's workerd during the row (a source file changed): its CPU figures are void. */
  runtime_restarted?: true;
}

export interface GovernedBurst {
  n: number;
  concurrency: number;
  budget_per_s: number;
  statuses: Record<string, number>;
  credits: number;
  credits_after_alarms: number;
  stripe_calls: number;
  wall_s: number;
  /** The least time the budget allows for these calls: stripe_calls / budget. */
  min_wall_s: number;
  ratio: number;
  /**
   * The least time this machine allows without a budget: n / concurrency confirms one after
   * another at the ungoverned browser row's p50 (same run, null when it did not run). When it is
   * above min_wall_s, local speed, not the budget, bounds the burst.
   */
  local_min_wall_s: number | null;
  /** wall_s over the larger of the two bounds. */
  ratio_to_bound: number | null;
  answers_503: number;
  p50_ms: number;
  p99_ms: number;
  /** The governor's own figures before and after (GET /operator/governor), or null when the route is missing. */
  governor: { before: unknown; after: unknown } | null;
  /** Round trips to the governor per credit, from its figures (leases served), or null. */
  governor_rpcs_per_credit: number | null;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0);
};
const r2 = (x: number) => Math.round(x * 100) / 100;
const r1 = (x: number) => Math.round(x * 10) / 10;
const all = (s: CpuSample) => s.runtime + s.proxy + s.wrangler;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Floor requests per row: at 10 ms a tick, enough that the per-request figure reads to about 0.05 ms. */
const FLOOR_N = 600;

/**
 * Stripe requests since `from` (ms) that belong to a row: those about one of `ids` (its
 * PaymentIntents and customers) and those about no object at all (a search). Other stacks of the
 * same run share the emulator, and the main stack's wallet sync may run meanwhile: their
 * requests are about other customers and are left out.
 */
function callsSince(ctx: CostContext, from: number, ids: Set<string>): number {
  let n = 0;
  for (let i = ctx.emu.log.length - 1; i >= 0; i--) {
    const r = ctx.emu.log[i];
    if (!r || r.at < from) break;
    const named = r.path.match(/\b(?:pi|cus)_[A-Za-z0-9]+/g) ?? [];
    if (named.length === 0 || named.some((id) => ids.has(id))) n++;
  }
  return n;
}

const idsOf = (jobs: Prepared[]) => new Set(jobs.flatMap((j) => [j.pi, j.customer]));

async function healthz(url: string): Promise<number> {
  const res = await fetch(`${url}/healthz`);
  await res.arrayBuffer();
  return res.status;
}

/** GET /healthz, `n` of them at `concurrency`, and the CPU they cost once the stack is quiet. */
export async function measureFloor(ctx: CostContext, concurrency: number, n = FLOOR_N): Promise<Floor> {
  await ctx.cpu.settle();
  const before = ctx.cpu.sample();
  const run = await drive(n, concurrency, () => healthz(ctx.url));
  await ctx.cpu.settle();
  const spent = cpuSpent(before, ctx.cpu.sample());
  return {
    n,
    concurrency,
    p50_ms: r1(quantile(run.ms, 0.5)),
    per_s: r1((n / run.wallMs) * 1000),
    cpu_ms: r2(spent.runtime / n),
    cpu_all_ms: r2(all(spent) / n),
  };
}

function costRow(
  ctx: CostContext,
  name: string,
  kind: "credit" | "debit",
  figures: { n: number; concurrency: number; statuses: Record<string, number>; done: number; calls: number; ms: number[]; wallMs: number },
  floor: Floor,
  spent: CpuSample,
  restartsBefore: number,
): CostRow {
  const per = (x: number) => (figures.done === 0 ? 0 : r2(x / figures.done));
  const gross = per(spent.runtime);
  return {
    name,
    settings: ctx.settings,
    n: figures.n,
    concurrency: figures.concurrency,
    statuses: figures.statuses,
    done: figures.done,
    stripe_calls: figures.calls,
    stripe_calls_per_unit: figures.done === 0 ? null : r2(figures.calls / figures.done),
    p50_ms: r1(quantile(figures.ms, 0.5)),
    p99_ms: r1(quantile(figures.ms, 0.99)),
    per_s: r1((figures.done / figures.wallMs) * 1000),
    floor,
    cpu_ms_gross: gross,
    cpu_ms_floor: floor.cpu_ms,
    ...(kind === "credit" ? { cpu_ms_per_credit: r2(gross - floor.cpu_ms) } : { cpu_ms_per_debit: r2(gross - floor.cpu_ms) }),
    cpu_by_process: { runtime: gross, proxy: per(spent.proxy), wrangler: per(spent.wrangler) },
    cpu_all_ms_floor: floor.cpu_all_ms,
    ...(ctx.cpu.restarts !== restartsBefore ? { runtime_restarted: true as const } : {}),
  };
}

/** Runs `work` under the profiler (if any); what it answered, and the CPU the stack spent on it once quiet again. */
async function measured<T>(ctx: CostContext, work: () => Promise<T>): Promise<{ result: T; spent: CpuSample }> {
  await ctx.profiler?.start();
  const before = ctx.cpu.sample();
  const result = await work();
  await ctx.cpu.settle();
  const spent = cpuSpent(before, ctx.cpu.sample());
  await ctx.profiler?.stop();
  return { result, spent };
}

async function confirm(url: string, token: string, pi: string): Promise<number> {
  const res = await fetch(`${url}/billing/confirm_payment`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ payment_intent_id: pi }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Waits (bounded) until every one of `pis` is credited in the emulator's ledger; returns how many are. */
async function creditsSettled(ctx: CostContext, pis: Set<string>, maxMs = 120_000): Promise<number> {
  const deadline = Date.now() + maxMs;
  let credited = ctx.creditsFor(pis);
  while (credited < pis.size && Date.now() < deadline) {
    await sleep(100);
    credited = ctx.creditsFor(pis);
  }
  return credited;
}

/** `n` paid top-ups, each confirmed once by its browser, `concurrency` at a time. */
export async function browserCredits(ctx: CostContext, name: string, n: number, concurrency: number): Promise<CostRow> {
  const restarts = ctx.cpu.restarts;
  const jobs = await ctx.prepare(n, 10);
  const floor = await measureFloor(ctx, concurrency, ctx.floorRequests);
  const pis = new Set(jobs.map((j) => j.pi));
  const from = Date.now();
  const {
    result: { run, done },
    spent,
  } = await measured(ctx, async () => {
    const run = await drive(jobs.length, concurrency, (i) => confirm(ctx.url, (jobs[i] as Prepared).token, (jobs[i] as Prepared).pi));
    return { run, done: await creditsSettled(ctx, pis) };
  });
  return costRow(
    ctx,
    name,
    "credit",
    { n, concurrency, statuses: run.statuses, done, calls: callsSince(ctx, from, idsOf(jobs)), ms: run.ms, wallMs: run.wallMs },
    floor,
    spent,
    restarts,
  );
}

/**
 * `n` top-ups paid in the emulator and credited by their payment_intent.succeeded deliveries
 * alone, `concurrency` deliveries at a time. The endpoint is subscribed to the events the service
 * acts on (README, Webhooks): the emulator's other events of a payment (charge.succeeded) are
 * not delivered. Latency: from the delivery to the credit in Stripe's ledger (it is made from the
 * object's alarm, after the answer).
 */
export async function webhookCredits(ctx: CostContext, name: string, n: number, concurrency: number): Promise<CostRow> {
  const restarts = ctx.cpu.restarts;
  const { emu } = ctx;
  // The top-ups are made with deliveries off (their accounts warmed, as for the browser rows),
  // then their payment_intent.succeeded events are delivered from here.
  const jobs = await ctx.prepare(n, 10);
  const floor = await measureFloor(ctx, concurrency, ctx.floorRequests);
  const pis = new Set(jobs.map((j) => j.pi));
  const events = emu.store.events.filter((e) => e.type === "payment_intent.succeeded" && pis.has((e.data.object as { id?: string }).id ?? ""));
  if (events.length !== n) throw new Error(`expected ${n} payment_intent.succeeded events, found ${events.length}`);
  const savedUrl = emu.options.webhookUrl;
  emu.options.webhookUrl = `${ctx.url}/stripe/webhook`;
  emu.reconfigure();
  const sentAt = new Map<string, number>();
  const creditedAt = new Map<string, number>();
  let watching = true;
  // The credit's time: polled from the emulator's ledger while the row runs.
  const watch = (async () => {
    while (watching) {
      for (const txs of emu.store.balanceTransactions.values()) {
        for (const tx of txs) {
          const pi = tx.metadata.payment_intent ?? "";
          if (pis.has(pi) && !tx.metadata.operation && !creditedAt.has(pi)) creditedAt.set(pi, performance.now());
        }
      }
      await sleep(20);
    }
  })();
  const from = Date.now();
  const deliveriesFrom = emu.webhooks.deliveries.length;
  await ctx.profiler?.start();
  const before = ctx.cpu.sample();
  const started = performance.now();
  try {
    for (let i = 0; i < events.length; i += concurrency) {
      for (const event of events.slice(i, i + concurrency)) {
        sentAt.set((event.data.object as { id: string }).id, performance.now());
        emu.webhooks.deliver(event);
      }
      await emu.webhooks.idle();
    }
    await creditsSettled(ctx, pis);
  } finally {
    emu.options.webhookUrl = savedUrl;
    emu.reconfigure();
  }
  const wallMs = Math.max(...creditedAt.values(), started) - started;
  await ctx.cpu.settle();
  const spent = cpuSpent(before, ctx.cpu.sample());
  await ctx.profiler?.stop();
  watching = false;
  await watch;
  const statuses: Record<string, number> = {};
  for (const d of emu.webhooks.deliveries.slice(deliveriesFrom)) statuses[String(d.status ?? d.error)] = (statuses[String(d.status ?? d.error)] ?? 0) + 1;
  const ms = [...creditedAt].map(([pi, at]) => at - (sentAt.get(pi) ?? at));
  return costRow(
    ctx,
    name,
    "credit",
    { n, concurrency, statuses, done: ctx.creditsFor(pis), calls: callsSince(ctx, from, idsOf(jobs)), ms, wallMs },
    floor,
    spent,
    restarts,
  );
}

/** `n` debits of 1 on one account credited by a browser top-up, `concurrency` at a time. */
export async function debits(ctx: CostContext, name: string, n: number, concurrency: number): Promise<CostRow> {
  const restarts = ctx.cpu.restarts;
  const [top] = await ctx.prepare(1, 1, Math.max(1000, n * 2));
  if (!top) throw new Error("no top-up");
  const { account } = top;
  if ((await confirm(ctx.url, top.token, top.pi)) !== 200) throw new Error(`crediting ${account} for the debit row`);
  const runId = Date.now().toString(36);
  const debit = async (i: number): Promise<number> => {
    const res = await fetch(`${ctx.url}/v1/accounts/${account}/debits`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${ctx.serviceToken}`, "idempotency-key": `${runId}-${i}` },
      body: JSON.stringify({ amount: 1, currency: "usd" }),
    });
    await res.arrayBuffer();
    return res.status;
  };
  // The account object and its wallet are warm, as on an account that spends.
  for (let i = 0; i < 20; i++) await debit(-1 - i);
  const floor = await measureFloor(ctx, concurrency, ctx.floorRequests);
  const from = Date.now();
  const { result: run, spent } = await measured(ctx, () => drive(n, concurrency, debit));
  return costRow(
    ctx,
    name,
    "debit",
    { n, concurrency, statuses: run.statuses, done: run.statuses["201"] ?? 0, calls: callsSince(ctx, from, idsOf([top])), ms: run.ms, wallMs: run.wallMs },
    floor,
    spent,
    restarts,
  );
}

async function governorStatus(ctx: CostContext): Promise<Record<string, unknown> | null> {
  if (!ctx.operatorToken) return null;
  const res = await fetch(`${ctx.url}/operator/governor`, { headers: { authorization: `Bearer ${ctx.operatorToken}` } });
  if (!res.ok) {
    await res.arrayBuffer();
    return null;
  }
  const body = (await res.json()) as { governor?: Record<string, unknown> | null };
  return body.governor ?? null;
}

/**
 * `n` paid top-ups confirmed `concurrency` at a time through the governor at `budget` calls per
 * second: how close the wall time comes to what the budget allows, and what it costs in 503s
 * and governor round trips.
 */
export async function governedBurst(ctx: CostContext, n: number, concurrency: number, budget: number, ungovernedP50Ms: number | null): Promise<GovernedBurst> {
  const jobs = await ctx.prepare(n, 10);
  const pis = new Set(jobs.map((j) => j.pi));
  // The warm-up's own calls (customer reads) have drawn permits: let the schedule drain.
  await sleep(2000);
  const govBefore = await governorStatus(ctx);
  const from = Date.now();
  const started = performance.now();
  const run = await drive(jobs.length, concurrency, (i) => confirm(ctx.url, (jobs[i] as Prepared).token, (jobs[i] as Prepared).pi));
  const wallMs = performance.now() - started;
  const credits = ctx.creditsFor(pis);
  const stripeCalls = callsSince(ctx, from, idsOf(jobs));
  const govAfter = await governorStatus(ctx);
  const after = await creditsSettled(ctx, pis);
  const rpcs = (s: Record<string, unknown> | null) =>
    s === null ? null : typeof s.rpcs === "number" ? s.rpcs : typeof s.leases === "number" ? s.leases : null;
  const rb = rpcs(govBefore);
  const ra = rpcs(govAfter);
  const minWall = stripeCalls / budget;
  const localMin = ungovernedP50Ms === null ? null : (n / concurrency) * (ungovernedP50Ms / 1000);
  return {
    n,
    concurrency,
    budget_per_s: budget,
    statuses: run.statuses,
    credits,
    credits_after_alarms: after,
    stripe_calls: stripeCalls,
    wall_s: r2(wallMs / 1000),
    min_wall_s: r2(minWall),
    ratio: minWall === 0 ? 0 : r2(wallMs / 1000 / minWall),
    local_min_wall_s: localMin === null ? null : r2(localMin),
    ratio_to_bound: localMin === null ? null : r2(wallMs / 1000 / Math.max(minWall, localMin)),
    answers_503: run.statuses["503"] ?? 0,
    p50_ms: r1(quantile(run.ms, 0.5)),
    p99_ms: r1(quantile(run.ms, 0.99)),
    governor: govBefore === null && govAfter === null ? null : { before: govBefore, after: govAfter },
    governor_rpcs_per_credit: ra === null || rb === null || credits === 0 ? null : r2((ra - rb) / credits),
  };
}

/** The cost table, as printed by `npm run bench`. */
export function costReport(rows: CostRow[], burst: GovernedBurst | null): string {
  const header = [
    "row",
    "settings",
    "n",
    "at once",
    "not 2xx",
    "calls/unit",
    "p50 ms",
    "per s",
    "│ floor/s",
    "│ CPU ms/unit",
    "floor",
    "net",
    "│ all procs",
    "floor",
  ];
  const notOk = (s: Record<string, number>) =>
    Object.entries(s)
      .filter(([k]) => k !== "200" && k !== "201")
      .map(([k, v]) => `${v}×${k}`)
      .join(" ");
  const cells = rows.map((r) => [
    `${r.name}${r.runtime_restarted ? " (void: workerd restarted)" : ""}`,
    Object.entries(r.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ") || "-",
    r.n,
    r.concurrency,
    notOk(r.statuses),
    r.stripe_calls_per_unit ?? "-",
    r.p50_ms,
    r.per_s,
    `│ ${r.floor.per_s}`,
    `│ ${r.cpu_ms_gross}`,
    r.cpu_ms_floor,
    r.cpu_ms_per_credit ?? r.cpu_ms_per_debit ?? "",
    `│ ${r2(all(r.cpu_by_process))}`,
    r.cpu_all_ms_floor,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => String(c[i]).length)));
  // Names left-aligned, figures right-aligned; a column's "│ " stays at its left edge.
  const cell = (c: string | number, w: number) => {
    const text = String(c);
    if (text === "│") return text.padEnd(w);
    return text.startsWith("│ ") ? `│ ${text.slice(2).padStart(w - 2)}` : text.padStart(w);
  };
  const line = (cs: (string | number)[]) => cs.map((c, i) => (i < 2 ? String(c).padEnd(widths[i] ?? 0) : cell(c, widths[i] ?? 0))).join("  ");
  const out = [
    "Cost per credit and per debit: CPU ms of the Worker's workerd per unit (credit or debit), gross, the floor (GET /healthz at the same concurrency, measured just before) and net of it; then every process of wrangler dev (workerd, its proxy, its Node process). Webhook p50: delivery to credit.",
    "",
    line(header),
    ...cells.map(line),
  ];
  if (burst) {
    out.push(
      "",
      `Governed burst: ${burst.n} paid top-ups, ${burst.concurrency} at a time, STRIPE_RATE_LIMIT ${burst.budget_per_s}: ${burst.stripe_calls} Stripe calls in ${burst.wall_s} s ` +
        `against ${burst.min_wall_s} s the budget allows (×${burst.ratio}; ${burst.local_min_wall_s ?? "?"} s at the ungoverned confirm's p50, ×${burst.ratio_to_bound ?? "?"} of the larger bound); ${burst.answers_503} answered 503; credits ${burst.credits}` +
        `${burst.credits_after_alarms !== burst.credits ? `→${burst.credits_after_alarms}` : ""}; p50 ${burst.p50_ms} ms, p99 ${burst.p99_ms} ms; governor round trips per credit ${burst.governor_rpcs_per_credit ?? "n/a (no GET /operator/governor)"}`,
    );
  }
  return out.join("\n");
}
