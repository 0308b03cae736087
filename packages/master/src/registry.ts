import crypto from "node:crypto";
import { EventEmitter } from "node:events";
import { fileURLToPath } from "node:url";
import {
  migrateWithRetry,
  openSqlite,
  SlothError,
  sqliteOpenError,
  writeTransaction,
} from "@sloth/client";
import type Database from "better-sqlite3";
import { eq } from "drizzle-orm";
import { type BetterSQLite3Database, drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { agents } from "./schema.js";

/** An agent's registry status. */
export type AgentState = "active" | "inactive" | "unreachable";

/** One agent as the registry knows it. */
export interface AgentEntry {
  name: string;
  address: string;
  reportAddress: string;
  bindAddress: string;
  port: number;
  version: string;
  labels: Record<string, string>;
  facts: Record<string, string | number>;
  secretHash: string;
  /** Whether the agent serves TLS. */
  tls: boolean;
  status: AgentState;
  statusReason: string;
  lastSeen: number;
  registeredAt: number;
  runningCommands: number;
}

/** What an agent sends when it registers. */
export interface RegistrationInput {
  name: string;
  address: string;
  reportAddress: string;
  bindAddress: string;
  port: number;
  version: string;
  labels: Record<string, string>;
  facts: Record<string, string | number>;
  secret: Uint8Array;
  tls: boolean;
}

/** Registry events, for embedding code and metrics. */
export interface RegistryEvents {
  registered: [AgentEntry];
  status: [AgentEntry, AgentState];
  removed: [AgentEntry];
}

/** Timing of liveness. */
export interface LivenessOptions {
  /** An agent is inactive after ttl + grace without a heartbeat. */
  ttlMs: number;
  graceMs: number;
}

const MIGRATIONS = fileURLToPath(new URL("../drizzle", import.meta.url));
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Hashes an identity secret for storage and comparison. */
export function hashSecret(secret: Uint8Array): string {
  return crypto.createHash("sha256").update(secret).digest("hex");
}

function sameHash(a: string, b: string): boolean {
  const ba = Buffer.from(a, "hex");
  const bb = Buffer.from(b, "hex");
  return ba.length === bb.length && crypto.timingSafeEqual(ba, bb);
}

/** Checks an agent name: letters, digits, '.', '_' and '-', up to 63. */
export function validateAgentName(name: string): void {
  if (!NAME.test(name)) {
    throw new SlothError("SLOTH_INVALID_ARGUMENT", `invalid agent name '${name}'`, {
      hint: "use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    });
  }
}

/**
 * The persisted agent registry. Reads come from memory; status changes are
 * written at once, last-seen times at most once a second in one transaction.
 */
export class AgentRegistry extends EventEmitter<RegistryEvents> {
  readonly #sqlite: Database.Database;
  readonly #db: BetterSQLite3Database;
  readonly #agents = new Map<string, AgentEntry>();
  readonly #dirty = new Set<string>();
  readonly #liveness: LivenessOptions;
  #timer: NodeJS.Timeout | undefined;

  constructor(file: string, liveness: LivenessOptions) {
    super();
    this.#liveness = liveness;
    // NORMAL durability: the registry is soft state (agents register again and
    // heartbeat every few seconds), so losing the last writes on power loss
    // costs nothing, while FULL would put an fsync in every registration.
    let sqlite: Database.Database | undefined;
    try {
      sqlite = openSqlite(file, { durability: "normal" });
      this.#db = drizzle(sqlite);
      const db = this.#db;
      migrateWithRetry(() => migrate(db, { migrationsFolder: MIGRATIONS }));
      for (const row of this.#db.select().from(agents).all()) {
        this.#agents.set(row.name, {
          ...row,
          labels: JSON.parse(row.labels) as Record<string, string>,
          facts: JSON.parse(row.facts) as Record<string, string | number>,
          runningCommands: 0,
        });
      }
    } catch (e) {
      sqlite?.close();
      throw sqliteOpenError(
        file,
        e,
        "the agent registry",
        "move it aside: the master starts a new registry, and agents register again at their next heartbeat",
      );
    }
    this.#sqlite = sqlite;
  }

  /** Starts the once-a-second flush and liveness sweep. */
  start(): void {
    this.#timer ??= setInterval(() => this.tick(), 1000);
    this.#timer.unref();
  }

  /** Agents in the registry. */
  get size(): number {
    return this.#agents.size;
  }

  /**
   * The heartbeat interval to tell agents: the base, stretched in large
   * clusters so the master answers at most `maxPerSecond` heartbeats a
   * second (10,000 agents at 250/s heartbeat every 40 s). The TTL follows.
   */
  heartbeatInterval(baseMs: number, maxPerSecond = 250): number {
    return Math.max(baseMs, Math.ceil((this.#agents.size / maxPerSecond) * 1000));
  }

  #stretchedTtl = 0;

  /** Keeps the TTL at least three heartbeat intervals. */
  stretchTtl(intervalMs: number): void {
    this.#stretchedTtl = Math.max(this.#stretchedTtl, 3 * intervalMs);
  }

  /** Flushes last-seen times and marks silent agents inactive. */
  tick(now = Date.now()): void {
    const limit = Math.max(this.#liveness.ttlMs, this.#stretchedTtl) + this.#liveness.graceMs;
    for (const a of this.#agents.values()) {
      if (a.status !== "inactive" && now - a.lastSeen > limit) {
        const secs = Math.round((now - a.lastSeen) / 1000);
        this.setStatus(a.name, "inactive", `no heartbeat for ${secs}s`);
      }
    }
    this.flush();
  }

  /** Writes pending last-seen times in one transaction. */
  flush(): void {
    if (this.#dirty.size === 0) return;
    const names = [...this.#dirty];
    this.#dirty.clear();
    const stmt = this.#sqlite.prepare("UPDATE agents SET last_seen = ? WHERE name = ?");
    writeTransaction(this.#sqlite, () => {
      for (const name of names) {
        const a = this.#agents.get(name);
        if (a) stmt.run(a.lastSeen, name);
      }
    });
  }

  /**
   * Adds or refreshes an agent. A name held under another secret is refused:
   * names cannot be hijacked.
   */
  register(input: RegistrationInput, status: AgentState, statusReason: string): AgentEntry {
    this.assertIdentity(input.name, input.secret);
    const hash = hashSecret(input.secret);
    const existing = this.#agents.get(input.name);
    const now = Date.now();
    const entry: AgentEntry = {
      name: input.name,
      address: input.address,
      reportAddress: input.reportAddress,
      bindAddress: input.bindAddress,
      port: input.port,
      version: input.version,
      labels: input.labels,
      facts: input.facts,
      secretHash: hash,
      tls: input.tls,
      status,
      statusReason,
      lastSeen: now,
      registeredAt: existing?.registeredAt ?? now,
      runningCommands: 0,
    };
    const row = {
      name: entry.name,
      address: entry.address,
      reportAddress: entry.reportAddress,
      bindAddress: entry.bindAddress,
      port: entry.port,
      version: entry.version,
      labels: JSON.stringify(entry.labels),
      facts: JSON.stringify(entry.facts),
      secretHash: entry.secretHash,
      tls: entry.tls,
      status: entry.status,
      statusReason: entry.statusReason,
      lastSeen: entry.lastSeen,
      registeredAt: entry.registeredAt,
      updatedAt: now,
    };
    writeTransaction(this.#sqlite, () => {
      this.#db
        .insert(agents)
        .values(row)
        .onConflictDoUpdate({ target: agents.name, set: row })
        .run();
    });
    this.#agents.set(entry.name, entry);
    this.#dirty.delete(entry.name);
    this.emit("registered", entry);
    return entry;
  }

  /** Throws when `name` is invalid or registered under another secret. */
  assertIdentity(name: string, secret: Uint8Array): void {
    validateAgentName(name);
    const existing = this.#agents.get(name);
    if (existing && !sameHash(existing.secretHash, hashSecret(secret))) {
      throw new SlothError(
        "SLOTH_AGENT_NAME_HELD",
        `agent name '${name}' is held by another agent`,
        {
          hint: `run \`sloth-runner agent delete ${name}\``,
          details: { name },
        },
      );
    }
  }

  /**
   * Records a heartbeat. Returns undefined when the agent is unknown or the
   * secret does not match, so the agent registers again.
   */
  heartbeat(name: string, secret: Uint8Array, runningCommands: number): AgentEntry | undefined {
    const a = this.#agents.get(name);
    if (!a || !sameHash(a.secretHash, hashSecret(secret))) return undefined;
    a.lastSeen = Date.now();
    a.runningCommands = runningCommands;
    this.#dirty.add(name);
    if (a.status === "inactive") this.setStatus(name, "active", "");
    return a;
  }

  /** Changes an agent's status and writes it at once. */
  setStatus(name: string, status: AgentState, reason: string): void {
    const a = this.#agents.get(name);
    if (!a || (a.status === status && a.statusReason === reason)) return;
    a.status = status;
    a.statusReason = reason;
    this.#db
      .update(agents)
      .set({ status, statusReason: reason, lastSeen: a.lastSeen, updatedAt: Date.now() })
      .where(eq(agents.name, name))
      .run();
    this.#dirty.delete(name);
    this.emit("status", a, status);
  }

  get(name: string): AgentEntry | undefined {
    return this.#agents.get(name);
  }

  /** All agents, by name. */
  list(): AgentEntry[] {
    return [...this.#agents.values()].sort((x, y) => x.name.localeCompare(y.name));
  }

  /** Forgets an agent; returns it, or undefined when unknown. */
  delete(name: string): AgentEntry | undefined {
    const a = this.#agents.get(name);
    if (!a) return undefined;
    this.#db.delete(agents).where(eq(agents.name, name)).run();
    this.#agents.delete(name);
    this.#dirty.delete(name);
    this.emit("removed", a);
    return a;
  }

  /** Counts agents by status. */
  counts(): Record<AgentState, number> {
    const c: Record<AgentState, number> = { active: 0, inactive: 0, unreachable: 0 };
    for (const a of this.#agents.values()) c[a.status]++;
    return c;
  }

  /** Stops the timers, flushes and closes the database. */
  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#sqlite.close();
  }
}
