import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { secretsEqual } from "./token.js";

/** Options for {@link createAuthInterceptor}. */
export interface AuthInterceptorOptions {
  /** The cluster token every caller must present. */
  token: string;
  /**
   * Methods callable without a token: a bare name (such as "Health") on any
   * service, or a full path such as "/grpc.health.v1.Health/Check".
   */
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
    if (!open.has(req.method.name) && !open.has(`/${req.service.typeName}/${req.method.name}`)) {
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

/**
 * A client interceptor that sends `authorization: Bearer <token>`, except on
 * Health calls: they need none, and a probe of an address that is not (or
 * no longer) the agent it should be must not hand the token over.
 */
export function bearerInterceptor(token: string): Interceptor {
  return (next) => (req) => {
    if (req.method.name !== "Health") req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}
