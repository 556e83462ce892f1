// A seller's event receiver for the tests: a Node HTTP server on 127.0.0.1 that records every
// delivery (headers and raw body, so the tests can verify signatures themselves) and fails the
// deliveries it is told to. The Worker's tests reach its control API from inside workerd.
//
//   POST /events                   a delivery: recorded, then answered by the first matching rule
//   POST /_receiver/rules          {match, fail: [500 | 307 | "timeout" | "close", …], down?: true}:
//                                  deliveries whose body contains `match` get the next failure
//                                  of `fail` (then 200), or always 500 while `down`; a 3xx
//                                  answer points (Location) at /_receiver/redirected
//   POST /_receiver/rules/clear    {match}: lifts every rule with that `match` (a receiver back up)
//   GET  /_receiver/deliveries?match=…   the recorded deliveries whose body contains `match`
//   POST /_receiver/redirected     where a redirect points: recorded (path "/_receiver/redirected")
//                                  and answered 200, so a sender that followed redirects would
//                                  be seen doing so

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Delivery {
  /** "/events", or "/_receiver/redirected" for a request that followed a redirect. */
  path: string;
  headers: Record<string, string>;
  body: string;
  /** What the receiver answered: a status, or "timeout" / "close" when it did not. */
  answer: number | "timeout" | "close";
  received_at: number;
}

type Failure = number | "timeout" | "close";

interface Rule {
  match: string;
  fail: Failure[];
  down: boolean;
}

export interface RunningReceiver {
  url: string;
  close: () => Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** Statuses whose answer has no body (fetch refuses a body with them). */
const NO_BODY = new Set([204, 205, 304]);

function send(res: ServerResponse, status: number, body: unknown): void {
  if (NO_BODY.has(status)) {
    res.writeHead(status);
    return void res.end();
  }
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** Redirect statuses: answered with a Location, so that following them would be seen. */
const REDIRECTS = new Set<Failure>([301, 302, 303, 307, 308]);

export async function startReceiver(port = 0): Promise<RunningReceiver> {
  const deliveries: Delivery[] = [];
  const rules: Rule[] = [];
  const hanging = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      const body = await readBody(req);
      if (req.method === "POST" && url.pathname === "/_receiver/rules") {
        const rule = JSON.parse(body) as Partial<Rule>;
        if (typeof rule.match !== "string" || rule.match === "") return send(res, 400, { error: "match is required" });
        rules.push({ match: rule.match, fail: rule.fail ?? [], down: rule.down === true });
        return send(res, 200, { ok: true });
      }
      if (req.method === "POST" && url.pathname === "/_receiver/rules/clear") {
        const { match } = JSON.parse(body) as { match?: unknown };
        if (typeof match !== "string" || match === "") return send(res, 400, { error: "match is required" });
        const before = rules.length;
        rules.splice(0, rules.length, ...rules.filter((r) => r.match !== match));
        return send(res, 200, { cleared: before - rules.length });
      }
      if (req.method === "GET" && url.pathname === "/_receiver/deliveries") {
        const match = url.searchParams.get("match") ?? "";
        return send(res, 200, { data: deliveries.filter((d) => d.body.includes(match)) });
      }
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]));
      if (url.pathname === "/_receiver/redirected") {
        deliveries.push({ path: url.pathname, headers, body, answer: 200, received_at: Date.now() });
        return send(res, 200, { received: true });
      }
      if (req.method === "POST" && url.pathname === "/events") {
        const rule = rules.find((r) => body.includes(r.match));
        const answer: Failure = rule?.down ? 500 : (rule?.fail.shift() ?? 200);
        deliveries.push({ path: url.pathname, headers, body, answer, received_at: Date.now() });
        if (answer === "timeout") {
          // Never answered: the sender's timeout ends it; close() ends it at the latest.
          hanging.add(res);
          res.on("close", () => hanging.delete(res));
          return;
        }
        if (answer === "close") return req.socket.destroy();
        if (REDIRECTS.has(answer)) {
          res.writeHead(answer, { location: "/_receiver/redirected" });
          return res.end();
        }
        return send(res, answer, { received: true });
      }
      send(res, 404, { error: "not found" });
    })().catch((err: unknown) => send(res, 500, { error: String(err) }));
  });

  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
