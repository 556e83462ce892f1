// Turns a failed zod validation into the contract's 400 `invalid_request`, naming the field.

import type { Hook } from "@hono/zod-openapi";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";

/** The OpenAPIHono default hook: throw a 400 ApiError on any validation failure. */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result) => {
  if (result.success) return;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
  throw new ApiError(400, "invalid_request", `${where}${issue?.message ?? "invalid request"}`);
};
