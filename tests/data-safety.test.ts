// Data tier: data safety (resource options, retention, backups), the app-facing connection
// Secret, the graph edges, and configurations that must be refused.
import { expect } from "chai";
import { STORES } from "../config/data";
import { inventory } from "../config/inventory";
import { backupScript } from "../components/data/backup";
import { CONNECTION_KEYS, CONNECTION_SECRET, REDIS_DB } from "../components/data/connections";

/** What a Sentinel-aware client needs, and Celery's ready-made settings (docs/data.md). */
const SENTINEL_KEYS = [
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
  "REDIS_SENTINEL_PASSWORD",
  "REDIS_PASSWORD",
  "CELERY_BROKER_URL",
  "CELERY_RESULT_BACKEND",
  "CELERY_BROKER_TRANSPORT_OPTIONS",
  "CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS",
];
import { REQUESTED_STORAGE } from "../components/data/store";
import { PORTS, serviceHost } from "../components/lib/ports";
import { envOf, storeStack, storeUids, sts } from "./data-helpers";
import { STACKS, evaluate, evaluateStack, findObject, objectsOfKind, ok, recordOf, configOf, container, podSpec, rejection } from "./harness";
import type { Evaluation } from "./harness";

const DUMP = {
  postgres: /pg_dump --format=custom/,
  redis: /redis-cli -h "\$(REDIS_HOST|source)" -p 6379 --rdb "\$OUT"/,
  mongo: /mongodump .*--oplog --gzip --archive="\$OUT"/,
  chroma: /python3 \/opt\/chroma-backup\/chroma_export\.py --page \d+ "\$OUT"/,
};

const HOST_ENV = { postgres: "PGHOST", redis: "REDIS_HOST", mongo: "MONGO_HOST", chroma: "CHROMA_HOST" } as const;

describe("data tier: safety", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      const cfg = configOf(stack);
      const ns = cfg.platform.namespace;
      const prod = stack === "prod";

      it(`StatefulSets ignore volumeClaimTemplates changes${prod ? ", and are protected and retained on delete" : ""}`, async () => {
        for (const store of STORES) {
          const ev = ok(await storeStack(stack, store).load());
          const { options } = recordOf(ev, "StatefulSet", store);
          expect(options.ignoreChanges, store).to.include("spec.volumeClaimTemplates");
          expect(options.protect, store).to.equal(prod);
          expect(options.retainOnDelete, store).to.equal(prod);
          // The requested size stays visible even though the template is ignored.
          expect(sts(ev, store).metadata.annotations[REQUESTED_STORAGE]).to.match(new RegExp(`^${cfg[store].storage.size} `));
        }
        expect(recordOf(ok(await evaluateStack(stack)), "Secret", CONNECTION_SECRET).options.protect).to.equal(prod);
      });

      it("store pods carry a checksum of their credentials (a rotation restarts them), which is not itself secret", async () => {
        for (const store of STORES) {
          const ev = ok(await storeStack(stack, store).load());
          const rec = recordOf(ev, "StatefulSet", store);
          expect(rec.inputs.spec.template.metadata.annotations["checksum/credentials"], store).to.match(/^[0-9a-f]{64}$/);
          // A hash of generated passwords reveals nothing; marked secret it would hide the whole spec in previews.
          expect(rec.secretPaths, store).to.deep.equal([]);
        }
      });

      for (const store of STORES) {
        const { cfg, load } = storeStack(stack, store);
        const b = cfg[store].backup;
        it(`${store}: backup ${b.enabled ? `CronJob at '${b.schedule}' keeping ${b.retention}` : "off"}`, async () => {
          const ev = ok(await load());
          const name = `${store}-backup`;
          if (!b.enabled) {
            expect(objectsOfKind(ev, "CronJob").map((c) => c.metadata.name)).not.to.include(name);
            expect(inventory(cfg).map((g) => g.name)).not.to.include(name);
            return;
          }
          const job = findObject(ev, "CronJob", name, ns);
          expect(job.spec).to.include({ schedule: b.schedule, timeZone: b.timeZone, concurrencyPolicy: "Forbid" });
          const pod = podSpec(job);
          const c = container(job, "backup");
          const script: string = c.command[2];
          expect(script).to.match(DUMP[store]);
          expect(script).to.include(`tail -n +${b.retention + 1}`);
          expect(c.image).to.equal(cfg[store].image);
          // Credentials only from the store's Secret.
          const env = envOf(c);
          const secretKeys = Object.values(env).filter((v) => typeof v !== "string");
          expect(secretKeys.length).to.be.at.least(1);
          for (const v of secretKeys) expect((v as { secret: string }).secret).to.equal(`${store}-credentials`);
          expect(JSON.stringify(c)).not.to.match(/pw[0-9a-f]{20}/);
          // It reaches its store through the store's client Service (same namespace, short name), or
          // for MongoDB through the replica set's member list (mongodump picks a secondary).
          const members = Array.from({ length: cfg.mongo.replicas }, (_, i) => `mongo-${i}.mongo-headless.${ns}.svc.cluster.local:27017`);
          expect(env[HOST_ENV[store]]).to.equal(store === "mongo" ? `${cfg.mongo.settings.replicaSetName}/${members.join(",")}` : findObject(ev, "Service", store, ns).metadata.name);
          // Restricted Pod Security.
          expect(pod.securityContext).to.include({ runAsNonRoot: true, runAsUser: storeUids(cfg, store).uid, fsGroup: storeUids(cfg, store).gid });
          expect(c.securityContext).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
          expect(pod.automountServiceAccountToken).to.equal(false);
          // Its own retained PVC.
          const vol = pod.volumes.find((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim);
          expect(vol.persistentVolumeClaim.claimName).to.equal(name);
          const pvc = findObject(ev, "PersistentVolumeClaim", name, ns);
          expect(pvc.spec.resources.requests.storage).to.equal(b.storage.size);
          const { options } = recordOf(ev, "PersistentVolumeClaim", name);
          expect(options.protect).to.equal(prod);
          expect(options.retainOnDelete).to.equal(prod);
          // Inventory: a group of one pod with one PVC; the graph lets it reach its store.
          expect(inventory(cfg).find((g) => g.name === name)).to.deep.include({ maxPods: 1, surge: 0, volumes: 1, serviceAccount: "backup" });
          const policy = findObject(ev, "NetworkPolicy", `allow-${name}`, ns);
          expect(policy.spec.egress[0].ports).to.deep.equal([{ port: clientPort(store), protocol: "TCP" }]);
          expect(policy.spec.egress[0].to[0].podSelector.matchLabels["app.kubernetes.io/name"]).to.equal(store);
          // No object store in the stack files: nothing leaves the cluster.
          expect(policy.spec.egress).to.have.length(1);
        });
      }

      it("app-connections: keys for the enabled stores, values from the generated credentials and the Service names", async () => {
        const ev = ok(await evaluateStack(stack));
        const rec = recordOf(ev, "Secret", CONNECTION_SECRET);
        const secret = rec.inputs;
        expect(secret.metadata.namespace).to.equal(ns);
        expect(rec.secretPaths).to.satisfy((paths: string[]) => paths.some((p) => p === "stringData" || p.startsWith("stringData.")));
        const d = secret.stringData;
        const sentinel = cfg.redis.sentinel.enabled;
        const redisKeys = sentinel ? SENTINEL_KEYS : CONNECTION_KEYS.redis;
        expect(Object.keys(d).sort()).to.deep.equal([...CONNECTION_KEYS.postgres, ...redisKeys, ...CONNECTION_KEYS.mongo].sort());
        const pg = findObject(ev, "Secret", "postgres-credentials", ns).stringData;
        const redis = findObject(ev, "Secret", "redis-credentials", ns).stringData;
        const mongo = findObject(ev, "Secret", "mongo-credentials", ns).stringData;
        const host = (s: string) => serviceHost(findObject(ev, "Service", s, ns).metadata.name, ns);
        expect(d.DATABASE_URL).to.equal(`postgresql://${pg.APP_DB_USER}:${pg.APP_DB_PASSWORD}@${host("postgres")}:${PORTS.postgres.sql}/${pg.POSTGRES_DB}`);
        expect(d).to.include({ DB_HOST: host("postgres"), DB_PORT: String(PORTS.postgres.sql), DB_NAME: pg.POSTGRES_DB });
        if (sentinel) {
          // One sentinel:// URL per member's Sentinel (stable headless names), the Redis password in each.
          const sentinels = Array.from({ length: cfg.redis.replicas }, (_, i) => `redis-${i}.redis-headless.${ns}.svc.cluster.local:26379`);
          const url = (db: number) => sentinels.map((h) => `sentinel://:${redis.REDIS_PASSWORD}@${h}/${db}`).join(";");
          expect(d.CELERY_BROKER_URL).to.equal(url(REDIS_DB.broker));
          expect(d.CELERY_RESULT_BACKEND).to.equal(url(REDIS_DB.results));
          // Clients give up on a silent master when the Sentinels do (down-after), on a silent Sentinel after 2 s.
          const timeout = cfg.redis.sentinel.downAfterMilliseconds / 1000;
          const options = {
            master_name: cfg.redis.sentinel.masterName,
            sentinel_kwargs: { password: redis.REDIS_SENTINEL_PASSWORD, socket_timeout: 2, socket_connect_timeout: 2 },
            socket_timeout: timeout,
            socket_connect_timeout: timeout,
            socket_keepalive: true,
            // Keepalive probes find a lost node within down-after too: 1 s idle, 1 s apart, down-after - 1 probes.
            socket_keepalive_options: { TCP_KEEPIDLE: 1, TCP_KEEPINTVL: 1, TCP_KEEPCNT: timeout - 1 },
          };
          expect(JSON.parse(d.CELERY_BROKER_TRANSPORT_OPTIONS)).to.deep.equal(options);
          expect(JSON.parse(d.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS)).to.deep.equal(options);
          expect(d).to.include({ REDIS_SENTINELS: sentinels.join(","), REDIS_SENTINEL_MASTER: cfg.redis.sentinel.masterName, REDIS_SENTINEL_PASSWORD: redis.REDIS_SENTINEL_PASSWORD, REDIS_PASSWORD: redis.REDIS_PASSWORD });
          expect(redis.REDIS_SENTINEL_PASSWORD).to.not.equal(redis.REDIS_PASSWORD);
          expect(d).to.not.have.property("REDIS_URL");
        } else {
          const redisBase = `redis://:${redis.REDIS_PASSWORD}@${host("redis")}:${PORTS.redis.redis}`;
          expect(d.REDIS_URL).to.equal(`${redisBase}/${REDIS_DB.cache}`);
          expect(d.CELERY_BROKER_URL).to.equal(`${redisBase}/${REDIS_DB.broker}`);
          expect(d.CELERY_RESULT_BACKEND).to.equal(`${redisBase}/${REDIS_DB.results}`);
        }
        expect(d.CELERY_BROKER_URL).not.to.equal(d.CELERY_RESULT_BACKEND);
        const db = mongo.MONGO_INITDB_DATABASE;
        // Every member of the replica set, and its name.
        const members = Array.from({ length: cfg.mongo.replicas }, (_, i) => `mongo-${i}.mongo-headless.${ns}.svc.cluster.local:${PORTS.mongo.mongo}`).join(",");
        expect(d.MONGODB_URI).to.equal(
          `mongodb://${mongo.MONGO_APP_USERNAME}:${mongo.MONGO_APP_PASSWORD}@${members}/${db}?authSource=${db}&replicaSet=${cfg.mongo.settings.replicaSetName}`,
        );
        expect(ev.outputs.connectionSecret).to.equal(CONNECTION_SECRET);
        expect(ev.outputs.dataStores).to.deep.equal({ postgres: "postgres:5432", redis: "redis:6379", mongo: "mongo:27017" });
      });
    });
  }

  describe("a store turned off", () => {
    let ev: Evaluation;
    before(async () => {
      ev = ok(await evaluate({ stack: "staging", set: { "mongo.enabled": false } }));
    });
    it("deploys nothing for it and leaves its keys out of app-connections", () => {
      const stores = ["postgres", "redis", "mongo"];
      expect(objectsOfKind(ev, "StatefulSet").map((s) => s.metadata.name).filter((n) => stores.includes(n)).sort()).to.deep.equal(["postgres", "redis"]);
      expect(objectsOfKind(ev, "CronJob").map((s) => s.metadata.name)).not.to.include("mongo-backup");
      const keys = Object.keys(findObject(ev, "Secret", CONNECTION_SECRET).stringData);
      expect(keys).not.to.include("MONGODB_URI");
      expect(keys).to.include.members(["DATABASE_URL", "CELERY_BROKER_URL"]);
      expect(objectsOfKind(ev, "NetworkPolicy").map((p) => p.metadata.name)).not.to.include("allow-mongo");
    });
  });

  describe("refused configurations", () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["MongoDB replicas 2", { "mongo.replicas": 2 }, /mongo\.replicas: must be 1, 3, 5 or 7/],
      ["backup retention 0", { "redis.backup.retention": 0 }, /redis\.backup\.retention: must be >= 1/],
      ["a malformed storage size", { "mongo.storage.size": "100GB" }, /mongo\.storage\.size: must be a storage size such as 10Gi, got "100GB"/],
      ["an unknown storage setting", { "postgres.storage.class": "fast-ssd" }, /postgres\.storage\.class: unknown key/],
      ["Redis off while workers need it", { "redis.enabled": false }, /redis\.enabled: must be true while workers\.enabled is true/],
      ["Sentinel with one Redis replica", { "redis.replicas": 1 }, /redis\.replicas: must be at least 3 while sentinel\.enabled is true: .*got 1/],
      ["Redis replicas without Sentinel", { "redis.sentinel.enabled": false }, /redis\.replicas: must be 1 while sentinel\.enabled is false: .*got 3/],
      ["a Sentinel quorum below a majority", { "redis.sentinel.quorum": 1 }, /redis\.sentinel\.quorum: must be between a majority of the Sentinels \(2\) and their number \(3\), got 1/],
      ["a Sentinel quorum above the Sentinels", { "redis.sentinel.quorum": 4 }, /redis\.sentinel\.quorum: .*got 4/],
      ["a failover timeout shorter than down-after", { "redis.sentinel.failoverTimeoutMilliseconds": 5000 }, /redis\.sentinel\.failoverTimeoutMilliseconds: must be greater than sentinel\.downAfterMilliseconds \(5000\), got 5000/],
      ["a write guard no master can satisfy", { "redis.settings.minReplicasToWrite": 3 }, /redis\.settings\.minReplicasToWrite: must be at most replicas - 1 \(2\).*got 3/],
      ["a Sentinel down-after under a second", { "redis.sentinel.downAfterMilliseconds": 500 }, /redis\.sentinel\.downAfterMilliseconds: .*got 500/],
      ["an even MongoDB replica count", { "mongo.replicas": 2 }, /mongo\.replicas: must be 1, 3, 5 or 7: .*got 2/],
      ["more MongoDB voters than a set allows", { "mongo.replicas": 9 }, /mongo\.replicas: must be 1, 3, 5 or 7: .*got 9/],
      ["a bad replica set name", { "mongo.settings.replicaSetName": "rs 0" }, /mongo\.settings\.replicaSetName: must be a replica set name/],
      ["an unknown anti-affinity", { "mongo.antiAffinity": "hard" }, /mongo\.antiAffinity: .*got "hard"/],
      ["a maxmemory that does not fit the limit", { "redis.settings.maxmemory": "2gb" }, /redis\.settings\.maxmemory: must be at most 75% of resources\.limits\.memory/],
      ["a bad backup schedule", { "postgres.backup.schedule": "daily" }, /postgres\.backup\.schedule: must be a cron schedule/],
    ];
    for (const [what, set, message] of cases) {
      it(`rejects ${what} with the key path, registering nothing`, async () => {
        expect(await rejection({ stack: "prod", set })).to.match(message);
      });
    }
  });

  describe("backup script", () => {
    it("writes a partial file, renames it when complete, then keeps the newest N", () => {
      const s = backupScript("postgres", "dump", 7, 'pg_dump --file="$OUT"');
      const lines = s.split("\n");
      expect(lines[0]).to.equal("set -eu");
      const dump = lines.indexOf('pg_dump --file="$OUT"');
      const rename = lines.findIndex((l) => l.startsWith("mv "));
      const prune = lines.findIndex((l) => l.includes("tail -n +8"));
      expect(dump).to.be.above(0);
      expect(rename).to.be.above(dump);
      expect(prune).to.be.above(rename);
      expect(s).to.include('.dump.partial"');
    });
  });
});

function clientPort(store: (typeof STORES)[number]): number {
  return { postgres: PORTS.postgres.sql, redis: PORTS.redis.redis, mongo: PORTS.mongo.mongo, chroma: PORTS.chroma.http }[store];
}
