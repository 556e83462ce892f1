// The outbox's guarantees, at the storage level: an event exists exactly when its fact's
// transaction committed, a fact produced twice (before or after it was sent) is one event, a send that fails keeps the events
// and says when to try again, and they survive the object that produced them (a new instance on
// the same storage sends them). The wallet case runs a real wallet on an account object's
// storage with a queue that refuses, then with the real one, as a restarted object would.

import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { eventId, type ServiceEvent } from "../../src/events/contract.js";
import { Outbox, type EventSender } from "../../src/events/outbox.js";
import { logEvent } from "../../src/log.js";
import { Wallet, type WalletHost } from "../../src/wallet/wallet.js";
import { newAccountId } from "../helpers.js";
import { accountStub, fundedAccount } from "../wallet/helpers.js";

function event(fact: string): ServiceEvent {
  return {
    id: eventId("balance.low", fact),
    type: "balance.low",
    created: new Date().toISOString(),
    data: { account_id: fact, available: 1, held: 0, currency: "usd", threshold: 5 },
  };
}

/** A sender that records what it was given, and fails while `failing` is set. */
function recordingSender() {
  const sent: ServiceEvent[][] = [];
  const state = { failing: false, gate: null as Promise<void> | null };
  const send: EventSender = async (events) => {
    if (state.gate) await state.gate;
    if (state.failing) throw new Error("queue unavailable");
    sent.push(events);
  };
  return { sent, state, send };
}

describe("the outbox", () => {
  it("keeps no event for a transaction that rolled back, and one event for a fact added twice", async () => {
    await runInDurableObject(accountStub(newAccountId("outbox")), async (_i, state) => {
      const { sent, send } = recordingSender();
      const outbox = new Outbox(state.storage, send, logEvent);
      expect(() =>
        state.storage.transactionSync(() => {
          outbox.add(event("rolled-back"));
          throw new Error("the fact's write failed");
        }),
      ).toThrow("the fact's write failed");
      expect(outbox.waiting()).toBe(0);
      outbox.add(event("twice"));
      outbox.add(event("twice"));
      expect(outbox.waiting()).toBe(1);
      await outbox.flush();
      expect(sent.flat().map((e) => e.id)).toEqual([eventId("balance.low", "twice")]);
      expect(outbox.waiting()).toBe(0);
      // The same fact produced again after it was sent (another path to it) is not sent again.
      outbox.add(event("twice"));
      expect(outbox.waiting()).toBe(0);
      await outbox.flush();
      expect(sent.flat()).toHaveLength(1);
    });
  });

  it("keeps events whose send failed, with a retry time (their due time), and sends them once the queue takes them", async () => {
    await runInDurableObject(accountStub(newAccountId("outbox")), async (_i, state) => {
      const { sent, state: sender, send } = recordingSender();
      const outbox = new Outbox(state.storage, send, logEvent);
      sender.failing = true;
      outbox.add(event("a"));
      outbox.add(event("b"));
      const before = Date.now();
      await outbox.flush();
      expect(outbox.waiting()).toBe(2);
      const retryAt = outbox.dueAt();
      expect(retryAt).not.toBeNull();
      expect(retryAt as number).toBeGreaterThanOrEqual(before + 1000);
      // A second failure backs off further (the retry time never goes backwards past the first).
      await outbox.flush();
      expect(outbox.dueAt() as number).toBeGreaterThanOrEqual(before + 1000);

      // Another instance on the same storage (the object restarted) sends what was kept.
      const restarted = new Outbox(state.storage, send, logEvent);
      sender.failing = false;
      await restarted.flush();
      expect(sent.flat().map((e) => e.id)).toEqual([eventId("balance.low", "a"), eventId("balance.low", "b")]);
      expect(restarted.waiting()).toBe(0);
      expect(restarted.dueAt()).toBeNull();
    });
  });

  it("shares one flush between concurrent callers and sends what arrives while a send is on its way", async () => {
    await runInDurableObject(accountStub(newAccountId("outbox")), async (_i, state) => {
      const { sent, state: sender, send } = recordingSender();
      let open!: () => void;
      sender.gate = new Promise<void>((r) => (open = r));
      const outbox = new Outbox(state.storage, send, logEvent);
      outbox.add(event("first"));
      const one = outbox.flush();
      const two = outbox.flush();
      outbox.add(event("meanwhile"));
      open();
      await Promise.all([one, two]);
      // Each event sent exactly once, in two sends (the second drained what arrived meanwhile).
      expect(sent.map((batch) => batch.map((e) => e.id))).toEqual([[eventId("balance.low", "first")], [eventId("balance.low", "meanwhile")]]);
      expect(outbox.waiting()).toBe(0);
    });
  });
});

describe("a wallet whose queue refuses", () => {
  it("keeps the crossing's event, arms its alarm for the retry, and sends it from the alarm of a restarted object", async () => {
    const { accountId } = await fundedAccount(1000);
    const stub = accountStub(accountId);
    await stub.updateAccountSettings(600);
    const refusing = { ...env, EVENTS: { send: () => Promise.reject(new Error("queue down")), sendBatch: () => Promise.reject(new Error("queue down")) } };
    const host = (state: DurableObjectState, hostEnv: typeof env): WalletHost => ({
      storage: state.storage,
      env: hostEnv,
      stripe: () => {
        throw new Error("no Stripe call is expected");
      },
      customer: () => Promise.reject(new Error("no customer lookup is expected")),
      adoptCustomer: () => undefined,
      log: logEvent,
    });
    await runInDurableObject(stub, async (_i, state) => {
      const wallet = new Wallet(host(state, refusing as unknown as typeof env));
      const outcome = await wallet.spend(accountId, { op: "debit", amount: 500, currency: "usd" }, "crossing-debit", "fp");
      expect(outcome).toMatchObject({ kind: "result", result: { ok: true } });
      // The debit is done and its balance.low kept: the queue's refusal changed nothing else.
      expect(wallet.ledger.row()?.available).toBe(500);
      expect(wallet.outbox.waiting()).toBe(1);
      const retryAt = wallet.outbox.dueAt();
      expect(retryAt).not.toBeNull();
      const alarm = await state.storage.getAlarm();
      expect(alarm).not.toBeNull();
      expect(alarm as number).toBeLessThanOrEqual(retryAt as number);

      // The object restarts with a working queue: its alarm sends the kept event.
      const restarted = new Wallet(host(state, env));
      await restarted.alarm();
      expect(restarted.outbox.waiting()).toBe(0);
    });
  });
});
