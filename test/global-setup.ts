// Starts the servers the Worker's tests talk to, one Stripe emulator and the receiver of the
// service's events (test/events/receiver.ts), and hands their URLs to the Worker's bindings
// (STRIPE_API_BASE, EVENTS_URL); test/limits/global-setup.ts does the same with Stripe's rate
// limit on, test/model/global-setup.ts with an emulator alone.
//
// They run in a Node process of their own, this file started again with tsx. Vitest's own
// process transforms every module workerd loads and takes in every line the Worker logs; its
// event loop stalls for hundreds of milliseconds at a time, seconds while a project starts, and
// a server inside it would answer a healthy Stripe call after the Worker's STRIPE_TIMEOUT_MS.
//
// The emulator checks every request the Worker sends against Stripe's OpenAPI spec
// (test/emulator/openapi.ts). As a project ends, its teardown prints what was checked, and fails
// the run if Stripe's spec refused any request the service made, or if the emulator answered off
// the spec: the service must be tested only on calls Stripe takes and shapes Stripe sends.

import { fork } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import type { EmulatorOptions } from "./emulator/emulator.js";
import { reportSpec, type SpecSummary } from "./emulator/openapi.js";
import { startEmulator } from "./emulator/server.js";
import { STRIPE_HANG_MS, TEST_BINDINGS } from "./bindings.js";
import { startReceiver } from "./events/receiver.js";

/** What a project's set-up asks the servers' process for. */
interface Wanted {
  emulator: EmulatorOptions;
  receiver: boolean;
}

/** What the servers' process answers once it listens. */
interface Started {
  emulatorUrl: string;
  receiverUrl: string | null;
}

const THIS_FILE = fileURLToPath(import.meta.url);
/** How long the servers' process may take to stop before it is killed. */
const STOP_GRACE_MS = 5000;

/** Asked of the servers' process before it stops: what its emulator's spec check saw. */
const SUMMARY = "spec-summary";

/** Starts the servers in a process of their own; resolves once they listen, with their URLs and how to stop them. */
async function startServers(wanted: Wanted, label: string): Promise<Started & { stop: () => Promise<void> }> {
  const child = fork(THIS_FILE, [JSON.stringify(wanted)], {
    cwd: dirname(dirname(THIS_FILE)),
    execArgv: ["--import", "tsx"],
    stdio: "inherit",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const started = await new Promise<Started>((resolve, reject) => {
    child.once("message", (message) => resolve(message as Started));
    child.once("error", reject);
    void exited.then(() => reject(new Error(`the test servers' process exited (${child.exitCode ?? child.signalCode}) before it listened`)));
  });
  const summary = () =>
    new Promise<SpecSummary>((resolve, reject) => {
      child.once("message", (message) => resolve((message as { spec: SpecSummary }).spec));
      void exited.then(() => reject(new Error("the test servers' process exited before it said what Stripe's spec refused")));
      child.send(SUMMARY);
    });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const spec = await summary();
    // Disconnecting is the signal to stop (it also comes if this process dies without a teardown).
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    try {
      reportSpec(label, spec);
    } catch (err) {
      // Vitest prints an error thrown by a teardown but does not fail the run for it.
      process.exitCode = 1;
      throw err;
    }
  };
  return { ...started, stop };
}

/** In the servers' process: starts what was asked for, reports the URLs, and stops when Vitest disconnects. */
async function serve(wanted: Wanted): Promise<void> {
  const emulator = await startEmulator(0, { webhookSecret: TEST_BINDINGS.STRIPE_WEBHOOK_SECRET, hangMs: STRIPE_HANG_MS, ...wanted.emulator });
  const receiver = wanted.receiver ? await startReceiver() : null;
  process.on("message", (message) => {
    if (message === SUMMARY) process.send?.({ spec: emulator.emulator.spec.summary() });
  });
  process.once("disconnect", () => {
    void Promise.all([emulator.close(), receiver?.close()]).finally(() => process.exit(0));
  });
  process.send?.({ emulatorUrl: emulator.url, receiverUrl: receiver?.url ?? null } satisfies Started);
}

/** Starts an emulator, provides its URL as `key`, and returns the teardown that stops it. */
export async function provideEmulator(
  project: TestProject,
  key: "emulatorUrl" | "limitsEmulatorUrl",
  options: EmulatorOptions = {},
): Promise<() => Promise<void>> {
  const servers = await startServers({ emulator: options, receiver: false }, project.name);
  project.provide(key, servers.emulatorUrl);
  return servers.stop;
}

/** The emulator, and the seller's event receiver (EVENTS_URL) the Worker's tests deliver to. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const servers = await startServers({ emulator: {}, receiver: true }, project.name);
  project.provide("emulatorUrl", servers.emulatorUrl);
  project.provide("receiverUrl", servers.receiverUrl as string);
  return servers.stop;
}

if (process.send && process.argv[1] === THIS_FILE) await serve(JSON.parse(process.argv[2] ?? "{}") as Wanted);

declare module "vitest" {
  export interface ProvidedContext {
    emulatorUrl: string;
    limitsEmulatorUrl: string;
    receiverUrl: string;
  }
}
