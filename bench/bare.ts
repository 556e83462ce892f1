// The Worker in workerd without `wrangler dev` around it: the bundle `wrangler deploy --dry-run`
// makes (what a deploy uploads), run by Miniflare (the package wrangler dev runs it with) from this
// process, with the bindings wrangler.toml declares. What it leaves out is wrangler dev's own
// layer: its proxy (a second workerd every request passes through), the DevTools session it
// keeps open on the Worker's isolate (every console.log is also sent to it), its file watching
// (which restarts the Worker when a source file changes) and its Node process printing the logs.
// One workerd runs the Worker and its objects, as under wrangler dev.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { projectRoot } from "../scripts/dev-vars.js";
import { StackCpu } from "./cpu.js";

export interface BareWorker {
  url: string;
  cpu: StackCpu;
  stop(): Promise<void>;
}

/** Bundles the Worker as a deploy would, into a new temporary directory; resolves to the script's path. */
async function bundle(): Promise<{ dir: string; script: string }> {
  const dir = mkdtempSync(join(tmpdir(), "bench-bundle-"));
  const wrangler = spawn(process.execPath, [join(projectRoot, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", dir], {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  let output = "";
  for (const s of [wrangler.stdout, wrangler.stderr]) s.on("data", (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => wrangler.once("exit", resolve));
  if (code !== 0) throw new Error(`wrangler deploy --dry-run failed (${code}):\n${output}`);
  return { dir, script: join(dir, "index.js") };
}

/** Starts the Worker on `port` with `vars` over wrangler.toml's, its objects' state under `persistTo`. */
export async function startBare(options: { port: number; vars: Record<string, string>; persistTo: string }): Promise<BareWorker> {
  const { dir, script } = await bundle();
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(projectRoot, "wrangler.toml"));
  // The bundle is one module: the rules for finding others are not needed (nor convertible).
  const { modulesRules: _rules, ...declared } = workerOptions as { bindings?: Record<string, unknown>; modulesRules?: unknown };
  // wrangler describes the Worker in Miniflare's earlier option shape, which Miniflare converts.
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: options.port,
      resourcePersistencePath: options.persistTo,
      // The Worker's log lines are taken and dropped here, as wrangler dev's Node process takes
      // and prints them: workerd writes them either way.
      handleStructuredLogs: () => {},
      // Module paths are relative to the bundle's directory, which is outside the project.
      workers: [{ ...declared, name: "edge-credit", rootPath: dir, modules: true, scriptPath: script, bindings: { ...declared.bindings, ...options.vars } }],
    } as Parameters<typeof convertV4MiniflareOptions>[0]),
  );
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const cpu = StackCpu.listening(process.pid, options.port);
  return {
    url,
    cpu,
    stop: async () => {
      await mf.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
