// Post-deploy verification (issue 7): the smoke test Job and the rollout report (@pulumi/command).
// Expectations come from config and the pure builders. Demo images and local script runs:
// tests/verify-demo.test.ts.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { expect } from "chai";
import { KUBECTL_MISSING, rolloutScript, rolloutTargets, rolloutTrigger } from "../components/rollout";
import { ENDPOINTS_CONTAINER, SMOKE, smokeChecks, smokeJobName } from "../components/smoke";
import { inventory } from "../config/inventory";
import { podSecurityViolations } from "./checks";
import type { Evaluation, K8sObject, Recorded } from "./harness";
import { STACKS, configOf, evaluate, evaluateStack, findObject, generatedValues, objectsOfKind, ok, recordOf } from "./harness";
import type { GraphData, PolicyObject } from "./reachability";
import { candidatePorts, endpointsOf, key, reachability } from "./reachability";

const jobOf = (ev: Evaluation): K8sObject => {
  const jobs = objectsOfKind(ev, "Job");
  expect(jobs, "one smoke Job").to.have.length(1);
  return jobs[0];
};
const commandOf = (ev: Evaluation): Recorded => {
  const cmds = ev.resources.filter((r) => r.type === "command:local:Command");
  expect(cmds, "one local.Command").to.have.length(1);
  return cmds[0];
};
// The tiers' objects (the platform layer's namespaces and default-deny policies come first anyway).
const urnsOf = (ev: Evaluation, kinds: string[]) => ev.resources.filter((r) => r.custom && kinds.includes(r.inputs.kind) && !r.urn.includes("platform:core:Platform")).map((r) => r.urn);

/** Allowed (from -> to port) triples, computed from the NetworkPolicies as Kubernetes would. */
function allowedTriples(ev: Evaluation): Set<string> {
  const graph = ev.outputs.dependencyGraph as GraphData;
  const policies = objectsOfKind(ev, "NetworkPolicy") as PolicyObject[];
  const cfg = configOf(ev.stack);
  const endpoints = endpointsOf(ev, graph, [
    { namespace: cfg.platform.ingressNamespace, labels: {} },
    { namespace: cfg.platform.monitoringNamespace, labels: {} },
  ]);
  return new Set(reachability(endpoints, policies, candidatePorts(graph, policies, endpoints)).map(key));
}

describe("verify: smoke test Job", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      let ev: Evaluation;
      before(async () => {
        ev = ok(await evaluateStack(stack));
      });

      it("runs one container per store check and one Python container for every other check, side by side, each check printing its own line", () => {
        const cfg = configOf(stack);
        const job = jobOf(ev);
        const checks = smokeChecks(cfg);
        expect(checks.map((c) => c.name)).to.deep.equal(["api-ready", "postgres", "redis", "mongo", "smtp", "imap", "otlp"]);
        const spec = job.spec.template.spec;
        // No init containers: nothing waits for another check, and every failure is reported.
        expect(spec.initContainers).to.equal(undefined);
        const stores = checks.filter((c) => c.container);
        expect(stores.map((c) => c.name)).to.deep.equal(["postgres", "redis", "mongo"]);
        expect(spec.containers.map((c: K8sObject) => c.name)).to.deep.equal([...stores.map((c) => `check-${c.name}`), ENDPOINTS_CONTAINER]);
        expect(job.spec.backoffLimit).to.equal(0);
        expect(spec.restartPolicy).to.equal("Never");
        expect(job.spec.activeDeadlineSeconds).to.equal(cfg.verify.smoke.timeoutSeconds);
        expect(job.metadata.name).to.equal(smokeJobName(cfg)).and.match(/^smoke-[0-9a-f]{8}$/);
        expect(job.metadata.namespace).to.equal(cfg.platform.namespace);
        // The stores are checked with their own images (client = server version), the rest with the smoke image.
        const byName = (n: string) => spec.containers.find((c: K8sObject) => c.name === n);
        expect([byName("check-postgres").image, byName("check-redis").image, byName("check-mongo").image, byName(ENDPOINTS_CONTAINER).image]).to.deep.equal([
          cfg.postgres.image,
          cfg.redis.image,
          cfg.mongo.image,
          cfg.verify.smoke.image,
        ]);
        // The Python container gets every endpoint check as <check> <kind> <target>, in order.
        const endpoints = byName(ENDPOINTS_CONTAINER);
        const triplets = checks.filter((c) => c.endpoint).flatMap((c) => [c.name, c.endpoint!.kind, c.endpoint!.address]);
        expect(endpoints.command).to.deep.equal(["python3", "/opt/smoke/smoke.py", ...triplets]);
        expect(endpoints.env).to.deep.include({ name: "SMOKE_CONCURRENCY", value: String(cfg.verify.smoke.concurrency) });
        // The API is asked where its readiness probe asks (health port, /ready), through its Service.
        const api = cfg.services.api;
        if (api.kind !== "http") throw new Error("api is an http service");
        const i = endpoints.command.indexOf("api-ready");
        expect(endpoints.command.slice(i, i + 3)).to.deep.equal(["api-ready", "http", `http://api.${cfg.platform.namespace}.svc.cluster.local:${api.ports.health}${api.probes.readiness.path}`]);
        const svc = findObject(ev, "Service", "api", cfg.platform.namespace);
        expect(svc.spec.ports.map((p: K8sObject) => p.port)).to.include(api.ports.health);
        // The quota budgets every container of the pod (they run at once).
        expect(inventory(cfg).find((g) => g.name === SMOKE)!.containers).to.have.length(spec.containers.length);
        // Each script prints `ok <check>` or `FAIL <check>: <reason>` exactly once per check.
        const scripts = findObject(ev, "ConfigMap", "smoke-scripts").data;
        expect(scripts["retry.sh"]).to.contain('echo "ok $CHECK"').and.contain('echo "FAIL $CHECK: ');
        expect(scripts["smoke.py"]).to.contain('report("ok %s" % check)').and.contain('report("FAIL %s: %s" % (check, reason))');
        expect(scripts["postgres.sh"]).to.contain("pg_isready").and.contain("SELECT current_user");
        expect(scripts["mongo.sh"]).to.contain("db.auth(process.env.MONGO_USER, process.env.MONGO_PASSWORD)");
      });

      it("passes Pod Security restricted, runs as its own ServiceAccount, and reads credentials only through secretKeyRef", () => {
        const job = jobOf(ev);
        const spec = job.spec.template.spec;
        expect(podSecurityViolations(spec, "restricted")).to.deep.equal([]);
        expect(spec.serviceAccountName).to.equal(SMOKE);
        expect(spec.automountServiceAccountToken).to.equal(false);
        expect(spec.securityContext).to.include({ runAsNonRoot: true });
        for (const c of spec.containers) {
          expect(c.securityContext, c.name).to.include({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true });
          expect(c.volumeMounts.find((m: K8sObject) => m.mountPath === "/tmp"), c.name).to.exist;
          expect(c.volumeMounts.find((m: K8sObject) => m.name === "scripts").readOnly, c.name).to.equal(true);
          for (const e of c.env ?? []) if (/PASSWORD|AUTH|USER|PGDATABASE|MONGO_DB/.test(e.name)) expect(e.valueFrom?.secretKeyRef, `${c.name} ${e.name}`).to.exist;
        }
        const rec = recordOf(ev, "Job", job.metadata.name);
        const leaked = generatedValues(ev).filter((v) => JSON.stringify(rec.inputs).includes(v));
        expect(leaked).to.deep.equal([]);
      });

      it("starts after every tier: depends on each workload and each NetworkPolicy", () => {
        const job = jobOf(ev);
        const deps = new Set(recordOf(ev, "Job", job.metadata.name).options.dependsOn);
        const needed = urnsOf(ev, ["Deployment", "StatefulSet", "NetworkPolicy", "Ingress"]);
        expect(needed.length).to.be.greaterThan(10);
        expect(needed.filter((u) => !deps.has(u))).to.deep.equal([]);
      });
    });
  }

  it("declares smoke -> each checked Service port, and the NetworkPolicies gain exactly those edges (config turns it off)", async () => {
    const cfg = configOf("dev");
    const ev = ok(await evaluateStack("dev"));
    const graph = ev.outputs.dependencyGraph as GraphData;
    const declared = graph.edges.filter((e) => e.from === SMOKE).map((e) => `${e.to}:${e.ports.map((p) => p.port).join()}`);
    expect(declared).to.deep.equal(smokeChecks(cfg).map((c) => `${c.target}:${c.port}`));
    expect(graph.edges.filter((e) => e.to === SMOKE)).to.deep.equal([]);

    // Both off (one evaluation): no Job, no command, no smoke ServiceAccount.
    const off = ok(await evaluate({ stack: "dev", set: { "verify.smoke.enabled": false, "verify.rollout.enabled": false } }));
    expect(objectsOfKind(off, "Job")).to.deep.equal([]);
    expect(off.resources.filter((r) => r.type === "command:local:Command")).to.deep.equal([]);
    expect(objectsOfKind(off, "ServiceAccount").map((s) => s.metadata.name)).not.to.include(SMOKE);
    const [withSmoke, without] = [allowedTriples(ev), allowedTriples(off)];
    const ns = cfg.platform.namespace;
    const mailNs = cfg.platform.mailNamespace;
    const job = `${ns}/${jobOf(ev).metadata.name}`;
    const gained = [...withSmoke].filter((t) => !without.has(t)).sort();
    expect([...without].filter((t) => !withSmoke.has(t))).to.deep.equal([]);
    expect(gained).to.deep.equal(
      [
        `${job} -> ${ns}/api 8080/TCP`,
        `${job} -> ${ns}/postgres 5432/TCP`,
        `${job} -> ${ns}/redis 6379/TCP`,
        `${job} -> ${ns}/mongo 27017/TCP`,
        `${job} -> ${mailNs}/postfix 587/TCP`,
        `${job} -> ${mailNs}/dovecot 143/TCP`,
        `${job} -> ${ns}/jaeger 4318/TCP`,
        `${job} -> kube-system/kube-dns 53/TCP`,
        `${job} -> kube-system/kube-dns 53/UDP`,
      ].sort(),
    );
  });

  it("drops a tier's check (and its edge) when the tier is off", async () => {
    const ev = ok(await evaluate({ stack: "dev", set: { "mail.enabled": false, "mongo.enabled": false } }));
    const spec = jobOf(ev).spec.template.spec;
    expect(spec.containers.map((c: K8sObject) => c.name)).to.deep.equal(["check-postgres", "check-redis", ENDPOINTS_CONTAINER]);
    const endpoints = spec.containers.find((c: K8sObject) => c.name === ENDPOINTS_CONTAINER).command.slice(2);
    expect(endpoints.filter((_: string, i: number) => i % 3 === 0)).to.deep.equal(["api-ready", "otlp"]);
    const targets = (ev.outputs.dependencyGraph as GraphData).edges.filter((e) => e.from === SMOKE).map((e) => e.to);
    expect(targets).to.deep.equal(["api", "postgres", "redis", "jaeger"]);
    // Pure: Jaeger off removes the OTLP check.
    expect(smokeChecks(configOf("dev", { jaeger: { enabled: false } })).map((c) => c.name)).not.to.include("otlp");
  });

  it("reruns (a new Job name) when a checked tier's image or config changes, not for unrelated settings", () => {
    const base = smokeJobName(configOf("dev"));
    expect(smokeJobName(configOf("dev", { redis: { image: "redis:7.4.2-alpine" } }))).not.to.equal(base);
    expect(smokeJobName(configOf("dev", { services: { api: { image: "python:3.12.8-alpine3.20" } } }))).not.to.equal(base);
    expect(smokeJobName(configOf("dev", { postgres: { settings: { maxConnections: 150 } } }))).not.to.equal(base);
    expect(smokeJobName(configOf("dev", { secrets: { rotate: { redis: 2 } } }))).not.to.equal(base);
    expect(smokeJobName(configOf("dev", { edge: { rateLimit: { perMinute: 600 } } }))).to.equal(base);
    expect(smokeJobName(configOf("dev", { workers: { pools: { default: { queues: ["default"], concurrency: 3 } } } }))).to.equal(base);
    expect(smokeJobName(configOf("dev", { verify: { rollout: { timeoutSeconds: 60 } } }))).to.equal(base);
  });
});

describe("verify: rollout report (@pulumi/command)", () => {
  for (const stack of STACKS) {
    it(`${stack}: rolls out every Deployment and StatefulSet on the provider's cluster, then prints the endpoints`, async () => {
      const ev = ok(await evaluateStack(stack));
      const cfg = configOf(stack);
      const rec = commandOf(ev);
      const script: string = rec.inputs.create;
      const workloads = [...objectsOfKind(ev, "Deployment"), ...objectsOfKind(ev, "StatefulSet")].map((o) => `${o.metadata.namespace}/${o.kind.toLowerCase()}/${o.metadata.name}`);
      expect(rolloutTargets(cfg).map((t) => `${t.namespace}/${t.kind}/${t.name}`).sort()).to.deep.equal(workloads.sort());
      // `kubectl rollout status` refuses StatefulSets with OnDelete updates.
      for (const s of objectsOfKind(ev, "StatefulSet")) expect(s.spec.updateStrategy?.type ?? "RollingUpdate", s.metadata.name).to.equal("RollingUpdate");
      const kube = cfg.cluster.context ? `kubectl --context '${cfg.cluster.context}'` : "kubectl";
      for (const t of rolloutTargets(cfg)) {
        expect(script).to.contain(`${kube} --namespace '${t.namespace}' rollout status ${t.kind}/${t.name} --timeout=${cfg.verify.rollout.timeoutSeconds}s`);
      }
      for (const url of Object.values(ev.outputs.urls as Record<string, string>)) expect(script).to.contain(url);
      expect(script).to.contain(`Mail host: ${ev.outputs.mailHostname}`);
      for (const line of (ev.outputs.mailDnsZone as string).trim().split("\n")) expect(script).to.contain(line);
      // Only `create` (no update/delete command), no environment, triggers from the workloads' config.
      expect(rec.inputs).to.include.keys("create", "triggers");
      expect(rec.inputs).not.to.have.any.keys("update", "delete", "environment", "stdin");
      expect(rec.inputs.triggers).to.deep.equal([rolloutTrigger(cfg)]);
      // No generated credential anywhere in its inputs (script, triggers), and nothing secret.
      const text = JSON.stringify(rec.inputs);
      expect(generatedValues(ev).filter((v) => text.includes(v))).to.deep.equal([]);
      expect(rec.secretPaths).to.deep.equal([]);
      // After every tier and the smoke test.
      const deps = new Set(rec.options.dependsOn);
      const needed = [...urnsOf(ev, ["Deployment", "StatefulSet", "NetworkPolicy", "Ingress"]), recordOf(ev, "Job", jobOf(ev).metadata.name).urn];
      expect(needed.filter((u) => !deps.has(u))).to.deep.equal([]);
    });
  }

  it("targets the configured kubeconfig and timeout; its trigger follows workload changes only", () => {
    const cfg = configOf("dev", { cluster: { context: "kind-dev", kubeconfig: "/home/me/.kube/kind" }, verify: { rollout: { timeoutSeconds: 120 } } });
    const script = rolloutScript(cfg, "URLs:");
    expect(script).to.contain("kubectl --context 'kind-dev' --kubeconfig '/home/me/.kube/kind' --namespace 'email-platform-dev' rollout status deployment/api --timeout=120s");
    const base = rolloutTrigger(configOf("dev"));
    expect(rolloutTrigger(configOf("dev", { services: { api: { image: "python:3.12.8-alpine3.20" } } }))).not.to.equal(base);
    expect(rolloutTrigger(configOf("dev", { secrets: { rotation: 2 } }))).not.to.equal(base);
    expect(rolloutTrigger(configOf("dev", { monitoring: { enabled: true } }))).to.equal(base);
  });

  it("explains itself when kubectl is missing, and reports workloads that did not roll out", async () => {
    const ev = ok(await evaluateStack("dev"));
    const script: string = commandOf(ev).inputs.create;
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "nokubectl-"));
    const missing = spawnSync("/bin/sh", ["-c", script], { env: { PATH: empty }, encoding: "utf8" });
    expect(missing.status).to.equal(127);
    expect(missing.stderr.trim()).to.equal(KUBECTL_MISSING);
    // A fake kubectl: every rollout succeeds except Postgres'.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "fakekubectl-"));
    fs.writeFileSync(path.join(bin, "kubectl"), '#!/bin/sh\ncase "$*" in *statefulset/postgres*) exit 1;; esac\necho "kubectl $*"\n', { mode: 0o755 });
    const run = spawnSync("/bin/sh", ["-c", script], { env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: "utf8" });
    expect(run.status).to.equal(1);
    expect(run.stderr).to.contain("not rolled out: email-platform-dev/statefulset/postgres");
    expect(run.stdout).to.contain("rollout status deployment/api").and.contain(`Mail host: ${ev.outputs.mailHostname}`);
  });

  it("is registered but never run in preview, and a preview evaluation does not break", async () => {
    const ev = ok(await evaluate({ stack: "prod", preview: true }));
    const rec = commandOf(ev);
    // `create` runs on `pulumi up` only; in preview the provider only diffs the inputs.
    expect(rec.inputs).not.to.have.any.keys("update", "delete");
    expect(jobOf(ev).metadata.name).to.equal(smokeJobName(configOf("prod")));
  });
});
