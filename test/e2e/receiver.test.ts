// The bundled receiver (`npm run receiver`, scripts/receiver.ts), as a seller would point the
// service at it: deliveries signed as the README's Events section describes (HMAC-SHA256 of
// "{id}.{timestamp}.{body}" with the base64 key of a whsec_ secret, "v1,<base64>") are accepted
// with a 2xx, and anything else is refused with a 400 so that the service retries it. Signed here
// with node:crypto rather than the package the receiver verifies with, so the test checks the
// documented scheme, not the package against itself.

import { createHmac, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startReceiver, type RunningReceiver } from "../../scripts/receiver.js";

const secret = () => `whsec_${randomBytes(24).toString("base64")}`;
const SECRET = secret();
const NEXT_SECRET = secret();

function sign(key: string, id: string, timestamp: number, body: string): string {
  const raw = Buffer.from(key.slice("whsec_".length), "base64");
  return `v1,${createHmac("sha256", raw).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

function event(id: string): { id: string; body: string } {
  const body = JSON.stringify({
    type: "credit.added",
    timestamp: "2025-06-03T14:07:22.000Z",
    data: {
      id: "wle_3f9c2a7b1d4e8f6a0b5c2d1e",
      kind: "top_up",
      amount: 2000,
      account_id: "acct_receiver_test",
      balance: { available: 2500, held: 0, currency: "usd" },
    },
  });
  return { id, body };
}

let receiver: RunningReceiver;
const lines: string[] = [];

beforeAll(async () => {
  // The receiver trusts both secrets, as during a rotation.
  receiver = await startReceiver(0, [SECRET, NEXT_SECRET], (line) => lines.push(line));
});

afterAll(async () => {
  await receiver.close();
});

async function post(body: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${receiver.url}/events`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  await res.body?.cancel();
  return res.status;
}

const now = () => Math.floor(Date.now() / 1000);

describe("the bundled receiver", () => {
  it("accepts a correctly signed delivery and prints it once, naming a retry of the same webhook-id as such", async () => {
    const { id, body } = event("evt_credit_added_cbtxn_accepted1");
    const ts = now();
    const headers = { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": sign(SECRET, id, ts, body) };

    expect(await post(body, headers)).toBe(204);
    expect(lines.filter((l) => l.includes(id))).toEqual([
      expect.stringMatching(/^credit\.added evt_credit_added_cbtxn_accepted1 account=acct_receiver_test amount=2000/),
    ]);

    // A retry: same id and body, signed afresh with its own timestamp.
    const retryTs = ts + 1;
    expect(await post(body, { ...headers, "webhook-timestamp": String(retryTs), "webhook-signature": sign(SECRET, id, retryTs, body) })).toBe(204);
    expect(lines.filter((l) => l.includes(id))[1]).toMatch(/already handled/);
  });

  it("accepts a delivery signed with any of its secrets, among signatures it cannot check (a rotation)", async () => {
    const { id, body } = event("evt_credit_added_cbtxn_rotated1");
    const ts = now();
    // The service signs with every EVENTS_SECRET, space-separated; here one the receiver does not know, then the new one.
    const signature = `${sign(secret(), id, ts, body)} ${sign(NEXT_SECRET, id, ts, body)}`;
    expect(await post(body, { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": signature })).toBe(204);
  });

  it("refuses with 400 a delivery whose signature does not verify, and prints it as refused", async () => {
    const { id, body } = event("evt_credit_added_cbtxn_refused1");
    const ts = now();
    const good = sign(SECRET, id, ts, body);
    const refusals: [string, string, Record<string, string>][] = [
      ["another secret", body, { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": sign(secret(), id, ts, body) }],
      ["a body changed after signing", body.replace("2000", "200000"), { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": good }],
      ["another webhook-id", body, { "webhook-id": `${id}x`, "webhook-timestamp": String(ts), "webhook-signature": good }],
      [
        "a timestamp over five minutes old",
        body,
        { "webhook-id": id, "webhook-timestamp": String(ts - 600), "webhook-signature": sign(SECRET, id, ts - 600, body) },
      ],
      ["no signature", body, { "webhook-id": id, "webhook-timestamp": String(ts) }],
    ];
    for (const [why, sent, headers] of refusals) expect(await post(sent, headers), why).toBe(400);
    expect(lines.filter((l) => l.includes(id) && !l.startsWith("refused"))).toEqual([]);
    expect(lines.filter((l) => l.startsWith("refused ") && l.includes(id))).toHaveLength(refusals.length);
  });
});
