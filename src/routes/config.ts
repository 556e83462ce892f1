// What a top-up page needs before anyone signs in: the publishable key and where Stripe.js loads
// from (both settings), and whether the demo's sign-in is on. Public: a publishable key is meant
// for browsers, and the rest says nothing about any account.

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../http.js";
import { settings } from "../settings.js";
import { validationHook } from "./validation.js";

const PageConfig = z
  .object({
    publishable_key: z
      .string()
      .nullable()
      .openapi({ example: "pk_test_…", description: "For Stripe.js; null while STRIPE_PUBLISHABLE_KEY is unset (the page cannot take payments)" }),
    stripe_js_url: z.url().openapi({ example: "https://js.stripe.com/v3/", description: "Where the page loads Stripe.js from (STRIPE_JS_URL)" }),
    demo_mode: z.boolean().openapi({ description: "The demo sign-in and spending routes under /demo are on (never in production)" }),
  })
  .openapi("PageConfig");

export const pageConfigRoute = createRoute({
  method: "get",
  path: "/config",
  summary: "The top-up page's settings: the Stripe.js URL and publishable key",
  // The one browser route without sign-in: the page reads it before anyone signs in.
  security: [],
  responses: { 200: { description: "The page's settings", content: { "application/json": { schema: PageConfig } } } },
});

export const config = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

config.openapi(pageConfigRoute, (c) => {
  const s = settings(c.env);
  return c.json({ publishable_key: s.stripe.publishableKey, stripe_js_url: s.stripe.jsUrl, demo_mode: s.demoMode }, 200);
});
