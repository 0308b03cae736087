import tls from "node:tls";
import { parseHostPort } from "../address.js";
import { SlothError } from "../errors.js";

/**
 * True when what listens at `address` (HOST:PORT) completes a TLS handshake:
 * after a cleartext call was dropped without an answer, it tells "serves
 * TLS" apart from "went away". The certificate is not checked and nothing
 * is sent after the handshake; false on any error or after `timeoutMs`.
 */
export function probeTls(address: string, timeoutMs = 2000): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseHostPort(address));
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      // Only whether it speaks TLS matters here, not whom it proves to be.
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
    });
    const done = (served: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(served);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("secureConnect", () => done(true));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}

/**
 * For a call made without TLS that failed with "the connection was closed"
 * (SLOTH_UNREACHABLE): when the peer at `address` serves TLS, a
 * SLOTH_TLS_REQUIRED error saying so and how to fix it; else `err` itself.
 */
export async function explainClosedConnection(
  err: SlothError,
  target: { kind: "master" | "agent"; address: string },
): Promise<SlothError> {
  if (err.code !== "SLOTH_UNREACHABLE" || !/the connection was closed/.test(err.message))
    return err;
  if (!(await probeTls(target.address))) return err;
  const who = `${target.kind} at ${target.address}`;
  return new SlothError("SLOTH_TLS_REQUIRED", `${who} serves TLS, and the call did not use it`, {
    cause: err,
    hint:
      "pass --tls-ca with the cluster CA (and --tls-cert/--tls-key if it asks for client certificates), " +
      "or record them for the master with `sloth-runner master update NAME --tls-ca FILE ...`",
    details: { address: target.address },
    retryable: false,
  });
}
