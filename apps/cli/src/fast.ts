import { readMasters, resolveDataDir } from "@sloth/client/light";
import { printMasterList } from "./commands/master-view.js";

/**
 * Answers the commands scripts call most, in their plainest forms, without
 * loading the argument parser or the RPC stack: `master list|ls [--json]
 * [--data-dir DIR]`. Returns false, having printed nothing, for anything
 * else or anything unusual (a flag it does not know, a masters.db that
 * does not exist yet or needs migrating, any error): the full command line
 * then handles it, with the same output.
 */
export function runFast(argv: readonly string[]): boolean {
  const words: string[] = [];
  let json = false;
  let dataDir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json" && !json) json = true;
    else if (a === "--data-dir" && dataDir === undefined && isValue(argv[i + 1]))
      dataDir = argv[++i];
    else if (a.startsWith("--data-dir=") && dataDir === undefined && isValue(a.slice(11)))
      dataDir = a.slice(11);
    else if (a.startsWith("-")) return false;
    else words.push(a);
  }
  if (words.length !== 2 || words[0] !== "master" || (words[1] !== "list" && words[1] !== "ls"))
    return false;
  let masters: ReturnType<typeof readMasters>;
  try {
    masters = readMasters(resolveDataDir(dataDir).mastersDb);
  } catch {
    return false;
  }
  if (!masters) return false;
  printMasterList(masters, json);
  return true;
}

const isValue = (v: string | undefined): v is string =>
  v !== undefined && v !== "" && !v.startsWith("-");
