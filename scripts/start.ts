// `npm start`: the Stripe emulator and `wrangler dev` together, wired to each other (the
// Worker calls the emulator; the emulator delivers webhooks to the Worker). One Ctrl-C stops
// both. Extra arguments go to `wrangler dev`, e.g. `npm start -- --var STRIPE_API_BASE:https://api.stripe.com`.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { startEmulator } from "../test/emulator/server.js";
import { loadDevVars, projectRoot } from "./dev-vars.js";

const WORKER_PORT = Number(process.env.WORKER_PORT ?? 8787);
const EMULATOR_PORT = Number(process.env.EMULATOR_PORT ?? 12111);
const workerUrl = `http://127.0.0.1:${WORKER_PORT}`;

const vars = loadDevVars();
const usesEmulator = (vars.STRIPE_API_BASE ?? "").startsWith(`http://127.0.0.1:${EMULATOR_PORT}`);

const emulator = usesEmulator
  ? await startEmulator(EMULATOR_PORT, {
      latencyMs: Number(process.env.LATENCY_MS ?? 0),
      webhookUrl: `${workerUrl}/stripe/webhook`,
      webhookSecret: vars.STRIPE_WEBHOOK_SECRET ?? "whsec_emulator",
      log: (line) => console.log(`[stripe] ${line}`),
    }).catch((err: unknown) => {
      console.error(`Could not start the Stripe emulator on 127.0.0.1:${EMULATOR_PORT}: ${String(err)}`);
      process.exit(1);
    })
  : null;
if (emulator) console.log(`[stripe] emulator on ${emulator.url} (control API: ${emulator.url}/_emulator)`);

const wrangler = spawn(
  process.execPath,
  [`${projectRoot}node_modules/wrangler/bin/wrangler.js`, "dev", "--ip", "127.0.0.1", "--port", String(WORKER_PORT), ...process.argv.slice(2)],
  { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
);
for (const stream of [wrangler.stdout, wrangler.stderr]) {
  createInterface({ input: stream }).on("line", (line) => console.log(`[worker] ${line}`));
}

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  wrangler.kill("SIGTERM");
  await emulator?.close();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => {
  if (!stopping) {
    console.error(`[worker] wrangler dev exited (${code ?? "signal"})`);
    void stop(code ?? 1);
  }
});

// Say which URL to open once the Worker answers.
const deadline = Date.now() + 120_000;
while (!stopping && Date.now() < deadline) {
  try {
    const res = await fetch(`${workerUrl}/healthz`);
    if (res.ok) {
      console.log(`\n  Ready: open ${workerUrl}   (Ctrl-C stops the Worker and the emulator)\n`);
      break;
    }
  } catch {
    // not up yet
  }
  await new Promise((r) => setTimeout(r, 500));
}
