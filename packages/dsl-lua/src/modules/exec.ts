import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { parseDuration } from "../convert/duration.js";
import type { LuaModuleDefinition, LuaModuleHost } from "../types.js";

/** Options of `exec.run(cmd, opts)` as Lua passes them. */
interface ExecOptions {
  workdir?: string;
  env?: Record<string, string | number | boolean>;
  timeout?: number | string;
  /** Also copy the output to the task's log as it arrives. */
  stream?: boolean;
}

/** What `exec.run` returns to Lua. */
interface ExecResult {
  stdout: string;
  stderr: string;
  exit_code: number;
  success: boolean;
  timed_out: boolean;
}

/**
 * `exec.run(cmd, {workdir, env, timeout, stream})`: runs `bash -c cmd` in its
 * own process group, so a stopped task (or a timeout) kills the whole tree.
 */
export function createExecModule(host: LuaModuleHost): LuaModuleDefinition {
  const run = (cmd: string, opts?: ExecOptions): Promise<ExecResult> => {
    if (typeof cmd !== "string") throw new Error("exec.run expects a command string");
    const o = opts ?? {};
    if (typeof o !== "object" || Array.isArray(o))
      throw new Error(
        "exec.run: options must be a table such as { workdir = 'dir', env = { K = 'v' } }",
      );
    if (
      o.env !== undefined &&
      (typeof o.env !== "object" || o.env === null || Array.isArray(o.env))
    )
      throw new Error("exec.run: env must be a table of NAME = value");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.env ?? {})) {
      if (!/^[^=\0]+$/.test(k))
        throw new Error(`exec.run: invalid environment variable name '${k}'`);
      env[k] = String(v);
    }
    // Checked here: spawn reports a missing workdir as "spawn bash ENOENT", as if bash were missing.
    const cwd = host.resolvePath(o.workdir ?? ".");
    const st = statSync(cwd, { throwIfNoEntry: false });
    if (st === undefined) throw new Error(`exec.run: workdir '${cwd}' does not exist`);
    if (!st.isDirectory()) throw new Error(`exec.run: workdir '${cwd}' is not a directory`);
    const timeoutMs = o.timeout === undefined ? undefined : parseDuration(o.timeout, "s");
    return new Promise((resolve, reject) => {
      const child = spawn("bash", ["-c", cmd], {
        cwd,
        env: { ...process.env, ...env },
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
      const pid = child.pid;
      if (pid !== undefined) host.trackChild(pid);
      const out: string[] = [];
      const err: string[] = [];
      let timedOut = false;
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              if (pid !== undefined) killGroup(pid);
            }, timeoutMs);
      child.stdout.setEncoding("utf8").on("data", (s: string) => {
        out.push(s);
        if (o.stream) host.log("stdout", s);
      });
      child.stderr.setEncoding("utf8").on("data", (s: string) => {
        err.push(s);
        if (o.stream) host.log("stderr", s);
      });
      child.on("error", (e) => {
        clearTimeout(timer);
        if (pid !== undefined) host.untrackChild(pid);
        reject(new Error(`cannot run command: ${e.message}`));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        if (pid !== undefined) host.untrackChild(pid);
        const exitCode = code ?? (signal ? 128 + signalNumber(signal) : 1);
        resolve({
          stdout: out.join(""),
          stderr: err.join(""),
          exit_code: exitCode,
          success: exitCode === 0 && !timedOut,
          timed_out: timedOut,
        });
      });
    });
  };
  return { functions: { run }, async: ["run"] };
}

/** Kills a process group, ignoring groups that are already gone. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already exited: nothing to kill.
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return osConstants.signals[signal] ?? 0;
}
