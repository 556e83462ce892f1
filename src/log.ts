// Structured logs: one JSON line per event, which Workers Logs indexes by field. Callers pass
// ids, outcomes and counts only; never a token, a key or a client secret.

/** Writes one JSON log line. */
export function logEvent(event: string, fields: Record<string, unknown> = {}): void {
  // `event` and `at` are set last so that no field can overwrite them.
  console.log(JSON.stringify({ event, at: "", ...fields, ...{ event, at: new Date().toISOString() } }));
}
