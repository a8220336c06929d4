import { expect } from "chai";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FLOWER_APP, demoCeleryApp } from "../components/lib/demo";
import { inventory, surgePods } from "../config/inventory";
import { celeryContainer, pingCommand } from "../components/workers";
import { assertRestricted, envNamed, redisPortsFor, selects, writeCeleryStandIns } from "./apphelpers";
import { validateObject } from "./checks";
import { evaluate, evaluateStack, findObject, objectsOfKind, ok, recordOf, STACKS, configOf, container, podSpec, rejection } from "./harness";
import type { Evaluation, K8sObject } from "./harness";
import { requireTools } from "./tools";

function egressTargets(ev: Evaluation, workload: string): Record<string, number[]> {
  const policy = findObject(ev, "NetworkPolicy", `allow-${workload}`);
  const out: Record<string, number[]> = {};
  for (const rule of policy.spec.egress ?? []) {
    const name = rule.to[0].podSelector.matchLabels["app.kubernetes.io/name"];
    out[name] = [...(out[name] ?? []), ...rule.ports.map((p: K8sObject) => p.port)];
  }
  return out;
}

/** Value following a flag in an argument list. */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

describe("workers (Celery pools, beat, Flower)", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      let ev: Evaluation;
      before(async () => {
        ev = ok(await evaluateStack(stack));
      });

      // One test per pool the stack's config defines.
      const pools = Object.entries(configOf(stack).workers.pools);
      for (const [pool, p] of pools) {
        it(`pool "${pool}": queues, concurrency, node name, Celery ping liveness, HPA, PDB, rollout, resources`, async () => {
          const cfg = configOf(ev);
          const w = cfg.workers;
          const name = `worker-${pool}`;
          const d = findObject(ev, "Deployment", name, cfg.platform.namespace);
          const c = container(d);
          expect(c.image).to.equal(w.image);
          expect(c.command).to.deep.equal(["celery"]);
          expect(c.args.slice(0, 3)).to.deep.equal(["-A", w.celeryApp, "worker"]);
          expect(flag(c.args, "--queues")).to.equal(p.queues.join(","));
          expect(flag(c.args, "--concurrency")).to.equal(String(p.concurrency));
          expect(flag(c.args, "--hostname")).to.equal(`${pool}@$(POD_NAME)`);
          expect(flag(c.args, "--loglevel")).to.equal({ dev: "debug", staging: "info", prod: "warning" }[stack]);
          expect(envNamed(c, "POD_NAME").valueFrom.fieldRef.fieldPath).to.equal("metadata.name");
          // Liveness asks Celery whether this node answers, not whether a process exists.
          expect(c.livenessProbe.exec.command).to.deep.equal(pingCommand(w.celeryApp, pool));
          expect(c.livenessProbe.exec.command[2]).to.match(new RegExp(`celery -A ${w.celeryApp.replace(".", "\\.")} inspect ping --destination "${pool}@\\$POD_NAME"`));
          expect(c.livenessProbe.timeoutSeconds).to.be.greaterThan(10);
          expect(c.startupProbe.exec.command).to.deep.equal(c.livenessProbe.exec.command);
          expect(podSpec(d).terminationGracePeriodSeconds).to.equal(w.terminationGracePeriodSeconds);
          expect(d.spec.strategy).to.deep.equal({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: surgePods(p.hpa.maxReplicas) } });
          expect(inventory(cfg).find((g) => g.name === name)!.surge).to.equal(surgePods(p.hpa.maxReplicas));
          expect(d.spec.replicas).to.equal({ dev: 1, staging: 2, prod: 2 }[stack]);
          expect(c.resources).to.deep.equal(p.resources);

          const hpa = findObject(ev, "HorizontalPodAutoscaler", name);
          expect(hpa.spec.scaleTargetRef.name).to.equal(name);
          expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).to.deep.equal([p.hpa.minReplicas, p.hpa.maxReplicas]);
          if (stack === "prod") expect([p.hpa.minReplicas, p.hpa.maxReplicas]).to.deep.equal([2, 8]);
          expect(hpa.spec.metrics).to.deep.equal([{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 75 } } }]);
          const pdb = findObject(ev, "PodDisruptionBudget", name);
          expect(pdb.spec.maxUnavailable).to.equal(1);
          expect(selects(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels)).to.equal(true);
          assertRestricted(expect, d);
          expect(podSpec(d).serviceAccountName).to.equal("worker");
        });
      }

      it("gives workers the broker/database credentials from Secrets and settings from a ConfigMap", () => {
        const cfg = configOf(ev);
        const d = findObject(ev, "Deployment", `worker-${Object.keys(cfg.workers.pools)[0]}`);
        const c = container(d);
        const secret = findObject(ev, "Secret", "app-secrets");
        for (const key of ["DB_USER", "DB_PASSWORD", "JWT_SECRET", "ENCRYPTION_KEY"]) {
          expect(envNamed(c, key).valueFrom.secretKeyRef).to.deep.equal({ name: "app-secrets", key });
          expect(secret.stringData).to.have.property(key);
        }
        const cm = findObject(ev, "ConfigMap", "worker-config");
        expect(cm.data.LOG_LEVEL).to.equal({ dev: "DEBUG", staging: "INFO", prod: "WARNING" }[stack]);
        expect(cm.data.SMTP_PORT).to.equal("587");
        expect(c.envFrom).to.deep.equal([{ configMapRef: { name: "worker-config" } }]);
        expect(d.spec.template.metadata.annotations["checksum/config"]).to.match(/^[0-9a-f]{64}$/);
      });

      it("runs beat as a singleton: 1 replica, Recreate, no HPA, no PDB", () => {
        const cfg = configOf(ev);
        const d = findObject(ev, "Deployment", "beat", cfg.platform.namespace);
        expect(d.spec.replicas).to.equal(1);
        expect(d.spec.strategy).to.deep.equal({ type: "Recreate" });
        expect(objectsOfKind(ev, "HorizontalPodAutoscaler").filter((h: K8sObject) => h.spec.scaleTargetRef.name === "beat")).to.have.length(0);
        expect(objectsOfKind(ev, "PodDisruptionBudget").filter((p: K8sObject) => selects(p.spec.selector.matchLabels, d.spec.template.metadata.labels))).to.have.length(0);
        expect(recordOf(ev, "Deployment", "beat").options.ignoreChanges).to.not.include("spec.replicas");
        const c = container(d);
        expect(c.args.slice(0, 3)).to.deep.equal(["-A", cfg.workers.celeryApp, "beat"]);
        expect(flag(c.args, "--schedule")).to.match(/^\/tmp\//);
        expect(c.resources).to.deep.equal(cfg.workers.beat.resources);
        assertRestricted(expect, d);
        expect(inventory(cfg).find((g) => g.name === "beat")).to.include({ maxPods: 1, surge: 0 });
        // Beat only publishes to the broker (and traces).
        expect(Object.keys(egressTargets(ev, "beat")).sort()).to.deep.equal(["jaeger", "redis"]);
      });

      it(`${stack === "prod" ? "has no" : "runs"} Flower${stack === "prod" ? "" : " with generated basic auth and a /flower route"}`, () => {
        const cfg = configOf(ev);
        expect(cfg.workers.flower.enabled).to.equal(stack !== "prod");
        const flowers = objectsOfKind(ev, "Deployment").filter((d: K8sObject) => d.metadata.name === "flower");
        const routes = ev.outputs.routes as { path: string }[];
        if (stack === "prod") {
          expect(flowers).to.have.length(0);
          expect(routes.map((r) => r.path)).to.not.include("/flower");
          return;
        }
        const d = flowers[0];
        expect(d.spec.replicas).to.equal(1);
        expect(d.spec.strategy).to.deep.equal({ type: "Recreate" });
        const c = container(d);
        expect(envNamed(c, "FLOWER_BASIC_AUTH").valueFrom.secretKeyRef).to.deep.equal({ name: "flower-auth", key: "FLOWER_BASIC_AUTH" });
        expect(findObject(ev, "Secret", "flower-auth").stringData).to.have.property("FLOWER_BASIC_AUTH");
        expect(envNamed(c, "FLOWER_URL_PREFIX").value).to.equal("flower");
        expect(c.readinessProbe.httpGet).to.deep.equal({ path: "/flower/healthcheck", port: "http" });
        assertRestricted(expect, d);
        const svc = findObject(ev, "Service", "flower");
        expect(svc.spec.ports.map((p: K8sObject) => [p.name, p.targetPort])).to.deep.equal([
          ["http", "http"],
          ["metrics", "http"],
        ]);
        expect(selects(svc.spec.selector, d.spec.template.metadata.labels)).to.equal(true);
        expect(routes).to.deep.include({ path: "/flower", service: "flower", port: 5555 });
        expect(inventory(cfg).find((g) => g.name === "flower")!.metricsPort).to.equal(5555);
        expect(egressTargets(ev, "flower")).to.deep.equal({ redis: redisPortsFor(cfg) });
      });

      it("declares worker edges to every configured dependency", () => {
        const cfg = configOf(ev);
        const targets = egressTargets(ev, `worker-${Object.keys(cfg.workers.pools)[0]}`);
        expect(targets).to.deep.include({ postgres: [5432], redis: redisPortsFor(cfg), mongo: [27017], jaeger: [4317, 4318], postfix: [587] });
      });

      it("registers objects that pass the Kubernetes schema", async () => {
        for (const kind of ["Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget"]) {
          for (const obj of objectsOfKind(ev, kind)) await validateObject(obj);
        }
      });
    });
  }

  describe("seed 002's queues as pools (templates fill what a pool omits)", () => {
    let ev: Evaluation;
    before(async () => {
      ev = ok(
        await evaluate({
          stack: "prod",
          set: {
            "workers.pools": {
              default: { queues: ["default"] },
              audio: { queues: ["audio_processing"], concurrency: 2, prefetchMultiplier: 1, resources: { requests: { cpu: "500m", memory: "1Gi" }, limits: { cpu: "2", memory: "3Gi" } } },
              ai: { queues: ["ai_analysis", "embeddings"], hpa: { minReplicas: 2, maxReplicas: 5, cpuUtilization: 80, memoryUtilization: 85 }, maxTasksPerChild: 100 },
            },
            "workers.dependsOn": ["mongo", "redis"],
          },
        }),
      );
    });

    it("deploys one Deployment and HPA per pool with its own options", () => {
      const audio = container(findObject(ev, "Deployment", "worker-audio"));
      expect(flag(audio.args, "--queues")).to.equal("audio_processing");
      expect(flag(audio.args, "--prefetch-multiplier")).to.equal("1");
      expect(audio.resources.limits.memory).to.equal("3Gi");
      const ai = container(findObject(ev, "Deployment", "worker-ai"));
      expect(flag(ai.args, "--queues")).to.equal("ai_analysis,embeddings");
      expect(flag(ai.args, "--max-tasks-per-child")).to.equal("100");
      const hpa = findObject(ev, "HorizontalPodAutoscaler", "worker-ai");
      expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).to.deep.equal([2, 5]);
      expect(hpa.spec.metrics.map((m: K8sObject) => m.resource.target.averageUtilization)).to.deep.equal([80, 85]);
      // Template values for what the pool did not say.
      expect(flag(container(findObject(ev, "Deployment", "worker-default")).args, "--concurrency")).to.equal("4");
    });

    it("wires only the declared dependencies", () => {
      expect(egressTargets(ev, "worker-audio")).to.deep.equal({ mongo: [27017], redis: redisPortsFor(configOf(ev)) });
      expect(envNamed(container(findObject(ev, "Deployment", "worker-audio")), "DB_PASSWORD")).to.be.undefined;
      expect(findObject(ev, "ConfigMap", "worker-config").data.SMTP_HOST).to.be.undefined;
    });
  });

  it("wires the connections Secret and telemetry env into worker containers when the integrator passes them", () => {
    const cfg = configOf("prod");
    const c = celeryContainer(
      cfg,
      {
        app: { name: "app-secrets", keys: ["JWT_SECRET"] },
        connections: { name: "app-connections", keys: ["CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL"] },
        telemetryEnv: (w) => [{ name: "OTEL_SERVICE_NAME", value: w }],
      },
      ["redis"],
      "worker-default",
      { resources: cfg.workers.pools.default.resources },
    );
    const env = c.env as K8sObject[];
    expect(env.map((e) => e.name)).to.deep.equal(["POD_NAME", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "JWT_SECRET", "OTEL_SERVICE_NAME"]);
    expect(envNamed(c, "CELERY_BROKER_URL").valueFrom.secretKeyRef).to.deep.equal({ name: "app-connections", key: "CELERY_BROKER_URL" });
    expect(envNamed(c, "OTEL_SERVICE_NAME").value).to.equal("worker-default");
  });

  describe("bad configurations are rejected before any resource exists", () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["beat replicas 2", { "workers.beat.replicas": 2 }, /workers\.beat\.replicas: beat is a singleton scheduler/],
      ["a pool with no queue", { "workers.pools.default.queues": [] }, /workers\.pools\.default\.queues: must list at least one queue/],
      ["a pool with zero workers", { "workers.pools.default.concurrency": 0 }, /workers\.pools\.default\.concurrency:/],
      ["an unknown pool option", { "workers.pools.default.autoscale": "2,8" }, /workers\.pools\.default\.autoscale: unknown key/],
      ["HPA min > max", { "workers.pools.default.hpa.minReplicas": 9 }, /workers\.pools\.default\.hpa\.maxReplicas: must be >= minReplicas \(9\)/],
      ["latest in prod", { "workers.image": "ghcr.io/example/email-worker:latest" }, /workers\.image: must not use the mutable tag 'latest' in prod/],
      ["a queue in two pools", { "workers.pools.other": { queues: ["default"] } }, /workers\.pools\.other\.queues: queue "default" is already consumed by pool "default"/],
      ["workers without their broker", { "redis.enabled": false }, /workers\.enabled: workers need the Celery broker, but redis is disabled/],
      ["dependsOn without the broker", { "workers.dependsOn": ["postgres"] }, /workers\.dependsOn: must include redis/],
      ["a dependency on a disabled tier", { "jaeger.enabled": false, "workers.dependsOn": ["redis", "jaeger"] }, /workers\.dependsOn\.1: workers depends on jaeger, but jaeger is disabled/],
    ];
    for (const [what, set, message] of cases) {
      it(what, async () => {
        expect(await rejection({ stack: "prod", set })).to.match(message);
      });
    }
  });
});

describe("Celery on Redis Sentinel: the demo app and Flower read the transport options", () => {
  it("Flower (staging) gets the broker URL and its transport options from app-connections and loads them in flower_app", async () => {
    const ev = ok(await evaluateStack("staging"));
    expect(configOf(ev).redis.sentinel.enabled).to.equal(true);
    const d = findObject(ev, "Deployment", "flower");
    const c = container(d);
    expect(c.command).to.deep.equal(["celery", "-A", "flower_app", "flower"]);
    for (const key of ["CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS"]) expect(envNamed(c, key).valueFrom.secretKeyRef).to.deep.equal({ name: "app-connections", key });
    expect(envNamed(c, "PYTHONPATH").value).to.equal("/opt/flower");
    expect(c.volumeMounts).to.deep.include({ name: "app", mountPath: "/opt/flower", readOnly: true });
    expect(podSpec(d).volumes.find((v: K8sObject) => v.name === "app").configMap.name).to.equal("flower-app");
    expect(findObject(ev, "ConfigMap", "flower-app").data["flower_app.py"]).to.equal(FLOWER_APP);
  });

  it("the demo app and flower_app turn the JSON env into broker and result-backend transport options (run with a stand-in celery package)", function () {
    requireTools("python3");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "celery-options-"));
    writeCeleryStandIns(dir);
    fs.writeFileSync(path.join(dir, "demo_app.py"), demoCeleryApp("celery_app", "default"));
    fs.writeFileSync(path.join(dir, "flower_app.py"), FLOWER_APP);
    const options = { master_name: "redis", sentinel_kwargs: { password: "sentinel-pw" }, socket_timeout: 5, socket_connect_timeout: 4, socket_keepalive_options: { TCP_KEEPIDLE: 1, TCP_KEEPCNT: 4 } };
    const env = { ...process.env, PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: "1", CELERY_BROKER_URL: "sentinel://:pw@h:26379/1", CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify(options), CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS: JSON.stringify(options) };
    const conf = (module: string, attr: string) =>
      JSON.parse(execFileSync("python3", ["-c", `import json, ${module} as m; print(json.dumps(dict(m.${attr}.conf)))`], { env, encoding: "utf8" }));
    const demo = conf("demo_app", "celery_app");
    // Keepalive options by name become the socket module's numbers (Linux: TCP_KEEPIDLE 4, TCP_KEEPCNT 6).
    const numbers = JSON.parse(execFileSync("python3", ["-c", "import json, socket; print(json.dumps([socket.TCP_KEEPIDLE, socket.TCP_KEEPCNT]))"], { encoding: "utf8" }));
    expect(demo.broker_transport_options).to.deep.equal({ ...options, socket_keepalive_options: { [numbers[0]]: 1, [numbers[1]]: 4 } });
    expect(demo.result_backend_transport_options).to.deep.equal(options);
    // The result backend's own timeouts follow the broker's (a lost node stalls neither).
    expect([demo.redis_socket_timeout, demo.redis_socket_connect_timeout]).to.deep.equal([5, 4]);
    expect(conf("flower_app", "app").broker_transport_options).to.deep.equal(demo.broker_transport_options);
    // Without Sentinel (dev) the variables are absent: no options.
    const plain = JSON.parse(execFileSync("python3", ["-c", "import json, demo_app as m; print(json.dumps(dict(m.celery_app.conf)))"], { env: { ...process.env, PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: "1" }, encoding: "utf8" }));
    expect(plain.broker_transport_options).to.deep.equal({});
    expect(plain.redis_socket_timeout).to.equal(120);
    // A new master's NOREPLICAS (before its replicas attach) is a connection error: the worker reconnects instead of exiting.
    const mapped = execFileSync("python3", ["-c", "import demo_app, redis.connection as c, redis.exceptions as e; print(c.BaseParser.EXCEPTION_CLASSES['NOREPLICAS'] is e.ConnectionError)"], { env, encoding: "utf8" });
    expect(mapped.trim()).to.equal("True");
  });
});
