// Data tier: data safety (resource options, retention, backups), the app-facing connection
// Secret, the graph edges, and configurations that must be refused.
import { expect } from "chai";
import { STORES } from "../config/data";
import { inventory } from "../config/inventory";
import { backupScript } from "../components/data/backup";
import { CONNECTION_KEYS, CONNECTION_SECRET, REDIS_DB } from "../components/data/connections";
import { REQUESTED_STORAGE } from "../components/data/store";
import { PORTS, serviceHost } from "../components/lib/ports";
import { envOf, storeUids, sts } from "./data-helpers";
import { STACKS, evaluate, evaluateStack, findObject, objectsOfKind, ok, recordOf, configOf, container, podSpec, rejection } from "./harness";
import type { Evaluation } from "./harness";

const DUMP = { postgres: /pg_dump --format=custom/, redis: /redis-cli -h "\$REDIS_HOST" -p 6379 --rdb "\$OUT"/, mongo: /mongodump .*--gzip --archive="\$OUT"/ };

const HOST_ENV = { postgres: "PGHOST", redis: "REDIS_HOST", mongo: "MONGO_HOST" } as const;

describe("data tier: safety", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      const cfg = configOf(stack);
      const ns = cfg.platform.namespace;
      const prod = stack === "prod";

      it(`StatefulSets ignore volumeClaimTemplates changes${prod ? ", and are protected and retained on delete" : ""}`, async () => {
        const ev = ok(await evaluateStack(stack));
        for (const store of STORES) {
          const { options } = recordOf(ev, "StatefulSet", store);
          expect(options.ignoreChanges, store).to.include("spec.volumeClaimTemplates");
          expect(options.protect, store).to.equal(prod);
          expect(options.retainOnDelete, store).to.equal(prod);
          // The requested size stays visible even though the template is ignored.
          expect(sts(ev, store).metadata.annotations[REQUESTED_STORAGE]).to.match(new RegExp(`^${cfg[store].storage.size} `));
        }
        expect(recordOf(ev, "Secret", CONNECTION_SECRET).options.protect).to.equal(prod);
      });

      it("store pods carry a checksum of their credentials (a rotation restarts them), which is not itself secret", async () => {
        const ev = ok(await evaluateStack(stack));
        for (const store of STORES) {
          const rec = recordOf(ev, "StatefulSet", store);
          expect(rec.inputs.spec.template.metadata.annotations["checksum/credentials"], store).to.match(/^[0-9a-f]{64}$/);
          // A hash of generated passwords reveals nothing; marked secret it would hide the whole spec in previews.
          expect(rec.secretPaths, store).to.deep.equal([]);
        }
      });

      for (const store of STORES) {
        const b = cfg[store].backup;
        it(`${store}: backup ${b.enabled ? `CronJob at '${b.schedule}' keeping ${b.retention}` : "off"}`, async () => {
          const ev = ok(await evaluateStack(stack));
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
          // It reaches its store through the store's client Service (same namespace, short name).
          expect(env[HOST_ENV[store]]).to.equal(findObject(ev, "Service", store, ns).metadata.name);
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
        });
      }

      it("app-connections: keys for the enabled stores, values from the generated credentials and the Service names", async () => {
        const ev = ok(await evaluateStack(stack));
        const rec = recordOf(ev, "Secret", CONNECTION_SECRET);
        const secret = rec.inputs;
        expect(secret.metadata.namespace).to.equal(ns);
        expect(rec.secretPaths).to.satisfy((paths: string[]) => paths.some((p) => p === "stringData" || p.startsWith("stringData.")));
        const d = secret.stringData;
        expect(Object.keys(d).sort()).to.deep.equal(Object.values(CONNECTION_KEYS).flat().sort());
        const pg = findObject(ev, "Secret", "postgres-credentials", ns).stringData;
        const redis = findObject(ev, "Secret", "redis-credentials", ns).stringData;
        const mongo = findObject(ev, "Secret", "mongo-credentials", ns).stringData;
        const host = (s: string) => serviceHost(findObject(ev, "Service", s, ns).metadata.name, ns);
        expect(d.DATABASE_URL).to.equal(`postgresql://${pg.APP_DB_USER}:${pg.APP_DB_PASSWORD}@${host("postgres")}:${PORTS.postgres.sql}/${pg.POSTGRES_DB}`);
        expect(d).to.include({ DB_HOST: host("postgres"), DB_PORT: String(PORTS.postgres.sql), DB_NAME: pg.POSTGRES_DB });
        const redisBase = `redis://:${redis.REDIS_PASSWORD}@${host("redis")}:${PORTS.redis.redis}`;
        expect(d.REDIS_URL).to.equal(`${redisBase}/${REDIS_DB.cache}`);
        expect(d.CELERY_BROKER_URL).to.equal(`${redisBase}/${REDIS_DB.broker}`);
        expect(d.CELERY_RESULT_BACKEND).to.equal(`${redisBase}/${REDIS_DB.results}`);
        expect(d.CELERY_BROKER_URL).not.to.equal(d.CELERY_RESULT_BACKEND);
        const db = mongo.MONGO_INITDB_DATABASE;
        expect(d.MONGODB_URI).to.equal(`mongodb://${mongo.MONGO_APP_USERNAME}:${mongo.MONGO_APP_PASSWORD}@${host("mongo")}:${PORTS.mongo.mongo}/${db}?authSource=${db}`);
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
      ["Redis replicas 2", { "redis.replicas": 2 }, /redis\.replicas: must be 1: replication is not built yet/],
      ["backup retention 0", { "redis.backup.retention": 0 }, /redis\.backup\.retention: must be >= 1/],
      ["a malformed storage size", { "mongo.storage.size": "100GB" }, /mongo\.storage\.size: must be a storage size such as 10Gi, got "100GB"/],
      ["an unknown storage setting", { "postgres.storage.class": "fast-ssd" }, /postgres\.storage\.class: unknown key/],
      ["Redis off while workers need it", { "redis.enabled": false }, /redis\.enabled: must be true while workers\.enabled is true/],
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
  return { postgres: PORTS.postgres.sql, redis: PORTS.redis.redis, mongo: PORTS.mongo.mongo }[store];
}
