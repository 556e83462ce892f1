// The customer balance ledger: negative amounts credit the customer, positive debit; each entry
// carries the customer's `ending_balance`.

import type { Endpoint } from "./endpoint.js";
import { noSuch } from "./errors.js";
import { listSpec } from "./params.js";
import { paginate, type Metadata } from "./store.js";

export const balanceTransactionEndpoints: Endpoint[] = [
  {
    method: "POST",
    pattern: "/v1/customers/:id/balance_transactions",
    spec: { amount: "integer", currency: "currency", description: "string", metadata: "metadata" },
    required: ["amount", "currency"],
    run: ({ path, params, store }) => {
      const customer = store.customer(path.id as string);
      return store.addBalanceTransaction(
        customer,
        params.amount as number,
        params.currency as string,
        (params.description as string | undefined) ?? null,
        (params.metadata as Metadata | undefined) ?? {},
      );
    },
  },
  {
    method: "GET",
    pattern: "/v1/customers/:id/balance_transactions",
    spec: listSpec,
    run: ({ path, params, store, url }) => {
      store.customer(path.id as string);
      return paginate(store.balanceTransactions.get(path.id as string) ?? [], params, url);
    },
  },
  {
    method: "GET",
    pattern: "/v1/customers/:id/balance_transactions/:tx",
    spec: {},
    run: ({ path, store }) => {
      store.customer(path.id as string);
      const tx = store.balanceTransactionsById.get(path.tx as string);
      if (!tx || tx.customer !== path.id) throw noSuch("customer balance transaction", path.tx as string);
      return tx;
    },
  },
];
