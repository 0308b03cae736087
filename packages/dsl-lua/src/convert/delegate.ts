import type { Delegation } from "@sloth/workflow";

const TABLE_KEYS = ["address", "agent", "agents", "labels", "all", "fallback"];

/**
 * Parses a Lua `delegate_to` value into a {@link Delegation}:
 * `"agent"`, `"host:port"` or `{ address = "host:port" }`, `{ agent = "name" }`, a list of
 * agent names, `{ labels = { k = "v" }, all = true }`, each table form with an
 * optional `fallback = "local"`. Throws an Error whose message says what is
 * wrong (the caller adds the location).
 */
export function parseDelegateTo(value: unknown): Delegation {
  // Agent names never hold ':', so "host:port" can only be an address.
  if (typeof value === "string")
    return value.includes(":")
      ? { target: { kind: "address", address: address(value) } }
      : { target: { kind: "agent", name: agentName(value) } };
  if (Array.isArray(value)) return { target: { kind: "agents", names: names(value) } };
  if (value === null || typeof value !== "object") {
    throw new Error(
      `delegate_to must be an agent name, a list of names or a table, got ${describe(value)}`,
    );
  }
  const t = value as Record<string, unknown>;
  const positional = Object.keys(t).filter((k) => /^\d+$/.test(k));
  for (const k of Object.keys(t)) {
    if (!TABLE_KEYS.includes(k) && !positional.includes(k)) {
      throw new Error(
        `delegate_to has unknown field '${k}'; valid fields: ${TABLE_KEYS.join(", ")}`,
      );
    }
  }
  const fallback = t.fallback;
  if (fallback !== undefined && fallback !== "local") {
    throw new Error(`delegate_to.fallback must be "local", got ${describe(fallback)}`);
  }
  const forms = ["address", "agent", "agents", "labels"].filter((k) => t[k] !== undefined);
  if (positional.length > 0) forms.push("a list of names");
  if (forms.length !== 1) {
    throw new Error(
      forms.length === 0
        ? "delegate_to needs one of address, agent, agents, labels or a list of names"
        : `delegate_to mixes ${forms.join(" and ")}; use one`,
    );
  }
  if (t.all !== undefined && t.labels === undefined)
    throw new Error("delegate_to.all only goes with labels");
  const withFallback = (d: Delegation): Delegation =>
    fallback === "local" ? { ...d, fallback: "local" } : d;
  if (t.address !== undefined)
    return withFallback({ target: { kind: "address", address: address(t.address) } });
  if (t.agent !== undefined)
    return withFallback({ target: { kind: "agent", name: agentName(t.agent) } });
  if (t.agents !== undefined) {
    if (!Array.isArray(t.agents))
      throw new Error(`delegate_to.agents must be a list of names, got ${describe(t.agents)}`);
    return withFallback({ target: { kind: "agents", names: names(t.agents) } });
  }
  if (t.labels !== undefined) {
    const labels = t.labels;
    if (
      labels === null ||
      typeof labels !== "object" ||
      Array.isArray(labels) ||
      Object.keys(labels).length === 0
    ) {
      throw new Error("delegate_to.labels must be a non-empty table of name = value");
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) {
      if (typeof v !== "string" && typeof v !== "number")
        throw new Error(`delegate_to label '${k}' must be a string`);
      out[k] = String(v);
    }
    if (t.all !== undefined && typeof t.all !== "boolean")
      throw new Error("delegate_to.all must be a boolean");
    return withFallback({ target: { kind: "labels", labels: out, all: t.all === true } });
  }
  const list = positional.sort((a, b) => Number(a) - Number(b)).map((k) => t[k]);
  return withFallback({ target: { kind: "agents", names: names(list) } });
}

function agentName(v: unknown): string {
  if (typeof v !== "string" || v.trim() === "")
    throw new Error(`delegate_to agent name must be a non-empty string, got ${describe(v)}`);
  if (/\s/.test(v)) throw new Error(`delegate_to agent name '${v}' contains spaces`);
  if (v.includes(":"))
    throw new Error(
      `delegate_to agent name '${v}' is an address; give one address alone (delegate_to("${v}") or { address = "${v}" }), or agent names in a list`,
    );
  return v;
}

function names(list: unknown[]): string[] {
  if (list.length === 0) throw new Error("delegate_to list is empty");
  return list.map(agentName);
}

function address(v: unknown): string {
  if (typeof v !== "string")
    throw new Error(`delegate_to.address must be "host:port", got ${describe(v)}`);
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535)
    throw new Error(`delegate_to.address '${v}' is not host:port`);
  return v;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "object") return "a table";
  return typeof v === "string" ? `"${v}"` : String(v);
}
