// Post-deploy verification (issue 7): the smoke test Job, the rollout report (@pulumi/command),
// and the dev stack's demo images. Expectations come from config and the pure builders.
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { expect } from "chai";
import { DEMO_CELERY_IMAGE } from "../config/app";
import { PYTHON_IMAGE } from "../config/verify";
import { celeryModule, demoCelery } from "../components/lib/demo";
import { KUBECTL_MISSING, rolloutScript, rolloutTargets, rolloutTrigger } from "../components/rollout";
import { SMOKE, smokeChecks, smokeJobName } from "../components/smoke";
import { SMOKE_PATH, SMOKE_SCRIPTS } from "../components/smoke-scripts";
import { pingCommand } from "../components/workers";
import { podSecurityViolations } from "./checks";
import { configOf } from "./config-of";
import type { Evaluation, K8sObject, Recorded } from "./harness";
import { STACKS, evaluate, evaluateStack, findObject, generatedValues, objectsOfKind, ok, recordOf } from "./harness";
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

      it("runs one init container per check of an enabled tier, each printing one line, and fails on the first", () => {
        const cfg = configOf(stack);
        const job = jobOf(ev);
        const checks = smokeChecks(cfg);
        expect(checks.map((c) => c.name)).to.deep.equal(["api-ready", "postgres", "redis", "mongo", "smtp", "imap", "otlp"]);
        const spec = job.spec.template.spec;
        expect(spec.initContainers.map((c: K8sObject) => c.name)).to.deep.equal(checks.map((c) => `check-${c.name}`));
        expect(job.spec.backoffLimit).to.equal(0);
        expect(spec.restartPolicy).to.equal("Never");
        expect(job.spec.activeDeadlineSeconds).to.equal(cfg.verify.smoke.timeoutSeconds);
        expect(job.metadata.name).to.equal(smokeJobName(cfg)).and.match(/^smoke-[0-9a-f]{8}$/);
        expect(job.metadata.namespace).to.equal(cfg.platform.namespace);
        // The stores are checked with their own images (client = server version).
        const image = (n: string) => spec.initContainers.find((c: K8sObject) => c.name === `check-${n}`).image;
        expect([image("postgres"), image("redis"), image("mongo"), image("smtp")]).to.deep.equal([cfg.postgres.image, cfg.redis.image, cfg.mongo.image, cfg.verify.smoke.image]);
        // The API is asked where its readiness probe asks (health port, /ready), through its Service.
        const api = cfg.services.api;
        if (api.kind !== "http") throw new Error("api is an http service");
        expect(spec.initContainers[0].command.slice(-1)[0]).to.equal(`http://api.${cfg.platform.namespace}.svc.cluster.local:${api.ports.health}${api.probes.readiness.path}`);
        const svc = findObject(ev, "Service", "api", cfg.platform.namespace);
        expect(svc.spec.ports.map((p: K8sObject) => p.port)).to.include(api.ports.health);
        // Each script prints `ok <check>` or `FAIL <check>: <reason>` exactly once.
        const scripts = findObject(ev, "ConfigMap", "smoke-scripts").data;
        expect(scripts["retry.sh"]).to.contain('echo "ok $CHECK"').and.contain('echo "FAIL $CHECK: ');
        expect(scripts["smoke.py"]).to.contain('print("ok %s" % check').and.contain('print("FAIL %s: %s" % (check, reason)');
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
        for (const c of [...spec.initContainers, ...spec.containers]) {
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
    const names = jobOf(ev).spec.template.spec.initContainers.map((c: K8sObject) => c.name);
    expect(names).to.deep.equal(["check-api-ready", "check-postgres", "check-redis", "check-otlp"]);
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

describe("verify: dev converges with public demo images", () => {
  let ev: Evaluation;
  before(async () => {
    ev = ok(await evaluateStack("dev"));
  });

  it("runs public, pinned images only (the app images are the demo's), and staging/prod require the user's", async () => {
    const cfg = configOf("dev");
    expect([cfg.services.api.image, cfg.workers.image]).to.deep.equal([PYTHON_IMAGE, DEMO_CELERY_IMAGE]);
    expect([cfg.services.api.kind === "http" && cfg.services.api.demo, cfg.workers.demo]).to.deep.equal([true, true]);
    const images = new Set<string>();
    for (const kind of ["Deployment", "StatefulSet", "Job", "CronJob"]) {
      for (const o of objectsOfKind(ev, kind)) {
        const t = kind === "CronJob" ? o.spec.jobTemplate.spec.template : o.spec.template;
        for (const c of [...(t.spec.initContainers ?? []), ...t.spec.containers]) images.add(c.image);
      }
    }
    for (const image of images) {
      expect(image, image).to.match(/:[0-9v][\w.-]*$/); // a version tag, never latest
      expect(image, image).not.to.match(/example\.com|ghcr\.io\/example/);
    }
    for (const stack of ["staging", "prod"]) {
      const c = configOf(stack);
      const api = c.services.api;
      expect([api.kind === "http" && api.demo, c.workers.demo]).to.deep.equal([false, false]);
      const bad = await evaluate({ stack, set: { "services.api.image": undefined, "workers.image": undefined } });
      expect(bad.error?.message).to.match(/services\.api\.image: is required: your application's image/).and.match(/workers\.image: is required/);
      expect(bad.resources).to.have.length(0);
    }
  });

  it("does not wait for an ingress controller in dev (a fresh kind cluster has none); staging/prod do", async () => {
    for (const ing of objectsOfKind(ev, "Ingress")) expect(ing.metadata.annotations["pulumi.com/skipAwait"], ing.metadata.name).to.equal("true");
    for (const ing of objectsOfKind(ok(await evaluateStack("staging")), "Ingress")) expect(ing.metadata.annotations, ing.metadata.name).not.to.have.property("pulumi.com/skipAwait");
  });

  it("the demo API serves exactly what its probes and ports ask (run with python3)", async function () {
    const d = findObject(ev, "Deployment", "api");
    const c = d.spec.template.spec.containers[0];
    const cm = findObject(ev, "ConfigMap", "api-config").data;
    const port = (name: string) => c.ports.find((p: K8sObject) => p.name === name).containerPort;
    expect([cm.PORT, cm.HEALTH_PORT, cm.METRICS_PORT].map(Number)).to.deep.equal([port("http"), port("health"), port("metrics")]);
    const env = Object.fromEntries(c.env.filter((e: K8sObject) => e.value !== undefined).map((e: K8sObject) => [e.name, e.value]));
    expect(env.DEMO_LIVENESS_PATH).to.equal(c.livenessProbe.httpGet.path);
    expect(env.DEMO_READINESS_PATH).to.equal(c.readinessProbe.httpGet.path);
    expect([c.livenessProbe.httpGet.port, c.readinessProbe.httpGet.port]).to.deep.equal(["health", "health"]);
    expect(env).to.include({ PYTHONDONTWRITEBYTECODE: "1", PYTHONPATH: "/opt/demo" });
    expect(c.command).to.deep.equal(["python3", "/opt/demo/server.py"]);
    expect(c.volumeMounts.find((m: K8sObject) => m.name === "demo")).to.include({ mountPath: "/opt/demo", readOnly: true });
    const server: string = findObject(ev, "ConfigMap", "api-demo").data["server.py"];

    if (spawnSync("python3", ["--version"]).status !== 0) return this.skip();
    // Same script, same env; free local ports stand in for 5000/8080/9090.
    const [httpPort, healthPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "demo-")), "server.py");
    fs.writeFileSync(file, server);
    const proc = spawn("python3", [file], { env: { ...process.env, ...env, PORT: String(httpPort), HEALTH_PORT: String(healthPort), METRICS_PORT: String(metricsPort) } });
    try {
      expect(await get(healthPort, env.DEMO_LIVENESS_PATH)).to.equal(200);
      expect(await get(healthPort, env.DEMO_READINESS_PATH)).to.equal(200);
      expect(await get(healthPort, "/nothing")).to.equal(404);
      expect(await get(httpPort, "/api/messages")).to.equal(200);
      expect(await get(metricsPort, "/metrics")).to.equal(200);
    } finally {
      proc.kill();
    }
  });

  it("the demo Celery app is importable as workers.celeryApp, and ping targets the worker's own node name", function () {
    const cfg = configOf("dev");
    const { module, attribute, path: file } = celeryModule(cfg.workers.celeryApp);
    expect([module, attribute, file]).to.deep.equal(["app", "celery", "app.py"]);
    const cm = findObject(ev, "ConfigMap", "worker-demo");
    const d = findObject(ev, "Deployment", "worker-default");
    const spec = d.spec.template.spec;
    const vol = spec.volumes.find((v: K8sObject) => v.name === "demo");
    expect(vol.configMap.items.map((i: K8sObject) => i.path)).to.deep.equal([file]);
    const c = spec.containers[0];
    expect(c.volumeMounts.find((m: K8sObject) => m.name === "demo")).to.include({ mountPath: "/opt/demo", readOnly: true });
    // The node the worker registers (--hostname) is the one liveness pings.
    const hostname = c.args[c.args.indexOf("--hostname") + 1];
    expect(hostname.replace("$(POD_NAME)", "$POD_NAME")).to.equal("default@$POD_NAME");
    expect(c.livenessProbe.exec.command).to.deep.equal(pingCommand(cfg.workers.celeryApp, "default"));
    expect(c.livenessProbe.exec.command[2]).to.contain(`-A ${cfg.workers.celeryApp} inspect ping --destination "default@$POD_NAME"`);
    expect(findObject(ev, "Deployment", "beat").spec.template.spec.volumes.map((v: K8sObject) => v.name)).to.include("demo");
    // Nested module paths get their packages.
    expect(Object.keys(demoCelery("proj.tasks:app", "q").data).sort()).to.deep.equal(["proj.__init__.py", "proj.tasks.py"]);

    if (spawnSync("python3", ["--version"]).status !== 0) return this.skip();
    // Import the module as celery would (`-A app.celery`), against a stand-in `celery` package.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "celery-demo-"));
    for (const item of vol.configMap.items) {
      fs.mkdirSync(path.dirname(path.join(dir, item.path)), { recursive: true });
      fs.writeFileSync(path.join(dir, item.path), cm.data[item.key]);
    }
    fs.mkdirSync(path.join(dir, "celery"));
    fs.writeFileSync(
      path.join(dir, "celery", "__init__.py"),
      "class _Conf:\n    def update(self, **kw):\n        pass\n\n\nclass Celery:\n    def __init__(self, main, **kw):\n        self.conf = _Conf()\n\n    def task(self, **kw):\n        return lambda f: f\n",
    );
    const out = execFileSync("python3", ["-c", `import importlib; m = importlib.import_module(${JSON.stringify(module)}); print(type(getattr(m, ${JSON.stringify(attribute)})).__name__)`], {
      env: { ...process.env, PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: "1" },
      encoding: "utf8",
    });
    expect(out.trim()).to.equal("Celery");
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** GET with retries while the server starts; resolves to the status code. */
async function get(port: number, p: string): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      return await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path: p, timeout: 2000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
      });
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("verify: the smoke scripts print one line per check (run locally against stand-ins)", () => {
  const sh = (dir: string, file: string, env: Record<string, string>) =>
    spawnSync("/bin/sh", [path.join(dir, file)], { env: { PATH: `${dir}/bin:/usr/bin:/bin`, SMOKE_RETRY_SECONDS: "0", ...env }, encoding: "utf8" });
  let dir: string;
  before(function () {
    if (spawnSync("python3", ["--version"]).status !== 0) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "smoke-"));
    fs.mkdirSync(path.join(dir, "bin"));
    // The scripts as mounted, with /opt/smoke pointing here.
    for (const [name, text] of Object.entries(SMOKE_SCRIPTS)) fs.writeFileSync(path.join(dir, name), text.split(SMOKE_PATH).join(dir));
  });
  const fake = (name: string, body: string) => fs.writeFileSync(path.join(dir, "bin", name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });

  it("store checks: ok on success, FAIL <check>: <reason> on failure", () => {
    fake("redis-cli", 'echo "$FAKE_REPLY"');
    expect(sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1", FAKE_REPLY: "PONG" }).stdout).to.equal("ok redis\n");
    const bad = sh(dir, "redis.sh", { CHECK: "redis", REDIS_HOST: "h", REDIS_PORT: "1", FAKE_REPLY: "NOAUTH Authentication required." });
    expect([bad.status, bad.stdout]).to.deep.equal([1, "FAIL redis: NOAUTH Authentication required.\n"]);
    fake("pg_isready", "exit 0");
    fake("psql", 'echo "$FAKE_USER"');
    expect(sh(dir, "postgres.sh", { CHECK: "postgres", PGUSER: "app", FAKE_USER: "app" }).stdout).to.equal("ok postgres\n");
    expect(sh(dir, "postgres.sh", { CHECK: "postgres", PGUSER: "app", FAKE_USER: "postgres" }).stdout).to.match(/^FAIL postgres: query answered 'postgres', not the application role\n$/);
    fake("mongosh", 'echo "$FAKE_OUT"');
    expect(sh(dir, "mongo.sh", { CHECK: "mongo", MONGO_HOST: "h", MONGO_PORT: "1", MONGO_DB: "app", FAKE_OUT: "ping ok" }).stdout).to.equal("ok mongo\n");
  });

  it("network checks (python): HTTP, OTLP, SMTP banner + EHLO with STARTTLS, IMAP greeting", async () => {
    const server = http.createServer((req, res) => {
      res.statusCode = req.url === "/ready" || (req.method === "POST" && req.url === "/v1/traces") ? 200 : 503;
      res.end("{}");
    });
    const smtp = net.createServer((s) => {
      s.write("220 mail.test ESMTP\r\n");
      s.on("data", (d) => {
        const line = d.toString();
        if (/^EHLO/i.test(line)) s.write("250-mail.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
        else if (/^QUIT/i.test(line)) s.end("221 bye\r\n");
      });
    });
    const imap = net.createServer((s) => {
      s.write("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
      s.on("data", (d) => {
        const tag = d.toString().split(" ")[0];
        s.write(`* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n${tag} OK done\r\n`);
      });
    });
    const listen = (srv: net.Server) => new Promise<number>((r) => srv.listen(0, "127.0.0.1", () => r((srv.address() as net.AddressInfo).port)));
    const [hp, sp, ip] = [await listen(server), await listen(smtp), await listen(imap)];
    const run = (...args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn("python3", [path.join(dir, "smoke.py"), ...args], { env: { ...process.env, SMOKE_RETRY_SECONDS: "0", PYTHONDONTWRITEBYTECODE: "1" } });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.on("close", (code) => resolve({ code, out }));
      });
    try {
      expect(await run("api-ready", "http", `http://127.0.0.1:${hp}/ready`)).to.deep.equal({ code: 0, out: "ok api-ready\n" });
      const down = await run("api-ready", "http", `http://127.0.0.1:${hp}/health`);
      expect(down.code).to.equal(1);
      expect(down.out).to.match(/^FAIL api-ready: HTTPError: HTTP Error 503/);
      expect(await run("otlp", "otlp", `http://127.0.0.1:${hp}/v1/traces`)).to.deep.equal({ code: 0, out: "ok otlp\n" });
      expect(await run("smtp", "smtp", `127.0.0.1:${sp}`)).to.deep.equal({ code: 0, out: "ok smtp\n" });
      expect(await run("imap", "imap", `127.0.0.1:${ip}`)).to.deep.equal({ code: 0, out: "ok imap\n" });
      const refused = await run("imap", "imap", `127.0.0.1:${await freePort()}`);
      expect([refused.code, refused.out.split(":")[0]]).to.deep.equal([1, "FAIL imap"]);
    } finally {
      for (const s of [server, smtp, imap]) s.close();
    }
  });
});
