import type Database from "better-sqlite3";
import type { StateBackend } from "./backend.js";
import { checkedBackend } from "./checked-backend.js";
import { StateError } from "./errors.js";
import { createFileBackend } from "./file-backend.js";
import { type Durability, openStateDatabase } from "./sqlite.js";
import { createStateStore, validateName } from "./store.js";
import type { StateStore } from "./types.js";

/** Options of {@link openState}. */
export interface OpenStateOptions {
  /** The SQLite file; created (mode 0600, directory 0700) and migrated if needed. */
  path: string;
  /** Namespace of the returned view (default `"default"`); see `withNamespace`. */
  namespace?: string | undefined;
  /** `"full"` (default): every commit is fsynced. `"normal"`: faster; a power cut can lose the last commits. */
  durability?: Durability | undefined;
  /** How long an operation keeps retrying while another process holds the write lock (default 5000 ms). */
  busyTimeoutMs?: number | undefined;
}

/**
 * Opens a state store on a SQLite file (WAL, `BEGIN IMMEDIATE` writes,
 * migrations applied on open). Processes sharing the file share keys and
 * locks. Close it when done (`await using` works).
 */
export async function openState(options: OpenStateOptions): Promise<StateStore> {
  if (typeof options?.path !== "string" || options.path.length === 0) {
    throw new StateError(
      "SLOTH_INVALID_ARGUMENT",
      "cannot open state: `path` must be a non-empty string",
      {
        hint: 'pass the SQLite file to use, such as { path: "state.db" }',
      },
    );
  }
  const namespace = validateName(options.namespace ?? "default", "namespace");
  return createStateStore(await openFileBackend(options), namespace);
}

/**
 * Opens the file store's primitive {@link StateBackend}, with every
 * argument checked, for a server that forwards its callers' operations
 * (the master's StateService). Applications use {@link openState}.
 */
export async function openStateBackend(
  options: Omit<OpenStateOptions, "namespace">,
): Promise<StateBackend> {
  if (typeof options?.path !== "string" || options.path.length === 0) {
    throw new StateError(
      "SLOTH_INVALID_ARGUMENT",
      "cannot open state: `path` must be a non-empty string",
      {
        hint: 'pass the SQLite file to use, such as { path: "state.db" }',
      },
    );
  }
  return checkedBackend(await openFileBackend(options));
}

async function openFileBackend(
  options: Omit<OpenStateOptions, "namespace">,
): Promise<StateBackend> {
  const durability = options.durability ?? "full";
  if (durability !== "full" && durability !== "normal") {
    throw new StateError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot open state: durability must be "full" or "normal", not '${String(durability)}'`,
    );
  }
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (typeof busyTimeoutMs !== "number" || !Number.isFinite(busyTimeoutMs) || busyTimeoutMs < 0)
    throw new StateError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot open state: busyTimeoutMs must be a non-negative number of ms, not '${String(busyTimeoutMs)}'`,
    );
  const db: Database.Database = await openStateDatabase(options.path, {
    durability,
    busyTimeoutMs,
  });
  return createFileBackend(db, busyTimeoutMs);
}
