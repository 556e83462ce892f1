// An emulator of its own for the abuse and overload tests: it enforces Stripe's test-mode rate
// limit (25 requests/s, 429 beyond), which the other test files must not share.

import type { TestProject } from "vitest/node";
import { provideEmulator } from "../global-setup.js";

export default function setup(project: TestProject): Promise<() => Promise<void>> {
  return provideEmulator(project, "limitsEmulatorUrl", { rateLimitPerSecond: 25 });
}
