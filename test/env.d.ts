// Types for `cloudflare:workers` / `cloudflare:test` inside the tests: the Worker's own Env and
// its main module, so `env` and `exports.default` are typed.

import type { Env as WorkerEnv } from "../src/env.js";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
    interface GlobalProps {
      mainModule: typeof import("../src/index.js");
      durableNamespaces: "PaymentIntentObject" | "AccountObject" | "CreditRegistry" | "StripeGovernor" | "RequestLimiter";
    }
  }
}
