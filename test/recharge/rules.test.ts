// The rails as pure functions (src/recharge/rules.ts), over random facts: when a recharge
// starts (shouldRecharge), which settings a user may set (settingsProblem), and which calendar
// month a moment counts against (monthOf). The running service's tests show the wallet feeding
// them; these show the rules themselves, including their edges.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RechargeSettings } from "../../src/recharge/contract.js";
import { MAX_CONSECUTIVE_FAILURES, monthOf, RETRY_AFTER_FAILURE_MS, settingsProblem, shouldRecharge, type TriggerFacts } from "../../src/recharge/rules.js";

const RUNS = { numRuns: 2000 };
const NOW = Date.UTC(2026, 11, 2, 12);

// Small ranges, so that the edges (available = threshold, a month total that just fits, a
// failure exactly an hour ago) come up often.
const settings: fc.Arbitrary<RechargeSettings> = fc.record({
  enabled: fc.boolean(),
  threshold: fc.integer({ min: 1, max: 50 }),
  amount: fc.integer({ min: 1, max: 30 }),
  monthly_limit: fc.integer({ min: 1, max: 100 }),
});
const facts: fc.Arbitrary<TriggerFacts> = fc.record({
  settings: fc.option(settings, { freq: 8 }),
  card: fc.option(fc.constant("pm_saved"), { freq: 8 }),
  available: fc.integer({ min: -20, max: 60 }),
  open: fc.boolean(),
  lastFailureAt: fc.option(
    fc.oneof(fc.integer({ min: NOW - 2 * RETRY_AFTER_FAILURE_MS, max: NOW }), fc.constantFrom(NOW - RETRY_AFTER_FAILURE_MS, NOW - RETRY_AFTER_FAILURE_MS + 1)),
    { freq: 2 },
  ),
  monthTotal: fc.integer({ min: 0, max: 110 }),
  now: fc.constant(NOW),
});

/** The rule as the issue states it, each condition on its own. */
function mayStart(f: TriggerFacts): boolean {
  const s = f.settings;
  return (
    s !== null &&
    s.enabled &&
    f.card !== null &&
    f.available < s.threshold &&
    !f.open &&
    (f.lastFailureAt === null || f.now - f.lastFailureAt >= RETRY_AFTER_FAILURE_MS) &&
    f.monthTotal + s.amount <= s.monthly_limit
  );
}

describe("shouldRecharge", () => {
  it("starts exactly when every rail allows it", () => {
    fc.assert(
      fc.property(facts, (f) => {
        expect(shouldRecharge(f).start).toBe(mayStart(f));
      }),
      RUNS,
    );
  });

  it("a refusal names a rail that does refuse", () => {
    fc.assert(
      fc.property(facts, (f) => {
        const v = shouldRecharge(f);
        if (v.start) return;
        const s = f.settings;
        const holds: Record<typeof v.reason, boolean> = {
          off: !s?.enabled,
          no_card: f.card === null,
          above_threshold: s !== null && f.available >= s.threshold,
          open: f.open,
          after_failure: f.lastFailureAt !== null && f.now - f.lastFailureAt < RETRY_AFTER_FAILURE_MS,
          monthly_limit: s !== null && f.monthTotal + s.amount > s.monthly_limit,
        };
        expect(holds[v.reason]).toBe(true);
      }),
      RUNS,
    );
  });

  // Whatever else is true, a started recharge keeps the month within its limit, is the only one
  // open, and never follows a failure by less than an hour.
  it("a start never passes the monthly limit, never joins an open one, never comes within the hour after a failure", () => {
    fc.assert(
      fc.property(facts, (f) => {
        if (!shouldRecharge(f).start) return;
        const s = f.settings as RechargeSettings;
        expect(f.monthTotal + s.amount).toBeLessThanOrEqual(s.monthly_limit);
        expect(f.open).toBe(false);
        if (f.lastFailureAt !== null) expect(f.now - f.lastFailureAt).toBeGreaterThanOrEqual(RETRY_AFTER_FAILURE_MS);
      }),
      RUNS,
    );
  });

  // Less credit never stops a recharge that more would start (below the threshold, the balance
  // itself plays no further part), and an equal balance is not below.
  it("is monotonic in available, and available = threshold does not start", () => {
    fc.assert(
      fc.property(facts, fc.integer({ min: 0, max: 80 }), (f, drop) => {
        if (shouldRecharge(f).start) expect(shouldRecharge({ ...f, available: f.available - drop }).start).toBe(true);
        if (f.settings) expect(shouldRecharge({ ...f, available: f.settings.threshold }).start).toBe(false);
      }),
      RUNS,
    );
  });

  it("the edges: an hour to the millisecond, a limit met exactly", () => {
    const base: TriggerFacts = {
      settings: { enabled: true, threshold: 500, amount: 1000, monthly_limit: 3000 },
      card: "pm_saved",
      available: 499,
      open: false,
      lastFailureAt: null,
      monthTotal: 2000,
      now: NOW,
    };
    expect(shouldRecharge(base)).toEqual({ start: true });
    expect(shouldRecharge({ ...base, monthTotal: 2001 })).toEqual({ start: false, reason: "monthly_limit" });
    expect(shouldRecharge({ ...base, lastFailureAt: NOW - RETRY_AFTER_FAILURE_MS })).toEqual({ start: true });
    expect(shouldRecharge({ ...base, lastFailureAt: NOW - RETRY_AFTER_FAILURE_MS + 1 })).toEqual({ start: false, reason: "after_failure" });
    expect(shouldRecharge({ ...base, available: 500 })).toEqual({ start: false, reason: "above_threshold" });
    expect(MAX_CONSECUTIVE_FAILURES).toBe(3);
    expect(RETRY_AFTER_FAILURE_MS).toBe(3600_000);
  });
});

describe("settingsProblem", () => {
  const limits = fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 1000 })).map(([min, span]) => ({ min, max: min + span }));

  it("accepts exactly a recharge within the top-up limits and a monthly limit that allows one", () => {
    fc.assert(
      fc.property(settings, limits, fc.integer({ min: 0, max: 2100 }), fc.integer({ min: 0, max: 2100 }), (s, l, amount, monthly) => {
        const candidate = { ...s, amount, monthly_limit: monthly };
        const ok = amount >= l.min && amount <= l.max && monthly >= amount;
        expect(settingsProblem(candidate, l) === null).toBe(ok);
      }),
      RUNS,
    );
  });

  it("names the setting at fault", () => {
    const l = { min: 500, max: 100_000 };
    const s = { enabled: true, threshold: 500, amount: 2000, monthly_limit: 10_000 };
    expect(settingsProblem(s, l)).toBeNull();
    expect(settingsProblem({ ...s, amount: 499 }, l)).toMatch(/^amount: /);
    expect(settingsProblem({ ...s, amount: 100_001, monthly_limit: 200_000 }, l)).toMatch(/^amount: /);
    expect(settingsProblem({ ...s, monthly_limit: 1999 }, l)).toMatch(/^monthly_limit: /);
    expect(settingsProblem({ ...s, monthly_limit: 2000 }, l)).toBeNull();
  });
});

describe("monthOf", () => {
  // Any moment from 1970 to 2200.
  const moment = fc.integer({ min: 0, max: Date.UTC(2200, 0, 1) });

  it("is the UTC calendar month, as YYYY-MM", () => {
    fc.assert(
      fc.property(moment, (ms) => {
        const d = new Date(ms);
        const month = monthOf(ms);
        expect(month).toMatch(/^\d{4}-(0[1-9]|1[0-2])$/);
        expect(month).toBe(`${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`);
      }),
      RUNS,
    );
  });

  it("changes exactly at midnight UTC on the first of a month", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1970, max: 2199 }), fc.integer({ min: 0, max: 11 }), (year, month) => {
        const start = Date.UTC(year, month, 1);
        const next = Date.UTC(year, month + 1, 1);
        expect(monthOf(start)).toBe(monthOf(next - 1));
        expect(monthOf(start - 1)).not.toBe(monthOf(start));
        expect(monthOf(next)).not.toBe(monthOf(next - 1));
      }),
      RUNS,
    );
    // A local-time reading would differ here for any zone west of UTC.
    expect(monthOf(Date.UTC(2026, 11, 31, 23, 30))).toBe("2026-12");
    expect(monthOf(Date.UTC(2027, 0, 1, 0, 0))).toBe("2027-01");
  });
});
