import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { DslError } from "./errors.js";
import { killGroup } from "./modules/exec.js";
import type { JobMessage, JobRequest } from "./protocol.js";

/** What a finished job produced (its last message). */
export type JobEnd = Extract<JobMessage, { type: "loaded" | "called" | "failed" }>;

/** A job without its id (the pool assigns it). */
export type JobInput = JobRequest extends infer R
  ? R extends unknown
    ? Omit<R, "id">
    : never
  : never;

/** Options of {@link runJob}. */
export interface RunJobOptions {
  signal?: AbortSignal | undefined;
  /** The job fails with SLOTH_LUA_WORKER after this long. */
  timeoutMs?: number | undefined;
  onLog?: ((stream: "stdout" | "stderr" | "log", text: string) => void) | undefined;
}

/** Thrown by {@link runJob} when its signal aborts: the worker and its children are gone. */
export class JobAborted extends Error {
  constructor(readonly reason: unknown) {
    super(`stopped: ${reason instanceof Error ? reason.message : String(reason ?? "aborted")}`);
  }
}

// Idle workers keep their compiled wasm; a few are enough on small machines.
const MAX_IDLE = 4;
const idle: Worker[] = [];
// Each worker writes the process groups it has running into shared memory,
// so a stop sees them even before their "child" messages arrive.
const CHILD_SLOTS = 64;
const childSlots = new WeakMap<Worker, Int32Array>();
// Workers that have compiled the Lua wasm and can start a job at once.
const ready = new WeakSet<Worker>();
// The id of the spec each worker saw last: it keeps that file loaded.
const lastSpec = new WeakMap<Worker, string>();
let nextId = 1;

/**
 * Runs one job in a pooled worker. On abort or deadline the worker is
 * terminated (which stops even `while true do end`) and every process group
 * the job started is killed.
 */
export function runJob(req: JobInput, options: RunJobOptions = {}): Promise<JobEnd> {
  const { signal, timeoutMs, onLog } = options;
  if (signal?.aborted) return Promise.reject(new JobAborted(signal.reason));
  const id = nextId++;
  const specId = req.spec.id;
  const worker = takeIdle(specId) ?? spawnWorker();
  worker.ref();
  const children = new Set<number>();
  return new Promise<JobEnd>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    const killChildren = () => {
      for (const pid of childSlots.get(worker) ?? []) if (pid > 0) children.add(pid);
      for (const pid of children) killGroup(pid);
    };
    const kill = () => {
      cleanup();
      killChildren();
      // The worker runs on until its next interrupt check: a child it spawns
      // meanwhile is in its slots once it has stopped.
      void worker.terminate().then(killChildren, killChildren);
    };
    const onAbort = () => {
      kill();
      reject(new JobAborted(signal?.reason));
    };
    const onError = (e: Error) => {
      kill();
      reject(new DslError("SLOTH_LUA_WORKER", `Lua worker failed: ${e.message}`, { cause: e }));
    };
    const onExit = (code: number) => {
      cleanup();
      killChildren();
      reject(new DslError("SLOTH_LUA_WORKER", `Lua worker exited with code ${code}`));
    };
    const onMessage = (m: JobMessage) => {
      if (m.type === "ready" || m.id !== id) return;
      if (m.type === "log") onLog?.(m.stream, m.text);
      else if (m.type === "child") {
        if (m.alive) children.add(m.pid);
        else children.delete(m.pid);
      } else {
        cleanup();
        worker.unref();
        if (idle.length < MAX_IDLE) idle.push(worker);
        else void worker.terminate();
        resolve(m);
      }
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        kill();
        reject(new DslError("SLOTH_LUA_WORKER", `Lua did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    // A worker that saw this spec last still has it: send only its id.
    const spec = lastSpec.get(worker) === specId ? { id: specId } : req.spec;
    lastSpec.set(worker, specId);
    worker.postMessage({ ...req, spec, id } as JobRequest);
  });
}

/**
 * Starts workers ahead of need so that the first Lua tasks of a run do not
 * each wait for a worker to boot; they start in the background, unref'd.
 */
export function prewarm(count: number): void {
  while (idle.length < Math.min(count, MAX_IDLE)) idle.push(spawnWorker());
}

/** Terminates the idle Lua workers (busy ones end with their jobs). */
export async function shutdownLuaWorkers(): Promise<void> {
  const all = idle.splice(0);
  // Terminating a worker that is still booting can abort Node 20 in its
  // worker teardown: let booting workers come up (briefly) first.
  const deadline = Date.now() + 3000;
  while (all.some((w) => !ready.has(w)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(all.map((w) => w.terminate()));
}

// An idle worker that has this file loaded, else a booted one, else the
// oldest (most likely booted soonest).
function takeIdle(specId: string): Worker | undefined {
  let i = idle.findIndex((w) => lastSpec.get(w) === specId);
  if (i < 0) i = idle.findIndex((w) => ready.has(w));
  return idle.splice(Math.max(i, 0), 1)[0];
}

function spawnWorker(): Worker {
  const slots = new Int32Array(new SharedArrayBuffer(4 * CHILD_SLOTS));
  const workerData = { children: slots.buffer };
  let worker: Worker;
  if (import.meta.url.endsWith(".ts")) {
    // Running from source (tests, tsx): load the TypeScript worker through tsx.
    const tsUrl = new URL("./worker/task-worker.ts", import.meta.url).href;
    let api: string;
    try {
      api = createRequire(import.meta.url)
        .resolve("tsx/esm/api")
        .replace(/\.cjs$/, ".mjs");
    } catch (e) {
      throw new DslError(
        "SLOTH_LUA_WORKER",
        "cannot start a Lua worker from source: tsx is not installed",
        {
          cause: e,
          hint: "install tsx, or use the built package (dist/)",
        },
      );
    }
    const boot = `import(${JSON.stringify(pathToFileURL(api).href)}).then((m) => { m.register(); return import(${JSON.stringify(tsUrl)}); })`;
    worker = new Worker(boot, { eval: true, workerData });
  } else {
    worker = new Worker(new URL("./worker/task-worker.js", import.meta.url), { workerData });
  }
  childSlots.set(worker, slots);
  worker.on("message", (m: JobMessage) => {
    if (m.type === "ready") ready.add(worker);
  });
  // An idle worker that dies is simply dropped from the pool.
  worker.on("exit", () => {
    const i = idle.indexOf(worker);
    if (i >= 0) idle.splice(i, 1);
  });
  // After the listeners: adding a "message" listener refs the worker's port
  // again, and an idle worker must never keep the process alive.
  worker.unref();
  return worker;
}
