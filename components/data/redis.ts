// Redis (seed 000): maxmemory with LRU eviction, AOF persistence, a generated password that
// never sits in a ConfigMap, authenticated probes (redis-cli reads REDISCLI_AUTH), optional
// redis_exporter and an RDB copy as backup. With `redis.sentinel.enabled` the StatefulSet runs
// one master, replicas and a Sentinel in every pod: a start script (rendered into the ConfigMap)
// asks the Sentinels which member is the master before Redis or Sentinel starts, so a restarted
// or replaced pod always follows the current master, and members announce their stable
// headless-Service hostnames instead of pod IPs that change on every restart.
import * as k8s from "@pulumi/kubernetes";
import type * as pulumi from "@pulumi/pulumi";
import type { PlatformConfig } from "../../config/schema";
import type { RedisConfig } from "../../config/data";
import { labels } from "../lib/labels";
import { checksum, execProbe, secretEnv, startupProbe, restrictedContainer } from "../lib/pod";
import { PORTS, memberHost, redisClientPorts } from "../lib/ports";
import { celeryQueues } from "../../config/workers";
import { createBackup } from "./backup";
import { REDIS_DB } from "./connections";
import type { StoreComponentArgs } from "./common";
import { StoreComponent, requireKeys } from "./common";
import { createStore, scratch } from "./store";

export const REDIS_CONF_PATH = "/etc/redis/redis.conf";
/** The ConfigMap's mount: redis.conf, sentinel.conf (static parts) and start.sh. */
export const REDIS_CONFIG_DIR = "/etc/redis";
/** Where start.sh writes the configuration each server and Sentinel really runs with (Sentinel rewrites its own). */
export const REDIS_RUN_DIR = "/run/redis";
export const SENTINEL_DIR = "/run/sentinel";
/** How often a Sentinel asks the master for INFO (its replica list); fixed in Redis. */
export const SENTINEL_INFO_PERIOD_SECONDS = 10;

/** redis.conf from config: no credential in it (the password comes from the Secret at start). */
export function redisConf(r: RedisConfig): string {
  return [
    "bind 0.0.0.0",
    `port ${PORTS.redis.redis}`,
    "dir /data",
    `maxmemory ${r.settings.maxmemory}`,
    `maxmemory-policy ${r.settings.maxmemoryPolicy}`,
    `appendonly ${r.settings.appendonly ? "yes" : "no"}`,
    "appendfsync everysec",
    // RDB snapshots as well: fast restarts, and the file a backup copy is made of.
    "save 3600 1 300 100 60 10000",
    ...(r.settings.minReplicasToWrite > 0
      ? [
          // Writes need an acknowledgement from this many replicas within the lag: a master cut off
          // from its replicas stops accepting writes that a failover elsewhere would discard.
          `min-replicas-to-write ${r.settings.minReplicasToWrite}`,
          `min-replicas-max-lag ${r.settings.minReplicasMaxLag}`,
        ]
      : []),
    "",
  ].join("\n");
}

/** The Sentinel settings that do not depend on the pod (start.sh adds the pod's own and the master's). */
export function sentinelConf(): string {
  return [
    `port ${PORTS.redis.sentinel}`,
    "dir /tmp",
    // Members are known by their headless-Service names, which survive restarts (pod IPs do not).
    "sentinel resolve-hostnames yes",
    "sentinel announce-hostnames yes",
    "",
  ].join("\n");
}

/** The members' stable names, in ordinal order (member 0 is the master of a first boot). */
export function redisMembers(cfg: PlatformConfig): string[] {
  return Array.from({ length: cfg.redis.replicas }, (_, i) => memberHost("redis", i, cfg.platform.namespace));
}

/**
 * start.sh <redis|sentinel>: finds the current master, then execs the server or Sentinel.
 *
 * The master is what another member's Sentinel says (get-master-addr-by-name), else the member
 * whose server says it is a master (ROLE), else, when nothing answers (a first boot, or every
 * pod restarted at once), member 0. Only the other members are asked: this pod's own Sentinel
 * starts together with it and knows nothing yet. A file `restore.rdb` in the data volume (docs/data.md)
 * is loaded instead of the data there, with AOF off until it is loaded.
 */
export function redisStartScript(cfg: PlatformConfig): string {
  const r = cfg.redis;
  const s = r.sentinel;
  const members = redisMembers(cfg);
  const self = `\${POD_NAME}.redis-headless.${cfg.platform.namespace}.svc.cluster.local`;
  return `#!/bin/sh
# Rendered by components/data/redis.ts. Usage: start.sh redis|sentinel
set -eu
MEMBERS="${members.join(" ")}"
SELF="${self}"
FIRST="${members[0]}"
MASTER_NAME="${s.masterName}"

# One question to another member, never waiting on a node that is gone.
sentinel_master() { REDISCLI_AUTH="$SENTINEL_PASSWORD" timeout 3 redis-cli --no-auth-warning -h "$1" -p ${PORTS.redis.sentinel} sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1; }
server_role() { REDISCLI_AUTH="$REDIS_PASSWORD" timeout 3 redis-cli --no-auth-warning -h "$1" -p ${PORTS.redis.redis} role 2>/dev/null | head -n 1; }

find_master() {
  for m in $MEMBERS; do
    [ "$m" = "$SELF" ] && continue
    answer=$(sentinel_master "$m") || true
    case "$answer" in
      "" | *" "* | ERR* | NOAUTH* | WRONGPASS* | "(nil)") ;;
      *) echo "$answer"; return 0 ;;
    esac
  done
  for m in $MEMBERS; do
    [ "$m" = "$SELF" ] && continue
    if [ "$(server_role "$m" || true)" = master ]; then echo "$m"; return 0; fi
  done
  return 1
}

if master=$(find_master); then
  echo "current master: $master"
else
  master="$FIRST"
  echo "no member knows a master (first boot, or all restarted): $FIRST is the master"
fi

case "\${1:-redis}" in
redis)
  conf="${REDIS_RUN_DIR}/redis.conf"
  cp ${REDIS_CONF_PATH} "$conf"
  echo "replica-announce-ip $SELF" >> "$conf"
  echo "replica-announce-port ${PORTS.redis.redis}" >> "$conf"
  if [ "$master" != "$SELF" ]; then
    echo "replicaof $master ${PORTS.redis.redis}" >> "$conf"
    echo "starting as a replica of $master"
  else
    echo "starting as the master"
  fi
  extra=""
  if [ -f /data/restore.rdb ]; then
    # A restore (docs/data.md): an existing AOF would win over the snapshot, so it goes, and AOF
    # stays off until the snapshot is loaded; then AOF is switched on, which rewrites it from the data.
    echo "restoring /data/restore.rdb"
    rm -rf /data/appendonlydir /data/appendonly.aof
    mv /data/restore.rdb /data/dump.rdb
    extra="--appendonly no"
${r.settings.appendonly ? `    (
      until [ "$(REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning -p ${PORTS.redis.redis} ping 2>/dev/null)" = PONG ]; do sleep 1; done
      REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli --no-auth-warning -p ${PORTS.redis.redis} config set appendonly yes && echo "restore loaded; AOF on again"
    ) &
` : ""}  fi
  # shellcheck disable=SC2086
  exec redis-server "$conf" --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD" $extra
  ;;
sentinel)
  conf="${SENTINEL_DIR}/sentinel.conf"
  {
    cat ${REDIS_CONFIG_DIR}/sentinel.conf
    echo "sentinel announce-ip $SELF"
    echo "sentinel announce-port ${PORTS.redis.sentinel}"
    echo "requirepass $SENTINEL_PASSWORD"
    echo "sentinel sentinel-pass $SENTINEL_PASSWORD"
    echo "sentinel monitor $MASTER_NAME $master ${PORTS.redis.redis} ${s.quorum}"
    echo "sentinel auth-pass $MASTER_NAME $REDIS_PASSWORD"
    echo "sentinel down-after-milliseconds $MASTER_NAME ${s.downAfterMilliseconds}"
    echo "sentinel failover-timeout $MASTER_NAME ${s.failoverTimeoutMilliseconds}"
    echo "sentinel parallel-syncs $MASTER_NAME 1"
  } > "$conf"
  exec redis-server "$conf" --sentinel
  ;;
*)
  echo "usage: start.sh redis|sentinel" >&2
  exit 2
  ;;
esac
`;
}

/**
 * The backup's source: a connected replica when there is one (its snapshot costs the master
 * nothing), else the master. Any member serves `--rdb` (a replica can feed replicas of its own).
 */
export function redisBackupDump(cfg: PlatformConfig): string {
  const port = PORTS.redis.redis;
  if (!cfg.redis.sentinel.enabled) return `redis-cli -h "$REDIS_HOST" -p ${port} --rdb "$OUT"`;
  return [
    "source=''",
    `for m in ${redisMembers(cfg).join(" ")}; do`,
    `  role=$(timeout 5 redis-cli --no-auth-warning -h "$m" -p ${port} role 2>/dev/null | tr '\\n' ' ') || true`,
    '  case "$role" in "slave "*" connected "*) source="$m"; break ;; "master "*) [ -n "$source" ] || source="$m" ;; esac',
    "done",
    '[ -n "$source" ] || { echo "no Redis member answered" >&2; exit 1; }',
    'echo "snapshot from $source"',
    `redis-cli -h "$source" -p ${port} --rdb "$OUT"`,
  ].join("\n");
}

const ping = "redis-cli -h 127.0.0.1 -p 6379 ping";

export class Redis extends StoreComponent {
  readonly port = PORTS.redis.redis;

  constructor(name: string, args: StoreComponentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Redis", name, {}, opts);
    const cfg = args.config;
    const r = cfg.redis;
    const sentinel = r.sentinel.enabled;
    const ns = args.namespace;
    const secret = args.credentials.name;
    requireKeys(args.credentials, sentinel ? ["REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"] : ["REDIS_PASSWORD"]);

    const files: Record<string, string> = { "redis.conf": redisConf(r), ...(sentinel ? { "sentinel.conf": sentinelConf(), "start.sh": redisStartScript(cfg) } : {}) };
    const configMap = new k8s.core.v1.ConfigMap(
      "redis-config",
      { metadata: { name: "redis-config", namespace: ns, labels: labels(cfg, { name: "redis", component: "cache" }) }, data: files },
      { parent: this },
    );
    // Readiness wants PONG; liveness also accepts LOADING, so a big AOF replay is not killed mid-way.
    const ready = execProbe(["sh", "-c", `${ping} | grep -q PONG`], { periodSeconds: 5, timeoutSeconds: 3 });
    const alive = execProbe(["sh", "-c", `${ping} | grep -Eq 'PONG|LOADING'`], { periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 6 });
    const tmp = scratch("tmp", "/tmp");
    const auth = [secretEnv("REDIS_PASSWORD", secret, "REDIS_PASSWORD"), secretEnv("REDISCLI_AUTH", secret, "REDIS_PASSWORD")];
    const podName = { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } };
    // In memory: Redis (CONFIG REWRITE) and Sentinel write the passwords into these files.
    const run = { volume: { name: "run", emptyDir: { medium: "Memory", sizeLimit: "4Mi" } }, mount: { name: "run", mountPath: REDIS_RUN_DIR } };
    const sentinelRun = { volume: { name: "sentinel", emptyDir: { medium: "Memory", sizeLimit: "4Mi" } }, mount: { name: "sentinel", mountPath: SENTINEL_DIR } };
    const configMount = { name: "config", mountPath: REDIS_CONFIG_DIR, readOnly: true };
    const sentinelPing = `redis-cli -h 127.0.0.1 -p ${PORTS.redis.sentinel} ping`;

    const store = createStore(this, {
      cfg,
      name: "redis",
      component: "cache",
      store: r,
      namespace: ns,
      serviceAccount: args.serviceAccount("redis"),
      port: { name: "redis", number: PORTS.redis.redis },
      ...(sentinel
        ? {
            // A Sentinel learns the replicas from the master's INFO, every 10 s. A member restarted by a
            // rolling update stays ready this long before the next one stops, so its Sentinel knows
            // every replica when that stop triggers a failover (else the promoted master may wait for
            // a replica that still follows the old one, refusing writes for want of replicas).
            minReadySeconds: SENTINEL_INFO_PERIOD_SECONDS + 5,
            headlessPorts: [{ name: "sentinel", number: PORTS.redis.sentinel }],
            clientPorts: [
              { name: "redis", number: PORTS.redis.redis },
              { name: "sentinel", number: PORTS.redis.sentinel },
            ],
          }
        : {}),
      container: sentinel
        ? {
            command: ["sh", `${REDIS_CONFIG_DIR}/start.sh`, "redis"],
            env: [...auth, secretEnv("SENTINEL_PASSWORD", secret, "REDIS_SENTINEL_PASSWORD"), podName],
            readinessProbe: ready,
            livenessProbe: alive,
            startupProbe: startupProbe(alive, 300),
            volumeMounts: [configMount, run.mount, tmp.mount],
          }
        : {
            // The image's entrypoint turns a leading *.conf argument into `redis-server <conf> ...`.
            // Kubernetes expands $(REDIS_PASSWORD) from the env below; the value never leaves the Secret.
            args: [REDIS_CONF_PATH, "--requirepass", "$(REDIS_PASSWORD)"],
            env: auth,
            readinessProbe: ready,
            livenessProbe: alive,
            startupProbe: startupProbe(alive, 300),
            volumeMounts: [configMount, tmp.mount],
          },
      sidecars: sentinel
        ? [
            {
              name: "sentinel",
              image: r.image,
              command: ["sh", `${REDIS_CONFIG_DIR}/start.sh`, "sentinel"],
              ports: [{ name: "sentinel", containerPort: PORTS.redis.sentinel, protocol: "TCP" }],
              env: [
                secretEnv("REDIS_PASSWORD", secret, "REDIS_PASSWORD"),
                secretEnv("SENTINEL_PASSWORD", secret, "REDIS_SENTINEL_PASSWORD"),
                secretEnv("REDISCLI_AUTH", secret, "REDIS_SENTINEL_PASSWORD"),
                podName,
              ],
              resources: r.sentinel.resources,
              securityContext: restrictedContainer({ readOnlyRootFilesystem: true }),
              readinessProbe: execProbe(["sh", "-c", `${sentinelPing} | grep -q PONG`], { periodSeconds: 5, timeoutSeconds: 3 }),
              livenessProbe: execProbe(["sh", "-c", `${sentinelPing} | grep -q PONG`], { periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 6 }),
              volumeMounts: [configMount, sentinelRun.mount, tmp.mount],
            },
          ]
        : [],
      dataMountPath: "/data",
      volumes: [{ name: "config", configMap: { name: configMap.metadata.name } }, tmp.volume, ...(sentinel ? [run.volume, sentinelRun.volume] : [])],
      exporter: {
        env: [
          { name: "REDIS_ADDR", value: `redis://127.0.0.1:${PORTS.redis.redis}` },
          secretEnv("REDIS_PASSWORD", secret, "REDIS_PASSWORD"),
          { name: "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", value: `:${PORTS.redis.metrics}` },
          // Export the length of each Celery queue (a list in the broker DB): the backlog alert reads redis_key_size.
          ...(celeryQueues(cfg).length ? [{ name: "REDIS_EXPORTER_CHECK_SINGLE_KEYS", value: celeryQueues(cfg).map((q) => `db${REDIS_DB.broker}=${q}`).join(",") }] : []),
        ],
      },
      credentialsChecksum: args.credentialsChecksum,
      terminationGracePeriodSeconds: 30,
      // redis.conf and the start script are read at start only: a change must roll the pods.
      annotations: { "checksum/config": checksum(files) },
    });
    this.servedBy(store.service, ns);

    if (sentinel) {
      // Replication and the Sentinels' own traffic (hello messages, votes, monitoring) between members.
      args.graph.connect("redis", "redis", [PORTS.redis.redis, PORTS.redis.sentinel], "replication and Sentinel between members");
    }
    if (r.backup.enabled) {
      createBackup(this, {
        cfg,
        name: "redis",
        store: r,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        env: [{ name: "REDIS_HOST", value: this.service }, secretEnv("REDISCLI_AUTH", secret, "REDIS_PASSWORD")],
        // --rdb asks the server for a fresh snapshot over the replication protocol.
        dump: redisBackupDump(cfg),
        extension: "rdb",
        offsite: args.offsite,
        graph: args.graph,
      });
      args.graph.connect("redis-backup", "redis", redisClientPorts(r).slice(0, 1), "scheduled RDB copy");
    }
    this.registerOutputs({ host: this.host });
  }
}
