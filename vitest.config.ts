// Five projects: the Stripe emulator's own tests run in Node against a real emulator server;
// the service's tests run inside workerd (the Workers Vitest plugin) against an emulator that
// test/global-setup.ts starts on a free 127.0.0.1 port and stops afterwards; the abuse and
// overload tests do the same with their own rate-limited emulator and tight limits; the
// randomized model test runs in workerd against an emulator of its own; the browser test runs
// Chromium against `wrangler dev` and the emulator, started as `npm start` starts them.

import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { relative } from "node:path";
import { defineConfig, type Plugin } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";
import { LIMITS_BINDINGS, TEST_BINDINGS } from "./test/bindings.js";

/**
 * Drops one warning: the `stripe` package ships source maps whose sources it does not ship, so
 * Vite says so once per file (dozens of lines) each time a workerd project loads it. Nothing
 * here can act on it, and a reader would have to learn to ignore it.
 */
function quietMissingSourcemaps(): Plugin {
  return {
    name: "quiet-missing-sourcemaps",
    configResolved(config) {
      const warnOnce = config.logger.warnOnce.bind(config.logger);
      config.logger.warnOnce = (message, options) => {
        if (message.includes("points to missing source files")) return;
        warnOnce(message, options);
      };
    },
  };
}

/**
 * Lines workerd prints about things the tests do on purpose. The Workers pool runs workerd in
 * verbose mode and writes what it logs straight to this process's stdout and stderr, so they are
 * dropped there, each by what its message starts with; every other line workerd prints is kept.
 */
const EXPECTED_RUNTIME_LINES: readonly RegExp[] = [
  // The emulator's "drop" fault closes the connection without an answer. For each such request
  // workerd logs its HTTP client's error, then "Network connection lost." twice as an "uncaught
  // exception", even when the fetch's rejection is handled: a bare `fetch(…).then(ok, fail)` gets
  // the same three lines. The SDK handles it (it retries, then throws StripeConnectionError).
  /^exception = \S+: disconnected: client error \(SendRequest\)$/,
  /^uncaught exception; source = Uncaught \(in promise\); stack = Error: Network connection lost\.$/,
  /^uncaught exception; exception = \S+: disconnected: jsg\.Error: Network connection lost\.$/,
  // The crash tests cut objects off with abortAllDurableObjects(); workerd logs the abort asked for.
  /^exception = \S+: failed: jsg\.Error: Application called abortAllDurableObjects\(\)\.$/,
  // Tests that abort objects, evict them or run their alarms themselves (runDurableObjectAlarm)
  // leave workerd's alarm scheduler out of step with an object's stored alarm; workerd notes it as
  // it puts them back in step (NOSENTRY: an expected event, not an error).
  /^NOSENTRY SQLite alarm (handler canceled|overdue, running despite AlarmManager mismatch)/,
  // test/wallet/attacks.test.ts sends these non-ASCII Idempotency-Keys to see them refused.
  /^A header value for "idempotency-key" contains non-ASCII characters: "(clé|ключ)-/,
  // test/settings.test.ts gives an object a bad setting: the SettingsError crosses the RPC call,
  // as it is meant to, and the Worker answers 500 misconfigured and logs settings_invalid.
  /^uncaught exception; source = Uncaught \(in promise\); stack = SettingsError: /,
];

const quieted = new WeakSet<NodeJS.WriteStream>();

/** Makes `stream` drop each write that is one of EXPECTED_RUNTIME_LINES (workerd writes one message per call). */
function dropExpectedRuntimeLines(stream: NodeJS.WriteStream): void {
  if (quieted.has(stream)) return;
  quieted.add(stream);
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  stream.write = (chunk: unknown, ...rest: unknown[]) => {
    const firstLine = typeof chunk === "string" ? (chunk.split("\n", 1)[0] ?? "") : "";
    if (!EXPECTED_RUNTIME_LINES.some((line) => line.test(firstLine))) return write(chunk, ...rest);
    const done = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
    if (done) process.nextTick(done);
    return true;
  };
}

function quietExpectedRuntimeLines(): Plugin {
  return {
    name: "quiet-expected-runtime-lines",
    configResolved() {
      dropExpectedRuntimeLines(process.stdout);
      dropExpectedRuntimeLines(process.stderr);
    },
  };
}

/**
 * The queues as wrangler.toml declares them, but quicker to give up and to flush: a test that
 * keeps a receiver down sees its events dead-lettered after 4 tries, not 101, and batches wait
 * 50 ms, not a second (the retry delays themselves come from EVENTS_RETRY_SECONDS, 0 in tests).
 */
const TEST_QUEUE_CONSUMERS = {
  "edge-credit-events": { maxBatchSize: 10, maxBatchTimeout: 0.05, maxRetries: 3, deadLetterQueue: "edge-credit-events-dead" },
  "edge-credit-events-dead": { maxBatchSize: 100, maxBatchTimeout: 0.05 },
};

/**
 * A workerd project: the Worker from wrangler.toml, with `bindings` and the emulator its set-up
 * provides as `urlKey`; with `events`, EVENTS_URL is the receiver that set-up provides too.
 */
function workerProject(
  name: string,
  include: string,
  globalSetup: string,
  urlKey: "emulatorUrl" | "limitsEmulatorUrl",
  bindings: Record<string, string>,
  testTimeout: number,
  events = false,
) {
  return {
    plugins: [
      quietMissingSourcemaps(),
      quietExpectedRuntimeLines(),
      cloudflareTest(({ inject }) => ({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: { ...bindings, STRIPE_API_BASE: inject<string>(urlKey), ...(events ? { EVENTS_URL: `${inject<string>("receiverUrl")}/events` } : {}) },
          queueConsumers: TEST_QUEUE_CONSUMERS,
        },
      })),
    ],
    // One workerd per Vitest worker, kept for every file it runs (isolate: false), instead of a
    // fresh one per file: starting workerd and importing the Worker cost about 3 s of CPU per
    // file. Files then share the objects' storage as they already share the emulator, which
    // every test allows for: accounts, PaymentIntents and keys of its own, and lists shared by
    // the run (the operator's credits and events, the dead letters) searched for its own ids.
    test: { name, include: [include], globalSetup: [globalSetup], testTimeout, isolate: false },
  };
}

/** An optional integer from the environment (MODEL_SEED=…); anything else is a mistake worth stopping for. */
function envInt(name: string): number | null {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return null;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${raw}`);
  return n;
}

/**
 * The randomized model test (test/model): a workerd project like "worker", with the replay
 * coordinates passed in through `provide`, since code inside workerd cannot read the environment.
 * `MODEL_SEED=… MODEL_PATH=… npm run test:model` replays a failure; MODEL_RUNS sets the run count.
 */
function modelProject() {
  const project = workerProject("model", "test/model/*.test.ts", "test/model/global-setup.ts", "emulatorUrl", TEST_BINDINGS, 0);
  const runs = envInt("MODEL_RUNS");
  const shrinkSeconds = envInt("MODEL_SHRINK_SECONDS");
  return {
    ...project,
    test: {
      ...project.test,
      // Each run takes seconds against the emulator; a soak of hundreds of runs takes many minutes.
      testTimeout: Math.max(600_000, (runs ?? 0) * 30_000) + (shrinkSeconds ?? 0) * 1000,
      provide: { modelSeed: envInt("MODEL_SEED"), modelPath: process.env.MODEL_PATH || null, modelRuns: runs, modelShrinkSeconds: shrinkSeconds },
    },
  };
}

/**
 * The order files are handed to the two workers in. A long file that starts late leaves the
 * other worker idle while it finishes, so the longest go first: the abuse tests (two to three
 * minutes on their own at Stripe's 25 requests/s), the model test, the browser test, then the
 * Worker's files, the longest of them by name and the rest largest first. A project's files
 * follow each other, because a worker that moves to another workerd project starts a new
 * workerd and imports the Worker again (about 10 s). A clean checkout (CI) has no timings
 * from an earlier run, so the order is written here rather than learnt.
 */
const PROJECT_ORDER = ["limits", "model", "e2e", "worker", "emulator"];
const LONGEST_FILES = [
  "test/limits/abuse.test.ts",
  "test/e2e/page.test.ts",
  "test/attacks.test.ts",
  "test/recharge/attacks.test.ts",
  "test/events/attacks.test.ts",
  "test/fault-matrix.test.ts",
  "test/wallet/spending.test.ts",
  "test/wallet/sync.test.ts",
];

/** Where `item` stands in `list`; after all of it when it is not there. */
function rank(list: readonly string[], item: string): number {
  const i = list.indexOf(item);
  return i === -1 ? list.length : i;
}

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const path = (f: TestSpecification) => relative(this.ctx.config.root, f.moduleId);
    const project = (f: TestSpecification) => rank(PROJECT_ORDER, f.project.name);
    const named = (f: TestSpecification) => rank(LONGEST_FILES, path(f));
    const size = (f: TestSpecification) => this.ctx.cache.getFileStats(`${f.project.name}:${path(f)}`)?.size ?? 0;
    return [...files].sort((a, b) => project(a) - project(b) || named(a) - named(b) || size(b) - size(a));
  }
}

export default defineConfig({
  test: {
    // Two files at a time, on the two cores CI has: most of the Worker's tests wait on Stripe's
    // (the emulator's) answers, timeouts and the SDK's backoff, and the set-up keeps the
    // emulators out of Vitest's own process (see test/global-setup.ts), so a busy core does
    // not make a healthy Stripe call late.
    maxWorkers: 2,
    sequence: { sequencer: LongestFirst },
    // The service's JSON log lines are for production; tests print their own tables.
    onConsoleLog: (log) => !log.startsWith('{"event"'),
    projects: [
      {
        test: {
          name: "emulator",
          environment: "node",
          include: ["test/emulator/**/*.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "e2e",
          environment: "node",
          include: ["test/e2e/**/*.test.ts"],
          // One file at a time: two `wrangler dev`s started at once in this directory race over
          // its build output, and one of them exits before answering.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      workerProject("worker", "test/{*,wallet/*,events/*,recharge/*,metrics/*}.test.ts", "test/global-setup.ts", "emulatorUrl", TEST_BINDINGS, 30_000, true),
      // Thousands of requests per test, which take minutes when the machine is busy.
      workerProject("limits", "test/limits/*.test.ts", "test/limits/global-setup.ts", "limitsEmulatorUrl", LIMITS_BINDINGS, 300_000),
      modelProject(),
    ],
  },
});
