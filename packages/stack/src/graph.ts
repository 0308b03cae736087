import { transitive } from "./deps.js";
import type { StackStore } from "./store.js";

/** Stacks and the dependencies between them: `[from, to]` means from depends on to. */
export interface StackGraph {
  nodes: { name: string; status: string; missing?: boolean }[];
  edges: [from: string, to: string][];
}

/**
 * The dependency graph of every stack, or of `stack` with everything it
 * depends on and everything depending on it, directly or not. Dependencies
 * that do not exist are nodes marked `missing`.
 */
export function stackGraph(store: StackStore, stack?: string): StackGraph {
  const all = store.list();
  const deps = new Map(all.map((s) => [s.name, s.dependsOn]));
  let keep: Set<string>;
  if (stack === undefined) keep = new Set([...deps.keys(), ...[...deps.values()].flat()]);
  else {
    store.get(stack);
    const reverse = new Map<string, string[]>();
    for (const [from, tos] of deps)
      for (const to of tos) reverse.set(to, [...(reverse.get(to) ?? []), from]);
    keep = new Set([stack, ...transitive(deps, stack), ...transitive(reverse, stack)]);
  }
  const status = new Map(all.map((s) => [s.name, s.status]));
  const nodes = [...keep]
    .sort()
    .map((name) =>
      status.has(name)
        ? { name, status: status.get(name) as string }
        : { name, status: "missing", missing: true },
    );
  const edges: [string, string][] = [];
  for (const from of [...keep].sort())
    for (const to of deps.get(from) ?? []) if (keep.has(to)) edges.push([from, to]);
  return { nodes, edges };
}

const quote = (s: string) => JSON.stringify(s);

/** Graphviz DOT text of a graph, dependencies drawn below what needs them. */
export function graphToDot(g: StackGraph): string {
  const lines = ["digraph stacks {", "  rankdir=BT;", "  node [shape=box, style=rounded];"];
  for (const n of g.nodes)
    lines.push(
      `  ${quote(n.name)} [label=${quote(`${n.name}\n${n.status}`)}${n.missing ? ", style=dashed, color=red" : ""}];`,
    );
  for (const [from, to] of g.edges) lines.push(`  ${quote(to)} -> ${quote(from)};`);
  lines.push("}");
  return `${lines.join("\n")}\n`;
}

/** Mermaid flowchart text of a graph (for Markdown). */
export function graphToMermaid(g: StackGraph): string {
  const id = new Map(g.nodes.map((n, i) => [n.name, `s${i}`]));
  const label = (s: string) => s.replace(/["<>]/g, "_");
  const lines = ["graph TB"];
  for (const n of g.nodes) lines.push(`  ${id.get(n.name)}["${label(n.name)} (${n.status})"]`);
  for (const [from, to] of g.edges) lines.push(`  ${id.get(to)} --> ${id.get(from)}`);
  return `${lines.join("\n")}\n`;
}
