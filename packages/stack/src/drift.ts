import { spawn } from "node:child_process";
import { findCycle } from "./deps.js";
import { StackError } from "./errors.js";
import { depthOf, diffJson } from "./json-diff.js";
import type { Source, StackStore } from "./store.js";
import { MAX_DEPTH } from "./store.js";
import type { DriftFinding, DriftReport, Json, StackResource, ValidationCheck } from "./types.js";

/** Options of {@link detectDrift} and {@link fixDrift}. */
export interface DriftOptions extends Source {
  /** Working directory of the commands (default: the current one). */
  cwd?: string | undefined;
  /** Environment of the commands (default: this process's). */
  env?: NodeJS.ProcessEnv | undefined;
  /** Time allowed to each command (default 60 s); it is killed with its children after. */
  timeoutMs?: number | undefined;
  /** Checks run at once (default 8). */
  parallel?: number | undefined;
  /** Only these resources (default: all). */
  resources?: string[] | undefined;
  /** Stops the commands (their process groups are killed) and the rest of the work. */
  signal?: AbortSignal | undefined;
}

/** The longest time a command may be given: what a timer can wait. */
const MAX_TIMEOUT_MS = 2_147_483_647;

function timeoutOf(options: DriftOptions): number {
  const t = options.timeoutMs ?? 60_000;
  if (!Number.isFinite(t) || t < 1 || t > MAX_TIMEOUT_MS)
    throw new StackError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid command timeout ${t} ms: expected 1 ms to 24 days`,
    );
  return t;
}

// Output kept from a check: more is cut (and the check reported as an error).
const MAX_OUTPUT = 4 * 1024 * 1024;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  tooLong: boolean;
  aborted: boolean;
  error?: string;
}

/** Runs `bash -c command` in its own process group, killed whole on timeout. */
function sh(command: string, options: DriftOptions): Promise<Ran> {
  const timeoutMs = timeoutOf(options);
  return new Promise((resolve) => {
    if (options.signal?.aborted) {
      resolve({
        code: null,
        stdout: "",
        stderr: "",
        timedOut: false,
        tooLong: false,
        aborted: true,
      });
      return;
    }
    const child = spawn("bash", ["-c", command], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let timedOut = false;
    let tooLong = false;
    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const take = (into: Buffer[]) => (b: Buffer) => {
      size += b.length;
      if (size > MAX_OUTPUT) {
        tooLong = true;
        kill();
        return;
      }
      into.push(b);
    };
    child.stdout.on("data", take(out));
    child.stderr.on("data", take(err));
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      kill();
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const done = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    };
    child.once("error", (e) => {
      done();
      resolve({ code: null, stdout: "", stderr: "", timedOut, tooLong, aborted, error: e.message });
    });
    child.once("close", (code) => {
      done();
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
        tooLong,
        aborted,
      });
    });
  });
}

const lastLine = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .pop();

/** What a resource's check says of it. */
async function checkOne(
  r: StackResource,
  options: DriftOptions,
): Promise<{ actual?: Json | undefined; finding: DriftFinding }> {
  if (r.check === undefined)
    return { finding: { status: "unchecked", differences: [], message: "no check command" } };
  const ran = await sh(r.check, options);
  const seconds = timeoutOf(options) / 1000;
  if (ran.aborted)
    return { finding: { status: "error", differences: [], message: "check interrupted" } };
  if (ran.error)
    return {
      finding: { status: "error", differences: [], message: `check could not run: ${ran.error}` },
    };
  if (ran.timedOut)
    return {
      finding: { status: "error", differences: [], message: `check timed out after ${seconds}s` },
    };
  if (ran.tooLong)
    return {
      finding: { status: "error", differences: [], message: "check printed more than 4 MiB" },
    };
  if (ran.code !== 0)
    return {
      finding: {
        status: "missing",
        differences: [],
        message: `check exited ${ran.code ?? "on a signal"}${lastLine(ran.stderr) ? `: ${lastLine(ran.stderr)}` : ""}`,
      },
    };
  const text = ran.stdout.trim();
  // No desired value: the check's exit status alone says the resource is there.
  if (r.desired === null)
    return {
      ...(text ? { actual: parseOutput(text) } : {}),
      finding: { status: "in_sync", differences: [] },
    };
  let actual: Json;
  try {
    actual = JSON.parse(text) as Json;
  } catch {
    // Not JSON: the text itself, compared with a string (or number) desired.
    actual = text;
  }
  if (depthOf(actual, MAX_DEPTH) > MAX_DEPTH)
    return {
      finding: {
        status: "error",
        differences: [],
        message: `check printed JSON nested deeper than ${MAX_DEPTH} levels`,
      },
    };
  const differences = diffJson(r.desired, actual, { subset: true });
  return {
    actual,
    finding:
      differences.length > 0
        ? { status: "drifted", differences }
        : { status: "in_sync", differences: [] },
  };
}

function parseOutput(text: string): Json {
  try {
    const v = JSON.parse(text) as Json;
    return depthOf(v, MAX_DEPTH) > MAX_DEPTH ? text : v;
  } catch {
    return text;
  }
}

async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}

/**
 * Runs the check of each resource of `stack`, compares what it prints with
 * what the resource should be, records the findings (`stack drift show`)
 * and an event, and returns them.
 */
export async function detectDrift(
  store: StackStore,
  stack: string,
  options: DriftOptions = {},
): Promise<DriftReport> {
  timeoutOf(options);
  const resources = selectResources(store, stack, options.resources);
  const results = await pool(resources, options.parallel ?? 8, (r) => checkOne(r, options));
  const findings = resources.map((r, i) => ({
    name: r.name,
    ...(results[i] as Awaited<ReturnType<typeof checkOne>>),
  }));
  store.recordDrift(stack, findings, { source: options.source });
  return report(stack, resources, findings);
}

/**
 * Runs the fix command of every resource not in sync (dependencies first),
 * then checks those again; records `drift.fixed` when all of them are in
 * sync after. Resources without a fix command stay as they are.
 */
export async function fixDrift(
  store: StackStore,
  stack: string,
  options: DriftOptions = {},
): Promise<DriftReport & { fixed: string[]; failed: { name: string; message: string }[] }> {
  const before = await detectDrift(store, stack, options);
  const all = new Map(store.resources(stack).map((r) => [r.name, r]));
  const off = before.resources.filter(
    (r) => r.finding.status === "drifted" || r.finding.status === "missing",
  );
  const fixed: string[] = [];
  const failed: { name: string; message: string }[] = [];
  const done = new Set<string>();
  const offNames = new Set(off.map((r) => r.name));
  // Dependencies first: repeatedly take those whose drifted dependencies are done.
  const pending = off.map((r) => all.get(r.name) as StackResource);
  while (pending.length > 0) {
    const i = pending.findIndex((r) => r.dependsOn.every((d) => !offNames.has(d) || done.has(d)));
    const r = pending.splice(i === -1 ? 0 : i, 1)[0] as StackResource;
    done.add(r.name);
    if (r.fix === undefined) {
      failed.push({ name: r.name, message: "no fix command" });
      continue;
    }
    if (options.signal?.aborted) {
      failed.push({ name: r.name, message: "interrupted before its fix ran" });
      continue;
    }
    const ran = await sh(r.fix, options);
    if (ran.aborted) failed.push({ name: r.name, message: "fix interrupted" });
    else if (ran.code === 0 && !ran.timedOut && !ran.error) fixed.push(r.name);
    else
      failed.push({
        name: r.name,
        message: ran.timedOut
          ? `fix timed out after ${timeoutOf(options) / 1000}s`
          : (ran.error ??
            `fix exited ${ran.code ?? "on a signal"}${lastLine(ran.stderr) ? `: ${lastLine(ran.stderr)}` : ""}`),
      });
  }
  if (off.length === 0 || options.signal?.aborted) return { ...before, fixed, failed };
  const after = await detectDrift(store, stack, { ...options, resources: off.map((r) => r.name) });
  const still = after.resources.filter((r) => r.finding.status !== "in_sync");
  for (const r of still)
    if (!failed.some((f) => f.name === r.name))
      failed.push({ name: r.name, message: `still ${r.finding.status} after its fix` });
  const ok = fixed.filter((n) => !still.some((r) => r.name === n));
  if (ok.length > 0)
    store.addEvent(stack, {
      type: "drift.fixed",
      message: `fixed: ${ok.join(", ")}`,
      data: { resources: ok },
      source: options.source,
    });
  const merged = new Map(before.resources.map((r) => [r.name, r]));
  for (const r of after.resources) merged.set(r.name, r);
  const resources = [...merged.values()];
  return {
    stack,
    checkedAt: after.checkedAt,
    inSync: resources.every(
      (r) => r.finding.status === "in_sync" || r.finding.status === "unchecked",
    ),
    resources,
    fixed: ok,
    failed,
  };
}

/** The last findings recorded for `stack`'s resources (no command is run). */
export function lastDrift(store: StackStore, stack: string): DriftReport {
  const resources = store.resources(stack);
  const checked = resources.map((r) => r.checkedAt?.getTime() ?? 0);
  return {
    stack,
    checkedAt: new Date(Math.max(0, ...checked)),
    inSync: resources.every(
      (r) => r.drift === undefined || ["in_sync", "unchecked"].includes(r.drift.status),
    ),
    resources: resources.map((r) => ({
      name: r.name,
      type: r.type,
      finding: r.drift ?? { status: "unchecked", differences: [], message: "never checked" },
      ...(r.actual !== undefined ? { actual: r.actual } : {}),
    })),
  };
}

function selectResources(
  store: StackStore,
  stack: string,
  only: string[] | undefined,
): StackResource[] {
  const all = store.resources(stack);
  if (only === undefined || only.length === 0) return all;
  for (const n of only)
    if (!all.some((r) => r.name === n))
      throw new StackError(
        "SLOTH_STACK_RESOURCE_NOT_FOUND",
        `stack '${stack}' has no resource '${n}'`,
        {
          hint: `list them with \`sloth-runner stack resource list ${stack}\``,
        },
      );
  return all.filter((r) => only.includes(r.name));
}

function report(
  stack: string,
  resources: StackResource[],
  findings: { name: string; actual?: Json | undefined; finding: DriftFinding }[],
): DriftReport {
  return {
    stack,
    checkedAt: new Date(),
    inSync: findings.every(
      (f) => f.finding.status === "in_sync" || f.finding.status === "unchecked",
    ),
    resources: findings.map((f, i) => ({
      name: f.name,
      type: (resources[i] as StackResource).type,
      finding: f.finding,
      ...(f.actual !== undefined ? { actual: f.actual } : {}),
    })),
  };
}

/**
 * Pre-flight checks of a stack: its dependencies exist, make no cycle and
 * have run successfully; its lock is free; its resources can be checked
 * and were in sync when last checked; its last execution succeeded. Errors
 * fail the validation, warnings do not.
 */
export function validateStack(store: StackStore, stack: string): ValidationCheck[] {
  const s = store.get(stack);
  const checks: ValidationCheck[] = [];
  const add = (check: string, level: ValidationCheck["level"], message: string) =>
    checks.push({ check, level, message });
  const deps = store.dependencies(stack);
  if (deps.missing.length > 0)
    add("dependencies exist", "error", `missing: ${deps.missing.join(", ")}`);
  else
    add(
      "dependencies exist",
      "ok",
      deps.transitive.length > 0 ? deps.transitive.join(", ") : "none",
    );
  if (deps.cycle) add("no dependency cycle", "error", deps.cycle.join(" -> "));
  else add("no dependency cycle", "ok", "none");
  const unhealthy = deps.transitive
    .map((d) => store.find(d) ?? { name: d, status: "missing" })
    .filter((d) => d.status !== "completed")
    .map((d) => `${d.name} (${d.status})`);
  if (unhealthy.length > 0) add("dependencies deployed", "warning", unhealthy.join(", "));
  else add("dependencies deployed", "ok", deps.transitive.length > 0 ? "all completed" : "none");
  if (s.lock && !s.lock.stale)
    add("lock available", "warning", `held by ${s.lock.lockedBy} (${s.lock.operation})`);
  else
    add(
      "lock available",
      "ok",
      s.lock?.stale ? `stale lock (${s.lock.stale}) will be broken` : "free",
    );
  const resources = store.resources(stack);
  const names = new Set(resources.map((r) => r.name));
  const dangling = resources.flatMap((r) =>
    r.dependsOn.filter((d) => !names.has(d)).map((d) => `${r.name} -> ${d}`),
  );
  const rcycle = findCycle(new Map(resources.map((r) => [r.name, r.dependsOn])));
  if (dangling.length > 0) add("resource dependencies", "error", `unknown: ${dangling.join(", ")}`);
  else if (rcycle) add("resource dependencies", "error", `cycle: ${rcycle.join(" -> ")}`);
  else add("resource dependencies", "ok", `${resources.length} resource(s)`);
  const unchecked = resources.filter((r) => r.check === undefined).map((r) => r.name);
  if (unchecked.length > 0)
    add("resources checkable", "warning", `no check command: ${unchecked.join(", ")}`);
  else add("resources checkable", "ok", resources.length > 0 ? "all have a check" : "no resources");
  const drifted = resources
    .filter((r) => r.drift && !["in_sync", "unchecked"].includes(r.drift.status))
    .map((r) => `${r.name} (${r.drift?.status})`);
  if (drifted.length > 0) add("no known drift", "warning", drifted.join(", "));
  else
    add(
      "no known drift",
      "ok",
      resources.some((r) => r.drift) ? "in sync when last checked" : "never checked",
    );
  if (s.status === "failed") add("last execution", "warning", `run ${s.lastRunId ?? "?"} failed`);
  else if (s.status === "running")
    add("last execution", "warning", `run ${s.lastRunId ?? "?"} still running`);
  else
    add(
      "last execution",
      "ok",
      s.status === "completed" ? `run ${s.lastRunId ?? "?"} completed` : "never run",
    );
  return checks;
}
