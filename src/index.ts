// The Worker: the Hono app as its fetch handler, and the Durable Object classes it binds.
// Where everything lives is in the README ("Where things live"); in short:
//   app.ts, routes/     the HTTP surface (thin: validate, authenticate, call an object, map the answer)
//   objects/            the Durable Objects; payment-intent/ is the one place that credits
//   credit/, wallet/    the rules and contracts of crediting and of spending
//   stripe/             every Stripe call (a gateway per resource), keys, error verdicts
//   events/             events to the seller's backend: outbox, queue consumer, dead letters
//   recharge/           auto-recharge: saved cards, off-session recharges started by wallet writes
//   settings.ts, env.ts the settings schema, and the generated bindings

import { buildApp } from "./app.js";
import type { Env } from "./env.js";
import { DEAD_LETTER_QUEUE } from "./events/contract.js";
import { keepDeadLetters } from "./events/dead-letters.js";
import { deliverBatch } from "./events/delivery.js";

export { AccountObject } from "./objects/account.js";
export { PaymentIntentObject } from "./objects/payment-intent/object.js";
export { CreditRegistry } from "./objects/registry.js";
export { StripeGovernor } from "./objects/governor.js";
export { RequestLimiter } from "./objects/limiter.js";
export { EventDeadLetters } from "./events/dead-letters.js";
export { CardIndex } from "./objects/card-index.js";

const app = buildApp();

export default {
  fetch: app.fetch,
  /** The EVENTS queue delivers to the seller; its dead-letter queue keeps what could not be delivered. */
  async queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
    if (batch.queue === DEAD_LETTER_QUEUE) await keepDeadLetters(batch, env);
    else await deliverBatch(batch, env);
  },
} satisfies ExportedHandler<Env>;
