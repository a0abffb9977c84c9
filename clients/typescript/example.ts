/**
 * The generated client in use: sign up, log in, call the API, refresh, log out.
 *
 * `make test` type-checks this file (tsc --noEmit), so an API change that breaks a front end
 * breaks here first, and runs it against the API (tests/test_client.py).
 */
import { createApiClient, memoryTokenStore, type TokenPair, type User } from "./src/index.js";

export async function example(baseUrl: string, email: string, password: string): Promise<User> {
  const tokens = memoryTokenStore();
  const api = createApiClient({ baseUrl, tokens, onSessionEnded: () => console.log("logged out") });

  const signup = await api.POST("/api/v1/auth/register", { body: { email, password, full_name: "Ada" } });
  if (signup.error) throw new Error(`sign-up failed: ${signup.error.message}`);

  // POST /api/v1/auth/login -> {access_token, refresh_token, token_type: "bearer", expires_in}, or,
  // for an account with two-factor on, {mfa_required, mfa_token, ...}: then ask for a code and send
  // both to POST /api/v1/auth/mfa/verify, which answers the token pair.
  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  if (login.error) throw new Error(`login failed: ${login.error.message}`);
  if ("mfa_required" in login.data) throw new Error("this account needs its second factor first");
  tokens.set(login.data);

  // The middleware sends the access token.
  const me = await api.GET("/api/v1/users/me");
  if (me.error) throw new Error(me.error.message);
  console.log(`signed in as ${me.data.email} (plan ${me.data.plan})`);

  // A refresh by hand: the new pair replaces the old one, whose refresh token is now spent.
  const refreshed = await api.POST("/api/v1/auth/refresh", { body: { refresh_token: login.data.refresh_token } });
  if (refreshed.error) throw new Error(`refresh failed: ${refreshed.error.message}`);
  tokens.set(refreshed.data);

  // An expired access token is refreshed by the middleware and the request sent again.
  tokens.set(expire(refreshed.data));
  const renamed = await api.PATCH("/api/v1/users/me", { body: { full_name: "Ada Lovelace" } });
  if (renamed.error) throw new Error(renamed.error.message);
  console.log(`renamed to ${renamed.data.full_name}; token refreshed: ${tokens.get()?.access_token !== "expired"}`);

  // Requests that meet an expired token together share one refresh: a refresh token works once.
  tokens.set(expire(tokens.get()));
  const [usage, keys, again] = await Promise.all([
    api.GET("/api/v1/usage"),
    api.GET("/api/v1/api-keys"),
    api.GET("/api/v1/users/me"),
  ]);
  if (usage.error || keys.error || again.error) throw new Error("a request failed after the shared refresh");
  console.log(`${usage.data.plan} plan: ${usage.data.remaining} tokens left, ${keys.data.length} API keys`);

  await api.POST("/api/v1/auth/logout");
  tokens.set(null);
  return again.data;
}

/** The pair as it is once its access token has expired (here: spoiled, which the API refuses alike). */
function expire(pair: TokenPair | null): TokenPair {
  if (!pair) throw new Error("not logged in");
  return { ...pair, access_token: "expired" };
}
