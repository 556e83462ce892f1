// Stubs for every Durable Object, by name: the one place that knows how each object is named.
// `getByName` builds the stub in one call; a stub is cheap and holds no connection until used,
// so callers build a fresh one per call (a stub that saw an exception may be broken).

import type { Env } from "../env.js";
import { DEAD_LETTERS_NAME } from "../events/contract.js";
import { GOVERNOR_NAME, REGISTRY_NAME } from "./contract.js";

/** The PaymentIntent object for `paymentIntentId`: every confirm, webhook and alarm of that PI. */
export function paymentIntentObject(env: Env, paymentIntentId: string) {
  return env.PAYMENT_INTENTS.getByName(paymentIntentId);
}

/** The account object for `accountId`: its Stripe customer, top-ups and wallet. */
export function accountObject(env: Env, accountId: string) {
  return env.ACCOUNTS.getByName(accountId);
}

/** The credit registry: the operator's list of credits waiting or stuck, and unparseable events. */
export function registryObject(env: Env) {
  return env.CREDIT_REGISTRY.getByName(REGISTRY_NAME);
}

/** The Stripe governor: one budget for every Stripe call. */
export function governorObject(env: Env) {
  return env.STRIPE_GOVERNOR.getByName(GOVERNOR_NAME);
}

/** The request limiter for `key` (`confirm:acct:…`, `topup:ip:…`): one token bucket. */
export function limiterObject(env: Env, key: string) {
  return env.LIMITER.getByName(key);
}

/** The dead-letter archive: events the queue gave up delivering, for an operator to redeliver. */
export function deadLettersObject(env: Env) {
  return env.DEAD_LETTERS.getByName(DEAD_LETTERS_NAME);
}

/** The saved card `paymentMethod`'s entry in the card index: which account saved it. */
export function cardIndexObject(env: Env, paymentMethod: string) {
  return env.CARD_INDEX.getByName(paymentMethod);
}
