// The Worker's HTTP surface: CORS for the browser routes, one error boundary, the routes.
// Everything here is stateless; state lives in the Durable Objects.

import { OpenAPIHono, z } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { TrieRouter } from "hono/router/trie-router";
import type { Env } from "./env.js";
import { ApiError } from "./errors.js";
import type { AppEnv } from "./http.js";
import { logEvent } from "./log.js";
import { accountSettings } from "./routes/account-settings.js";
import { accounts } from "./routes/accounts.js";
import { autoRechargeBilling, autoRechargeSeller } from "./routes/auto-recharge.js";
import { billing } from "./routes/billing.js";
import { config } from "./routes/config.js";
import { demo } from "./routes/demo.js";
import { operator } from "./routes/operator.js";
import { webhook } from "./routes/webhook.js";
import { ErrorAnswer } from "./routes/schemas.js";
import { validationHook } from "./routes/validation.js";
import { pageDocument, securityHeaders } from "./security.js";
import { isSettingsError, settings } from "./settings.js";

/**
 * Renders any error as the contract's JSON error; unknown errors become an opaque 500. A setting
 * that does not parse (here or inside an object) is a 500 of its own: the caller can do nothing
 * about it, and the log line names the setting for the operator.
 */
function errorBoundary(
  err: Error,
  c: { json: (body: unknown, status: number, headers?: Record<string, string>) => Response; req: { path: string } },
): Response {
  if (err instanceof ApiError) return c.json(err.body(), err.status, err.headers);
  if (isSettingsError(err)) {
    logEvent("settings_invalid", { level: "error", path: c.req.path, error: err.message });
    return c.json(new ApiError(500, "misconfigured", "The service is misconfigured; its operator has been told.").body(), 500);
  }
  if (err instanceof HTTPException) {
    // Hono's own 4xx. Its validator's only 400 is a body that does not parse as JSON; any other
    // 400 is not said to be about the body, so a caller is not sent looking in the wrong place.
    const status = err.status;
    if (status === 400) {
      const aboutJson = /json/i.test(err.message);
      return c.json(new ApiError(400, "invalid_request", aboutJson ? "The request body is not valid JSON." : "The request is malformed.").body(), 400);
    }
    if (status === 413) return c.json(new ApiError(413, "payload_too_large", "The request body is too large.").body(), 413);
    if (status === 415) return c.json(new ApiError(415, "unsupported_media_type", "The request body must be application/json.").body(), 415);
    if (status === 401) return c.json(new ApiError(401, "unauthenticated", "Authentication is required.").body(), 401);
  }
  logEvent("unhandled_error", { path: c.req.path, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  return c.json({ error: { code: "internal_error", message: "Something went wrong on our side." } }, 500);
}

/**
 * The public routes that are not validated through zod-openapi (the webhook verifies a raw
 * body; health has no input) are described here by hand, so /openapi.json lists every public route.
 */
function describeUndocumentedRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
  app.openAPIRegistry.registerComponent("securitySchemes", "service", {
    type: "http",
    scheme: "bearer",
    description: "The seller's backend: one of the comma-separated SERVICE_TOKEN values",
  });
  app.openAPIRegistry.registerPath({
    method: "get",
    path: "/healthz",
    summary: "Liveness",
    responses: { 200: { description: "Up", content: { "application/json": { schema: z.object({ ok: z.literal(true) }) } } } },
  });
  app.openAPIRegistry.registerPath({
    method: "post",
    path: "/stripe/webhook",
    summary: "Stripe's signed events (payment_intent.succeeded, charge.refunded, charge.dispute.*)",
    request: {
      headers: z.object({ "stripe-signature": z.string().openapi({ example: "t=1700000000,v1=5257a869…" }) }),
      body: { required: true, content: { "application/json": { schema: z.object({ id: z.string(), type: z.string() }).passthrough() } } },
    },
    responses: {
      200: {
        description: "Recorded (or ignored: an event type this service does not use)",
        content: { "application/json": { schema: z.object({ received: z.literal(true) }) } },
      },
      400: { description: "invalid_signature: missing, malformed, wrong or older than 300 s", content: { "application/json": { schema: ErrorAnswer } } },
      413: { description: "payload_too_large", content: { "application/json": { schema: ErrorAnswer } } },
    },
  });
}

/** The browser routes: CORS answers their OPTIONS preflights. */
const BROWSER_PREFIX = "/billing";

/** Which methods each route path answers, and a router that finds the paths a request matches. */
interface MethodTable {
  router: TrieRouter<string>;
  methods: Map<string, Set<string>>;
}

/** Derived from the app's registered handlers; middleware (method ALL) says nothing about methods. */
function methodTable(app: OpenAPIHono<AppEnv>): MethodTable {
  const router = new TrieRouter<string>();
  const methods = new Map<string, Set<string>>();
  for (const { method, path } of app.routes) {
    if (method === "ALL") continue;
    let set = methods.get(path);
    if (!set) {
      set = new Set();
      methods.set(path, set);
      router.add("ALL", path, path);
    }
    set.add(method);
    // Hono answers HEAD with its GET handler; CORS answers preflights on the browser routes.
    if (method === "GET") set.add("HEAD");
    if (path.startsWith(`${BROWSER_PREFIX}/`)) set.add("OPTIONS");
  }
  return { router, methods };
}

/**
 * 405 with `Allow` for a path that exists under other methods, before any route middleware
 * (auth, body checks) can answer something that sends the caller looking elsewhere. Registered
 * before the routes; the table is built on the first request, once every route is in `app.routes`.
 * Unknown paths go on to the 404.
 */
function methodGuard(app: OpenAPIHono<AppEnv>) {
  let table: MethodTable | null = null;
  return createMiddleware<AppEnv>(async (c, next) => {
    // The demo routes answer 404 when DEMO_MODE is off, as if they did not exist: keep it so.
    if (c.req.path.startsWith("/demo/") && !settings(c.env).demoMode) return next();
    table ??= methodTable(app);
    const [matches] = table.router.match(c.req.method, c.req.path);
    const allowed = new Set<string>();
    for (const [path] of matches) for (const m of table.methods.get(path) ?? []) allowed.add(m);
    if (allowed.size === 0 || allowed.has(c.req.method)) return next();
    const allow = [...allowed].join(", ");
    throw new ApiError(405, "method_not_allowed", `${c.req.method} is not allowed on ${c.req.path}; allowed: ${allow}.`, {}, { Allow: allow });
  });
}

/** Builds the Hono app that is the Worker's fetch handler. */
export function buildApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use(securityHeaders, pageDocument);
  app.use(
    `${BROWSER_PREFIX}/*`,
    cors({
      origin: (origin, c) => (settings(c.env as Env).allowedOrigins.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "OPTIONS"],
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key"],
      exposeHeaders: ["Retry-After"],
      maxAge: 600,
    }),
  );
  app.use("*", methodGuard(app));

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.route("/billing", billing);
  app.route("/billing", config);
  app.route("/billing", autoRechargeBilling);
  // The seller's server-to-server API: a service token, no CORS.
  app.route("/v1/accounts", accounts);
  app.route("/v1/accounts", accountSettings);
  app.route("/v1/accounts", autoRechargeSeller);
  describeUndocumentedRoutes(app);
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Prepaid credit",
      version: "1.0.0",
      description:
        'Exactly-once Stripe top-ups, and spending that credit from the seller\'s backend. Errors are {"error": {"code", "message"}} with a stable code.',
    },
  });
  app.route("/operator", operator);
  app.route("/stripe/webhook", webhook);
  app.route("/demo", demo);

  app.notFound((c) => c.json(new ApiError(404, "not_found", "No such route.").body(), 404));
  app.onError(errorBoundary);
  return app;
}
