import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  connect,
  fromConnectError,
  masterClient,
  type SlothConnection,
  SlothError,
  type TlsMaterial,
} from "@sloth/client";
import { AgentStatus, type RegisterAgentRequestSchema } from "@sloth/proto";
import { type BackoffOptions, backoffDelay, jittered, sleep } from "./backoff.js";
import { AgentNameHeldError } from "./errors.js";
import type { AgentEvent } from "./events.js";
import type { AgentLogger } from "./logger.js";

/** Heartbeat timing; values from the master's reply are used when unset. */
export interface HeartbeatOptions {
  /** Interval between heartbeats in ms (default: the master's, else 5000). */
  intervalMs?: number;
  /** Spread in percent either way (default: the master's, else 20). */
  jitterPercent?: number;
}

/** Inputs of the registration loop. */
export interface RegistrationOptions {
  master: string;
  token: string;
  /** Dial the master with TLS: our certificate as client certificate, `ca` to verify it. */
  tls?: TlsMaterial | undefined;
  name: string;
  secret: Uint8Array;
  request: MessageInitShape<typeof RegisterAgentRequestSchema>;
  heartbeat: HeartbeatOptions;
  backoff: BackoffOptions;
  /** Deadline of each call to the master. */
  rpcTimeoutMs: number;
  runningCommands(): number;
  logger: AgentLogger;
  emit(event: AgentEvent): void;
  /** Registration state changes, for status(). */
  onState(update: {
    registered: boolean;
    lastError?: SlothError;
    heartbeatIntervalMs?: number;
  }): void;
}

/** Codes meaning "the master does not know this agent as us": register again. */
const FORGOTTEN = new Set([Code.NotFound, Code.PermissionDenied, Code.AlreadyExists]);

/**
 * Registers with the master and heartbeats until `signal` aborts. Never gives
 * up on an unreachable master; returns only when stopped, and throws only
 * what retrying cannot fix: {@link AgentNameHeldError}, and a token the
 * master refuses before the first registration (SLOTH_UNAUTHENTICATED).
 */
export async function runRegistration(o: RegistrationOptions, signal: AbortSignal): Promise<void> {
  let conn: SlothConnection = connect({ address: o.master, token: o.token, tls: o.tls });
  const reconnect = () => {
    conn.close();
    conn = connect({ address: o.master, token: o.token, tls: o.tls });
  };
  const call = { signal, timeoutMs: o.rpcTimeoutMs };
  let again = false;
  let attempt = 0;
  try {
    while (!signal.aborted) {
      let intervalMs: number;
      let jitterPercent: number;
      let unreachable: { address: string; reason: string } | undefined;
      try {
        const reply = await masterClient(conn).registerAgent(o.request, call);
        if (reply.agent?.status === AgentStatus.UNREACHABLE)
          unreachable = { address: reply.agent.address, reason: reply.agent.statusReason };
        intervalMs = o.heartbeat.intervalMs ?? (Number(reply.heartbeatIntervalMs) || 5000);
        jitterPercent =
          o.heartbeat.jitterPercent ??
          (reply.heartbeatIntervalMs > 0n ? reply.heartbeatJitterPercent : 20);
      } catch (e) {
        if (signal.aborted) return;
        if (ConnectError.from(e).code === Code.AlreadyExists)
          throw new AgentNameHeldError(o.name, e);
        // A token refused before the first registration is a configuration
        // error that retrying cannot fix (the token is read once, at start).
        if (!again && ConnectError.from(e).code === Code.Unauthenticated)
          throw new SlothError(
            "SLOTH_UNAUTHENTICATED",
            `cannot register with master at ${o.master}: it refused the cluster token`,
            {
              cause: e,
              hint: "pass the master's token with --token-file or SLOTH_RUNNER_TOKEN (the master keeps it in <data dir>/master/token)",
              retryable: false,
            },
          );
        const error = fromConnectError(e, { kind: "master", address: o.master });
        const retryInMs = backoffDelay(attempt, o.backoff);
        attempt++;
        o.onState({ registered: false, lastError: error });
        o.logger.warn(
          { master: o.master, attempt, retryInMs, err: error.message, hint: error.hint },
          `cannot register with master at ${o.master}`,
        );
        o.emit({ type: "registration-failed", master: o.master, error, attempt, retryInMs });
        reconnect();
        await sleep(retryInMs, signal);
        continue;
      }
      attempt = 0;
      o.onState({ registered: true, heartbeatIntervalMs: intervalMs });
      o.logger.info(
        { master: o.master, name: o.name, heartbeatIntervalMs: intervalMs },
        `${again ? "registered again" : "registered"} with master at ${o.master}`,
      );
      o.emit({
        type: "registered",
        master: o.master,
        heartbeatIntervalMs: intervalMs,
        again,
        ...(unreachable && {
          unreachable: warnUnreachable(o, unreachable.address, unreachable.reason),
        }),
      });
      again = true;
      await heartbeatUntilForgotten(o, signal, () => conn, reconnect, intervalMs, jitterPercent);
    }
  } finally {
    conn.close();
  }
}

/**
 * Registered, but the master's probe of the agent's address failed: it will
 * list the agent as unreachable and cannot run anything on it. Said here,
 * where the operator who can fix it looks.
 */
function warnUnreachable(
  o: RegistrationOptions,
  address: string,
  reason: string,
): { address: string; reason: string; hint: string } {
  // The master's probe says "cannot reach ADDRESS: why"; only the why is new here.
  const why = reason.replace(/^cannot reach \S+: /, "").replace(/[\s:]+$/, "") || reason;
  const host = address.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  const certificate = /altnames|cert's list|certificate/i.test(reason);
  const hint = certificate
    ? `issue this agent a certificate with that address as a SAN: \`sloth-runner ca issue ${o.name} --san ${host}\``
    : "the master must be able to connect to that address: set the address it dials with --report-address, or open the port";
  o.logger.warn(
    { master: o.master, address, reason: why, hint },
    `registered with master at ${o.master}, but the master cannot reach this agent at ${address}`,
  );
  return { address, reason: why, hint };
}

/** Heartbeats until stopped or until the master no longer knows the agent. */
async function heartbeatUntilForgotten(
  o: RegistrationOptions,
  signal: AbortSignal,
  conn: () => SlothConnection,
  reconnect: () => void,
  initialIntervalMs: number,
  jitterPercent: number,
): Promise<void> {
  let intervalMs = initialIntervalMs;
  let failures = 0;
  let delay = jittered(intervalMs, jitterPercent);
  while (!signal.aborted) {
    await sleep(delay, signal);
    if (signal.aborted) return;
    try {
      const reply = await masterClient(conn()).heartbeat(
        { name: o.name, identitySecret: o.secret, runningCommands: o.runningCommands() },
        { signal, timeoutMs: o.rpcTimeoutMs },
      );
      if (o.heartbeat.intervalMs === undefined && reply.heartbeatIntervalMs > 0n) {
        intervalMs = Number(reply.heartbeatIntervalMs);
      }
      if (failures > 0) {
        o.logger.info({ master: o.master }, `heartbeats reach the master at ${o.master} again`);
        o.emit({ type: "reconnected", master: o.master });
      }
      failures = 0;
      o.onState({ registered: true, heartbeatIntervalMs: intervalMs });
      delay = jittered(intervalMs, jitterPercent);
    } catch (e) {
      if (signal.aborted) return;
      if (FORGOTTEN.has(ConnectError.from(e).code)) {
        o.onState({ registered: false });
        o.logger.info(
          { master: o.master },
          `master at ${o.master} no longer knows this agent; registering again`,
        );
        o.emit({ type: "forgotten", master: o.master });
        return;
      }
      const error = fromConnectError(e, { kind: "master", address: o.master });
      delay = backoffDelay(failures, o.backoff);
      failures++;
      o.onState({ registered: false, lastError: error });
      o.logger.warn(
        {
          master: o.master,
          attempt: failures,
          retryInMs: delay,
          err: error.message,
          hint: error.hint,
        },
        `heartbeat to master at ${o.master} failed`,
      );
      o.emit({
        type: "heartbeat-failed",
        master: o.master,
        error,
        attempt: failures,
        retryInMs: delay,
      });
      reconnect();
    }
  }
}

/**
 * Tells the master this agent is stopping, so it is marked inactive at once
 * instead of after its TTL. Best effort: gives up after `timeoutMs`.
 */
export async function sayGoodbye(
  o: Pick<RegistrationOptions, "master" | "token" | "tls" | "name" | "secret">,
  runningCommands: number,
  timeoutMs = 2000,
): Promise<void> {
  const conn = connect({ address: o.master, token: o.token, tls: o.tls });
  try {
    await masterClient(conn).heartbeat(
      { name: o.name, identitySecret: o.secret, runningCommands, stopping: true },
      { timeoutMs },
    );
  } catch {
    // The master is away: it will find out from the missing heartbeats.
  } finally {
    conn.close();
  }
}
