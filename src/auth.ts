// Who is calling: `Authorization: Bearer <JWT>`, whose `sub` is the account id. Tokens are
// verified with jose: HS256 under AUTH_JWT_SECRET, or an identity provider's keys from
// AUTH_JWKS_URL, in which case issuer and audience are required (without them a token the
// provider issued for any other application would be accepted here).

import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from "jose";
import type { Env } from "./env.js";
import { ApiError } from "./errors.js";
import { ACCOUNT_ID } from "./ids.js";
import { logEvent } from "./log.js";


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

function unauthenticated(message: string): ApiError {
  return new ApiError(401, "unauthenticated", message, {}, { "WWW-Authenticate": 'Bearer realm="billing"' });
}

/** Verifies the request's bearer token and returns the account id; throws a 401 ApiError otherwise. */
export async function authenticate(authorization: string | undefined, env: Env): Promise<string> {
  const match = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(authorization?.trim() ?? "");
  if (!match) throw unauthenticated("A bearer token is required.");
  const token = match[1] as string;
  let payload: JWTPayload;
  try {
    payload = await verify(token, env);
  } catch (err) {
    // A configuration mistake must be visible to operators, though callers only see a 401.
    if (!(err instanceof errors.JOSEError)) logEvent("auth_misconfigured", { error: String(err) });
    throw unauthenticated("The token is invalid or expired.");
  }
  if (typeof payload.sub !== "string" || !ACCOUNT_ID.test(payload.sub)) throw unauthenticated("The token has no valid subject.");
  return payload.sub;
}

async function verify(token: string, env: Env): Promise<JWTPayload> {
  const common: JWTVerifyOptions = { requiredClaims: ["sub", "exp"], clockTolerance: 5 };
  if (env.AUTH_JWKS_URL) {
    if (!env.AUTH_ISSUER || !env.AUTH_AUDIENCE) throw new Error("AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE");
    let keys = remoteKeySets.get(env.AUTH_JWKS_URL);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(env.AUTH_JWKS_URL));
      remoteKeySets.set(env.AUTH_JWKS_URL, keys);
    }
    const { payload } = await jwtVerify(token, keys, {
      ...common,
      algorithms: ["RS256", "ES256", "EdDSA"],
      issuer: env.AUTH_ISSUER,
      audience: env.AUTH_AUDIENCE,
    });
    return payload;
  }
  if (!env.AUTH_JWT_SECRET || env.AUTH_JWT_SECRET.length < 32) throw new Error("AUTH_JWT_SECRET is missing or shorter than 32 characters");
  const { payload } = await jwtVerify(token, await hmacKey(env.AUTH_JWT_SECRET), {
    ...common,
    algorithms: ["HS256"],
    ...(env.AUTH_ISSUER ? { issuer: env.AUTH_ISSUER } : {}),
    ...(env.AUTH_AUDIENCE ? { audience: env.AUTH_AUDIENCE } : {}),
  });
  return payload;
}
