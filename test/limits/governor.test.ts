// The Stripe governor on its own (a fresh instance per test, with this project's budget of
// 23 calls/s), and the isolate's permit pool in front of it: leases are schedules at the budget's
// rate whatever their size, display reads are refused under a backlog that credits still wait
// through, a 429 halves the rate, which climbs back when Stripe is quiet; and the pool serves a
// crowd at the budget's pace from a few leases.

import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import type { Lease } from "../../src/objects/contract.js";
import { BURST, LEASE_MAX } from "../../src/objects/governor.js";
import { GOVERNOR_NAME } from "../../src/objects/contract.js";
import { StripeGateway } from "../../src/stripe/gateway.js";
import { PermitPool } from "../../src/stripe/permits.js";
import { createCustomer, newAccountId } from "../helpers.js";
import { LIMITS_BINDINGS } from "../bindings.js";

const BUDGET = Number(LIMITS_BINDINGS.STRIPE_RATE_LIMIT);
const INTERVAL = 1000 / BUDGET;
const governor = () => env.STRIPE_GOVERNOR.getByName(`test-${crypto.randomUUID()}`);

/** Leases `n` permits as they come (`want` at a time); each permit's time, from the first lease's answer. */
async function leaseTimes(g: ReturnType<typeof governor>, n: number, want: number): Promise<number[]> {
  const times: number[] = [];
  const start = Date.now();
  while (times.length < n) {
    const lease = await g.lease("credit", Math.min(want, n - times.length));
    if (!lease.ok) throw new Error("refused");
    const now = Date.now() - start;
    times.push(...lease.offsets.map((o) => now + o));
  }
  return times;
}

/** The most permits that fall in any window of `ms`. */
function densest(times: number[], ms: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; j < sorted.length; j++) {
    while ((sorted[j] as number) - (sorted[i] as number) >= ms) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

describe("the Stripe governor", () => {
  it("schedules any mix of lease sizes at its budget: after the burst, every permit one interval after the one before", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), async (wants) => {
        const g = governor();
        await g.status(); // the object is up
        // Each lease's offsets, as the governor gave them (times across leases would add the
        // round trips' jitter on a busy machine; within a lease the spacing is the governor's own).
        const leases: number[][] = [];
        for (const want of wants) {
          for (let left = want; left > 0; left -= LEASE_MAX) {
            const lease = await g.lease("credit", Math.min(left, LEASE_MAX));
            if (!lease.ok) throw new Error("refused");
            expect(lease.offsets).toHaveLength(Math.min(left, LEASE_MAX));
            leases.push(lease.offsets);
          }
        }
        const n = wants.reduce((a, b) => a + b, 0);
        for (const offsets of leases) {
          // At most a burst goes at once (a lease that came after the schedule fell behind the
          // clock starts with one); after it, one interval apart (whole ms). The first permit
          // after a burst is an interval after the schedule's last one, which may be an earlier
          // lease's, so it can come sooner after this lease's own burst.
          expect(offsets.filter((o) => o === 0).length).toBeLessThanOrEqual(BURST);
          for (let i = 1; i < offsets.length; i++) {
            if ((offsets[i - 1] as number) > 0) expect((offsets[i] as number) - (offsets[i - 1] as number)).toBeGreaterThanOrEqual(Math.floor(INTERVAL));
          }
        }
        // The last permit is no sooner than the rate allows for all of them (the leases took time too).
        const last = leases.at(-1) as number[];
        expect(last.at(-1) as number).toBeGreaterThanOrEqual(Math.max(0, n - BURST) * INTERVAL - 2000);
        const status = await g.status();
        expect(status).toMatchObject({ budget: BUDGET, granted: n, refused: 0, leases: leases.length });
      }),
      { numRuns: 15 },
    );
  });

  it("refuses display reads once the backlog passes 5 s, while calls that credit are still scheduled", async () => {
    const g = governor();
    // About 6 s of the budget promised to credits.
    await leaseTimes(g, BUDGET * 6, LEASE_MAX);
    const display: Lease = await g.lease("display", 1);
    expect(display.ok).toBe(false);
    if (!display.ok) expect(display.retryAfterMs).toBeGreaterThan(0);
    const credit = await g.lease("credit", 1);
    expect(credit.ok).toBe(true);
    if (credit.ok) expect(credit.offsets[0]).toBeGreaterThan(5000);
    expect(await g.status()).toMatchObject({ refused: 1 });
  });

  it("schedules calls that credit up to a minute ahead, and no further", async () => {
    const g = governor();
    let last = 0;
    let lease: Lease = await g.lease("credit", LEASE_MAX);
    for (let i = 0; lease.ok && i < 200; i++) {
      last = Math.max(...lease.offsets);
      lease = await g.lease("credit", LEASE_MAX);
    }
    expect(lease.ok).toBe(false);
    expect(last).toBeLessThanOrEqual(60_000);
    expect(last).toBeGreaterThan(60_000 - 2 * INTERVAL - 1000);
  });

  it("halves its rate once for a second of 429s, and recovers while Stripe is quiet", async () => {
    const g = governor();
    expect((await g.status()).rate).toBe(BUDGET);
    // Five calls of one second refused: one halving, not a rate of BUDGET/32.
    await Promise.all(Array.from({ length: 5 }, () => g.slowDown()));
    expect((await g.status()).rate).toBe(BUDGET / 2);
    // Nothing more goes out for one interval of the new rate.
    const next = await g.lease("credit", 1);
    expect(next.ok && (next.offsets[0] as number) > 1000 / BUDGET).toBe(true);
    // Quiet from here on: within 3 s the rate has climbed back by more than a call per second
    // (polled, so the test waits only as long as the climb takes).
    const recovered = await vi.waitFor(
      async () => {
        const rate = (await g.status()).rate;
        expect(rate).toBeGreaterThan(BUDGET / 2 + 1);
        return rate;
      },
      { timeout: 3000, interval: 100 },
    );
    expect(recovered).toBeLessThanOrEqual(BUDGET);
    // A 429 in a later second halves it again.
    await g.slowDown();
    expect((await g.status()).rate).toBeLessThan(recovered / 2 + 1);
  });
});

describe("the isolate's permit pool", () => {
  it("serves a crowd of 60 calls at the budget's pace, credits first, from a few leases", async () => {
    const g = governor();
    await g.status();
    const pool = new PermitPool(() => g);
    const started = Date.now();
    const went: { priority: string; at: number }[] = [];
    const take = (priority: "credit" | "display") =>
      pool.take(priority).then((ok) => {
        expect(ok).toBe(true);
        went.push({ priority, at: Date.now() - started });
      });
    const displays = Array.from({ length: 30 }, () => take("display"));
    const credits = Array.from({ length: 30 }, () => take("credit"));
    await Promise.all([...displays, ...credits]);
    const times = went.map((w) => w.at);
    expect(densest(times, 1000)).toBeLessThanOrEqual(BUDGET + BURST);
    expect(Math.max(...times)).toBeGreaterThanOrEqual((60 - BURST) * INTERVAL - 60);
    // Calls that credit were served before the display reads that asked first (calls whose
    // departures are an interval apart may swap when a busy isolate wakes them together).
    expect(went.slice(0, 30).filter((w) => w.priority === "credit").length).toBeGreaterThanOrEqual(25);
    const status = await g.status();
    // The first lease is for the first call alone; the calls that came meanwhile share the next
    // ones, which also lease ahead for as many as the pool used in the last second.
    expect(status.leases).toBeLessThanOrEqual(6);
    expect(pool.state.waiting).toBe(0);
    // Leased ahead and still held, or dropped because a busy isolate could not use them in time:
    // two leases' worth at most.
    expect(status.granted).toBeGreaterThanOrEqual(60 + pool.state.held);
    expect(status.granted - 60).toBeLessThanOrEqual(2 * LEASE_MAX);
  });

  it("fails the waiting calls, not the isolate, when the governor refuses or cannot be reached", async () => {
    const refused: Lease = { ok: false, retryAfterMs: 1000 };
    const refusing = new PermitPool(() => ({ lease: async () => refused }));
    expect(await Promise.all([refusing.take("credit"), refusing.take("display")])).toEqual([false, false]);
    const unreachable = new PermitPool(() => ({
      lease: async () => {
        throw new Error("Network connection lost.");
      },
    }));
    expect(await unreachable.take("credit")).toBe(false);
    expect(unreachable.state).toEqual({ held: 0, waiting: 0 });
  });
});

describe("a Stripe call through the governor", () => {
  it("is timed from its permit: a call that waited 3 s for its turn is not cut off by an 800 ms timeout", async () => {
    const customer = await createCustomer(newAccountId("wait"));
    // The service's own governor: about 3 s of its budget promised ahead.
    const service = env.STRIPE_GOVERNOR.getByName(GOVERNOR_NAME);
    await leaseTimes(service, BUDGET * 3, LEASE_MAX);
    const gateway = new StripeGateway({ ...env, STRIPE_TIMEOUT_MS: "800", STRIPE_MAX_NETWORK_RETRIES: "0" });
    const started = Date.now();
    const owner = await gateway.customers.ownerOf(customer.id);
    const waited = Date.now() - started;
    expect(owner.kind === "account" && owner.accountId.startsWith("wait_")).toBe(true);
    expect(waited).toBeGreaterThan(2000);
  });
});
