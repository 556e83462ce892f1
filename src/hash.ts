// Hex and SHA-256 for the few places that derive a short, stable string from data: the
// Idempotency-Key of a browser's top-up, a spending request's fingerprint, a webhook body's
// name when it has no event id, the wallet's random ids. WebCrypto has no hex encoder, hence these lines.

/** Lowercase hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lowercase hex SHA-256 of `text` (UTF-8). */
export async function sha256Hex(text: string): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))));
}
