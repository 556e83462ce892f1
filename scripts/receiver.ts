// `npm run receiver`: a stand-in for the seller's backend while `npm start` runs. It verifies each
// delivery to POST /events with the `standardwebhooks` package against every EVENTS_SECRET (the
// environment's, else .dev.vars'), prints one line per event, and answers 204, or 400 when the
// signature does not verify (the service then retries, as it would against a real receiver).
// Set EVENTS_URL=http://127.0.0.1:8790/events in .dev.vars to send the Worker's events here.

import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { Webhook } from "standardwebhooks";
import { loadDevVars } from "./dev-vars.js";

export interface RunningReceiver {
  url: string;
  close: () => Promise<void>;
}

async function rawBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The figures worth a glance, by the shape of the event's data. */
function summary(type: string, data: Record<string, unknown>): string {
  const balance = (data.balance ?? data) as Record<string, unknown>;
  const figures = `available=${String(balance.available)} held=${String(balance.held)} ${String(balance.currency)}`;
  if (type === "credit.needs_attention") return `pi=${String(data.payment_intent_id)} reason="${String(data.reason)}"`;
  if (type.startsWith("balance.")) return `${figures} threshold=${String(data.threshold)}`;
  return `amount=${String(data.amount)} ${figures}`;
}

/** Starts the receiver on 127.0.0.1:`port` (0: a free port); `secrets` are whsec_ values, any of which may have signed. */
export async function startReceiver(port: number, secrets: string[], log: (line: string) => void = console.log): Promise<RunningReceiver> {
  if (secrets.length === 0) throw new Error("EVENTS_SECRET is not set (in the environment or .dev.vars)");
  const verifiers = secrets.map((s) => new Webhook(s));
  // Deliveries are at least once: a webhook-id seen before is a retry of the same event.
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    void (async () => {
      if (req.method !== "POST" || req.url !== "/events") return res.writeHead(404).end();
      const body = await rawBody(req);
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      // Verify the bytes as received: a body parsed and serialised again would not match its signature.
      const event = verified(verifiers, body, headers);
      if (!event) {
        log(`refused ${headers["webhook-id"] ?? "(no webhook-id)"}: signature does not verify`);
        return res.writeHead(400, { "content-type": "application/json" }).end('{"error":"invalid_signature"}');
      }
      const id = headers["webhook-id"] ?? "";
      const again = seen.has(id) ? " (again: already handled)" : "";
      seen.add(id);
      log(`${event.type} ${id} account=${String(event.data.account_id)} ${summary(event.type, event.data)}${again}`);
      res.writeHead(204).end();
    })().catch((err: unknown) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()).closeAllConnections());
  return { url, close };
}

/** The event, if any one of the secrets verifies the delivery (signature and timestamp); else undefined. */
function verified(verifiers: Webhook[], body: string, headers: Record<string, string>): { type: string; data: Record<string, unknown> } | undefined {
  for (const wh of verifiers) {
    try {
      return wh.verify(body, headers) as { type: string; data: Record<string, unknown> };
    } catch {
      // Not this secret's signature (or no valid one at all): try the next.
    }
  }
  return undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secrets = (process.env.EVENTS_SECRET ?? loadDevVars().EVENTS_SECRET ?? "").split(/[\s,]+/).filter((s) => s !== "");
  const { url } = await startReceiver(Number(process.env.PORT ?? 8790), secrets);
  console.log(`Receiving events at ${url}/events (set EVENTS_URL=${url}/events in .dev.vars). Ctrl-C stops it.`);
}
