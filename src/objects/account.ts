// The Account object: one per account id, remembering which Stripe customer belongs to it.
// Stripe's customer search lags writes (up to a minute, an hour in incidents), so the first
// successful lookup is stored durably and every later one is answered from storage. Concurrent
// first lookups share one search (the in-flight promise), since the object admits other calls
// while it awaits Stripe.
//
// account (one row): account_id, customer_id, created_at, updated_at

import { DurableObject } from "cloudflare:workers";
import type Stripe from "stripe";
import type { Env } from "../env.js";
import { logEvent } from "../log.js";
import { createStripe } from "../stripe/client.js";
import { classifyStripeError } from "../stripe/errors.js";

export type CustomerLookup =
  | { ok: true; customerId: string }
  | { ok: false; reason: "no_customer" }
  | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

const SCHEMA = `CREATE TABLE IF NOT EXISTS account (
  account_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
)`;

/** Quotes a value for Stripe's search language: backslash-escape `\` and `'`. */
export function searchLiteral(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** The per-account Durable Object; its public methods are the RPC surface. */
export class AccountObject extends DurableObject<Env> {
  #stripe: Stripe | null = null;
  #lookup: Promise<CustomerLookup> | null = null;

  /** The Stripe customer of `accountId`, from storage or, the first time, from Stripe's search. */
  async customerFor(accountId: string): Promise<CustomerLookup> {
    const known = this.#stored(accountId);
    if (known) return { ok: true, customerId: known };
    this.#lookup ??= this.#search(accountId).finally(() => {
      this.#lookup = null;
    });
    return this.#lookup;
  }

  #stored(accountId: string): string | null {
    const hasTable = this.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'account'").toArray().length > 0;
    if (!hasTable) return null;
    const row = this.ctx.storage.sql.exec<{ customer_id: string }>("SELECT customer_id FROM account WHERE account_id = ?", accountId).toArray()[0];
    return row?.customer_id ?? null;
  }

  #remember(accountId: string, customerId: string): void {
    const now = Date.now();
    this.ctx.storage.sql.exec(SCHEMA);
    this.ctx.storage.sql.exec(
      "INSERT INTO account (account_id, customer_id, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
      accountId,
      customerId,
      now,
      now,
    );
  }

  async #search(accountId: string): Promise<CustomerLookup> {
    this.#stripe ??= createStripe(this.env);
    let found: Stripe.Customer[];
    try {
      const result = await this.#stripe.customers.search({ query: `metadata['account_id']:${searchLiteral(accountId)}`, limit: 10 });
      found = result.data.filter((c) => c.metadata?.account_id === accountId);
    } catch (err) {
      logEvent("customer_lookup_failed", { account: accountId, error: classifyStripeError(err).message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: 2 };
    }
    // Not remembered when absent: an account may get its customer later, and a stranger's
    // guesses must not fill storage.
    if (found.length === 0) return { ok: false, reason: "no_customer" };
    // Two customers for one account should never happen; take the oldest, deterministically.
    found.sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
    if (found.length > 1) logEvent("duplicate_customers", { account: accountId, ids: found.map((c) => c.id) });
    const customerId = (found[0] as Stripe.Customer).id;
    this.#remember(accountId, customerId);
    return { ok: true, customerId };
  }
}
