// The card index: one object per saved card (named by its PaymentMethod id), remembering which
// account saved it. Stripe's `payment_method.detached` event names only the card, and a detached
// card no longer names its customer, so this is how the webhook finds the account that must
// forget it. Sharded by card: no single object sees every save.
//
// card (one row): payment_method, account_id, linked_at.

import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";
import { logEvent } from "../log.js";
import { accountObject } from "./stubs.js";

const SCHEMA = `CREATE TABLE IF NOT EXISTS card (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  payment_method TEXT NOT NULL,
  account_id TEXT NOT NULL,
  linked_at INTEGER NOT NULL
)`;

export class CardIndex extends DurableObject<Env> {
  /** The account that saved this card (the latest, should two ever have). */
  async link(paymentMethod: string, accountId: string): Promise<void> {
    this.ctx.storage.sql.exec(SCHEMA);
    this.ctx.storage.sql.exec(
      "INSERT INTO card (id, payment_method, account_id, linked_at) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, linked_at = excluded.linked_at",
      paymentMethod,
      accountId,
      Date.now(),
    );
  }

  async accountOf(): Promise<string | null> {
    return this.#row()?.account_id ?? null;
  }

  /**
   * Stripe detached the card: its account forgets it (and switches auto-recharge off if it was
   * on). Throws if the account could not be told, so the webhook answers 503 and Stripe retries.
   */
  async detached(paymentMethod: string): Promise<{ account_id: string | null; forgotten: boolean }> {
    const row = this.#row();
    if (!row || row.payment_method !== paymentMethod) return { account_id: null, forgotten: false };
    const { forgotten } = await accountObject(this.env, row.account_id).forgetCard(paymentMethod);
    this.ctx.storage.sql.exec("DELETE FROM card");
    logEvent("card_detached", { payment_method: paymentMethod, account: row.account_id, forgotten });
    return { account_id: row.account_id, forgotten };
  }

  #row(): { payment_method: string; account_id: string } | null {
    const exists = this.ctx.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'card'").toArray().length > 0;
    if (!exists) return null;
    return this.ctx.storage.sql.exec<{ payment_method: string; account_id: string }>("SELECT payment_method, account_id FROM card").toArray()[0] ?? null;
  }
}
