// Postgres: one StatefulSet in one of three modes, chosen from the settings, never set by hand:
// - single: one pod of the official image, as light as a dev cluster wants (no Patroni, no token);
// - patroni: Patroni in every pod with the Kubernetes API as its DCS, replication and automatic
//   failover inside the StatefulSet, pgBackRest for WAL archiving, base backups and point-in-time
//   recovery in the shared object store (backups.objectStore);
// - external: a managed database; no Postgres pod at all.
// Several defaults depend on the mode (image, user, replicas, synchronous commit), so the schema
// leaves them optional and `resolvePostgres` fills them in after validation: a contradiction is an
// error only when the user wrote it, never because of an environment default.
import { z } from "zod";
import type { Environment } from "./common";
import { cidr, hostname, image, perEnv, port, res, resources, storage } from "./common";
import { backupSchema } from "./backups";
import { cron } from "./cron";
import { egress } from "./egress";

export type PostgresMode = "single" | "patroni" | "external";

/** The official image: the single-pod mode (its entrypoint creates the users, runs initdb scripts). */
export const SINGLE_IMAGE = "postgres:16.4-alpine";
/**
 * Percona Distribution for PostgreSQL: PostgreSQL 16 with Patroni and pgBackRest in one public,
 * versioned image (the database image of Percona's Kubernetes operator since 2.8), running as
 * postgres (26). The program renders patroni.yml and pgbackrest.conf itself; see docs/data.md.
 */
export const PATRONI_IMAGE = "percona/percona-distribution-postgresql:16.13-1";
export const IMAGE_USERS: Record<Exclude<PostgresMode, "external">, { uid: number; gid: number }> = {
  // postgres:*-alpine runs as postgres (70:70).
  single: { uid: 70, gid: 70 },
  // The Percona image (UBI, PGDG-style RPMs) runs as postgres (26:26).
  patroni: { uid: 26, gid: 26 },
};

/**
 * off: asynchronous replication (a failover may lose the last commits).
 * on: every commit waits for one synchronous standby while one is healthy; with none, the primary
 *     goes on alone (writes never stop, RPO > 0 until a standby is back).
 * strict: a commit always waits for a standby; with none healthy, writes stop (RPO 0 always).
 * `true`/`false` are read as "on"/"off".
 */
export const SYNCHRONOUS = ["off", "on", "strict"] as const;
export type Synchronous = (typeof SYNCHRONOUS)[number];

/** The sidecars of the Patroni pod (components/data/patroni.ts): a Python loop, then asleep. */
export const PATRONI_SYNC_RESOURCES = res("10m", "32Mi", "100m", "64Mi");
/** The single-pod credential-sync sidecar (components/data/postgres.ts): a shell loop, then asleep. */
export const CREDENTIAL_SYNC_RESOURCES = res("10m", "16Mi", "100m", "64Mi");

const runAsSchema = z.strictObject({ uid: z.number().int().min(1), gid: z.number().int().min(1) });

const secretKey = z.string().regex(/^[a-z][A-Za-z0-9]*$/, "must be a camelCase config key");
/** A Postgres role or database name the program puts into SQL and URLs unquoted-safe. */
const pgName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lowercase Postgres name (letters, digits, _)");
const prefix = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$/, "must be a key prefix such as email-platform/prod (no leading or trailing '/')");
/** A point in time with its zone: Postgres' recovery_target_time reads it unambiguously. */
const timestamp = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})$/, "must be an ISO 8601 time with its zone such as 2026-11-30T14:05:00Z")
  .refine((s) => !Number.isNaN(Date.parse(s.replace(" ", "T"))), "must be a real date and time");

const exporterSchema = z.strictObject({
  /** postgres_exporter sidecar in every Postgres pod; default on outside dev, never with an external database. */
  enabled: z.boolean().optional(),
  image: image,
  resources: resources,
});

const patroniSchema = z
  .strictObject({
    /** Leader lock lifetime: a lost leader is replaced at most ttl + loopWait seconds after its last renewal. */
    ttl: z.number().int().min(10).max(600),
    /** Seconds between two runs of Patroni's HA loop. */
    loopWait: z.number().int().min(1).max(60),
    /** How long Patroni retries the DCS and Postgres before it demotes (DCS) or gives up (Postgres). */
    retryTimeout: z.number().int().min(1).max(120),
    /** A replica further behind than this (bytes) is never promoted in asynchronous mode. */
    maximumLagOnFailover: z.number().int().min(0),
    /** The patroni-sync sidecar (dynamic config, role passwords, the pgBackRest stanza). */
    syncResources: resources,
  })
  .superRefine((p, ctx) => {
    // Patroni's own rule: the leader must be able to retry the DCS twice within one lease.
    if (p.ttl < p.loopWait + 2 * p.retryTimeout) {
      ctx.addIssue({ code: "custom", path: ["ttl"], message: `must be >= loopWait + 2 x retryTimeout (${p.loopWait + 2 * p.retryTimeout}) or a leader loses its lock while retrying` });
    }
  });

const archiveSchema = z.strictObject({
  /**
   * Continuous WAL archiving and scheduled base backups with pgBackRest, below
   * <backups.objectStore.prefix>/postgres/. Default: on wherever backups.objectStore is set.
   */
  enabled: z.boolean().optional(),
  /** Base backups (a CronJob running pgBackRest against the members' TLS servers). */
  schedule: cron,
  timeZone: z.string().min(1),
  type: z.enum(["full", "diff", "incr"]),
  /** Full backups kept, by count or by age in days; WAL older than the oldest kept backup expires with it. */
  retention: z.strictObject({ type: z.enum(["count", "days"]), full: z.number().int().min(1, "must be >= 1: pgBackRest would expire every backup").max(9999) }),
  /** A WAL segment is archived at the latest this long after a commit (bounds the off-cluster RPO of a total loss). */
  archiveTimeoutSeconds: z.number().int().min(10).max(3600),
  /** The base backup job and the pgBackRest TLS server sidecar of every member. */
  resources: resources,
  serverResources: resources,
  activeDeadlineSeconds: z.number().int().min(300),
});

const restoreSchema = z.strictObject({
  /** Recover up to this moment (recovery_target_time); omitted: to the end of the archive. */
  targetTime: timestamp.optional(),
  /** Where the backups to restore from live, below the same object store; default backups.objectStore.prefix. */
  sourcePrefix: prefix.optional(),
});

const importSchema = z.strictObject({
  /** A dump on the postgres-backup volume: "latest" or a file name the backup job wrote. */
  dump: z.string().regex(/^(latest|postgres-\d{8}T\d{6}Z\.dump)$/, "must be latest or a dump file name such as postgres-20261130T021500Z.dump"),
});

/** What a stack file may leave out of postgres.external. */
export const EXTERNAL_DEFAULTS = { port: 5432, sslmode: "require", passwordSecret: "postgresExternalPassword" } as const;

const ipv4 = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/);
const externalSchema = z.strictObject({
  host: z.union([hostname, ipv4], { error: "must be a host name such as db.example.com or an IPv4 address" }),
  port: port,
  database: pgName,
  user: pgName,
  /** TLS to the managed database; plain text is refused (credentials cross the network). */
  sslmode: z.enum(["require", "verify-ca", "verify-full"]),
  /** Secret config key holding the password (`pulumi config set --secret <key>`). */
  passwordSecret: secretKey,
  /** The database's addresses: the apps, backup and smoke pods may reach these on `port`, nothing else. */
  cidrs: z.array(cidr).min(1, "must list the database's addresses (NetworkPolicy egress is allowed to these only)"),
});

export const postgresSchema = z.strictObject({
  enabled: z.boolean(),
  /** Default by mode: the official image (single) or the Percona image with Patroni and pgBackRest. */
  image: image.optional(),
  /** Pods of the StatefulSet; default dev 1, staging 2, prod 3. More than one runs Patroni. */
  replicas: z.number().int().min(1).max(7).optional(),
  /** Members on one node: "required" never (a node loss costs one member), "preferred" when it cannot be helped (small clusters). */
  antiAffinity: z.enum(["required", "preferred"]),
  resources: resources,
  storage: storage,
  /** The image's own user; default by mode (70 official alpine, 26 Percona). */
  runAs: runAsSchema.optional(),
  exporter: exporterSchema,
  /** The scheduled logical dump (pg_dump) onto its own retained volume; kept in every mode. */
  backup: backupSchema,
  settings: z.strictObject({ maxConnections: z.number().int().min(10).max(10000) }),
  /** Synchronous replication (see SYNCHRONOUS); default prod "on" with replicas, else "off". */
  synchronous: z.preprocess((v) => (v === true ? "on" : v === false ? "off" : v), z.enum(SYNCHRONOUS)).optional(),
  patroni: patroniSchema,
  archive: archiveSchema,
  /** Bootstrap a new cluster from the object store (latest point, or targetTime). */
  restore: restoreSchema.optional(),
  /** One-shot import of a logical dump into a new cluster (moving a single-pod stack to Patroni). */
  import: importSchema.optional(),
  /** Outbound destinations of the Postgres pods outside the cluster (config/egress.ts); none by default. */
  egress: egress.default({}),
  /** A managed database instead of Postgres pods. */
  external: z.preprocess((v) => (v && typeof v === "object" && !Array.isArray(v) ? { ...EXTERNAL_DEFAULTS, ...v } : v), externalSchema).optional(),
});

export type PostgresInput = z.infer<typeof postgresSchema>;
export type RunAs = z.infer<typeof runAsSchema>;

/** The validated Postgres settings with every mode-dependent default filled in. */
export type PostgresConfig = Omit<PostgresInput, "image" | "replicas" | "runAs" | "synchronous" | "archive" | "exporter"> & {
  mode: PostgresMode;
  image: string;
  replicas: number;
  runAs: RunAs;
  synchronous: Synchronous;
  archive: Omit<PostgresInput["archive"], "enabled"> & { enabled: boolean };
  exporter: Omit<PostgresInput["exporter"], "enabled"> & { enabled: boolean };
};

export function postgresDefaults(env: Environment): z.input<typeof postgresSchema> {
  return {
    enabled: true,
    antiAffinity: "required",
    resources: perEnv(env, {
      dev: res("100m", "256Mi", "500m", "512Mi"),
      staging: res("250m", "512Mi", "1", "2Gi"),
      prod: res("500m", "1Gi", "2", "4Gi"),
    }),
    storage: { size: perEnv(env, { dev: "1Gi", staging: "5Gi", prod: "10Gi" }) },
    exporter: { image: "quay.io/prometheuscommunity/postgres-exporter:v0.15.0", resources: res("50m", "32Mi", "200m", "128Mi") },
    backup: {
      enabled: env !== "dev",
      schedule: "15 2 * * *",
      timeZone: "Etc/UTC",
      retention: perEnv(env, { dev: 2, staging: 3, prod: 7 }),
      storage: { size: perEnv(env, { dev: "1Gi", staging: "10Gi", prod: "20Gi" }) },
      resources: perEnv(env, { dev: res("50m", "64Mi", "500m", "256Mi"), staging: res("100m", "128Mi", "1", "512Mi"), prod: res("250m", "256Mi", "1", "1Gi") }),
      activeDeadlineSeconds: 3 * 3600,
    },
    settings: { maxConnections: 200 },
    // Patroni's own defaults: proven on the Kubernetes API as DCS (API latency spikes of a few
    // seconds do not demote a healthy leader), failover within ttl + loop_wait = 40 s.
    patroni: { ttl: 30, loopWait: 10, retryTimeout: 10, maximumLagOnFailover: 1048576, syncResources: PATRONI_SYNC_RESOURCES },
    archive: {
      schedule: "0 1 * * *",
      timeZone: "Etc/UTC",
      type: "full",
      retention: { type: "count", full: perEnv(env, { dev: 2, staging: 3, prod: 7 }) },
      archiveTimeoutSeconds: 60,
      resources: perEnv(env, { dev: res("50m", "64Mi", "500m", "256Mi"), staging: res("100m", "128Mi", "1", "512Mi"), prod: res("250m", "256Mi", "2", "1Gi") }),
      serverResources: res("10m", "32Mi", "1", "256Mi"),
      activeDeadlineSeconds: 6 * 3600,
    },
  };
}

/** Every mode-dependent default, from the validated settings, the environment and whether an object store is set. */
export function resolvePostgres(pg: PostgresInput, env: Environment, hasObjectStore: boolean): PostgresConfig {
  const external = pg.external !== undefined;
  const replicas = external ? 1 : (pg.replicas ?? perEnv(env, { dev: 1, staging: 2, prod: 3 }));
  // With an object store, WAL is archived by default outside dev; dev stays one light pod unless it
  // replicates or asks for archiving (an object store there may be for the other stores' copies).
  const archive = !external && (pg.archive.enabled ?? (hasObjectStore && (env !== "dev" || replicas > 1)));
  const mode: PostgresMode = external ? "external" : replicas > 1 || archive || pg.restore !== undefined ? "patroni" : "single";
  const users = IMAGE_USERS[mode === "patroni" ? "patroni" : "single"];
  return {
    ...pg,
    mode,
    image: pg.image ?? (mode === "patroni" ? PATRONI_IMAGE : SINGLE_IMAGE),
    replicas,
    runAs: pg.runAs ?? users,
    // A synchronous standby exists only with replicas; prod waits for one, the other stacks do not.
    synchronous: pg.synchronous ?? (replicas > 1 ? perEnv<Synchronous>(env, { dev: "off", staging: "off", prod: "on" }) : "off"),
    archive: { ...pg.archive, enabled: archive },
    exporter: { ...pg.exporter, enabled: pg.exporter.enabled ?? (env !== "dev" && !external) },
  };
}

type Issue = { path: (string | number)[]; message: string };

/**
 * Contradictions between Postgres settings, and with the rest of the config: each names the key
 * the user wrote. Checked on the unresolved settings, so an environment default never conflicts.
 */
export function postgresIssues(cfg: {
  environment: Environment;
  postgres: PostgresInput;
  backups: { objectStore?: unknown };
  cluster: { apiServer?: unknown };
}): Issue[] {
  const pg = cfg.postgres;
  if (!pg.enabled) return [];
  const issues: Issue[] = [];
  const r = resolvePostgres(pg, cfg.environment, cfg.backups.objectStore !== undefined);
  const at = (...path: (string | number)[]) => ["postgres", ...path];
  if (pg.external) {
    const not = (path: string[], what: string) => issues.push({ path: at(...path), message: `must not be set with postgres.external (${what})` });
    if (pg.replicas !== undefined && pg.replicas !== 1) not(["replicas"], "no Postgres pod runs; the managed service replicates");
    if (pg.synchronous !== undefined && pg.synchronous !== "off") not(["synchronous"], "replication is the managed service's");
    if (pg.archive.enabled) not(["archive", "enabled"], "WAL archiving and PITR are the managed service's");
    if (pg.restore) not(["restore"], "restore through the managed service");
    if (pg.import) not(["import"], "load a dump with pg_restore against the managed database");
    if (pg.exporter.enabled) not(["exporter", "enabled"], "the exporter is a sidecar of a Postgres pod, and none runs");
    return issues;
  }
  if (r.synchronous !== "off" && r.replicas < 2) {
    issues.push({ path: at("synchronous"), message: `must be "off" while postgres.replicas is ${r.replicas} (a synchronous commit needs a standby to confirm it; set replicas >= 2)` });
  }
  if (pg.archive.enabled === true && !cfg.backups.objectStore) {
    issues.push({ path: at("archive", "enabled"), message: "requires backups.objectStore (WAL and base backups are kept off the cluster, in the object store)" });
  }
  if (pg.restore && !cfg.backups.objectStore) {
    issues.push({ path: at("restore"), message: "requires backups.objectStore (point-in-time recovery reads the base backups and WAL from it)" });
  }
  if (pg.import && !pg.backup.enabled) {
    issues.push({ path: at("import"), message: "requires postgres.backup.enabled (the dump is read from the postgres-backup volume)" });
  }
  if (pg.import && pg.restore) {
    issues.push({ path: at("import"), message: "must not be combined with postgres.restore (a new cluster starts from one source)" });
  }
  if (r.mode === "patroni") {
    if (!cfg.cluster.apiServer) {
      issues.push({
        path: ["cluster", "apiServer"],
        message:
          "is required while Postgres runs Patroni (replicas > 1, WAL archiving or a restore): Patroni keeps its leader lock in the Kubernetes API, " +
          "and its NetworkPolicy egress needs the API server's addresses (kubectl get endpoints kubernetes -n default)",
      });
    }
    if (pg.image && /^(docker\.io\/)?(library\/)?postgres:/.test(pg.image)) {
      issues.push({ path: at("image"), message: `must be an image with Patroni and pgBackRest while Postgres runs Patroni; the official image has neither (default: ${PATRONI_IMAGE})` });
    }
  }
  return issues;
}
