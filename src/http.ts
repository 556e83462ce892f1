// Middleware shared by the routes: who is calling, and what a JSON body must look like before
// anyone parses it (media type, size). Each one throws ApiError; app.ts's boundary renders it.

import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { bodyLimit } from "hono/body-limit";
import { authenticate, authenticateService } from "./auth.js";
import type { Env } from "./env.js";
import { ApiError } from "./errors.js";

/** Hono's environment for this app: bindings plus what middleware sets. */
export interface AppEnv {
  Bindings: Env;
  Variables: {
    /** The signed-in browser's account (requireAccount). */
    accountId: string;
    /** The request's Idempotency-Key (requireIdempotencyKey). */
    idempotencyKey: string;
    /** The JSON body as sent, before any schema default; `{}` for an absent optional body (parsedJsonBody). */
    rawBody: unknown;
  };
}

/** Requires a valid bearer token; sets `accountId`. */
export const requireAccount = createMiddleware<AppEnv>(async (c, next) => {
  c.set("accountId", await authenticate(c.req.header("authorization"), c.env));
  await next();
});

/** Requires the seller's service token (`Authorization: Bearer <SERVICE_TOKEN>`). */
export const requireService = createMiddleware<AppEnv>(async (c, next) => {
  await authenticateService(c.req.header("authorization"), c.env);
  await next();
});

function sizeLimit(maxBytes: number) {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `The request body must be at most ${maxBytes} bytes.`);
    },
  });
}

function mediaType(header: string | undefined): string {
  return (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/** Requires `Content-Type: application/json` and at most `maxBytes` of body. */
export function jsonBody(maxBytes: number) {
  const limit = sizeLimit(maxBytes);
  return createMiddleware<AppEnv>(async (c, next) => {
    if (mediaType(c.req.header("content-type")) !== "application/json") {
      throw new ApiError(415, "unsupported_media_type", "The request body must be application/json.");
    }
    return limit(c, next);
  });
}

/**
 * Leaves the body's text in Hono's body cache, where its validator and `c.req.json()` read it
 * from. The cache holds a promise of each form read (its declared type names the values).
 */
function cacheText(c: Context<AppEnv>, text: string): void {
  (c.req.bodyCache as Record<string, Promise<unknown>>).text = Promise.resolve(text);
}

/** The longest Idempotency-Key accepted (Stripe's own limit). */
const IDEMPOTENCY_KEY_MAX = 255;

/**
 * Requires an `Idempotency-Key` header of 1..255 printable ASCII characters; sets `idempotencyKey`.
 * A refusal here is a 400 made before anything is stored, so it is never kept under the key.
 */
export const requireIdempotencyKey = createMiddleware<AppEnv>(async (c, next) => {
  const key = c.req.header("idempotency-key") ?? "";
  if (key === "") throw new ApiError(400, "invalid_request", "Idempotency-Key header is required");
  if (key.length > IDEMPOTENCY_KEY_MAX) {
    throw new ApiError(400, "invalid_request", `Idempotency-Key: must be at most ${IDEMPOTENCY_KEY_MAX} characters`);
  }
  if (!/^[\x20-\x7e]+$/.test(key)) throw new ApiError(400, "invalid_request", "Idempotency-Key: must be printable ASCII characters");
  c.set("idempotencyKey", key);
  await next();
});

/**
 * Like jsonBody, and parses the body once, keeping it as sent in `rawBody` (what an
 * Idempotency-Key's request is compared by). With `optional`, a request may have no body at
 * all, whatever its Content-Type says (`curl -X POST`, `curl -d ''`, `fetch` with `body: ""`):
 * it is then `{}`, the same request as an explicit `{}`, and the route's schema sees `{}` too.
 * A body that is there must be `application/json` (else 415) and valid JSON with no
 * `__proto__` key anywhere (a schema would drop such a key without a word; refused instead).
 */
export function parsedJsonBody(maxBytes: number, options: { optional?: boolean } = {}) {
  const limit = sizeLimit(maxBytes);
  const unsupported = () => new ApiError(415, "unsupported_media_type", "The request body must be application/json.");
  return createMiddleware<AppEnv>(async (c, next) => {
    const isJson = mediaType(c.req.header("content-type")) === "application/json";
    if (!isJson && !options.optional) throw unsupported();
    return limit(c, async () => {
      // Read once, as bytes (.text() on a body whose Content-Type is not text, a form, makes
      // workerd warn), and left in Hono's body cache as text: the route's validator then parses
      // it from there instead of reading a copy of the request again.
      const text = c.req.raw.body === null ? "" : new TextDecoder().decode(await c.req.arrayBuffer());
      if (text === "" && options.optional) {
        c.set("rawBody", {});
        // The validator reads `{}` as JSON too: the request is replaced (as bodyLimit does), not changed.
        const headers = new Headers(c.req.raw.headers);
        headers.set("content-type", "application/json");
        c.req.raw = new Request(c.req.raw, { headers, body: "{}" });
        cacheText(c, "{}");
        return next();
      }
      cacheText(c, text);
      if (!isJson) throw unsupported();
      let parsed: unknown;
      let protoKey = false;
      try {
        parsed = JSON.parse(text, (key, value: unknown) => {
          if (key === "__proto__") protoKey = true;
          return value;
        });
      } catch {
        throw new ApiError(400, "invalid_request", "The request body is not valid JSON.");
      }
      if (protoKey) throw new ApiError(400, "invalid_request", "__proto__ is not allowed as a key.");
      c.set("rawBody", parsed);
      return next();
    });
  });
}
