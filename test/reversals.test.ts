// Refunds and disputes take credit back, exactly once per refund or dispute and never more than
// was credited; a won dispute gives it back. Driven by the emulator's own refunds and disputes
// and their signed events, with the ledger, the object's amounts and the balance route checked
// after every step.

import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { buildApp } from "../src/app.js";
import type { Env } from "../src/env.js";
import {
  authed,
  balanceOf,
  confirm,
  deliver,
  emu,
  eventsFor,
  json,
  ledgerFor,
  paidThroughService,
  piObject,
  settledCredit,
  stripeRequests,
  waitForObject,
} from "./helpers.js";

/** Delivers every not-yet-delivered event of `type` for the PI, then lets the object act. */
async function deliverNew(type: string, paymentIntentId: string, seen: Set<string>): Promise<void> {
  for (const e of await eventsFor(type, paymentIntentId)) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    expect((await deliver(e.id)).status).toBe(200);
  }
}

async function credited(amount: number) {
  const paid = await paidThroughService(amount);
  expect((await confirm(paid.token, paid.pi.id)).status).toBe(200);
  return { ...paid, seen: new Set<string>() };
}

/** Waits for the object to settle with `net` left, and checks the ledger, the amounts and the balance route agree. */
async function expectNet(p: Awaited<ReturnType<typeof credited>>, amount: number, net: number, ledgerAmounts: number[]): Promise<void> {
  const i = await waitForObject(p.pi.id, (x) => settledCredit(x) && x.amounts?.net === net);
  expect(i.amounts).toEqual({ credited: amount, reversed: amount - net, net });
  const ledger = await ledgerFor(p.customerId, p.pi.id);
  // Stripe's sign: negative credits the customer, positive debits.
  expect(ledger.map((tx) => tx.amount).sort((a, b) => a - b)).toEqual([...ledgerAmounts].sort((a, b) => a - b));
  expect(await balanceOf(p.token)).toEqual({ balance: net, currency: "usd" });
}

describe("refunds", () => {
  it("a full refund takes the whole credit back, once, even when its event is redelivered", async () => {
    const p = await credited(1000);
    await expectNet(p, 1000, 1000, [-1000]);
    await emu(`/payment_intents/${p.pi.id}/refund`, {});
    await deliverNew("charge.refunded", p.pi.id, p.seen);
    await expectNet(p, 1000, 0, [-1000, 1000]);

    for (const id of p.seen) expect((await deliver(id)).status).toBe(200);
    await expectNet(p, 1000, 0, [-1000, 1000]);
  });

  it("two partial refunds: each taken back once, in either delivery order", async () => {
    const p = await credited(1000);
    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 300 });
    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 200 });
    const events = await eventsFor("charge.refunded", p.pi.id);
    expect(events).toHaveLength(2);
    // The later event (cumulative 500) first, then the earlier one (300): nothing is taken twice.
    for (const e of [...events].reverse()) expect((await deliver(e.id)).status).toBe(200);
    await expectNet(p, 1000, 500, [-1000, 500]);
  });

  it("two partial refunds delivered in order: 300 then 200", async () => {
    const p = await credited(1000);
    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 300 });
    await deliverNew("charge.refunded", p.pi.id, p.seen);
    await expectNet(p, 1000, 700, [-1000, 300]);
    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 200 });
    await deliverNew("charge.refunded", p.pi.id, p.seen);
    await expectNet(p, 1000, 500, [-1000, 300, 200]);
  });

  it("a refund larger than the credit still held for this payment takes back only what remains", async () => {
    const p = await credited(1000);
    const dispute = await emu<{ id: string }>(`/payment_intents/${p.pi.id}/dispute`, { amount: 600 });
    await deliverNew("charge.dispute.created", p.pi.id, p.seen);
    await expectNet(p, 1000, 400, [-1000, 600]);
    await emu(`/payment_intents/${p.pi.id}/refund`, {});
    await deliverNew("charge.refunded", p.pi.id, p.seen);
    await expectNet(p, 1000, 0, [-1000, 600, 400]);
    expect(dispute.id).toMatch(/^dp_/);
  });

  it("a refund that arrives before the credit is taken back right after it", async () => {
    const paid = await paidThroughService(800);
    await emu(`/payment_intents/${paid.pi.id}/refund`, { amount: 800 });
    const seen = new Set<string>();
    await deliverNew("charge.refunded", paid.pi.id, seen);
    expect((await confirm(paid.token, paid.pi.id)).status).toBe(200);
    await expectNet({ ...paid, seen }, 800, 0, [-800, 800]);
  });
});

describe("disputes", () => {
  it("opened then won: taken back, then given back", async () => {
    const p = await credited(2000);
    const dispute = await emu<{ id: string }>(`/payment_intents/${p.pi.id}/dispute`, {});
    await deliverNew("charge.dispute.created", p.pi.id, p.seen);
    await expectNet(p, 2000, 0, [-2000, 2000]);
    await emu(`/disputes/${dispute.id}/close`, { status: "won" });
    await deliverNew("charge.dispute.closed", p.pi.id, p.seen);
    await expectNet(p, 2000, 2000, [-2000, 2000, -2000]);

    // Redelivering both changes nothing.
    for (const id of p.seen) expect((await deliver(id)).status).toBe(200);
    await expectNet(p, 2000, 2000, [-2000, 2000, -2000]);
    const { adjustments } = await piObject(p.pi.id).inspect();
    expect(adjustments.map((a) => a.operation).sort()).toEqual([`dispute:${dispute.id}`, `restore:${dispute.id}`]);
  });

  it("opened then lost: stays taken back", async () => {
    const p = await credited(1500);
    const dispute = await emu<{ id: string }>(`/payment_intents/${p.pi.id}/dispute`, {});
    await emu(`/disputes/${dispute.id}/close`, { status: "lost" });
    await deliverNew("charge.dispute.created", p.pi.id, p.seen);
    await deliverNew("charge.dispute.closed", p.pi.id, p.seen);
    await expectNet(p, 1500, 0, [-1500, 1500]);
  });

  it("won before its creation event arrives: nothing is taken", async () => {
    const p = await credited(1200);
    const dispute = await emu<{ id: string }>(`/payment_intents/${p.pi.id}/dispute`, {});
    await emu(`/disputes/${dispute.id}/close`, { status: "won" });
    await deliverNew("charge.dispute.closed", p.pi.id, p.seen);
    await deliverNew("charge.dispute.created", p.pi.id, p.seen);
    await expectNet(p, 1200, 1200, [-1200]);
  });
});

describe("REVERSE_ON_REFUND=false", () => {
  it("leaves the credit alone on refunds: the webhook route drops the event, and the object given the fact writes nothing", async () => {
    const p = await credited(900);
    await expectNet(p, 900, 900, [-900]);
    await emu(`/payment_intents/${p.pi.id}/refund`, {});
    const events = await eventsFor("charge.refunded", p.pi.id);
    expect(events).toHaveLength(1);

    // The route, run with the setting off, acknowledges the event without handing it on.
    const off = { ...env, REVERSE_ON_REFUND: "false" };
    for (const e of events) {
      const { payload, signature } = await emu<{ payload: string; signature: string }>(`/events/${e.id}/signed`);
      const res = await buildApp().fetch(
        new Request("https://billing.test/stripe/webhook", { method: "POST", headers: { "stripe-signature": signature }, body: payload }),
        off,
        createExecutionContext(),
      );
      expect(res.status).toBe(200);
    }
    expect((await piObject(p.pi.id).inspect()).amount_refunded).toBe(0);

    // The object reads the setting too (a refund recorded earlier, or delivered by a Worker still
    // on the old setting, reaches it anyway). This pool has one set of bindings per project, so
    // the object's env is swapped for the duration of one notify and one alarm run, in place.
    const seen = await runInDurableObject(piObject(p.pi.id), async (instance, state) => {
      const holder = instance as unknown as { env: Env };
      const saved = holder.env;
      holder.env = { ...saved, REVERSE_ON_REFUND: "false" };
      try {
        expect(await instance.notify(p.pi.id, { kind: "refunded", amountRefunded: 900 })).toEqual({ accepted: true });
        await instance.alarm();
        return { inspection: await instance.inspect(), alarm: await state.storage.getAlarm() };
      } finally {
        holder.env = saved;
      }
    });
    // The fact reached the object, and no reversal was planned, written or left scheduled.
    expect(seen.inspection.amount_refunded).toBe(900);
    expect(seen.inspection.adjustments).toEqual([]);
    expect(seen.inspection.amounts).toEqual({ credited: 900, reversed: 0, net: 900 });
    expect(seen.alarm).toBeNull();
    expect((await ledgerFor(p.customerId, p.pi.id)).map((tx) => tx.amount)).toEqual([-900]);
    expect(await stripeRequests({ key: `credit-adjust:${p.pi.id}*` })).toHaveLength(0);
    expect(await balanceOf(p.token)).toEqual({ balance: 900, currency: "usd" });
  });
});

describe("GET /billing/transactions", () => {
  it("lists the caller's ledger newest first, with kinds, across pages", async () => {
    const p = await credited(1000);
    await emu(`/payment_intents/${p.pi.id}/refund`, { amount: 250 });
    await deliverNew("charge.refunded", p.pi.id, p.seen);
    await expectNet(p, 1000, 750, [-1000, 250]);

    const first = await json<{ data: { id: string; amount: number; kind: string }[]; has_more: boolean; next_cursor: string }>(
      await authed(p.token, "/billing/transactions?limit=1"),
    );
    expect(first.data).toHaveLength(1);
    expect(first.data[0]).toMatchObject({ amount: -250, kind: "reversal" });
    expect(first.has_more).toBe(true);
    const second = await json<{ data: { amount: number; kind: string }[]; has_more: boolean; next_cursor: string | null }>(
      await authed(p.token, `/billing/transactions?limit=1&cursor=${first.next_cursor}`),
    );
    expect(second.data[0]).toMatchObject({ amount: 1000, kind: "top_up" });
    expect(second.has_more).toBe(false);
    expect(second.next_cursor).toBeNull();
  });

  it.each(["limit=0", "limit=101", "limit=abc", "cursor=pi_123", "cursor=cbtxn_", "other=1"])("%s → 400", async (query) => {
    const p = await credited(600);
    const res = await authed(p.token, `/billing/transactions?${query}`);
    expect(res.status).toBe(400);
  });

  it("a cursor from another account's ledger → 400, revealing nothing", async () => {
    const a = await credited(700);
    const b = await credited(700);
    const theirs = await json<{ data: { id: string }[] }>(await authed(b.token, "/billing/transactions"));
    const res = await authed(a.token, `/billing/transactions?cursor=${theirs.data[0]?.id}`);
    expect(res.status).toBe(400);
  });
});
