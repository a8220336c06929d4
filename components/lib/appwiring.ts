// Wiring shared by the app workloads (HTTP services, worker pools, beat, Flower): which data-tier
// keys reach a pod as env vars, the ConfigMap keys derived from dependencies, and the graph edges
// a dependency implies. One declaration (`dependsOn`) drives all three so they cannot drift apart.
import type * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { Dependency } from "../../config/dependencies";
import type { PlatformConfig } from "../../config/schema";
import type { DependencyGraph, Peer } from "./graph";
import { secretEnv } from "./pod";
import { PORTS, redisClientPorts, serviceHost } from "./ports";

type EnvVar = k8s.types.input.core.v1.EnvVar;

/** A Kubernetes Secret the program creates and the keys it holds (same shape as components/secrets.ts SecretRef). */
export interface KeyedSecret {
  name: pulumi.Input<string>;
  keys: string[];
}

/** What every app component receives besides its config (see components/services.ts AppArgs). */
export interface AppEnvSources {
  /** Seed 000's app secret: DB_USER, DB_PASSWORD, JWT_SECRET, ENCRYPTION_KEY. */
  app: KeyedSecret;
  /** secrets.external (third-party API keys), when configured. */
  external?: KeyedSecret;
  /** The data tier's `app-connections` Secret (DATABASE_URL, REDIS_URL, CELERY_BROKER_URL, MONGODB_URI, CHROMA_URL, ...). */
  connections?: KeyedSecret;
  /** The mail tier's `mail-submission` Secret: where and as whom the app submits mail. */
  mail?: KeyedSecret;
  /** OpenTelemetry env from the observability tier, per workload. */
  telemetryEnv?: (workload: string) => EnvVar[];
}

/** The tier a Secret key belongs to; keys of a tier the workload does not use are not mapped. */
export function keyOwner(key: string): Dependency | undefined {
  if (/^(DATABASE_URL|DB_|POSTGRES)/.test(key)) return "postgres";
  if (/^(REDIS|CELERY_)/.test(key)) return "redis";
  if (/^MONGO/.test(key)) return "mongo";
  if (/^CHROMA_/.test(key)) return "chroma";
  if (/^SMTP_/.test(key)) return "mail";
  return undefined;
}

/**
 * Env vars read from Secrets (never literal values): the connections Secret, the app Secret and
 * the external Secret, limited to keys of tiers in `deps`. The first source to define a name wins.
 */
export function secretEnvFor(src: AppEnvSources, deps: readonly Dependency[]): EnvVar[] {
  const out: EnvVar[] = [];
  const seen = new Set<string>();
  for (const secret of [src.connections, src.mail, src.app, src.external]) {
    if (!secret) continue;
    for (const key of secret.keys) {
      const owner = keyOwner(key);
      if (seen.has(key) || (owner !== undefined && !deps.includes(owner))) continue;
      seen.add(key);
      out.push(secretEnv(key, secret.name, key));
    }
  }
  return out;
}

/** Non-secret keys derived from dependencies: the mail relay (submission) and IMAP host. */
export function dependencyConfig(cfg: PlatformConfig, deps: readonly Dependency[]): Record<string, string> {
  if (!deps.includes("mail")) return {};
  return {
    SMTP_HOST: serviceHost("postfix", cfg.platform.mailNamespace),
    SMTP_PORT: String(PORTS.postfix.submission),
    IMAP_HOST: serviceHost("dovecot", cfg.platform.mailNamespace),
    IMAP_PORT: String(PORTS.dovecot.imaps),
  };
}

/** Where clients reach Postgres: its pods, or a managed database's addresses (postgres.external). */
export function postgresPeers(cfg: PlatformConfig): { peers: Peer[]; port: number } {
  const ext = cfg.postgres.external;
  if (!ext) return { peers: ["postgres"], port: PORTS.postgres.sql };
  return { peers: ext.cidrs.map((cidr) => ({ kind: "cidr" as const, name: `postgres-external-${cidr}`, cidr })), port: ext.port };
}

/** Edges from a workload to Postgres, wherever it runs. */
export function connectPostgres(cfg: PlatformConfig, graph: DependencyGraph, from: string, reason: string): void {
  const { peers, port } = postgresPeers(cfg);
  for (const p of peers) graph.connect(from, p, [port], reason);
}

/** Graph edges a workload's dependencies imply (egress from it, ingress on the store). */
export function connectDependencies(cfg: PlatformConfig, graph: DependencyGraph, from: string, deps: readonly Dependency[]): void {
  for (const d of deps) {
    switch (d) {
      case "postgres":
        connectPostgres(cfg, graph, from, `${from} uses the database`);
        break;
      case "redis":
        // With Sentinel: the Sentinels first (which member is the master), then the master.
        graph.connect(from, "redis", redisClientPorts(cfg.redis), `${from} uses Redis (cache, Celery broker and results)`);
        break;
      case "mongo":
        graph.connect(from, "mongo", [PORTS.mongo.mongo], `${from} uses MongoDB`);
        break;
      case "chroma":
        graph.connect(from, "chroma", [PORTS.chroma.http], `${from} uses ChromaDB (HTTP API)`);
        break;
      case "jaeger":
        graph.connect(from, "jaeger", [PORTS.jaeger.otlpGrpc, PORTS.jaeger.otlpHttp], `${from} sends traces (OTLP)`);
        break;
      case "mail":
        graph.connect(from, "postfix", [PORTS.postfix.submission], `${from} sends mail (submission)`);
        // ENABLE_IMAP_SYNC: the email client reads mailboxes from Dovecot.
        graph.connect(from, "dovecot", [PORTS.dovecot.imap, PORTS.dovecot.imaps], `${from} syncs mailboxes (IMAP)`);
        break;
    }
  }
}

/** ConfigMap data in key order, so its checksum does not depend on how the keys were assembled. */
export function sortedData(data: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(data).sort(([a], [b]) => a.localeCompare(b)));
}
