import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { CommandExit, CommandSpecSchema, MasterService } from "@sloth/proto";
import { fromConnectError } from "./connect-errors.js";
import type { SlothError } from "./errors.js";

/** Exit code for a command that could not start or whose link failed, as ssh uses. */
export const LINK_FAILED_EXIT = 255;

/** How one agent's run ended. */
export interface AgentRunResult {
  agent: string;
  /** The process-style code: the exit code, 128+N for signal N, 255 for start or link failures. */
  code: number;
  exitCode: number;
  signal?: string | undefined;
  timedOut: boolean;
  durationMs: number;
  /** Why the command could not start, or why the link failed. */
  error?: string | undefined;
}

/** Options of {@link runOnAgent} and {@link runOnAgents}. */
export interface RunOnAgentsOptions {
  client: Client<typeof MasterService>;
  /** The master's address, for error messages. */
  masterAddress: string;
  spec: MessageInitShape<typeof CommandSpecSchema>;
  signal?: AbortSignal | undefined;
  /** Receives output as it arrives; awaited, so slow consumers apply backpressure. */
  onOutput?:
    | ((agent: string, stream: "stdout" | "stderr", data: Uint8Array) => void | Promise<void>)
    | undefined;
  /** Called when an agent's run ends. */
  onExit?: ((result: AgentRunResult) => void) | undefined;
  /** Called once the command runs on an agent (before its first output). */
  onStarted?: ((agent: string) => void) | undefined;
}

/** A result that says the link failed, until the command's exit says otherwise. */
export function linkFailed(agent: string): AgentRunResult {
  return { agent, code: LINK_FAILED_EXIT, exitCode: -1, timedOut: false, durationMs: 0 };
}

/** Records how a command ended: the process-style code is 128+N for signal N. */
export function applyExit(result: AgentRunResult, x: CommandExit): void {
  result.exitCode = x.exitCode;
  result.timedOut = x.timedOut;
  result.durationMs = Number(x.durationMs);
  if (x.startError) result.error = `could not start: ${x.startError}`;
  else if (x.signalNumber > 0) {
    result.signal = x.signal;
    result.code = 128 + x.signalNumber;
  } else result.code = x.exitCode;
}

/** Runs one command on one agent through the master. Never throws for remote failures. */
export async function runOnAgent(
  agent: string,
  options: RunOnAgentsOptions,
): Promise<AgentRunResult> {
  const started = Date.now();
  const result = linkFailed(agent);
  try {
    const stream = options.client.runOnAgent(
      { agentName: agent, spec: options.spec },
      { signal: options.signal },
    );
    let sawExit = false;
    for await (const res of stream) {
      const ev = res.event?.event;
      if (ev?.case === "started") options.onStarted?.(agent);
      else if (ev?.case === "output") {
        await options.onOutput?.(agent, ev.value.stream === 2 ? "stderr" : "stdout", ev.value.data);
      } else if (ev?.case === "exit") {
        sawExit = true;
        applyExit(result, ev.value);
      }
    }
    if (!sawExit) result.error = "the link ended without an exit status";
  } catch (e) {
    const err: SlothError = fromConnectError(e, { kind: "master", address: options.masterAddress });
    result.error = err.describe();
    result.durationMs = Date.now() - started;
  }
  options.onExit?.(result);
  return result;
}

/**
 * Runs one command on many agents through the master, at most `parallel` at
 * once (default: all). Results come back in the order of `agents`.
 */
export async function runOnAgents(
  agents: readonly string[],
  options: RunOnAgentsOptions & { parallel?: number | undefined },
): Promise<AgentRunResult[]> {
  const results: AgentRunResult[] = new Array(agents.length);
  const limit = Math.max(1, options.parallel ?? agents.length);
  let next = 0;
  const worker = async () => {
    while (next < agents.length) {
      const i = next++;
      results[i] = await runOnAgent(agents[i]!, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, agents.length) }, worker));
  return results;
}

/** The worst code of several runs: 255 if any link failed, else the highest. */
export function worstCode(results: readonly AgentRunResult[]): number {
  if (results.some((r) => r.code === LINK_FAILED_EXIT)) return LINK_FAILED_EXIT;
  return results.reduce((m, r) => Math.max(m, r.code), 0);
}
