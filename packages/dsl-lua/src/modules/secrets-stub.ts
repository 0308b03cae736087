import type { LuaModuleDefinition } from "../types.js";

const WHERE =
  "secrets are read by `sloth-runner run` for the tasks it runs itself: not in tasks delegated to agents, nor when a file is only inspected (call secrets.get inside a task's function)";

/**
 * The `secrets` global where the CLI gives no secrets (agents, `workflow
 * show`, other embedders): every call says where secrets are available.
 */
export function createLuaModule(): LuaModuleDefinition {
  return {
    functions: {
      get: () => {
        throw new Error(`secrets.get: ${WHERE}`);
      },
      has: () => false,
    },
  };
}
