// Patroni for the Postgres StatefulSet: the rendered patroni.yml (Kubernetes API as DCS, the
// leader's address kept by Patroni in the `postgres` Service's Endpoints), the dynamic cluster
// settings, and the small scripts the pod runs (first bootstrap, restore, hand-over before stop,
// keeping the cluster equal to the config). Pure functions of the config; components/data/postgres.ts
// builds the objects. Everything renders for Patroni 3.0 and 4.x alike (docs/data.md).
import type { ObjectStoreConfig } from "../../config/backups";
import type { PostgresConfig } from "../../config/postgres";
import { postgresTuning } from "../../config/data";
import { PORTS } from "../lib/ports";
import { toYaml } from "../lib/yaml";
import { STANZA, archiveCommand, restoreCommand, sourceOptions } from "./pgbackrest";

/** Cluster name (Patroni's scope): the StatefulSet's name, so the leader's Endpoints are the client Service's. */
export const SCOPE = "postgres";
export const PATRONI_DIR = "/etc/patroni";
export const PATRONI_YML = `${PATRONI_DIR}/patroni.yml`;
export const PATRONI_DATA_MOUNT = "/pgdata";
/** A subdirectory of the volume: a single-pod stack's old data directory (pgdata/) stays untouched beside it. */
export const PATRONI_DATA_DIR = `${PATRONI_DATA_MOUNT}/patroni`;
export const SOCKET_DIR = "/var/run/postgresql";
export const CREDENTIALS_DIR = "/etc/postgres-credentials";
export const REPLICATION_USER = "replicator";
export const PATRONI_API_USER = "patroni";
/** Pod label Patroni keeps on each member ("replica" on replicas): the replicas Service selects on it. */
export const ROLE_LABEL = "role";
/** Where a pod's API token is mounted (the path Patroni's in-cluster client reads). */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export const SCRIPT_FILES = {
  postBootstrap: "post-bootstrap.sh",
  restore: "restore.py",
  preStop: "pre-stop.py",
  sync: "patroni-sync.py",
} as const;

export interface PatroniContext {
  pg: PostgresConfig;
  /** backups.objectStore, when archiving or a restore uses it. */
  store?: ObjectStoreConfig;
  /** Pod labels Patroni finds the members by, besides its scope label. */
  instanceLabels: Record<string, string>;
  scopeLabel: string;
}

/**
 * The cluster-wide settings Patroni keeps in its DCS. Applied by bootstrap.dcs on a new cluster,
 * and by the patroni-sync sidecar on an existing one (bootstrap.dcs is read only once).
 */
export function dynamicConfig(c: PatroniContext): Record<string, unknown> {
  const { pg } = c;
  return {
    ttl: pg.patroni.ttl,
    loop_wait: pg.patroni.loopWait,
    retry_timeout: pg.patroni.retryTimeout,
    maximum_lag_on_failover: pg.patroni.maximumLagOnFailover,
    // One synchronous standby; Patroni names it and promotes only it while it is synchronous.
    synchronous_mode: pg.synchronous !== "off",
    synchronous_mode_strict: pg.synchronous === "strict",
    synchronous_node_count: 1,
    postgresql: {
      use_pg_rewind: true,
      use_slots: true,
      parameters: {
        max_connections: pg.settings.maxConnections,
        wal_level: "replica",
        hot_standby: "on",
        max_wal_senders: 10,
        max_replication_slots: 10,
        wal_keep_size: "1GB",
        // pg_rewind needs hint bits in WAL (data checksums are on too).
        wal_log_hints: "on",
        // Always on, so turning archiving on later is a reload, never a restart; off means "drop".
        archive_mode: "on",
        archive_command: pg.archive.enabled ? archiveCommand() : "/bin/true",
        archive_timeout: pg.archive.archiveTimeoutSeconds,
      },
    },
  };
}

/** pg_hba: the pod's socket is trusted (only containers of the pod share it); everything over TCP needs a password. */
export const PG_HBA = [
  "local all all trust",
  `host replication ${REPLICATION_USER} 0.0.0.0/0 scram-sha-256`,
  `host replication ${REPLICATION_USER} ::/0 scram-sha-256`,
  "host all all 0.0.0.0/0 scram-sha-256",
  "host all all ::/0 scram-sha-256",
];

/** An ISO 8601 time as recovery_target_time accepts it: Postgres refuses the "Z" zone there (it wants +00). */
export function postgresTime(iso: string): string {
  return iso.replace(/Z$/, "+00:00");
}

/** The restore bootstrap (postgres.restore): pgBackRest restores the newest fitting backup, Postgres replays WAL to the target and promotes. */
function restoreBootstrap(c: PatroniContext): Record<string, unknown> {
  const { pg, store } = c;
  if (!pg.restore || !store) return {};
  return {
    method: "pgbackrest",
    pgbackrest: {
      command: `python3 ${PATRONI_DIR}/${SCRIPT_FILES.restore}`,
      no_params: true,
      keep_existing_recovery_conf: false,
      recovery_conf: {
        restore_command: restoreCommand(pg, store, true),
        recovery_target_timeline: "latest",
        recovery_target_action: "promote",
        ...(pg.restore.targetTime ? { recovery_target_time: postgresTime(pg.restore.targetTime) } : {}),
      },
    },
  };
}

/**
 * The node-local part of patroni.yml (everything but bootstrap): name, addresses, credentials and
 * the Kubernetes namespace come from the environment (PATRONI_* variables), so one file serves
 * every member and no secret is in it.
 */
export function localConfig(c: PatroniContext): Record<string, unknown> {
  const { pg, store } = c;
  // max_connections is cluster-wide (dynamic); the memory settings are each member's.
  const local = Object.fromEntries(Object.entries(postgresTuning(pg.resources.limits.memory, pg.settings.maxConnections)).filter(([k]) => k !== "max_connections"));
  return {
    scope: SCOPE,
    restapi: { listen: `0.0.0.0:${PORTS.postgres.patroni}` },
    kubernetes: {
      labels: c.instanceLabels,
      scope_label: c.scopeLabel,
      role_label: ROLE_LABEL,
      // The leader lock is the Endpoints object of the client Service: its address is the leader's, atomically.
      use_endpoints: true,
      ports: [{ name: "postgres", port: PORTS.postgres.sql }],
    },
    postgresql: {
      listen: `0.0.0.0:${PORTS.postgres.sql}`,
      data_dir: PATRONI_DATA_DIR,
      pgpass: "/tmp/pgpass",
      use_unix_socket: true,
      parameters: {
        ...local,
        unix_socket_directories: SOCKET_DIR,
        password_encryption: "scram-sha-256",
        logging_collector: "off",
      },
      pg_hba: PG_HBA,
      create_replica_methods: ["basebackup"],
      basebackup: [{ checkpoint: "fast" }],
      // A former leader rejoins: pg_rewind first, a fresh copy from the leader if that fails.
      remove_data_directory_on_rewind_failure: true,
      remove_data_directory_on_diverged_timelines: true,
      ...(pg.archive.enabled && store ? { recovery_conf: { restore_command: restoreCommand(pg, store) } } : {}),
    },
    watchdog: { mode: "off" },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
}

/** patroni.yml: the local settings plus the bootstrap of a new cluster (initdb, or a restore). */
export function patroniYml(c: PatroniContext): string {
  const config = {
    ...localConfig(c),
    bootstrap: {
      dcs: dynamicConfig(c),
      initdb: [{ encoding: "UTF8" }, { locale: "C.UTF-8" }, "data-checksums"],
      ...restoreBootstrap(c),
      post_bootstrap: `${PATRONI_DIR}/${SCRIPT_FILES.postBootstrap}`,
    },
  };
  return toYaml(config, "Patroni configuration rendered by the platform program (components/data/patroni.ts).\nName, addresses, credentials and the namespace come from PATRONI_* variables.");
}

/**
 * Runs once, on the first leader, after initdb or a restore (Patroni's post_bootstrap), with a
 * superuser connection string as $1. The application gets its own role owning its database;
 * psql variables quote the values. Idempotent: after a restore the role and database exist.
 * The pgBackRest stanza is created here too, so the first WAL segments archive at once; a
 * failure is not fatal (the sidecar retries), because the new cluster must not wait for the store.
 */
export function postBootstrapScript(c: PatroniContext): string {
  return `#!/bin/sh
set -eu
psql -X -q -v ON_ERROR_STOP=1 -d "$1" \\
  -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" -v app_db="$POSTGRES_DB" <<'EOSQL'
SELECT format('CREATE ROLE %I LOGIN', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \\gexec
ALTER ROLE :"app_user" LOGIN PASSWORD :'app_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'app_db') \\gexec
ALTER DATABASE :"app_db" OWNER TO :"app_user";
\\c :"app_db"
ALTER SCHEMA public OWNER TO :"app_user";
EOSQL
echo "post-bootstrap: role and database $POSTGRES_DB ready"
${c.pg.archive.enabled ? `pgbackrest --stanza=${STANZA} stanza-create || echo "post-bootstrap: stanza-create failed; patroni-sync retries" >&2` : "# WAL archiving is off: no pgBackRest stanza."}
`;
}

/**
 * The restore bootstrap's command: the newest backup that ended before the target (or the newest),
 * restored into the empty data directory. pgBackRest writes no recovery settings (--type=none):
 * Patroni's recovery_conf does, and removes them once the cluster is promoted, so no replica
 * created later inherits a recovery target.
 */
export function restoreScript(c: PatroniContext): string {
  const { pg, store } = c;
  const source = (store ? sourceOptions(pg, store) : "").trim();
  const target = pg.restore?.targetTime;
  return `"""Patroni's restore bootstrap (postgres.restore), components/data/patroni.ts."""
import json
import os
import subprocess
import sys

STANZA = ["--stanza=${STANZA}"${source ? `, "${source}"` : ""}]
DATA = "${PATRONI_DATA_DIR}"
# recovery_target_time ${target ? JSON.stringify(target) : "(none: the end of the archive)"}, as seconds since the epoch
TARGET = ${target ? Date.parse(target.replace(" ", "T")) / 1000 : "None"}

info = json.loads(subprocess.run(["pgbackrest", *STANZA, "--output=json", "info"], capture_output=True, text=True, check=True).stdout)
backups = [b for stanza in info for b in stanza.get("backup", [])]
fitting = [b for b in backups if TARGET is None or b["timestamp"]["stop"] < TARGET]
if not fitting:
    sys.exit("restore: no backup in the repository ends before the target (%d backups)" % len(backups))
label = sorted(fitting, key=lambda b: b["timestamp"]["stop"])[-1]["label"]
print("restore: backup set %s" % label, flush=True)
os.makedirs(DATA, mode=0o700, exist_ok=True)
os.execvp("pgbackrest", ["pgbackrest", *STANZA, "--pg1-path=" + DATA, "--set=" + label, "--type=none", "restore"])
`;
}

/**
 * preStop of the Postgres container. A leader that is about to stop (rolling update, drain,
 * scale-down) hands over first: a switchover to a healthy replica (the synchronous one in
 * synchronous mode, Patroni's choice) costs a second of writes, where stopping would cost a
 * failover after the lock expires. A replica, or a leader without a healthy replica, just stops.
 */
export const PRE_STOP_PY = `"""preStop of a Postgres member: a leader switches over before it stops (components/data/patroni.ts)."""
import base64
import json
import os
import sys
import time
import urllib.request

REST = "http://127.0.0.1:${PORTS.postgres.patroni}"
DEADLINE = time.monotonic() + int(os.environ.get("SWITCHOVER_SECONDS", "60"))


def call(path, body=None):
    req = urllib.request.Request(REST + path, data=None if body is None else json.dumps(body).encode(), method="GET" if body is None else "POST")
    if body is not None:
        user = os.environ["PATRONI_RESTAPI_USERNAME"]
        token = base64.b64encode(("%s:%s" % (user, os.environ["PATRONI_RESTAPI_PASSWORD"])).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=max(1, DEADLINE - time.monotonic())) as r:
        return r.status, r.read().decode()


def main():
    try:
        me = json.loads(call("/patroni")[1])
    except Exception as e:
        print("pre-stop: patroni does not answer (%s): stopping" % e, flush=True)
        return 0
    if me.get("role") not in ("master", "primary"):
        return 0
    # The pod's name, which Patroni uses as the member's (older Patroni does not report it on /patroni).
    name = os.environ.get("PATRONI_NAME") or me.get("patroni", {}).get("name")
    members = json.loads(call("/cluster")[1]).get("members", [])
    healthy = [m["name"] for m in members if m["name"] != name and m.get("role") in ("replica", "sync_standby") and m.get("state") in ("running", "streaming")]
    if not healthy:
        print("pre-stop: leader %s has no healthy replica: stopping without a switchover" % name, flush=True)
        return 0
    while True:
        try:
            status, text = call("/switchover", {"leader": name})
            print("pre-stop: switchover from %s: %s %s" % (name, status, text.strip()), flush=True)
            break
        except urllib.error.HTTPError as e:
            reason = e.read().decode().strip()
            # 412: not possible yet, e.g. a replica that has just restarted is not the synchronous standby yet.
            if e.code == 412 and time.monotonic() + 2 < DEADLINE:
                print("pre-stop: switchover not possible yet (%s); retrying" % reason, flush=True)
                time.sleep(2)
                continue
            print("pre-stop: switchover from %s failed (%s %s): stopping" % (name, e.code, reason), flush=True)
            return 0
        except Exception as e:
            print("pre-stop: switchover from %s failed (%s): stopping" % (name, e), flush=True)
            return 0
    while time.monotonic() < DEADLINE:
        try:
            if json.loads(call("/patroni")[1]).get("role") not in ("master", "primary"):
                return 0
        except Exception:
            pass
        time.sleep(0.5)
    return 0


sys.exit(main())
`;

/**
 * The patroni-sync sidecar. On the leader only, every few seconds: the cluster's dynamic settings
 * equal the rendered ones (PATCH /config when they differ: bootstrap.dcs is read only when a
 * cluster is created), the role passwords equal the Secret (read from its volume, which the kubelet
 * refreshes, so a rotation reaches the running leader before the restarted replicas need it), and
 * the pgBackRest stanza exists (once per leadership). Passwords travel as psql variables over the
 * pod-local socket and only for roles that exist, so no failing statement logs one.
 */
export function syncScript(c: PatroniContext): string {
  return `"""patroni-sync: keeps a running Patroni cluster equal to the config (components/data/patroni.ts)."""
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

REST = "http://127.0.0.1:${PORTS.postgres.patroni}"
DYNAMIC = "${PATRONI_DIR}/dynamic.json"
CREDENTIALS = "${CREDENTIALS_DIR}"
INTERVAL = float(os.environ.get("SYNC_INTERVAL_SECONDS", "10"))
ARCHIVE = ${c.pg.archive.enabled ? "True" : "False"}

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def log(msg):
    print("patroni-sync: " + msg, flush=True)


def rest(path, body=None, method="GET"):
    req = urllib.request.Request(REST + path, data=None if body is None else json.dumps(body).encode(), method=method)
    if method != "GET":
        user = os.environ["PATRONI_RESTAPI_USERNAME"]
        token = base64.b64encode(("%s:%s" % (user, os.environ["PATRONI_RESTAPI_PASSWORD"])).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read().decode() or "null")


def same(want, have):
    if isinstance(want, dict):
        return isinstance(have, dict) and all(same(v, have.get(k)) for k, v in want.items())
    return str(want).lower() == str(have).lower()


def secret(key):
    with open(os.path.join(CREDENTIALS, key)) as f:
        return f.read()


def psql(sql, variables):
    args = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "${SOCKET_DIR}", "-U", secret("POSTGRES_USER"), "-d", "postgres"]
    for k, v in variables.items():
        args += ["-v", "%s=%s" % (k, v)]
    return subprocess.run(args, input=sql, capture_output=True, text=True, check=True).stdout.strip()


def sync_config():
    with open(DYNAMIC) as f:
        want = json.load(f)
    have = rest("/config")
    drift = sorted(k for k, v in want.items() if not same(v, have.get(k)))
    if drift:
        rest("/config", want, "PATCH")
        log("dynamic configuration applied (%s)" % ", ".join(drift))


applied = None


def sync_passwords():
    global applied
    roles = [("POSTGRES_USER", "POSTGRES_PASSWORD"), ("REPLICATION_USER", "REPLICATION_PASSWORD"), ("APP_DB_USER", "APP_DB_PASSWORD")]
    values = [(secret(u), secret(p)) for u, p in roles]
    digest = hashlib.sha256(json.dumps(values).encode()).hexdigest()
    if digest == applied:
        return
    for user, password in values:
        if psql("SELECT count(*) FROM pg_roles WHERE rolname = :'u';", {"u": user}) == "1":
            psql('ALTER ROLE :"u" PASSWORD :\\'p\\';', {"u": user, "p": password})
    applied = digest
    log("role passwords match the Secret")


stanza = False


def sync_stanza():
    global stanza
    if not ARCHIVE or stanza:
        return
    r = subprocess.run(["pgbackrest", "--stanza=${STANZA}", "stanza-create"], capture_output=True, text=True)
    if r.returncode == 0:
        stanza = True
        log("pgBackRest stanza ${STANZA} is ready")
    else:
        log("stanza-create failed (%d): %s" % (r.returncode, (r.stdout + r.stderr).strip()[-300:]))


while True:
    try:
        me = rest("/patroni")
        if me.get("role") in ("master", "primary") and me.get("state") == "running":
            sync_config()
            sync_passwords()
            sync_stanza()
        else:
            applied, stanza = None, False
    except Exception as e:
        log("not synced this round: %s" % str(e)[-300:])
    time.sleep(INTERVAL)
`;
}
