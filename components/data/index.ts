// The data tier: Postgres, Redis, MongoDB and ChromaDB, each its own component, plus the connection Secret
// the API and workers read, and the object store's credentials for the stores that upload to it.
// See docs/data.md.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { STORES } from "../../config/data";
import type { PlatformConfig } from "../../config/schema";
import { declareEgress } from "../lib/egress";
import type { DependencyGraph } from "../lib/graph";
import { platformLabels } from "../lib/labels";
import { checksum } from "../lib/pod";
import type { GeneratedSecrets, SecretRef } from "../secrets";
import { offsiteFor } from "./backup";
import { Chroma } from "./chroma";
import type { StoreComponentArgs } from "./common";
import { CONNECTION_SECRET, connectionData, connectionKeys } from "./connections";
import { Mongo } from "./mongo";
import { Postgres } from "./postgres";
import { Redis } from "./redis";
import { statefulOptions } from "./store";

export interface DataTierArgs {
  config: PlatformConfig;
  /** The app namespace (platform.namespaces.app). */
  namespace: pulumi.Output<string>;
  serviceAccount: (name: string) => pulumi.Input<string>;
  secrets: GeneratedSecrets;
  graph: DependencyGraph;
  /** Reads a secret config key (the object store's key pair). */
  secret: (key: string) => pulumi.Output<string>;
}


export class DataTier extends pulumi.ComponentResource {
  readonly postgres?: Postgres;
  readonly redis?: Redis;
  readonly mongo?: Mongo;
  readonly chroma?: Chroma;
  /** `app-connections` and its keys, for the app tier's secretKeyRefs; undefined when no store is on. */
  readonly connections?: SecretRef;
  /** Stack outputs: each enabled store's host and port. */
  readonly outputs: Record<string, pulumi.Output<string>> = {};
  /** `object-store-credentials` in the app namespace, when a store of this tier uploads to backups.objectStore. */
  readonly objectStoreCredentials?: SecretRef;

  constructor(name: string, args: DataTierArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:DataTier", name, {}, opts);
    const cfg = args.config;
    // One object-store credentials Secret in the namespace, for every dump copy and for Postgres'
    // WAL archive, base backups and restores.
    const anyBackup = STORES.some((s) => cfg[s].enabled && cfg[s].backup.enabled);
    const pgArchive = cfg.postgres.enabled && cfg.postgres.mode === "patroni" && (cfg.postgres.archive.enabled || cfg.postgres.restore !== undefined);
    const offsite = offsiteFor(this, "object-store-credentials", cfg, args.namespace, args.secret, anyBackup || pgArchive);
    this.objectStoreCredentials = offsite?.credentials;
    const base = { config: cfg, namespace: args.namespace, serviceAccount: args.serviceAccount, graph: args.graph, offsite };
    const v = args.secrets.values;
    const creds = (ref: SecretRef | undefined, store: string, values: (pulumi.Output<string> | undefined)[]): StoreComponentArgs => {
      if (!ref) throw new Error(`${store} is enabled but GeneratedSecrets created no credentials for it`);
      return { ...base, credentials: ref, credentialsChecksum: checksum(pulumi.all(values.map((x) => x ?? ""))) };
    };
    const child = { parent: this };
    const pg = cfg.postgres;
    if (pg.enabled) {
      // Patroni's extra passwords count only where they exist: a single-pod stack keeps its checksum (no restart on upgrade).
      const patroni = pg.mode === "patroni" ? [v.postgresReplicationPassword, v.postgresApiPassword] : [];
      const pgCreds = creds(args.secrets.postgres, "postgres", [v.postgresPassword, v.postgresSuperuserPassword, ...patroni]);
      this.postgres = new Postgres("postgres", { ...pgCreds, objectStoreCredentials: this.objectStoreCredentials }, child);
    }
    if (cfg.redis.enabled) this.redis = new Redis("redis", creds(args.secrets.redis, "redis", [v.redisPassword, v.redisSentinelPassword]), child);
    if (cfg.mongo.enabled) this.mongo = new Mongo("mongo", creds(args.secrets.mongo, "mongo", [v.mongoRootPassword, v.mongoAppPassword, v.mongoKeyfile]), child);
    if (cfg.chroma.enabled) this.chroma = new Chroma("chroma", creds(args.secrets.chroma, "chroma", [v.chromaToken]), child);
    const stores = { postgres: this.postgres, redis: this.redis, mongo: this.mongo, chroma: this.chroma };
    // Stores reach outside the cluster only where their config declares it (a managed Postgres runs no pod here).
    for (const store of STORES) if (stores[store] && !(store === "postgres" && pg.mode === "external")) declareEgress(args.graph, store, cfg[store].egress);
    for (const [key, s] of Object.entries(stores)) {
      // Service name and port (the namespace is its own output): the full host also sits in a Secret.
      if (s) this.outputs[key] = pulumi.interpolate`${s.service}:${s.port}`;
    }

    if (Object.values(stores).some((s) => s !== undefined)) {
      const data = connectionData(cfg, Object.fromEntries(Object.entries(stores).map(([k, s]) => [k, s?.host])), args.secrets.values);
      const keys = connectionKeys(cfg);
      if (keys.join() !== Object.keys(data).join()) throw new Error(`app-connections keys drifted: ${Object.keys(data).join()} vs ${keys.join()}`);
      const secret = new k8s.core.v1.Secret(
        CONNECTION_SECRET,
        {
          metadata: { name: CONNECTION_SECRET, namespace: args.namespace, labels: { ...platformLabels(cfg), "app.kubernetes.io/component": "connections" } },
          type: "Opaque",
          stringData: data,
        },
        { parent: this, ...statefulOptions(cfg, "secret") },
      );
      this.connections = { name: secret.metadata.name, keys };
    }
    this.registerOutputs({ ...this.outputs });
  }
}
