// The Account object: one per account id. It remembers which Stripe customer belongs to the
// account, creates that customer (once: concurrent first top-ups share one creation, and the
// creation's Idempotency-Key guards retries), creates top-up PaymentIntents, and serves the
// balance and the ledger.
//
// Stripe's customer search lags writes (up to a minute, an hour in incidents), so the customer
// is remembered durably the first time it is known and every later lookup is answered from
// storage. Concurrent first lookups share one in-flight promise, because the object admits
// other calls while it awaits Stripe.
//
// account (one row): account_id, customer_id, balance, currency, balance_at (ms; null = unknown),
//   created_at, updated_at

import { DurableObject } from "cloudflare:workers";
import type Stripe from "stripe";
import type { Env } from "../env.js";
import { logEvent } from "../log.js";
import { createStripe } from "../stripe/client.js";
import { classifyStripeError } from "../stripe/errors.js";
import { topUpKey } from "../stripe/keys.js";
import { TOP_UP_MARKER } from "../credit/top-up.js";

export type CustomerLookup =
  { ok: true; customerId: string } | { ok: false; reason: "no_customer" } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

export type TopUpResult =
  | { ok: true; paymentIntentId: string; clientSecret: string; amount: number; currency: string }
  | { ok: false; reason: "idempotency_conflict" }
  | { ok: false; reason: "refused"; message: string }
  | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

export type BalanceResult = { ok: true; balance: number; currency: string } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

/** One ledger line as the browser sees it: credit positive, debit negative. */
export interface LedgerLine {
  id: string;
  amount: number;
  currency: string;
  kind: "top_up" | "reversal" | "other";
  payment_intent_id: string | null;
  description: string | null;
  created: string;
}

export type LedgerPage =
  | { ok: true; data: LedgerLine[]; has_more: boolean; next_cursor: string | null }
  | { ok: false; reason: "bad_cursor" }
  | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

const SCHEMA = `CREATE TABLE IF NOT EXISTS account (
  account_id TEXT PRIMARY KEY,
  customer_id TEXT NOT NULL,
  balance INTEGER,
  currency TEXT,
  balance_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
)`;

interface AccountRow {
  account_id: string;
  customer_id: string;
  balance: number | null;
  currency: string | null;
  balance_at: number | null;
}

/** How long a remembered balance is served before Stripe is asked again (invoices also move it). */
const BALANCE_TTL_MS = 30_000;
const RETRY_AFTER_SECONDS = 2;
/** How long "this account has no customer" is answered from memory. */
const NO_CUSTOMER_MEMORY_MS = 60_000;

/** Quotes a value for Stripe's search language: backslash-escape `\` and `'`. */
export function searchLiteral(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** The per-account Durable Object; its public methods are the RPC surface. */
export class AccountObject extends DurableObject<Env> {
  #stripe: Stripe | null = null;
  #display: Stripe | null = null;
  #lookup: Promise<CustomerLookup> | null = null;
  #creation: Promise<CustomerLookup> | null = null;
  /** An account with no customer, remembered briefly in memory so its requests do not each cost a search. */
  #noCustomerUntil = 0;

  get #client(): Stripe {
    this.#stripe ??= createStripe(this.env, "credit");
    return this.#stripe;
  }

  /** For reads that only display something: they wait behind calls that credit. */
  get #displayClient(): Stripe {
    this.#display ??= createStripe(this.env, "display");
    return this.#display;
  }

  /**
   * The account's Stripe customer, from storage or, the first time, from Stripe's search.
   * `storageOnly`: answer without Stripe (for a caller over its request limit).
   */
  async customerFor(accountId: string, storageOnly = false): Promise<CustomerLookup> {
    const known = this.#row(accountId);
    if (known) return { ok: true, customerId: known.customer_id };
    if (storageOnly || Date.now() < this.#noCustomerUntil) return { ok: false, reason: "no_customer" };
    this.#lookup ??= this.#search(accountId).finally(() => {
      this.#lookup = null;
    });
    return this.#lookup;
  }

  /** The account's customer, created on first use. Concurrent callers share one creation. */
  async ensureCustomer(accountId: string): Promise<CustomerLookup> {
    this.#noCustomerUntil = 0;
    const found = await this.customerFor(accountId);
    if (found.ok || found.reason === "unavailable") return found;
    this.#creation ??= this.#create(accountId).finally(() => {
      this.#creation = null;
    });
    return this.#creation;
  }

  /**
   * A PaymentIntent for a top-up of `amount` `currency`, carrying the top-up marker: only
   * PaymentIntents with it become credit. With a client Idempotency-Key, the Stripe key is
   * scoped to the account (`topUpKey`), so a double-clicked "Pay" makes one PaymentIntent and
   * another account's key can never collide with it.
   */
  async createTopUp(accountId: string, amount: number, currency: string, clientKey: string | null): Promise<TopUpResult> {
    const customer = await this.ensureCustomer(accountId);
    if (!customer.ok) return customer.reason === "unavailable" ? customer : { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    try {
      const pi = await this.#client.paymentIntents.create(
        {
          amount,
          currency,
          customer: customer.customerId,
          automatic_payment_methods: { enabled: true },
          description: "Prepaid credit top-up",
          metadata: { account_id: accountId, ...TOP_UP_MARKER },
        },
        clientKey ? { idempotencyKey: await topUpKey(accountId, clientKey) } : {},
      );
      return { ok: true, paymentIntentId: pi.id, clientSecret: pi.client_secret ?? "", amount: pi.amount, currency: pi.currency };
    } catch (err) {
      const failure = classifyStripeError(err);
      logEvent("top_up_failed", { account: accountId, error: failure.message });
      if (failure.rawType === "idempotency_error") return { ok: false, reason: "idempotency_conflict" };
      if (failure.kind === "permanent") return { ok: false, reason: "refused", message: failure.message };
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
  }

  /** The account's credit (Stripe's negative customer balance, shown positive) and its currency. */
  async balance(accountId: string, defaultCurrency: string): Promise<BalanceResult> {
    const row = this.#row(accountId);
    if (!row) {
      const found = await this.customerFor(accountId);
      if (!found.ok) return found.reason === "no_customer" ? { ok: true, balance: 0, currency: defaultCurrency } : found;
      return this.balance(accountId, defaultCurrency);
    }
    if (row.balance !== null && row.balance_at !== null && Date.now() - row.balance_at < BALANCE_TTL_MS) {
      return { ok: true, balance: -row.balance, currency: row.currency ?? defaultCurrency };
    }
    try {
      const customer = await this.#displayClient.customers.retrieve(row.customer_id);
      if (customer.deleted) return { ok: true, balance: 0, currency: defaultCurrency };
      this.#storeBalance(accountId, customer.balance, customer.currency ?? null);
      return { ok: true, balance: -customer.balance, currency: customer.currency ?? defaultCurrency };
    } catch (err) {
      logEvent("balance_read_failed", { account: accountId, error: classifyStripeError(err).message });
      // A stale figure beats none; it is at most as old as Stripe has been unreachable.
      if (row.balance !== null) return { ok: true, balance: -row.balance, currency: row.currency ?? defaultCurrency };
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
  }

  /** A PaymentIntent object reports the customer's balance right after writing to the ledger. */
  async noteBalance(customerId: string, endingBalance: number, currency: string): Promise<void> {
    const rows = this.#rows().filter((r) => r.customer_id === customerId);
    for (const row of rows) this.#storeBalance(row.account_id, endingBalance, currency);
  }

  /** One page of the account's ledger, newest first; `cursor` is the last id of the previous page. */
  async ledger(accountId: string, limit: number, cursor: string | null): Promise<LedgerPage> {
    const found = await this.customerFor(accountId);
    if (!found.ok) return found.reason === "no_customer" ? { ok: true, data: [], has_more: false, next_cursor: null } : found;
    try {
      const page = await this.#displayClient.customers.listBalanceTransactions(found.customerId, { limit, ...(cursor ? { starting_after: cursor } : {}) });
      const data = page.data.map(lineOf);
      return { ok: true, data, has_more: page.has_more, next_cursor: page.has_more ? (data.at(-1)?.id ?? null) : null };
    } catch (err) {
      const failure = classifyStripeError(err);
      // A cursor from another customer or made up: Stripe does not know it for this customer.
      if (cursor && (failure.kind === "permanent" || failure.kind === "not_found")) return { ok: false, reason: "bad_cursor" };
      logEvent("ledger_read_failed", { account: accountId, error: failure.message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
  }

  #hasTable(): boolean {
    return this.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'account'").toArray().length > 0;
  }

  #rows(): AccountRow[] {
    if (!this.#hasTable()) return [];
    return this.ctx.storage.sql
      .exec<Record<string, SqlStorageValue>>("SELECT account_id, customer_id, balance, currency, balance_at FROM account")
      .toArray() as unknown as AccountRow[];
  }

  #row(accountId: string): AccountRow | null {
    return this.#rows().find((r) => r.account_id === accountId) ?? null;
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

  #storeBalance(accountId: string, balance: number, currency: string | null): void {
    this.ctx.storage.sql.exec(
      "UPDATE account SET balance = ?, currency = COALESCE(?, currency), balance_at = ?, updated_at = ? WHERE account_id = ?",
      balance,
      currency,
      Date.now(),
      Date.now(),
      accountId,
    );
  }

  async #search(accountId: string): Promise<CustomerLookup> {
    let found: Stripe.Customer[];
    try {
      const result = await this.#client.customers.search({ query: `metadata['account_id']:${searchLiteral(accountId)}`, limit: 10 });
      found = result.data.filter((c) => c.metadata?.account_id === accountId);
    } catch (err) {
      logEvent("customer_lookup_failed", { account: accountId, error: classifyStripeError(err).message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
    // Not remembered when absent: an account may get its customer later, and a stranger's
    // guesses must not fill storage.
    if (found.length === 0) {
      this.#noCustomerUntil = Date.now() + NO_CUSTOMER_MEMORY_MS;
      return { ok: false, reason: "no_customer" };
    }
    // Two customers for one account should never happen; take the oldest, deterministically.
    found.sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
    if (found.length > 1) logEvent("duplicate_customers", { account: accountId, ids: found.map((c) => c.id) });
    const customerId = (found[0] as Stripe.Customer).id;
    this.#remember(accountId, customerId);
    return { ok: true, customerId };
  }

  async #create(accountId: string): Promise<CustomerLookup> {
    try {
      // The key makes a retried creation (after a lost answer, or from a restarted object)
      // return the same customer for as long as Stripe keeps keys; the durable row covers after.
      const customer = await this.#client.customers.create({ metadata: { account_id: accountId } }, { idempotencyKey: `customer:${accountId}` });
      this.#remember(accountId, customer.id);
      logEvent("customer_created", { account: accountId, customer: customer.id });
      return { ok: true, customerId: customer.id };
    } catch (err) {
      logEvent("customer_create_failed", { account: accountId, error: classifyStripeError(err).message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
  }
}

/** Stripe's balance transaction as a ledger line: Stripe's negative (credit) shown positive. */
function lineOf(tx: Stripe.CustomerBalanceTransaction): LedgerLine {
  const pi = tx.metadata?.payment_intent ?? null;
  const operation = tx.metadata?.operation;
  return {
    id: tx.id,
    amount: -tx.amount,
    currency: tx.currency,
    kind: pi && !operation ? "top_up" : pi && operation ? "reversal" : "other",
    payment_intent_id: pi,
    description: tx.description ?? null,
    created: new Date(tx.created * 1000).toISOString(),
  };
}
