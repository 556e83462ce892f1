// Who is calling: `Authorization: Bearer <JWT>`, whose `sub` is the account id. Tokens are
// verified with jose: HS256 under AUTH_JWT_SECRET, or an identity provider's keys from
// AUTH_JWKS_URL, in which case issuer and audience are required (without them a token the
// provider issued for any other application would be accepted here).
//
// The seller's backend instead sends `Authorization: Bearer <SERVICE_TOKEN>` (one of several
// comma-separated values while rotating), compared in constant time. A browser's JWT is never a
// service token, and neither token opens the operator routes (OPERATOR_TOKEN only).

import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from "jose";
import type { Env } from "./env.js";
import { ApiError } from "./errors.js";
import { ACCOUNT_ID } from "./ids.js";
import { logEvent } from "./log.js";
import { settings, type Settings } from "./settings.js";

const remoteKeySets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
/** The HS256 key, imported once per secret rather than on every request. */
const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    hmacKeys.set(secret, key);
  }
  return key;
}

function unauthenticated(message: string, realm = "billing"): ApiError {
  return new ApiError(401, "unauthenticated", message, {}, { "WWW-Authenticate": `Bearer realm="${realm}"` });
}

/** A JWT in compact form: three base64url parts. An empty signature (alg "none") has the shape and is refused by verification. */
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The token of an `Authorization: Bearer <token>` header, or a 401 that says what is wrong with
 * the header: a caller who sent Basic credentials, or a bare "Bearer", is told so, not sent
 * looking for a fault elsewhere. The scheme name is case-insensitive (RFC 9110 §11.1).
 * `realm` names the audience in WWW-Authenticate; `shape` the token's expected form.
 */
export function bearerToken(authorization: string | undefined, realm = "billing", shape: RegExp = /^[A-Za-z0-9_\-.~+/]+=*$/): string {
  const header = authorization?.trim() ?? "";
  if (header === "") throw unauthenticated("The Authorization header is missing: send Authorization: Bearer <token>.", realm);
  const [scheme = "", ...rest] = header.split(/\s+/);
  if (scheme.toLowerCase() !== "bearer") throw unauthenticated("Authorization must use the Bearer scheme.", realm);
  const token = rest.join(" ");
  if (token === "") throw unauthenticated("The Authorization header has the Bearer scheme but no token.", realm);
  if (rest.length > 1 || !shape.test(token)) throw unauthenticated("The bearer token is malformed.", realm);
  return token;
}

/** Verifies the request's bearer token and returns the account id; throws a 401 ApiError otherwise. */
export async function authenticate(authorization: string | undefined, env: Env): Promise<string> {
  const token = bearerToken(authorization, "billing", COMPACT_JWT);
  // Outside the try: a setting that does not parse is the operator's to fix (a 500 that says
  // so), not the caller's 401.
  const { auth } = settings(env);
  let payload: JWTPayload;
  try {
    payload = await verify(token, auth);
  } catch (err) {
    // A configuration mistake must be visible to operators, though callers only see a 401.
    if (!(err instanceof errors.JOSEError)) logEvent("auth_misconfigured", { error: String(err) });
    throw unauthenticated(tokenRefusal(err));
  }
  if (typeof payload.sub !== "string" || !ACCOUNT_ID.test(payload.sub)) throw unauthenticated("The token has no valid subject.");
  return payload.sub;
}

/** What a caller may be told about a refused token: expiry and "not yet" are theirs to fix; the rest is "invalid". */
function tokenRefusal(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "The token has expired.";
  if (err instanceof errors.JWTClaimValidationFailed && err.claim === "nbf") return "The token is not valid yet.";
  return "The token is invalid.";
}

async function verify(token: string, auth: Settings["auth"]): Promise<JWTPayload> {
  const common: JWTVerifyOptions = { requiredClaims: ["sub", "exp"], clockTolerance: 5 };
  if (auth.jwksUrl !== null) {
    // The schema refuses a JWKS URL without both; checked again so that a gap there fails closed.
    if (auth.issuer === null || auth.audience === null) throw new Error("AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE");
    let keys = remoteKeySets.get(auth.jwksUrl);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(auth.jwksUrl));
      remoteKeySets.set(auth.jwksUrl, keys);
    }
    const { payload } = await jwtVerify(token, keys, {
      ...common,
      algorithms: ["RS256", "ES256", "EdDSA"],
      issuer: auth.issuer,
      audience: auth.audience,
    });
    return payload;
  }
  if (auth.jwtSecret === null || auth.jwtSecret.length < 32) throw new Error("AUTH_JWT_SECRET is missing or shorter than 32 characters");
  const { payload } = await jwtVerify(token, await hmacKey(auth.jwtSecret), {
    ...common,
    algorithms: ["HS256"],
    ...(auth.issuer !== null ? { issuer: auth.issuer } : {}),
    ...(auth.audience !== null ? { audience: auth.audience } : {}),
  });
  return payload;
}

/** SHA-256 digests of the configured service tokens, computed once per set of tokens. */
const serviceDigests = new Map<string, Promise<ArrayBuffer[]>>();
let serviceTokenWarned = false;

function sha256(value: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
}

function serviceTokenDigests(tokens: string[]): Promise<ArrayBuffer[]> {
  // Tokens hold no comma (the setting is split on commas), so joining them names the set.
  const name = tokens.join(",");
  let digests = serviceDigests.get(name);
  if (!digests) {
    digests = Promise.all(tokens.map(sha256));
    serviceDigests.set(name, digests);
  }
  return digests;
}

/**
 * Checks the seller's backend's `Authorization: Bearer <SERVICE_TOKEN>`; throws a 401 ApiError
 * (realm "accounts") otherwise. Both sides are hashed with SHA-256 and the digests compared with
 * `timingSafeEqual`, against every configured token (no early exit), so neither a token's length
 * nor which token matched shows in the timing. No token configured: every request is refused.
 */
export async function authenticateService(authorization: string | undefined, env: Env): Promise<void> {
  const tokens = settings(env).auth.serviceTokens;
  if (tokens.length === 0) {
    if (!serviceTokenWarned) {
      serviceTokenWarned = true;
      logEvent("service_token_missing", { error: "SERVICE_TOKEN is not set: every /v1/accounts request is refused" });
    }
    throw unauthenticated("The seller API is not configured on this service.", "accounts");
  }
  const token = bearerToken(authorization, "accounts");
  const [presented, expected] = await Promise.all([sha256(token), serviceTokenDigests(tokens)]);
  let match = false;
  for (const digest of expected) {
    const equal = crypto.subtle.timingSafeEqual(presented, digest);
    match = match || equal;
  }
  if (!match) throw unauthenticated("The service token is invalid.", "accounts");
}
