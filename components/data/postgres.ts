// PostgreSQL (seed 000): official alpine image as uid 70, max_connections and memory settings
// from config, the application role created by an init script, pg_isready probes, optional
// postgres_exporter sidecar and a nightly pg_dump.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { CREDENTIAL_SYNC_RESOURCES, postgresTuning } from "../../config/data";
import { bytes, formatBytes } from "../../config/quantity";
import { labels } from "../lib/labels";
import { execProbe, restrictedContainer, secretEnv, startupProbe } from "../lib/pod";
import { PORTS } from "../lib/ports";
import { createBackup } from "./backup";
import type { StoreComponentArgs } from "./common";
import { requireKeys, storeHost } from "./common";
import { createStore, scratch } from "./store";

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

const CREDENTIAL_KEYS = ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "APP_DB_USER", "APP_DB_PASSWORD"];

export class Postgres extends pulumi.ComponentResource {
  /** Client Service name; the backup job (same namespace) connects to it by this short name. */
  readonly service: pulumi.Output<string>;
  /** Service DNS name, the host in the app's connection settings. */
  readonly host: pulumi.Output<string>;
  readonly port = PORTS.postgres.sql;
  readonly statefulSet: k8s.apps.v1.StatefulSet;

  constructor(name: string, args: StoreComponentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Postgres", name, {}, opts);
    const cfg = args.config;
    const pg = cfg.postgres;
    const ns = args.namespace;
    const secret = args.credentials.name;
    requireKeys(args.credentials, CREDENTIAL_KEYS);

    const init = new k8s.core.v1.ConfigMap(
      "postgres-init",
      { metadata: { name: "postgres-init", namespace: ns, labels: labels(cfg, { name: "postgres", component: "database" }) }, data: { "10-app-user.sh": POSTGRES_INIT_SCRIPT } },
      { parent: this },
    );

    const isReady = execProbe(["sh", "-c", 'exec pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"'], { periodSeconds: 10, timeoutSeconds: 5 });
    const run = scratch("run", "/var/run/postgresql", "16Mi");
    const tmp = scratch("tmp", "/tmp");
    // Parallel query uses /dev/shm; the container default (64Mi) is too small for big sorts.
    const shmSize = formatBytes(Math.max(64 * 2 ** 20, Math.floor(bytes(pg.resources.limits.memory) / 8)));

    const store = createStore(this, {
      cfg,
      name: "postgres",
      component: "database",
      store: pg,
      namespace: ns,
      serviceAccount: args.serviceAccount("postgres"),
      port: { name: "postgres", number: PORTS.postgres.sql },
      container: {
        env: [
          ...CREDENTIAL_KEYS.map((k) => secretEnv(k, secret, k)),
          { name: "PGDATA", value: PGDATA },
        ],
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
      exporter: {
        env: [
          { name: "DATA_SOURCE_URI", value: "127.0.0.1:5432/postgres?sslmode=disable" },
          secretEnv("DATA_SOURCE_USER", secret, "POSTGRES_USER"),
          secretEnv("DATA_SOURCE_PASS", secret, "POSTGRES_PASSWORD"),
        ],
        args: [`--web.listen-address=:${PORTS.postgres.metrics}`],
      },
      // Postgres needs a few seconds for a fast shutdown checkpoint.
      credentialsChecksum: args.credentialsChecksum,
      terminationGracePeriodSeconds: 60,
    });
    this.statefulSet = store.statefulSet;
    this.service = store.service.metadata.name;
    this.host = storeHost(this.service, ns);

    if (pg.backup.enabled) {
      createBackup(this, {
        cfg,
        name: "postgres",
        store: pg,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        // The application role owns the database: a full dump without superuser rights.
        env: [
          { name: "PGHOST", value: this.service },
          { name: "PGPORT", value: String(PORTS.postgres.sql) },
          secretEnv("PGDATABASE", secret, "POSTGRES_DB"),
          secretEnv("PGUSER", secret, "APP_DB_USER"),
          secretEnv("PGPASSWORD", secret, "APP_DB_PASSWORD"),
        ],
        dump: 'pg_dump --format=custom --no-password --file="$OUT"',
        extension: "dump",
        offsite: args.offsite,
        graph: args.graph,
      });
      args.graph.connect("postgres-backup", "postgres", [PORTS.postgres.sql], "scheduled pg_dump");
    }
    this.registerOutputs({ host: this.host });
  }
}
