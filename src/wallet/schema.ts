// The wallet's tables, in the account object's SQLite storage (one object per account, so one
// wallet per object).
//
// wallet (one row, once open)
//   account_id, customer_id   whose wallet; the Stripe customer whose balance mirrors it
//   currency                  the first entry's; every later entry and request must match
//   available, held           running totals, changed in the same transaction as each entry
//   opened_at                 ms; opened_from: the newest Stripe entry the opening included
//   scan_since                Stripe seconds: how far back the next intake of foreign entries reads
//   sync_due_at               ms: when owed spending must be written to Stripe (null: nothing owed)
//   sync_retries, sync_error  the sync's backoff and its last failure
//   synced_at                 ms: the last sync that wrote everything owed and took in Stripe's entries
// entries: the append-only ledger. `amount` changes the total credit (available + held), `held`
//   the held part (see contract.ts). `stripe_tx` is the Stripe balance transaction the entry is
//   (credits, reversals, foreign entries: each applied once, UNIQUE). `batch` is set on spending
//   entries only: 0 = owed to Stripe, n = written by sync batch n.
// holds: one row per hold; status active | captured | released | expired.
// batches: one Stripe write of spending, recorded before it is sent (the ledger-write protocol).
// idempotency: the first answer to each Idempotency-Key, replayed for later requests with it.
// balance_alerts (one row, once set): the account's own low-balance threshold (null: the
//   service's default), whether a balance.low is outstanding (low_sent), and a revision counted
//   by threshold changes, which names the events they cause (src/events/wallet-events.ts).

export const WALLET_SCHEMA = `
CREATE TABLE IF NOT EXISTS wallet (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  account_id TEXT NOT NULL,
  customer_id TEXT NOT NULL,
  currency TEXT,
  available INTEGER NOT NULL DEFAULT 0,
  held INTEGER NOT NULL DEFAULT 0,
  opened_at INTEGER NOT NULL,
  opened_from TEXT,
  scan_since INTEGER NOT NULL DEFAULT 0,
  sync_due_at INTEGER,
  sync_retries INTEGER NOT NULL DEFAULT 0,
  sync_error TEXT,
  synced_at INTEGER
);
CREATE TABLE IF NOT EXISTS entries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  amount INTEGER NOT NULL,
  held INTEGER NOT NULL DEFAULT 0,
  currency TEXT NOT NULL,
  stripe_tx TEXT UNIQUE,
  payment_intent_id TEXT,
  hold_id TEXT,
  description TEXT,
  metadata TEXT,
  batch INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_batch ON entries (batch) WHERE batch IS NOT NULL;
CREATE TABLE IF NOT EXISTS holds (
  id TEXT PRIMARY KEY,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  status TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  description TEXT,
  created_at INTEGER NOT NULL,
  ended_at INTEGER
);
CREATE INDEX IF NOT EXISTS holds_active ON holds (expires_at) WHERE status = 'active';
CREATE TABLE IF NOT EXISTS batches (
  n INTEGER PRIMARY KEY,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  entries INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 1,
  sent INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'pending',
  stripe_tx TEXT UNIQUE,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  done_at INTEGER
);
CREATE TABLE IF NOT EXISTS idempotency (
  key TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  result TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_at);
CREATE TABLE IF NOT EXISTS balance_alerts (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  threshold INTEGER,
  low_sent INTEGER NOT NULL DEFAULT 0,
  revision INTEGER NOT NULL DEFAULT 0
);`;

export interface WalletRow {
  account_id: string;
  customer_id: string;
  currency: string | null;
  available: number;
  held: number;
  opened_at: number;
  opened_from: string | null;
  scan_since: number;
  sync_due_at: number | null;
  sync_retries: number;
  sync_error: string | null;
  synced_at: number | null;
}

export interface EntryRow {
  seq: number;
  id: string;
  kind: string;
  amount: number;
  held: number;
  currency: string;
  stripe_tx: string | null;
  payment_intent_id: string | null;
  hold_id: string | null;
  description: string | null;
  metadata: string | null;
  batch: number | null;
  created_at: number;
}

export interface HoldRow {
  id: string;
  amount: number;
  currency: string;
  status: "active" | "captured" | "released" | "expired";
  expires_at: number;
  description: string | null;
  created_at: number;
  ended_at: number | null;
}

export interface BatchRow {
  n: number;
  amount: number;
  currency: string;
  entries: number;
  attempt: number;
  sent: number;
  state: "pending" | "done";
  stripe_tx: string | null;
  last_error: string | null;
  created_at: number;
  done_at: number | null;
}
