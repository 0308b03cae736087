import { spawn } from "node:child_process";
import { StringDecoder } from "node:string_decoder";

/** Options of {@link runShell}. */
export interface ShellOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Aborting kills the whole process group. */
  signal: AbortSignal;
  /** Receives output as it arrives. */
  onOutput?: ((stream: "stdout" | "stderr", text: string) => void) | undefined;
  /** Characters kept per stream; older output is dropped (default 1 MiB). */
  outputLimit?: number | undefined;
  /** Time between SIGTERM and SIGKILL when killing (default 2000 ms). */
  killGraceMs?: number | undefined;
}

/** How a shell command ended. */
export interface ShellResult {
  /** The exit code; 128 + the signal number when killed by a signal. */
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when the command was killed because the signal aborted. */
  killed: boolean;
}

const DEFAULT_LIMIT = 1024 * 1024;

/**
 * Runs `bash -c script` in its own process group. When the signal aborts, the
 * group gets SIGTERM, then SIGKILL after a grace period; when the shell exits,
 * whatever it left running in its group is killed too, so a task never leaves
 * processes behind. Resolves once the shell has exited.
 */
export function runShell(script: string, options: ShellOptions): Promise<ShellResult> {
  const limit = options.outputLimit ?? DEFAULT_LIMIT;
  return new Promise((resolve, reject) => {
    if (options.signal.aborted) {
      resolve({ exitCode: 130, stdout: "", stderr: "", killed: true });
      return;
    }
    const child = spawn("bash", ["-c", script], {
      cwd: options.cwd,
      env: options.env,
      detached: true, // a new process group, so kill(-pid) reaches grandchildren
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = { stdout: new Tail(limit), stderr: new Tail(limit) };
    let killed = false;
    let killTimer: NodeJS.Timeout | undefined;
    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const onAbort = (): void => {
      killed = true;
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), options.killGraceMs ?? 2000);
      killTimer.unref();
    };
    options.signal.addEventListener("abort", onAbort, { once: true });
    for (const stream of ["stdout", "stderr"] as const) {
      const decoder = new StringDecoder("utf8");
      child[stream].on("data", (chunk: Buffer) => {
        const text = decoder.write(chunk);
        if (!text) return;
        out[stream].push(text);
        options.onOutput?.(stream, text);
      });
    }
    child.on("error", (err) => {
      options.signal.removeEventListener("abort", onAbort);
      reject(err);
    });
    child.on("exit", () => {
      // Background processes may hold the pipes open; end them with the task.
      killGroup("SIGKILL");
    });
    child.on("close", (code, sig) => {
      options.signal.removeEventListener("abort", onAbort);
      if (killTimer) clearTimeout(killTimer);
      const exitCode = code ?? 128 + signalNumber(sig);
      resolve({ exitCode, stdout: out.stdout.text(), stderr: out.stderr.text(), killed });
    });
  });
}

function signalNumber(sig: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };
  return (sig && numbers[sig]) || 1;
}

/** Keeps the last `limit` characters of a stream. */
class Tail {
  #parts: string[] = [];
  #length = 0;
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  push(text: string): void {
    this.#parts.push(text);
    this.#length += text.length;
    if (this.#length > this.#limit * 2) this.#compact();
  }

  text(): string {
    this.#compact();
    return this.#parts.join("");
  }

  #compact(): void {
    const all = this.#parts.join("");
    const kept = all.length > this.#limit ? all.slice(all.length - this.#limit) : all;
    this.#parts = [kept];
    this.#length = kept.length;
  }
}
