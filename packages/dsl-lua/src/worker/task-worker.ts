/**
 * Entry of a Lua worker thread. The first job of a file loads it into a Lua
 * state (its top level runs once per worker); later calls of the same file
 * reuse that state, each putting back the globals and top-level locals it
 * changed. The worker itself (and its compiled wasm) is reused by the pool.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { JobMessage, JobRequest, SessionSpec } from "../protocol.js";
import { type JobContext, LuaSession, warmUp } from "./session.js";

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

// The spec this worker saw last (the pool then sends only its id), and the
// Lua state loaded from it, kept for the next calls of the same file.
let lastSpec: SessionSpec | undefined;
let loaded: LuaSession | undefined;

async function handle(req: JobRequest): Promise<void> {
  const spec = "source" in req.spec ? req.spec : lastSpec;
  if (spec?.id !== req.spec.id) {
    post({
      type: "failed",
      id: req.id,
      error: { code: "SLOTH_LUA_WORKER", reason: "the worker was sent a file it never loaded" },
    });
    return;
  }
  lastSpec = spec;
  // env.set in one task must not leak into the next job of this worker.
  for (const k of Object.keys(process.env)) if (!(k in baseEnv)) delete process.env[k];
  Object.assign(process.env, baseEnv, req.type === "call" ? req.env : {});
  // A call's top-level output (when it loads the file) was shown at load time.
  let muted = req.type === "call";
  const job: JobContext = {
    workdir: req.type === "call" ? req.workdir : spec.baseDir,
    events: {
      log: (stream, text) => {
        if (!muted) post({ type: "log", id: req.id, stream, text });
      },
      child: (pid, alive) => {
        trackChild(pid, alive);
        post({ type: "child", id: req.id, pid, alive });
      },
    },
  };
  let session = loaded?.spec.id === spec.id && req.type === "call" ? loaded : undefined;
  if (session) session.useJob(job);
  else {
    const old = loaded;
    loaded = undefined;
    await old?.close();
    session = await LuaSession.open(spec, job);
  }
  let end: JobMessage;
  try {
    if (session === loaded) {
      muted = false;
      end = await call(req, session);
    } else {
      end = await load(req, session, () => {
        muted = false;
      });
      // Kept loaded for the next call, unless the file failed to load.
      if (end.type !== "failed") loaded = session;
    }
  } finally {
    // Modules release what the task held (locks) before the pool hears it ended.
    if (session === loaded) await session.endJob();
    else await session.close();
  }
  post(end);
}

// Runs the file's top level and finds its functions; a load returns the
// declarations, a call then calls its function.
async function load(req: JobRequest, session: LuaSession, unmute: () => void): Promise<JobMessage> {
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
  return call(req, session);
}

async function call(req: JobRequest, session: LuaSession): Promise<JobMessage> {
  if (req.type !== "call") throw new Error("a load job cannot reuse a loaded state");
  return { type: "called", id: req.id, result: await session.call(req.fnKey, req.args) };
}
