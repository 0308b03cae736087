import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The version of @sloth/cli. */
export const VERSION: string = (require("../package.json") as { version: string }).version;
