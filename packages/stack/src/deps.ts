/**
 * A cycle in `graph` (node → the nodes it depends on) reachable from
 * `from` (every node when absent), as a path that starts and ends with the
 * same node; undefined when there is none.
 */
export function findCycle(
  graph: ReadonlyMap<string, readonly string[]>,
  from?: Iterable<string>,
): string[] | undefined {
  const done = new Set<string>();
  const onPath = new Map<string, number>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (done.has(node)) return undefined;
    const at = onPath.get(node);
    if (at !== undefined) return [...path.slice(at), node];
    onPath.set(node, path.length);
    path.push(node);
    for (const dep of graph.get(node) ?? []) {
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
    return undefined;
  };
  for (const node of from ?? graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Every node `node` depends on, directly or not, nearest first. */
export function transitive(graph: ReadonlyMap<string, readonly string[]>, node: string): string[] {
  const seen = new Set<string>([node]);
  const out: string[] = [];
  let level = [...(graph.get(node) ?? [])];
  while (level.length > 0) {
    const next: string[] = [];
    for (const n of level) {
      if (seen.has(n)) continue;
      seen.add(n);
      out.push(n);
      next.push(...(graph.get(n) ?? []));
    }
    level = next;
  }
  return out;
}

/**
 * `names` ordered so that each comes after those it depends on, directly or
 * through other nodes; ties keep the given order. Throws the cycle (as
 * {@link findCycle} gives it) when there is one.
 */
export function dependencyOrder(
  graph: ReadonlyMap<string, readonly string[]>,
  names: readonly string[],
): { order: string[] } | { cycle: string[] } {
  const cycle = findCycle(graph, names);
  if (cycle) return { cycle };
  const wanted = new Set(names);
  const reach = new Map(names.map((n) => [n, new Set(transitive(graph, n))]));
  const order: string[] = [];
  const placed = new Set<string>();
  while (order.length < wanted.size) {
    // The first name (in the given order) whose wanted prerequisites are placed.
    const next = names.find(
      (n) =>
        !placed.has(n) && [...(reach.get(n) ?? [])].every((d) => !wanted.has(d) || placed.has(d)),
    ) as string;
    order.push(next);
    placed.add(next);
  }
  return { order };
}
