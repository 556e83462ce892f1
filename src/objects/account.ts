// The Account object: one per account id. It remembers which Stripe customer belongs to the
// account, creates that customer (once: concurrent first top-ups share one creation, and the
// creation's Idempotency-Key guards retries), creates top-up PaymentIntents, and hosts the
// account's wallet (src/wallet/): spending, balance, ledger, the sync to Stripe.
//
// Stripe's customer search lags writes (up to a minute, an hour in incidents), so the customer
// is remembered durably the first time it is known and every later lookup is answered from
// storage. Concurrent first lookups share one in-flight promise, because the object admits
// other calls while it awaits Stripe.
//
// account (one row): account_id, customer_id, created_at, updated_at. (balance, currency and
//   balance_at are no longer written: the wallet keeps the account's figures.)

import { DurableObject } from "cloudflare:workers";
import type Stripe from "stripe";
import { defaultCurrency, type Env } from "../env.js";
import { logEvent } from "../log.js";
import { createStripe } from "../stripe/client.js";
import { customerOwner } from "../stripe/customers.js";
import { classifyStripeError } from "../stripe/errors.js";
import { topUpKey } from "../stripe/keys.js";
import { TOP_UP_MARKER } from "../credit/top-up.js";
import type { BalanceOutcome, LinesPage, ReportOutcome, SpendOutcome, SpendRequest, StripeEntryReport } from "../wallet/contract.js";
import type { BatchRow, WalletRow } from "../wallet/schema.js";
import { Wallet } from "../wallet/wallet.js";

export type CustomerLookup =
  { ok: true; customerId: string } | { ok: false; reason: "no_customer" } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

export type TopUpResult =
  | { ok: true; paymentIntentId: string; clientSecret: string; amount: number; currency: string }
  | { ok: false; reason: "idempotency_conflict" }
  | { ok: false; reason: "refused"; message: string }
  | { ok: false; reason: "currency_mismatch"; currency: string }
  | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

/** The wallet as stored, for tests and operators. */
export interface WalletInspection {
  wallet: WalletRow | null;
  sums: { total: number; held: number };
  batches: BatchRow[];
  owed: number;
}

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

/** Quotes a value for Stripe's search language: backslash-escape `\` and `'`. */
export function searchLiteral(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** The per-account Durable Object; its public methods are the RPC surface. */
export class AccountObject extends DurableObject<Env> {
  #stripe: Stripe | null = null;
  #lookup: Promise<CustomerLookup> | null = null;
  #creation: Promise<CustomerLookup> | null = null;
  /** An account with no customer, remembered briefly in memory so its requests do not each cost a search. */
  #noCustomerUntil = 0;
  #wallet: Wallet;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#wallet = new Wallet({
      storage: ctx.storage,
      env,
      stripe: () => this.#client,
      customer: (accountId) => this.customerFor(accountId),
      adoptCustomer: (accountId, customerId) => this.#remember(accountId, customerId),
      ownerOf: (customerId) => customerOwner(this.#client, customerId),
      log: logEvent,
    });
  }

  get #client(): Stripe {
    this.#stripe ??= createStripe(this.env, "credit");
    return this.#stripe;
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
    // One currency per wallet (Stripe keeps a customer's balance in one): refused before payment.
    const opened = await this.#wallet.ensureOpen(accountId);
    if (opened.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    const walletCurrency = this.#wallet.ledger.row()?.currency ?? null;
    if (walletCurrency !== null && walletCurrency !== currency) return { ok: false, reason: "currency_mismatch", currency: walletCurrency };
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

  /** A debit, hold, capture or release from the seller's backend, under its Idempotency-Key. */
  async spend(accountId: string, request: SpendRequest, idempotencyKey: string, fingerprint: string): Promise<SpendOutcome> {
    return this.#wallet.spend(accountId, request, idempotencyKey, fingerprint);
  }

  /** The wallet's figures: available, held, and when Stripe was last brought up to date. */
  async walletBalance(accountId: string): Promise<BalanceOutcome> {
    return this.#wallet.balance(accountId, defaultCurrency(this.env));
  }

  /** One page of the wallet's ledger, newest first; `cursor` is the last id of the previous page. */
  async walletLines(accountId: string, limit: number, cursor: string | null): Promise<LinesPage> {
    return this.#wallet.lines(accountId, limit, cursor);
  }

  /** A PaymentIntent object's credits and reversals, applied once each; ok once durable here. */
  async applyStripeEntries(accountId: string, reports: StripeEntryReport[]): Promise<ReportOutcome> {
    return this.#wallet.applyReports(accountId, reports);
  }

  /** Writes owed spending to Stripe and takes in Stripe's entries now (tests and operators; the alarm does it on its own). */
  async syncNow(accountId: string): Promise<{ ok: boolean; error: string | null }> {
    const opened = await this.#wallet.ensureOpen(accountId);
    if (opened.kind !== "open") return { ok: opened.kind === "no_customer", error: opened.kind === "unavailable" ? "unavailable" : null };
    await this.#wallet.sync();
    await this.#wallet.arm();
    const row = this.#wallet.ledger.row();
    return { ok: row?.sync_error === null, error: row?.sync_error ?? null };
  }

  /** Everything the wallet holds, for tests and operators. */
  async inspectWallet(): Promise<WalletInspection> {
    const ledger = this.#wallet.ledger;
    return { wallet: ledger.row(), sums: ledger.sums(), batches: ledger.batches(), owed: ledger.owedTotal() };
  }

  override async alarm(): Promise<void> {
    try {
      await this.#wallet.alarm();
    } catch (err) {
      // Never throw out of an alarm (the platform gives up after six retries): try again shortly.
      logEvent("wallet_alarm_failed", { error: String(err) });
      await this.ctx.storage.setAlarm(Date.now() + 30_000);
    }
  }

  #hasTable(): boolean {
    return this.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'account'").toArray().length > 0;
  }

  #rows(): AccountRow[] {
    if (!this.#hasTable()) return [];
    return this.ctx.storage.sql.exec<Record<string, SqlStorageValue>>("SELECT account_id, customer_id FROM account").toArray() as unknown as AccountRow[];
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
      // A customer made just now has no ledger: its wallet opens empty, with no Stripe read.
      this.#wallet.openNew(accountId, customer.id);
      logEvent("customer_created", { account: accountId, customer: customer.id });
      return { ok: true, customerId: customer.id };
    } catch (err) {
      logEvent("customer_create_failed", { account: accountId, error: classifyStripeError(err).message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
  }
}
