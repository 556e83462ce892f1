// The Worker: the Hono app as its fetch handler, and the Durable Object classes it binds.
//   src/app.ts                    HTTP surface: CORS, error boundary, routes
//   src/routes/                   one module per resource (billing), schemas, object stubs
//   src/auth.ts                   who is calling (JWT)
//   src/objects/payment-intent.ts the credit protocol: the one place that credits
//   src/objects/credit-store.ts   its durable record (schema documented there)
//   src/objects/account.ts        account ↔ Stripe customer
//   src/objects/registry.ts       the operator's list of credits waiting or stuck
//   src/objects/governor.ts       one budget for every Stripe call (Stripe's rate limit)
//   src/objects/limiter.ts        request limits per account and per client address
//   src/routes/operator.ts        operator routes (service token)
//   src/credit/                   pure policy (may this PI be credited?) and RPC result types
//   src/stripe/                   the client, Idempotency-Keys, error classification

import { buildApp } from "./app.js";

export { AccountObject } from "./objects/account.js";
export { PaymentIntentObject } from "./objects/payment-intent.js";
export { CreditRegistry } from "./objects/registry.js";
export { StripeGovernor } from "./objects/governor.js";
export { RequestLimiter } from "./objects/limiter.js";

export default buildApp();
