// An emulator of its own for the abuse and overload tests: it enforces Stripe's test-mode rate
// limit (25 requests/s, 429 beyond), which the other test files must not share.

import type { TestProject } from "vitest/node";
import { startEmulator, type RunningEmulator } from "../emulator/server.js";
import { TEST_BINDINGS } from "../bindings.js";

let running: RunningEmulator | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  running = await startEmulator(0, { webhookSecret: TEST_BINDINGS.STRIPE_WEBHOOK_SECRET, rateLimitPerSecond: 25 });
  project.provide("limitsEmulatorUrl", running.url);
  return async () => {
    await running?.close();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    limitsEmulatorUrl: string;
  }
}
