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
import type { Env } from "../env.js";
import type { ThresholdView } from "../events/wallet-events.js";
import { logEvent } from "../log.js";
import { settings } from "../settings.js";
import { StripeGateway } from "../stripe/gateway.js";
import type { BalanceOutcome, LinesPage, ReportOutcome, SpendOutcome, SpendRequest, StripeEntryReport } from "../wallet/contract.js";
import { Wallet } from "../wallet/wallet.js";
import type { CustomerLookup, TopUpResult, WalletInspection } from "./contract.js";

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

/** The per-account Durable Object; its public methods are the RPC surface. */
export class AccountObject extends DurableObject<Env> {
  #stripe: StripeGateway | null = null;
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
      stripe: () => this.#gateway,
      customer: (accountId) => this.customerFor(accountId),
      adoptCustomer: (accountId, customerId) => this.#remember(accountId, customerId),
      log: logEvent,
    });
  }

  get #gateway(): StripeGateway {
    this.#stripe ??= new StripeGateway(this.env, { priority: "credit" });
    return this.#stripe;
  }

  /** The account's Stripe customer, from storage or, the first time, from Stripe's search. */
  async customerFor(accountId: string): Promise<CustomerLookup> {
    const known = this.#stored(accountId);
    if (known.ok || Date.now() < this.#noCustomerUntil) return known;
    this.#lookup ??= this.#search(accountId).finally(() => {
      this.#lookup = null;
    });
    return this.#lookup;
  }

  /**
   * The account's Stripe customer from storage alone: never a Stripe call, so a caller over its
   * request limit can still be answered what costs nothing.
   */
  async knownCustomer(accountId: string): Promise<CustomerLookup> {
    return this.#stored(accountId);
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
   * PaymentIntents with it become credit. With a client Idempotency-Key, a double-clicked "Pay"
   * makes one PaymentIntent (the gateway scopes the key to the account).
   */
  async createTopUp(accountId: string, amount: number, currency: string, clientKey: string | null): Promise<TopUpResult> {
    const customer = await this.ensureCustomer(accountId);
    if (!customer.ok) return customer.reason === "unavailable" ? customer : { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    // One currency per wallet (Stripe keeps a customer's balance in one): refused before payment.
    const opened = await this.#wallet.ensureOpen(accountId);
    if (opened.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    const walletCurrency = this.#wallet.ledger.row()?.currency ?? null;
    if (walletCurrency !== null && walletCurrency !== currency) return { ok: false, reason: "currency_mismatch", currency: walletCurrency };
    const created = await this.#gateway.paymentIntents.createTopUp({ accountId, customerId: customer.customerId, amount, currency, clientKey });
    if (created.ok) {
      const pi = created.value;
      return { ok: true, paymentIntentId: pi.id, clientSecret: pi.client_secret ?? "", amount: pi.amount, currency: pi.currency };
    }
    const failure = created.failure;
    logEvent("top_up_failed", { account: accountId, error: failure.message });
    if (failure.rawType === "idempotency_error") return { ok: false, reason: "idempotency_conflict" };
    if (failure.kind === "permanent") return { ok: false, reason: "refused", message: failure.message };
    return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
  }

  /** A debit, hold, capture or release from the seller's backend, under its Idempotency-Key. */
  async spend(accountId: string, request: SpendRequest, idempotencyKey: string, fingerprint: string): Promise<SpendOutcome> {
    return this.#wallet.spend(accountId, request, idempotencyKey, fingerprint);
  }

  /** The wallet's figures: available, held, and when Stripe was last brought up to date. */
  async walletBalance(accountId: string): Promise<BalanceOutcome> {
    return this.#wallet.balance(accountId, settings(this.env).topUps.defaultCurrency);
  }

  /** One page of the wallet's ledger, newest first; `cursor` is the last id of the previous page. */
  async walletLines(accountId: string, limit: number, cursor: string | null): Promise<LinesPage> {
    return this.#wallet.lines(accountId, limit, cursor);
  }

  /** A PaymentIntent object's credits and reversals, applied once each; ok once durable here. */
  async applyStripeEntries(accountId: string, reports: StripeEntryReport[]): Promise<ReportOutcome> {
    return this.#wallet.applyReports(accountId, reports);
  }

  /** The account's settings: its low-balance threshold, and whether it is its own or the default. */
  async accountSettings(): Promise<ThresholdView> {
    return this.#wallet.events.threshold();
  }

  /** Sets the account's low-balance threshold (null: back to LOW_BALANCE_THRESHOLD). */
  async updateAccountSettings(lowBalanceThreshold: number | null): Promise<ThresholdView> {
    return this.#wallet.setThreshold(lowBalanceThreshold);
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
    const { ledger, batches } = this.#wallet;
    return { wallet: ledger.row(), sums: ledger.sums(), batches: batches.all(), owed: batches.owedTotal() };
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

  #stored(accountId: string): CustomerLookup {
    const known = this.#row(accountId);
    return known ? { ok: true, customerId: known.customer_id } : { ok: false, reason: "no_customer" };
  }

  #remember(accountId: string, customerId: string): void {
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.ctx.storage.sql.exec(SCHEMA);
      this.ctx.storage.sql.exec(
        "INSERT INTO account (account_id, customer_id, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
        accountId,
        customerId,
        now,
        now,
      );
    });
  }

  async #search(accountId: string): Promise<CustomerLookup> {
    const found = await this.#gateway.customers.searchByAccount(accountId);
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
    this.#remember(accountId, oldest.id);
    return { ok: true, customerId: oldest.id };
  }

  async #create(accountId: string): Promise<CustomerLookup> {
    // The key makes a retried creation (after a lost answer, or from a restarted object) return
    // the same customer for as long as Stripe keeps keys; the durable row covers after.
    const created = await this.#gateway.customers.createForAccount(accountId);
    if (!created.ok) {
      logEvent("customer_create_failed", { account: accountId, error: created.failure.message });
      return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
    const customerId = created.value.id;
    // The pairing and the wallet land together. A customer made just now has no ledger: its
    // wallet opens empty, with no Stripe read.
    this.ctx.storage.transactionSync(() => {
      this.#remember(accountId, customerId);
      this.#wallet.openNew(accountId, customerId);
    });
    logEvent("customer_created", { account: accountId, customer: customerId });
    return { ok: true, customerId };
  }
}
