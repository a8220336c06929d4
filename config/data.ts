// Postgres, Redis, MongoDB and ChromaDB. Numbers from seeds 000 (Postgres/Redis) and 002 (MongoDB,
// ChromaDB). Everything a store needs lives under its key: image, resources, storage, exporter
// (where one exists), backup and the store's own settings. Derived settings (Postgres memory, Mongo
// cache, Chroma's index cache) come from the limits. Postgres has its own module (config/postgres.ts).
import { z } from "zod";
import type { Environment } from "./common";
import { image, perEnv, res, resources, storage } from "./common";
import { backupSchema } from "./backups";
import { egress } from "./egress";
import type { PostgresConfig } from "./postgres";
import { bytes } from "./quantity";

export { CREDENTIAL_SYNC_RESOURCES, PATRONI_SYNC_RESOURCES, postgresDefaults, postgresSchema } from "./postgres";
export type { PostgresConfig } from "./postgres";

export const STORES = ["postgres", "redis", "mongo", "chroma"] as const;
export type StoreName = (typeof STORES)[number];

const exporterSchema = z.strictObject({
  /** Prometheus exporter sidecar in the store pod, on the named port `metrics`. */
  enabled: z.boolean(),
  image: image,
  resources: resources,
});

export type BackupConfig = z.infer<typeof backupSchema>;

/** The image's own user: volumes are written with it, and fsGroup makes them group-writable. */
const runAsSchema = z.strictObject({ uid: z.number().int().min(1), gid: z.number().int().min(1) });

function storeSchema<T extends z.core.$ZodLooseShape, R extends z.ZodType<number>>(settings: z.ZodObject<T>, replicas: R) {
  return z.strictObject({
    enabled: z.boolean(),
    image: image,
    replicas: replicas,
    /**
     * Where replicas of a replicated store may run: "required" never puts two on one node (a node
     * loss then costs one member, never the majority; needs as many schedulable nodes as replicas),
     * "preferred" spreads them when it can (small clusters).
     */
    antiAffinity: z.enum(["required", "preferred"]),
    resources: resources,
    storage: storage,
    runAs: runAsSchema,
    exporter: exporterSchema,
    backup: backupSchema,
    settings: settings,
    /** Outbound destinations outside the cluster (config/egress.ts); none by default. */
    egress: egress.default({}),
  });
}

/** Redis memory units as redis.conf reads them (1mb = 1024*1024 bytes). */
const redisMemory = z.string().regex(/^\d+(kb|mb|gb)$/, "must be a Redis memory size such as 512mb");

/**
 * Redis Sentinel: one Sentinel next to every Redis server (a container in the same pod), watching
 * the master and promoting a replica when a quorum agrees it is down. Clients ask the Sentinels
 * for the master (connection keys REDIS_SENTINELS / CELERY_BROKER_URL in the sentinel:// form).
 */
const sentinelSchema = z.strictObject({
  enabled: z.boolean(),
  /** The name clients ask the Sentinels for (Celery's master_name transport option). */
  masterName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, "must be a Sentinel master name such as redis (letters, digits, '.', '_', '-')"),
  /** Sentinels that must agree the master is down before a failover starts. */
  quorum: z.number().int().min(1),
  /** A master silent this long is considered down (subjectively; the quorum makes it objective). */
  downAfterMilliseconds: z.number().int().min(1000).max(600000),
  /** Retry interval of a failed failover and the time replicas get to follow the new master. */
  failoverTimeoutMilliseconds: z.number().int().min(5000).max(3600000),
  resources: resources,
});

export const redisSchema = storeSchema(
  z.strictObject({
    maxmemory: redisMemory,
    maxmemoryPolicy: z.enum(["noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "allkeys-random", "volatile-random", "volatile-ttl"]),
    appendonly: z.boolean(),
    /**
     * The master refuses writes unless this many replicas acknowledged the stream within
     * minReplicasMaxLag seconds: an isolated master stops taking writes (that a failover on the
     * other side would discard) after minReplicasMaxLag seconds. 0 turns the check off.
     */
    minReplicasToWrite: z.number().int().min(0),
    minReplicasMaxLag: z.number().int().min(1).max(60),
  }),
  z.number().int().min(1).max(9),
)
  .extend({ sentinel: sentinelSchema })
  .superRefine((r, ctx) => {
    // Background saves fork and client buffers live outside maxmemory: keep a quarter of the limit free.
    const limit = safeBytes(r.resources.limits.memory);
    if (limit !== undefined && redisBytes(r.settings.maxmemory) > limit * 0.75) {
      ctx.addIssue({
        code: "custom",
        path: ["settings", "maxmemory"],
        message: `must be at most 75% of resources.limits.memory (${r.resources.limits.memory}) so background saves and client buffers fit`,
      });
    }
    for (const issue of redisReplicationIssues(r)) ctx.addIssue({ code: "custom", ...issue });
  });

/** The rules that tie Redis replicas, Sentinel and the write guard together. */
function redisReplicationIssues(r: { replicas: number; sentinel: z.infer<typeof sentinelSchema>; settings: { minReplicasToWrite: number } }): { path: string[]; message: string }[] {
  const out: { path: string[]; message: string }[] = [];
  const s = r.sentinel;
  if (s.enabled && r.replicas < 3) {
    out.push({
      path: ["replicas"],
      message: `must be at least 3 while sentinel.enabled is true: one Sentinel runs per replica and a failover needs a majority of them after a node loss (2 of 3), got ${r.replicas}`,
    });
  }
  if (!s.enabled && r.replicas > 1) {
    out.push({
      path: ["replicas"],
      message: `must be 1 while sentinel.enabled is false: replicas without Sentinel are never promoted, and clients of the redis Service would write to read-only replicas, got ${r.replicas}`,
    });
  }
  if (s.enabled) {
    const majority = Math.floor(r.replicas / 2) + 1;
    if (s.quorum < majority || s.quorum > r.replicas) {
      out.push({ path: ["sentinel", "quorum"], message: `must be between a majority of the Sentinels (${majority}) and their number (${r.replicas}), got ${s.quorum}` });
    }
    if (s.failoverTimeoutMilliseconds <= s.downAfterMilliseconds) {
      out.push({ path: ["sentinel", "failoverTimeoutMilliseconds"], message: `must be greater than sentinel.downAfterMilliseconds (${s.downAfterMilliseconds}), got ${s.failoverTimeoutMilliseconds}` });
    }
  }
  if (r.settings.minReplicasToWrite > r.replicas - 1) {
    out.push({
      path: ["settings", "minReplicasToWrite"],
      message: `must be at most replicas - 1 (${r.replicas - 1}): the master would refuse every write, got ${r.settings.minReplicasToWrite}`,
    });
  }
  return out;
}

/** Most voting members a replica set may have. */
export const MONGO_MAX_MEMBERS = 7;

export const mongoSchema = storeSchema(
  z.strictObject({
    /** WiredTiger cache; omitted means MongoDB's own rule applied to the container limit. */
    wiredTigerCacheSizeGB: z.number().min(0.25).optional(),
    /** Replica set name (--replSet; the replicaSet option of the connection string). */
    replicaSetName: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "must be a replica set name such as rs0"),
  }),
  z
    .number()
    .int()
    .refine((n) => n % 2 === 1 && n >= 1 && n <= MONGO_MAX_MEMBERS, {
      error: `must be 1, 3, 5 or 7: every pod is a voting member of the replica set, an even count adds no fault tolerance, and a set has at most ${MONGO_MAX_MEMBERS} voters`,
    }),
);

/**
 * ChromaDB (seed 002's vector store), one server. The image is pinned to the 0.6 line on purpose:
 * 0.6 is the last release whose server authenticates clients itself (the token provider this
 * platform configures); the 1.x server dropped built-in authentication, which would leave the
 * store open to every pod the NetworkPolicy admits. The shared store schema without `exporter`
 * (Chroma has no Prometheus exporter, and none is invented here) and without `antiAffinity`
 * (there is only ever one pod to place).
 */
export const chromaSchema = storeSchema(
  z.strictObject({
    /**
     * Chroma keeps every collection's vector index in memory once used, without bound by default.
     * A percentage above 0 turns on its LRU segment cache (CHROMA_SEGMENT_CACHE_POLICY=LRU) sized
     * at this share of resources.limits.memory (CHROMA_MEMORY_LIMIT_BYTES): the least recently used
     * collections' indexes are unloaded instead of the pod being OOM-killed. Chroma sizes an index
     * by its files on disk, so leave room for the server itself. 0 keeps Chroma's unbounded default.
     */
    indexCacheMemoryPercent: z.number().int().min(0).max(80),
  }),
  z
    .number()
    .int()
    .refine((n) => n === 1, {
      error:
        "must be 1: a single-node Chroma server has no replication, so every further pod would open its own empty volume and answer with different data",
    }),
).omit({ exporter: true, antiAffinity: true });

export type RedisConfig = z.infer<typeof redisSchema>;
export type MongoConfig = z.infer<typeof mongoSchema>;
export type ChromaConfig = z.infer<typeof chromaSchema>;
export type StoreConfig = PostgresConfig | RedisConfig | MongoConfig | ChromaConfig;
export type ExporterConfig = z.infer<typeof exporterSchema>;

/** A store's exporter sidecar when it has one and it is on (Chroma has none). */
export function enabledExporter(store: StoreConfig): ExporterConfig | undefined {
  return "exporter" in store && store.exporter.enabled ? store.exporter : undefined;
}

/** Where a store's members may run; a store without the setting runs one pod, which needs no rule. */
export function antiAffinityOf(store: StoreConfig): "required" | "preferred" {
  return "antiAffinity" in store ? store.antiAffinity : "required";
}
export type SentinelConfig = RedisConfig["sentinel"];

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

/** The MongoDB replica-set sidecar (components/data/mongo.ts): a mongosh loop, mostly asleep. */
export const REPLSET_SIDECAR_RESOURCES = res("10m", "96Mi", "200m", "256Mi");

const EXPORTER_RES = res("50m", "32Mi", "200m", "128Mi");

function backupResources(env: Environment) {
  return perEnv(env, { dev: res("50m", "64Mi", "500m", "256Mi"), staging: res("100m", "128Mi", "1", "512Mi"), prod: res("250m", "256Mi", "1", "1Gi") });
}

/** Backups and exporters are on in staging and prod; dev keeps the cluster small. */
export function backupDefaults(env: Environment, schedule: string, size: Record<Environment, string>): z.input<typeof backupSchema> {
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
    // Staging rehearses prod's topology (master, two replicas, three Sentinels); dev stays one pod.
    replicas: perEnv(env, { dev: 1, staging: 3, prod: 3 }),
    antiAffinity: "required",
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
    settings: {
      maxmemory: perEnv(env, { dev: "128mb", staging: "256mb", prod: "512mb" }),
      maxmemoryPolicy: "allkeys-lru",
      appendonly: true,
      // With replicas: refuse writes when no replica has acknowledged the stream for 10 s, which
      // bounds what an isolated master can accept and a failover would throw away.
      minReplicasToWrite: perEnv(env, { dev: 0, staging: 1, prod: 1 }),
      minReplicasMaxLag: 10,
    },
    sentinel: {
      enabled: env !== "dev",
      masterName: "redis",
      quorum: 2,
      // Tight for a Celery broker (Sentinel's own defaults are 30 s and 3 min): inside a cluster a
      // healthy master answers PING in milliseconds, and 5 s of silence is a dead pod or node.
      downAfterMilliseconds: 5000,
      // Also how long a failed failover waits before the next attempt (twice this), so keep it short.
      failoverTimeoutMilliseconds: 20000,
      resources: res("10m", "16Mi", "100m", "64Mi"),
    },
  };
}

export function mongoDefaults(env: Environment): z.input<typeof mongoSchema> {
  return {
    enabled: true,
    image: "mongo:7.0.14",
    // Staging rehearses prod's three-member replica set; dev is a one-member set.
    replicas: perEnv(env, { dev: 1, staging: 3, prod: 3 }),
    antiAffinity: "required",
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
    settings: { replicaSetName: "rs0" },
  };
}

export function chromaDefaults(env: Environment): z.input<typeof chromaSchema> {
  return {
    // Seed 002 only; the other systems have no vector store.
    enabled: false,
    // The official image, 0.6 line: see chromaSchema for why not 1.x.
    image: "chromadb/chroma:0.6.3",
    replicas: 1,
    resources: perEnv(env, {
      dev: res("100m", "256Mi", "500m", "1Gi"),
      staging: res("250m", "512Mi", "1", "2Gi"),
      prod: res("500m", "1Gi", "2", "4Gi"),
    }),
    // Seed 002: 50Gi on fast-ssd (the example sets the class).
    storage: { size: perEnv(env, { dev: "2Gi", staging: "10Gi", prod: "50Gi" }) },
    // The image declares no user (it would run as root): a fixed non-root uid, fsGroup for the volume.
    runAs: { uid: 1000, gid: 1000 },
    backup: {
      ...backupDefaults(env, "15 3 * * *", { dev: "2Gi", staging: "20Gi", prod: "100Gi" }),
      // The export runs the chromadb client (numpy, onnxruntime imported with it) on pages of embeddings.
      resources: perEnv(env, { dev: res("50m", "256Mi", "500m", "768Mi"), staging: res("100m", "512Mi", "1", "1Gi"), prod: res("250m", "512Mi", "1", "2Gi") }),
    },
    settings: { indexCacheMemoryPercent: 50 },
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

/** Chroma's LRU index cache in bytes (CHROMA_MEMORY_LIMIT_BYTES), or undefined when it is off. */
export function chromaIndexCacheBytes(cfg: ChromaConfig): number | undefined {
  const percent = cfg.settings.indexCacheMemoryPercent;
  return percent > 0 ? Math.floor((bytes(cfg.resources.limits.memory) * percent) / 100) : undefined;
}

/** Cross-tier rules (called from the root schema): a tier that needs a store cannot run without it. */
export function dataCrossTierIssues(cfg: { workers: { enabled: boolean }; redis: { enabled: boolean } }): { path: string[]; message: string }[] {
  const issues: { path: string[]; message: string }[] = [];
  if (cfg.workers.enabled && !cfg.redis.enabled) {
    issues.push({ path: ["redis", "enabled"], message: "must be true while workers.enabled is true (Celery uses Redis as broker and result backend)" });
  }
  return issues;
}
