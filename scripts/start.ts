// `npm start`: the Stripe emulator and `wrangler dev` together, wired to each other, with the
// settings of .dev.vars (created from .dev.vars.example when missing). One Ctrl-C stops both.
// Extra arguments go to `wrangler dev`, e.g. `npm start -- --var TOPUP_MAX:50000`.

import { loadDevVars } from "./dev-vars.js";
import { summaryLine } from "../test/emulator/openapi.js";
import { startStack } from "./stack.js";

const WORKER_PORT = Number(process.env.WORKER_PORT ?? 8787);
const EMULATOR_PORT = Number(process.env.EMULATOR_PORT ?? 12111);

const vars = loadDevVars();
// The emulator runs when the Worker is pointed at it; with real Stripe test keys it stays off.
const usesEmulator = (vars.STRIPE_API_BASE ?? "").startsWith(`http://127.0.0.1:${EMULATOR_PORT}`);

console.log(
  usesEmulator ? `Starting the Stripe emulator on 127.0.0.1:${EMULATOR_PORT} and the Worker…` : `Starting the Worker against ${vars.STRIPE_API_BASE}…`,
);
// The page pays through Stripe.js: say so now if it cannot, rather than when someone presses Pay.
if (!vars.STRIPE_PUBLISHABLE_KEY) console.warn("STRIPE_PUBLISHABLE_KEY is not set in .dev.vars: the page cannot take payments.");
if (!usesEmulator && (vars.STRIPE_JS_URL ?? "").startsWith(`http://127.0.0.1:${EMULATOR_PORT}`)) {
  console.warn("STRIPE_JS_URL in .dev.vars is the emulator's Stripe.js stand-in, but the emulator is not started: delete it to load Stripe's own.");
}
const stack = await startStack({
  workerPort: WORKER_PORT,
  emulatorPort: usesEmulator ? EMULATOR_PORT : null,
  latencyMs: Number(process.env.LATENCY_MS ?? 0),
  // On unless SPEC_CHECK=off: a request Stripe would refuse is refused here too, and said so in the log.
  specCheck: process.env.SPEC_CHECK !== "off",
  webhookSecret: vars.STRIPE_WEBHOOK_SECRET ?? "whsec_emulator",
  extraArgs: process.argv.slice(2),
  log: (line) => console.log(line),
}).catch((err: unknown) => {
  console.error(String(err));
  process.exit(1);
});

if (stack.emulator) {
  const spec = stack.emulator.emulator.spec;
  console.log(
    spec.enabled
      ? `The emulator checks every request against Stripe's OpenAPI spec ${spec.version ?? ""} (SPEC_CHECK=off to stop).`
      : "The emulator's check against Stripe's OpenAPI spec is off.",
  );
}
console.log(`\n  Ready: open ${stack.workerUrl}   (Ctrl-C stops the Worker and the emulator)\n`);

let stopping = false;
const stop = (code: number) => {
  if (stopping) return;
  stopping = true;
  if (stack.emulator) console.log(summaryLine("npm start", stack.emulator.emulator.spec.summary()));
  void stack.stop().then(() => process.exit(code));
};
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
stack.wrangler.once("exit", (code) => {
  if (!stopping) {
    console.error(`[worker] wrangler dev exited (${code ?? "signal"})`);
    stop(code ?? 1);
  }
});
