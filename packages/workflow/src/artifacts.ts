import fs from "node:fs/promises";
import path from "node:path";

/** Where one task's artifacts are kept inside a run's artifact root. */
export function artifactDir(root: string, task: string): string {
  return path.join(root, task);
}

/**
 * Copies the files matching each pattern (relative to `workdir`; `*`, `?`
 * and `**` allowed; a directory is copied whole) into `dest`, keeping their
 * relative paths. Throws when a pattern matches nothing.
 */
export async function saveArtifacts(
  patterns: readonly string[],
  workdir: string,
  dest: string,
): Promise<string[]> {
  const saved: string[] = [];
  for (const pattern of patterns) {
    const matches = await expand(pattern, workdir);
    if (matches.length === 0) {
      throw new Error(`artifact '${pattern}' not found in ${workdir}`);
    }
    for (const rel of matches) {
      const target = path.join(dest, rel);
      await fs.mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
      await fs.cp(path.join(workdir, rel), target, { recursive: true });
      saved.push(rel);
    }
  }
  return saved;
}

/**
 * Copies consumed artifacts into `workdir`. An entry is `"task:path"` (from
 * that task's artifacts) or a bare path, looked up in the artifacts of
 * `producers` in order. Throws naming the first artifact that is missing.
 */
export async function consumeArtifacts(
  consumes: readonly string[],
  root: string,
  producers: readonly string[],
  workdir: string,
): Promise<void> {
  for (const entry of consumes) {
    const colon = entry.indexOf(":");
    const fromTask = colon > 0 ? entry.slice(0, colon) : undefined;
    const rel = colon > 0 ? entry.slice(colon + 1) : entry;
    const candidates = fromTask ? [fromTask] : producers;
    let found: string | undefined;
    for (const producer of candidates) {
      const source = path.join(artifactDir(root, producer), rel);
      if (await exists(source)) {
        found = source;
        break;
      }
    }
    if (!found) {
      const where = fromTask ? `task '${fromTask}'` : "the artifacts of its dependencies";
      const saved: string[] = [];
      for (const producer of candidates)
        for (const f of await savedFiles(artifactDir(root, producer)))
          saved.push(fromTask ? f : `${producer}:${f}`);
      const list =
        saved.length === 0
          ? "none was saved"
          : `saved: ${saved.slice(0, 10).join(", ")}${saved.length > 10 ? `, and ${saved.length - 10} more` : ""}`;
      throw new Error(`artifact '${entry}' not found in ${where} (${list})`);
    }
    const target = path.join(workdir, rel);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.cp(found, target, { recursive: true });
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Relative paths under `dir` matching `pattern`. */
async function expand(pattern: string, dir: string): Promise<string[]> {
  const segments = pattern.split(/[\\/]+/).filter((s) => s !== "" && s !== ".");
  const firstGlob = segments.findIndex((s) => /[*?[]/.test(s));
  if (firstGlob === -1) {
    const rel = segments.join("/");
    return (await exists(path.join(dir, rel))) ? [rel] : [];
  }
  // Walk only below the literal prefix, and no deeper than the pattern reaches.
  const prefix = segments.slice(0, firstGlob).join("/");
  const deep = segments.includes("**");
  const maxDepth = deep ? Number.POSITIVE_INFINITY : segments.length - firstGlob;
  const re = globToRegExp(segments.join("/"));
  const out: string[] = [];
  const walk = async (rel: string, depth: number): Promise<void> => {
    if (depth > maxDepth) return;
    let entries: import("node:fs").Dirent[];
    try {
      entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (re.test(child)) out.push(child);
      else if (entry.isDirectory()) await walk(child, depth + 1);
    }
  };
  await walk(prefix, 1);
  return out.sort();
}

/** `*` and `?` stay within a path segment; `**` spans segments. */
function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      re += glob[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += glob[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** The files under an artifact folder, relative to it (empty when it has none). */
async function savedFiles(dir: string, rel = ""): Promise<string[]> {
  let entries: import("node:fs").Dirent[];
  try {
    entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await savedFiles(dir, p)));
    else out.push(p);
  }
  return out;
}
