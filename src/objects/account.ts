// The Account object: one per account id. It remembers which Stripe customer belongs to the
// account, creates that customer (once: concurrent first top-ups share one creation, and the
// creation's Idempotency-Key guards retries), creates top-up PaymentIntents, and hosts the
// account's wallet (src/wallet/: spending, balance, ledger, the sync to Stripe) and its
// auto-recharge (src/recharge/: started by the wallet's own writes).
//
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import type { ThresholdView } from "../events/wallet-events.js";
import { logEvent } from "../log.js";
import { record, recordSpending } from "../metrics/facts.js";
import type { AutoRechargeView, ConfigureOutcome, RechargeSettings } from "../recharge/contract.js";
import { AutoRecharge } from "../recharge/recharger.js";
import { RECHARGE_SCHEMA } from "../recharge/schema.js";
import { settings } from "../settings.js";
import { StripeGateway } from "../stripe/gateway.js";
import type { BalanceOutcome, LinesPage, ReportOutcome, SpendOutcome, SpendRequest, StripeEntryReport } from "../wallet/contract.js";
import { Wallet } from "../wallet/wallet.js";
import type { CustomerLookup, TopUpResult, WalletInspection } from "./contract.js";
import { AccountCustomer } from "./account-customer.js";
import { cardIndexObject, paymentIntentObject } from "./stubs.js";

const RETRY_AFTER_SECONDS = 2;

/** The per-account Durable Object; its public methods are the RPC surface. */
export class AccountObject extends DurableObject<Env> {
  #stripe: StripeGateway | null = null;
  #customer: AccountCustomer;
  #wallet: Wallet;
  #recharge: AutoRecharge;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const wallet = new Wallet({
      storage: ctx.storage,
      env,
      stripe: () => this.#gateway,
      customer: (accountId) => this.customerFor(accountId),
      adoptCustomer: (accountId, customerId) => this.#customer.remember(accountId, customerId),
      log: logEvent,
      schema: [RECHARGE_SCHEMA],
    });
    this.#wallet = wallet;
    // A customer made just now has no ledger: its wallet opens empty, with no Stripe read, in the pairing's transaction.
    this.#customer = new AccountCustomer(
      ctx.storage,
      () => this.#gateway,
      (accountId, customerId) => wallet.openNew(accountId, customerId),
    );
    this.#recharge = new AutoRecharge({
      tables: () => wallet.ledger.tables(),
      atomically: (fn) => wallet.ledger.atomically(fn),
      wallet: () => wallet.ledger.row(),
      credited: (paymentIntentId) => wallet.ledger.hasTopUp(paymentIntentId),
      outbox: wallet.outbox,
      stripe: () => this.#gateway,
      // The PaymentIntent object credits a paid recharge as it credits any top-up (a webhook's notice).
      handOver: async (paymentIntentId) => (await paymentIntentObject(env, paymentIntentId).notify(paymentIntentId, { kind: "succeeded" })).accepted,
      indexCard: async (paymentMethod, accountId) => {
        await cardIndexObject(env, paymentMethod).link(paymentMethod, accountId);
      },
      settle: () => wallet.settle(),
      defaultCurrency: () => settings(env).topUps.defaultCurrency,
      log: logEvent,
      record: (fact) => record(env, fact),
    });
    // After the wallet's own events, so a recharge's events follow the balance alert that caused it.
    wallet.ledger.observe((entry, _before, after) => this.#recharge.onEntry(entry, after));
    wallet.schedule(() => this.#recharge.dueAt());
  }

  get #gateway(): StripeGateway {
    this.#stripe ??= new StripeGateway(this.env, { priority: "credit" });
    return this.#stripe;
  }

  /** The account's Stripe customer, from storage or, the first time, from Stripe's search. */
  async customerFor(accountId: string): Promise<CustomerLookup> {
    return this.#customer.find(accountId);
  }

  /**
   * The account's Stripe customer from storage alone: never a Stripe call, so a caller over its
   * request limit can still be answered what costs nothing.
   */
  async knownCustomer(accountId: string): Promise<CustomerLookup> {
    return this.#customer.stored(accountId);
  }

  /** The account's customer, created on first use. Concurrent callers share one creation. */
  async ensureCustomer(accountId: string): Promise<CustomerLookup> {
    return this.#customer.ensure(accountId);
  }

  /**
   * A PaymentIntent for a top-up of `amount` `currency`, carrying the top-up marker: only
   * PaymentIntents with it become credit. With a client Idempotency-Key, a double-clicked "Pay"
   * makes one PaymentIntent (the gateway scopes the key to the account).
   */
  async createTopUp(accountId: string, amount: number, currency: string, clientKey: string | null, savePaymentMethod = false): Promise<TopUpResult> {
    const customer = await this.ensureCustomer(accountId);
    if (!customer.ok) return customer.reason === "unavailable" ? customer : { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    // One currency per wallet (Stripe keeps a customer's balance in one): refused before payment.
    const opened = await this.#wallet.ensureOpen(accountId);
    if (opened.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    const walletCurrency = this.#wallet.ledger.row()?.currency ?? null;
    if (walletCurrency !== null && walletCurrency !== currency) return { ok: false, reason: "currency_mismatch", currency: walletCurrency };
    const created = await this.#gateway.paymentIntents.createTopUp({
      accountId,
      customerId: customer.customerId,
      amount,
      currency,
      clientKey,
      savePaymentMethod,
    });
    if (created.ok) {
      const pi = created.value;
      if (savePaymentMethod) this.#wallet.ledger.atomically(() => this.#recharge.cards.noteSave(pi.id));
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
    const outcome = await this.#wallet.spend(accountId, request, idempotencyKey, fingerprint);
    if (outcome.kind === "result" && !outcome.replayed) recordSpending(this.env, outcome.result);
    this.#rechargeIfDue();
    return outcome;
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
    const outcome = await this.#wallet.applyReports(accountId, reports);
    this.#rechargeIfDue();
    return outcome;
  }

  /** Auto-recharge as it stands: settings, saved card, this month's total, the open (or last) recharge. Storage only. */
  async autoRecharge(): Promise<AutoRechargeView> {
    return this.#recharge.view();
  }

  /** Sets auto-recharge (turning it on needs a saved card); a balance already below the threshold starts a recharge. */
  async configureAutoRecharge(accountId: string, next: RechargeSettings): Promise<ConfigureOutcome> {
    if (next.enabled) {
      const opened = await this.#wallet.ensureOpen(accountId);
      if (opened.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    }
    const outcome = this.#wallet.ledger.atomically(() => this.#recharge.configure(next));
    await this.#wallet.settle();
    this.#rechargeIfDue();
    return outcome;
  }

  /** Stripe detached a card (payment_method.detached): forgotten if it is this account's saved card. */
  async forgetCard(paymentMethod: string): Promise<{ forgotten: boolean }> {
    const forgotten = this.#wallet.ledger.atomically(() => this.#recharge.forgetCard(paymentMethod));
    await this.#wallet.settle();
    return { forgotten };
  }

  /**
   * Starts the recharge step a write made due without making the writer wait for Stripe. The
   * alarm the write armed covers it if this object goes away first.
   */
  #rechargeIfDue(): void {
    const due = this.#recharge.dueAt();
    if (due === null || due > Date.now()) return;
    this.#recharge.run().catch((err: unknown) => logEvent("recharge_run_failed", { error: String(err) }));
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
      await this.#recharge.run();
      await this.#wallet.alarm();
    } catch (err) {
      // Never throw out of an alarm (the platform gives up after six retries): try again shortly.
      logEvent("wallet_alarm_failed", { error: String(err) });
      await this.ctx.storage.setAlarm(Date.now() + 30_000);
    }
  }
}
