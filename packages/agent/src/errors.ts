import { SlothError } from "@sloth/client";

/**
 * The agent's name is registered at the master under another identity
 * secret. Retrying cannot help: the operator must delete the old entry.
 */
export class AgentNameHeldError extends SlothError {
  /** The contested agent name. */
  readonly agentName: string;

  constructor(name: string, cause?: unknown) {
    super("SLOTH_AGENT_NAME_HELD", `agent name '${name}' is held by another agent`, {
      cause,
      hint: `run \`sloth-runner agent delete ${name}\``,
      details: { name },
      retryable: false,
    });
    this.name = "AgentNameHeldError";
    this.agentName = name;
  }
}

/** The agent's port is taken by another process. */
export class PortInUseError extends SlothError {
  /** The port that could not be bound. */
  readonly port: number;

  constructor(port: number, cause?: unknown) {
    super("SLOTH_PORT_IN_USE", `port ${port} is already in use`, {
      cause,
      hint: "choose another with --port",
      details: { port },
      retryable: false,
    });
    this.name = "PortInUseError";
    this.port = port;
  }
}

/** A bad option or flag value given to the agent. */
export function invalidArgument(message: string, hint?: string): SlothError {
  return new SlothError("SLOTH_INVALID_ARGUMENT", message, { hint });
}
