// PostgreSQL (seed 000) in the mode its settings imply (config/postgres.ts):
// - single: the official alpine image as uid 70, max_connections and memory settings from config,
//   the application role created by an init script, pg_isready probes;
// - patroni: a replicated StatefulSet with automatic failover (components/data/postgres-ha.ts);
// - external: a managed database, no pod.
// In every mode: the app-facing host and port, an optional postgres_exporter sidecar and the
// nightly pg_dump, and the one-shot import of such a dump into a new cluster (postgres.import).
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { CREDENTIAL_SYNC_RESOURCES, postgresTuning } from "../../config/data";
import type { PostgresMode } from "../../config/postgres";
import { bytes, formatBytes } from "../../config/quantity";
import { connectPostgres } from "../lib/appwiring";
import { labels } from "../lib/labels";
import { execProbe, restrictedContainer, secretEnv, startupProbe } from "../lib/pod";
import { PORTS } from "../lib/ports";
import type { SecretRef } from "../secrets";
import { createBackup, createImport } from "./backup";
import type { StoreComponentArgs } from "./common";
import { StoreComponent, postgresExporter, requireKeys } from "./common";
import { createPatroniCluster } from "./postgres-ha";
import { createStore, scratch } from "./store";
import type { StoreObjects } from "./store";

export const POSTGRES_DATA_MOUNT = "/var/lib/postgresql/data";
/** A subdirectory: initdb refuses a mount point that holds lost+found. */
export const PGDATA = `${POSTGRES_DATA_MOUNT}/pgdata`;

/**
 * Runs once on an empty data directory (docker-entrypoint-initdb.d), as the superuser the image
 * creates from POSTGRES_USER. The application gets its own non-superuser role owning the
 * database; psql variables quote the values, so no credential is spliced into SQL text.
 */
export const POSTGRES_INIT_SCRIPT = `#!/bin/sh
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \\
  -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" -v app_db="$POSTGRES_DB" <<'EOSQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
ALTER DATABASE :"app_db" OWNER TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
EOSQL
`;

/**
 * Keeps the role passwords equal to the Secret. The init script runs only on an empty volume, so
 * after a rotation (secrets.rotate.postgres) the database would still hold the old passwords and
 * lock the application out. The sidecar connects over the pod-local socket (the official image
 * trusts local connections, so it needs no old password), waits for the init script's role, and
 * sets both passwords; the credentials checksum on the pod template restarts it on rotation.
 * Existence is checked first so no failing ALTER ROLE statement (with its password) is logged.
 */
export const POSTGRES_SYNC_SCRIPT = `set -u
trap 'exit 0' TERM INT
sql() { psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -qAt -v ON_ERROR_STOP=1 \\
  -v su="$POSTGRES_USER" -v su_password="$POSTGRES_PASSWORD" -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD"; }
until [ "$(echo "SELECT count(*) FROM pg_roles WHERE rolname = :'app_user';" | sql 2>/dev/null)" = "1" ]; do sleep 5 & wait $!; done
until sql <<'EOSQL'
ALTER ROLE :"su" PASSWORD :'su_password';
ALTER ROLE :"app_user" PASSWORD :'app_password';
EOSQL
do sleep 5 & wait $!; done
echo "role passwords match the Secret"
while :; do sleep 3600 & wait $!; done
`;

export const CREDENTIAL_KEYS = ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "APP_DB_USER", "APP_DB_PASSWORD"];

export interface PostgresArgs extends StoreComponentArgs {
  /** The object store's credentials Secret in this namespace (WAL archiving, base backups, restore). */
  objectStoreCredentials?: SecretRef;
}

export class Postgres extends StoreComponent {
  readonly mode: PostgresMode;
  readonly port: number;

  constructor(name: string, args: PostgresArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Postgres", name, {}, opts);
    const cfg = args.config;
    const pg = cfg.postgres;
    const ns = args.namespace;
    this.mode = pg.mode;

    let store: StoreObjects | undefined;
    if (pg.external) {
      requireKeys(args.credentials, EXTERNAL_KEYS);
      this.service = pulumi.output(pg.external.host);
      this.host = this.service;
      this.port = pg.external.port;
    } else {
      store = pg.mode === "patroni" ? createPatroniCluster(this, args) : createSingle(this, args);
      this.servedBy(store.service, ns);
      this.port = PORTS.postgres.sql;
    }
    const secret = args.credentials.name;
    // The client's view of the database: the leader Service (or the managed host), as the application role.
    const clientEnv = [
      { name: "PGHOST", value: this.service },
      { name: "PGPORT", value: String(this.port) },
      ...(pg.external ? [{ name: "PGSSLMODE", value: pg.external.sslmode }] : []),
      secretEnv("PGDATABASE", secret, "POSTGRES_DB"),
      secretEnv("PGUSER", secret, "APP_DB_USER"),
      secretEnv("PGPASSWORD", secret, "APP_DB_PASSWORD"),
    ];

    if (pg.backup.enabled) {
      const backup = createBackup(this, {
        cfg,
        name: "postgres",
        store: pg,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        // The application role owns the database: a full dump without superuser rights.
        env: clientEnv,
        dump: 'pg_dump --format=custom --no-password --file="$OUT"',
        extension: "dump",
        offsite: args.offsite,
        graph: args.graph,
      });
      connectPostgres(cfg, args.graph, "postgres-backup", "scheduled pg_dump");
      if (pg.import) {
        createImport(this, { cfg, pg, namespace: ns, serviceAccount: args.serviceAccount("backup"), env: clientEnv, volume: backup.volume, dependsOn: store ? [store.statefulSet] : [] });
        connectPostgres(cfg, args.graph, "postgres-import", "one-shot import of a logical dump");
      }
    }
    this.registerOutputs({ host: this.host });
  }
}

const EXTERNAL_KEYS = ["POSTGRES_DB", "APP_DB_USER", "APP_DB_PASSWORD"];

/** The single-pod mode: the official image, its entrypoint, an init script and the credential-sync sidecar. */
function createSingle(parent: pulumi.Resource, args: StoreComponentArgs): StoreObjects {
  const cfg = args.config;
  const pg = cfg.postgres;
  const ns = args.namespace;
  const secret = args.credentials.name;
  requireKeys(args.credentials, CREDENTIAL_KEYS);

  const init = new k8s.core.v1.ConfigMap(
    "postgres-init",
    { metadata: { name: "postgres-init", namespace: ns, labels: labels(cfg, { name: "postgres", component: "database" }) }, data: { "10-app-user.sh": POSTGRES_INIT_SCRIPT } },
    { parent },
  );

  const isReady = execProbe(["sh", "-c", 'exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'], { periodSeconds: 10, timeoutSeconds: 5 });
  const run = scratch("run", "/var/run/postgresql", "16Mi");
  const tmp = scratch("tmp", "/tmp");
  // Parallel query uses /dev/shm; the container default (64Mi) is too small for big sorts.
  const shmSize = formatBytes(Math.max(64 * 2 ** 20, Math.floor(bytes(pg.resources.limits.memory) / 8)));

  return createStore(parent, {
    cfg,
    name: "postgres",
    component: "database",
    store: pg,
    namespace: ns,
    serviceAccount: args.serviceAccount("postgres"),
    port: { name: "postgres", number: PORTS.postgres.sql },
    container: {
      env: [...CREDENTIAL_KEYS.map((k) => secretEnv(k, secret, k)), { name: "PGDATA", value: PGDATA }],
      // `-c` flags: the settings are visible in the pod spec, and changing one rolls the pod.
      args: Object.entries(postgresTuning(pg.resources.limits.memory, pg.settings.maxConnections)).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
      readinessProbe: isReady,
      livenessProbe: { ...isReady, periodSeconds: 20, failureThreshold: 6 },
      // Crash recovery replays WAL before accepting connections: allow 10 minutes.
      startupProbe: startupProbe(isReady, 600, 10),
      volumeMounts: [{ name: "init", mountPath: "/docker-entrypoint-initdb.d", readOnly: true }, run.mount, tmp.mount, { name: "shm", mountPath: "/dev/shm" }],
    },
    sidecars: [
      {
        name: "credential-sync",
        image: pg.image,
        command: ["sh", "-c", POSTGRES_SYNC_SCRIPT],
        env: CREDENTIAL_KEYS.map((k) => secretEnv(k, secret, k)),
        resources: CREDENTIAL_SYNC_RESOURCES,
        securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
        volumeMounts: [run.mount],
      },
    ],
    dataMountPath: POSTGRES_DATA_MOUNT,
    volumes: [
      { name: "init", configMap: { name: init.metadata.name, defaultMode: 0o555 } },
      run.volume,
      tmp.volume,
      { name: "shm", emptyDir: { medium: "Memory", sizeLimit: shmSize } },
    ],
    exporter: postgresExporter(secret),
    // Postgres needs a few seconds for a fast shutdown checkpoint.
    credentialsChecksum: args.credentialsChecksum,
    terminationGracePeriodSeconds: 60,
  });
}
