// ChromaDB (seed 002's vector store), per stack with `chroma.enabled: true` (every stack file leaves
// it off) and in the seed-002 example: the pinned image and its settings, the token from its
// Secret, restricted Pod Security as a fixed uid, probes, volume, Service, who may reach it, the
// backup CronJob, the apps' connection keys, outputs, quota and alerts; then the refused
// configurations. The generic store tests (data.test.ts, data-safety.test.ts) cover it too; the
// backup scripts themselves run in chroma-backup.test.ts.
import { expect } from "chai";
import { STORE_DEPENDENCIES, resolveDependsOn } from "../config/dependencies";
import { inventory } from "../config/inventory";
import { quotaFor } from "../config/quota";
import type { PlatformConfig } from "../config/schema";
import { CHROMA_BACKUP_SCRIPTS } from "../components/data/chroma-scripts";
import { CHROMA_LOG_CONFIG } from "../components/data/chroma";
import { CONNECTION_KEYS, CONNECTION_SECRET, connectionKeys } from "../components/data/connections";
import { migrationDeps } from "../components/migration";
import { alertGroups } from "../components/monitoring/rules";
import { serviceHost } from "../components/lib/ports";
import { envOf, storeStack, sts } from "./data-helpers";
import type { Evaluation, K8sObject } from "./harness";
import { STACKS, configOf, container, evaluate, findObject, objectsOfKind, ok, podSpec, recordOf, rejection } from "./harness";
import { objectChecks } from "./object-checks";
import { diff, reachabilityMatrix } from "./reachability";

const IMAGE = "chromadb/chroma:0.6.3";
const TOKEN = { secret: "chroma-credentials", key: "CHROMA_SERVER_AUTHN_CREDENTIALS" };
const CHROMA_KEYS = [
  "CHROMA_HOST",
  "CHROMA_PORT",
  "CHROMA_URL",
  "CHROMA_AUTH_TOKEN",
  "CHROMA_CLIENT_AUTH_PROVIDER",
  "CHROMA_CLIENT_AUTH_CREDENTIALS",
  "CHROMA_AUTH_TOKEN_TRANSPORT_HEADER",
];

/** The workloads whose config says they use Chroma: services, worker pools and migrations that depend on it. */
function dependents(cfg: PlatformConfig): string[] {
  const out: string[] = [];
  for (const [name, svc] of Object.entries(cfg.services)) {
    if (!svc.enabled || svc.kind !== "http") continue;
    if (resolveDependsOn(cfg, svc.dependsOn).includes("chroma")) out.push(name);
    if (svc.migration?.enabled && migrationDeps(cfg, svc, svc.migration).includes("chroma")) out.push(`${name}-migrate`);
  }
  if (cfg.workers.enabled && resolveDependsOn(cfg, cfg.workers.dependsOn).includes("chroma")) out.push(...Object.keys(cfg.workers.pools).map((p) => `worker-${p}`));
  return out;
}

interface Target {
  name: string;
  load: () => Promise<Evaluation>;
}

const EXAMPLE = "seed-002-backend-celery";
let exampleEv: Promise<Evaluation> | undefined;
const loadExample = () => (exampleEv ??= evaluate({ stack: EXAMPLE, file: `examples/Pulumi.${EXAMPLE}.yaml` }));
const TARGETS: Target[] = [...STACKS.map((stack) => ({ name: `${stack} with chroma.enabled`, load: storeStack(stack, "chroma").load })), { name: `example ${EXAMPLE}`, load: loadExample }];

for (const t of TARGETS) {
  describe(`chroma: ${t.name}`, () => {
    let ev: Evaluation;
    let cfg: PlatformConfig;
    let ns: string;
    before(async () => {
      ev = ok(await t.load());
      // The config exactly as the program saw it (the evaluation's own stack file and overrides).
      cfg = configOf(ev);
      ns = cfg.platform.namespace;
    });

    it(`runs ${IMAGE} as one pod, as uvicorn with one worker and a console-only log config`, () => {
      const set = sts(ev, "chroma");
      const c = container(set, "chroma");
      expect(c.image).to.equal(IMAGE);
      expect(set.spec.replicas).to.equal(1);
      expect(c.command).to.equal(undefined); // the image's entrypoint starts uvicorn chromadb.app:app
      expect(c.args).to.deep.equal(["--workers", "1", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--log-config", "/etc/chroma/log_config.yml", "--timeout-keep-alive", "30"]);
      expect(c.ports).to.deep.equal([{ name: "http", containerPort: 8000, protocol: "TCP" }]);
      // The image's own log config writes chroma.log into its (read-only) working directory.
      const logConfig = findObject(ev, "ConfigMap", "chroma-config", ns).data["log_config.yml"];
      expect(logConfig).to.equal(CHROMA_LOG_CONFIG).and.not.match(/FileHandler|filename/);
      expect(c.volumeMounts).to.deep.include({ name: "config", mountPath: "/etc/chroma", readOnly: true });
      expect(podSpec(set).containers.map((x: K8sObject) => x.name)).to.deep.equal(["chroma"]); // no exporter exists for Chroma
    });

    it("configures persistence, token authentication, no reset and no telemetry through Chroma's own env settings", () => {
      const env = envOf(container(sts(ev, "chroma"), "chroma"));
      expect(env).to.deep.include({
        IS_PERSISTENT: "TRUE",
        PERSIST_DIRECTORY: "/data",
        CHROMA_SERVER_AUTHN_PROVIDER: "chromadb.auth.token_authn.TokenAuthenticationServerProvider",
        CHROMA_AUTH_TOKEN_TRANSPORT_HEADER: "Authorization",
        ALLOW_RESET: "FALSE",
        ANONYMIZED_TELEMETRY: "FALSE",
        HOME: "/tmp",
        CHROMA_SEGMENT_CACHE_POLICY: "LRU",
      });
      // Half the memory limit for the index cache (chroma.settings.indexCacheMemoryPercent 50).
      expect(Number(env.CHROMA_MEMORY_LIMIT_BYTES)).to.be.greaterThan(0);
      // The token only from its Secret, never a literal.
      expect(env.CHROMA_SERVER_AUTHN_CREDENTIALS).to.deep.equal(TOKEN);
      const token = findObject(ev, "Secret", "chroma-credentials", ns).stringData.CHROMA_SERVER_AUTHN_CREDENTIALS;
      expect(token).to.match(/^[A-Za-z0-9]{32}$/);
      expect(JSON.stringify(sts(ev, "chroma"))).not.to.include(token);
      const data = container(sts(ev, "chroma"), "chroma").volumeMounts.find((m: K8sObject) => m.name === "data");
      expect(data.mountPath).to.equal(env.PERSIST_DIRECTORY);
    });

    it("runs as uid 1000 (the image declares no user) under Pod Security restricted, read-only root, HOME and /tmp on scratch", () => {
      const pod = podSpec(sts(ev, "chroma"));
      expect(pod.securityContext).to.include({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 });
      expect(pod.securityContext.seccompProfile).to.deep.equal({ type: "RuntimeDefault" });
      expect(pod.automountServiceAccountToken).to.equal(false);
      const c = container(sts(ev, "chroma"), "chroma");
      expect(c.securityContext).to.deep.include({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ["ALL"] } });
      const tmp = pod.volumes.find((v: K8sObject) => v.name === "tmp");
      expect(tmp.emptyDir).to.exist;
      expect(c.volumeMounts).to.deep.include({ name: "tmp", mountPath: "/tmp" });
    });

    it("probes the unauthenticated heartbeat over HTTP, with a startup budget for a slow boot", () => {
      const c = container(sts(ev, "chroma"), "chroma");
      for (const p of [c.readinessProbe, c.livenessProbe, c.startupProbe]) expect(p.httpGet).to.deep.equal({ path: "/api/v2/heartbeat", port: "http" });
      expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).to.be.at.least(600);
      expect(c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold).to.be.greaterThan(c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold);
    });

    it("keeps its data on a retained volume of the configured size and class, and is reached through the chroma ClusterIP Service", () => {
      const set = sts(ev, "chroma");
      const [tpl] = set.spec.volumeClaimTemplates;
      expect(tpl.spec.resources.requests.storage).to.equal(cfg.chroma.storage.size);
      expect(tpl.spec.storageClassName).to.equal(cfg.chroma.storage.storageClass);
      // Seed 002's 50Gi on fast-ssd: the prod default (class from Pulumi.prod.yaml) and the example.
      if (cfg.environment === "prod") expect([tpl.spec.resources.requests.storage, tpl.spec.storageClassName]).to.deep.equal(["50Gi", "fast-ssd"]);
      expect(set.spec.persistentVolumeClaimRetentionPolicy).to.deep.equal({ whenDeleted: "Retain", whenScaled: "Retain" });
      const svc = findObject(ev, "Service", "chroma", ns);
      expect(svc.spec.type).to.equal("ClusterIP");
      expect(svc.spec.ports).to.deep.equal([{ name: "http", port: 8000, targetPort: "http", protocol: "TCP" }]);
      expect(svc.spec.selector).to.deep.equal(set.spec.selector.matchLabels);
      expect(recordOf(ev, "StatefulSet", "chroma").options.protect).to.equal(cfg.environment === "prod");
      expect(ev.outputs.dataStores).to.have.property("chroma", "chroma:8000");
    });

    it("is reachable on 8000 only from the workloads that depend on it, its backup and the smoke test", () => {
      const m = reachabilityMatrix(ev);
      expect(diff(m.actual, m.expected)).to.deep.equal({ missing: [], extra: [] });
      // The smoke test's pods are named after its Job (smoke-<hash>).
      const into = m.actual.filter((x) => x.includes(` -> ${ns}/chroma `)).map((x) => x.replace(/\/smoke-[0-9a-f]{8} /, "/smoke "));
      const expected = [...dependents(cfg), ...(cfg.chroma.backup.enabled ? ["chroma-backup"] : []), ...(cfg.verify.smoke.enabled ? ["smoke"] : [])];
      expect(expected.length).to.be.greaterThan(1);
      expect(into.sort()).to.deep.equal(expected.map((w) => `${ns}/${w} -> ${ns}/chroma 8000/TCP`).sort());
      // And Chroma itself reaches nothing but DNS.
      expect(m.actual.filter((x) => x.startsWith(`${ns}/chroma -> `) && !x.includes(" 53/"))).to.deep.equal([]);
    });

    it("gives the dependents (and beat, with the workers' settings) host, port, URL and token from app-connections (secretKeyRef), the others none", () => {
      const conn = findObject(ev, "Secret", CONNECTION_SECRET, ns).stringData;
      const token = findObject(ev, "Secret", "chroma-credentials", ns).stringData.CHROMA_SERVER_AUTHN_CREDENTIALS;
      const host = serviceHost("chroma", ns);
      expect(conn).to.include({
        CHROMA_HOST: host,
        CHROMA_PORT: "8000",
        CHROMA_URL: `http://${host}:8000`,
        CHROMA_AUTH_TOKEN: token,
        CHROMA_CLIENT_AUTH_PROVIDER: "chromadb.auth.token_authn.TokenAuthClientProvider",
        CHROMA_CLIENT_AUTH_CREDENTIALS: token,
        CHROMA_AUTH_TOKEN_TRANSPORT_HEADER: "Authorization",
      });
      // The keys the app tier maps are the keys the Secret holds.
      expect(Object.keys(conn).sort()).to.deep.equal(connectionKeys(cfg).sort());
      expect(CONNECTION_KEYS.chroma).to.deep.equal(CHROMA_KEYS);
      // Beat loads the same Celery app as the workers, with their settings, but only reaches the broker (above).
      const beat = cfg.workers.enabled && cfg.workers.beat.enabled && dependents(cfg).some((w) => w.startsWith("worker-")) ? ["beat"] : [];
      const users = [...dependents(cfg).filter((w) => !w.endsWith("-migrate")), ...beat];
      for (const d of objectsOfKind(ev, "Deployment")) {
        const env = envOf(d.spec.template.spec.containers[0]);
        const chroma = Object.keys(env).filter((k) => k.startsWith("CHROMA_"));
        if (users.includes(d.metadata.name)) {
          expect(chroma.sort(), d.metadata.name).to.deep.equal([...CHROMA_KEYS].sort());
          for (const k of CHROMA_KEYS) expect(env[k], `${d.metadata.name} ${k}`).to.deep.equal({ secret: CONNECTION_SECRET, key: k });
        } else {
          expect(chroma, d.metadata.name).to.deep.equal([]);
        }
      }
    });

    it("backs up through the HTTP API with the image's own Python and client, on its own volume", () => {
      const b = cfg.chroma.backup;
      const names = objectsOfKind(ev, "CronJob").map((c) => c.metadata.name);
      if (!b.enabled) {
        expect(names).not.to.include("chroma-backup");
        return;
      }
      const job = findObject(ev, "CronJob", "chroma-backup", ns);
      expect(job.spec).to.include({ schedule: b.schedule, concurrencyPolicy: "Forbid" });
      const pod = podSpec(job);
      const c = container(job, "backup");
      expect(c.image).to.equal(IMAGE);
      expect(c.command[2]).to.include('python3 /opt/chroma-backup/chroma_export.py --page 500 "$OUT"').and.include(".jsonl.gz.partial").and.include(`tail -n +${b.retention + 1}`);
      expect(envOf(c)).to.deep.include({ CHROMA_HOST: "chroma", CHROMA_PORT: "8000", PYTHONPATH: "/chroma", ANONYMIZED_TELEMETRY: "FALSE", CHROMA_AUTH_TOKEN: TOKEN });
      expect(c.volumeMounts).to.deep.include({ name: "scripts", mountPath: "/opt/chroma-backup", readOnly: true });
      expect(findObject(ev, "ConfigMap", "chroma-backup", ns).data).to.deep.equal(CHROMA_BACKUP_SCRIPTS);
      expect(pod.securityContext).to.include({ runAsUser: 1000, fsGroup: 1000 });
      expect(findObject(ev, "PersistentVolumeClaim", "chroma-backup", ns).spec.resources.requests.storage).to.equal(b.storage.size);
      expect(c.resources).to.deep.equal(b.resources);
    });

    it("counts its pods in the quota, and the smoke test checks it with the token", () => {
      const groups = inventory(cfg);
      expect(groups.find((g) => g.name === "chroma")).to.deep.include({ configPath: "chroma", maxPods: 1, surge: 0, volumes: 1, containers: [cfg.chroma.resources] });
      expect(groups.find((g) => g.name === "chroma")!.metricsPort).to.equal(undefined);
      if (cfg.chroma.backup.enabled) expect(groups.find((g) => g.name === "chroma-backup")).to.deep.include({ configPath: "chroma.backup", maxPods: 1, volumes: 1 });
      const quota = objectsOfKind(ev, "ResourceQuota").find((q) => q.metadata.namespace === ns);
      expect(quota.spec.hard).to.deep.equal(quotaFor(groups.filter((g) => g.namespace === "app"), cfg.platform.quota.headroomPercent));
      const smoke = objectsOfKind(ev, "Job").find((j) => j.metadata.name.startsWith("smoke-"));
      const check = container(smoke, "check-chroma");
      expect(check.command).to.deep.equal(["sh", "/opt/smoke/chroma.sh"]);
      expect(envOf(check)).to.deep.include({ CHROMA_HOST: serviceHost("chroma", ns), CHROMA_PORT: "8000", CHROMA_AUTH_TOKEN: TOKEN });
      expect(podSpec(smoke).containers).to.have.length(1 + STORE_DEPENDENCIES.filter((s) => cfg[s].enabled).length);
    });

    it("is covered by the generic alerts: its StatefulSet's readiness and its backup's age (kube-state-metrics)", () => {
      const alerts = alertGroups({ ...cfg, monitoring: { ...cfg.monitoring, enabled: true } }).flatMap((g) => g.rules);
      expect(alerts.map((a) => a.alert)).to.include("StatefulSetReplicasNotReady");
      const backup = alerts.find((a) => a.alert === "BackupTooOld");
      if (cfg.chroma.backup.enabled) expect(backup?.expr).to.match(/cronjob=~"[^"]*\bchroma-backup\b/);
      // No Chroma metric exists to alert on.
      for (const a of alerts) expect(a.expr, a.alert).not.to.match(/chroma_/);
    });
  });
}

// The generic object checks (schema, Pod Security, references, labels, pinned images, secret taint,
// resources, the policy pack) on every stack with Chroma on; the example has its own (examples.test.ts).
for (const stack of STACKS) objectChecks(`${stack} with chroma.enabled`, () => storeStack(stack, "chroma").load());

describe("chroma: the seed-002 example", () => {
  it("runs Chroma for the backend and the Celery workers only", async () => {
    const ev = ok(await loadExample());
    const cfg = configOf(ev);
    expect(cfg.chroma).to.deep.include({ enabled: true, image: IMAGE, replicas: 1 });
    expect(cfg.chroma.storage).to.deep.equal({ size: "50Gi", storageClass: "fast-ssd" });
    expect(dependents(cfg).sort()).to.deep.equal(["backend", "worker-default"]);
  });
});

describe("chroma: a service that does not list it", () => {
  it("gets neither its keys nor its port, while the workers that do keep both", async () => {
    const ev = ok(await evaluate({ stack: "staging", set: { "chroma.enabled": true, "services.api.dependsOn": ["postgres", "redis", "mongo", "jaeger", "mail"] } }));
    const cfg = configOf(ev);
    const ns = cfg.platform.namespace;
    expect(dependents(cfg)).to.deep.equal(["worker-default"]);
    const api = envOf(container(findObject(ev, "Deployment", "api", ns)));
    expect(Object.keys(api).filter((k) => k.startsWith("CHROMA_"))).to.deep.equal([]);
    expect(Object.keys(api)).to.include("DATABASE_URL");
    const worker = envOf(container(findObject(ev, "Deployment", "worker-default", ns)));
    expect(Object.keys(worker).filter((k) => k.startsWith("CHROMA_")).sort()).to.deep.equal([...CHROMA_KEYS].sort());
    const into = reachabilityMatrix(ev).actual.filter((x) => x.includes(` -> ${ns}/chroma `));
    expect(into.filter((x) => x.startsWith(`${ns}/api `))).to.deep.equal([]);
    expect(into).to.include(`${ns}/worker-default -> ${ns}/chroma 8000/TCP`);
  });
});

describe("chroma: refused configurations", () => {
  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    ["two replicas", "prod", { "chroma.enabled": true, "chroma.replicas": 2 }, /chroma\.replicas: must be 1: a single-node Chroma server has no replication.*, got 2/],
    ["a service depending on chroma while it is off", "prod", { "services.api.dependsOn": ["postgres", "chroma"] }, /services\.api\.dependsOn\.1: service "api" depends on chroma, but chroma is disabled \(chroma\.enabled: false\)/],
    ["workers depending on chroma while it is off", "staging", { "workers.dependsOn": ["redis", "chroma"] }, /workers\.dependsOn\.1: workers depends on chroma, but chroma is disabled \(chroma\.enabled: false\)/],
    ["an exporter (Chroma has none)", "prod", { "chroma.exporter": { enabled: true } }, /chroma\.exporter: unknown key/],
    ["an anti-affinity setting (one pod)", "prod", { "chroma.antiAffinity": "required" }, /chroma\.antiAffinity: unknown key/],
    ["an index cache above 80% of the memory limit", "dev", { "chroma.settings.indexCacheMemoryPercent": 95 }, /chroma\.settings\.indexCacheMemoryPercent: .*got 95/],
  ];
  for (const [what, stack, set, message] of cases) {
    it(`rejects ${what} with the key path, registering nothing`, async () => {
      expect(await rejection({ stack, set })).to.match(message);
    });
  }
});

describe("chroma: the token", () => {
  it("is generated (never typed) and rotates with secrets.rotate.chroma alone", async () => {
    const ev = ok(await evaluate({ stack: "staging", set: { "chroma.enabled": true, "secrets.rotate": { chroma: 2 } } }));
    const passwords = ev.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword");
    const token = passwords.find((p) => p.name === "chroma-token")!;
    expect(token.inputs).to.deep.include({ length: 32, special: false });
    expect(token.inputs.keepers).to.deep.equal({ rotation: "1.2" });
    for (const p of passwords.filter((x) => x.name !== "chroma-token")) expect(p.inputs.keepers.rotation, p.name).to.not.equal("1.2");
    expect(ev.outputs.secretNames).to.have.property("chroma", "chroma-credentials");
  });
});
