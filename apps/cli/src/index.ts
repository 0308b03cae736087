/**
 * @sloth/cli: the `sloth-runner` command line. Programs should use the
 * libraries (@sloth/client, @sloth/master, @sloth/agent, ...) instead; this
 * entry exists so the CLI can be started from code.
 */
export { main } from "./main.js";
export { VERSION } from "./version.js";
