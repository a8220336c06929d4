// The app-facing connection settings: one Secret (`app-connections`) with a key per setting the
// services and workers read, built from the generated credentials and the stores' Service DNS names.
// Only enabled stores contribute keys. The app tier maps each key with secretKeyRef.
import * as pulumi from "@pulumi/pulumi";
import { STORES } from "../../config/data";
import type { StoreName } from "../../config/data";
import type { PlatformConfig } from "../../config/schema";
import { PORTS } from "../lib/ports";
import type { GeneratedSecrets } from "../secrets";
import { mongoMembers } from "./mongo";
import { redisMembers } from "./redis";

export const CONNECTION_SECRET = "app-connections";

/** Redis logical databases: cache, Celery broker and Celery results kept apart (FLUSHDB on one spares the others). */
export const REDIS_DB = { cache: 0, broker: 1, results: 2 } as const;

/** Service DNS name of each enabled store (serviceHost of its client Service). */
export type StoreHosts = Partial<Record<StoreName, pulumi.Input<string>>>;

/** The keys `app-connections` holds for a config (enabled stores only). */
export function connectionKeys(cfg: PlatformConfig): string[] {
  return STORES.filter((s) => cfg[s].enabled).flatMap((s) => storeConnectionKeys(cfg, s));
}

/** Keys each store contributes, in order (Redis without Sentinel). */
export const CONNECTION_KEYS = {
  postgres: ["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME"],
  redis: ["REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"],
  mongo: ["MONGODB_URI"],
  // Host, port and URL for any client, the bearer token, and the stock Python client's own settings
  // (it reads CHROMA_CLIENT_AUTH_* from the environment, so chromadb.HttpClient(host, port) authenticates).
  chroma: [
    "CHROMA_HOST",
    "CHROMA_PORT",
    "CHROMA_URL",
    "CHROMA_AUTH_TOKEN",
    "CHROMA_CLIENT_AUTH_PROVIDER",
    "CHROMA_CLIENT_AUTH_CREDENTIALS",
    "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER",
  ],
} as const;

/** Chroma 0.6's token authentication, server and client side (chromadb/auth/token_authn). */
export const CHROMA_AUTH = {
  serverProvider: "chromadb.auth.token_authn.TokenAuthenticationServerProvider",
  clientProvider: "chromadb.auth.token_authn.TokenAuthClientProvider",
  /** The token travels as `Authorization: Bearer <token>`. */
  header: "Authorization",
} as const;

/**
 * Redis with Sentinel: what a Sentinel-aware client needs (the Sentinels, the master's name, both
 * passwords) and Celery's settings ready-made. No REDIS_URL: a plain redis:// URL would reach any
 * member, and writes to a replica fail; an app that still reads it fails at start instead.
 */
export const SENTINEL_CONNECTION_KEYS = [
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
  "REDIS_SENTINEL_PASSWORD",
  "REDIS_PASSWORD",
  "CELERY_BROKER_URL",
  "CELERY_RESULT_BACKEND",
  "CELERY_BROKER_TRANSPORT_OPTIONS",
  "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",
] as const;

export function storeConnectionKeys(cfg: PlatformConfig, store: StoreName): string[] {
  return store === "redis" && cfg.redis.sentinel.enabled ? [...SENTINEL_CONNECTION_KEYS] : [...CONNECTION_KEYS[store]];
}

/**
 * kombu's and Celery's Sentinel URL: one `sentinel://` URL per Sentinel, joined by ';'. The password
 * in the URLs is the Redis password (for the master); the Sentinels' own goes in the transport options.
 */
export function sentinelUrl(sentinels: string[], redisPassword: string, db: number): string {
  return sentinels.map((h) => `sentinel://:${encodeURIComponent(redisPassword)}@${h}/${db}`).join(";");
}

/**
 * broker_transport_options / result_backend_transport_options for the Sentinel transport (JSON in
 * the env). The socket timeouts matter when a node is lost rather than a process: without them a
 * client waits on the dead master's socket until TCP gives up (many minutes; measured in the
 * daemon tier: publishing and consuming stopped). A client gives up on the master as soon as the
 * Sentinels do (down-after) and asks them again; the Sentinels themselves answer within 2 s or are
 * skipped. Brokers poll with BRPOP timeouts of 1 s, well below these. Celery's result backend reads
 * only master_name and sentinel_kwargs from its options (its socket timeouts are redis_socket_*
 * settings, docs/app.md).
 */
export function sentinelTransportOptions(masterName: string, sentinelPassword: string, downAfterMilliseconds: number): string {
  const timeout = downAfterMilliseconds / 1000;
  return JSON.stringify({
    master_name: masterName,
    sentinel_kwargs: { password: sentinelPassword, socket_timeout: 2, socket_connect_timeout: 2 },
    socket_timeout: timeout,
    socket_connect_timeout: timeout,
    socket_keepalive: true,
    // A worker waits for BRPOP's reply in its event loop, where no read timeout applies: TCP
    // keepalive is what notices a lost node there. Names of the socket module's constants (JSON
    // keys cannot be them); the app turns them into numbers (docs/app.md).
    socket_keepalive_options: { TCP_KEEPIDLE: 1, TCP_KEEPINTVL: 1, TCP_KEEPCNT: Math.max(1, Math.round(timeout) - 1) },
  });
}

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
  if (cfg.redis.enabled && cfg.redis.sentinel.enabled) {
    const sentinels = redisMembers(cfg).map((h) => `${h}:${PORTS.redis.sentinel}`);
    const password = need(values.redisPassword, "the Redis password");
    const sentinelPassword = need(values.redisSentinelPassword, "the Sentinel password");
    const options = sentinelPassword.apply((sp) => sentinelTransportOptions(cfg.redis.sentinel.masterName, sp, cfg.redis.sentinel.downAfterMilliseconds));
    out.REDIS_SENTINELS = pulumi.output(sentinels.join(","));
    out.REDIS_SENTINEL_MASTER = pulumi.output(cfg.redis.sentinel.masterName);
    out.REDIS_SENTINEL_PASSWORD = sentinelPassword;
    out.REDIS_PASSWORD = password;
    out.CELERY_BROKER_URL = password.apply((pw) => sentinelUrl(sentinels, pw, REDIS_DB.broker));
    out.CELERY_RESULT_BACKEND = password.apply((pw) => sentinelUrl(sentinels, pw, REDIS_DB.results));
    out.CELERY_BROKER_TRANSPORT_OPTIONS = options;
    out.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = options;
  } else if (cfg.redis.enabled) {
    const base = pulumi.interpolate`redis://:${need(values.redisPassword, "the Redis password").apply(e)}@${hostOf("redis")}:${PORTS.redis.redis}`;
    out.REDIS_URL = pulumi.interpolate`${base}/${REDIS_DB.cache}`;
    out.CELERY_BROKER_URL = pulumi.interpolate`${base}/${REDIS_DB.broker}`;
    out.CELERY_RESULT_BACKEND = pulumi.interpolate`${base}/${REDIS_DB.results}`;
  }
  if (cfg.mongo.enabled) {
    const db = e(cfg.secrets.mongoDatabase);
    const password = need(values.mongoAppPassword, "the MongoDB application password");
    // Every member, so the driver finds the set even with one member down; the application user is
    // created in the application database, so that is its authSource.
    const members = mongoMembers(cfg).join(",");
    const set = e(cfg.mongo.settings.replicaSetName);
    out.MONGODB_URI = pulumi.interpolate`mongodb://${e(cfg.secrets.mongoUser)}:${password.apply(e)}@${members}/${db}?authSource=${db}&replicaSet=${set}`;
  }
  if (cfg.chroma.enabled) {
    const host = pulumi.output(hostOf("chroma"));
    const token = need(values.chromaToken, "the Chroma token");
    out.CHROMA_HOST = host;
    out.CHROMA_PORT = pulumi.output(String(PORTS.chroma.http));
    out.CHROMA_URL = pulumi.interpolate`http://${host}:${PORTS.chroma.http}`;
    out.CHROMA_AUTH_TOKEN = token;
    out.CHROMA_CLIENT_AUTH_PROVIDER = pulumi.output(CHROMA_AUTH.clientProvider);
    out.CHROMA_CLIENT_AUTH_CREDENTIALS = token;
    out.CHROMA_AUTH_TOKEN_TRANSPORT_HEADER = pulumi.output(CHROMA_AUTH.header);
  }
  // Every value a Pulumi secret, host names included: the Secret's inputs stay encrypted in state.
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, pulumi.secret(v)]));
}
