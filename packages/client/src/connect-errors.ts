import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isSlothError, SlothError, type SlothErrorCode } from "./errors.js";

const CODE_HEADER = "sloth-error-code";
const HINT_HEADER = "sloth-error-hint";

// By code: the SlothError codes of this package, and the errors other
// packages throw with the same brand (@sloth/workspace's), which an agent
// answers with.
const SERVER_CODES: Partial<Record<string, Code>> = {
  SLOTH_INVALID_ARGUMENT: Code.InvalidArgument,
  SLOTH_INVALID_ADDRESS: Code.InvalidArgument,
  SLOTH_UNAUTHENTICATED: Code.Unauthenticated,
  SLOTH_TOKEN_MISSING: Code.Unauthenticated,
  SLOTH_AGENT_NOT_FOUND: Code.NotFound,
  SLOTH_AGENT_NAME_HELD: Code.AlreadyExists,
  SLOTH_AGENT_UNAVAILABLE: Code.Unavailable,
  SLOTH_UNREACHABLE: Code.Unavailable,
  SLOTH_CANCELLED: Code.Canceled,
  SLOTH_DEADLINE: Code.DeadlineExceeded,
  SLOTH_TLS_REQUIRED: Code.FailedPrecondition,
  SLOTH_ARCHIVE_UNSAFE: Code.InvalidArgument,
  SLOTH_ARCHIVE_INVALID: Code.InvalidArgument,
  SLOTH_BLOB_MISMATCH: Code.InvalidArgument,
  SLOTH_BLOB_MISSING: Code.FailedPrecondition,
  SLOTH_WORKSPACE_TOO_LARGE: Code.ResourceExhausted,
  SLOTH_WORKSPACE_CHANGED: Code.Aborted,
  SLOTH_WORKSPACE_CONFLICT: Code.Aborted,
};

/** The SlothError code an error from a Connect call carries, if any. */
export function slothCodeOf(e: unknown): string | undefined {
  if (isSlothError(e)) return e.code;
  if (!(e instanceof ConnectError)) return undefined;
  return e.metadata.get(CODE_HEADER) ?? undefined;
}

/**
 * Turns an error into a ConnectError for the wire (server side). A
 * SlothError keeps its code and hint in response metadata, so clients of this
 * package rebuild the same error; other clients see a standard gRPC status.
 */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (isSlothError(e)) {
    const err = new ConnectError(e.message, SERVER_CODES[e.code] ?? Code.Unknown);
    err.metadata.set(CODE_HEADER, e.code);
    if (e.hint) err.metadata.set(HINT_HEADER, encodeURIComponent(e.hint));
    return err;
  }
  return ConnectError.from(e);
}

/** What the client was talking to, for error messages. */
export interface ErrorTarget {
  /** "master" or "agent". */
  kind: "master" | "agent";
  /** The address dialled. */
  address: string;
  /** A name, when the target was chosen by name. */
  name?: string | undefined;
}

function describeTarget(t: ErrorTarget): string {
  return t.name ? `${t.kind} '${t.name}' at ${t.address}` : `${t.kind} at ${t.address}`;
}

/**
 * Turns any error from a Connect call into a SlothError with a message that
 * names the target and a hint that says what to do (client side).
 */
export function fromConnectError(e: unknown, target: ErrorTarget): SlothError {
  if (isSlothError(e)) return e;
  const ce = ConnectError.from(e);
  const code = ce.metadata.get(CODE_HEADER) as SlothErrorCode | null;
  const hint = ce.metadata.get(HINT_HEADER);
  if (code) {
    return new SlothError(code, ce.rawMessage, {
      cause: e,
      hint: hint ? decodeURIComponent(hint) : undefined,
      retryable: code === "SLOTH_UNREACHABLE" || code === "SLOTH_AGENT_UNAVAILABLE",
    });
  }
  const where = describeTarget(target);
  // An HTTP/1.1 server (a web server at that port) answers the HTTP/2
  // preface with something nghttp2 cannot parse.
  if (/^Protocol error$|ERR_HTTP2_ERROR/.test(ce.rawMessage))
    return new SlothError(
      "SLOTH_UNREACHABLE",
      `cannot reach ${where}: what answers there does not speak HTTP/2 (protocol error)`,
      {
        cause: e,
        hint: `check the address: it must be a Sloth Runner ${target.kind}'s port`,
        details: { address: target.address },
      },
    );
  const tls = tlsProblem(ce.rawMessage, target);
  if (tls)
    return new SlothError("SLOTH_TLS", `cannot reach ${where}: ${tls.reason}`, {
      cause: e,
      hint: tls.hint,
    });
  // A connection reset without a status: typically a cleartext client
  // talking to a TLS server, or a server that went away.
  if (
    ce.code !== Code.Unavailable &&
    ce.code !== Code.Canceled &&
    /ECONNRESET|socket hang up/.test(ce.rawMessage)
  ) {
    return new SlothError("SLOTH_UNREACHABLE", `cannot reach ${where}: the connection was closed`, {
      cause: e,
      hint: closedHint(target.kind),
      retryable: true,
    });
  }
  switch (ce.code) {
    case Code.Unavailable:
      return new SlothError("SLOTH_UNREACHABLE", `cannot reach ${where}: ${reason(ce)}`, {
        cause: e,
        hint: /ECONNRESET|Protocol error|closed|GOAWAY/i.test(ce.rawMessage)
          ? `check the address; ${closedHint(target.kind)}`
          : target.kind === "master"
            ? "check that the master runs (`sloth-runner master start`) or choose another with --master"
            : "check that the agent runs and its address is reachable",
        details: { address: target.address },
        retryable: true,
      });
    case Code.Unauthenticated:
      return new SlothError(
        "SLOTH_UNAUTHENTICATED",
        `${where} refused the request: ${ce.rawMessage}`,
        {
          cause: e,
          hint: "pass the cluster token with --token-file FILE or SLOTH_RUNNER_TOKEN",
          details: { address: target.address },
        },
      );
    case Code.DeadlineExceeded:
      return new SlothError("SLOTH_DEADLINE", `${where} did not answer in time: ${ce.rawMessage}`, {
        cause: e,
        retryable: true,
      });
    case Code.Canceled:
      // A stream reset the caller did not ask for: typically a cleartext
      // client talking to a TLS server, which drops the connection.
      if (/stream closed|RST_STREAM|NGHTTP2|session/i.test(ce.rawMessage)) {
        return new SlothError(
          "SLOTH_UNREACHABLE",
          `cannot reach ${where}: the connection was closed`,
          {
            cause: e,
            hint: closedHint(target.kind),
            retryable: true,
          },
        );
      }
      return new SlothError(
        "SLOTH_CANCELLED",
        `call to ${where} was cancelled (${ce.rawMessage})`,
        { cause: e },
      );
    case Code.Unimplemented:
      return new SlothError(
        "SLOTH_REMOTE",
        `${where} does not speak the Sloth Runner protocol (${ce.rawMessage})`,
        {
          cause: e,
          hint: "check the address: is it a master rather than an agent, or another service?",
        },
      );
    default:
      return new SlothError("SLOTH_REMOTE", `${where} failed: ${ce.rawMessage}`, { cause: e });
  }
}

function tlsProblem(raw: string, t: ErrorTarget): { reason: string; hint: string } | undefined {
  // OpenSSL messages run over several lines: keep the first.
  const m = raw.split("\n", 1)[0]!.trim();
  if (/altnames|ERR_TLS_CERT_ALTNAME_INVALID/.test(m)) {
    return {
      reason: `its certificate does not cover the address ${t.address} (${m.replace(/^\[\w+\]\s*/, "")})`,
      hint: `issue a certificate with that address as a SAN: \`sloth-runner ca issue NAME --san ${t.address.replace(/:\d+$/, "").replace(/^\[|\]$/g, "")}\``,
    };
  }
  if (
    /self[- ]signed|unable to verify|unable to get local issuer|certificate signature failure|CERT_UNTRUSTED/i.test(
      m,
    )
  ) {
    return {
      reason: `its certificate is not trusted (${m.replace(/^\[\w+\]\s*/, "")})`,
      hint: "pass the cluster CA with --tls-ca (or record it with `sloth-runner master update NAME --tls-ca FILE`)",
    };
  }
  if (
    /certificate required|alert number 116|bad certificate|alert number 42|sslv3 alert/i.test(m)
  ) {
    return {
      reason: "it requires a client certificate signed by its CA",
      hint: "pass --tls-cert and --tls-key issued by the cluster CA",
    };
  }
  if (/wrong version number|packet length too long|http\/1\.1|ERR_SSL/i.test(m)) {
    return {
      // OpenSSL's own words, without its error queue's codes and source lines.
      reason: `TLS handshake failed (${/SSL routines:[^:]*:([^:]+)/.exec(m)?.[1] ?? m.replace(/^\[\w+\]\s*/, "")})`,
      hint: "the server may not use TLS: drop --tls-* for it, or start it with --tls-cert/--tls-key",
    };
  }
  return undefined;
}

function reason(ce: ConnectError): string {
  const m = ce.rawMessage;
  if (/ECONNREFUSED/.test(m)) return "connection refused";
  if (/ENOTFOUND|EAI_AGAIN/.test(m)) return "host not found";
  if (/ETIMEDOUT/.test(m)) return "connection timed out";
  if (/ECONNRESET|socket hang up|GOAWAY|closed/i.test(m)) return "connection lost";
  if (/EHOSTUNREACH|ENETUNREACH/.test(m)) return "host unreachable";
  return m;
}

/** What a closed connection can mean: the peer stopped, or it speaks TLS and the caller did not. */
function closedHint(kind: string): string {
  return `the ${kind} may have stopped (check that it runs); if it uses TLS, pass --tls-ca (and --tls-cert/--tls-key for mTLS)`;
}

const onWire = (e: unknown) => (isSlothError(e) ? toConnectError(e) : e);

/**
 * Server side: an error with a Sloth code a handler throws (a SlothError,
 * or a @sloth/workspace error refusing an archive) answers the call with
 * that code, message and hint, where Connect would answer "internal error".
 * Other errors are left as they are.
 */
export const slothErrorInterceptor: Interceptor = (next) => async (req) => {
  let res: Awaited<ReturnType<typeof next>>;
  try {
    res = await next(req);
  } catch (e) {
    throw onWire(e);
  }
  if (!res.stream) return res;
  const messages = res.message;
  async function* relayed() {
    try {
      yield* messages;
    } catch (e) {
      throw onWire(e);
    }
  }
  return { ...res, message: relayed() };
};
