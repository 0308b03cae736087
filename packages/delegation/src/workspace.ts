import type { TaskChannel } from "./channel.js";

/** Ships a task's working directory to an agent and applies what comes back. */
export interface WorkspaceShipper {
  /** Sends what the agent lacks of `dir`; returns the manifest the task runs on. */
  send(
    channel: TaskChannel,
    dir: string,
    signal: AbortSignal,
    exclude?: string[],
  ): Promise<{ manifestJson: string }>;
  /** Receives the task's changes (chunks, then the deleted paths) into `dir`, which was sent as `manifestJson`. */
  receiver(
    dir: string,
    manifestJson: string,
    exclude?: string[],
  ): {
    chunk(data: Uint8Array): Promise<void>;
    end(deleted: string[]): Promise<void>;
  };
}
