// Data tier, per stack and store: images, Services, volumes, probes, settings, security, exporters.
import { expect } from "chai";
import { STORES, enabledExporter, mongoCacheSizeGB, postgresTuning } from "../config/data";
import { inventory } from "../config/inventory";
import { bytes } from "../config/quantity";
import { selectorLabels } from "../components/lib/labels";
import { PORTS, storeMetricsPort } from "../components/lib/ports";
import { DATA_VOLUME } from "../components/data/store";
import { PGDATA } from "../components/data/postgres";
import { envOf, probeCommand, storeStack, storeUids, sts } from "./data-helpers";
import { STACKS, evaluateStack, findObject, objectsOfKind, ok, configOf, container, podSpec } from "./harness";

const CLIENT_PORT = { postgres: PORTS.postgres.sql, redis: PORTS.redis.redis, mongo: PORTS.mongo.mongo, chroma: PORTS.chroma.http } as const;

// Seed 000 (Postgres, Redis) and seed 002 (MongoDB, ChromaDB) production numbers.
const SEED_PROD = {
  postgres: { size: "10Gi", cpu: ["500m", "2"], memory: ["1Gi", "4Gi"] },
  redis: { size: "5Gi", cpu: ["250m", "1"], memory: ["512Mi", "2Gi"] },
  mongo: { size: "100Gi" },
  chroma: { size: "50Gi" },
} as const;

/** Each store's official image, pinned (Chroma to the 0.6 line: the last with built-in server authentication). */
const OFFICIAL_IMAGE = {
  postgres: /^postgres:\d+\.\d+(\.\d+)?-alpine$/,
  redis: /^redis:\d+\.\d+\.\d+-alpine$/,
  mongo: /^mongo:\d+\.\d+\.\d+$/,
  chroma: /^chromadb\/chroma:0\.6\.\d+$/,
} as const;

/** Replicas per stack: replicated where production needs it (Postgres with Patroni, Redis with Sentinel, a MongoDB set); Chroma never replicates. */
const REPLICAS = {
  postgres: { dev: 1, staging: 2, prod: 3 },
  redis: { dev: 1, staging: 3, prod: 3 },
  mongo: { dev: 1, staging: 3, prod: 3 },
  chroma: { dev: 1, staging: 1, prod: 1 },
} as const;

describe("data tier: seed numbers and derived settings", () => {
  it("prod matches the seeds' storage and resource tables, on the fast SSD class", async () => {
    for (const store of STORES) {
      const set = sts(ok(await storeStack("prod", store).load()), store);
      const tpl = set.spec.volumeClaimTemplates[0].spec;
      expect(tpl.resources.requests.storage, store).to.equal(SEED_PROD[store].size);
      expect(tpl.storageClassName, store).to.equal("fast-ssd");
      const seed = SEED_PROD[store];
      if ("cpu" in seed) {
        const r = container(set, store).resources;
        expect([r.requests.cpu, r.limits.cpu], store).to.deep.equal(seed.cpu);
        expect([r.requests.memory, r.limits.memory], store).to.deep.equal(seed.memory);
      }
    }
  });

  it("sizes Postgres memory settings from the limit (pgtune rules) and Mongo's cache by MongoDB's rule", () => {
    expect(postgresTuning("4Gi", 200)).to.deep.equal({
      max_connections: "200",
      shared_buffers: "1048576kB",
      effective_cache_size: "3145728kB",
      maintenance_work_mem: "262144kB",
      work_mem: `${Math.floor((4194304 - 1048576) / 600)}kB`,
    });
    expect(postgresTuning("512Mi", 200).work_mem).to.equal("1024kB"); // floor of 1MB on small pods
    expect(postgresTuning("64Gi", 200).maintenance_work_mem).to.equal("2097152kB"); // capped at 2GB
    const mongo = configOf("prod").mongo;
    expect(mongoCacheSizeGB(mongo)).to.equal(1.5); // (4GB - 1GB) / 2
    expect(mongoCacheSizeGB({ ...mongo, resources: { ...mongo.resources, limits: { ...mongo.resources.limits, memory: "1Gi" } } })).to.equal(0.25);
    expect(mongoCacheSizeGB({ ...mongo, settings: { ...mongo.settings, wiredTigerCacheSizeGB: 2 } })).to.equal(2);
  });
});

describe("data tier: stores", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      const cfg = configOf(stack);
      const ns = cfg.platform.namespace;

      for (const store of STORES) {
        // The stack as it is, or with the store turned on where the stack file leaves it off (Chroma).
        const { cfg, load } = storeStack(stack, store);
        const s = cfg[store];
        // Postgres runs Patroni where it replicates (staging, prod): its image and client Service differ.
        const patroni = store === "postgres" && cfg.postgres.mode === "patroni";
        it(`${store}: pinned ${patroni ? "Percona (Patroni) image" : "official image"}, ${s.replicas} replica(s), headless + client Services`, async () => {
          const ev = ok(await load());
          const set = sts(ev, store);
          expect(set.metadata.namespace).to.equal(ns);
          expect(container(set, store).image).to.equal(s.image).and.match(patroni ? /^percona\/percona-distribution-postgresql:16\.\d+-\d+$/ : OFFICIAL_IMAGE[store]);
          expect(set.spec.replicas).to.equal(s.replicas);
          expect(s.replicas).to.equal(REPLICAS[store][stack]);
          const selector = selectorLabels(cfg, { name: store, component: store });
          expect(set.spec.selector.matchLabels).to.deep.equal(selector);
          expect(set.spec.template.metadata.labels).to.include(selector);

          const headless = findObject(ev, "Service", set.spec.serviceName, ns);
          expect(headless.spec.clusterIP).to.equal("None");
          expect(headless.spec.selector).to.deep.equal(selector);
          const client = findObject(ev, "Service", store, ns);
          const port = client.spec.ports.find((p: { port: number }) => p.port === CLIENT_PORT[store]);
          expect(port, "client port").to.exist;
          const containerPorts = container(set, store).ports;
          if (patroni) {
            // No selector: Patroni writes the leader's address into the Service's Endpoints.
            expect(client.spec.selector).to.equal(undefined);
            expect(containerPorts.map((p: { containerPort: number }) => p.containerPort)).to.include(port.targetPort);
          } else {
            expect(client.spec.selector).to.deep.equal(selector);
            expect(containerPorts.map((p: { name: string }) => p.name)).to.include(port.targetPort);
          }
        });

        it(`${store}: data volume ${s.storage.size} on ${s.storage.storageClass ?? "the default class"}, retained on delete and scale-down`, async () => {
          const set = sts(ok(await load()), store);
          expect(set.spec.persistentVolumeClaimRetentionPolicy).to.deep.equal({ whenDeleted: "Retain", whenScaled: "Retain" });
          const [tpl] = set.spec.volumeClaimTemplates;
          expect(tpl.metadata.name).to.equal(DATA_VOLUME);
          expect(tpl.spec.accessModes).to.deep.equal(["ReadWriteOnce"]);
          expect(tpl.spec.resources.requests.storage).to.equal(s.storage.size);
          expect(tpl.spec.storageClassName).to.equal(s.storage.storageClass);
          expect(container(set, store).volumeMounts.map((m: { name: string }) => m.name)).to.include(DATA_VOLUME);
        });

        it(`${store}: restricted Pod Security as the image's own uid (Chroma's image has none: a fixed one), resources from config`, async () => {
          const set = sts(ok(await load()), store);
          const pod = podSpec(set);
          const ids = storeUids(cfg, store);
          expect(pod.securityContext).to.include({ runAsNonRoot: true, runAsUser: ids.uid, runAsGroup: ids.gid, fsGroup: ids.gid });
          expect(pod.securityContext.seccompProfile.type).to.equal("RuntimeDefault");
          expect(pod.automountServiceAccountToken).to.equal(false);
          expect(pod.serviceAccountName).to.equal(store);
          for (const c of pod.containers) {
            expect(c.securityContext, c.name).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true });
            expect(c.securityContext.capabilities.drop).to.deep.equal(["ALL"]);
          }
          expect(container(set, store).resources).to.deep.equal(s.resources);
        });

        const exporterConfig = enabledExporter(s);
        it(`${store}: exporter sidecar ${exporterConfig ? "on a named metrics port" : "off"}`, async () => {
          const ev = ok(await load());
          const set = sts(ev, store);
          const names = podSpec(set).containers.map((c: { name: string }) => c.name);
          const group = inventory(cfg).find((g) => g.name === store)!;
          const client = findObject(ev, "Service", store, ns);
          // The inventory (quota sizing) counts exactly the containers the pod runs.
          expect(group.containers).to.deep.equal(podSpec(set).containers.map((c: { resources: unknown }) => c.resources));
          if (!exporterConfig) {
            expect(names).not.to.include("exporter");
            expect(group.metricsPort).to.equal(undefined);
            expect(client.spec.ports.map((p: { name: string }) => p.name)).not.to.include("metrics");
            return;
          }
          const exporter = container(set, "exporter");
          const metricsPort = storeMetricsPort(store);
          expect(metricsPort).to.be.a("number");
          expect(exporter.image).to.equal(exporterConfig.image).and.match(/:v?\d+\.\d+\.\d+$/);
          expect(exporter.ports).to.deep.equal([{ name: "metrics", containerPort: metricsPort, protocol: "TCP" }]);
          expect(exporter.resources).to.deep.equal(exporterConfig.resources);
          expect(group.metricsPort).to.equal(metricsPort);
          // Patroni's client Service reaches the leader only: every member is scraped through the headless one.
          const scraped = patroni ? findObject(ev, "Service", `${store}-headless`, ns) : client;
          expect(scraped.spec.ports).to.deep.include({ name: "metrics", port: metricsPort, targetPort: "metrics", protocol: "TCP" });
          // Exporter credentials only through secretKeyRef.
          for (const v of Object.values(envOf(exporter))) if (typeof v !== "string") expect(v.secret).to.equal(`${store}-credentials`);
        });
      }

      // The single-pod mode (dev); the Patroni mode has its own tests (tests/postgres-ha.test.ts).
      if (cfg.postgres.mode === "single") it("postgres: pg_isready probes, max_connections and memory settings from the limit, app user by init script", async () => {
        const ev = ok(await evaluateStack(stack));
        const pg = container(sts(ev, "postgres"), "postgres");
        for (const probe of [pg.readinessProbe, pg.livenessProbe, pg.startupProbe]) expect(probeCommand(probe)).to.match(/pg_isready -h 127\.0\.0\.1 -p 5432/);
        expect(pg.startupProbe.periodSeconds * pg.startupProbe.failureThreshold).to.be.at.least(300);
        const flags = Object.fromEntries((pg.args as string[]).filter((_, i) => i % 2 === 1).map((a) => a.split("=")));
        expect(flags.max_connections).to.equal("200");
        const kb = bytes(cfg.postgres.resources.limits.memory) / 1024;
        expect(flags.shared_buffers).to.equal(`${kb / 4}kB`);
        expect(flags.effective_cache_size).to.equal(`${(kb * 3) / 4}kB`);
        expect(flags).to.deep.equal(postgresTuning(cfg.postgres.resources.limits.memory, 200));
        const env = envOf(pg);
        expect(env.PGDATA).to.equal(PGDATA);
        expect(PGDATA.startsWith(pg.volumeMounts.find((m: { name: string }) => m.name === DATA_VOLUME).mountPath + "/")).to.equal(true);
        for (const key of ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "APP_DB_USER", "APP_DB_PASSWORD"]) expect(env[key]).to.deep.equal({ secret: "postgres-credentials", key });
        const init = findObject(ev, "ConfigMap", "postgres-init", ns);
        const script: string = Object.values(init.data)[0] as string;
        expect(script).to.include('CREATE ROLE :"app_user" LOGIN PASSWORD').and.include("$APP_DB_PASSWORD").and.include("ON_ERROR_STOP=1");
        expect(pg.volumeMounts).to.deep.include({ name: "init", mountPath: "/docker-entrypoint-initdb.d", readOnly: true });
        // Rotation: the sync sidecar resets both role passwords over the shared socket directory.
        const sync = container(sts(ev, "postgres"), "credential-sync");
        expect(sync.command[2]).to.include('ALTER ROLE :"app_user" PASSWORD :\'app_password\'').and.include("-h /var/run/postgresql");
        expect(sync.volumeMounts).to.deep.equal([{ name: "run", mountPath: "/var/run/postgresql" }]);
        expect(envOf(sync).APP_DB_PASSWORD).to.deep.equal({ secret: "postgres-credentials", key: "APP_DB_PASSWORD" });
        const mounts = pg.volumeMounts.map((m: { mountPath: string }) => m.mountPath);
        expect(mounts).to.include.members(["/var/run/postgresql", "/tmp"]);
      });

      it("redis: maxmemory/policy/AOF in redis.conf, password only from the Secret, authenticated redis-cli probes", async () => {
        const ev = ok(await evaluateStack(stack));
        const set = sts(ev, "redis");
        const r = container(set, "redis");
        const conf: string = findObject(ev, "ConfigMap", "redis-config", ns).data["redis.conf"];
        const lines = conf.split("\n");
        expect(lines).to.include.members([`maxmemory ${cfg.redis.settings.maxmemory}`, "maxmemory-policy allkeys-lru", "appendonly yes", "dir /data"]);
        if (stack === "prod") expect(lines).to.include("maxmemory 512mb");
        expect(conf).not.to.match(/requirepass|pw[0-9a-f]{10}/);
        // Without Sentinel the image's entrypoint starts the server; with it, the start script (data-replication.test.ts).
        if (cfg.redis.sentinel.enabled) expect(r.command).to.deep.equal(["sh", "/etc/redis/start.sh", "redis"]);
        else expect(r.args).to.deep.equal(["/etc/redis/redis.conf", "--requirepass", "$(REDIS_PASSWORD)"]);
        const env = envOf(r);
        expect(env.REDIS_PASSWORD).to.deep.equal({ secret: "redis-credentials", key: "REDIS_PASSWORD" });
        expect(env.REDISCLI_AUTH).to.deep.equal({ secret: "redis-credentials", key: "REDIS_PASSWORD" });
        expect(probeCommand(r.readinessProbe)).to.match(/redis-cli -h 127\.0\.0\.1 -p 6379 ping \| grep -q PONG/);
        expect(probeCommand(r.livenessProbe)).to.match(/redis-cli .* ping/);
        expect(r.startupProbe.exec).to.exist;
        expect(set.spec.template.metadata.annotations["checksum/config"]).to.match(/^[0-9a-f]{64}$/);
      });

      it("mongo: authorization on, root and app users from the Secret, mongosh ping probes, cache from the limit", async () => {
        const ev = ok(await evaluateStack(stack));
        const m = container(sts(ev, "mongo"), "mongo");
        expect(m.args).to.include("--auth");
        expect(m.args[m.args.indexOf("--replSet") + 1]).to.equal(cfg.mongo.settings.replicaSetName);
        expect(m.args[m.args.indexOf("--wiredTigerCacheSizeGB") + 1]).to.equal(String(mongoCacheSizeGB(cfg.mongo)));
        const env = envOf(m);
        for (const key of ["MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD", "MONGO_INITDB_DATABASE", "MONGO_APP_USERNAME", "MONGO_APP_PASSWORD"]) {
          expect(env[key]).to.deep.equal({ secret: "mongo-credentials", key });
        }
        for (const probe of [m.readinessProbe, m.livenessProbe, m.startupProbe]) expect(probeCommand(probe)).to.match(/^mongosh .*ping/);
        const script = findObject(ev, "ConfigMap", "mongo-init", ns).data["10-app-user.js"];
        expect(script).to.include("createUser").and.include("process.env.MONGO_APP_PASSWORD").and.include('role: "readWrite"');
        expect(m.volumeMounts).to.deep.include({ name: "init", mountPath: "/docker-entrypoint-initdb.d", readOnly: true });
      });

      it("every data object passes the Kubernetes schema", async () => {
        const ev = ok(await evaluateStack(stack));
        const models = {
          StatefulSet: (await import("kubernetes-models/apps/v1/StatefulSet")).StatefulSet,
          Service: (await import("kubernetes-models/v1/Service")).Service,
          CronJob: (await import("kubernetes-models/batch/v1/CronJob")).CronJob,
          PersistentVolumeClaim: (await import("kubernetes-models/v1/PersistentVolumeClaim")).PersistentVolumeClaim,
          ConfigMap: (await import("kubernetes-models/v1/ConfigMap")).ConfigMap,
          Secret: (await import("kubernetes-models/v1/Secret")).Secret,
        };
        let count = 0;
        for (const [kind, Model] of Object.entries(models)) {
          for (const obj of objectsOfKind(ev, kind)) {
            new (Model as unknown as new (o: unknown) => { validate(): void })(obj).validate();
            count++;
          }
        }
        expect(count).to.be.at.least(9);
      });
    });
  }
});
