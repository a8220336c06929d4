// The app-facing connection settings: one Secret (`app-connections`) with a key per setting the
// API and workers read, built from the generated credentials and the stores' Service DNS names.
// Only enabled stores contribute keys. The app tier maps each key with secretKeyRef.
import * as pulumi from "@pulumi/pulumi";
import { STORES } from "../../config/data";
import type { StoreName } from "../../config/data";
import type { PlatformConfig } from "../../config/schema";
import { PORTS } from "../lib/ports";
import type { GeneratedSecrets } from "../secrets";

export const CONNECTION_SECRET = "app-connections";

/** Redis logical databases: cache, Celery broker and Celery results kept apart (FLUSHDB on one spares the others). */
export const REDIS_DB = { cache: 0, broker: 1, results: 2 } as const;

/** Service DNS name of each enabled store (serviceHost of its client Service). */
export type StoreHosts = Partial<Record<StoreName, pulumi.Input<string>>>;

/** The keys `app-connections` holds for a config (enabled stores only). */
export function connectionKeys(cfg: PlatformConfig): string[] {
  return STORES.filter((s) => cfg[s].enabled).flatMap((s) => [...CONNECTION_KEYS[s]]);
}

/** Keys each store contributes, in order. */
export const CONNECTION_KEYS = {
  postgres: ["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME"],
  redis: ["REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"],
  mongo: ["MONGODB_URI"],
} as const;

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`app-connections: missing ${what} (is the store enabled?)`);
  return v;
}

/**
 * Connection settings for the enabled stores. Generated passwords are alphanumeric, but user
 * and database names are escaped anyway so a config change can never break a URL.
 */
export function connectionData(cfg: PlatformConfig, hosts: StoreHosts, values: GeneratedSecrets["values"]): Record<string, pulumi.Output<string>> {
  const out: Record<string, pulumi.Output<string>> = {};
  const e = encodeURIComponent;
  const hostOf = (store: StoreName) => need(hosts[store], `the ${store} Service`);
  if (cfg.postgres.enabled) {
    const external = cfg.postgres.external;
    const host = pulumi.output(hostOf("postgres"));
    const port = external?.port ?? PORTS.postgres.sql;
    const db = external?.database ?? cfg.secrets.postgresDatabase;
    const password = need(values.postgresPassword, "the Postgres password");
    const user = need(values.postgresUser, "the Postgres user");
    // A managed database is reached over the network: TLS as configured (libpq reads sslmode from the URL).
    const query = external ? `?sslmode=${external.sslmode}` : "";
    out.DATABASE_URL = pulumi.interpolate`postgresql://${e(user)}:${password.apply(e)}@${host}:${port}/${e(db)}${query}`;
    out.DB_HOST = host;
    out.DB_PORT = pulumi.output(String(port));
    out.DB_NAME = pulumi.output(db);
  }
  if (cfg.redis.enabled) {
    const base = pulumi.interpolate`redis://:${need(values.redisPassword, "the Redis password").apply(e)}@${hostOf("redis")}:${PORTS.redis.redis}`;
    out.REDIS_URL = pulumi.interpolate`${base}/${REDIS_DB.cache}`;
    out.CELERY_BROKER_URL = pulumi.interpolate`${base}/${REDIS_DB.broker}`;
    out.CELERY_RESULT_BACKEND = pulumi.interpolate`${base}/${REDIS_DB.results}`;
  }
  if (cfg.mongo.enabled) {
    const db = e(cfg.secrets.mongoDatabase);
    const password = need(values.mongoAppPassword, "the MongoDB application password");
    // The application user is created in the application database, so that is its authSource.
    out.MONGODB_URI = pulumi.interpolate`mongodb://${e(cfg.secrets.mongoUser)}:${password.apply(e)}@${hostOf("mongo")}:${PORTS.mongo.mongo}/${db}?authSource=${db}`;
  }
  // Every value a Pulumi secret, host names included: the Secret's inputs stay encrypted in state.
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, pulumi.secret(v)]));
}
