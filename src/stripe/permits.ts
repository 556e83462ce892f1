// The isolate's share of the Stripe budget: permits leased from the governor
// (src/objects/governor.ts) in batches and spent here, so a Stripe call waits on a local timer,
// not a round trip, and every object in the isolate draws from one pool. One lease call is in
// flight at a time, asking for every call then waiting, or as many as the isolate used in the
// last second if more (a busy isolate leases ahead; a quiet one leases only what it needs,
// so little is left unspent when it goes quiet).
//
// Each call waits on timers of its own and the lease is awaited only by the call that sent it:
// the runtime runs a promise's continuation in the context of the event that resolved it, and
// a call continued in another object's context could not use its own fetch's response
// ("Cannot perform I/O on behalf of a different Durable Object"). So calls that arrive while a
// lease is in flight look again every POLL_MS instead of being woken by it.
//
// A permit is a time: the governor spaced them at the budget's rate. One not used within
// STALE_MS of its time is dropped, and calls leave at least the governor's interval apart, since
// calls that go late would otherwise bunch where the schedule kept them apart.

import type { Lease, Priority } from "../objects/contract.js";

/** What the pool needs of the governor: a lease. */
export interface Leaser {
  lease(priority: Priority, want: number): Promise<Lease>;
}

/** How long past its time a permit may still be used. */
const STALE_MS = 250;
/** Demand is estimated over this window, and leased ahead for as long. */
const DEMAND_WINDOW_MS = 1_000;
/** As many as the governor grants in one lease. */
const LEASE_MAX = 16;
/** How long a lease may take before its sender is taken to have been cut off. */
const LEASE_TIMEOUT_MS = 2_000;
/** How often a call waiting on another call's lease looks for a permit. */
const POLL_MS = 5;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class PermitPool {
  /** Held permits: the local time (ms) from which each may be used, earliest first. */
  #held: number[] = [];
  #waiting: Record<Priority, number> = { credit: 0, display: 0 };
  #leasing = false;
  #leaseSentAt = 0;
  /** When the governor last refused (or could not be reached): calls waiting since then fail. */
  #refusedAt = -1;
  /** When the last call left, the next free departure, and the governor's spacing between calls (from its last lease). */
  #lastGone = 0;
  #nextDeparture = 0;
  #interval = 0;
  /** When recent permits were taken, for the demand estimate. */
  #taken: number[] = [];

  constructor(private readonly governor: () => Leaser) {}

  /** Resolves true when a call at `priority` may go, false when the budget refused it. */
  async take(priority: Priority): Promise<boolean> {
    const at = await this.#claim(priority);
    if (at === null) return false;
    // Each call gets a departure of its own, at least the governor's interval after the one
    // before: a busy isolate wakes its timers late and together, and calls the schedule spaced
    // apart must not then leave as one bunch. Checked again on waking, for the same reason.
    const departure = Math.max(at, this.#nextDeparture);
    this.#nextDeparture = departure + this.#interval;
    for (;;) {
      const now = Date.now();
      const ready = Math.max(departure, this.#lastGone + this.#interval);
      if (ready <= now) {
        this.#lastGone = now;
        return true;
      }
      await sleep(ready - now);
    }
  }

  /** A held permit's time for this call, or null once the governor refused; counted as waiting until then. */
  async #claim(priority: Priority): Promise<number | null> {
    const since = Date.now();
    this.#waiting[priority]++;
    try {
      for (;;) {
        const now = Date.now();
        while (this.#held.length > 0 && (this.#held[0] as number) < now - STALE_MS) this.#held.shift();
        // Calls that credit go first: a display read takes a permit only when none is waiting.
        if (this.#held.length > 0 && (priority === "credit" || this.#waiting.credit === 0)) {
          this.#noteTaken(now);
          return this.#held.shift() as number;
        }
        if (this.#refusedAt >= since) return null;
        // Lease only when what is held cannot serve every waiting call; else wait for a turn.
        // A lease whose sender was cut off (its object aborted or evicted mid-call) never answers:
        // after LEASE_TIMEOUT_MS another call sends one of its own.
        const leasing = this.#leasing && now - this.#leaseSentAt < LEASE_TIMEOUT_MS;
        if (leasing || this.#held.length >= this.#waiting.credit + this.#waiting.display) await sleep(POLL_MS);
        else await this.#lease();
      }
    } finally {
      this.#waiting[priority]--;
    }
  }

  /** Permits held and calls waiting, for tests. */
  get state(): { held: number; waiting: number } {
    return { held: this.#held.length, waiting: this.#waiting.credit + this.#waiting.display };
  }

  /** One lease for every call waiting now and the demand expected; sent and awaited by the calling call. */
  async #lease(): Promise<void> {
    this.#leasing = true;
    const sentAt = Date.now();
    this.#leaseSentAt = sentAt;
    try {
      const priority: Priority = this.#waiting.credit > 0 ? "credit" : "display";
      // Every call waiting, or what the last second took if more: calls that arrive one by
      // one (a credit's second call, as its first returns) then find a permit held, instead of
      // each sending a lease of one.
      const want = Math.min(LEASE_MAX, Math.max(1, this.#waiting.credit + this.#waiting.display - this.#held.length, this.#expected() - this.#held.length));
      let lease: Lease;
      try {
        lease = await this.governor().lease(priority, want);
      } catch {
        // The governor is unreachable (restarting, overloaded): the calls fail like a dropped
        // connection, and their callers' retries come back here.
        lease = { ok: false, retryAfterMs: 0 };
      }
      const now = Date.now();
      if (!lease.ok) this.#refusedAt = now;
      // Offsets are from the governor's answer; counting them from its arrival here only errs late.
      else {
        for (const offset of lease.offsets) this.#held.push(now + offset);
        this.#interval = lease.intervalMs;
      }
    } finally {
      // Unless a later lease took over from this one (it was given up as cut off).
      if (this.#leaseSentAt === sentAt) this.#leasing = false;
    }
  }

  #noteTaken(now: number): void {
    this.#taken.push(now);
    if (this.#taken.length > LEASE_MAX * 4) this.#expected();
  }

  /** Permits this isolate took in the last DEMAND_WINDOW_MS: what it will likely want next. */
  #expected(): number {
    const since = Date.now() - DEMAND_WINDOW_MS;
    while (this.#taken.length > 0 && (this.#taken[0] as number) < since) this.#taken.shift();
    return this.#taken.length;
  }
}
