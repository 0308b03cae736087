import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { secretsEqual } from "./token.js";

/** Options for {@link createAuthInterceptor}. */
export interface AuthInterceptorOptions {
  /** The cluster token every caller must present. */
  token: string;
  /** Method names (such as "Health") callable without a token. */
  publicMethods?: readonly string[];
}

/**
 * A server interceptor requiring `authorization: Bearer <token>` on every
 * call except the public methods. Tokens are compared in constant time and
 * never echoed.
 */
export function createAuthInterceptor(options: AuthInterceptorOptions): Interceptor {
  const open = new Set(options.publicMethods ?? ["Health"]);
  return (next) => async (req) => {
    if (!open.has(req.method.name)) {
      const header = req.header.get("authorization");
      if (!header) {
        throw new ConnectError("missing token", Code.Unauthenticated);
      }
      const m = /^Bearer\s+(.+)$/i.exec(header.trim());
      if (!m?.[1] || !secretsEqual(m[1], options.token)) {
        throw new ConnectError("invalid token", Code.Unauthenticated);
      }
    }
    return next(req);
  };
}

/** A client interceptor that sends `authorization: Bearer <token>`. */
export function bearerInterceptor(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}
