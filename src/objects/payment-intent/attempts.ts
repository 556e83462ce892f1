// One attempt at a time, in memory. A Durable Object lets other calls in while it awaits
// fetch(), so the protocol is serialised by hand: an attempt is claimed synchronously (checked
// and set with no await between) and every later caller waits on that attempt's promise, then
// answers from its outcome or from storage. Memory is only an optimisation: the durable record
// is the truth, and an object that restarts mid-attempt finishes from it (the watchdog alarm).
//
// Also remembered here, in memory only (junk must leave nothing durable): a PI id Stripe does
// not know, and owners it is not theirs, each for a minute, so a flood of guesses costs Stripe
// nothing.

import type { Outcome } from "./answers.js";

/** One attempt in flight: whose point of view it runs from, its result, the Stripe calls it made. */
export interface Attempt {
  owner: string | null;
  promise: Promise<Outcome>;
  calls: number;
  startedAt: number;
}

/** How long a PI id that Stripe does not know, or that is not the caller's, is answered from memory. */
const JUNK_MEMORY_MS = 60_000;
/** Owners remembered as "not yours" at once; beyond it the memory starts over (it is only a saving). */
const NOT_OWNED_LIMIT = 1000;

export class Attempts {
  #running: Attempt | null = null;
  /** Browsers waiting on the attempt in flight, by their Stripe customer. */
  #waiting = new Map<string, number>();
  #unknownUntil = 0;
  #notOwnedUntil = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  get running(): Attempt | null {
    return this.#running;
  }

  /**
   * Starts `body` as the one attempt in flight. The caller must have seen `running` null with
   * no await since. `body` is told the attempt so it can count its Stripe calls; a throw from it
   * becomes `onCrash`'s outcome.
   */
  start(owner: string | null, body: (attempt: Attempt) => Promise<Outcome>, onCrash: (err: unknown) => Promise<Outcome>): Attempt {
    if (this.#running) throw new Error("an attempt is already in flight");
    const attempt: Attempt = { owner, promise: Promise.resolve({ kind: "unknown_pi" }), calls: 0, startedAt: this.now() };
    // Claimed before the body starts: its first Stripe call happens before it first yields.
    this.#running = attempt;
    attempt.promise = body(attempt)
      .catch(onCrash)
      .then((outcome) => {
        if (this.#running === attempt) this.#running = null;
        this.#remember(outcome, owner);
        return outcome;
      });
    return attempt;
  }

  /**
   * Waits on the attempt in flight as `owner`. Each browser's customer gets `limit` places, so a
   * stranger who floods a PaymentIntent's id fills only its own; "full" when they are taken.
   * Stripe's webhook, the alarm and an operator (owner null) are never turned away.
   */
  async join(running: Attempt, owner: string | null, limit: number): Promise<Outcome | "full"> {
    if (owner === null) return running.promise;
    const waiting = this.#waiting.get(owner) ?? 0;
    if (waiting >= limit) return "full";
    this.#waiting.set(owner, waiting + 1);
    try {
      return await running.promise;
    } finally {
      const left = (this.#waiting.get(owner) ?? 1) - 1;
      if (left > 0) this.#waiting.set(owner, left);
      else this.#waiting.delete(owner);
    }
  }

  /** Whether a recent attempt found this PI unknown to Stripe, or not `owner`'s. */
  knownJunk(owner: string | null): boolean {
    const now = this.now();
    if (now < this.#unknownUntil) return true;
    return owner !== null && (this.#notOwnedUntil.get(owner) ?? 0) > now;
  }

  #remember(outcome: Outcome, owner: string | null): void {
    if (outcome.kind === "unknown_pi") this.#unknownUntil = this.now() + JUNK_MEMORY_MS;
    if (outcome.kind === "not_owned" && owner !== null) {
      if (this.#notOwnedUntil.size >= NOT_OWNED_LIMIT) this.#notOwnedUntil.clear();
      this.#notOwnedUntil.set(owner, this.now() + JUNK_MEMORY_MS);
    }
  }
}
