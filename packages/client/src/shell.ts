import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { MasterService, ShellOnAgentRequestSchema, ShellOpenSchema } from "@sloth/proto";
import { fromConnectError } from "./connect-errors.js";
import { type AgentRunResult, applyExit, linkFailed } from "./fan-out.js";

/** A terminal's size, in characters. */
export interface TerminalSize {
  rows: number;
  cols: number;
}

/** Options of {@link shellOnAgent}. */
export interface ShellOptions {
  client: Client<typeof MasterService>;
  /** The master's address, for error messages. */
  masterAddress: string;
  /** How the shell starts: `tty` asks for a pseudo-terminal. */
  open: MessageInitShape<typeof ShellOpenSchema>;
  /**
   * What is typed or piped, and the new size of the caller's terminal when
   * it changes; its end closes the shell's input.
   */
  input: AsyncIterable<Uint8Array | TerminalSize>;
  signal?: AbortSignal | undefined;
  /** Called once the shell runs; `tty` tells whether it got a terminal. */
  onStarted?: ((tty: boolean) => void) | undefined;
  /** Receives output as it arrives; awaited, so a slow consumer applies backpressure. */
  onOutput?: ((stream: "stdout" | "stderr", data: Uint8Array) => void | Promise<void>) | undefined;
}

/**
 * Runs an interactive shell on an agent through the master, until it exits
 * or `signal` aborts (which kills it). Never throws for remote failures: the
 * result carries the exit code (128+N for signal N, 255 when the shell could
 * not start or the link failed) and the reason.
 */
export async function shellOnAgent(agent: string, options: ShellOptions): Promise<AgentRunResult> {
  const started = Date.now();
  const result = linkFailed(agent);
  async function* requests(): AsyncGenerator<MessageInitShape<typeof ShellOnAgentRequestSchema>> {
    yield { agentName: agent, request: { event: { case: "open", value: options.open } } };
    for await (const item of options.input) {
      if (item instanceof Uint8Array) {
        if (item.length > 0) yield { request: { event: { case: "input", value: item } } };
      } else yield { request: { event: { case: "resize", value: item } } };
    }
  }
  try {
    let sawExit = false;
    for await (const res of options.client.shellOnAgent(requests(), { signal: options.signal })) {
      const ev = res.response?.event?.event;
      if (ev?.case === "started") options.onStarted?.(res.response?.tty === true);
      else if (ev?.case === "output") {
        await options.onOutput?.(ev.value.stream === 2 ? "stderr" : "stdout", ev.value.data);
      } else if (ev?.case === "exit") {
        sawExit = true;
        applyExit(result, ev.value);
      }
    }
    if (!sawExit) result.error = "the link ended without an exit status";
  } catch (e) {
    result.error = fromConnectError(e, {
      kind: "master",
      address: options.masterAddress,
    }).describe();
    result.durationMs = Date.now() - started;
  }
  return result;
}
