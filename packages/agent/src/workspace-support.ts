import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Folders, Manifest, WorkspaceBuild } from "@sloth/workspace";
import type { AgentLogger } from "./logger.js";
import type { WorkspaceSupport } from "./service.js";
import type { TaskRunnerContext, TaskWorkspace } from "./task-runner.js";

/** Options of {@link createWorkspaceSupport}. */
export interface WorkspaceSupportOptions {
  /** Folder of the content-addressed cache. */
  cacheDir: string;
  /** Folder holding the tasks' workspaces (kept between tasks for recycling). */
  workDir: string;
  /** Bound of the cache, in bytes. */
  maxCacheBytes?: number | undefined;
  /** Refuse an upload larger than this (default 4 GiB). */
  maxUploadBytes?: number | undefined;
  /** Finished workspaces kept for recycling (default 2); 0 deletes each after its task. */
  keepWorkspaces?: number | undefined;
  /** A workspace prepared for a task that never comes is dropped after this long (default 10 min). */
  preparedTtlMs?: number | undefined;
  logger?: AgentLogger | undefined;
}

interface Parked {
  dir: string;
  /** SHA-256 of the manifest JSON it was last built to. */
  key: string;
  /** The manifest it was last built to: `path\0hash` of each file, to pick the closest. */
  files: Set<string>;
}

/** A workspace rebuilt ahead from the manifest a runner named as sent last. */
interface Speculative {
  key: string;
  build: WorkspaceBuild;
  manifest: Manifest;
  files: Set<string>;
  timer: NodeJS.Timeout;
}

/** How long a workspace rebuilt ahead waits for its runner before it is parked again. */
const SPECULATION_MS = 30_000;

interface Prepared {
  build: WorkspaceBuild;
  manifest: Manifest;
  files: Set<string>;
  timer: NodeJS.Timeout;
}

/**
 * The agent's side of workspace shipping, on @sloth/workspace: a content
 * cache that tells what it lacks and ingests blobs, and the workspaces of
 * the delegated tasks. A workspace starts building when the runner sends its
 * manifest (PrepareWorkspace), so its files are written while the upload
 * arrives; the task then finishes it. A finished task's workspace is kept and
 * recycled by the next task with a similar manifest: moved into place and
 * repaired to exactly the new manifest (changed files rewritten, anything
 * else removed), so an unchanged re-sync costs a walk instead of a copy.
 */
export async function createWorkspaceSupport(options: WorkspaceSupportOptions): Promise<{
  support: WorkspaceSupport;
  task: Pick<TaskRunnerContext, "workspace" | "changes">;
  /** Drops the prepared and kept workspaces (the agent is stopping). */
  close(): Promise<void>;
}> {
  const ws = await import("@sloth/workspace");
  const cache = new ws.BlobCache(path.resolve(options.cacheDir), {
    maxBytes: options.maxCacheBytes,
  });
  const workDir = path.resolve(options.workDir);
  const keep = options.keepWorkspaces ?? 2;
  const ttl = options.preparedTtlMs ?? 10 * 60_000;
  const parked: Parked[] = [];
  const prepared = new Map<string, Prepared[]>();
  /**
   * Manifests received lately, by the SHA-256 of their JSON, most recent
   * last: a runner whose workspace has not changed names its manifest
   * instead of sending it again.
   */
  const known = new Map<string, { manifest: Manifest; files: Set<string>; bytes: number }>();
  // At most 4, and at most 32 Mi characters of JSON between them (a parsed manifest
  // holds several times its JSON): a larger one is sent whole each time.
  const KNOWN_MANIFESTS = 4;
  const KNOWN_BYTES = 32 * 1024 * 1024;
  let knownBytes = 0;
  const forget = (k: string) => {
    const m = known.get(k);
    if (m === undefined) return;
    known.delete(k);
    knownBytes -= m.bytes;
  };
  const learn = (k: string, manifest: Manifest, files: Set<string>, bytes: number) => {
    forget(k);
    if (bytes > KNOWN_BYTES) return;
    known.set(k, { manifest, files, bytes });
    knownBytes += bytes;
    while (known.size > KNOWN_MANIFESTS || knownBytes > KNOWN_BYTES)
      forget(known.keys().next().value as string);
  };
  /** Workspaces lent to tasks: what they were built to, and when they were handed over. */
  const lent = new Map<string, { manifest: Manifest; at: number; folders: Folders }>();
  let seq = 0;

  fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
  // Workspaces of an earlier run of the agent: nothing vouches for them.
  for (const name of fs.readdirSync(workDir))
    if (name.startsWith("ws-")) remove(path.join(workDir, name));

  function remove(dir: string): void {
    // In the background: deleting a large tree is slow and must not delay a reply.
    fs.promises.rm(dir, { recursive: true, force: true }).catch((e: unknown) => {
      options.logger?.warn({ dir, err: String(e) }, "cannot remove workspace folder");
    });
  }

  const parse = (json: string): Manifest => {
    const m = JSON.parse(json) as Manifest;
    ws.checkManifest(m);
    return m;
  };
  const key = (json: string) => createHash("sha256").update(json).digest("hex");
  const fileSet = (m: Manifest) => {
    const s = new Set<string>();
    // Not checked yet: the build refuses a malformed manifest.
    if (!Array.isArray(m?.entries)) return s;
    for (const e of m.entries) if (e?.type === "file") s.add(`${e.path}\0${e.hash}`);
    return s;
  };

  const newDir = () => path.join(workDir, `ws-${process.pid}-${Date.now().toString(36)}-${++seq}`);

  /**
   * A folder for a new workspace, and the kept one sharing most files with
   * it (taken), when at least half of that one's files would stay: emptying
   * a folder of another source costs more than building a fresh one.
   */
  function place(files: Set<string>): { dir: string; from?: Parked } {
    const dir = newDir();
    let best = -1;
    let score = 0;
    parked.forEach((p, i) => {
      let n = 0;
      for (const f of p.files) if (files.has(f)) n++;
      if (n > score && n * 2 >= p.files.size) {
        best = i;
        score = n;
      }
    });
    if (best === -1) return { dir };
    const [from] = parked.splice(best, 1);
    return { dir, from };
  }

  function start(manifest: Manifest, files: Set<string>): WorkspaceBuild {
    const { dir, from } = place(files);
    try {
      return cache.build(manifest, dir, from ? { recycle: from.dir } : {});
    } catch (e) {
      // Refused before touching anything: the kept folder stays available.
      if (from) parked.push(from);
      throw e;
    }
  }

  function park(dir: string, files: Set<string>, key: string): void {
    parked.push({ dir, files, key });
    while (parked.length > keep) remove((parked.shift() as Parked).dir);
  }

  /**
   * Workspaces being rebuilt ahead, by the key of their manifest: when a
   * runner names the manifest it sent last (warm), the kept workspace built
   * from it is brought back to exactly that manifest while the runner scans,
   * so an unchanged workspace is ready when the runner names it again.
   */
  const speculating = new Map<string, Speculative>();

  function speculate(previous: string): boolean {
    const m = known.get(previous);
    const i = parked.findIndex((x) => x.key === previous);
    if (m === undefined || i === -1 || speculating.has(previous)) return false;
    // Only from the cache alone: a blob pruned since would leave it waiting.
    if (cache.missing(m.manifest).length > 0) return false;
    const [from] = parked.splice(i, 1) as [Parked];
    let build: WorkspaceBuild;
    try {
      build = cache.build(m.manifest, newDir(), { recycle: from.dir });
    } catch {
      parked.push(from);
      return false;
    }
    const spec: Speculative = {
      key: previous,
      build,
      manifest: m.manifest,
      files: m.files,
      timer: setTimeout(() => void settle(spec), SPECULATION_MS),
    };
    spec.timer.unref();
    speculating.set(previous, spec);
    return true;
  }

  /** Takes the workspace rebuilt ahead for `key`, if any, off the list. */
  function claim(key: string): Speculative | undefined {
    const spec = speculating.get(key);
    if (spec === undefined) return undefined;
    speculating.delete(key);
    clearTimeout(spec.timer);
    return spec;
  }

  /** Settles under way, so that a build looking for a kept folder waits for them. */
  const settling = new Set<Promise<void>>();

  /** Parks a workspace rebuilt ahead that its runner did not ask for (its workspace changed). */
  async function settle(spec: Speculative): Promise<void> {
    if (claim(spec.key) !== spec) return;
    const done = (async () => {
      try {
        await spec.build.finish();
        // Recycled like any kept folder, checked again: the folder it was
        // rebuilt from was a task's, which may still write into it through a
        // hard link or a process it left running.
        park(spec.build.dir, spec.files, spec.key);
      } catch (e) {
        options.logger?.warn(
          { dir: spec.build.dir, err: String(e) },
          "cannot finish a workspace rebuilt ahead; removing it",
        );
        remove(spec.build.dir);
      }
    })();
    settling.add(done);
    try {
      await done;
    } finally {
      settling.delete(done);
    }
  }

  /** Parks every workspace rebuilt ahead (waiting for settles under way), so a new build can recycle them. */
  async function settleAll(): Promise<void> {
    await Promise.all([...[...speculating.values()].map(settle), ...settling]);
  }

  /** Starts building a workspace for the manifest named `k`; answers the blobs the cache lacks. */
  function prepare(
    k: string,
    manifest: Manifest,
    files: Set<string>,
    ahead?: WorkspaceBuild,
  ): string[] {
    // Start building now: the files are written while the upload arrives.
    const build = ahead ?? start(manifest, files);
    const missing = cache.missing(manifest);
    const entry: Prepared = {
      build,
      manifest,
      files,
      timer: setTimeout(() => {
        const list = prepared.get(k);
        const i = list?.indexOf(entry) ?? -1;
        if (list === undefined || i === -1) return;
        list.splice(i, 1);
        if (list.length === 0) prepared.delete(k);
        void entry.build.abort().finally(() => remove(entry.build.dir));
      }, ttl),
    };
    entry.timer.unref();
    const list = prepared.get(k);
    if (list) list.push(entry);
    else prepared.set(k, [entry]);
    return missing;
  }

  return {
    support: {
      async missing(manifestJson) {
        const k = key(manifestJson);
        // Sent whole, yet the very manifest rebuilt ahead: take that.
        const ahead = claim(k);
        if (ahead) {
          learn(k, ahead.manifest, ahead.files, manifestJson.length);
          return prepare(k, ahead.manifest, ahead.files, ahead.build);
        }
        // Checked by the build, before the cache is asked.
        const manifest = JSON.parse(manifestJson) as Manifest;
        // A changed workspace: what was rebuilt ahead is recycled like any kept one.
        await settleAll();
        const files = fileSet(manifest);
        const missing = prepare(k, manifest, files);
        learn(k, manifest, files, manifestJson.length);
        return missing;
      },
      async missingKnown(sha) {
        const m = known.get(sha);
        if (m === undefined) return undefined;
        learn(sha, m.manifest, m.files, m.bytes);
        const ahead = claim(sha);
        if (ahead) return prepare(sha, ahead.manifest, ahead.files, ahead.build);
        await settleAll();
        return prepare(sha, m.manifest, m.files);
      },
      warm(previous) {
        // The runner scans meanwhile: the workspace it sent last is rebuilt
        // ahead when its manifest is known here, else checked (the build that
        // recycles it uses the check).
        if (speculate(previous)) return;
        const p = parked.find((x) => x.key === previous);
        if (p) cache.inspect(p.dir);
      },
      ingest(chunks, gzip) {
        return cache.ingest(chunks, { gzip, limitBytes: options.maxUploadBytes ?? 4 * 1024 ** 3 });
      },
    },
    task: {
      async workspace(manifestJson): Promise<TaskWorkspace> {
        const k = key(manifestJson);
        const list = prepared.get(k);
        const ready = list?.shift();
        if (list?.length === 0) prepared.delete(k);
        let build: WorkspaceBuild;
        let files: Set<string>;
        let manifest: Manifest;
        if (ready) {
          clearTimeout(ready.timer);
          ({ build, files, manifest } = ready);
        } else {
          manifest = JSON.parse(manifestJson) as Manifest;
          files = fileSet(manifest);
          await settleAll();
          build = start(manifest, files);
        }
        let done: { checkedAt?: number };
        try {
          done = await build.finish();
        } catch (e) {
          remove(build.dir);
          throw e;
        }
        // Checked by the build: the changes after the task are diffed against
        // it, trusting ctimes from before the end of the build (for a recycled
        // folder, from before its check: what changed in it since is read
        // again), and the listings of the folders the task leaves as they are now.
        const at = done.checkedAt ?? Date.now();
        lent.set(build.dir, { manifest, at, folders: ws.readFolders(build.dir, manifest) });
        return {
          dir: build.dir,
          release: () => {
            lent.delete(build.dir);
            park(build.dir, files, k);
          },
        };
      },
      async changes(dir, manifestJson) {
        const given = lent.get(dir);
        // A file the task touched has a later ctime, even if it kept its
        // size and mtime (cp -p, tar -x, touch -r): it is read again.
        const changes = await ws.diffWorkspace(
          dir,
          given?.manifest ?? parse(manifestJson),
          // The changed files read to hash them are packed from memory.
          {
            keepContent: true,
            ...(given ? { reuseUntouchedBefore: given.at, reuseListings: given.folders } : {}),
          },
        );
        return {
          chunks: ws.rechunk(ws.packChanges(dir, changes)),
          deleted: changes.deleted,
          skipped: changes.skipped,
        };
      },
    },
    async close() {
      for (const spec of [...speculating.values()]) {
        claim(spec.key);
        await spec.build.abort();
      }
      for (const list of prepared.values()) {
        for (const p of list) {
          clearTimeout(p.timer);
          await p.build.abort();
        }
      }
      prepared.clear();
      known.clear();
      knownBytes = 0;
    },
  };
}
