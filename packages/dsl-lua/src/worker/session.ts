import { readFileSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import type { Value } from "@sloth/workflow";
import { type LuaEngine, LuaFactory } from "wasmoon";
import type { SourceLocation } from "../errors.js";
import { createDataModule, renderTemplate } from "../modules/data.js";
import { createExecModule } from "../modules/exec.js";
import { createFsModule } from "../modules/fs.js";
import { createEnvModule, createHttpModule, createTimeModule } from "../modules/net.js";
import type { CallResult, SessionSpec } from "../protocol.js";
import type { LuaModuleDefinition, LuaModuleHost } from "../types.js";
import { LUA_DSL } from "./lua-dsl.js";
import { LUA_RUNTIME } from "./lua-runtime.js";
import { EMPTY_ARRAY_KEY, toLua } from "./to-lua.js";
import { installValueConversions } from "./wasmoon-values.js";

installValueConversions();

// One factory per worker: it compiles the wasm once; engines are then cheap.
let factory: LuaFactory | undefined;

/** Compiles the Lua wasm ahead of the first job (called when a worker boots). */
export async function warmUp(): Promise<void> {
  factory ??= new LuaFactory();
  await factory.getLuaModule();
}

/** Where a session sends what the Lua does. */
export interface SessionEvents {
  log(stream: "stdout" | "stderr" | "log", text: string): void;
  child(pid: number, alive: boolean): void;
}

/** The job a session is working for: where relative paths point, where events go. */
export interface JobContext {
  workdir: string;
  events: SessionEvents;
}

/** The outcome of running the workflow file's top level. */
export type MainResult =
  | { ok: true }
  | { ok: false; syntax: boolean; reason: string; location?: SourceLocation | undefined };

interface RawFailure {
  ok?: boolean;
  syntax?: boolean;
  error?: string;
  where?: string | null;
}

/**
 * A Lua state with the DSL, the runtime and the modules, loaded once and then
 * used for job after job of the same file: each call puts back the globals
 * and the top-level locals it changed (see `S.call` in the DSL).
 */
export class LuaSession {
  private readonly sources = new Map<string, string>();
  private releasers: Array<() => Promise<void> | void> = [];
  private disposers: Array<() => Promise<void> | void> = [];

  private constructor(
    private readonly engine: LuaEngine,
    readonly spec: SessionSpec,
    private job: JobContext,
  ) {
    this.sources.set(this.displayName(spec.file), spec.source);
  }

  /** Creates the engine and installs everything for a first job. */
  static async open(spec: SessionSpec, job: JobContext): Promise<LuaSession> {
    factory ??= new LuaFactory();
    const engine = await factory.createEngine({ injectObjects: true, enableProxy: false });
    const session = new LuaSession(engine, spec, job);
    // Modules are created once; what they do goes to whichever job is running.
    const host: LuaModuleHost = {
      log: (stream, text) => session.job.events.log(stream, text),
      resolvePath: (p) => resolve(session.job.workdir, p),
      trackChild: (pid) => session.job.events.child(pid, true),
      untrackChild: (pid) => session.job.events.child(pid, false),
      inTopLevel: () => session.inMain,
    };
    const modules: Array<[string, LuaModuleDefinition]> = [
      ["exec", createExecModule(host)],
      ["fs", createFsModule(host)],
      ["__data", createDataModule()],
      ["template", { functions: { render: renderTemplate } }],
      ["http", createHttpModule()],
      ["time", createTimeModule()],
      ["env", createEnvModule()],
    ];
    for (const m of spec.modules) {
      const mod = (await import(m.url)) as {
        createLuaModule?: (
          options: unknown,
          host: LuaModuleHost,
        ) => LuaModuleDefinition | Promise<LuaModuleDefinition>;
      };
      if (typeof mod.createLuaModule !== "function") {
        throw new Error(
          `cannot load Lua module '${m.name}': ${m.url} has no createLuaModule export`,
        );
      }
      modules.push([m.name, await mod.createLuaModule(m.options, host)]);
    }
    for (const [, def] of modules) {
      if (def.close) session.releasers.push(def.close);
      if (def.dispose) session.disposers.push(def.dispose);
    }
    engine.global.set("__sloth", {
      base_dir: spec.baseDir,
      empty_array_key: EMPTY_ARRAY_KEY,
      host: {
        log: (stream: "stdout" | "stderr" | "log", text: string) =>
          session.job.events.log(stream, String(text)),
        display_name: (p: string) => session.displayName(p),
      },
      modules: modules.map(([name, def]) => ({
        name,
        fns: def.functions,
        async: def.async ?? [],
        lua: def.lua,
        requireable: def.requireable ?? true,
      })),
    });
    engine.global.set("values", toLua(spec.values));
    engine.global.set("params", toLua(spec.params));
    await engine.doString(LUA_DSL);
    await engine.doString(LUA_RUNTIME);
    return session;
  }

  /** Points the session at the next job. */
  useJob(job: JobContext): void {
    this.job = job;
  }

  /** The chunk name of a file: relative to the workflow's directory when inside it. */
  displayName(path: string): string {
    const rel = relative(this.spec.baseDir, path);
    return rel.startsWith("..") || isAbsolute(rel) ? path : rel;
  }

  /** Runs the workflow file's top level, then notes the globals that calls put back. */
  /** True while the file's top level runs (not a task's function). */
  inMain = false;

  async runMain(): Promise<MainResult> {
    this.inMain = true;
    let json: unknown;
    try {
      [json] = await this.invoke("local src, name = ...; return __sloth.run_main(src, name)", [
        this.spec.source,
        this.displayName(this.spec.file),
      ]);
    } finally {
      this.inMain = false;
    }
    const r = JSON.parse(String(json)) as RawFailure;
    if (r.ok) return { ok: true };
    const { reason, location } = this.locate(r.error ?? "unknown error", r.where ?? undefined);
    return { ok: false, syntax: r.syntax === true, reason, location };
  }

  /** Everything declared, as the JSON the DSL encoder produced. */
  async extract(): Promise<string> {
    const [json] = await this.invoke("return __sloth.extract()", []);
    return String(json);
  }

  /** Finds the functions again (as {@link extract} does) without encoding the declarations. */
  async index(): Promise<void> {
    await this.invoke("return __sloth.index()", []);
  }

  /** Calls the function found at `fnKey` by {@link extract} or {@link index} with `args`. */
  async call(fnKey: string, args: Value[]): Promise<CallResult> {
    const [json] = await this.invoke("local id, args, n = ...; return __sloth.call(id, args, n)", [
      fnKey,
      args.map(toLua),
      args.length,
    ]);
    const r = JSON.parse(String(json)) as {
      n?: number;
      r?: Value[];
      error?: string;
      where?: string | null;
    };
    if (r.error !== undefined) {
      const { reason, location } = this.locate(r.error, r.where ?? undefined);
      return { ok: false, reason, location };
    }
    return { ok: true, values: r.r ?? [], count: r.n ?? 0 };
  }

  /** Lets modules release what the job held (locks); the state stays loaded. */
  async endJob(): Promise<void> {
    await settle(this.releasers);
  }

  /** Releases the job's holdings, lets modules shut down, then frees the Lua state. */
  async close(): Promise<void> {
    await settle(this.releasers);
    await settle(this.disposers);
    this.engine.global.close();
  }

  // Runs code in a coroutine, so that `:await()` inside it can yield.
  private async invoke(code: string, args: unknown[]): Promise<unknown[]> {
    const thread = this.engine.global.newThread();
    const index = this.engine.global.getTop();
    try {
      thread.loadString(code, "=sloth");
      for (const a of args) thread.pushValue(a);
      return [...(await thread.run(args.length))];
    } finally {
      this.engine.global.remove(index);
    }
  }

  // Splits "file:line: reason" (and a traceback) into a reason and a location.
  private locate(
    message: string,
    where: string | undefined,
  ): { reason: string; location?: SourceLocation } {
    const text = message.split("\nstack traceback:")[0] ?? message;
    const m = /^([^\n:]+):(\d+): ([\s\S]*)$/.exec(text);
    const w = where ? /^(.+):(\d+)$/.exec(where) : null;
    const file = m?.[1] ?? w?.[1];
    const line = Number(m?.[2] ?? w?.[2]);
    const reason = m ? (m[3] ?? text) : text;
    if (!file || !Number.isFinite(line) || file === "sloth" || file.startsWith("["))
      return { reason };
    return { reason, location: { file, line, sourceLine: this.lineOf(file, line) } };
  }

  private lineOf(display: string, line: number): string | undefined {
    let src = this.sources.get(display);
    if (src === undefined) {
      try {
        src = readFileSync(
          isAbsolute(display) ? display : join(this.spec.baseDir, display),
          "utf8",
        );
      } catch {
        return undefined;
      }
      this.sources.set(display, src);
    }
    return src.split("\n")[line - 1]?.trim();
  }
}

// Runs every hook, each once, whatever the others do: the job is over either way.
async function settle(hooks: Array<() => Promise<void> | void>): Promise<void> {
  for (const hook of hooks) {
    try {
      await hook();
    } catch {
      // Best effort.
    }
  }
}
