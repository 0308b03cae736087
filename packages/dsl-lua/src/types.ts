import type { Value, WorkflowModel } from "@sloth/workflow";

/** The pino-compatible logger shape this package writes to (default: silent). */
export interface Logger {
  debug(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

/**
 * An extra Lua module, loaded inside every Lua worker. `url` is an ES module
 * (file URL or package specifier resolvable from this package) whose
 * `createLuaModule(options, host)` export returns the module's functions.
 */
export interface LuaModuleSpec {
  /** Global name in Lua, also registered for `require(name)`. */
  name: string;
  url: string;
  /** Structured-clone-able options handed to `createLuaModule`. */
  options?: Value | undefined;
}

/** What a worker gives a module: where to log, and how to resolve paths. */
export interface LuaModuleHost {
  /** Writes to the running task's log (or the load log). */
  log(stream: "stdout" | "stderr" | "log", text: string): void;
  /** Resolves a path against the task's working directory. */
  resolvePath(path: string): string;
  /** Registers a child process group to kill if the task is stopped. */
  trackChild(pid: number): void;
  untrackChild(pid: number): void;
  /** True while the workflow file's top level runs, false in a task's function. */
  inTopLevel?(): boolean;
}

/**
 * A module's functions. Functions named in `async` return promises; Lua sees
 * them as ordinary blocking calls (they run in the task's worker).
 */
export interface LuaModuleDefinition {
  functions: Record<string, (...args: never[]) => unknown>;
  async?: string[] | undefined;
  /** Lua code run once the module is installed; it receives the module table as `...`. */
  lua?: string | undefined;
  /**
   * False: a global only, not registered for `require(name)`, so a
   * workflow's own file of that name still loads (the `stack` module).
   * Default true.
   */
  requireable?: boolean | undefined;
  /**
   * Called when each job ends: release what the task left held (locks). The
   * module stays installed for the next job of the same file in this worker.
   */
  close?: (() => Promise<void> | void) | undefined;
  /** Called when the Lua state is discarded (its worker loads another file). */
  dispose?: (() => Promise<void> | void) | undefined;
}

/** Options of {@link loadWorkflowFile} and {@link validate}. */
export interface LoadOptions {
  /** The global `values` table (from `--values FILE`). Default `{}`. */
  values?: Record<string, Value> | undefined;
  /** `--param k=v` pairs; visible at top level as the global `params`. Default `{}`. */
  params?: Record<string, Value> | undefined;
  /** The Sloth data directory, for modules that keep files. */
  dataDir?: string | undefined;
  /** A state database file; when set (and @sloth/state is present) the `state` module is enabled. */
  statePath?: string | undefined;
  /**
   * The store of the `state` module: a file, or a master's StateService
   * (so every task of a run shares the master's keys and locks). Takes
   * precedence over `statePath`.
   */
  state?: StateTarget | undefined;
  /** Extra Lua modules (see {@link LuaModuleSpec}). */
  modules?: LuaModuleSpec[] | undefined;
  /**
   * Start Lua workers for the workflows' first tasks right after loading, so
   * a run does not wait for them to boot. Default true; commands that only
   * inspect the file (list, show, validate) can turn it off.
   */
  prewarm?: boolean | undefined;
  /** Top-level code running longer than this fails the load. Default 30 000 ms. */
  loadTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
  /**
   * Messages name the file relative to this folder (default: the current
   * directory), as an agent names a shipped workflow relative to its copy.
   */
  displayRoot?: string | undefined;
}

/**
 * Where the Lua `state` module keeps its data: a SQLite file, or a master
 * (`HOST:PORT`, the cluster token, PEM text for TLS). Handed to Lua workers
 * as module options, so it must stay structured-clone-able.
 */
export type StateTarget =
  | { path: string; namespace?: string | undefined }
  | {
      master: string;
      token: string;
      tls?: { ca?: string; cert?: string; key?: string } | undefined;
      namespace?: string | undefined;
    };

/** What a workflow file declares. */
export interface LoadedWorkflows {
  /** Absolute path of the file. */
  file: string;
  /** `workflow.define(...)` workflows, in declaration order. */
  workflows: WorkflowModel[];
  /** `TaskDefinitions` groups, one model each, in declaration order. */
  groups: WorkflowModel[];
  /** One-line notices for the user (such as the `Modern DSLs` alias). */
  notices: string[];
  /**
   * Absolute paths of the other files the top level read (`require`,
   * `dofile`, `loadfile`), sorted; the workflow file itself is not listed.
   */
  sources: string[];
}

/** One problem found by {@link validate}. */
export interface ValidationProblem {
  code: string;
  message: string;
  file?: string | undefined;
  line?: number | undefined;
}

/** The result of {@link validate}. */
export interface ValidationResult {
  ok: boolean;
  problems: ValidationProblem[];
  notices: string[];
  /** The loaded workflows when the file loaded. */
  loaded?: LoadedWorkflows | undefined;
}
