// The local stack: the Stripe emulator and `wrangler dev`, wired to each other (the Worker calls
// the emulator; the emulator delivers signed webhooks to the Worker). Used by `npm start`, the
// browser test and the benchmark, so all three run the same thing.

import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { startEmulator, STRIPE_JS_PATH, type RunningEmulator } from "../test/emulator/server.js";
import { projectRoot } from "./dev-vars.js";

export interface StackOptions {
  workerPort: number;
  /** 0: no emulator (the Worker talks to whatever STRIPE_API_BASE says). */
  emulatorPort: number | null;
  latencyMs?: number;
  /** The emulator checks requests and answers against Stripe's OpenAPI spec (default on; the benchmark turns it off). */
  specCheck?: boolean;
  /**
   * Passed to `wrangler dev` as `--var NAME:value`, over .dev.vars. With the emulator running,
   * STRIPE_JS_URL defaults to its Stripe.js stand-in: Stripe's own Stripe.js cannot pay a
   * PaymentIntent that only the emulator knows.
   */
  vars?: Record<string, string>;
  /** Where wrangler keeps local object state (default .wrangler/state). */
  persistTo?: string;
  webhookSecret: string;
  extraArgs?: string[];
  /** Receives every log line of both processes, prefixed. */
  log?: (line: string) => void;
}

export interface RunningStack {
  workerUrl: string;
  emulator: RunningEmulator | null;
  wrangler: ChildProcess;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Starts the emulator (unless `emulatorPort` is null) and `wrangler dev`; resolves once /healthz answers. */
export async function startStack(options: StackOptions): Promise<RunningStack> {
  const log = options.log ?? (() => {});
  const workerUrl = `http://127.0.0.1:${options.workerPort}`;
  const emulator =
    options.emulatorPort === null
      ? null
      : await startEmulator(options.emulatorPort, {
          latencyMs: options.latencyMs ?? 0,
          webhookUrl: `${workerUrl}/stripe/webhook`,
          webhookSecret: options.webhookSecret,
          specCheck: options.specCheck ?? true,
          log: (line) => log(`[stripe] ${line}`),
        });
  const standIn = emulator ? { STRIPE_JS_URL: `${emulator.url}${STRIPE_JS_PATH}` } : {};
  const vars = Object.entries({ ...standIn, ...options.vars }).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const args = [
    `${projectRoot}node_modules/wrangler/bin/wrangler.js`,
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(options.workerPort),
    "--show-interactive-dev-session=false",
    ...(options.persistTo ? ["--persist-to", options.persistTo] : []),
    ...vars,
    ...(options.extraArgs ?? []),
  ];
  const wrangler = spawn(process.execPath, args, {
    cwd: projectRoot,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
  });
  for (const stream of [wrangler.stdout, wrangler.stderr]) {
    if (stream) createInterface({ input: stream }).on("line", (line) => log(`[worker] ${line}`));
  }
  let exited = false;
  wrangler.once("exit", () => {
    exited = true;
  });

  const stop = async (): Promise<void> => {
    if (!exited) {
      const gone = new Promise((r) => wrangler.once("exit", r));
      wrangler.kill("SIGTERM");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (!exited) wrangler.kill("SIGKILL");
    }
    await emulator?.close();
  };

  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error("wrangler dev exited before the Worker answered");
    }
    try {
      if ((await fetch(`${workerUrl}/healthz`)).ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the Worker did not answer on ${workerUrl} within 120 s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { workerUrl, emulator, wrangler, stop };
}
