// The Worker's HTTP surface: CORS for the browser routes, one error boundary, the routes.
// Everything here is stateless; state lives in the Durable Objects.

import { OpenAPIHono, z } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import type { Env } from "./env.js";
import { ApiError } from "./errors.js";
import type { AppEnv } from "./http.js";
import { logEvent } from "./log.js";
import { billing } from "./routes/billing.js";
import { demo } from "./routes/demo.js";
import { operator } from "./routes/operator.js";
import { webhook } from "./routes/webhook.js";
import { ErrorAnswer } from "./routes/schemas.js";
import { validationHook } from "./routes/validation.js";

/** Origins from ALLOWED_ORIGINS (comma-separated). */
export function allowedOrigins(env: Env): string[] {
  return (env.ALLOWED_ORIGINS ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
}

/** Renders any error as the contract's JSON error; unknown errors become an opaque 500. */
function errorBoundary(err: Error, c: { json: (body: unknown, status: number, headers?: Record<string, string>) => Response; req: { path: string } }): Response {
  if (err instanceof ApiError) return c.json(err.body(), err.status, err.headers);
  if (err instanceof HTTPException) {
    // Hono's own 4xx (malformed JSON from the validator, mostly).
    const status = err.status;
    if (status === 400) return c.json(new ApiError(400, "invalid_request", "The request body is not valid JSON.").body(), 400);
    if (status === 413) return c.json(new ApiError(413, "payload_too_large", "The request body is too large.").body(), 413);
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
      200: { description: "Recorded (or ignored: an event type this service does not use)", content: { "application/json": { schema: z.object({ received: z.literal(true) }) } } },
      400: { description: "invalid_signature: missing, malformed, wrong or older than 300 s", content: { "application/json": { schema: ErrorAnswer } } },
      413: { description: "payload_too_large", content: { "application/json": { schema: ErrorAnswer } } },
    },
  });
}

/** Builds the Hono app that is the Worker's fetch handler. */
export function buildApp(): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use(
    "/billing/*",
    cors({
      origin: (origin, c) => (allowedOrigins(c.env as Env).includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "OPTIONS"],
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key"],
      exposeHeaders: ["Retry-After"],
      maxAge: 600,
    }),
  );

  app.get("/healthz", (c) => c.json({ ok: true }));
  app.route("/billing", billing);
  describeUndocumentedRoutes(app);
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Prepaid credit",
      version: "1.0.0",
      description: "Exactly-once Stripe top-ups. Errors are {\"error\": {\"code\", \"message\"}} with a stable code.",
    },
  });
  app.route("/operator", operator);
  app.route("/stripe/webhook", webhook);
  app.route("/demo", demo);

  app.notFound((c) => c.json(new ApiError(404, "not_found", "No such route.").body(), 404));
  app.onError(errorBoundary);
  return app;
}
