// MongoDB (seed 002) as a replica set: authorization on, members authenticating each other with a
// generated keyfile, root user from MONGO_INITDB_ROOT_*, the application user created by an init
// script from MONGO_APP_*, mongosh ping probes, WiredTiger cache sized from the container limit,
// optional mongodb_exporter and a nightly `mongodump --oplog` from a secondary. A sidecar in
// every member initiates the set on first boot and adds members as the StatefulSet grows.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import { MONGO_MAX_MEMBERS, REPLSET_SIDECAR_RESOURCES, mongoCacheSizeGB } from "../../config/data";
import type { PlatformConfig } from "../../config/schema";
import { labels } from "../lib/labels";
import { checksum, execProbe, restrictedContainer, secretEnv, startupProbe } from "../lib/pod";
import { PORTS, memberHost } from "../lib/ports";
import { createBackup } from "./backup";
import type { StoreComponentArgs } from "./common";
import { StoreComponent, requireKeys } from "./common";
import { createStore, scratch } from "./store";

/**
 * Runs once on an empty data directory (docker-entrypoint-initdb.d), authenticated as root, with
 * `db` = MONGO_INITDB_DATABASE. The application user lives in (and authenticates against) the
 * application database and can only read and write it. The image's entrypoint runs this on a
 * temporary mongod without --replSet and --keyFile; a member that joins an existing set later
 * replaces this data with the primary's in its initial sync.
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

/** Where the keyfile is read from (an in-memory copy owned by the mongodb user, mode 0400). */
export const KEYFILE_PATH = "/etc/mongo-keyfile/keyfile";
export const REPLSET_SCRIPT_DIR = "/etc/mongo-replset";

/** `host:port` of every member the set has for the configured replicas. */
export function mongoMembers(cfg: PlatformConfig): string[] {
  return Array.from({ length: cfg.mongo.replicas }, (_, i) => `${memberHost("mongo", i, cfg.platform.namespace)}:${PORTS.mongo.mongo}`);
}

/**
 * The replica-set sidecar (mongosh --nodb): every interval it looks at the local member and, when
 * needed, at the others, and takes at most one step:
 *
 * - member 0, no set configuration, and no other member belongs to a set: replSetInitiate with
 *   itself (a first boot; a member 0 whose volume was replaced waits to be re-synced instead);
 * - the primary: adds the first reachable candidate member that is not in the configuration yet
 *   (replSetReconfig, one voting member at a time as MongoDB requires), so scaling up needs nothing;
 * - anything else: waits. Members are never removed automatically (docs/data.md, scaling down).
 *
 * Candidates are `mongo-<i>.mongo-headless...` for every ordinal a set may have; one that does not
 * exist does not resolve and is skipped, so the replica count is not baked into the pods.
 * decide() is a pure function of what was observed (unit-tested with the rendered script).
 */
export function replsetScript(cfg: PlatformConfig, intervalMs = 10_000): string {
  const ns = cfg.platform.namespace;
  const port = PORTS.mongo.mongo;
  const candidates = Array.from({ length: MONGO_MAX_MEMBERS }, (_, i) => `${memberHost("mongo", i, ns)}:${port}`);
  return `// Rendered by components/data/mongo.ts; run by \`mongosh --nodb --quiet\` in the replset sidecar.
const SET = ${JSON.stringify(cfg.mongo.settings.replicaSetName)};
const CANDIDATES = ${JSON.stringify(candidates)};
const POD = process.env.POD_NAME;
const ORDINAL = Number(POD.slice(POD.lastIndexOf("-") + 1));
const SELF = CANDIDATES[ORDINAL];
const INTERVAL_MS = ${intervalMs};
const TIMEOUTS = "serverSelectionTimeoutMS=3000&connectTimeoutMS=3000&socketTimeoutMS=10000";

function wait(why) { return { kind: "wait", why: why }; }
const lower = (h) => String(h).toLowerCase();

// What to do, from what was observed (pure).
function decide(s) {
  if (!s.local.reachable) return wait("the local mongod does not answer yet: " + s.local.error);
  if (s.local.status === "standalone") return wait("the local mongod runs without --replSet (first-boot initialisation)");
  if (s.local.status === "uninitialized") {
    if (s.ordinal !== 0) return wait("not in the set yet: the primary adds this member");
    const other = s.peers.find((p) => p.reachable && p.setName);
    if (other) return wait(other.host + " belongs to replica set " + other.setName + ": the primary re-adds this member");
    return { kind: "initiate", host: s.self };
  }
  if (s.local.status !== "member") return wait("unexpected replica set status: " + s.local.error);
  if (!s.local.primary) return { kind: "ok", why: "member, not the primary" };
  const known = new Set(s.local.members.map(lower));
  const missing = s.peers.filter((p) => p.reachable && (!p.setName || p.setName === SET) && !known.has(lower(p.host)));
  if (missing.length) return { kind: "add", host: missing[0].host };
  return { kind: "ok", why: "primary; every reachable member is in the set" };
}

// mongosh throws on a failed command (the legacy shell returned ok: 0): both become a document.
function command(conn, cmd) {
  try {
    return conn.getDB("admin").runCommand(cmd);
  } catch (e) {
    return { ok: 0, code: e.code, codeName: e.codeName, errmsg: e.message };
  }
}

// Every round opens its connections and closes them again (a sidecar that never closes leaks one per round).
function close(conn) {
  try {
    if (conn) conn.close();
  } catch (e) {
    // already gone
  }
}

function connect(host, credentials) {
  const auth = credentials ? encodeURIComponent(process.env.MONGO_INITDB_ROOT_USERNAME) + ":" + encodeURIComponent(process.env.MONGO_INITDB_ROOT_PASSWORD) + "@" : "";
  return new Mongo("mongodb://" + auth + host + "/admin?authSource=admin&directConnection=true&" + TIMEOUTS);
}

function observeLocal() {
  let conn;
  try {
    conn = connect("127.0.0.1:${port}", true);
  } catch (e) {
    return { reachable: false, error: e.message };
  }
  const status = command(conn, { replSetGetStatus: 1 });
  if (status.ok) {
    const config = command(conn, { replSetGetConfig: 1 });
    if (!config.ok) return { reachable: true, status: "unknown", error: config.errmsg, conn: conn };
    return { reachable: true, status: "member", primary: status.myState === 1, members: config.config.members.map((m) => m.host), config: config.config, conn: conn };
  }
  if (status.code === 94) return { reachable: true, status: "uninitialized", conn: conn };
  if (status.code === 76) return { reachable: true, status: "standalone", conn: conn };
  return { reachable: status.code !== 18 && status.code !== 13, status: "unknown", error: status.errmsg, conn: conn };
}

function observePeer(host) {
  let conn;
  try {
    conn = connect(host, false);
    const hello = command(conn, { hello: 1 });
    return hello.ok ? { host: host, reachable: true, setName: hello.setName } : { host: host, reachable: false };
  } catch (e) {
    return { host: host, reachable: false };
  } finally {
    close(conn);
  }
}

function observe() {
  const local = observeLocal();
  const needPeers = local.reachable && ((local.status === "uninitialized" && ORDINAL === 0) || (local.status === "member" && local.primary));
  const peers = needPeers ? CANDIDATES.filter((h) => h !== SELF).map(observePeer) : [];
  return { self: SELF, ordinal: ORDINAL, local: local, peers: peers };
}

function act(s, action) {
  if (action.kind === "initiate") {
    const r = command(s.local.conn, { replSetInitiate: { _id: SET, members: [{ _id: 0, host: action.host }] } });
    print(r.ok ? "initiated replica set " + SET + " with " + action.host : "replSetInitiate failed: " + r.errmsg);
  } else if (action.kind === "add") {
    const config = s.local.config;
    const id = Math.max.apply(null, config.members.map((m) => m._id)) + 1;
    const next = Object.assign({}, config, { version: config.version + 1, members: config.members.concat([{ _id: id, host: action.host }]) });
    const r = command(s.local.conn, { replSetReconfig: next });
    print(r.ok ? "added " + action.host + " to " + SET + " as member " + id : "adding " + action.host + " failed: " + r.errmsg);
  }
}

let last = "";
for (;;) {
  let s;
  try {
    s = observe();
    const action = decide(s);
    const line = action.kind + ": " + (action.why || action.host);
    if (line !== last) print(line);
    last = line;
    act(s, action);
  } catch (e) {
    print("replset check failed: " + e.message);
  } finally {
    if (s) close(s.local.conn);
  }
  sleep(INTERVAL_MS);
}
`;
}

/** mongodump of every database with the oplog slice taken meanwhile, from a secondary when there is one. */
export function mongoBackupDump(): string {
  return (
    `mongodump --host="$MONGO_HOST" --readPreference=secondaryPreferred --username="$MONGO_USER" --password="$MONGO_PASSWORD" ` +
    '--authenticationDatabase=admin --oplog --gzip --archive="$OUT"'
  );
}

export class Mongo extends StoreComponent {
  readonly port = PORTS.mongo.mongo;

  constructor(name: string, args: StoreComponentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Mongo", name, {}, opts);
    const cfg = args.config;
    const m = cfg.mongo;
    const ns = args.namespace;
    const secret = args.credentials.name;
    requireKeys(args.credentials, [...CREDENTIAL_KEYS, "MONGO_KEYFILE"]);

    const init = new k8s.core.v1.ConfigMap(
      "mongo-init",
      { metadata: { name: "mongo-init", namespace: ns, labels: labels(cfg, { name: "mongo", component: "database" }) }, data: { "10-app-user.js": MONGO_INIT_SCRIPT } },
      { parent: this },
    );
    const replset = new k8s.core.v1.ConfigMap(
      "mongo-replset",
      { metadata: { name: "mongo-replset", namespace: ns, labels: labels(cfg, { name: "mongo", component: "database" }) }, data: { "replset.js": replsetScript(cfg) } },
      { parent: this },
    );
    // mongosh starts a Node.js runtime: give it time, and probe less often than the other stores.
    const ping = execProbe(MONGO_PING, { periodSeconds: 10, timeoutSeconds: 10 });
    const tmp = scratch("tmp", "/tmp");
    const configdb = scratch("configdb", "/data/configdb", "16Mi");
    const keyDir = KEYFILE_PATH.slice(0, KEYFILE_PATH.lastIndexOf("/"));
    const rootCredentials = [secretEnv("MONGO_INITDB_ROOT_USERNAME", secret, "MONGO_INITDB_ROOT_USERNAME"), secretEnv("MONGO_INITDB_ROOT_PASSWORD", secret, "MONGO_INITDB_ROOT_PASSWORD")];

    const store = createStore(this, {
      cfg,
      name: "mongo",
      component: "database",
      store: m,
      namespace: ns,
      serviceAccount: args.serviceAccount("mongo"),
      port: { name: "mongo", number: PORTS.mongo.mongo },
      initContainers: [
        {
          // mongod refuses a keyfile readable by others; a Secret volume with fsGroup is 0440, so a
          // copy owned by the mongodb user with 0400 goes into an in-memory volume.
          name: "keyfile",
          image: m.image,
          command: ["sh", "-c", `cp /keyfile-secret/keyfile ${KEYFILE_PATH} && chmod 0400 ${KEYFILE_PATH}`],
          resources: REPLSET_SIDECAR_RESOURCES,
          securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
          volumeMounts: [
            { name: "keyfile-secret", mountPath: "/keyfile-secret", readOnly: true },
            { name: "keyfile", mountPath: keyDir },
          ],
        },
      ],
      container: {
        // The entrypoint prepends `mongod` to arguments starting with '-' (and leaves --replSet and
        // --keyFile out of its first-boot initialisation run).
        args: ["--replSet", m.settings.replicaSetName, "--keyFile", KEYFILE_PATH, "--auth", "--bind_ip_all", "--wiredTigerCacheSizeGB", String(mongoCacheSizeGB(m))],
        env: [
          ...CREDENTIAL_KEYS.map((k) => secretEnv(k, secret, k)),
          // mongosh (probes, init) keeps history under $HOME; the root filesystem is read-only.
          { name: "HOME", value: "/tmp" },
        ],
        readinessProbe: ping,
        livenessProbe: { ...ping, periodSeconds: 20, failureThreshold: 6 },
        // Journal recovery after an unclean stop can take a while on a large volume.
        startupProbe: startupProbe(ping, 600, 10),
        volumeMounts: [{ name: "init", mountPath: "/docker-entrypoint-initdb.d", readOnly: true }, tmp.mount, configdb.mount, { name: "keyfile", mountPath: keyDir, readOnly: true }],
      },
      sidecars: [
        {
          name: "replset",
          image: m.image,
          command: ["mongosh", "--nodb", "--quiet", "--norc", `${REPLSET_SCRIPT_DIR}/replset.js`],
          env: [...rootCredentials, { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }, { name: "HOME", value: "/tmp" }],
          resources: REPLSET_SIDECAR_RESOURCES,
          securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
          volumeMounts: [{ name: "replset", mountPath: REPLSET_SCRIPT_DIR, readOnly: true }, tmp.mount],
        },
      ],
      dataMountPath: "/data/db",
      volumes: [
        { name: "init", configMap: { name: init.metadata.name } },
        { name: "replset", configMap: { name: replset.metadata.name } },
        { name: "keyfile-secret", secret: { secretName: secret, items: [{ key: "MONGO_KEYFILE", path: "keyfile" }], defaultMode: 0o400 } },
        { name: "keyfile", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
        tmp.volume,
        configdb.volume,
      ],
      exporter: {
        env: [secretEnv("MONGODB_USER", secret, "MONGO_INITDB_ROOT_USERNAME"), secretEnv("MONGODB_PASSWORD", secret, "MONGO_INITDB_ROOT_PASSWORD")],
        // $(VAR) is expanded by Kubernetes from the Secret-backed env; it stays inside the pod.
        args: [
          `--mongodb.uri=mongodb://$(MONGODB_USER):$(MONGODB_PASSWORD)@127.0.0.1:${PORTS.mongo.mongo}/admin`,
          `--web.listen-address=:${PORTS.mongo.metrics}`,
          "--compatible-mode",
          // The replica-set metrics the alerts read (mongodb_mongod_replset_*) come from these two.
          "--collector.diagnosticdata",
          "--collector.replicasetstatus",
        ],
      },
      credentialsChecksum: args.credentialsChecksum,
      terminationGracePeriodSeconds: 60,
      // The sidecar reads its script at start only.
      annotations: { "checksum/replset": checksum(replsetScript(cfg)) },
    });
    this.servedBy(store.service, ns);
    if (m.replicas > 1) args.graph.connect("mongo", "mongo", [PORTS.mongo.mongo], "replication, heartbeats and elections between members");

    if (m.backup.enabled) {
      createBackup(this, {
        cfg,
        name: "mongo",
        store: m,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        env: [
          // <set>/<seed list>: mongodump finds the set's members and reads from a secondary.
          { name: "MONGO_HOST", value: `${m.settings.replicaSetName}/${mongoMembers(cfg).join(",")}` },
          // --oplog dumps every database and the oplog slice written meanwhile: that takes the backup role, which root has.
          secretEnv("MONGO_USER", secret, "MONGO_INITDB_ROOT_USERNAME"),
          secretEnv("MONGO_PASSWORD", secret, "MONGO_INITDB_ROOT_PASSWORD"),
        ],
        dump: mongoBackupDump(),
        extension: "archive.gz",
        offsite: args.offsite,
        graph: args.graph,
      });
      args.graph.connect("mongo-backup", "mongo", [PORTS.mongo.mongo], "scheduled mongodump");
    }
    this.registerOutputs({ host: this.host });
  }
}
