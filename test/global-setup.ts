// Starts one Stripe emulator for the Worker's tests and hands its URL to the Worker's bindings.

import type { TestProject } from "vitest/node";
import { startEmulator, type RunningEmulator } from "./emulator/server.js";
import { TEST_BINDINGS } from "./bindings.js";

let running: RunningEmulator | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  running = await startEmulator(0, { webhookSecret: TEST_BINDINGS.STRIPE_WEBHOOK_SECRET });
  project.provide("emulatorUrl", running.url);
  return async () => {
    await running?.close();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    emulatorUrl: string;
  }
}
