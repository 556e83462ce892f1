// Middleware shared by the routes: who is calling, and what a JSON body must look like before
// anyone parses it (media type, size). Each one throws ApiError; app.ts's boundary renders it.

import { createMiddleware } from "hono/factory";
import { bodyLimit } from "hono/body-limit";
import { authenticate } from "./auth.js";
import type { Env } from "./env.js";
import { ApiError } from "./errors.js";

/** Hono's environment for this app: bindings plus what middleware sets. */
export interface AppEnv {
  Bindings: Env;
  Variables: { accountId: string };
}

/** Requires a valid bearer token; sets `accountId`. */
export const requireAccount = createMiddleware<AppEnv>(async (c, next) => {
  c.set("accountId", await authenticate(c.req.header("authorization"), c.env));
  await next();
});

/** Requires `Content-Type: application/json` and at most `maxBytes` of body. */
export function jsonBody(maxBytes: number) {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `The request body must be at most ${maxBytes} bytes.`);
    },
  });
  return createMiddleware<AppEnv>(async (c, next) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") throw new ApiError(415, "unsupported_media_type", "The request body must be application/json.");
    return limit(c, next);
  });
}
