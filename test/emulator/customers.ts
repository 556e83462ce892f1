// Customers: create, retrieve, update (metadata merges; an empty value deletes a key), list by
// email (strongly consistent) and search (eventually consistent, see Store.searchableCustomers).

import type { Endpoint } from "./endpoint.js";
import { StripeFailure } from "./errors.js";
import { listSpec, type FieldSpec } from "./params.js";
import { newId, nowSeconds, paginate, type Customer, type Metadata } from "./store.js";

const customerFields: FieldSpec = {
  email: "string",
  name: "string",
  description: "string",
  metadata: "metadata",
};

/** Merges Stripe-style: keys with an empty value are deleted. */
export function mergeMetadata(current: Metadata, update: Metadata | undefined): Metadata {
  if (update === undefined) return current;
  if (Object.keys(update).length === 0) return {};
  const next = { ...current };
  for (const [k, v] of Object.entries(update)) {
    if (v === "") delete next[k];
    else next[k] = v;
  }
  return next;
}

/** Creates a customer in `store`; shared by the API and the control API. */
export function createCustomer(
  store: import("./store.js").Store,
  fields: { email?: string; name?: string; description?: string; metadata?: Metadata },
  livemode: boolean,
): Customer {
  const c: Customer = {
    id: newId("cus"),
    object: "customer",
    balance: 0,
    created: nowSeconds(),
    currency: null,
    description: fields.description ?? null,
    email: fields.email ?? null,
    livemode,
    metadata: mergeMetadata({}, fields.metadata),
    name: fields.name ?? null,
  };
  store.customers.set(c.id, c);
  store.wrote("customer");
  store.indexCustomer(c);
  return c;
}

// Stripe's search language, the part this product uses: `field:'value'` clauses joined by AND
// or OR, where field is `email`, `name` or `metadata['key']`.
function searchPredicate(query: string): (c: Customer) => boolean {
  const clause = /\s*(?:(email|name)|metadata\['([^']+)'\]|metadata\["([^"]+)"\])\s*:\s*(?:'([^']*)'|"([^"]*)")\s*/y;
  const tests: ((c: Customer) => boolean)[] = [];
  const joins: string[] = [];
  let pos = 0;
  while (pos < query.length) {
    clause.lastIndex = pos;
    const m = clause.exec(query);
    if (!m) throw badQuery(query);
    const field = m[1];
    const metaKey = m[2] ?? m[3];
    const value = m[4] ?? m[5] ?? "";
    tests.push((c) => (field ? c[field as "email" | "name"] === value : c.metadata[metaKey as string] === value));
    pos = clause.lastIndex;
    const join = /(AND|OR)\s+/y;
    join.lastIndex = pos;
    const j = join.exec(query);
    if (j) {
      joins.push(j[1] as string);
      pos = join.lastIndex;
    } else if (pos < query.length) throw badQuery(query);
  }
  if (tests.length === 0) throw badQuery(query);
  if (new Set(joins).size > 1) throw badQuery(query);
  return joins[0] === "OR" ? (c) => tests.some((t) => t(c)) : (c) => tests.every((t) => t(c));
}

function badQuery(query: string): StripeFailure {
  return new StripeFailure(400, {
    type: "invalid_request_error",
    code: "parameter_invalid_string",
    param: "query",
    message: `Invalid search query: ${query}`,
  });
}

export const customerEndpoints: Endpoint[] = [
  {
    method: "POST",
    pattern: "/v1/customers",
    spec: customerFields,
    run: ({ params, store, webhooks, request, livemode }) => {
      const c = createCustomer(store, params, livemode);
      webhooks.emit("customer.created", c, request, livemode);
      return c;
    },
  },
  {
    method: "GET",
    pattern: "/v1/customers/search",
    spec: { query: "string", limit: "integer", page: "string" },
    required: ["query"],
    run: ({ params, store, url }) => {
      const match = searchPredicate(params.query as string);
      const limit = (params.limit as number | undefined) ?? 10;
      const offset = params.page ? Number.parseInt(params.page as string, 10) || 0 : 0;
      const all = store.searchableCustomers().filter(match).reverse();
      const data = all.slice(offset, offset + limit);
      const more = all.length > offset + limit;
      return { object: "search_result", data, has_more: more, next_page: more ? String(offset + limit) : null, url };
    },
  },
  {
    method: "GET",
    pattern: "/v1/customers/:id",
    spec: {},
    run: ({ path, store }) => store.customer(path.id as string),
  },
  {
    method: "POST",
    pattern: "/v1/customers/:id",
    spec: customerFields,
    run: ({ path, params, store, webhooks, request }) => {
      const c = store.customer(path.id as string);
      if (params.email !== undefined) c.email = (params.email as string) || null;
      if (params.name !== undefined) c.name = (params.name as string) || null;
      if (params.description !== undefined) c.description = (params.description as string) || null;
      c.metadata = mergeMetadata(c.metadata, params.metadata as Metadata | undefined);
      store.wrote("customer_update");
      store.indexCustomer(c);
      webhooks.emit("customer.updated", c, request, c.livemode);
      return c;
    },
  },
  {
    method: "GET",
    pattern: "/v1/customers",
    spec: { ...listSpec, email: "string" },
    run: ({ params, store, url }) => {
      const all = [...store.customers.values()].filter((c) => params.email === undefined || c.email === params.email);
      return paginate(all, params, url);
    },
  },
];
