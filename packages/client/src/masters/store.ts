import { fileURLToPath } from "node:url";
import { asc, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";
import { parseHostPort } from "../address.js";
import { SlothError } from "../errors.js";
import { migrateWithRetry, openSqliteWith, writeTransaction } from "../sqlite.js";
import { masters } from "./schema.js";

/** TLS file paths recorded for a master. */
export interface MasterTlsPaths {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
}

/** A named master as stored in masters.db. */
export interface MasterRecord {
  name: string;
  address: string;
  description: string;
  isDefault: boolean;
  /** Path of the token file to use with this master (never the token). */
  tokenFile?: string | undefined;
  tls: MasterTlsPaths;
  createdAt: Date;
  updatedAt: Date;
}

/** Fields of a new master. */
export interface AddMasterInput {
  name: string;
  address: string;
  description?: string | undefined;
  tokenFile?: string | undefined;
  tls?: MasterTlsPaths | undefined;
}

/** Fields to change; omitted ones stay as they are. */
export interface UpdateMasterInput {
  address?: string | undefined;
  description?: string | undefined;
  tokenFile?: string | undefined;
  tls?: MasterTlsPaths | undefined;
}

/** The CLI's registry of named masters. */
export interface MastersStore {
  /** Adds a master; the first one added becomes the default. */
  add(input: AddMasterInput): MasterRecord;
  /** All masters, oldest first. */
  list(): MasterRecord[];
  get(name: string): MasterRecord | undefined;
  getDefault(): MasterRecord | undefined;
  /** Makes `name` the default. */
  select(name: string): MasterRecord;
  update(name: string, input: UpdateMasterInput): MasterRecord;
  /** Removes a master; the default cannot go while others remain. */
  remove(name: string): MasterRecord;
  close(): void;
}

const MIGRATIONS = fileURLToPath(new URL("../../drizzle", import.meta.url));
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

type Row = typeof masters.$inferSelect;

function toRecord(r: Row): MasterRecord {
  return {
    name: r.name,
    address: r.address,
    description: r.description,
    isDefault: r.isDefault,
    tokenFile: r.tokenFile ?? undefined,
    tls: { cert: r.tlsCert ?? undefined, key: r.tlsKey ?? undefined, ca: r.tlsCa ?? undefined },
    createdAt: new Date(r.createdAt),
    updatedAt: new Date(r.updatedAt),
  };
}

/** Checks a master name: no ':', letters, digits, '.', '_' and '-'. */
export function validateMasterName(name: string): void {
  if (name.includes(":")) {
    throw new SlothError(
      "SLOTH_INVALID_ARGUMENT",
      `invalid master name '${name}': names cannot contain ':'`,
      {
        hint: "a value with ':' is read as an address; pick a name such as 'production'",
      },
    );
  }
  if (!NAME.test(name)) {
    throw new SlothError("SLOTH_INVALID_ARGUMENT", `invalid master name '${name}'`, {
      hint: "use up to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    });
  }
}

function notFound(name: string): SlothError {
  return new SlothError("SLOTH_MASTER_NOT_FOUND", `master '${name}' not found`, {
    hint: "run `sloth-runner master list`",
    details: { name },
  });
}

/** Opens masters.db (created and migrated if needed). */
export function openMastersStore(file: string): MastersStore {
  const { sqlite, value: db } = openSqliteWith(
    file,
    {},
    (opened) => {
      const orm = drizzle(opened);
      migrateWithRetry(() => migrate(orm, { migrationsFolder: MIGRATIONS }));
      return orm;
    },
    "the list of masters",
    "move it aside and add your masters again with `sloth-runner master add`",
  );

  const get = (name: string): MasterRecord | undefined => {
    const row = db.select().from(masters).where(eq(masters.name, name)).get();
    return row ? toRecord(row) : undefined;
  };
  const mustGet = (name: string): MasterRecord => {
    const r = get(name);
    if (!r) throw notFound(name);
    return r;
  };

  return {
    add(input) {
      validateMasterName(input.name);
      parseHostPort(input.address);
      return writeTransaction(sqlite, () => {
        if (get(input.name)) {
          throw new SlothError("SLOTH_MASTER_EXISTS", `master '${input.name}' already exists`, {
            hint: `choose another name, or run \`sloth-runner master update ${input.name} ADDRESS\``,
          });
        }
        const now = Date.now();
        const first = db.select({ name: masters.name }).from(masters).limit(1).all().length === 0;
        db.insert(masters)
          .values({
            name: input.name,
            address: input.address.trim(),
            description: input.description ?? "",
            isDefault: first,
            tokenFile: input.tokenFile ?? null,
            tlsCert: input.tls?.cert ?? null,
            tlsKey: input.tls?.key ?? null,
            tlsCa: input.tls?.ca ?? null,
            createdAt: now,
            updatedAt: now,
          })
          .run();
        return mustGet(input.name);
      });
    },
    list() {
      return (
        db
          .select()
          .from(masters)
          // Added in the same millisecond: in the order they were added.
          .orderBy(asc(masters.createdAt), sql`rowid`)
          .all()
          .map(toRecord)
      );
    },
    get,
    getDefault() {
      const row = db.select().from(masters).where(eq(masters.isDefault, true)).get();
      return row ? toRecord(row) : undefined;
    },
    select(name) {
      return writeTransaction(sqlite, () => {
        mustGet(name);
        db.update(masters).set({ isDefault: false }).where(eq(masters.isDefault, true)).run();
        db.update(masters)
          .set({ isDefault: true, updatedAt: Date.now() })
          .where(eq(masters.name, name))
          .run();
        return mustGet(name);
      });
    },
    update(name, input) {
      if (input.address !== undefined) parseHostPort(input.address);
      return writeTransaction(sqlite, () => {
        mustGet(name);
        const set: Partial<Row> = { updatedAt: Date.now() };
        if (input.address !== undefined) set.address = input.address.trim();
        if (input.description !== undefined) set.description = input.description;
        if (input.tokenFile !== undefined) set.tokenFile = input.tokenFile || null;
        if (input.tls?.cert !== undefined) set.tlsCert = input.tls.cert || null;
        if (input.tls?.key !== undefined) set.tlsKey = input.tls.key || null;
        if (input.tls?.ca !== undefined) set.tlsCa = input.tls.ca || null;
        db.update(masters).set(set).where(eq(masters.name, name)).run();
        return mustGet(name);
      });
    },
    remove(name) {
      return writeTransaction(sqlite, () => {
        const r = mustGet(name);
        const count = db.select({ name: masters.name }).from(masters).all().length;
        if (r.isDefault && count > 1) {
          throw new SlothError(
            "SLOTH_MASTER_IS_DEFAULT",
            `cannot delete default master '${name}'. Select a different default first`,
            { hint: "run `sloth-runner master select OTHER`" },
          );
        }
        db.delete(masters).where(eq(masters.name, name)).run();
        return r;
      });
    },
    close() {
      sqlite.close();
    },
  };
}
