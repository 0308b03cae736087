import path from "node:path";
import type { Manifest } from "@sloth/workspace";
import type { WorkspaceSupport } from "./service.js";
import type { TaskRunnerContext } from "./task-runner.js";

/** Options of {@link createWorkspaceSupport}. */
export interface WorkspaceSupportOptions {
  /** Folder of the content-addressed cache. */
  cacheDir: string;
  /** Bound of the cache, in bytes. */
  maxCacheBytes?: number | undefined;
  /** Refuse an upload larger than this (default 4 GiB). */
  maxUploadBytes?: number | undefined;
}

/**
 * The agent's side of workspace shipping, on @sloth/workspace: a content
 * cache that tells what it lacks and ingests blobs, and the task runner's
 * materialise and changes hooks.
 */
export async function createWorkspaceSupport(options: WorkspaceSupportOptions): Promise<{
  support: WorkspaceSupport;
  task: Pick<TaskRunnerContext, "materialize" | "changes">;
}> {
  const ws = await import("@sloth/workspace");
  const cache = new ws.BlobCache(path.resolve(options.cacheDir), {
    maxBytes: options.maxCacheBytes,
  });
  const parse = (json: string): Manifest => {
    const m = JSON.parse(json) as Manifest;
    ws.checkManifest(m);
    return m;
  };
  return {
    support: {
      async missing(manifestJson) {
        return cache.missing(parse(manifestJson));
      },
      ingest(chunks, gzip) {
        return cache.ingest(chunks, { gzip, limitBytes: options.maxUploadBytes ?? 4 * 1024 ** 3 });
      },
    },
    task: {
      async materialize(manifestJson, targetDir) {
        await cache.materialize(parse(manifestJson), targetDir);
      },
      async changes(dir, manifestJson) {
        const changes = await ws.diffWorkspace(dir, parse(manifestJson));
        return { chunks: ws.rechunk(ws.packChanges(dir, changes)), deleted: changes.deleted };
      },
    },
  };
}
