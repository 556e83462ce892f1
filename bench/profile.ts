// `npm run profile`: where the Worker's CPU goes, per credit and per debit. Starts the
// emulator and `wrangler dev` as the benchmark does (bench/settings.ts), attaches to the inspector
// of the workerd that runs the Worker and its objects (Chrome DevTools Protocol over a WebSocket)
// and takes one sampling CPU profile per scenario:
//   browser credits   N paid top-ups confirmed by POST /billing/confirm_payment, 10 at a time
//   webhook credits   N paid top-ups credited by their payment_intent.succeeded deliveries
//   debits            D debits on one account, 16 at a time
// Each profile's samples are mapped through the bundle's source map to the original file, then
// summed as self time by function and file, and by package (the stripe SDK, hono, zod, jose,
// our src/… by folder, wrangler's dev shims, and the runtime: V8 builtins, native code, GC).
// Prints the top entries, writes bench/results/profile.json, and with --save DIR the raw
// .cpuprofile files (DevTools opens them).
//   --credits N   top-ups per credit scenario (default 200)
//   --debits D    debits (default 1000)
//   --top K       entries per table (default 15)
//   --interval U  sampling interval in µs (default 500)
//   --var NAME:value   a Worker setting (repeatable), e.g. --var LOG_LEVEL:off
//   --save DIR    also write the .cpuprofile files there
// CPU time under the profiler is higher than without it; read the shares, not the totals.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { SourceMap, type SourceMapPayload } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { projectRoot } from "../scripts/dev-vars.js";
import { freePort, startStack } from "../scripts/stack.js";
import { browserCredits, costContext, debits, webhookCredits, type CostContext, type CostRow } from "./cost.js";
import { StackCpu } from "./cpu.js";
import { benchVars, JWT_SECRET, WEBHOOK_SECRET } from "./settings.js";
import { topUps } from "./top-ups.js";

const { values } = parseArgs({
  options: {
    credits: { type: "string", default: "200" },
    debits: { type: "string", default: "1000" },
    top: { type: "string", default: "15" },
    interval: { type: "string", default: "500" },
    var: { type: "string", multiple: true, default: [] },
    save: { type: "string" },
  },
});
const CREDITS = Number(values.credits);
const DEBITS = Number(values.debits);
const TOP = Number(values.top);
const overrides = Object.fromEntries(
  values.var.map((v) => {
    const at = v.indexOf(":");
    if (at < 1) throw new Error(`--var takes NAME:value, not ${v}`);
    return [v.slice(0, at), v.slice(at + 1)];
  }),
);

// ---- The DevTools protocol, as much as a profile needs --------------------------------------

interface CallFrame {
  functionName: string;
  scriptId: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

class Inspector {
  #seq = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly scripts = new Map<string, { url: string; sourceMapURL: string }>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener("message", (e: MessageEvent) => {
      const msg = JSON.parse(String(e.data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: unknown };
      if (msg.id !== undefined) {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result);
      } else if (msg.method === "Debugger.scriptParsed") {
        const s = msg.params as { scriptId: string; url: string; sourceMapURL?: string };
        this.scripts.set(s.scriptId, { url: s.url, sourceMapURL: s.sourceMapURL ?? "" });
      }
    });
  }

  static async connect(url: string): Promise<Inspector> {
    // wrangler dev's inspector proxy admits a local Origin only; Node's WebSocket (undici) sends
    // none unless told, and takes headers as an extension of the standard constructor.
    const NodeWebSocket = WebSocket as unknown as new (url: string, init: { headers: Record<string, string> }) => WebSocket;
    const ws = new NodeWebSocket(url, { headers: { origin: "http://127.0.0.1" } });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
    return new Inspector(ws);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#seq;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise<T>((resolve, reject) => this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }

  close(): void {
    this.ws.close();
  }
}

// ---- From a bundle position to the original file --------------------------------------------

/** Source maps by script URL (the bundle wrangler wrote), read once. */
const maps = new Map<string, SourceMap | null>();

function sourceMapOf(scriptUrl: string, sourceMapURL: string): SourceMap | null {
  const cached = maps.get(scriptUrl);
  if (cached !== undefined) return cached;
  let map: SourceMap | null = null;
  try {
    const file = scriptUrl.startsWith("file://") ? fileURLToPath(scriptUrl) : scriptUrl;
    const candidates = [
      sourceMapURL.startsWith("data:") ? null : sourceMapURL && !sourceMapURL.includes("://") ? join(dirname(file), sourceMapURL) : null,
      `${file}.map`,
    ].filter((x): x is string => x !== null);
    if (sourceMapURL.startsWith("data:")) {
      const b64 = sourceMapURL.slice(sourceMapURL.indexOf(",") + 1);
      map = new SourceMap(JSON.parse(Buffer.from(b64, "base64").toString("utf8")) as SourceMapPayload);
    } else {
      const path = candidates.find((c) => existsSync(c));
      if (path) map = new SourceMap(JSON.parse(readFileSync(path, "utf8")) as SourceMapPayload);
    }
  } catch {
    map = null;
  }
  maps.set(scriptUrl, map);
  return map;
}

/** Where a function is from: its original file (relative to the project) and line, when the bundle's source map knows. */
function originOf(frame: CallFrame, inspector: Inspector): { file: string; line: number } {
  const script = inspector.scripts.get(frame.scriptId);
  const url = script?.url ?? frame.url;
  if (!url) return { file: "", line: 0 };
  const map = sourceMapOf(url, script?.sourceMapURL ?? "");
  if (map) {
    const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as { originalSource?: string; originalLine?: number };
    if (entry.originalSource) {
      const source = entry.originalSource.startsWith("file://") ? fileURLToPath(entry.originalSource) : entry.originalSource;
      const abs = source.startsWith("/") ? source : join(dirname(url.startsWith("file://") ? fileURLToPath(url) : url), source);
      const rel = relative(projectRoot, abs);
      // A dependency is named from its node_modules on, wherever the bundle found it.
      const nm = rel.lastIndexOf("node_modules/");
      return { file: nm >= 0 ? rel.slice(nm) : rel, line: (entry.originalLine ?? 0) + 1 };
    }
  }
  return { file: url.startsWith("file://") ? relative(projectRoot, fileURLToPath(url)) : url, line: frame.lineNumber + 1 };
}

/** Native functions of the runtime that are the Durable Object's storage. */
const STORAGE = new Set(["exec", "toArray", "one", "raw", "transactionSync", "setAlarm", "getAlarm", "deleteAlarm"]);

/**
 * The package a sample belongs to, as the summary groups them. `outside` marks a sample with no
 * JavaScript on the stack: the runtime's own work on the isolate's thread (I/O, commits, RPC
 * plumbing), which wall-clock sampling also charges with time the thread was not on a CPU.
 */
function packageOf(file: string, functionName: string, outside: boolean): string {
  if (outside) return "runtime: outside JavaScript";
  if (functionName === "(garbage collector)") return "runtime: garbage collector";
  if (functionName === "(program)") return "runtime: V8 (program)";
  if (file === "") return STORAGE.has(functionName) ? "runtime: storage (SQLite)" : "runtime: builtins (fetch, Response, JSON, crypto, console…)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  if (nm?.[1]) {
    const name = nm[1];
    if (name === "stripe") return "stripe SDK";
    if (name === "wrangler" || name === "miniflare" || name.startsWith("@cloudflare")) return "wrangler dev shims";
    return name;
  }
  const ours = /^src\/(?:([^/]+)\/)?/.exec(file);
  if (ours) return ours[1] ? `our src/${ours[1]}/` : "our src/*.ts";
  if (file.includes(".wrangler/") || file.startsWith("node:") || file.includes("cloudflare-internal")) return "wrangler dev shims";
  return `other: ${file}`;
}

interface Entry {
  name: string;
  ms: number;
  share: number;
}

interface Summary {
  scenario: string;
  /** Samples in JavaScript or in a call the runtime made from it (idle excluded), times the interval. */
  busy_ms: number;
  idle_ms: number;
  samples: number;
  units: number;
  /** busy_ms per credit (or debit). */
  per_unit_ms: number;
  /** The Worker's workerd CPU per unit from /proc over the same row (under the profiler). */
  cpu_ms_per_unit: number;
  by_function: Entry[];
  by_package: Entry[];
  /** Our functions by total time (their own and what they call): what a change to them could save. */
  ours_inclusive: Entry[];
}

/**
 * Sums the profile's samples. Each counts as one interval: workerd's V8 is sampled only while the
 * isolate is entered, so a gap between samples is time spent elsewhere (the runtime's own C++:
 * HTTP, RPC between objects, outbound fetch, the event loop), not time in the sampled frame.
 */
function summarise(name: string, profile: Profile, inspector: Inspector, row: CostRow, intervalUs: number): Summary {
  const units = row.done;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const origin = new Map<number, { file: string; line: number }>();
  const originOfNode = (id: number) => {
    let o = origin.get(id);
    if (!o) {
      o = originOf((byId.get(id) as ProfileNode).callFrame, inspector);
      origin.set(id, o);
    }
    return o;
  };
  const rootId = profile.nodes.find((n) => n.callFrame.functionName === "(root)")?.id;
  const self = new Map<number, number>();
  for (const id of profile.samples) self.set(id, (self.get(id) ?? 0) + intervalUs);
  let idle = 0;
  let busy = 0;
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id) as ProfileNode;
    const f = node.callFrame.functionName;
    if (f === "(idle)") {
      idle += us;
      continue;
    }
    busy += us;
    const o = originOfNode(id);
    const outside = f === "" && o.file === "" && parent.get(id) === rootId;
    const key = outside ? "(outside JavaScript)" : `${f || "(anonymous)"}  ${o.file ? `${o.file}:${o.line}` : "(native)"}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    const p = packageOf(o.file, f, outside);
    pkg.set(p, (pkg.get(p) ?? 0) + us);
    // Inclusive time of our own functions: each of our frames on this sample's stack, once.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at) as ProfileNode;
      const oo = originOfNode(at);
      if (!oo.file.startsWith("src/")) continue;
      const k = `${n.callFrame.functionName || "(anonymous)"}  ${oo.file}:${oo.line}`;
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const top = (m: Map<string, number>, k: number): Entry[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([n, us]) => ({ name: n, ms: Math.round(us / 100) / 10, share: Math.round((us / busy) * 1000) / 10 }));
  return {
    scenario: name,
    busy_ms: Math.round(busy / 1000),
    idle_ms: Math.round(idle / 1000),
    samples: profile.samples.length,
    units,
    per_unit_ms: units === 0 ? 0 : Math.round((busy / 1000 / units) * 100) / 100,
    cpu_ms_per_unit: row.cpu_ms_gross,
    by_function: top(fn, TOP),
    by_package: top(pkg, 100),
    ours_inclusive: top(inclusive, TOP),
  };
}

function print(s: Summary): void {
  const table = (title: string, entries: Entry[]) => {
    console.log(`\n  ${title}`);
    const w = Math.max(...entries.map((e) => e.name.length));
    for (const e of entries) console.log(`    ${e.name.padEnd(w)}  ${String(e.ms).padStart(8)} ms  ${String(e.share).padStart(5)} %`);
  };
  console.log(
    `\n${s.scenario}: ${s.units} done. In JavaScript (sampled, idle left out): ${s.busy_ms} ms, ${s.per_unit_ms} ms each (${s.samples} samples);` +
      ` the Worker's workerd used ${s.cpu_ms_per_unit} ms of CPU each over the row (/proc, under the profiler), so ${s.cpu_ms_per_unit === 0 ? "-" : Math.round((s.per_unit_ms / s.cpu_ms_per_unit) * 100)} % of it ran in JavaScript.`,
  );
  table("Self time by package", s.by_package);
  table(`Self time by function (top ${TOP})`, s.by_function);
  table(`Our functions, total time including what they call (top ${TOP})`, s.ours_inclusive);
}

// ---- The run --------------------------------------------------------------------------------

const state = mkdtempSync(join(tmpdir(), "bench-profile-"));
const emulatorPort = await freePort();
const workerPort = await freePort();
// The Worker's workerd has an inspector of its own, but wrangler dev holds its one session and
// relays it on this port.
const inspectorPort = await freePort();
console.log(`Starting the emulator and wrangler dev${Object.keys(overrides).length ? ` (${values.var.join(" ")})` : ""}…`);
const stack = await startStack({
  workerPort,
  emulatorPort,
  latencyMs: 0,
  // The benchmark measures the service: the emulator's check against Stripe's spec (on in tests
  // and npm start) would take CPU from the same two cores, so it is off here.
  specCheck: false,
  webhookSecret: WEBHOOK_SECRET,
  vars: benchVars(emulatorPort, 60, overrides),
  persistTo: state,
  extraArgs: ["--inspector-port", String(inspectorPort)],
});
let exitCode = 0;
try {
  const emu = (stack.emulator as NonNullable<typeof stack.emulator>).emulator;
  emu.options.webhookUrl = null;
  emu.reconfigure();
  const cpu = StackCpu.find(stack.wrangler.pid ?? -1, workerPort);
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string }[];
  const target = targets[0];
  if (!target) throw new Error("wrangler dev lists no inspector target");
  const inspector = await Inspector.connect(target.webSocketDebuggerUrl);
  // wrangler's proxy turns the Runtime domain on for a DevTools session, which makes every
  // console.log a message to this session as well as a line on stdout: off, so that logging
  // costs what it costs without a profiler.
  await inspector.send("Runtime.disable");
  // The Debugger reports each script's URL and source map once enabled; it is off again before
  // anything is measured.
  await inspector.send("Debugger.enable");
  await new Promise((r) => setTimeout(r, 500));
  await inspector.send("Debugger.disable");
  await inspector.send("Profiler.enable");
  await inspector.send("Profiler.setSamplingInterval", { interval: Number(values.interval) });

  const ctx = costContext(emu, topUps(emu, JWT_SECRET), { url: stack.workerUrl, cpu }, overrides);
  // Warm: module load, the first objects, the JIT, outside the profiles.
  await browserCredits(ctx, "warm", 20, 10);
  await debits(ctx, "warm", 100, 16);

  const summaries: Summary[] = [];
  const scenarios: [string, (c: CostContext) => Promise<CostRow>][] = [
    [`browser credits (${CREDITS}, 10 at a time)`, (c) => browserCredits(c, "browser", CREDITS, 10)],
    [`webhook credits (${CREDITS}, 10 at a time)`, (c) => webhookCredits(c, "webhook", CREDITS, 10)],
    [`debits (${DEBITS}, 16 at a time)`, (c) => debits(c, "debit", DEBITS, 16)],
  ];
  for (const [name, run] of scenarios) {
    process.stdout.write(`  ${name}…`);
    // The row measures its floor and prepares its top-ups first: the profile covers its own part.
    let profile: Profile | null = null;
    const profiled: CostContext = {
      ...ctx,
      profiler: {
        start: () => inspector.send("Profiler.start"),
        stop: async () => {
          profile = (await inspector.send<{ profile: Profile }>("Profiler.stop")).profile;
        },
      },
    };
    const row = await run(profiled);
    process.stdout.write(" done\n");
    if (profile === null) throw new Error(`${name}: no profile`);
    const summary = summarise(name, profile, inspector, row, Number(values.interval));
    summaries.push(summary);
    print(summary);
    if (values.save) {
      mkdirSync(values.save, { recursive: true });
      writeFileSync(join(values.save, `${row.name}.cpuprofile`), JSON.stringify(profile));
    }
  }
  inspector.close();
  const file = join(projectRoot, "bench/results/profile.json");
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), settings: overrides, interval_us: Number(values.interval), summaries }, null, 2)}\n`);
  console.log(`\nWritten to ${relative(projectRoot, file)}`);
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  await stack.stop();
  rmSync(state, { recursive: true, force: true });
}
process.exit(exitCode);
