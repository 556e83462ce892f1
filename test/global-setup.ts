// Starts one Stripe emulator for the Worker's tests and hands its URL to the Worker's bindings,
// and the receiver of the service's events (test/events/receiver.ts), as EVENTS_URL;
// test/limits/global-setup.ts does the same with Stripe's rate limit on.

import type { TestProject } from "vitest/node";
import type { EmulatorOptions } from "./emulator/emulator.js";
import { startEmulator } from "./emulator/server.js";
import { TEST_BINDINGS } from "./bindings.js";
import { startReceiver } from "./events/receiver.js";

/** Starts an emulator, provides its URL as `key`, and returns the teardown that stops it. */
export async function provideEmulator(
  project: TestProject,
  key: "emulatorUrl" | "limitsEmulatorUrl",
  options: EmulatorOptions = {},
): Promise<() => Promise<void>> {
  const running = await startEmulator(0, { webhookSecret: TEST_BINDINGS.STRIPE_WEBHOOK_SECRET, ...options });
  project.provide(key, running.url);
  return () => running.close();
}

/** The emulator, and the seller's event receiver (EVENTS_URL) the Worker's tests deliver to. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stopEmulator = await provideEmulator(project, "emulatorUrl");
  const receiver = await startReceiver();
  project.provide("receiverUrl", receiver.url);
  return async () => {
    await receiver.close();
    await stopEmulator();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    emulatorUrl: string;
    limitsEmulatorUrl: string;
    receiverUrl: string;
  }
}
