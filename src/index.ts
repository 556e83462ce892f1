// The Worker: the Hono app as its fetch handler, and the Durable Object classes it binds.
// Where everything lives is in the README ("Where things live"); in short:
//   app.ts, routes/     the HTTP surface (thin: validate, authenticate, call an object, map the answer)
//   objects/            the Durable Objects; payment-intent/ is the one place that credits
//   credit/, wallet/    the rules and contracts of crediting and of spending
//   stripe/             every Stripe call (a gateway per resource), keys, error verdicts
//   settings.ts, env.ts the settings schema, and the generated bindings

import { buildApp } from "./app.js";

export { AccountObject } from "./objects/account.js";
export { PaymentIntentObject } from "./objects/payment-intent/object.js";
export { CreditRegistry } from "./objects/registry.js";
export { StripeGovernor } from "./objects/governor.js";
export { RequestLimiter } from "./objects/limiter.js";

export default buildApp();
