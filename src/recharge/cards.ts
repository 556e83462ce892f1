// Saved cards: a top-up made with "save my card" (`setup_future_usage: "off_session"`) is noted
// when it is created; once its credit reaches the wallet, the PaymentIntent is read back with its
// payment method, and a card Stripe attached to this account's own customer becomes the saved
// card, filed in the card index (src/objects/card-index.ts) where `payment_method.detached`
// finds it. One saved card per account: the latest replaces the one before.

import { backoffMs } from "../objects/backoff.js";
import type { WalletRow } from "../wallet/schema.js";
import type { RechargeHost } from "./recharger.js";
import type { RechargeStore } from "./store.js";

/** A card to save is looked up this many times before it is given up. */
const SAVE_TRIES = 8;
/** A top-up with "save my card" that is not paid within a week is forgotten. */
const SAVE_WAIT_MS = 7 * 24 * 3600_000;

export class SavedCards {
  constructor(
    private readonly store: RechargeStore,
    private readonly host: Pick<RechargeHost, "stripe" | "indexCard" | "atomically" | "log">,
  ) {}

  /** A top-up made with "save my card": its card is saved once it is credited. Call inside a transaction. */
  noteSave(paymentIntentId: string): void {
    this.store.noteSave(paymentIntentId, Date.now());
  }

  /** Saves the next card that is due; false when none is. */
  async saveDue(wallet: WalletRow, now: number): Promise<boolean> {
    this.#write(() => this.store.forgetSavesBefore(now - SAVE_WAIT_MS));
    const due = this.store.dueSave(now);
    if (!due) return false;
    await this.#save(due.payment_intent_id, due.tries, wallet);
    return true;
  }

  async #save(paymentIntentId: string, tries: number, wallet: WalletRow): Promise<void> {
    const read = await this.host.stripe().paymentIntents.retrieveWithPaymentMethod(paymentIntentId);
    if (!read.ok) {
      if (read.failure.kind !== "not_found" && tries + 1 < SAVE_TRIES)
        this.#write(() => this.store.retrySave(paymentIntentId, Date.now() + backoffMs(tries + 1)));
      else this.#write(() => this.store.dropSave(paymentIntentId));
      this.host.log("card_save_failed", { account: wallet.account_id, payment_intent: paymentIntentId, error: read.failure.message });
      return;
    }
    const pi = read.value;
    const pm = typeof pi.payment_method === "object" ? pi.payment_method : null;
    const owner = typeof pm?.customer === "string" ? pm.customer : (pm?.customer?.id ?? null);
    // Only a card Stripe attached to this account's own customer, for off-session use.
    if (!pm || pi.status !== "succeeded" || pi.setup_future_usage !== "off_session" || owner !== wallet.customer_id) {
      this.host.log("card_not_saved", { account: wallet.account_id, payment_intent: paymentIntentId, status: pi.status, attached_to: owner });
      this.#write(() => this.store.dropSave(paymentIntentId));
      return;
    }
    try {
      await this.host.indexCard(pm.id, wallet.account_id);
    } catch (err) {
      this.host.log("card_save_failed", { account: wallet.account_id, payment_intent: paymentIntentId, error: String(err) });
      this.#write(() => this.store.retrySave(paymentIntentId, Date.now() + backoffMs(tries + 1)));
      return;
    }
    this.#write(() => {
      this.store.saveCard(pm.id, pm.card?.brand ?? null, pm.card?.last4 ?? null);
      this.store.dropSave(paymentIntentId);
    });
    this.host.log("card_saved", { account: wallet.account_id, payment_method: pm.id });
  }

  #write<T>(fn: () => T): T {
    return this.host.atomically(fn);
  }
}
