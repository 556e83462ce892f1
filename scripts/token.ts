// `npm run token -- <account id>`: prints a bearer token for that account, signed with the local
// AUTH_JWT_SECRET, valid for 24 hours. For local development only.

import { SignJWT } from "jose";
import { ACCOUNT_ID } from "../src/ids.js";
import { loadDevVars } from "./dev-vars.js";

const accountId = process.argv[2];
if (!accountId || !ACCOUNT_ID.test(accountId)) {
  console.error("usage: npm run token -- <account id>   (letters, digits and _ . : @ | - only)");
  process.exit(2);
}
const secret = process.env.AUTH_JWT_SECRET ?? loadDevVars().AUTH_JWT_SECRET;
if (!secret) {
  console.error("AUTH_JWT_SECRET is not set in .dev.vars or the environment");
  process.exit(2);
}
const token = await new SignJWT({})
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(accountId)
  .setIssuedAt()
  .setExpirationTime("24h")
  .sign(new TextEncoder().encode(secret));
console.log(token);
