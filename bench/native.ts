// `npm run profile:native`: where workerd's own CPU goes per
// credit and per debit, beyond JavaScript. bench/profile.ts samples only JavaScript, about a
// fifth of what workerd spends; this samples the whole process with Linux `perf` (the workerd
// binary ships its symbols) while the Worker runs without `wrangler dev` (bench/bare.ts), and
// puts each sample in the first of these groups its call stack passes through:
//   new object          creating a Durable Object: its SQLite file, its schema version
//   SQL prepare         parsing SQL and schemas (each new object prepares every statement once)
//   SQL commit          writing the WAL and fsync at the end of each storage turn
//   SQL statements      running statements (`sql.exec`, `transactionSync`)
//   alarms              setAlarm / deleteAlarm (kept in the namespace's own SQLite locally)
//   garbage collection
//   HTTP                the request in, Miniflare's entry hop, and fetch() to Stripe
//   object RPC          calling another object: serialising, dispatching, and that object's
//                       JavaScript (the call runs inside it)
//   other               the Worker's JavaScript and V8, the event loop, the kernel's share
// Needs `perf` (Debian: linux-perf) and perf_event_paranoid ≤ 2; without them it says so.
//   --credits N   top-ups confirmed by their browsers (default 300)
//   --debits D    debits on one account (default 1500)

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startEmulator } from "../test/emulator/server.js";
import { freePort } from "../scripts/stack.js";
import { startBare } from "./bare.js";
import { browserCredits, costContext, debits, type CostRow } from "./cost.js";
import { benchVars, JWT_SECRET, WEBHOOK_SECRET } from "./settings.js";
import { topUps } from "./top-ups.js";

const { values } = parseArgs({
  options: { credits: { type: "string", default: "300" }, debits: { type: "string", default: "1500" } },
  allowPositionals: true,
});

/** Groups in order: a sample goes to the first whose frames its stack contains. */
const GROUPS: [string, string[]][] = [
  ["new object (its SQLite file)", ["worker_new_actor"]],
  ["SQL prepare (statements, schema)", ["sqlite3Prepare", "sqlite3LockAndPrepare"]],
  ["SQL commit (WAL, fsync)", ["vdbeCommit", "sqlite3VdbeHalt", "pagerWalFrames", "fsync"]],
  ["SQL statements", ["SqlStorage::exec", "sqlite3_step", "transactionSync", "SqlStorage::Cursor"]],
  ["alarms", ["setAlarm", "deleteAlarm", "getAlarm"]],
  ["garbage collection", ["CollectGarbage", "MinorGC", "cppgc"]],
  ["HTTP (in, entry hop, fetch)", ["Fetcher::fetch", "fetchImpl", "HttpClient", "HttpServer", "HttpInputStream", "HttpOutputStream"]],
  ["object RPC (and the callee's JS)", ["JsRpc", "capnp::", "ValueSerializer", "ValueDeserializer"]],
];
const OTHER = "other (JS, V8, event loop, kernel)";

function hasPerf(): boolean {
  try {
    execFileSync("perf", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Share of samples per group, from `perf script`'s stacks (one frame per line, a blank line between samples). */
function groups(dataFile: string): { samples: number; shares: Record<string, number> } {
  const text = execFileSync("perf", ["script", "-i", dataFile, "-F", "ip,sym"], { encoding: "utf8", maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "ignore"] });
  const counts = new Map<string, number>();
  let samples = 0;
  for (const stack of text.split(/\n\s*\n/)) {
    if (!stack.trim()) continue;
    samples++;
    const group = GROUPS.find(([, marks]) => marks.some((m) => stack.includes(m)))?.[0] ?? OTHER;
    counts.set(group, (counts.get(group) ?? 0) + 1);
  }
  const shares: Record<string, number> = {};
  for (const [g, n] of [...counts].sort((a, b) => b[1] - a[1])) shares[g] = Math.round((n / samples) * 1000) / 10;
  return { samples, shares };
}

if (!hasPerf()) {
  console.log("bench/native.ts needs Linux perf (Debian: apt install linux-perf); not found, nothing measured.");
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), "bench-native-"));
const emulatorPort = await freePort();
// Off as in bench/run.ts: the emulator's spec check would take CPU from the process measured beside it.
const running = await startEmulator(emulatorPort, { latencyMs: 0, webhookSecret: WEBHOOK_SECRET, specCheck: false });
const emu = running.emulator;
emu.options.webhookUrl = null;
emu.reconfigure();
const bare = await startBare({ port: await freePort(), vars: benchVars(emulatorPort, 60), persistTo: join(dir, "state") });
const paid = topUps(emu, JWT_SECRET);
let recording: ChildProcess | null = null;
let file = "";
const ctx = costContext(
  emu,
  paid,
  bare,
  { runtime: "workerd without wrangler dev" },
  {
    profiler: {
      start: async () => {
        recording = spawn("perf", ["record", "-F", "999", "-g", "-p", String(bare.cpu.runtimePid), "-o", file], { stdio: "ignore" });
        await new Promise((r) => setTimeout(r, 300));
      },
      stop: async () => {
        const done = new Promise((r) => recording?.once("exit", r));
        recording?.kill("SIGINT");
        await done;
      },
    },
  },
);
try {
  // Warm: module load, the first objects, the JIT, outside the samples.
  await browserCredits({ ...ctx, profiler: undefined }, "warm", 20, 10);
  const rows: [string, () => Promise<CostRow>][] = [
    [`browser credits (${values.credits}, 10 at a time)`, () => browserCredits(ctx, "browser", Number(values.credits), 10)],
    [`debits (${values.debits}, 16 at a time)`, () => debits(ctx, "debit", Number(values.debits), 16)],
  ];
  for (const [name, run] of rows) {
    file = join(dir, `${name.split(" ")[0]}.data`);
    const row = await run();
    const { samples, shares } = groups(file);
    const net = row.cpu_ms_per_credit ?? row.cpu_ms_per_debit;
    console.log(`\n${name}: workerd ${row.cpu_ms_gross} ms of CPU each (floor ${row.cpu_ms_floor}, net ${net}; /proc, under perf); ${samples} samples`);
    for (const [g, share] of Object.entries(shares)) console.log(`  ${String(share).padStart(5)} %  ${g}  ≈ ${Math.round(row.cpu_ms_gross * share) / 100} ms`);
  }
} finally {
  await bare.stop();
  await running.close();
  rmSync(dir, { recursive: true, force: true });
}
