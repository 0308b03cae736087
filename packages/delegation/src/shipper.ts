import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { slothCodeOf } from "@sloth/client";
import type { Folders, Manifest } from "@sloth/workspace";
import type { TaskChannel } from "./channel.js";
import type { WorkspaceShipper } from "./workspace.js";

/** Options of {@link workspaceShipper}. */
export interface ShipperOptions {
  /** Extra exclusions, gitignore syntax (`.git` is always left out). */
  exclude?: string[] | undefined;
  /** gzip the transfer: worth it on slow links only (default false). */
  gzip?: boolean | undefined;
  /** Refuse workspaces larger than this many bytes (default: no limit). */
  maxBytes?: number | undefined;
  /**
   * A folder where the last scan of each workspace is kept between runs, so
   * that files untouched since (by size, mtime and ctime) are not read and
   * hashed again. Default: none (each process hashes a workspace once).
   */
  scanCache?: string | undefined;
  /**
   * Refuse a task's changes coming back larger than this (default
   * `maxBytes`, else 4 GiB): what an agent sends is not trusted.
   */
  maxChangesBytes?: number | undefined;
}

const DEFAULT_MAX_CHANGES_BYTES = 4 * 1024 ** 3;

/** A workspace's last scan, and when that scan started. */
interface Scan {
  manifest: Manifest;
  startedAt: number;
  /** SHA-256 of the manifest's JSON as sent: names it to the agent next time. */
  sha?: string | undefined;
  /** That JSON, while this process holds it. */
  json?: string | undefined;
  /** The folders it was read from: listings of those untouched since are trusted. */
  folders?: Folders | undefined;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

// Scans kept in `scanCache`, the most recently used first.
const MAX_KEPT_SCANS = 64;

function scanFile(folder: string, dir: string): string {
  return path.join(folder, `${createHash("sha256").update(dir).digest("hex").slice(0, 32)}.json`);
}

/** The real path of `dir`, or `dir` itself when it cannot be resolved (the scan says why). */
function realpathOr(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return dir;
  }
}

/** True for a {@link Folders} record read back from JSON. */
function isFolders(v: unknown): v is Folders {
  if (typeof v !== "object" || v === null) return false;
  const { ids, exclusions, skippedOutside } = v as {
    ids?: unknown;
    exclusions?: unknown;
    skippedOutside?: unknown;
  };
  if (typeof exclusions !== "string") return false;
  if (skippedOutside !== undefined && typeof skippedOutside !== "boolean") return false;
  if (typeof ids !== "object" || ids === null || Array.isArray(ids)) return false;
  return Object.values(ids).every((x) => typeof x === "string");
}

/** The scan of `dir` kept in `folder`, if any and sound. */
function loadScan(folder: string, dir: string): Scan | undefined {
  try {
    const file = scanFile(folder, dir);
    if (fs.statSync(file).size > 256 * 1024 * 1024) return undefined;
    const text = fs.readFileSync(file, "utf8");
    const saved = JSON.parse(text) as Partial<Scan & { v: number; dir: string }>;
    if (
      // Version 2 records the folders: without them no hash is reused safely.
      saved.v !== 2 ||
      !isFolders(saved.folders) ||
      saved.dir !== dir ||
      typeof saved.startedAt !== "number" ||
      !Array.isArray(saved.manifest?.entries)
    )
      return undefined;
    const sha = typeof saved.sha === "string" ? saved.sha : undefined;
    // The manifest's JSON as it was sent is the tail of the file (see saveScan).
    const marker = `"sha":"${sha}","manifest":`;
    const at = sha ? text.indexOf(marker) : -1;
    const json = at === -1 ? undefined : text.slice(at + marker.length, text.lastIndexOf("}"));
    return {
      manifest: saved.manifest,
      startedAt: saved.startedAt,
      folders: saved.folders,
      sha,
      json: json !== undefined && sha256(json) === sha ? json : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Keeps the scan of `dir` (best effort: a cache that cannot be written only costs time). */
function saveScan(
  folder: string,
  dir: string,
  startedAt: number,
  manifestJson: string,
  sha: string,
  folders: Folders | undefined,
): void {
  try {
    fs.mkdirSync(folder, { recursive: true, mode: 0o700 });
    const file = scanFile(folder, dir);
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    fs.writeFileSync(
      tmp,
      `{"v":2,"dir":${JSON.stringify(dir)},"startedAt":${startedAt},"folders":${JSON.stringify(folders ?? null)},"sha":"${sha}","manifest":${manifestJson}}`,
      { mode: 0o600 },
    );
    fs.renameSync(tmp, file);
    const kept = fs
      .readdirSync(folder)
      .filter((n) => n.endsWith(".json"))
      .map((n) => {
        const p = path.join(folder, n);
        return { p, t: fs.statSync(p, { throwIfNoEntry: false })?.mtimeMs ?? 0 };
      });
    if (kept.length > MAX_KEPT_SCANS) {
      kept.sort((a, b) => b.t - a.t);
      for (const k of kept.slice(MAX_KEPT_SCANS)) fs.rmSync(k.p, { force: true });
    }
  } catch {
    // Read-only or full data directory: the next run hashes again.
  }
}

/** Drops the kept scan of `dir`. */
function forgetScan(folder: string, dir: string): void {
  try {
    fs.rmSync(scanFile(folder, dir), { force: true });
  } catch {
    // Cannot be removed: the scan that follows writes it again.
  }
}

/** Marks the kept scan of `dir` as recently used. */
function touchScan(folder: string, dir: string): void {
  try {
    const now = new Date();
    fs.utimesSync(scanFile(folder, dir), now, now);
  } catch {
    // Gone meanwhile: the next changed scan writes it again.
  }
}

/**
 * Ships a task's working directory with @sloth/workspace: the agent is told
 * the manifest, only the contents its cache lacks are sent, and the task's
 * changes come back through a temporary file and are applied safely.
 */
export function workspaceShipper(options: ShipperOptions = {}): WorkspaceShipper {
  const manifests = new Map<string, Manifest>();
  // The last scan of each folder: files untouched since (same size, mtime,
  // and a ctime older than that scan) are not read and hashed again.
  const last = new Map<string, Scan>();
  /** Scans `root` (trusting `before` for what it vouches for) and sends what the agent lacks. */
  async function ship(
    channel: TaskChannel,
    root: string,
    signal: AbortSignal,
    exclude: string[] | undefined,
    before: Scan | undefined,
  ): Promise<{ manifestJson: string }> {
    const { foldersOf, scanWorkspace, packBlobs, rechunk, releaseContent, sameManifest } =
      await import("@sloth/workspace");
    // The agent checks the workspace it built from the last manifest while we scan.
    if (before?.sha && channel.warm) channel.warm(before.sha, signal).catch(() => {});
    const startedAt = Date.now();
    const manifest = await scanWorkspace(root, {
      exclude: [...(options.exclude ?? []), ...(exclude ?? [])],
      maxBytes: options.maxBytes,
      ...(before
        ? {
            reuse: before.manifest,
            reuseUntouchedBefore: before.startedAt,
            // Folders untouched since are not listed again.
            ...(before.folders ? { reuseListings: before.folders } : {}),
          }
        : {}),
      // The small files read to hash them are sent from memory, not read again.
      keepContent: true,
    });
    // Unchanged since the last send: the agent is told which manifest, not sent it again.
    const same =
      before?.sha !== undefined &&
      before.json !== undefined &&
      sameManifest(manifest, before.manifest);
    const manifestJson = same ? (before.json as string) : JSON.stringify(manifest);
    const sha = same ? (before.sha as string) : sha256(manifestJson);
    const folders = foldersOf(manifest);
    last.set(root, { manifest, startedAt, sha, json: manifestJson, folders });
    // Unchanged: the kept scan still describes it (with an older, safe start time).
    if (options.scanCache) {
      if (same && JSON.stringify(folders) === JSON.stringify(before?.folders))
        touchScan(options.scanCache, root);
      else saveScan(options.scanCache, root, startedAt, manifestJson, sha, folders);
    }
    manifests.set(manifestJson, manifest);
    try {
      const known = same ? await channel.prepareKnown?.(sha, signal) : undefined;
      const { missing, bundles } = known ?? (await channel.prepare(manifestJson, signal));
      if (missing.length > 0) {
        await channel.upload(
          rechunk(packBlobs(root, manifest, missing, { gzip: options.gzip, bundle: bundles })),
          options.gzip ?? false,
          signal,
        );
      }
    } finally {
      // Whatever was kept and not sent (the agent had it) is let go.
      releaseContent(manifest);
    }
    return { manifestJson };
  }

  return {
    async send(channel, dir, signal, exclude) {
      // Kept by the folder itself: a symlink pointed elsewhere is another workspace.
      const root = realpathOr(path.resolve(dir));
      const before =
        last.get(root) ?? (options.scanCache ? loadScan(options.scanCache, root) : undefined);
      try {
        return await ship(channel, root, signal, exclude, before);
      } catch (e) {
        // The agent found a file's content is not the hash the scan gave it:
        // the file changed while it was sent, or an earlier scan vouched for
        // it wrongly (a change whose times fooled it, as when the clock was
        // set back). Every file is read again, once.
        if (slothCodeOf(e) !== "SLOTH_BLOB_MISMATCH" || signal.aborted) throw e;
        last.delete(root);
        if (options.scanCache) forgetScan(options.scanCache, root);
        return ship(channel, root, signal, exclude, undefined);
      }
    },
    receiver(dir, manifestJson, exclude) {
      const limit = options.maxChangesBytes ?? options.maxBytes ?? DEFAULT_MAX_CHANGES_BYTES;
      let fd: number | undefined;
      let received = 0;
      const open = () => {
        // Unlinked at once: the spool goes away with this process, even if it is killed.
        const tmp = path.join(
          os.tmpdir(),
          `sloth-changes-${process.pid}-${Math.random().toString(36).slice(2)}.tar`,
        );
        const f = fs.openSync(tmp, "wx+", 0o600);
        fs.rmSync(tmp, { force: true });
        return f;
      };
      const close = () => {
        if (fd !== undefined) fs.closeSync(fd);
        fd = undefined;
      };
      return {
        async chunk(data) {
          received += data.length;
          if (received > limit) {
            close();
            const { WorkspaceError } = await import("@sloth/workspace");
            throw new WorkspaceError(
              "SLOTH_WORKSPACE_TOO_LARGE",
              `cannot take the task's changes back: they exceed the limit of ${limit} bytes`,
              {
                details: { limit },
                hint: "raise the limit (--workspace-limit), or have the task write large results outside its workspace (or exclude them)",
              },
            );
          }
          fd ??= open();
          fs.writeSync(fd, data, 0, data.length, received - data.length);
        },
        async end(deleted) {
          const { applyChanges } = await import("@sloth/workspace");
          try {
            const stream =
              fd !== undefined
                ? fs.createReadStream("", {
                    fd,
                    start: 0,
                    autoClose: false,
                    highWaterMark: 1024 * 1024,
                  })
                : (async function* () {})();
            await applyChanges(dir, stream, deleted, {
              gzip: false,
              base: manifests.get(manifestJson),
              exclude: [...(options.exclude ?? []), ...(exclude ?? [])],
              limitBytes: limit,
            });
          } finally {
            close();
          }
        },
      };
    },
  };
}
