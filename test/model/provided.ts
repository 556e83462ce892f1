// What vitest.config.ts hands the model test through Vitest's `provide` (tests in workerd cannot
// read the command line or the environment): the replay coordinates and the run count.

declare module "vitest" {
  export interface ProvidedContext {
    /** MODEL_SEED: fast-check's seed to replay; null draws a fresh one. */
    modelSeed: number | null;
    /** MODEL_PATH: fast-check's counterexample path within that seed ("3:1:0"); null runs from the start. */
    modelPath: string | null;
    /** MODEL_RUNS: how many random runs; null for the default. */
    modelRuns: number | null;
    /** MODEL_SHRINK_SECONDS: how long a failure may be shrunk; null for the default. */
    modelShrinkSeconds: number | null;
  }
}

export {};
