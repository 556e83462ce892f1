// `npm run bench`: Stripe calls and latency per confirm under contention, this service side by
// side with the design it replaces (bench/baseline.ts), against one emulator with a fixed
// latency L per Stripe call; then spending through the seller's API (bench/spend.ts). Prints
// the tables and writes bench/results/latest.json (latest-credits.json or latest-debits.json
// for a run of one part).
//   --latency L          ms added to every Stripe call (default 50)
//   --quick              smaller N and M, and fewer debits, for a fast look
//   --only credits|debits   run one part
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
import { SignJWT } from "jose";
import { projectRoot } from "../scripts/dev-vars.js";
import { freePort, startStack } from "../scripts/stack.js";
import type { Emulator } from "../test/emulator/emulator.js";
import { createCustomer } from "../test/emulator/customers.js";
import { createPaymentIntent, succeed } from "../test/emulator/payment-intents.js";
import { TOP_UP_MARKER } from "../src/credit/top-up.js";
import { runSpending, spendingReport, type SpendResults } from "./spend.js";

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
if (only !== undefined && only !== "credits" && only !== "debits") throw new Error(`--only takes credits or debits, not ${only}`);
const debits = Number(values.debits ?? (quick ? 300 : 1000));
const concurrency = Number(values.concurrency);
const syncSeconds = Number(values["sync-seconds"]);
const SECRET = "bench-secret-bench-secret-bench-secret-01";
const KEY = "sk_test_bench";
const SERVICE_TOKEN = "bench-service-token";

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
  baseline: Figures;
  ratio: { stripe_calls: number | null; p50_ms: number | null; p99_ms: number | null; per_s: number | null };
}

interface System {
  name: "edge" | "baseline";
  url: string;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0);
};
const round = (x: number) => Math.round(x * 10) / 10;

async function token(account: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(account).setIssuedAt().setExpirationTime("2h").sign(new TextEncoder().encode(SECRET));
}

// ---------------------------------------------------------------------------------------------

const state = mkdtempSync(join(tmpdir(), "bench-state-"));
const emulatorPort = await freePort();
console.log(`Starting the emulator (latency ${L} ms) and wrangler dev…`);
const stack = await startStack({
  workerPort: await freePort(),
  emulatorPort,
  latencyMs: L,
  webhookSecret: "whsec_bench",
  persistTo: state,
  vars: {
    STRIPE_SECRET_KEY: KEY,
    STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}`,
    STRIPE_WEBHOOK_SECRET: "whsec_bench",
    AUTH_JWT_SECRET: SECRET,
    DEMO_MODE: "false",
    // The baseline has no protections; these measure the credit protocol, so the request limits
    // and the per-object queue bound are out of the way. The governor stays in the path (every
    // Stripe call still asks it for a permit) with a budget the emulator never reaches.
    STRIPE_RATE_LIMIT: "100000",
    CONFIRM_LIMIT_PER_MINUTE: "0",
    CONFIRM_IP_LIMIT_PER_MINUTE: "0",
    OBJECT_QUEUE_LIMIT: "100000",
    // Spending: the seller's token, top-ups for a hundred accounts from one address, and the
    // sync window the debit rows are measured inside (see bench/spend.ts).
    SERVICE_TOKEN,
    TOPUP_LIMIT_PER_MINUTE: "0",
    TOPUP_IP_LIMIT_PER_MINUTE: "0",
    STRIPE_SYNC_SECONDS: String(syncSeconds),
  },
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
  { name: "edge", url: stack.workerUrl },
  { name: "baseline", url: `http://127.0.0.1:${baselinePort}` },
];

let accountSeq = 0;
/** `count` succeeded PaymentIntents over accounts of `perAccount` each; this service's accounts know their customer (as after a first top-up). */
async function prepare(system: System, count: number, perAccount: number, amount = 1000): Promise<{ token: string; pi: string; customer: string }[]> {
  const out: { token: string; pi: string; customer: string }[] = [];
  for (let i = 0; i < count; i += perAccount) {
    const account = `bench_${system.name}_${++accountSeq}`;
    const customer = createCustomer(emu.store, { metadata: { account_id: account } }, false);
    const t = await token(account);
    if (system.name === "edge") {
      const res = await fetch(`${system.url}/billing/balance`, { headers: { authorization: `Bearer ${t}` } });
      if (!res.ok) throw new Error(`warming account ${account}: ${res.status}`);
    }
    for (let j = 0; j < perAccount && i + j < count; j++) {
      // A top-up as POST /billing/top_ups makes it: only those are credited.
      const pi = createPaymentIntent(emu.store, { amount, currency: "usd", customer: customer.id, metadata: { account_id: account, ...TOP_UP_MARKER } }, false);
      pi.payment_method = "pm_card_visa";
      succeed(emu.store, emu.webhooks, pi, { id: null, idempotency_key: null });
      out.push({ token: t, pi: pi.id, customer: customer.id });
    }
  }
  return out;
}

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

function creditsFor(e: Emulator, pis: Set<string>): number {
  let n = 0;
  for (const txs of e.store.balanceTransactions.values()) for (const tx of txs) if (pis.has(tx.metadata.payment_intent ?? "") && !tx.metadata.operation) n++;
  return n;
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
  const credits = countCredits ? creditsFor(emu, pis) : 0;
  let after = credits;
  // Callers told 503 were promised that the credit finishes on its own: wait for it (bounded).
  for (let waited = 0; countCredits && after < pis.size && waited < 120_000; waited += 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    after = creditsFor(emu, pis);
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
    credits: first ? creditsFor(emu, new Set(prepared.map((p) => p.pi))) : 0,
    statuses: {},
    credits_after_alarms: first ? creditsFor(emu, new Set(prepared.map((p) => p.pi))) : 0,
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

async function scenario(name: string, run: (s: System) => Promise<Figures>): Promise<Scenario> {
  process.stdout.write(`  ${name}…`);
  const ours = await run(systems[0] as System);
  const base = await run(systems[1] as System);
  process.stdout.write(" done\n");
  return {
    name,
    ...ours,
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
try {
  // Warm both systems (module load, first object) outside the figures.
  for (const s of systems) {
    const [w] = await prepare(s, 1, 1);
    if (w) await confirmOnce(s.url, w.token, w.pi);
  }
  if (only !== "debits") await creditScenarios();
  if (only !== "credits") {
    console.log("Spending:");
    spending = await runSpending({
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
    });
  }
} finally {
  baselineProc.kill("SIGTERM");
  await stack.stop();
  rmSync(state, { recursive: true, force: true });
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
  const replayN = quick ? 200 : 1000;
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
  for (const m of quick ? [100] : [100, 1000]) {
    scenarios.push(await scenario(`spread M=${m}`, async (s) => measure(s, await prepare(s, m, 10), true)));
  }
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
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells: (string | number)[]) => cells.map((c, i) => String(c).padStart(widths[i] ?? 0)).join("  ");
if (scenarios.length > 0) {
  console.log(
    `\nL = ${L} ms per Stripe call. Stripe calls and credits are totals per scenario (a→b: credits when the answers came, then after the objects' alarms); latencies are per confirm.\n`,
  );
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
if (spending) console.log(`\n${spendingReport(spending, L)}`);
const file = `bench/results/${only ? `latest-${only}` : "latest"}.json`;
writeFileSync(join(projectRoot, file), `${JSON.stringify({ latency_ms: L, quick, at: new Date().toISOString(), scenarios, spending }, null, 2)}\n`);
console.log(`\nWritten to ${file}`);
process.exit(0);
