// Runs the emulator as an HTTP server on 127.0.0.1 under Node: `npm run emulator` (foreground,
// one log line per request), the test set-up and the benchmark. The Node-specific parts: turning
// a "drop" answer into a closed socket, which the Web-standard app cannot do itself, and serving
// the Stripe.js stand-in (stripe-js.js) from disk at /v3/, where js.stripe.com serves Stripe.js.

import { serve, type Http2Bindings, type HttpBindings } from "@hono/node-server";
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { DROP_HEADER, Emulator, type EmulatorOptions } from "./emulator.js";

/** Where the stand-in for Stripe.js is served: the page's STRIPE_JS_URL is `<emulator>/v3/`. */
export const STRIPE_JS_PATH = "/v3/";
const STRIPE_JS = readFileSync(new URL("./stripe-js.js", import.meta.url), "utf8");

/** The Stripe.js stand-in, for GET and HEAD of /v3/ (and /v3, as js.stripe.com answers both). */
function stripeJs(request: Request): Response | null {
  const { pathname } = new URL(request.url);
  if ((request.method !== "GET" && request.method !== "HEAD") || (pathname !== STRIPE_JS_PATH && pathname !== "/v3")) return null;
  return new Response(request.method === "HEAD" ? null : STRIPE_JS, {
    headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" },
  });
}

export interface RunningEmulator {
  emulator: Emulator;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts the emulator on 127.0.0.1:`port` (0 picks a free port). */
export async function startEmulator(port: number, options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const emulator = new Emulator(options);
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve(
      {
        hostname: "127.0.0.1",
        port,
        fetch: async (request: Request, env: HttpBindings | Http2Bindings) => {
          const script = stripeJs(request);
          if (script) return script;
          const res = await emulator.fetch(request);
          if (res.headers.has(DROP_HEADER)) {
            // The write (if any) is applied and saved; the caller sees the connection close.
            env.incoming.socket.destroy();
            return new Response(null, { status: 204 });
          }
          return res;
        },
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  const address = server.address() as AddressInfo;
  return {
    emulator,
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        emulator.webhooks.stop();
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const running = await startEmulator(envInt("PORT", 12111), {
    latencyMs: envInt("LATENCY_MS", 0),
    webhookUrl: process.env.WEBHOOK_URL || null,
    webhookSecret: process.env.WEBHOOK_SECRET || "whsec_emulator",
    searchLagMs: envInt("SEARCH_LAG_MS", 0),
    rateLimitPerSecond: envInt("RATE_LIMIT_PER_SECOND", 0),
    specCheck: process.env.SPEC_CHECK !== "off",
    log: (line) => console.log(line),
  });
  console.log(
    `Stripe emulator listening on ${running.url} (latency ${running.emulator.options.latencyMs} ms` +
      `, webhooks ${running.emulator.options.webhookUrl ?? "off"}, Stripe's spec ${running.emulator.spec.version ?? "off"})` +
      `; control API at ${running.url}/_emulator`,
  );
  const stop = () => {
    void running.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
