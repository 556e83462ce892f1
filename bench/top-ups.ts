// Paid top-ups made straight in the emulator, for the benchmark's credit rows: each is a
// PaymentIntent as POST /billing/top_ups makes it (the top-up marker, the account's customer),
// paid with the test card, its events recorded (and delivered only when the emulator's webhook
// URL is set). Shared by bench/run.ts and bench/profile.ts.

import { SignJWT } from "jose";
import type { Emulator } from "../test/emulator/emulator.js";
import { createCustomer } from "../test/emulator/customers.js";
import { createPaymentIntent, succeed } from "../test/emulator/payment-intents.js";
import { TOP_UP_MARKER } from "../src/credit/top-up.js";

export interface TopUp {
  account: string;
  /** The account's browser token. */
  token: string;
  pi: string;
  customer: string;
}

export interface TopUps {
  /** A signed-in browser's token for `account`. */
  token: (account: string) => Promise<string>;
  /**
   * `count` succeeded PaymentIntents over accounts of `perAccount` each. On this service
   * (`system.name` "edge") each account is first shown its balance, so that it knows its customer
   * (as after a first top-up).
   */
  prepare: (system: { name: string; url: string }, count: number, perAccount: number, amount?: number) => Promise<TopUp[]>;
  /** Credits the emulator's ledger holds for these PaymentIntents. */
  creditsFor: (pis: Set<string>) => number;
}

export function topUps(emu: Emulator, jwtSecret: string): TopUps {
  let accountSeq = 0;
  const key = new TextEncoder().encode(jwtSecret);
  const token = (account: string) => new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(account).setIssuedAt().setExpirationTime("2h").sign(key);
  return {
    token,
    prepare: async (system, count, perAccount, amount = 1000) => {
      const out: TopUp[] = [];
      for (let i = 0; i < count; i += perAccount) {
        const account = `bench_${system.name}_${++accountSeq}`;
        const customer = createCustomer(emu.store, { metadata: { account_id: account } }, false);
        const t = await token(account);
        if (system.name === "edge") {
          const res = await fetch(`${system.url}/billing/balance`, { headers: { authorization: `Bearer ${t}` } });
          if (!res.ok) throw new Error(`warming account ${account}: ${res.status}`);
        }
        for (let j = 0; j < perAccount && i + j < count; j++) {
          // A top-up as POST /billing/top_ups makes it: only those are credited.
          const pi = createPaymentIntent(
            emu.store,
            { amount, currency: "usd", customer: customer.id, metadata: { account_id: account, ...TOP_UP_MARKER } },
            false,
          );
          pi.payment_method = "pm_card_visa";
          succeed(emu.store, emu.webhooks, pi, { id: null, idempotency_key: null });
          out.push({ account, token: t, pi: pi.id, customer: customer.id });
        }
      }
      return out;
    },
    creditsFor: (pis) => {
      let n = 0;
      for (const txs of emu.store.balanceTransactions.values())
        for (const tx of txs) if (pis.has(tx.metadata.payment_intent ?? "") && !tx.metadata.operation) n++;
      return n;
    },
  };
}
