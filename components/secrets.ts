// Every credential the seeds made by hand with `openssl rand`, generated instead and kept a
// Pulumi secret end to end. Rotation is a keeper change (secrets.rotation / secrets.rotate.<group>).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { PlatformConfig } from "../config/schema";
import { PATRONI_API_USER, REPLICATION_USER } from "./data/patroni";
import { platformLabels } from "./lib/labels";

export type SecretGroup = "app" | "postgres" | "redis" | "mongo" | "chroma" | "flower" | "mail" | "ops";

/** Keeper of a generator: bumping secrets.rotation, or secrets.rotate.<group>, regenerates it. */
export function rotationKeepers(cfg: PlatformConfig, group: SecretGroup): Record<string, string> {
  return { rotation: `${cfg.secrets.rotation}.${cfg.secrets.rotate[group] ?? 0}` };
}

/** A Kubernetes Secret the program creates, and the keys it holds (for secretKeyRef checks). */
export interface SecretRef {
  name: pulumi.Output<string>;
  keys: string[];
}

export interface GeneratedSecretsArgs {
  config: PlatformConfig;
  namespace: pulumi.Input<string>;
  /** Reads a user-supplied secret config key (secrets.external). */
  external: (key: string) => pulumi.Output<string>;
}

export class GeneratedSecrets extends pulumi.ComponentResource {
  /** Seed 000's email-service-secrets: DB_USER, DB_PASSWORD, JWT_SECRET, ENCRYPTION_KEY. */
  readonly app: SecretRef;
  readonly postgres?: SecretRef;
  readonly redis?: SecretRef;
  readonly mongo?: SecretRef;
  readonly chroma?: SecretRef;
  readonly flower?: SecretRef;
  readonly external?: SecretRef;
  /** Generated values (secret outputs) for tiers that build connection strings from them. */
  readonly values: {
    postgresUser?: string;
    postgresPassword?: pulumi.Output<string>;
    postgresSuperuserPassword?: pulumi.Output<string>;
    /** Patroni mode: the streaming replication role's and the REST API's passwords. */
    postgresReplicationPassword?: pulumi.Output<string>;
    postgresApiPassword?: pulumi.Output<string>;
    redisPassword?: pulumi.Output<string>;
    /** Clients authenticate to the Sentinels with their own password (redis.sentinel.enabled). */
    redisSentinelPassword?: pulumi.Output<string>;
    mongoRootPassword?: pulumi.Output<string>;
    mongoAppPassword?: pulumi.Output<string>;
    /** The replica set's shared key (internal authentication between members). */
    mongoKeyfile?: pulumi.Output<string>;
    /** The bearer token every Chroma client (apps, backup, smoke test) presents. */
    chromaToken?: pulumi.Output<string>;
    flowerPassword?: pulumi.Output<string>;
  } = {};

  private readonly cfg: PlatformConfig;

  constructor(name: string, args: GeneratedSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:secrets:GeneratedSecrets", name, {}, opts);
    this.cfg = args.config;
    const cfg = args.config;
    const ns = args.namespace;
    const s = cfg.secrets;

    // 32 random bytes, base64: exactly what `openssl rand -base64 32` produced in the seeds.
    const jwt = this.bytes("jwt-secret", "app");
    const encryption = this.bytes("encryption-key", "app");
    const appData: Record<string, pulumi.Input<string>> = { JWT_SECRET: jwt, ENCRYPTION_KEY: encryption };

    const managed = cfg.postgres.enabled ? cfg.postgres.external : undefined;
    if (managed) {
      // A managed database: its user and password are given (secret config), nothing is generated.
      const password = pulumi.secret(args.external(managed.passwordSecret));
      this.values.postgresUser = managed.user;
      this.values.postgresPassword = password;
      Object.assign(appData, { DB_USER: managed.user, DB_PASSWORD: password });
      this.postgres = this.secret("postgres-credentials", ns, { POSTGRES_DB: managed.database, APP_DB_USER: managed.user, APP_DB_PASSWORD: password });
    } else if (cfg.postgres.enabled) {
      const password = this.password("postgres-app", "postgres");
      const superuser = this.password("postgres-superuser", "postgres");
      this.values.postgresUser = s.postgresUser;
      this.values.postgresPassword = password;
      this.values.postgresSuperuserPassword = superuser;
      Object.assign(appData, { DB_USER: s.postgresUser, DB_PASSWORD: password });
      // Patroni mode: the streaming replication role, and the REST API's user for switchovers and config changes.
      const patroni: Record<string, pulumi.Input<string>> = {};
      if (cfg.postgres.mode === "patroni") {
        this.values.postgresReplicationPassword = this.password("postgres-replication", "postgres");
        this.values.postgresApiPassword = this.password("postgres-patroni-api", "postgres");
        Object.assign(patroni, {
          REPLICATION_USER: REPLICATION_USER,
          REPLICATION_PASSWORD: this.values.postgresReplicationPassword,
          PATRONI_API_USER: PATRONI_API_USER,
          PATRONI_API_PASSWORD: this.values.postgresApiPassword,
        });
      }
      this.postgres = this.secret("postgres-credentials", ns, {
        POSTGRES_USER: "postgres",
        POSTGRES_PASSWORD: superuser,
        POSTGRES_DB: s.postgresDatabase,
        APP_DB_USER: s.postgresUser,
        APP_DB_PASSWORD: password,
        ...patroni,
      });
    }
    if (cfg.redis.enabled) {
      const password = this.password("redis", "redis");
      this.values.redisPassword = password;
      const data: Record<string, pulumi.Input<string>> = { REDIS_PASSWORD: password };
      if (cfg.redis.sentinel.enabled) {
        this.values.redisSentinelPassword = data.REDIS_SENTINEL_PASSWORD = this.password("redis-sentinel", "redis");
      }
      this.redis = this.secret("redis-credentials", ns, data);
    }
    if (cfg.mongo.enabled) {
      const root = this.password("mongo-root", "mongo");
      const app = this.password("mongo-app", "mongo");
      this.values.mongoRootPassword = root;
      this.values.mongoAppPassword = app;
      // The replica set's keyfile: 756 random bytes are 1008 base64 characters, under mongod's
      // limit of 1024 characters from the base64 alphabet.
      const keyfile = this.bytes("mongo-keyfile", "mongo", 756);
      this.values.mongoKeyfile = keyfile;
      this.mongo = this.secret("mongo-credentials", ns, {
        MONGO_INITDB_ROOT_USERNAME: "root",
        MONGO_INITDB_ROOT_PASSWORD: root,
        MONGO_INITDB_DATABASE: s.mongoDatabase,
        MONGO_APP_USERNAME: s.mongoUser,
        MONGO_APP_PASSWORD: app,
        MONGO_KEYFILE: keyfile,
      });
    }
    if (cfg.chroma.enabled) {
      // One static token (Chroma 0.6's token provider, a single credential means one anonymous
      // user with access to everything): alphanumeric, which the provider accepts and a header carries as is.
      const token = this.password("chroma-token", "chroma");
      this.values.chromaToken = token;
      // The server reads it under Chroma's own setting name; clients get it from app-connections.
      this.chroma = this.secret("chroma-credentials", ns, { CHROMA_SERVER_AUTHN_CREDENTIALS: token });
    }
    if (cfg.workers.enabled && cfg.workers.flower.enabled) {
      const password = this.password("flower", "flower");
      this.values.flowerPassword = password;
      this.flower = this.secret("flower-auth", ns, {
        FLOWER_USER: s.flowerUser,
        FLOWER_PASSWORD: password,
        // Flower's --basic_auth format, user:password.
        FLOWER_BASIC_AUTH: pulumi.interpolate`${s.flowerUser}:${password}`,
      });
    }
    this.app = this.secret("app-secrets", ns, appData);

    const external = Object.entries(s.external);
    if (external.length > 0) {
      this.external = this.secret("external-secrets", ns, Object.fromEntries(external.map(([envName, key]) => [envName, args.external(key)])));
    }
    this.registerOutputs({ app: this.app.name });
  }

  private keepers(group: SecretGroup): Record<string, string> {
    return rotationKeepers(this.cfg, group);
  }

  /** Alphanumeric (safe inside connection URLs without escaping), 32 characters. */
  private password(name: string, group: SecretGroup): pulumi.Output<string> {
    const pw = new random.RandomPassword(name, { length: 32, special: false, keepers: this.keepers(group) }, { parent: this });
    return pulumi.secret(pw.result);
  }

  private bytes(name: string, group: SecretGroup, length = 32): pulumi.Output<string> {
    const b = new random.RandomBytes(name, { length, keepers: this.keepers(group) }, { parent: this });
    return pulumi.secret(b.base64);
  }

  private secret(name: string, namespace: pulumi.Input<string>, data: Record<string, pulumi.Input<string>>): SecretRef {
    const secret = new k8s.core.v1.Secret(
      name,
      {
        metadata: { name, namespace, labels: platformLabels(this.cfg) },
        type: "Opaque",
        // Every value is wrapped so the Secret's inputs (and state) stay encrypted even for plain user names.
        stringData: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, pulumi.secret(v)])),
      },
      { parent: this },
    );
    return { name: secret.metadata.name, keys: Object.keys(data) };
  }
}
