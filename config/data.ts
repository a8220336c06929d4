// Postgres, Redis and MongoDB. Numbers from seeds 000 (Postgres/Redis) and 002 (MongoDB).
// Everything a store needs lives under its key: image, resources, storage, exporter, backup and
// the store's own settings. Derived settings (Postgres memory, Mongo cache) come from the limits.
// Postgres has its own module (config/postgres.ts): it replicates, the others do not yet.
import { z } from "zod";
import type { Environment } from "./common";
import { image, perEnv, res, resources, storage } from "./common";
import { cron } from "./cron";
import type { PostgresConfig } from "./postgres";
import { bytes } from "./quantity";

export { CREDENTIAL_SYNC_RESOURCES, PATRONI_SYNC_RESOURCES, postgresDefaults, postgresSchema } from "./postgres";
export type { PostgresConfig } from "./postgres";

export const STORES = ["postgres", "redis", "mongo"] as const;
export type StoreName = (typeof STORES)[number];

const exporterSchema = z.strictObject({
  /** Prometheus exporter sidecar in the store pod, on the named port `metrics`. */
  enabled: z.boolean(),
  image: image,
  resources: resources,
});

const backupSchema = z.strictObject({
  /** Scheduled logical backup (CronJob) onto its own retained volume. */
  enabled: z.boolean(),
  schedule: cron,
  /** IANA time zone of the schedule (CronJob.spec.timeZone). */
  timeZone: z.string().min(1),
  /** Backups kept; the job deletes older ones after a successful run. */
  retention: z.number().int().min(1, "must be >= 1: keeping no backups would delete every dump right after writing it").max(365),
  storage: storage,
  resources: resources,
  /** A job that runs longer is killed (and retried), so a hung dump never blocks the next run. */
  activeDeadlineSeconds: z.number().int().min(60),
});

/** The image's own user: volumes are written with it, and fsGroup makes them group-writable. */
const runAsSchema = z.strictObject({ uid: z.number().int().min(1), gid: z.number().int().min(1) });

function storeSchema<T extends z.core.$ZodLooseShape>(name: "redis" | "mongo", settings: z.ZodObject<T>) {
  return z.strictObject({
    enabled: z.boolean(),
    image: image,
    replicas: z.literal(1, {
      error: `must be 1: replication is not built yet for ${name}, so a second replica would be an independent, diverging copy of the data`,
    }),
    resources: resources,
    storage: storage,
    runAs: runAsSchema,
    exporter: exporterSchema,
    backup: backupSchema,
    settings: settings,
  });
}

/** Redis memory units as redis.conf reads them (1mb = 1024*1024 bytes). */
const redisMemory = z.string().regex(/^\d+(kb|mb|gb)$/, "must be a Redis memory size such as 512mb");

export const redisSchema = storeSchema(
  "redis",
  z.strictObject({
    maxmemory: redisMemory,
    maxmemoryPolicy: z.enum(["noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"]),
    appendonly: z.boolean(),
  }),
).superRefine((r, ctx) => {
  // Background saves fork and client buffers live outside maxmemory: keep a quarter of the limit free.
  const limit = safeBytes(r.resources.limits.memory);
  if (limit !== undefined && redisBytes(r.settings.maxmemory) > limit * 0.75) {
    ctx.addIssue({
      code: "custom",
      path: ["settings", "maxmemory"],
      message: `must be at most 75% of resources.limits.memory (${r.resources.limits.memory}) so background saves and client buffers fit`,
    });
  }
});

export const mongoSchema = storeSchema(
  "mongo",
  z.strictObject({
    /** WiredTiger cache; omitted means MongoDB's own rule applied to the container limit. */
    wiredTigerCacheSizeGB: z.number().min(0.25).optional(),
  }),
);

export type RedisConfig = z.infer<typeof redisSchema>;
export type MongoConfig = z.infer<typeof mongoSchema>;
export type StoreConfig = PostgresConfig | RedisConfig | MongoConfig;

export function redisBytes(q: string): number {
  const m = /^(\d+)(kb|mb|gb)$/.exec(q);
  if (!m) throw new Error(`not a Redis memory size: ${q}`);
  return Number(m[1]) * { kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30 }[m[2] as "kb" | "mb" | "gb"];
}

function safeBytes(q: string): number | undefined {
  try {
    return bytes(q);
  } catch {
    return undefined;
  }
}

// ---------- defaults ----------

const EXPORTER_RES = res("50m", "32Mi", "200m", "128Mi");

function backupResources(env: Environment) {
  return perEnv(env, { dev: res("50m", "64Mi", "500m", "256Mi"), staging: res("100m", "128Mi", "1", "512Mi"), prod: res("250m", "256Mi", "1", "1Gi") });
}

/** Backups and exporters are on in staging and prod; dev keeps the cluster small. */
function backupDefaults(env: Environment, schedule: string, size: Record<Environment, string>): z.input<typeof backupSchema> {
  return {
    enabled: env !== "dev",
    schedule,
    timeZone: "Etc/UTC",
    retention: perEnv(env, { dev: 2, staging: 3, prod: 7 }),
    storage: { size: perEnv(env, size) },
    resources: backupResources(env),
    activeDeadlineSeconds: 3 * 3600,
  };
}

function exporterDefaults(env: Environment, img: string, r = EXPORTER_RES): z.input<typeof exporterSchema> {
  return { enabled: env !== "dev", image: img, resources: r };
}

export function redisDefaults(env: Environment): z.input<typeof redisSchema> {
  return {
    enabled: true,
    image: "redis:7.4.1-alpine",
    replicas: 1,
    resources: perEnv(env, {
      dev: res("50m", "128Mi", "250m", "256Mi"),
      staging: res("100m", "256Mi", "500m", "1Gi"),
      prod: res("250m", "512Mi", "1", "2Gi"),
    }),
    storage: { size: perEnv(env, { dev: "1Gi", staging: "2Gi", prod: "5Gi" }) },
    // redis:*-alpine runs as redis (999, group 1000).
    runAs: { uid: 999, gid: 1000 },
    exporter: exporterDefaults(env, "oliver006/redis_exporter:v1.63.0"),
    backup: backupDefaults(env, "30 2 * * *", { dev: "1Gi", staging: "4Gi", prod: "10Gi" }),
    // Seed 000: 512mb, LRU eviction, AOF persistence. Smaller below prod to fit smaller limits.
    settings: { maxmemory: perEnv(env, { dev: "128mb", staging: "256mb", prod: "512mb" }), maxmemoryPolicy: "allkeys-lru", appendonly: true },
  };
}

export function mongoDefaults(env: Environment): z.input<typeof mongoSchema> {
  return {
    enabled: true,
    image: "mongo:7.0.14",
    replicas: 1,
    resources: perEnv(env, {
      dev: res("100m", "256Mi", "500m", "1Gi"),
      staging: res("250m", "512Mi", "1", "2Gi"),
      prod: res("500m", "1Gi", "2", "4Gi"),
    }),
    storage: { size: perEnv(env, { dev: "2Gi", staging: "20Gi", prod: "100Gi" }) },
    // mongo (Ubuntu based) runs as mongodb (999:999).
    runAs: { uid: 999, gid: 999 },
    exporter: exporterDefaults(env, "percona/mongodb_exporter:0.40.0", res("50m", "64Mi", "200m", "256Mi")),
    backup: backupDefaults(env, "45 2 * * *", { dev: "2Gi", staging: "40Gi", prod: "100Gi" }),
    settings: {},
  };
}

// ---------- derived settings ----------

/**
 * Postgres memory settings from the container memory limit (the usual pgtune rules for a
 * dedicated server): shared_buffers 25%, effective_cache_size 75%, maintenance_work_mem 1/16
 * (at most 2GB), work_mem what is left after shared_buffers spread over 3 sorts per connection.
 */
export function postgresTuning(memoryLimit: string, maxConnections: number): Record<string, string> {
  const kb = Math.floor(bytes(memoryLimit) / 1024);
  const shared = Math.floor(kb / 4);
  const work = Math.max(1024, Math.floor((kb - shared) / (maxConnections * 3)));
  return {
    max_connections: String(maxConnections),
    shared_buffers: `${shared}kB`,
    effective_cache_size: `${Math.floor((kb * 3) / 4)}kB`,
    maintenance_work_mem: `${Math.min(Math.floor(kb / 16), 2 * 1024 * 1024)}kB`,
    work_mem: `${work}kB`,
  };
}

/** MongoDB's default rule (50% of (RAM - 1GB), at least 0.25GB) applied to the container limit. */
export function mongoCacheSizeGB(cfg: MongoConfig): number {
  if (cfg.settings.wiredTigerCacheSizeGB !== undefined) return cfg.settings.wiredTigerCacheSizeGB;
  const gb = bytes(cfg.resources.limits.memory) / 2 ** 30;
  return Math.max(0.25, Math.round((gb - 1) * 0.5 * 100) / 100);
}

/** Cross-tier rules (called from the root schema): a tier that needs a store cannot run without it. */
export function dataCrossTierIssues(cfg: { workers: { enabled: boolean }; redis: { enabled: boolean } }): { path: string[]; message: string }[] {
  const issues: { path: string[]; message: string }[] = [];
  if (cfg.workers.enabled && !cfg.redis.enabled) {
    issues.push({ path: ["redis", "enabled"], message: "must be true while workers.enabled is true (Celery uses Redis as broker and result backend)" });
  }
  return issues;
}
