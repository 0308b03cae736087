import type { CommandModule } from "yargs";
import { VERSION } from "../version.js";
import { agentCommand } from "./agent.js";
import { caCommand } from "./ca.js";
import { masterCommand } from "./master.js";
import { runCommand } from "./run.js";
import { runsCommand } from "./runs.js";
import { schedulerCommand } from "./scheduler.js";
import { secretsCommand } from "./secrets.js";
import { stackCommand } from "./stack.js";
import { stateCommand } from "./state.js";
import { workflowCommand } from "./workflow.js";

/** `sloth-runner version`: the version, as `--version` prints it. */
const versionCommand: CommandModule = {
  command: "version",
  describe: "Print the version",
  handler: () => {
    process.stdout.write(`${VERSION}\n`);
  },
};

/**
 * Every top-level command of `sloth-runner`. Each lives in its own file as a
 * yargs CommandModule; heavy libraries are imported inside handlers so the
 * CLI starts fast.
 */
// biome-ignore lint/suspicious/noExplicitAny: yargs modules carry their own argument types
export const commands: CommandModule<any, any>[] = [
  masterCommand,
  agentCommand,
  caCommand,
  runCommand,
  runsCommand,
  workflowCommand,
  stateCommand,
  stackCommand,
  schedulerCommand,
  secretsCommand,
  versionCommand,
];
