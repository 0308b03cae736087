import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";

/**
 * Commands are forked by a small helper process rather than by the agent.
 *
 * On Linux, `fork()` copies the page tables of the caller's anonymous
 * memory and `exec()` then tears that copy down, while the caller waits: the
 * cost of starting `bash` grows with the caller's memory. Measured here,
 * about 85 µs per MiB: 1.7 ms from a 15 MiB process, 5 ms from the 55 MiB an
 * agent holds under load. The helper is a bare `node` holding about 20 MiB,
 * with a young generation capped so it stays small; it forks the command,
 * hands its stdout and stderr pipes to the agent over the IPC channel (the
 * agent reads them itself, so output never takes an extra hop), and reports
 * the exit. The command's process group, its environment and its marks are
 * exactly those of a direct spawn.
 *
 * Without the helper (it cannot start, or the command needs a standard
 * input), the agent spawns directly.
 */

/** The helper's program. Plain CommonJS, no imports beyond node: builtins. */
const HELPER_SOURCE = `
"use strict";
const { spawn } = require("node:child_process");
process.title = "sloth-agentd-spawner";
// Signals are the agent's to handle: the helper ends when the agent does.
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, () => {});
process.on("disconnect", () => process.exit(0));
const send = (m, h) => { try { process.send(m, h); } catch {} };
process.on("message", (m) => {
  let c;
  try {
    c = spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    send({ id: m.id, t: "fail", message: String(e && e.message || e) });
    return;
  }
  if (c.pid === undefined) {
    c.once("error", (e) => send({ id: m.id, t: "fail", message: String(e && e.message || e) }));
    return;
  }
  // The pipes belong to the agent: nothing is read here. Stopping the reads
  // keeps the handles alive until the IPC channel has passed them on.
  for (const s of [c.stdout, c.stderr]) {
    if (s._handle && typeof s._handle.readStop === "function") { s._handle.reading = false; s._handle.readStop(); }
  }
  c.on("error", () => {});
  send({ id: m.id, t: "stdout", pid: c.pid }, c.stdout);
  send({ id: m.id, t: "stderr" }, c.stderr);
  c.once("exit", (code, signal) => send({ id: m.id, t: "exit", code, signal }));
});
`;

/** What runCommand needs of a started command; a ChildProcess satisfies it. */
export interface StartedChild extends EventEmitter {
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  /** True when the exit status could not be known (see the helper). */
  readonly lost?: boolean;
}

/** A command started by the helper: its pipes are local, its exit is reported. */
class HelperChild extends EventEmitter implements StartedChild {
  stdout: Readable | null = null;
  stderr: Readable | null = null;
  pid: number | undefined;
  /** The helper stopped while this command ran: its exit status is unknown. */
  lost = false;
  private exited = false;
  private exitEmitted = false;
  private openPipes = 2;
  private closed = false;

  attach(stream: "stdout" | "stderr", pipe: Socket | undefined): void {
    if (!pipe) {
      // The handle did not arrive: the stream is empty.
      this.pipeClosed();
      return;
    }
    this[stream] = pipe;
    pipe.once("close", () => this.pipeClosed());
  }

  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    // Emitted from the next turn: the exit may arrive in the same read as
    // the pipes, before the caller has had a chance to listen.
    setImmediate(() => {
      this.exitEmitted = true;
      this.emit("exit", code, signal);
      this.maybeClose();
    });
  }

  /**
   * The helper is gone: the command may still run, its output still flows
   * through the pipes the agent holds, and only its exit status is lost. It
   * counts as exited once it is gone (polled by pid: its new parent reaps
   * it) or its pipes have closed, whichever comes first; never earlier,
   * since closing the pipes on a live command would kill it (SIGPIPE).
   */
  lose(): void {
    if (this.exited) return;
    this.lost = true;
    const pid = this.pid;
    const poll = setInterval(() => {
      if (pid === undefined || !processExists(pid)) end();
    }, LOST_POLL_MS);
    poll.unref();
    const end = () => {
      clearInterval(poll);
      this.off("pipes-closed", end);
      this.exit(null, null);
    };
    this.once("pipes-closed", end);
    if (this.openPipes <= 0) end();
  }

  private pipeClosed(): void {
    this.openPipes--;
    if (this.openPipes <= 0) this.emit("pipes-closed");
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.closed || !this.exitEmitted || this.openPipes > 0) return;
    this.closed = true;
    this.emit("close");
  }
}

/** How often a command whose helper died is checked for having ended. */
const LOST_POLL_MS = 250;

/** True while a process with this pid exists (signal 0 checks without sending). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface Pending {
  resolve(r: Started): void;
  child: HelperChild;
  started: boolean;
}

/** Result of {@link startCommand}. */
export type Started = { pid: number; child: StartedChild } | { error: Error };

/** Helper process shared by every agent of this process, started on first use. */
class Spawner {
  private proc: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set once the helper could not be started: spawn directly from then on. */
  disabled = false;

  /** The helper's pid while it runs. */
  get pid(): number | undefined {
    return this.proc?.connected ? this.proc.pid : undefined;
  }

  /**
   * Ends the helper when no command needs it, and waits until it is gone
   * (reaped), so that no zombie outlives the agent where PID 1 does not reap.
   */
  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || this.pending.size > 0) return;
    this.proc = undefined;
    const exited = new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve();
      else proc.once("exit", () => resolve());
    });
    if (proc.connected) proc.disconnect();
    const timer = setTimeout(() => proc.kill("SIGKILL"), 2000);
    await exited;
    clearTimeout(timer);
  }

  /** Starts the helper now, so the first command does not wait for it. */
  warm(): void {
    if (!this.disabled) this.ensure();
  }

  start(
    file: string,
    args: readonly string[],
    cwd: string,
    env: NodeJS.ProcessEnv,
  ): Promise<Started> | undefined {
    const proc = this.disabled ? undefined : this.ensure();
    if (!proc?.connected) return undefined;
    const id = this.nextId++;
    try {
      proc.send({ id, file, args, cwd, env });
    } catch {
      // The helper went away before it got the request: nothing started,
      // so the caller spawns the command itself.
      return undefined;
    }
    // Answers come from the event loop, after this turn: none is missed.
    const child = new HelperChild();
    return new Promise<Started>((resolve) => {
      this.pending.set(id, { resolve, child, started: false });
      this.ref(true);
    });
  }

  private ensure(): ChildProcess | undefined {
    if (this.proc?.connected) return this.proc;
    let proc: ChildProcess;
    try {
      proc = spawn(process.execPath, ["--max-semi-space-size=1", "-e", HELPER_SOURCE], {
        stdio: ["ignore", "ignore", "ignore", "ipc"],
        // The helper needs no secrets: commands get their environment per call.
        env: { PATH: process.env.PATH ?? "" },
        serialization: "json",
      });
    } catch {
      this.disabled = true;
      return undefined;
    }
    if (proc.pid === undefined) {
      proc.on("error", () => {});
      this.disabled = true;
      return undefined;
    }
    proc.on("error", () => {});
    proc.on("message", (m: HelperMessage, handle?: Socket) => this.onMessage(m, handle));
    proc.once("exit", () => this.lost(proc));
    proc.once("disconnect", () => this.lost(proc));
    this.proc = proc;
    this.ref(this.pending.size > 0);
    return proc;
  }

  private onMessage(m: HelperMessage, handle: Socket | undefined): void {
    const p = this.pending.get(m.id);
    if (!p) {
      handle?.destroy();
      return;
    }
    switch (m.t) {
      case "stdout":
        p.child.pid = m.pid;
        p.child.attach("stdout", handle);
        break;
      case "stderr":
        p.child.attach("stderr", handle);
        if (!p.started && p.child.pid !== undefined) {
          p.started = true;
          p.resolve({ pid: p.child.pid, child: p.child });
        }
        break;
      case "exit":
        this.done(m.id);
        p.child.exit(m.code, m.signal);
        break;
      case "fail":
        this.done(m.id);
        p.resolve({ error: new Error(m.message) });
        break;
    }
  }

  private done(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.ref(false);
  }

  /** The helper is gone: its commands' exit statuses went with it. */
  private lost(proc: ChildProcess): void {
    if (this.proc !== proc) return;
    this.proc = undefined;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      if (!p.started) {
        p.child.stdout?.destroy();
        p.resolve({ error: new Error("the agent's spawner process stopped") });
        continue;
      }
      // The command may still be running: its output keeps flowing through
      // the pipes the agent holds; only its exit code is lost.
      p.child.lose();
    }
  }

  /** Holds the agent's event loop only while commands are in flight. */
  private ref(on: boolean): void {
    const proc = this.proc;
    if (!proc) return;
    const channel = proc.channel as { ref(): void; unref(): void } | undefined | null;
    if (on) {
      proc.ref();
      channel?.ref();
    } else {
      proc.unref();
      channel?.unref();
    }
  }
}

type HelperMessage =
  | { id: number; t: "stdout"; pid: number }
  | { id: number; t: "stderr" }
  | { id: number; t: "exit"; code: number | null; signal: NodeJS.Signals | null }
  | { id: number; t: "fail"; message: string };

let shared: Spawner | undefined;

function spawner(): Spawner {
  shared ??= new Spawner();
  return shared;
}

/** The pid of the shared helper process, when running (for tests and diagnostics). */
export function spawnerPid(): number | undefined {
  return shared?.pid;
}

/** Stops the shared helper process if no command uses it (an agent stopping). */
export async function stopSpawner(): Promise<void> {
  await shared?.stop();
}

/** Starts the shared helper process ahead of the first command. */
export function warmSpawner(): void {
  if (process.platform === "linux") spawner().warm();
}

/**
 * Starts `file args` in its own process group with piped stdout and stderr,
 * through the helper; undefined when the helper is not available (the
 * caller then spawns directly).
 */
export function startCommand(
  file: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<Started> | undefined {
  if (process.platform !== "linux") return undefined;
  return spawner().start(file, args, cwd, env);
}
