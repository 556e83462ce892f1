// The model test's own emulator, started as the worker project's is (test/global-setup.ts); the
// model delivers no events, so it needs no receiver.

import type { TestProject } from "vitest/node";
import { provideEmulator } from "../global-setup.js";

export default function setup(project: TestProject): Promise<() => Promise<void>> {
  return provideEmulator(project, "emulatorUrl");
}
