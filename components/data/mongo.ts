// MongoDB (seed 002): authorization on, root user from MONGO_INITDB_ROOT_*, the application user
// created by an init script from MONGO_APP_*, mongosh ping probes, WiredTiger cache sized from
// the container limit, optional mongodb_exporter and a nightly mongodump.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { mongoCacheSizeGB } from "../../config/data";
import { labels } from "../lib/labels";
import { execProbe, secretEnv, startupProbe } from "../lib/pod";
import { PORTS } from "../lib/ports";
import { createBackup } from "./backup";
import type { StoreComponentArgs } from "./common";
import { requireKeys, storeHost } from "./common";
import { createStore, scratch } from "./store";

/**
 * Runs once on an empty data directory (docker-entrypoint-initdb.d), authenticated as root, with
 * `db` = MONGO_INITDB_DATABASE. The application user lives in (and authenticates against) the
 * application database and can only read and write it.
 */
export const MONGO_INIT_SCRIPT = `// Creates the application user from MONGO_APP_USERNAME / MONGO_APP_PASSWORD.
const user = process.env.MONGO_APP_USERNAME;
const pwd = process.env.MONGO_APP_PASSWORD;
const dbName = process.env.MONGO_INITDB_DATABASE;
if (!user || !pwd || !dbName) throw new Error("MONGO_APP_USERNAME, MONGO_APP_PASSWORD and MONGO_INITDB_DATABASE must be set");
db.getSiblingDB(dbName).createUser({ user: user, pwd: pwd, roles: [{ role: "readWrite", db: dbName }] });
`;

const CREDENTIAL_KEYS = ["MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD", "MONGO_INITDB_DATABASE", "MONGO_APP_USERNAME", "MONGO_APP_PASSWORD"];

/** `ping` needs no authentication, so the probe holds no credential. */
export const MONGO_PING = ["mongosh", "--norc", "--quiet", "--host", "127.0.0.1", "--port", String(PORTS.mongo.mongo), "--eval", "quit(db.adminCommand({ ping: 1 }).ok ? 0 : 1)"];

export class Mongo extends pulumi.ComponentResource {
  /** Client Service name; the backup job (same namespace) connects to it by this short name. */
  readonly service: pulumi.Output<string>;
  /** Service DNS name, the host in the app's connection settings. */
  readonly host: pulumi.Output<string>;
  readonly port = PORTS.mongo.mongo;
  readonly statefulSet: k8s.apps.v1.StatefulSet;

  constructor(name: string, args: StoreComponentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Mongo", name, {}, opts);
    const cfg = args.config;
    const m = cfg.mongo;
    const ns = args.namespace;
    const secret = args.credentials.name;
    requireKeys(args.credentials, CREDENTIAL_KEYS);

    const init = new k8s.core.v1.ConfigMap(
      "mongo-init",
      { metadata: { name: "mongo-init", namespace: ns, labels: labels(cfg, { name: "mongo", component: "database" }) }, data: { "10-app-user.js": MONGO_INIT_SCRIPT } },
      { parent: this },
    );
    // mongosh starts a Node.js runtime: give it time, and probe less often than the other stores.
    const ping = execProbe(MONGO_PING, { periodSeconds: 10, timeoutSeconds: 10 });
    const tmp = scratch("tmp", "/tmp");
    const configdb = scratch("configdb", "/data/configdb", "16Mi");

    const store = createStore(this, {
      cfg,
      name: "mongo",
      component: "database",
      store: m,
      namespace: ns,
      serviceAccount: args.serviceAccount("mongo"),
      port: { name: "mongo", number: PORTS.mongo.mongo },
      container: {
        // The entrypoint prepends `mongod` to arguments starting with '-'.
        args: ["--auth", "--bind_ip_all", "--wiredTigerCacheSizeGB", String(mongoCacheSizeGB(m))],
        env: [
          ...CREDENTIAL_KEYS.map((k) => secretEnv(k, secret, k)),
          // mongosh (probes, init) keeps history under $HOME; the root filesystem is read-only.
          { name: "HOME", value: "/tmp" },
        ],
        readinessProbe: ping,
        livenessProbe: { ...ping, periodSeconds: 20, failureThreshold: 6 },
        // Journal recovery after an unclean stop can take a while on a large volume.
        startupProbe: startupProbe(ping, 600, 10),
        volumeMounts: [{ name: "init", mountPath: "/docker-entrypoint-initdb.d", readOnly: true }, tmp.mount, configdb.mount],
      },
      dataMountPath: "/data/db",
      volumes: [{ name: "init", configMap: { name: init.metadata.name } }, tmp.volume, configdb.volume],
      exporter: {
        env: [secretEnv("MONGODB_USER", secret, "MONGO_INITDB_ROOT_USERNAME"), secretEnv("MONGODB_PASSWORD", secret, "MONGO_INITDB_ROOT_PASSWORD")],
        // $(VAR) is expanded by Kubernetes from the Secret-backed env; it stays inside the pod.
        args: [
          `--mongodb.uri=mongodb://$(MONGODB_USER):$(MONGODB_PASSWORD)@127.0.0.1:${PORTS.mongo.mongo}/admin`,
          `--web.listen-address=:${PORTS.mongo.metrics}`,
          "--compatible-mode",
        ],
      },
      credentialsChecksum: args.credentialsChecksum,
      terminationGracePeriodSeconds: 60,
    });
    this.statefulSet = store.statefulSet;
    this.service = store.service.metadata.name;
    this.host = storeHost(this.service, ns);

    if (m.backup.enabled) {
      createBackup(this, {
        cfg,
        name: "mongo",
        store: m,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        env: [
          { name: "MONGO_HOST", value: this.service },
          secretEnv("MONGO_DB", secret, "MONGO_INITDB_DATABASE"),
          secretEnv("MONGO_USER", secret, "MONGO_APP_USERNAME"),
          secretEnv("MONGO_PASSWORD", secret, "MONGO_APP_PASSWORD"),
        ],
        dump:
          `mongodump --host="$MONGO_HOST" --port=${PORTS.mongo.mongo} --username="$MONGO_USER" --password="$MONGO_PASSWORD" ` +
          '--authenticationDatabase="$MONGO_DB" --db="$MONGO_DB" --gzip --archive="$OUT"',
        extension: "archive.gz",
      });
      args.graph.connect("mongo-backup", "mongo", [PORTS.mongo.mongo], "scheduled mongodump");
    }
    this.registerOutputs({ host: this.host });
  }
}
