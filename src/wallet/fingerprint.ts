// What makes two spending requests "the same request" for an Idempotency-Key: the operation,
// the hold it is about, and the body compared as parsed JSON (key order and whitespace do not
// matter; values and types do). Hand-written because it is a dozen lines: a canonical JSON
// with sorted keys, then SHA-256 so the stored fingerprint is short whatever the body.

import { sha256Hex } from "../hash.js";

/** JSON with object keys sorted at every depth. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The fingerprint of one spending request: `op`, the hold id in its path (or null), its parsed body. */
export async function requestFingerprint(op: string, holdId: string | null, body: unknown): Promise<string> {
  return sha256Hex(canonicalJson([op, holdId, body ?? null]));
}
