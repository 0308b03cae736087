import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Manifest } from "@sloth/workspace";
import type { WorkspaceShipper } from "./workspace.js";

/** Options of {@link workspaceShipper}. */
export interface ShipperOptions {
  /** Extra exclusions, gitignore syntax (`.git` is always left out). */
  exclude?: string[] | undefined;
  /** gzip the transfer: worth it on slow links only (default false). */
  gzip?: boolean | undefined;
  /** Refuse workspaces larger than this many bytes (default: no limit). */
  maxBytes?: number | undefined;
}

/**
 * Ships a task's working directory with @sloth/workspace: the agent is told
 * the manifest, only the contents its cache lacks are sent, and the task's
 * changes come back through a temporary file and are applied safely.
 */
export function workspaceShipper(options: ShipperOptions = {}): WorkspaceShipper {
  const manifests = new Map<string, Manifest>();
  // The last manifest of each folder: unchanged files (same size and mtime)
  // are not read and hashed again on the next send.
  const last = new Map<string, Manifest>();
  return {
    async send(channel, dir, signal, exclude) {
      const { scanWorkspace, packBlobs, rechunk } = await import("@sloth/workspace");
      const manifest = await scanWorkspace(dir, {
        exclude: [...(options.exclude ?? []), ...(exclude ?? [])],
        maxBytes: options.maxBytes,
        reuse: last.get(dir),
      });
      last.set(dir, manifest);
      const manifestJson = JSON.stringify(manifest);
      manifests.set(manifestJson, manifest);
      const missing = await channel.prepare(manifestJson, signal);
      if (missing.length > 0) {
        await channel.upload(
          rechunk(packBlobs(dir, manifest, missing, { gzip: options.gzip })),
          options.gzip ?? false,
          signal,
        );
      }
      return { manifestJson };
    },
    receiver(dir, manifestJson, exclude) {
      const tmp = path.join(
        os.tmpdir(),
        `sloth-changes-${process.pid}-${Math.random().toString(36).slice(2)}.tar`,
      );
      let fd: number | undefined;
      return {
        async chunk(data) {
          fd ??= fs.openSync(tmp, "w", 0o600);
          fs.writeSync(fd, data);
        },
        async end(deleted) {
          const { applyChanges } = await import("@sloth/workspace");
          try {
            if (fd !== undefined) fs.closeSync(fd);
            fd = undefined;
            const stream = fs.existsSync(tmp)
              ? fs.createReadStream(tmp)
              : (async function* () {})();
            await applyChanges(dir, stream, deleted, {
              gzip: false,
              base: manifests.get(manifestJson),
              exclude: [...(options.exclude ?? []), ...(exclude ?? [])],
            });
          } finally {
            if (fd !== undefined) fs.closeSync(fd);
            fs.rmSync(tmp, { force: true });
          }
        },
      };
    },
  };
}
