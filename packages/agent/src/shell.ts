// Interactive shells on the agent. With a terminal asked for, the shell runs
// on a pseudo-terminal made by util-linux `script` (present on every Debian
// and Red Hat system), so line editing, Ctrl-C, colours and full-screen
// programs work as over ssh; without `script`, or for piped input, it is a
// plain bash reading its input.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { ShellOpen, ShellRequest, ShellResponseSchema } from "@sloth/proto";
import { JOB_MARK_ENV } from "./orphans.js";
import { runCommand } from "./run-command.js";
import type { ServiceContext } from "./service.js";
import { toWire } from "./wire.js";

let scriptPath: string | null | undefined;

/** Where `script` is on PATH, looked up once; null when absent. */
function findScript(): string | null {
  if (scriptPath !== undefined) return scriptPath;
  scriptPath = null;
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(path.delimiter)) {
    if (dir === "") continue;
    const candidate = path.join(dir, "script");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      scriptPath = candidate;
      break;
    } catch {
      // Not here.
    }
  }
  return scriptPath;
}

/** A terminal dimension as stty takes it, or undefined when not given or absurd. */
function dimension(n: number): number | undefined {
  return Number.isInteger(n) && n > 0 && n <= 10_000 ? n : undefined;
}

/** The program that runs the shell, and whether it has a terminal. */
export function shellArgv(open: ShellOpen): { argv: [string, ...string[]]; tty: boolean } {
  if (!open.tty) return { argv: ["bash", "-s"], tty: false };
  const script = findScript();
  if (script === null) return { argv: ["bash", "-i"], tty: false };
  const rows = dimension(open.rows);
  const cols = dimension(open.cols);
  const size = rows && cols ? `stty rows ${rows} cols ${cols} 2>/dev/null; ` : "";
  // -q: no banner, -f: output as it comes, -e: the shell's exit code.
  return {
    argv: [script, "-q", "-f", "-e", "-c", `${size}exec bash --login -i`, "/dev/null"],
    tty: true,
  };
}

/**
 * Sets the size of the terminal of the shell under `script` (pid): the
 * kernel then tells its foreground programs (SIGWINCH), as a terminal window
 * does. Best effort: a shell that is gone or a system without /proc keeps
 * its size.
 */
function resizeTerminal(scriptPid: number, rows: number, cols: number): void {
  const r = dimension(rows);
  const c = dimension(cols);
  if (r === undefined || c === undefined) return;
  let terminal: string | undefined;
  try {
    const children = fs.readFileSync(`/proc/${scriptPid}/task/${scriptPid}/children`, "utf8");
    for (const child of children.trim().split(/\s+/)) {
      const fd0 = fs.readlinkSync(`/proc/${child}/fd/0`);
      if (/^\/dev\/pts\/\d+$/.test(fd0)) {
        terminal = fd0;
        break;
      }
    }
  } catch {
    return;
  }
  if (terminal === undefined) return;
  execFile("stty", ["-F", terminal, "rows", String(r), "cols", String(c)], () => {});
}

/** The Shell handler: the first request opens the shell, the rest is its input. */
export async function* shellHandler(
  ctx: ServiceContext,
  requests: AsyncIterable<ShellRequest>,
  call: HandlerContext,
): AsyncGenerator<MessageInitShape<typeof ShellResponseSchema>> {
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done || first.value.event.case !== "open")
    throw new ConnectError(
      "cannot open a shell: the first message must open it",
      Code.InvalidArgument,
    );
  const open = first.value.event.value;
  if (!ctx.tracker.accepting)
    throw new ConnectError(`agent '${ctx.name}' is shutting down`, Code.Unavailable);
  const { argv, tty } = shellArgv(open);
  let pid: number | undefined;
  async function* input(): AsyncGenerator<Uint8Array> {
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const ev = r.value.event;
      if (ev.case === "input") yield ev.value;
      else if (ev.case === "resize" && tty && pid !== undefined)
        resizeTerminal(pid, ev.value.rows, ev.value.cols);
    }
  }
  const run = ctx.tracker.track(call.signal);
  const log = { shell: argv[0], tty, workdir: open.workdir || undefined };
  ctx.logger.info(log, "shell starting");
  try {
    const env: Record<string, string> = { ...open.env, [JOB_MARK_ENV]: run.mark };
    if (tty) env.TERM = open.term || "xterm-256color";
    const events = runCommand(
      { command: argv.join(" "), argv, workdir: open.workdir, env },
      {
        ...ctx.runOptions,
        signal: run.signal,
        defaultWorkdir: ctx.workdir,
        stdin: input(),
      },
    );
    for await (const event of events) {
      const wire = toWire(event);
      if (wire.event?.case === "started") {
        wire.event.value.agentName = ctx.name;
        pid = wire.event.value.pid;
        yield { event: wire, tty };
        continue;
      }
      if (event.type === "exit")
        ctx.logger.info(
          {
            ...log,
            exitCode: event.exitCode,
            signal: event.signal || undefined,
            durationMs: event.durationMs,
            startError: event.startError || undefined,
          },
          "shell ended",
        );
      yield { event: wire };
    }
    if (run.signal.aborted) ctx.logger.info(log, "shell cancelled");
  } finally {
    run.release();
  }
}
