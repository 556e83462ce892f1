// CPU time of the local stack, read from Linux's /proc: what `wrangler dev` starts under its
// own process (a Node process that relays logs, one workerd that is its proxy on the public port,
// one workerd that runs the Worker and every Durable Object), each process's user + system time
// (utime + stime, in clock ticks of `getconf CLK_TCK`). The benchmark samples it before and
// after a scenario and divides by what the scenario did; the emulator and the load generator run
// in the benchmark's own process and are not counted.
//
// CPU time is the figure that moves least on a shared machine: wall times grow when another job
// takes a core, CPU time much less. Ticks are 10 ms on Linux, so a row needs hundreds of
// requests for its per-request figure to be read to a tenth of a millisecond.

import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

/** Milliseconds per clock tick. */
const MS_PER_TICK = (() => {
  try {
    return 1000 / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  } catch {
    return 10;
  }
})();

/** Cumulative CPU milliseconds of the stack's processes. */
export interface CpuSample {
  /** The workerd that runs the Worker and its objects: the service's own CPU. */
  runtime: number;
  /** The workerd of wrangler dev's proxy, which every request passes through locally. */
  proxy: number;
  /** wrangler dev's Node processes (they print the Worker's log lines). */
  wrangler: number;
}

interface Proc {
  pid: number;
  comm: string;
  ppid: number;
}

function readProc(pid: number): (Proc & { ticks: number }) | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may hold spaces: the fields follow the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 3 (state) onwards: ppid is field 4, utime 14, stime 15.
    return {
      pid,
      comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      ppid: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
    };
  } catch {
    return null;
  }
}

function allProcs(): Proc[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is Proc & { ticks: number } => p !== null);
}

/** TCP ports `pid` listens on (its socket inodes matched against its network namespace's table). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // State 0A is LISTEN.
      if (cols[3] === "0A" && inodes.has(cols[9] ?? "")) ports.push(parseInt(cols[1]?.split(":")[1] ?? "0", 16));
    }
  }
  return ports;
}

/** The processes of one `wrangler dev` and their CPU time. */
export class StackCpu {
  runtimePid: number;
  proxyPid: number | null;
  wranglerPids: number[];
  /**
   * How often the Worker's workerd was found replaced: wrangler dev restarts it when a source
   * file changes, and the new process's counters start at zero, so a row across a restart
   * cannot be read.
   */
  restarts = 0;
  readonly #find: () => { runtime: number; proxy: number | null; wrangler: number[] };

  private constructor(find: () => { runtime: number; proxy: number | null; wrangler: number[] }) {
    this.#find = find;
    const { runtime, proxy, wrangler } = find();
    this.runtimePid = runtime;
    this.proxyPid = proxy;
    this.wranglerPids = wrangler;
  }

  /**
   * Finds the processes under `rootPid` (the `wrangler dev` process the stack spawned). The
   * proxy is the workerd that listens on `publicPort`; the other workerd runs the Worker. With
   * no proxy (one workerd, as Miniflare alone starts), that one is the runtime.
   */
  static find(rootPid: number, publicPort: number): StackCpu {
    return new StackCpu(() => StackCpu.#processes(rootPid, publicPort));
  }

  /** The one workerd under `rootPid` that listens on `port` (Miniflare run from this process: no proxy, no wrangler). */
  static listening(rootPid: number, port: number): StackCpu {
    return new StackCpu(() => {
      const runtime = StackCpu.#tree(rootPid).find((p) => p.comm === "workerd" && listeningPorts(p.pid).includes(port));
      if (!runtime) throw new Error(`no workerd under process ${rootPid} listens on ${port}`);
      return { runtime: runtime.pid, proxy: null, wrangler: [] };
    });
  }

  static #tree(rootPid: number): Proc[] {
    const procs = allProcs();
    const tree: Proc[] = [];
    const walk = (pid: number) => {
      for (const p of procs.filter((q) => q.ppid === pid)) {
        tree.push(p);
        walk(p.pid);
      }
    };
    const root = procs.find((p) => p.pid === rootPid);
    if (root) tree.push(root);
    walk(rootPid);
    return tree;
  }

  static #processes(rootPid: number, publicPort: number): { runtime: number; proxy: number | null; wrangler: number[] } {
    const tree = StackCpu.#tree(rootPid);
    const workerds = tree.filter((p) => p.comm === "workerd");
    const proxy = workerds.length > 1 ? workerds.find((p) => listeningPorts(p.pid).includes(publicPort)) : undefined;
    const runtime = workerds.find((p) => p !== proxy);
    if (!runtime) throw new Error(`no workerd under process ${rootPid}`);
    return { runtime: runtime.pid, proxy: proxy?.pid ?? null, wrangler: tree.filter((p) => p.comm === "node").map((p) => p.pid) };
  }

  /** Cumulative CPU milliseconds now (after a restart of the Worker's workerd, the new one's). */
  sample(): CpuSample {
    if (readProc(this.runtimePid) === null) {
      const { runtime, proxy, wrangler } = this.#find();
      this.runtimePid = runtime;
      this.proxyPid = proxy;
      this.wranglerPids = wrangler;
      this.restarts++;
    }
    const ms = (pid: number | null) => (pid === null ? 0 : (readProc(pid)?.ticks ?? 0) * MS_PER_TICK);
    return {
      runtime: ms(this.runtimePid),
      proxy: ms(this.proxyPid),
      wrangler: this.wranglerPids.reduce((sum, pid) => sum + ms(pid), 0),
    };
  }

  /**
   * Waits until the runtime is idle: work that outlives the answers (alarms, reports to the
   * account object, log lines still being relayed) belongs to the scenario that caused it.
   * Idle: no tick over `quietMs` on any process; gives up after `maxMs`.
   */
  async settle(quietMs = 300, maxMs = 30_000): Promise<void> {
    const total = (s: CpuSample) => s.runtime + s.proxy + s.wrangler;
    const deadline = Date.now() + maxMs;
    let last = total(this.sample());
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, quietMs));
      const now = total(this.sample());
      if (now === last) return;
      last = now;
    }
  }
}

/** `after − before`, per process. */
export function cpuSpent(before: CpuSample, after: CpuSample): CpuSample {
  return { runtime: after.runtime - before.runtime, proxy: after.proxy - before.proxy, wrangler: after.wrangler - before.wrangler };
}
