// Security headers on everything the Worker answers: the page and the API. The page keeps its
// bearer token in session storage, so an injected script would be an account takeover; its
// Content-Security-Policy is what stops one: scripts only from the page's own origin and Stripe.js's.
//
// The page is served by the Worker, not straight from the asset store (wrangler.toml [assets]:
// run_worker_first = ["/"], binding ASSETS). A public/_headers file would be simpler, but it is
// static, and the policy must name where Stripe.js comes from, which is a setting (STRIPE_JS_URL:
// Stripe's own in production, the emulator's stand-in locally). Only the page's document runs the
// Worker first: a policy binds the document that loads a script or stylesheet, not the file, so
// app.js and style.css go on being served from the asset store without running the Worker.

import { createMiddleware } from "hono/factory";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv } from "./http.js";
import { settings, type Settings } from "./settings.js";

/**
 * The operator console's policy: it loads nothing but its own files and talks only to its own
 * origin (the operator API), and it submits no form anywhere, so its token cannot be sent away.
 */
const OPERATOR_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The documents served through the Worker, and each one's policy; wrangler.toml's run_worker_first names the same paths. */
const PAGE_POLICIES: Record<string, (s: Settings) => string> = { "/": pagePolicy, "/operator": () => OPERATOR_POLICY };

/**
 * Stripe.js's origins, from Stripe's security guide (docs.stripe.com/security/guide, Content
 * Security Policy): its script, its frames (the Payment Element, 3D Secure) and its API.
 */
const STRIPE_JS = ["https://js.stripe.com", "https://*.js.stripe.com"];
const STRIPE_FRAMES = [...STRIPE_JS, "https://hooks.stripe.com"];
const STRIPE_API = "https://api.stripe.com";

/** An API answer is never a document to render: it may load, frame or run nothing. */
const API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Hono's default (180 days, subdomains included); sent only where the request came over https, to a host that is not local. */
const HSTS = "max-age=15552000; includeSubDomains";
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

const policies = new WeakMap<Settings, string>();

/**
 * The page's policy. A STRIPE_JS_URL on another origin than Stripe's is the emulator's stand-in,
 * which also talks to the API on its own origin (Stripe.js talks to api.stripe.com): that origin
 * is added for scripts and for connections, and nothing else is.
 */
export function pagePolicy(s: Settings): string {
  let policy = policies.get(s);
  if (policy !== undefined) return policy;
  const jsOrigin = new URL(s.stripe.jsUrl).origin;
  const other = STRIPE_JS.includes(jsOrigin) ? [] : [jsOrigin];
  policy = [
    "default-src 'self'",
    ["script-src 'self'", ...STRIPE_JS, ...other].join(" "),
    ["connect-src 'self'", STRIPE_API, ...other].join(" "),
    ["frame-src", ...STRIPE_FRAMES].join(" "),
    // data: for the page's empty favicon (<link rel="icon" href="data:,">), which stops the browser asking for /favicon.ico.
    "img-src 'self' data:",
    "style-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
  policies.set(s, policy);
  return policy;
}

/** Hono's standard set, minus what is decided per request below (the policy, HSTS). */
const standard = secureHeaders({
  strictTransportSecurity: false,
  referrerPolicy: "no-referrer",
  xContentTypeOptions: "nosniff",
  // Agrees with frame-ancestors 'none', for browsers that know only this header.
  xFrameOptions: "DENY",
  // Stripe.js may open a window for some payment methods; the page must still hear back from it.
  crossOriginOpenerPolicy: "same-origin-allow-popups",
});

/** Requests answered with the page, by their context: they get the page's policy; every other answer gets the API's. */
const pagePolicies = new WeakMap<object, string>();

/**
 * Every answer gets the headers, errors included: the page's policy when `pageDocument` served
 * the page, the API's otherwise (an error met while serving the page is a JSON answer).
 */
export const securityHeaders = createMiddleware<AppEnv>(async (c, next) => {
  await standard(c, next);
  c.res.headers.set("Content-Security-Policy", pagePolicies.get(c) ?? API_POLICY);
  const url = new URL(c.req.url);
  if (url.protocol === "https:" && !LOCAL_HOSTS.has(url.hostname)) c.res.headers.set("Strict-Transport-Security", HSTS);
});

/**
 * GET or HEAD of the page's path: the page's document from the asset store (wrangler.toml
 * [assets]). A middleware of its own, after securityHeaders, so that an error here (a setting
 * that does not parse, the asset store failing) is rendered by the app's error boundary first
 * and then given the headers like any other answer.
 */
export const pageDocument = createMiddleware<AppEnv>(async (c, next) => {
  const policyOf = Object.hasOwn(PAGE_POLICIES, c.req.path) ? PAGE_POLICIES[c.req.path] : undefined;
  if (!((c.req.method === "GET" || c.req.method === "HEAD") && policyOf)) return next();
  // Before serving: a STRIPE_JS_URL that does not parse stops the page (a SettingsError), not just its policy.
  const policy = policyOf(settings(c.env));
  const asset = await c.env.ASSETS.fetch(c.req.raw);
  c.res = new Response(asset.body, asset);
  pagePolicies.set(c, policy);
});
