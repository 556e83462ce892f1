// This isolate's counts of the facts it saw (facts.ts), by minute, for the last day: what the
// operator console charts when there is no Analytics Engine to ask. In production each isolate
// (each object's, each Worker's) has its own, so the console says whose counts it shows; under
// `wrangler dev` the Worker and every object share one isolate, so it sees them all.

/** One minute's tally of one (fact, detail, status). */
export interface Row {
  /** The minute's start, in seconds since the epoch. */
  t: number;
  fact: string;
  detail: string;
  status: string;
  count: number;
  amount: number;
  ms: number;
  max_ms: number;
}

const MINUTE = 60;
/** A day and a minute: the day window's oldest bucket may start up to a minute before a day ago. */
const KEEP_MINUTES = 24 * 60 + 1;

export class Counters {
  /** When this isolate first counted or was asked: not at module load, where workerd's clock reads 0. */
  #startedAt: number | null = null;
  readonly #minutes = new Map<number, Map<string, Row>>();

  get startedAt(): number {
    this.#startedAt ??= Date.now();
    return this.#startedAt;
  }

  add(fact: string, detail: string, status: string, amount: number, ms: number, now: number): void {
    this.#startedAt ??= now;
    const t = Math.floor(now / 1000 / MINUTE) * MINUTE;
    let minute = this.#minutes.get(t);
    if (!minute) {
      minute = new Map();
      this.#minutes.set(t, minute);
      this.#forgetBefore(t - (KEEP_MINUTES - 1) * MINUTE);
    }
    const key = `${fact}\u0000${detail}\u0000${status}`;
    let row = minute.get(key);
    if (!row) {
      row = { t, fact, detail, status, count: 0, amount: 0, ms: 0, max_ms: 0 };
      minute.set(key, row);
    }
    row.count += 1;
    row.amount += amount;
    row.ms += ms;
    row.max_ms = Math.max(row.max_ms, ms);
  }

  /** Every row of a minute starting at or after `sinceSeconds`, copied. */
  rows(sinceSeconds: number): Row[] {
    const out: Row[] = [];
    for (const [t, minute] of this.#minutes) if (t >= sinceSeconds) for (const row of minute.values()) out.push({ ...row });
    return out;
  }

  #forgetBefore(t: number): void {
    for (const key of this.#minutes.keys()) if (key < t) this.#minutes.delete(key);
  }
}

/** The isolate's counters. */
export const counters = new Counters();
