// What the PaymentIntent object tells others, after its own record is written: the account's
// wallet (every ledger entry of this PI, exactly once each, by its balance transaction id) and
// the operator registry (listed while anything is owed). The record here is the truth; both
// are told again until they have it.

import type { CreditRecord } from "../../credit/contract.js";
import { operatorState } from "../../credit/operator-state.js";
import { walletReportsOwed } from "../../credit/wallet-reports.js";
import { logEvent } from "../../log.js";
import type { ReportOutcome, StripeEntryReport } from "../../wallet/contract.js";
import type { AttentionEntry } from "../contract.js";
import { accountObject, registryObject } from "../stubs.js";
import type { CreditContext } from "./context.js";

type Told = "told" | "failed" | "wrong_account";

export class Bookkeeping {
  constructor(private readonly ctx: CreditContext) {}

  /** This PI's ledger entries the account's wallet has not acknowledged yet (src/credit/wallet-reports.ts). */
  walletOwed(rec: CreditRecord): StripeEntryReport[] {
    return walletReportsOwed(rec, this.ctx.store.adjustments(), this.ctx.store.reported());
  }

  /**
   * Tells the account's wallet about every entry it lacks; true once it has them all (or no
   * wallet will ever take them). A failure is not dropped: the entries stay owed, and follow-up
   * work (the alarm) tells it again.
   *
   * The account is the one the record names. If its wallet says the customer is not its own
   * (the PI's metadata named another account, or none is named), the money belongs to the
   * account whose customer it is, by the customer's `metadata.account_id` in Stripe: asked
   * once per report. A customer that no account's wallet will take is logged for an operator;
   * the wallet's sync on that customer, if any, still takes the entry in from Stripe's ledger.
   */
  async tellWallet(rec: CreditRecord): Promise<boolean> {
    const owed = this.walletOwed(rec);
    if (owed.length === 0) return true;
    const ids = owed.map((r) => r.balance_transaction_id);
    const { store, stripe } = this.ctx;
    if (rec.account_id) {
      const told = await this.#tell(rec, rec.account_id, owed);
      if (told !== "wrong_account") return told === "told";
    }
    const owner = await stripe.customers.ownerOf(rec.customer_id as string);
    if (owner.kind === "unavailable") {
      store.journal("wallet", "unavailable", `whose customer is ${rec.customer_id}`);
      return false;
    }
    if (owner.kind === "account" && owner.accountId !== rec.account_id) {
      store.journal("wallet", "account", `${rec.customer_id} belongs to ${owner.accountId}, not ${rec.account_id ?? "none"}`);
      const told = await this.#tell(store.update({ account_id: owner.accountId }), owner.accountId, owed);
      if (told !== "wrong_account") return told === "told";
    }
    store.journal("wallet", "no_wallet", `${rec.customer_id}: ${ids.join(",")}`);
    logEvent("wallet_report_unroutable", { payment_intent: rec.payment_intent_id, customer: rec.customer_id, account: rec.account_id, entries: ids });
    store.noteReported(ids);
    return true;
  }

  /**
   * The account whose customer paid, for an event about this PI: the record's account when its
   * object knows this customer as its own (storage only, no Stripe call), else the customer's
   * owner in Stripe (`metadata.account_id`). Never merely the account the PI's metadata names,
   * which whoever created the PaymentIntent chose. Null when neither says.
   */
  async payerAccount(rec: Pick<CreditRecord, "customer_id" | "account_id">): Promise<string | null> {
    const customer = rec.customer_id;
    if (!customer) return null;
    if (rec.account_id) {
      const accountId = rec.account_id;
      const known = await accountObject(this.ctx.env, accountId)
        .knownCustomer(accountId)
        .catch(() => null);
      if (known?.ok && known.customerId === customer) return accountId;
    }
    const owner = await this.ctx.stripe.customers.ownerOf(customer);
    return owner.kind === "account" ? owner.accountId : null;
  }

  async #tell(rec: CreditRecord, accountId: string, owed: StripeEntryReport[]): Promise<Told> {
    const ids = owed.map((r) => r.balance_transaction_id);
    const { store } = this.ctx;
    let told: ReportOutcome;
    try {
      told = await accountObject(this.ctx.env, accountId).applyStripeEntries(accountId, owed);
    } catch (err) {
      store.journal("wallet", "failed", String(err));
      logEvent("wallet_report_failed", { payment_intent: rec.payment_intent_id, error: String(err) });
      return "failed";
    }
    if (!told.ok && told.reason === "wrong_account") return "wrong_account";
    if (!told.ok) {
      store.journal("wallet", "unavailable", ids.join(","));
      return "failed";
    }
    store.noteReported(ids);
    store.journal("wallet", "told", `${accountId}: ${ids.join(",")}`);
    return "told";
  }

  /** Whether nothing at all is owed on this PI any more: credited, marked, every adjustment written, the wallet told. */
  settled(rec: CreditRecord): boolean {
    const adjustments = this.ctx.store.adjustments();
    return (
      rec.state === "credited" &&
      (rec.mark_state === "done" || rec.mark_state === "off") &&
      this.walletOwed(rec).length === 0 &&
      adjustments.every((a) => a.state === "done")
    );
  }

  /** The registry's entry for this PI as it stands (what an operator's list shows). */
  entry(rec: CreditRecord): AttentionEntry {
    const adjustments = this.ctx.store.adjustments();
    return {
      payment_intent_id: rec.payment_intent_id,
      state: operatorState(rec, adjustments, this.walletOwed(rec).length > 0),
      customer_id: rec.customer_id,
      amount: rec.amount,
      currency: rec.currency,
      reason: rec.reason,
      last_error: rec.last_error,
      retry_count: rec.retry_count,
      next_retry_at: rec.next_retry_at,
      updated_at: rec.updated_at,
      // Reversals and restorations still owed: the ones an operator must look at, and those waiting to be written.
      adjustments: adjustments.flatMap((a) =>
        a.state === "done" ? [] : [{ operation: a.operation, state: a.state, direction: a.direction, amount: a.amount, last_error: a.last_error }],
      ),
    };
  }

  /**
   * Keeps the operator registry in step: listed while waiting for a retry or an operator,
   * removed once nothing is owed. Best effort: the record here is the truth.
   */
  async list(rec: CreditRecord): Promise<void> {
    const registry = registryObject(this.ctx.env);
    try {
      if (this.settled(rec)) {
        await registry.remove(rec.payment_intent_id);
        if (rec.listed) this.ctx.store.update({ listed: 0 });
      } else {
        await registry.upsert(this.entry(rec));
        if (!rec.listed) this.ctx.store.update({ listed: 1 });
      }
    } catch (err) {
      logEvent("registry_update_failed", { payment_intent: rec.payment_intent_id, error: String(err) });
    }
  }
}
