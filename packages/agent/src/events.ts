import type { SlothError } from "@sloth/client";

/**
 * What happens to a running agent, for the embedding code (the CLI prints
 * these; agentd logs them). Errors never carry the token.
 */
export type AgentEvent =
  | { type: "listening"; address: string; port: number }
  | {
      type: "registered";
      master: string;
      heartbeatIntervalMs: number;
      again: boolean;
      /** Set when the master could not reach the agent back: it lists it unreachable. */
      unreachable?: { address: string; reason: string; hint: string };
    }
  | {
      type: "registration-failed";
      master: string;
      error: SlothError;
      attempt: number;
      retryInMs: number;
    }
  | {
      type: "heartbeat-failed";
      master: string;
      error: SlothError;
      attempt: number;
      retryInMs: number;
    }
  | { type: "reconnected"; master: string }
  /** Processes an earlier run of this agent left running when it was killed, killed at start. */
  | { type: "orphans-killed"; pids: number[] }
  | { type: "forgotten"; master: string }
  | { type: "stopping"; reason: "stop" | "shutdown-rpc" | "fatal" }
  | { type: "stopped"; error?: SlothError };

/** Registration state as last seen. */
export interface AgentStatus {
  /** True while the master accepts this agent's heartbeats. */
  registered: boolean;
  /** The master dialled. */
  master: string;
  /** The last registration or heartbeat failure; cleared on success. */
  lastError: SlothError | undefined;
  registeredAt: Date | undefined;
  lastHeartbeatAt: Date | undefined;
  /** Heartbeat interval in force, before jitter. */
  heartbeatIntervalMs: number | undefined;
  runningCommands: number;
  state: "new" | "running" | "stopping" | "stopped";
}
