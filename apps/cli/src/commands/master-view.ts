import type { MasterRecord } from "@sloth/client/light";
import { formatLocalTime, painter, printJson, println } from "../output.js";

// How masters are shown; light, so the fast path of `master list` can use it.

export function masterJson(m: MasterRecord) {
  return {
    name: m.name,
    address: m.address,
    description: m.description,
    default: m.isDefault,
    tokenFile: m.tokenFile ?? null,
    tls: { cert: m.tls.cert ?? null, key: m.tls.key ?? null, ca: m.tls.ca ?? null },
    createdAt: m.createdAt.toISOString(),
    updatedAt: m.updatedAt.toISOString(),
  };
}

export function printMaster(m: MasterRecord, detailed: boolean): void {
  const c = painter(process.stdout);
  const star = m.isDefault ? "⭐ " : "   ";
  println(`${star}${c.bold(m.name)}${m.isDefault ? c.green(" (default)") : ""}`);
  println(`   Address: ${m.address}`);
  if (m.description) println(`   Description: ${m.description}`);
  if (detailed && m.tokenFile) println(`   Token file: ${m.tokenFile}`);
  if (detailed && m.tls.ca) println(`   TLS CA: ${m.tls.ca}`);
  if (detailed && m.tls.cert) println(`   TLS certificate: ${m.tls.cert}`);
  println(`   Created: ${formatLocalTime(m.createdAt)}`);
  if (detailed) println(`   Updated: ${formatLocalTime(m.updatedAt)}`);
}

/** The output of `master list` (`--json`: an array of objects). */
export function printMasterList(all: MasterRecord[], json: boolean): void {
  if (json) {
    printJson(all.map(masterJson));
    return;
  }
  if (all.length === 0) {
    println("No masters registered; add one with `sloth-runner master add NAME HOST:PORT`");
    return;
  }
  println("# Registered Master Servers");
  println();
  for (const m of all) {
    printMaster(m, false);
    println();
  }
  println(`Total: ${all.length} master(s)`);
}
