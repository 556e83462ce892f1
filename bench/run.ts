// `npm run bench`: Stripe calls and latency per confirm under contention, this service side by
// side with the design it replaces (bench/baseline.ts), against one emulator with a fixed
// latency L per Stripe call; then spending through the seller's API (bench/spend.ts). Prints
// the tables and writes bench/results/latest.json (latest-credits.json or latest-debits.json
// for a run of one part). Then the cost rows (bench/cost.ts): CPU per credit and per debit from
// workerd's own CPU time (bench/cpu.ts), net of GET /healthz's at the same concurrency, with the
// service's logging on and off; browser credits with and without the mark; webhook credits;
// a burst under the shipped Stripe budget. Each setting that differs is a `wrangler dev` of its
// own, started after the main one, all against the one emulator.
//   --latency L          ms added to every Stripe call (default 50)
//   --quick              smaller N and M, and fewer debits, for a fast look; the main stack only
//                        (spread M=100 on it), unless --only names a part: the rows that need
//                        other settings (logging off, the mark on, no wrangler dev, the shipped
//                        budget, spread without the governor) are in the full run,
//                        `--only cost --quick` and `--only credits --quick`
//   --only credits|debits|cost   run one part
//   --debits N           debits per concurrent spending row (default 1000; 300 with --quick)
//   --concurrency C      requests in flight in the concurrent spending rows (default 16)
//   --sync-seconds S     the Worker's STRIPE_SYNC_SECONDS (default 60, the product's default);
//                        the sync's calls are told apart from the debits' and counted on their own
// Figures are medians and tails of one run on a shared machine: read them as ratios.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { projectRoot } from "../scripts/dev-vars.js";
import { freePort, startStack } from "../scripts/stack.js";
import { topUps } from "./top-ups.js";
import { benchVars, JWT_SECRET, SERVICE_TOKEN, STRIPE_KEY, WEBHOOK_SECRET } from "./settings.js";
import { runSpending, spendingReport, type SpendResults } from "./spend.js";
import { StackCpu, cpuSpent, type CpuSample } from "./cpu.js";
import { startBare } from "./bare.js";
import {
  browserCredits,
  costContext,
  costReport,
  debits as debitRow,
  governedBurst,
  webhookCredits,
  type CostContext,
  type CostRow,
  type GovernedBurst,
} from "./cost.js";

const { values } = parseArgs({
  options: {
    latency: { type: "string", default: "50" },
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    debits: { type: "string" },
    concurrency: { type: "string", default: "16" },
    "sync-seconds": { type: "string", default: "60" },
  },
});
const L = Number(values.latency);
const quick = values.quick;
const only = values.only;
if (only !== undefined && only !== "credits" && only !== "debits" && only !== "cost") throw new Error(`--only takes credits, debits or cost, not ${only}`);
const debits = Number(values.debits ?? (quick ? 300 : 1000));
const concurrency = Number(values.concurrency);
const syncSeconds = Number(values["sync-seconds"]);
const SECRET = JWT_SECRET;
const KEY = STRIPE_KEY;
/** Requests in flight in the credit cost rows. */
const CREDIT_CONCURRENCY = 10;

interface Figures {
  n: number;
  stripe_calls: number;
  credits: number;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  /** Credits once every PaymentIntent's own alarm has finished what its caller was told to retry (503). */
  credits_after_alarms: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  per_s: number;
}
interface Scenario extends Figures {
  name: string;
  /** This service's CPU ms per credit, by process (bench/cpu.ts), where the row reads it. */
  cpu_ms_per_credit?: CpuSample;
  baseline: Figures;
  ratio: { stripe_calls: number | null; p50_ms: number | null; p99_ms: number | null; per_s: number | null };
}

interface System {
  name: "edge" | "baseline";
  url: string;
  /** The edge stack's processes, to read CPU from. */
  cpu?: StackCpu;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0);
};
const round = (x: number) => Math.round(x * 10) / 10;

// ---------------------------------------------------------------------------------------------

const states: string[] = [];
const emulatorPort = await freePort();
const vars = (overrides: Record<string, string> = {}) => benchVars(emulatorPort, syncSeconds, overrides);
/** Another `wrangler dev` of the Worker, against the main stack's emulator, with its own state. */
async function startOther(overrides: Record<string, string>) {
  const persistTo = mkdtempSync(join(tmpdir(), "bench-state-"));
  states.push(persistTo);
  const port = await freePort();
  const other = await startStack({ workerPort: port, emulatorPort: null, webhookSecret: WEBHOOK_SECRET, persistTo, vars: vars(overrides) });
  return { stack: other, system: { name: "edge", url: other.workerUrl, cpu: StackCpu.find(other.wrangler.pid ?? -1, port) } satisfies System };
}

const state = mkdtempSync(join(tmpdir(), "bench-state-"));
states.push(state);
console.log(`Starting the emulator (latency ${L} ms) and wrangler dev…`);
const mainPort = await freePort();
const stack = await startStack({
  workerPort: mainPort,
  emulatorPort,
  latencyMs: L,
  // The benchmark measures the service: the emulator's check against Stripe's spec (on in tests
  // and npm start) would take CPU from the same two cores, so it is off here.
  specCheck: false,
  webhookSecret: WEBHOOK_SECRET,
  persistTo: state,
  vars: vars(),
});
const emu = (stack.emulator as NonNullable<typeof stack.emulator>).emulator;
// Webhooks off: the figures are the confirm path's alone.
emu.options.webhookUrl = null;
emu.reconfigure();

const baselineProc = spawn(process.execPath, [join(projectRoot, "node_modules/tsx/dist/cli.mjs"), join(projectRoot, "bench/baseline.ts")], {
  env: { ...process.env, PORT: "0", STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}`, STRIPE_SECRET_KEY: KEY, AUTH_JWT_SECRET: SECRET, SERVICE_TOKEN },
  stdio: ["ignore", "pipe", "inherit"],
});
const baselinePort = await new Promise<number>((resolve) => {
  createInterface({ input: baselineProc.stdout }).on("line", (line) => {
    const m = /^BASELINE_PORT=(\d+)/.exec(line);
    if (m) resolve(Number(m[1]));
  });
});
const systems: System[] = [
  { name: "edge", url: stack.workerUrl, cpu: StackCpu.find(stack.wrangler.pid ?? -1, mainPort) },
  { name: "baseline", url: `http://127.0.0.1:${baselinePort}` },
];

const paid = topUps(emu, SECRET);
const { token, prepare: prepareOn, creditsFor } = paid;
/** `count` succeeded PaymentIntents over accounts of `perAccount` each; this service's accounts know their customer (as after a first top-up). */
const prepare = (system: System, count: number, perAccount: number, amount?: number) => prepareOn(system, count, perAccount, amount);

async function confirmOnce(url: string, t: string, pi: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const res = await fetch(`${url}/billing/confirm_payment`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
    body: JSON.stringify({ payment_intent_id: pi }),
  });
  await res.arrayBuffer();
  return { ms: performance.now() - started, status: res.status };
}

/** Runs `jobs` all at once and measures them. */
async function measure(system: System, jobs: { token: string; pi: string }[], countCredits: boolean): Promise<Figures> {
  const before = emu.stats.requests;
  const started = performance.now();
  const results = await Promise.all(jobs.map((j) => confirmOnce(system.url, j.token, j.pi)));
  const wall = performance.now() - started;
  const statuses: Record<string, number> = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const ms = results.map((r) => r.ms);
  const pis = new Set(jobs.map((j) => j.pi));
  const credits = countCredits ? creditsFor(pis) : 0;
  let after = credits;
  // Callers told 503 were promised that the credit finishes on its own: wait for it (bounded).
  for (let waited = 0; countCredits && after < pis.size && waited < 120_000; waited += 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    after = creditsFor(pis);
  }
  return {
    n: jobs.length,
    stripe_calls: emu.stats.requests - before,
    credits,
    statuses,
    credits_after_alarms: after,
    p50_ms: round(quantile(ms, 0.5)),
    p99_ms: round(quantile(ms, 0.99)),
    max_ms: round(Math.max(...ms)),
    per_s: round((jobs.length / wall) * 1000),
  };
}

/** Time covered by the union of `intervals`: calls made side by side count once. */
function busyMs(intervals: [number, number][]): number {
  let total = 0;
  let end = -Infinity;
  for (const [from, to] of [...intervals].sort((a, b) => a[0] - b[0])) {
    if (to <= end) continue;
    total += to - Math.max(from, end);
    end = to;
  }
  return total;
}

/**
 * What the service adds per confirm: end-to-end time minus the time Stripe (the emulator) was
 * busy with its calls. Includes wrangler dev's own per-request cost; see the floor figure.
 */
async function overhead(system: System, first: boolean): Promise<Figures> {
  const count = quick ? 15 : 40;
  const prepared = await prepare(system, first ? count : 1, first ? 1 : 1);
  if (!first) await confirmOnce(system.url, prepared[0]?.token ?? "", prepared[0]?.pi ?? "");
  const extra: number[] = [];
  const before = emu.stats.requests;
  for (let i = 0; i < count; i++) {
    const job = first ? (prepared[i] as { token: string; pi: string }) : (prepared[0] as { token: string; pi: string });
    const from = Date.now();
    const { ms } = await confirmOnce(system.url, job.token, job.pi);
    const spent = busyMs(emu.log.filter((r) => r.at >= from - 1 && r.status !== 0).map((r) => [r.at, r.at + r.duration_ms] as [number, number]));
    extra.push(Math.max(0, ms - spent));
  }
  return {
    n: count,
    stripe_calls: emu.stats.requests - before,
    credits: first ? creditsFor(new Set(prepared.map((p) => p.pi))) : 0,
    statuses: {},
    credits_after_alarms: first ? creditsFor(new Set(prepared.map((p) => p.pi))) : 0,
    p50_ms: round(quantile(extra, 0.5)),
    p99_ms: round(quantile(extra, 0.99)),
    max_ms: round(Math.max(...extra)),
    per_s: 0,
  };
}

/** The platform's own floor: an empty request answered by the server (wrangler dev's proxy and workerd; Node for the baseline). */
async function floor(system: System): Promise<Figures> {
  const count = quick ? 15 : 40;
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await (await fetch(`${system.url}/healthz`)).arrayBuffer();
    ms.push(performance.now() - started);
  }
  return {
    n: count,
    stripe_calls: 0,
    credits: 0,
    statuses: {},
    credits_after_alarms: 0,
    p50_ms: round(quantile(ms, 0.5)),
    p99_ms: round(quantile(ms, 0.99)),
    max_ms: round(Math.max(...ms)),
    per_s: 0,
  };
}

const ratio = (a: number, b: number) => (b === 0 ? null : Math.round((a / b) * 100) / 100);

/** Runs `run` on this service (`edge`, the main stack unless given) and on the baseline; `withCpu`: reads the edge's CPU per credit. */
async function scenario(name: string, run: (s: System) => Promise<Figures>, edge = systems[0] as System, withCpu = false): Promise<Scenario> {
  process.stdout.write(`  ${name}…`);
  const cpu = withCpu ? edge.cpu : undefined;
  await cpu?.settle();
  const before = cpu?.sample();
  const ours = await run(edge);
  await cpu?.settle();
  const spent = cpu && before ? cpuSpent(before, cpu.sample()) : null;
  const base = await run(systems[1] as System);
  process.stdout.write(" done\n");
  const perCredit = (x: number) => (ours.credits_after_alarms === 0 ? 0 : Math.round((x / ours.credits_after_alarms) * 100) / 100);
  return {
    name,
    ...ours,
    ...(spent ? { cpu_ms_per_credit: { runtime: perCredit(spent.runtime), proxy: perCredit(spent.proxy), wrangler: perCredit(spent.wrangler) } } : {}),
    baseline: base,
    ratio: {
      stripe_calls: ratio(ours.stripe_calls, base.stripe_calls),
      p50_ms: ratio(ours.p50_ms, base.p50_ms),
      p99_ms: ratio(ours.p99_ms, base.p99_ms),
      per_s: ratio(ours.per_s, base.per_s),
    },
  };
}

const scenarios: Scenario[] = [];
let spending: SpendResults | null = null;
const costRows: CostRow[] = [];
let burst: GovernedBurst | null = null;
const creditN = quick ? 60 : 200;
/** Whether the rows that need a stack with other settings run (see --quick). */
const otherStacks = !quick || only !== undefined;
const part = (name: "credits" | "debits" | "cost") => only === undefined || only === name;
try {
  // Warm both systems (module load, first object) outside the figures.
  for (const s of systems) {
    const [w] = await prepare(s, 1, 1);
    if (w) await confirmOnce(s.url, w.token, w.pi);
  }
  if (part("credits")) await creditScenarios();
  if (part("cost")) {
    console.log("Cost rows (CPU per credit and per debit):");
    await costRowsOn(systems[0] as System, {}, "");
  }
  // The spending rows run here; the wait for their sync to Stripe runs alongside what follows.
  let finishSpending: (() => Promise<SpendResults>) | null = null;
  if (part("debits")) {
    console.log("Spending:");
    finishSpending = await runSpending({
      emu,
      edgeUrl: stack.workerUrl,
      baselineUrl: `http://127.0.0.1:${baselinePort}`,
      stripeUrl: `http://127.0.0.1:${emulatorPort}`,
      stripeKey: KEY,
      serviceToken: SERVICE_TOKEN,
      browserToken: token,
      debits,
      latencyDebits: quick ? 150 : 300,
      baselineOneAccountDebits: quick ? 50 : 100,
      concurrency,
      accounts: 100,
      syncSeconds,
      ...(systems[0]?.cpu ? { cpu: systems[0].cpu } : {}),
    });
  }
  if (part("cost") && otherStacks) await otherCostRows();
  if (part("credits")) {
    if (otherStacks) await spreadScenarios();
    else scenarios.push(await scenario("spread M=100", async (s) => measure(s, await prepare(s, 100, 10), true), systems[0], true));
  }
  if (finishSpending) spending = await finishSpending();
} finally {
  baselineProc.kill("SIGTERM");
  await stack.stop();
  for (const dir of states) rmSync(dir, { recursive: true, force: true });
}

/** Runs `job` on a `wrangler dev` of its own with `overrides`, warmed, and stops it after. */
async function onOtherStack(overrides: Record<string, string>, job: (edge: System) => Promise<void>): Promise<void> {
  process.stdout.write(
    `  starting wrangler dev with ${Object.entries(overrides)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}…`,
  );
  const { stack: other, system } = await startOther(overrides);
  process.stdout.write(" up\n");
  try {
    const [w] = await prepare(system, 1, 1);
    if (w) await confirmOnce(system.url, w.token, w.pi);
    await job(system);
  } finally {
    await other.stop();
  }
}

/** Runs `job` on the Worker in workerd without wrangler dev (bench/bare.ts) with `overrides`, warmed, and stops it after. */
async function onBare(overrides: Record<string, string>, job: (edge: System) => Promise<void>): Promise<void> {
  process.stdout.write(
    `  starting workerd without wrangler dev${
      Object.keys(overrides).length
        ? ` with ${Object.entries(overrides)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}`
        : ""
    }…`,
  );
  const persistTo = mkdtempSync(join(tmpdir(), "bench-state-"));
  states.push(persistTo);
  const bare = await startBare({ port: await freePort(), vars: vars(overrides), persistTo });
  process.stdout.write(" up\n");
  try {
    const system: System = { name: "edge", url: bare.url, cpu: bare.cpu };
    const [w] = await prepare(system, 1, 1);
    if (w) await confirmOnce(system.url, w.token, w.pi);
    await job(system);
  } finally {
    await bare.stop();
  }
}

function contextOn(edge: System, settings: Record<string, string>): CostContext {
  if (!edge.cpu) throw new Error(`no processes found for ${edge.url}`);
  return costContext(emu, paid, { url: edge.url, cpu: edge.cpu }, settings, { floorRequests: quick ? 300 : 600 });
}

/** Browser credits, webhook credits and debits on `edge`, whose settings differ by `settings`. */
async function costRowsOn(edge: System, settings: Record<string, string>, suffix: string): Promise<void> {
  const ctx = contextOn(edge, settings);
  const row = async (name: string, run: () => Promise<CostRow>) => {
    process.stdout.write(`  ${name}${suffix}…`);
    costRows.push(await run());
    process.stdout.write(" done\n");
  };
  await row("browser mark=off", () => browserCredits(ctx, `browser mark=off${suffix}`, creditN, CREDIT_CONCURRENCY));
  await row("webhook", () => webhookCredits(ctx, `webhook${suffix}`, creditN, CREDIT_CONCURRENCY));
  await row("debit", () => debitRow(ctx, `debit${suffix}`, debits, concurrency));
}

/** The rows whose settings differ from the main stack's: logging off, the mark on, the shipped budget. */
async function otherCostRows(): Promise<void> {
  await onOtherStack({ LOG_LEVEL: "off" }, (edge) => costRowsOn(edge, { LOG_LEVEL: "off" }, ", log off"));
  await onOtherStack({ MARK_CREDITED: "true" }, async (edge) => {
    process.stdout.write("  browser mark=on…");
    costRows.push(await browserCredits(contextOn(edge, { MARK_CREDITED: "true" }), "browser mark=on", creditN, CREDIT_CONCURRENCY));
    process.stdout.write(" done\n");
  });
  await onBare({}, (edge) => costRowsOn(edge, { runtime: "workerd without wrangler dev" }, ", no wrangler dev"));
  await onOtherStack({ STRIPE_RATE_LIMIT: "20" }, async (edge) => {
    const n = quick ? 100 : 200;
    process.stdout.write(`  governed burst N=${n}…`);
    const ungoverned = costRows.find((r) => r.name === "browser mark=off");
    burst = await governedBurst(contextOn(edge, { STRIPE_RATE_LIMIT: "20" }), n, 10, 20, ungoverned?.p50_ms ?? null);
    process.stdout.write(" done\n");
  });
}

/**
 * Spread: M different PaymentIntents confirmed at once, with the governor out of the way
 * (STRIPE_RATE_LIMIT 0), under wrangler dev and then in workerd alone, each against the baseline
 * in the same minute.
 */
async function spreadScenarios(): Promise<void> {
  await onOtherStack({ STRIPE_RATE_LIMIT: "0" }, async (edge) => {
    for (const m of quick ? [100] : [100, 1000]) {
      scenarios.push(await scenario(`spread M=${m}`, async (s) => measure(s, await prepare(s, m, 10), true), edge, true));
    }
  });
  // The same without wrangler dev's proxy, DevTools session and log relay (bench/bare.ts).
  await onBare({ STRIPE_RATE_LIMIT: "0" }, async (edge) => {
    const m = quick ? 100 : 1000;
    scenarios.push(await scenario(`spread M=${m}, no wrangler dev`, async (s) => measure(s, await prepare(s, m, 10), true), edge, true));
    scenarios.push(await scenario("floor, GET /healthz, no wrangler dev", floor, edge));
  });
}

async function creditScenarios(): Promise<void> {
  console.log("Running scenarios:");
  for (const n of quick ? [1, 10, 100] : [1, 10, 100, 1000]) {
    scenarios.push(
      await scenario(`race N=${n}`, async (s) => {
        const [job] = await prepare(s, 1, 1);
        return measure(
          s,
          Array.from({ length: n }, () => job as { token: string; pi: string }),
          true,
        );
      }),
    );
  }
  const replayN = quick ? 100 : 1000;
  scenarios.push(
    await scenario(`replay N=${replayN}`, async (s) => {
      const [job] = await prepare(s, 1, 1);
      await confirmOnce(s.url, job?.token ?? "", job?.pi ?? "");
      return measure(
        s,
        Array.from({ length: replayN }, () => job as { token: string; pi: string }),
        false,
      );
    }),
  );
  scenarios.push(await scenario("overhead, first confirm", (s) => overhead(s, true)));
  scenarios.push(await scenario("overhead, replay", (s) => overhead(s, false)));
  scenarios.push(await scenario("floor, GET /healthz", floor));
}

const header = [
  "scenario",
  "n",
  "calls",
  "credits",
  "not 200",
  "p50 ms",
  "p99 ms",
  "max ms",
  "per s",
  "│ base calls",
  "base p50",
  "base p99",
  "base per s",
  "│ p50 ×",
  "per s ×",
  "│ CPU ms/credit wd+proxy+node",
];
const rows = scenarios.map((s) => [
  s.name,
  s.n,
  s.stripe_calls,
  s.credits_after_alarms === s.credits ? s.credits : `${s.credits}→${s.credits_after_alarms}`,
  Object.entries(s.statuses)
    .filter(([k]) => k !== "200")
    .map(([k, v]) => `${v}×${k}`)
    .join(" ") || "",
  s.p50_ms,
  s.p99_ms,
  s.max_ms,
  s.per_s || "",
  `│ ${s.baseline.stripe_calls}`,
  s.baseline.p50_ms,
  s.baseline.p99_ms,
  s.baseline.per_s || "",
  `│ ${s.ratio.p50_ms ?? "-"}`,
  s.ratio.per_s ?? "",
  s.cpu_ms_per_credit ? `│ ${s.cpu_ms_per_credit.runtime}+${s.cpu_ms_per_credit.proxy}+${s.cpu_ms_per_credit.wrangler}` : "│",
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
// A column's "│ " stays at its left edge, its figure right-aligned after it.
const cell = (c: string | number, w: number) => {
  const text = String(c);
  if (text === "│") return text.padEnd(w);
  return text.startsWith("│ ") ? `│ ${text.slice(2).padStart(w - 2)}` : text.padStart(w);
};
const line = (cells: (string | number)[]) => cells.map((c, i) => cell(c, widths[i] ?? 0)).join("  ");
if (scenarios.length > 0) {
  console.log(
    `\nL = ${L} ms per Stripe call. Stripe calls and credits are totals per scenario (a→b: credits when the answers came, then after the objects' alarms); latencies are per confirm.\n`,
  );
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
if (spending) console.log(`\n${spendingReport(spending, L)}`);
if (costRows.length > 0 || burst) console.log(`\n${costReport(costRows, burst)}`);
const file = `bench/results/${only ? `latest-${only}` : "latest"}.json`;
writeFileSync(
  join(projectRoot, file),
  `${JSON.stringify({ latency_ms: L, quick, at: new Date().toISOString(), scenarios, spending, cost: costRows, governed_burst: burst }, null, 2)}\n`,
);
console.log(`\nWritten to ${file}`);
process.exit(0);
