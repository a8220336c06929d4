// Redis (seed 000): maxmemory with LRU eviction, AOF persistence, a generated password that
// never sits in a ConfigMap (env + `--requirepass $(REDIS_PASSWORD)`), authenticated probes
// (redis-cli reads REDISCLI_AUTH), optional redis_exporter and an RDB copy as backup.
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import type { RedisConfig } from "../../config/data";
import { labels } from "../lib/labels";
import { checksum, execProbe, secretEnv, startupProbe } from "../lib/pod";
import { PORTS } from "../lib/ports";
import { celeryQueues } from "../../config/workers";
import { createBackup } from "./backup";
import { REDIS_DB } from "./connections";
import type { StoreComponentArgs } from "./common";
import { requireKeys, storeHost } from "./common";
import { createStore, scratch } from "./store";

export const REDIS_CONF_PATH = "/etc/redis/redis.conf";

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
    "",
  ].join("\n");
}

const ping = "redis-cli -h 127.0.0.1 -p 6379 ping";

export class Redis extends pulumi.ComponentResource {
  /** Client Service name; the backup job (same namespace) connects to it by this short name. */
  readonly service: pulumi.Output<string>;
  /** Service DNS name, the host in the app's connection settings. */
  readonly host: pulumi.Output<string>;
  readonly port = PORTS.redis.redis;
  readonly statefulSet: k8s.apps.v1.StatefulSet;

  constructor(name: string, args: StoreComponentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("platform:data:Redis", name, {}, opts);
    const cfg = args.config;
    const r = cfg.redis;
    const ns = args.namespace;
    const secret = args.credentials.name;
    requireKeys(args.credentials, ["REDIS_PASSWORD"]);

    const conf = redisConf(r);
    const configMap = new k8s.core.v1.ConfigMap(
      "redis-config",
      { metadata: { name: "redis-config", namespace: ns, labels: labels(cfg, { name: "redis", component: "cache" }) }, data: { "redis.conf": conf } },
      { parent: this },
    );
    // Readiness wants PONG; liveness also accepts LOADING, so a big AOF replay is not killed mid-way.
    const ready = execProbe(["sh", "-c", `${ping} | grep -q PONG`], { periodSeconds: 5, timeoutSeconds: 3 });
    const alive = execProbe(["sh", "-c", `${ping} | grep -Eq 'PONG|LOADING'`], { periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 6 });
    const tmp = scratch("tmp", "/tmp");

    const store = createStore(this, {
      cfg,
      name: "redis",
      component: "cache",
      store: r,
      namespace: ns,
      serviceAccount: args.serviceAccount("redis"),
      port: { name: "redis", number: PORTS.redis.redis },
      container: {
        // The image's entrypoint turns a leading *.conf argument into `redis-server <conf> ...`.
        // Kubernetes expands $(REDIS_PASSWORD) from the env below; the value never leaves the Secret.
        args: [REDIS_CONF_PATH, "--requirepass", "$(REDIS_PASSWORD)"],
        env: [secretEnv("REDIS_PASSWORD", secret, "REDIS_PASSWORD"), secretEnv("REDISCLI_AUTH", secret, "REDIS_PASSWORD")],
        readinessProbe: ready,
        livenessProbe: alive,
        startupProbe: startupProbe(alive, 300),
        volumeMounts: [{ name: "config", mountPath: "/etc/redis", readOnly: true }, tmp.mount],
      },
      dataMountPath: "/data",
      volumes: [{ name: "config", configMap: { name: configMap.metadata.name } }, tmp.volume],
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
      // redis.conf is read at start only: a change must roll the pod.
      annotations: { "checksum/config": checksum(conf) },
    });
    this.statefulSet = store.statefulSet;
    this.service = store.service.metadata.name;
    this.host = storeHost(this.service, ns);

    if (r.backup.enabled) {
      createBackup(this, {
        cfg,
        name: "redis",
        store: r,
        namespace: ns,
        serviceAccount: args.serviceAccount("backup"),
        env: [{ name: "REDIS_HOST", value: this.service }, secretEnv("REDISCLI_AUTH", secret, "REDIS_PASSWORD")],
        // --rdb asks the server for a fresh snapshot over the replication protocol.
        dump: `redis-cli -h "$REDIS_HOST" -p ${PORTS.redis.redis} --rdb "$OUT"`,
        extension: "rdb",
      });
      args.graph.connect("redis-backup", "redis", [PORTS.redis.redis], "scheduled RDB copy");
    }
    this.registerOutputs({ host: this.host });
  }
}
