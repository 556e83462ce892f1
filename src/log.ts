// Structured logs: one JSON line per event, which Workers Logs indexes by field. Callers pass
// ids, outcomes and counts only; never a token, a key or a client secret.

/** Writes one JSON log line. */
export function logEvent(event: string, fields: Record<string, unknown> = {}): void {
  const line: Record<string, unknown> = { event, at: new Date().toISOString(), ...fields };
  // No field may overwrite what the line is about or when it happened.
  line.event = event;
  line.at = new Date().toISOString();
  console.log(JSON.stringify(line));
}
