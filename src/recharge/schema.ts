// Auto-recharge's tables, in the account object's SQLite storage beside the wallet's (created
// with them, src/wallet/ledger.ts, outside any transaction).
//
// auto_recharge (one row, once set)
//   enabled, threshold, amount, monthly_limit   the user's settings (minor units)
//   payment_method, card_brand, card_last4      the saved card (null: none)
//   failures, last_failure_at    failed recharges in a row, and when the last one failed
//   disabled_reason              declined | card_removed: why it switched itself off
//   revision                     counted by every switch-off, which names its event
// recharges: one row per recharge, recorded (pending) in the wallet write that started it,
//   before its PaymentIntent is created under `recharge:{account}:{n}`
//   status         pending | processing | action_required | succeeded | failed | canceled
//   amount, currency, customer_id, payment_method   the PaymentIntent's parameters, fixed at start
//   month          the calendar month (UTC) it counts against
//   sent           1 once the creation was sent (its outcome may be unknown); tries: how often
//   due_at         when the next step runs (create, tell the PaymentIntent object, cancel at
//                  expires_at); null: nothing to do but wait (for the credit)
//   payment_intent_id, client_secret   once Stripe answered (the secret only while action_required)
//   handed         1 once the PaymentIntent object was told the payment succeeded
//   expires_at     action_required: when it is cancelled
//   code, decline_code, last_error     why it failed, or the last transient error
// card_saves: top-ups made with "save my card", until credited (then due_at is set and the
//   card is read from Stripe and saved) or a week old

export const RECHARGE_SCHEMA = `
CREATE TABLE IF NOT EXISTS auto_recharge (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  enabled INTEGER NOT NULL DEFAULT 0,
  threshold INTEGER,
  amount INTEGER,
  monthly_limit INTEGER,
  payment_method TEXT,
  card_brand TEXT,
  card_last4 TEXT,
  failures INTEGER NOT NULL DEFAULT 0,
  last_failure_at INTEGER,
  disabled_reason TEXT,
  revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recharges (
  n INTEGER PRIMARY KEY,
  status TEXT NOT NULL,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  payment_method TEXT NOT NULL,
  month TEXT NOT NULL,
  sent INTEGER NOT NULL DEFAULT 0,
  tries INTEGER NOT NULL DEFAULT 0,
  due_at INTEGER,
  payment_intent_id TEXT,
  client_secret TEXT,
  handed INTEGER NOT NULL DEFAULT 0,
  expires_at INTEGER,
  code TEXT,
  decline_code TEXT,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recharges_payment_intent ON recharges (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS card_saves (
  payment_intent_id TEXT PRIMARY KEY,
  due_at INTEGER,
  tries INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);`;

export interface AutoRechargeRow {
  enabled: number;
  threshold: number | null;
  amount: number | null;
  monthly_limit: number | null;
  payment_method: string | null;
  card_brand: string | null;
  card_last4: string | null;
  failures: number;
  last_failure_at: number | null;
  disabled_reason: "declined" | "card_removed" | null;
  revision: number;
}

export interface RechargeRow {
  n: number;
  status: "pending" | "processing" | "action_required" | "succeeded" | "failed" | "canceled";
  amount: number;
  currency: string;
  customer_id: string;
  payment_method: string;
  month: string;
  sent: number;
  tries: number;
  due_at: number | null;
  payment_intent_id: string | null;
  client_secret: string | null;
  handed: number;
  expires_at: number | null;
  code: string | null;
  decline_code: string | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface CardSaveRow {
  payment_intent_id: string;
  due_at: number | null;
  tries: number;
  created_at: number;
}
