import type {
  TaskCommand,
  TaskFunction,
  TaskModel,
  WorkflowConfig,
  WorkflowModel,
} from "./model.js";

/** A task as written in TypeScript: only `name` is required. */
export type TaskInput = Partial<Omit<TaskModel, "name" | "command" | "hooks">> & {
  name: string;
  /** A shell string (`bash -c`), a function, or a full {@link TaskCommand}. */
  command?: string | TaskFunction | TaskCommand | undefined;
  hooks?: TaskModel["hooks"] | undefined;
};

/** A workflow as written in TypeScript: `name` and `tasks` are required. */
export type WorkflowInput = Partial<Omit<WorkflowModel, "name" | "tasks" | "config">> & {
  name: string;
  tasks: TaskInput[];
  config?: Partial<WorkflowConfig> | undefined;
};

/** Fills a task's defaults: no dependencies, no retries, exponential backoff. */
export function defineTask(input: TaskInput): TaskModel {
  const { command, ...rest } = input;
  return {
    dependsOn: [],
    retries: 0,
    retryBackoff: "exponential",
    params: {},
    tags: [],
    hooks: {},
    artifacts: [],
    consumes: [],
    ...rest,
    command: toCommand(command),
  };
}

/**
 * Builds a {@link WorkflowModel} with defaults: base directory = cwd,
 * max_parallel_tasks = 4, fail_fast = false, no hooks.
 */
export function defineWorkflow(input: WorkflowInput): WorkflowModel {
  const { tasks, config, ...rest } = input;
  return {
    baseDir: process.cwd(),
    hooks: {},
    ...rest,
    config: { maxParallelTasks: 4, failFast: false, extra: {}, ...config },
    tasks: tasks.map(defineTask),
  };
}

function toCommand(command: TaskInput["command"]): TaskCommand | undefined {
  if (command === undefined) return undefined;
  if (typeof command === "string") return { kind: "shell", script: command };
  if (typeof command === "function") return { kind: "function", fn: command };
  return command;
}
