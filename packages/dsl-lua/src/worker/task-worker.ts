/**
 * Entry of a Lua worker thread. Each job gets a fresh Lua state that loads the
 * workflow file again, so tasks never see each other's globals; the worker
 * itself (and its compiled wasm) is reused by the pool.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { JobMessage, JobRequest } from "../protocol.js";
import { LuaSession, warmUp } from "./session.js";

const port = parentPort;
if (!port) throw new Error("task-worker must run in a worker thread");
const baseEnv = { ...process.env };
// Shared with the pool: the process groups this worker has running.
const slots = new Int32Array((workerData as { children: SharedArrayBuffer }).children);

function trackChild(pid: number, alive: boolean): void {
  const i = slots.indexOf(alive ? 0 : pid);
  if (i >= 0) Atomics.store(slots, i, alive ? pid : 0);
}
// Jobs posted meanwhile wait in the queue; a failure here shows up in the first job.
warmUp().then(
  () => post({ type: "ready" }),
  () => undefined,
);

port.on("message", (req: JobRequest) => {
  handle(req).catch((e: unknown) => {
    post({
      type: "failed",
      id: req.id,
      error: { code: "SLOTH_LUA_WORKER", reason: String((e as Error)?.message ?? e) },
    });
  });
});

function post(m: JobMessage): void {
  port?.postMessage(m);
}

async function handle(req: JobRequest): Promise<void> {
  // env.set in one task must not leak into the next job of this worker.
  for (const k of Object.keys(process.env)) if (!(k in baseEnv)) delete process.env[k];
  Object.assign(process.env, baseEnv, req.type === "call" ? req.env : {});
  // A call loads the file again: its top-level output was shown at load time.
  let muted = req.type === "call";
  const workdir = req.type === "call" ? req.workdir : req.spec.baseDir;
  const session = await LuaSession.open(req.spec, workdir, {
    log: (stream, text) => {
      if (!muted) post({ type: "log", id: req.id, stream, text });
    },
    child: (pid, alive) => {
      trackChild(pid, alive);
      post({ type: "child", id: req.id, pid, alive });
    },
  });
  let end: JobMessage;
  try {
    end = await run(req, session, () => {
      muted = false;
    });
  } finally {
    // Modules release what the task held (locks) before the pool hears it ended.
    await session.close();
  }
  post(end);
}

// Loads the file, then extracts (load) or calls (call); returns the final message.
async function run(req: JobRequest, session: LuaSession, unmute: () => void): Promise<JobMessage> {
  const main = await session.runMain();
  if (!main.ok) {
    const code = main.syntax ? "SLOTH_LUA_SYNTAX" : "SLOTH_LUA_RUNTIME";
    return {
      type: "failed",
      id: req.id,
      error: { code, reason: main.reason, location: main.location },
    };
  }
  let raw = "";
  try {
    // A call needs only the functions' paths: skip encoding the declarations.
    if (req.type === "load") raw = await session.extract();
    else await session.index();
  } catch (e) {
    const reason = String((e as Error).message ?? e);
    return { type: "failed", id: req.id, error: { code: "SLOTH_DSL_INVALID", reason } };
  }
  if (req.type === "load") return { type: "loaded", id: req.id, raw };
  unmute();
  return { type: "called", id: req.id, result: await session.call(req.fnKey, req.args) };
}
