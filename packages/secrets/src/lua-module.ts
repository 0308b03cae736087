// The Lua `secrets` module of `sloth-runner run`: the values of the run's
// environment, read once by the CLI (which masks them in everything the run
// shows and records) and handed to each Lua worker.

/** Options the CLI hands to the module. */
export interface SecretsModuleOptions {
  /** The environment the values come from. */
  env: string;
  /** Its current values, by name. */
  values?: Record<string, string> | undefined;
  /** Why there are none (no key, a wrong key): said by every call. */
  unavailable?: string | undefined;
}

/**
 * `secrets.get(name)` → the value (an error naming the environment and the
 * fix when there is none), `secrets.has(name)`, `secrets.env`.
 */
export function createLuaModule(
  options: SecretsModuleOptions,
  host?: { inTopLevel?(): boolean },
): {
  functions: Record<string, (...args: never[]) => unknown>;
  lua: string;
} {
  const values = new Map(Object.entries(options.values ?? {}));
  const env = options.env;
  return {
    functions: {
      get: (name: unknown) => {
        if (typeof name !== "string" || name === "")
          throw new Error("secrets.get(name): name must be a non-empty string");
        // The top level also runs where no secrets are (agents, `workflow show`).
        if (host?.inTopLevel?.() === true)
          throw new Error(
            `secrets.get(${JSON.stringify(name)}): secrets are read inside a task's function, not at a file's top level (which also runs where there are no secrets: on agents, in \`workflow show\`)`,
          );
        if (options.unavailable !== undefined)
          throw new Error(`secrets.get(${JSON.stringify(name)}): ${options.unavailable}`);
        const v = values.get(name);
        if (v === undefined)
          throw new Error(
            `secrets.get(${JSON.stringify(name)}): no secret '${name}' in environment '${env}'; add it with \`sloth-runner secrets set ${name} --env ${env}\`, or run with --secrets-env naming the environment that has it`,
          );
        return v;
      },
      has: (name: unknown) => typeof name === "string" && values.has(name),
    },
    lua: `local m = ...; m.env = ${JSON.stringify(env)}`,
  };
}
