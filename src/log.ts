// Structured logs: one JSON line per event, which Workers Logs indexes by field. Callers pass
// ids, outcomes and counts only; never a token, a key or a client secret.
//
// LOG_LEVEL drops lines below it (`off` drops all). Every line costs CPU to build and to ship,
// which Cloudflare bills; lines that repeat what another line of the same request already says
// are `debug`. The level is the isolate's: it follows the settings parsed last (settings.ts),
// which in production are the only ones.

export const LOG_LEVELS = ["debug", "info", "warn", "error", "off"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
type LineLevel = Exclude<LogLevel, "off">;

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, off: 4 };
let threshold = RANK.info;

/** Lines below `level` are dropped from now on. */
export function setLogLevel(level: LogLevel): void {
  threshold = RANK[level];
}

/** Whether a line at `level` would be written. */
function logs(level: LineLevel): boolean {
  return RANK[level] >= threshold;
}

/** Writes one JSON log line at `fields.level` (default info), unless LOG_LEVEL drops it. */
export function logEvent(event: string, fields: Record<string, unknown> & { level?: LineLevel } = {}): void {
  if (!logs(fields.level ?? "info")) return;
  const line: Record<string, unknown> = { event, at: new Date().toISOString(), ...fields };
  // No field may overwrite what the line is about or when it happened.
  line.event = event;
  line.at = new Date().toISOString();
  console.log(JSON.stringify(line));
}
