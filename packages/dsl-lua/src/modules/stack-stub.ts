import type { LuaModuleDefinition } from "../types.js";

const WHERE =
  "the stack module works in the tasks of `sloth-runner run STACK -f FILE`, run where the CLI runs: not in tasks delegated to agents, nor when a file is only inspected";

/**
 * The `stack` global where no stack module is loaded (agents, `workflow
 * show`, other embedders): `stack.name` is nil and every function says where
 * the module works, so a file that reads `stack.name` at its top level loads
 * everywhere.
 */
export function createLuaModule(): LuaModuleDefinition {
  const fail = (fn: string) => () => {
    throw new Error(`stack.${fn}: ${WHERE}`);
  };
  return {
    requireable: false,
    functions: Object.fromEntries(
      ["state", "resource", "remove_resource", "resources", "snapshot", "event"].map((f) => [
        f,
        fail(f),
      ]),
    ),
  };
}
