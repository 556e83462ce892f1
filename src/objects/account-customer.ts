// The account's Stripe customer, inside the account object: found once by Stripe's search, or
// created once (concurrent first top-ups share one creation, and the creation's
// Idempotency-Key guards retries), then remembered.
//
// Stripe's customer search lags writes (up to a minute, an hour in incidents), so the customer
// is remembered durably the first time it is known and every later lookup is answered from
// storage. Concurrent first lookups share one in-flight promise, because the object admits
// other calls while it awaits Stripe.
//
// account (one row): account_id, customer_id, created_at, updated_at. (balance, currency and
//   balance_at are no longer written: the wallet keeps the account's figures.)

import { logEvent } from "../log.js";
import type { StripeGateway } from "../stripe/gateway.js";
import type { CustomerLookup } from "./contract.js";

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
}

const RETRY_AFTER_SECONDS = 2;
/** How long "this account has no customer" is answered from memory. */
const NO_CUSTOMER_MEMORY_MS = 60_000;

export class AccountCustomer {
  #lookup: Promise<CustomerLookup> | null = null;
  #creation: Promise<CustomerLookup> | null = null;
  /** An account with no customer, remembered briefly in memory so its requests do not each cost a search. */
  #noCustomerUntil = 0;

  /** `created` runs inside the transaction that remembers a customer this service just created. */
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly stripe: () => Pick<StripeGateway, "customers">,
    private readonly created: (accountId: string, customerId: string) => void,
  ) {}

  /** From storage or, the first time, from Stripe's search. */
  async find(accountId: string): Promise<CustomerLookup> {
    const known = this.stored(accountId);
    if (known.ok || Date.now() < this.#noCustomerUntil) return known;
    this.#lookup ??= this.#search(accountId).finally(() => {
      this.#lookup = null;
    });
    return this.#lookup;
  }

  /** From storage alone: never a Stripe call. */
  stored(accountId: string): CustomerLookup {
    const known = this.#row(accountId);
    return known ? { ok: true, customerId: known.customer_id } : { ok: false, reason: "no_customer" };
  }

  /** Created on first use; concurrent callers share one creation. */
  async ensure(accountId: string): Promise<CustomerLookup> {
    this.#noCustomerUntil = 0;
    const found = await this.find(accountId);
    if (found.ok || found.reason === "unavailable") return found;
    this.#creation ??= this.#create(accountId).finally(() => {
      this.#creation = null;
    });
    return this.#creation;
  }

  /** Remembers a customer Stripe said belongs to the account (the first pairing stands). */
  remember(accountId: string, customerId: string): void {
    const now = Date.now();
    this.storage.transactionSync(() => {
      this.storage.sql.exec(SCHEMA);
      this.storage.sql.exec(
        "INSERT INTO account (account_id, customer_id, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
        accountId,
        customerId,
        now,
        now,
      );
    });
  }

  #row(accountId: string): AccountRow | null {
    const hasTable = this.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'account'").toArray().length > 0;
    if (!hasTable) return null;
    const rows = this.storage.sql.exec<Record<string, SqlStorageValue>>("SELECT account_id, customer_id FROM account").toArray() as unknown as AccountRow[];
    return rows.find((r) => r.account_id === accountId) ?? null;
  }

  async #search(accountId: string): Promise<CustomerLookup> {
    const found = await this.stripe().customers.searchByAccount(accountId);
    if (!found.ok) {
      logEvent("customer_lookup_failed", { account: accountId, error: found.failure.message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
    // Not remembered when absent: an account may get its customer later, and a stranger's
    // guesses must not fill storage.
    const [oldest] = found.value;
    if (!oldest) {
      this.#noCustomerUntil = Date.now() + NO_CUSTOMER_MEMORY_MS;
      return { ok: false, reason: "no_customer" };
    }
    // Two customers for one account should never happen; the oldest counts (the gateway orders them).
    if (found.value.length > 1) logEvent("duplicate_customers", { account: accountId, ids: found.value.map((c) => c.id) });
    this.remember(accountId, oldest.id);
    return { ok: true, customerId: oldest.id };
  }

  async #create(accountId: string): Promise<CustomerLookup> {
    // The key makes a retried creation (after a lost answer, or from a restarted object) return
    // the same customer for as long as Stripe keeps keys; the durable row covers after.
    const created = await this.stripe().customers.createForAccount(accountId);
    if (!created.ok) {
      logEvent("customer_create_failed", { account: accountId, error: created.failure.message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
    const customerId = created.value.id;
    // The pairing and the wallet land together.
    this.storage.transactionSync(() => {
      this.remember(accountId, customerId);
      this.created(accountId, customerId);
    });
    logEvent("customer_created", { account: accountId, customer: customerId });
    return { ok: true, customerId };
  }
}
