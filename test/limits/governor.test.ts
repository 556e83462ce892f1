// The Stripe governor on its own (a fresh instance per test, with this project's budget of
// 23 calls/s): a crowd is spread over time, calls that credit overtake queued display reads, and
// a 429 halves the rate, which climbs back when Stripe is quiet.

import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { LIMITS_BINDINGS } from "../bindings.js";

const BUDGET = Number(LIMITS_BINDINGS.STRIPE_RATE_LIMIT);
const governor = () => env.STRIPE_GOVERNOR.getByName(`test-${crypto.randomUUID()}`);

describe("the Stripe governor", () => {
  it("spreads a crowd at its budget", async () => {
    const g = governor();
    await g.status(); // the object is up (its first start is not the governor's doing)
    await new Promise((r) => setTimeout(r, 300)); // and its burst is full
    const started = Date.now();
    const permits = await Promise.all(Array.from({ length: 48 }, () => g.acquire("credit")));
    const elapsed = (Date.now() - started) / 1000;
    expect(permits.every((p) => p.ok)).toBe(true);
    // A burst of 2 goes at once; the other 46 at 23/s take 2 s.
    expect(elapsed).toBeGreaterThan(1.8);
    expect(elapsed).toBeLessThan(2.8);
    expect((await g.status()).granted).toBe(48);
  });

  it("lets calls that credit overtake queued display reads", async () => {
    const g = governor();
    const order: string[] = [];
    const started = Date.now();
    const displays = Array.from({ length: 30 }, (_, i) => g.acquire("display").then(() => order.push(`display${i}`)));
    await new Promise((r) => setTimeout(r, 50));
    const credit = g.acquire("credit").then(() => order.push("credit"));
    await Promise.all([...displays, credit]);
    // The credit call came after 30 display calls yet was served before most of them.
    expect(order.indexOf("credit")).toBeLessThan(6);
    // Overtaking reorders the queue without widening it: the 31 permits still came at the
    // configured budget (a burst of 2, then 29 at BUDGET per second), all of them granted.
    const elapsed = (Date.now() - started) / 1000;
    expect(elapsed).toBeGreaterThan((31 - 2) / BUDGET - 0.15);
    expect(await g.status()).toMatchObject({ budget: BUDGET, granted: 31, refused: 0, queued: 0 });
  });

  it("halves its rate on a 429 and recovers while Stripe is quiet", async () => {
    const g = governor();
    expect((await g.status()).rate).toBe(BUDGET);
    await g.slowDown();
    expect((await g.status()).rate).toBe(BUDGET / 2);
    await g.slowDown();
    expect((await g.status()).rate).toBe(BUDGET / 4);
    // Quiet from here on: within 3 s the rate has climbed back by more than a call per second
    // (polled, so the test waits only as long as the climb takes).
    const recovered = await vi.waitFor(
      async () => {
        const rate = (await g.status()).rate;
        expect(rate).toBeGreaterThan(BUDGET / 4 + 1);
        return rate;
      },
      { timeout: 3000, interval: 100 },
    );
    expect(recovered).toBeLessThanOrEqual(BUDGET);
  });
});
