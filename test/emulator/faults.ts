// Misbehaviour on demand: latency rules and faults for the next N requests that match a method,
// a path pattern and optionally an Idempotency-Key pattern.

/**
 * - `error_500`: the request begins executing and fails before applying anything (with
 *   `apply: true`: after applying it); saved under its key (replayed for the key's life) unless
 *   `saved: false`.
 * - `drop`: the request is applied and its result saved under the key, then the connection is
 *   closed without an answer: the caller never learns that it worked.
 * - `rate_limit`: 429 before anything runs, never saved; `should_retry` sets `Stripe-Should-Retry`.
 * - `in_use`: 409 `idempotency_key_in_use` before anything runs, never saved.
 * - `hang`: no answer until the caller gives up (or `hang_ms` passes); with `apply: true` the
 *   write is applied and saved first, so the outcome is unknown to the caller.
 * - `error_400`: a permanent refusal, 400 `invalid_request_error` / `parameter_invalid`, raised
 *   while the request runs (nothing applied), so, as Stripe does with such 4xx, it is saved
 *   under the key and replayed; a new key runs again (and is refused while `times` lasts).
 *
 * With `replays: true` a rule of the kinds that fire while a request runs (error_500, error_400,
 * drop, hang) also fires on a request answered from a saved key, which otherwise is replayed
 * before any of them is considered: `drop` then loses the original answer and every replay.
 * (`rate_limit` and `in_use` come before the key lookup, so they always meet replays.)
 */
export type FaultKind = "error_500" | "error_400" | "drop" | "rate_limit" | "in_use" | "hang";
export const FAULT_KINDS: readonly FaultKind[] = ["error_500", "error_400", "drop", "rate_limit", "in_use", "hang"];

export interface FaultRule {
  id: number;
  kind: FaultKind;
  method: string;
  path: string;
  key: string | null;
  /** Fires this many more times. */
  times: number;
  /** Fires on every `every`-th matching request (1 = each one). */
  every: number;
  should_retry: boolean | null;
  saved: boolean;
  apply: boolean;
  /** Also fires on requests answered from a saved key (replays). */
  replays: boolean;
  matched: number;
  fired: number;
}

export interface LatencyRule {
  ms: number;
  jitter_ms: number;
  method: string;
  path: string;
}

/** `*` matches within one path segment, `**` across segments, `{a,b}` either; the rest is literal. */
export function globToRegExp(glob: string): RegExp {
  let out = "";
  let depth = 0;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] as string;
    if (ch === "*" && glob[i + 1] === "*") {
      out += ".*";
      i++;
    } else if (ch === "*") out += "[^/]*";
    else if (ch === "{") {
      out += "(?:";
      depth++;
    } else if (ch === "}" && depth > 0) {
      out += ")";
      depth--;
    } else if (ch === "," && depth > 0) out += "|";
    else out += ch.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

function matches(rule: { method: string; path: string }, method: string, path: string): boolean {
  return (rule.method === "*" || rule.method.toUpperCase() === method) && globToRegExp(rule.path).test(path);
}

/** The active fault and latency rules. */
export class Faults {
  rules: FaultRule[] = [];
  latency: LatencyRule[] = [];
  #nextId = 1;

  constructor(public defaultLatencyMs: number) {}

  add(rule: Omit<FaultRule, "id" | "matched" | "fired">): FaultRule {
    const full = { ...rule, id: this.#nextId++, matched: 0, fired: 0 };
    this.rules.push(full);
    return full;
  }

  /**
   * Consumes and returns the first rule of one of `kinds` that fires for this request; for a
   * request answered from a saved key (`replay`), only rules with `replays: true` are considered.
   */
  take(kinds: readonly FaultKind[], method: string, path: string, key: string | null, replay = false): FaultRule | null {
    for (const rule of this.rules) {
      if (rule.times <= 0 || !kinds.includes(rule.kind) || !matches(rule, method, path)) continue;
      if (replay && !rule.replays) continue;
      if (rule.key !== null && (key === null || !globToRegExp(rule.key).test(key))) continue;
      rule.matched++;
      if (rule.matched % rule.every !== 0) continue;
      rule.times--;
      rule.fired++;
      return rule;
    }
    return null;
  }

  /** Milliseconds to add to this request: the first matching rule, else the default. */
  latencyFor(method: string, path: string): number {
    const rule = this.latency.find((r) => matches(r, method, path));
    const base = rule ? rule.ms : this.defaultLatencyMs;
    const jitter = rule ? rule.jitter_ms : 0;
    return Math.max(0, base + (jitter > 0 ? Math.floor(Math.random() * (jitter + 1)) : 0));
  }

  clear(): void {
    this.rules = [];
    this.latency = [];
  }
}
