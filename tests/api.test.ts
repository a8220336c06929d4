import * as crypto from "crypto";
import { expect } from "chai";
import { inventory, surgePods } from "../config/inventory";
import { APP_EPHEMERAL_STORAGE } from "../config/common";
import { keyOwner, secretEnvFor } from "../components/lib/appwiring";
import { serviceHost } from "../components/lib/ports";
import { selectorLabels } from "../components/lib/labels";
import type { HttpServiceConfig } from "../config/app";
import { httpPod } from "../components/services";
import { assertRestricted, envNamed, redisPortsFor, selects, sortedJson } from "./apphelpers";
import { validateObject } from "./checks";
import { evaluate, evaluateStack, findObject, objectsOfKind, ok, recordOf, STACKS, configOf, container, podSpec, rejection } from "./harness";
import type { Evaluation, K8sObject } from "./harness";

const LOG_LEVEL = { dev: "DEBUG", staging: "INFO", prod: "WARNING" } as const;

function api(ev: Evaluation): HttpServiceConfig {
  const svc = configOf(ev).services.api;
  if (svc.kind !== "http") throw new Error("api is not an http service");
  return svc;
}

function egressPorts(ev: Evaluation, workload: string): Map<string, number[]> {
  const policy = findObject(ev, "NetworkPolicy", `allow-${workload}`);
  const out = new Map<string, number[]>();
  for (const rule of policy.spec.egress ?? []) {
    const to = rule.to[0];
    const name = to.podSelector?.matchLabels?.["app.kubernetes.io/name"] ?? to.ipBlock?.cidr;
    out.set(name, [...(out.get(name) ?? []), ...rule.ports.map((p: K8sObject) => p.port)]);
  }
  return out;
}

describe("api (HTTP services)", () => {
  for (const stack of STACKS) {
    describe(stack, () => {
      it("runs the configured replicas with a zero-downtime rolling update sized like the inventory", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(ev);
        const a = api(ev);
        const d = findObject(ev, "Deployment", "api", cfg.platform.namespace);
        expect(d.spec.replicas).to.equal(a.replicas);
        expect(a.replicas).to.equal({ dev: 1, staging: 2, prod: 3 }[stack]);
        const group = inventory(cfg).find((g) => g.name === "api")!;
        expect(d.spec.strategy).to.deep.equal({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: group.surge } });
        expect(group.surge).to.equal(surgePods(Math.max(a.replicas, a.hpa.maxReplicas)));
        expect(podSpec(d).terminationGracePeriodSeconds).to.equal(a.terminationGracePeriodSeconds);
        expect(a.terminationGracePeriodSeconds).to.equal(30);
        // preStop drains endpoints before SIGTERM and fits inside the grace period.
        const preStop = container(d).lifecycle.preStop.sleep.seconds;
        expect(preStop).to.equal(a.preStopSeconds).and.be.greaterThan(0).and.lessThan(a.terminationGracePeriodSeconds);
        // The HPA owns the replica count after creation.
        expect(recordOf(ev, "Deployment", "api").options.ignoreChanges).to.include("spec.replicas");
      });

      it("exposes http 5000, metrics 9090 and health 8080 with the seed's probes", async () => {
        const ev = ok(await evaluateStack(stack));
        const a = api(ev);
        const c = container(findObject(ev, "Deployment", "api"));
        const ports = Object.fromEntries(c.ports.map((p: K8sObject) => [p.name, p.containerPort]));
        expect(ports).to.deep.equal({ http: 5000, metrics: 9090, health: 8080 });
        expect(c.livenessProbe.httpGet).to.deep.equal({ path: "/health", port: "health" });
        expect(c.livenessProbe.periodSeconds).to.equal(10);
        expect(c.readinessProbe.httpGet).to.deep.equal({ path: "/ready", port: "health" });
        expect(c.readinessProbe.periodSeconds).to.equal(5);
        // The startup probe gives a slow boot the configured budget before liveness may kill it.
        expect(c.startupProbe.httpGet.path).to.equal("/health");
        expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).to.be.at.least(a.probes.startupSeconds);
        expect(a.probes.startupSeconds).to.be.at.least(60);
      });

      it("reads the seed's settings from a ConfigMap whose checksum rolls the pods", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(ev);
        const cm = findObject(ev, "ConfigMap", "api-config", cfg.platform.namespace);
        expect(cm.data).to.include({
          DB_POOL_SIZE: "20",
          GUNICORN_WORKERS: "4",
          IMAP_POOL_SIZE: "10",
          RATE_LIMIT_REQUESTS_PER_MINUTE: "60",
          ENABLE_IMAP_SYNC: "true",
          ENABLE_METRICS: "true",
          LOG_LEVEL: LOG_LEVEL[stack],
          FLASK_ENV: stack === "dev" ? "development" : "production",
          PORT: "5000",
        });
        // Mail is enabled in every stack: the app submits through Postfix on 587.
        expect(cm.data.SMTP_HOST).to.equal(serviceHost("postfix", cfg.platform.mailNamespace));
        expect(cm.data.SMTP_PORT).to.equal("587");
        const d = findObject(ev, "Deployment", "api");
        expect(container(d).envFrom).to.deep.equal([{ configMapRef: { name: "api-config" } }]);
        const sum = crypto.createHash("sha256").update(sortedJson(cm.data)).digest("hex");
        expect(d.spec.template.metadata.annotations["checksum/config"]).to.equal(sum);
      });

      it("takes credentials from the generated Secret through secretKeyRef only", async () => {
        const ev = ok(await evaluateStack(stack));
        const c = container(findObject(ev, "Deployment", "api"));
        const secret = findObject(ev, "Secret", "app-secrets");
        for (const key of ["DB_USER", "DB_PASSWORD", "JWT_SECRET", "ENCRYPTION_KEY"]) {
          const e = envNamed(c, key);
          expect(e, key).to.exist;
          expect(e.value, key).to.be.undefined;
          expect(e.valueFrom.secretKeyRef).to.deep.equal({ name: "app-secrets", key });
          expect(secret.stringData, key).to.have.property(key);
        }
        for (const e of c.env) expect(e.value === undefined || !/PASSWORD|SECRET|KEY/.test(e.name), e.name).to.equal(true);
      });

      it("autoscales on CPU 70% and memory 80% with the seed's behaviour", async () => {
        const ev = ok(await evaluateStack(stack));
        const a = api(ev);
        const hpa = findObject(ev, "HorizontalPodAutoscaler", "api");
        expect(hpa.spec.scaleTargetRef).to.deep.equal({ apiVersion: "apps/v1", kind: "Deployment", name: "api" });
        expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).to.deep.equal([a.hpa.minReplicas, a.hpa.maxReplicas]);
        expect([a.hpa.minReplicas, a.hpa.maxReplicas]).to.deep.equal({ dev: [1, 2], staging: [2, 4], prod: [3, 10] }[stack]);
        const targets = Object.fromEntries(hpa.spec.metrics.map((m: K8sObject) => [m.resource.name, m.resource.target.averageUtilization]));
        expect(targets).to.deep.equal({ cpu: 70, memory: 80 });
        const up = hpa.spec.behavior.scaleUp;
        expect(up.selectPolicy).to.equal("Max");
        expect(up.policies).to.deep.include.members([
          { type: "Percent", value: 100, periodSeconds: 60 },
          { type: "Pods", value: 2, periodSeconds: 60 },
        ]);
        const down = hpa.spec.behavior.scaleDown;
        expect(down.stabilizationWindowSeconds).to.equal(300);
        expect(down.selectPolicy).to.equal("Min");
        expect(down.policies).to.deep.include.members([
          { type: "Percent", value: 50, periodSeconds: 60 },
          { type: "Pods", value: 1, periodSeconds: 60 },
        ]);
      });

      it("has a PDB that never blocks every eviction, and spreads over nodes and zones", async () => {
        const ev = ok(await evaluateStack(stack));
        const a = api(ev);
        const d = findObject(ev, "Deployment", "api");
        const pdb = findObject(ev, "PodDisruptionBudget", "api");
        expect(Math.max(a.replicas, a.hpa.maxReplicas)).to.be.greaterThan(1);
        expect(pdb.spec.maxUnavailable).to.equal(1);
        expect(pdb.spec.minAvailable).to.be.undefined;
        expect(selects(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels)).to.equal(true);
        const spec = podSpec(d);
        expect(spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey).to.equal("kubernetes.io/hostname");
        expect(spec.topologySpreadConstraints[0]).to.include({ topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: "ScheduleAnyway" });
      });

      it("has a ClusterIP Service, and an external NodePort with ClientIP affinity in dev only", async () => {
        const ev = ok(await evaluateStack(stack));
        const cfg = configOf(ev);
        const d = findObject(ev, "Deployment", "api");
        const containerPorts = new Set(container(d).ports.map((p: K8sObject) => p.name));
        const svc = findObject(ev, "Service", "api", cfg.platform.namespace);
        expect(svc.spec.type).to.equal("ClusterIP");
        expect(svc.spec.ports.map((p: K8sObject) => [p.name, p.port])).to.deep.equal([
          ["http", 5000],
          ["metrics", 9090],
          // The smoke test asks /ready where the probes do, through the Service (components/smoke.ts).
          ["health", 8080],
        ]);
        for (const p of svc.spec.ports) expect(containerPorts.has(p.targetPort), p.targetPort).to.equal(true);
        expect(svc.spec.selector).to.deep.equal(selectorLabels(cfg, { name: "api", component: "api" }));
        expect(selects(svc.spec.selector, d.spec.template.metadata.labels)).to.equal(true);
        // External exposure only where config asks: a NodePort in dev; staging/prod use the edge's Ingress.
        const lbs = objectsOfKind(ev, "Service").filter((s: K8sObject) => s.metadata.name === "api-lb");
        expect(api(ev).expose.type).to.equal(stack === "dev" ? "NodePort" : "None");
        expect(lbs).to.have.length(stack === "dev" ? 1 : 0);
        if (stack === "dev") {
          expect(lbs[0].spec.type).to.equal("NodePort");
          expect(lbs[0].spec.sessionAffinity).to.equal("ClientIP");
          expect(lbs[0].spec.sessionAffinityConfig.clientIP.timeoutSeconds).to.equal(10800);
        }
        expect(inventory(cfg).find((g) => g.name === "api")!.metricsPort).to.equal(9090);
      });

      it("passes Pod Security restricted with a read-only root, /tmp scratch, own ServiceAccount, config resources", async () => {
        const ev = ok(await evaluateStack(stack));
        const a = api(ev);
        const d = findObject(ev, "Deployment", "api");
        assertRestricted(expect, d);
        expect(podSpec(d).serviceAccountName).to.equal("api");
        expect(findObject(ev, "ServiceAccount", "api").automountServiceAccountToken).to.equal(false);
        expect(container(d).resources).to.deep.equal(a.resources);
        const labels = d.spec.template.metadata.labels;
        for (const k of ["name", "instance", "component", "part-of", "managed-by", "version"]) expect(labels, k).to.have.property(`app.kubernetes.io/${k}`);
        // Dev runs the demo on the official Python image; staging/prod name the user's image.
        expect(labels["app.kubernetes.io/version"]).to.equal(stack === "dev" ? "3.12.7-alpine3.20" : "1.0.0");
      });

      it("declares its dependencies as graph edges (NetworkPolicy egress) and a route for the edge", async () => {
        const ev = ok(await evaluateStack(stack));
        const egress = egressPorts(ev, "api");
        expect(egress.get("postgres")).to.deep.equal([5432]);
        expect(egress.get("redis")).to.deep.equal(redisPortsFor(configOf(stack)));
        expect(egress.get("mongo")).to.deep.equal([27017]);
        expect(egress.get("jaeger")).to.deep.equal([4317, 4318]);
        expect(egress.get("postfix")).to.deep.equal([587]);
        const policy = findObject(ev, "NetworkPolicy", "allow-api");
        const external = (policy.spec.ingress ?? []).filter((r: K8sObject) => r.from[0].ipBlock);
        // Only the dev NodePort admits clients from outside the cluster.
        expect(external.map((r: K8sObject) => r.ports)).to.deep.equal(stack === "dev" ? [[{ port: 5000, protocol: "TCP" }]] : []);
        expect(ev.outputs.routes).to.deep.include({ path: "/api", service: "api", port: 5000 });
      });

      it("registers objects that pass the Kubernetes schema", async () => {
        const ev = ok(await evaluateStack(stack));
        for (const kind of ["Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget"]) {
          for (const obj of objectsOfKind(ev, kind)) await validateObject(obj);
        }
      });
    });
  }

  describe("several services and a static frontend (issue 8)", () => {
    // Seed 001's auth/chat/billing with its resource table, plus seed 002's nginx frontend.
    const seed001 = {
      auth: { min: 2, max: 10, res: ["250m", "256Mi", "500m", "512Mi"] },
      chat: { min: 3, max: 20, res: ["300m", "384Mi", "750m", "768Mi"] },
      billing: { min: 2, max: 8, res: ["250m", "256Mi", "500m", "512Mi"] },
    };
    const set: Record<string, unknown> = { "services.frontend": { kind: "static", image: "nginxinc/nginx-unprivileged:1.27.3-alpine" } };
    for (const [name, s] of Object.entries(seed001)) {
      set[`services.${name}`] = {
        image: `ghcr.io/example/${name}-service:2.3.1`,
        path: `/api/${name}`,
        replicas: s.min,
        hpa: { minReplicas: s.min, maxReplicas: s.max },
        resources: { requests: { cpu: s.res[0], memory: s.res[1] }, limits: { cpu: s.res[2], memory: s.res[3] } },
        ports: { http: 3000, metrics: null, health: null },
        env: { NODE_ENV: "production" },
        dependsOn: ["postgres", "redis", "jaeger"],
      };
    }
    let ev: Evaluation;
    before(async () => {
      ev = ok(await evaluate({ stack: "prod", set }));
    });

    it("deploys one Deployment, HPA, PDB and Service per entry with its seed range and resources", () => {
      for (const [name, s] of Object.entries(seed001)) {
        const d = findObject(ev, "Deployment", name);
        const hpa = findObject(ev, "HorizontalPodAutoscaler", name);
        expect([hpa.spec.minReplicas, hpa.spec.maxReplicas], name).to.deep.equal([s.min, s.max]);
        // The seed's CPU and memory; ephemeral storage keeps the template's default (the seed names none).
        expect(container(d).resources).to.deep.equal({
          requests: { cpu: s.res[0], memory: s.res[1], "ephemeral-storage": APP_EPHEMERAL_STORAGE.request },
          limits: { cpu: s.res[2], memory: s.res[3], "ephemeral-storage": APP_EPHEMERAL_STORAGE.limit },
        });
        expect(d.spec.strategy.rollingUpdate.maxSurge).to.equal(surgePods(s.max));
        expect(findObject(ev, "PodDisruptionBudget", name).spec.maxUnavailable).to.equal(1);
        // No health port: probes fall back to the http port; no metrics port on the Service.
        expect(container(d).livenessProbe.httpGet.port).to.equal("http");
        expect(findObject(ev, "Service", name).spec.ports.map((p: K8sObject) => p.name)).to.deep.equal(["http"]);
        expect(findObject(ev, "ConfigMap", `${name}-config`).data.NODE_ENV).to.equal("production");
      }
      expect(findObject(ev, "Deployment", "api")).to.exist;
    });

    it("routes each service at its path prefix, the frontend at /", () => {
      const routes = ev.outputs.routes as { path: string; service: string; port: number }[];
      expect(routes).to.deep.include.members([
        { path: "/api/auth", service: "auth", port: 3000 },
        { path: "/api/chat", service: "chat", port: 3000 },
        { path: "/api/billing", service: "billing", port: 3000 },
        { path: "/api", service: "api", port: 5000 },
        { path: "/", service: "frontend", port: 8080 },
      ]);
    });

    it("wires only the declared dependencies (env and NetworkPolicy)", () => {
      const egress = egressPorts(ev, "chat");
      expect([...egress.keys()].sort()).to.deep.equal(["jaeger", "postgres", "redis"]);
      const env = container(findObject(ev, "Deployment", "chat")).env.map((e: K8sObject) => e.name);
      expect(env).to.include.members(["DB_USER", "DB_PASSWORD", "JWT_SECRET"]);
      expect(findObject(ev, "ConfigMap", "chat-config").data.SMTP_HOST).to.be.undefined;
    });

    it("serves the frontend from unprivileged nginx with cache headers, restricted and read-only", async () => {
      const d = findObject(ev, "Deployment", "frontend");
      assertRestricted(expect, d);
      expect(podSpec(d).securityContext.runAsUser).to.equal(101);
      const c = container(d);
      expect(c.ports).to.deep.equal([{ name: "http", containerPort: 8080, protocol: "TCP" }]);
      expect(c.livenessProbe.httpGet.path).to.equal("/healthz");
      const conf = findObject(ev, "ConfigMap", "frontend-nginx").data["default.conf"];
      expect(conf).to.match(/listen 8080;/);
      // Immutable only on a found asset: without `always` nginx leaves it off a 404, which gets no-store instead.
      expect(conf).to.match(/add_header Cache-Control "public, max-age=31536000, immutable";/);
      expect(conf).to.match(/error_page 404 @missing_asset;/);
      expect(conf).to.match(/location @missing_asset \{\s+add_header Cache-Control "no-store" always;\s+return 404;/);
      expect(conf).to.match(/location \/ \{\s+add_header Cache-Control "no-cache"/);
      expect(c.volumeMounts).to.deep.include({ name: "nginx-conf", mountPath: "/etc/nginx/conf.d", readOnly: true });
      // Seed 002: 128Mi-512Mi, 2-5 replicas on CPU 60% / memory 70%.
      expect(c.resources.requests.memory).to.equal("128Mi");
      expect(c.resources.limits.memory).to.equal("512Mi");
      const hpa = findObject(ev, "HorizontalPodAutoscaler", "frontend");
      expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).to.deep.equal([2, 5]);
      expect(hpa.spec.metrics.map((m: K8sObject) => m.resource.target.averageUtilization)).to.deep.equal([60, 70]);
      // Only the ingress controller reaches the frontend, on its http port; it talks to nothing.
      const policy = objectsOfKind(ev, "NetworkPolicy").find((p: K8sObject) => p.metadata.name === "allow-frontend");
      expect(policy.spec.policyTypes).to.deep.equal(["Ingress"]);
      expect(policy.spec.ingress).to.have.length(1);
      expect(policy.spec.ingress[0].from[0].namespaceSelector.matchLabels).to.deep.equal({ "kubernetes.io/metadata.name": "ingress-nginx" });
      expect(policy.spec.ingress[0].ports.map((p: K8sObject) => p.port)).to.deep.equal(c.ports.filter((p: K8sObject) => p.name === "http").map((p: K8sObject) => p.containerPort));
      for (const obj of [d, findObject(ev, "Service", "frontend"), hpa]) await validateObject(obj);
    });
  });

  describe("variants", () => {
    it("a changed setting changes the ConfigMap and its checksum (rolls the pods)", async () => {
      const base = findObject(ok(await evaluateStack("prod")), "Deployment", "api");
      const ev = ok(await evaluate({ stack: "prod", set: { "services.api.env.FEATURE_X": "on" } }));
      expect(findObject(ev, "ConfigMap", "api-config").data.FEATURE_X).to.equal("on");
      const changed = findObject(ev, "Deployment", "api");
      expect(changed.spec.template.metadata.annotations["checksum/config"]).to.not.equal(base.spec.template.metadata.annotations["checksum/config"]);
    });

    it("a LoadBalancer where config asks: ClientIP affinity 10800 s, client IP kept, source ranges enforced twice", async () => {
      const ev = ok(await evaluate({ stack: "prod", set: { "services.api.expose.type": "LoadBalancer", "services.api.expose.sourceRanges": ["203.0.113.0/24"] } }));
      const lb = findObject(ev, "Service", "api-lb");
      expect(lb.spec).to.deep.include({ type: "LoadBalancer", sessionAffinity: "ClientIP", externalTrafficPolicy: "Local", loadBalancerSourceRanges: ["203.0.113.0/24"] });
      expect(lb.spec.sessionAffinityConfig.clientIP.timeoutSeconds).to.equal(10800);
      expect(lb.spec.ports).to.deep.equal([{ name: "http", port: 5000, targetPort: "http", protocol: "TCP" }]);
      const ingress = findObject(ev, "NetworkPolicy", "allow-api").spec.ingress;
      expect(ingress).to.deep.include({ from: [{ ipBlock: { cidr: "203.0.113.0/24" } }], ports: [{ port: 5000, protocol: "TCP" }] });
      await validateObject(lb);
    });

    it("a disabled tier disappears from the default dependencies: no env var, no edge", async () => {
      const ev = ok(await evaluate({ stack: "prod", set: { "postgres.enabled": false, "mail.enabled": false } }));
      const c = container(findObject(ev, "Deployment", "api"));
      expect(envNamed(c, "DB_USER")).to.be.undefined;
      expect(envNamed(c, "DB_PASSWORD")).to.be.undefined;
      expect(findObject(ev, "ConfigMap", "api-config").data.SMTP_HOST).to.be.undefined;
      const egress = egressPorts(ev, "api");
      expect(egress.has("postgres")).to.equal(false);
      expect(egress.has("postfix")).to.equal(false);
      expect(egress.get("redis")).to.deep.equal(redisPortsFor(configOf("prod")));
    });

    it("a disabled service or worker tier leaves no Deployment, Service, route or policy behind", async () => {
      const ev = ok(await evaluate({ stack: "staging", set: { "services.api.enabled": false, "workers.enabled": false } }));
      const appNames = new Set(["api", "api-lb", "api-config", "worker-default", "beat", "flower", "worker-config"]);
      for (const kind of ["Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceAccount"]) {
        expect(objectsOfKind(ev, kind).filter((o: K8sObject) => appNames.has(o.metadata.name)), kind).to.have.length(0);
      }
      // Only the operators' Jaeger route is left: nothing routes to a service that is gone.
      expect((ev.outputs.routes as { service: string }[]).filter((r) => appNames.has(r.service))).to.deep.equal([]);
      const policies = objectsOfKind(ev, "NetworkPolicy").map((p: K8sObject) => JSON.stringify(p));
      for (const name of ["api", "worker-default", "beat", "flower"]) expect(policies.some((p: string) => p.includes(`"app.kubernetes.io/name":"${name}"`)), name).to.equal(false);
    });

    it("wires the connections Secret and telemetry env into the API container when the integrator passes them", () => {
      const cfg = configOf("prod");
      const svc = cfg.services.api;
      if (svc.kind !== "http") throw new Error("api is http");
      const telemetry = (w: string) => [{ name: "OTEL_SERVICE_NAME", value: w }];
      const pod = httpPod(cfg, "api", svc, {
        app: { name: "app-secrets", keys: ["DB_USER", "DB_PASSWORD", "JWT_SECRET", "ENCRYPTION_KEY"] },
        connections: { name: "app-connections", keys: ["DATABASE_URL", "DB_HOST", "REDIS_URL", "CELERY_BROKER_URL", "MONGODB_URI"] },
        telemetryEnv: telemetry,
      });
      const env = pod.container.env as K8sObject[];
      for (const key of ["DATABASE_URL", "DB_HOST", "REDIS_URL", "CELERY_BROKER_URL", "MONGODB_URI"]) {
        expect(env.find((e) => e.name === key)?.valueFrom.secretKeyRef).to.deep.equal({ name: "app-connections", key });
      }
      expect(env[env.length - 1]).to.deep.equal({ name: "OTEL_SERVICE_NAME", value: "api" });
      expect(pod.configData.SMTP_HOST).to.equal(serviceHost("postfix", cfg.platform.mailNamespace));
    });

    it("maps the data tier's connection keys to env only for declared dependencies", () => {
      const sources = {
        app: { name: "app-secrets", keys: ["JWT_SECRET", "ENCRYPTION_KEY", "DB_USER", "DB_PASSWORD"] },
        connections: { name: "app-connections", keys: ["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MONGODB_URI"] },
        external: { name: "external-secrets", keys: ["STRIPE_SECRET_KEY"] },
      };
      const env = secretEnvFor(sources, ["redis"]);
      const names = env.map((e) => e.name);
      expect(names).to.deep.equal(["REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "JWT_SECRET", "ENCRYPTION_KEY", "STRIPE_SECRET_KEY"]);
      for (const e of env) expect((e.valueFrom as K8sObject).secretKeyRef.key).to.equal(e.name);
      expect(secretEnvFor(sources, ["postgres", "mongo"]).map((e) => e.name)).to.include.members(["DATABASE_URL", "DB_HOST", "DB_PORT", "DB_NAME", "MONGODB_URI", "DB_USER", "DB_PASSWORD"]);
      expect(keyOwner("CELERY_RESULT_BACKEND")).to.equal("redis");
    });
  });

  describe("bad configurations are rejected before any resource exists", () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["HPA min > max", { "services.api.hpa.minReplicas": 12 }, /services\.api\.hpa\.maxReplicas: must be >= minReplicas \(12\)/],
      ["latest in prod", { "services.api.image": "ghcr.io/example/email-api:latest" }, /services\.api\.image: must not use the mutable tag 'latest' in prod/],
      ["replicas outside the HPA range", { "services.api.replicas": 11 }, /services\.api\.replicas: must be within hpa\.minReplicas\.\.maxReplicas \(3\.\.10\)/],
      ["preStop longer than the grace period", { "services.api.preStopSeconds": 30 }, /services\.api\.preStopSeconds: must be < terminationGracePeriodSeconds \(30\)/],
      ["unknown key in a service", { "services.api.replica": 3 }, /services\.api\.replica: unknown key; did you mean "replicas"\?/],
      ["dependency on a disabled tier", { "mongo.enabled": false, "services.api.dependsOn": ["postgres", "mongo"] }, /services\.api\.dependsOn\.1: service "api" depends on mongo, but mongo is disabled/],
      ["two services on one path", { "services.web": { image: "ghcr.io/example/web:1.0.0", path: "/api" } }, /services\.web\.path: is already routed to service "api"/],
      ["a service without an image", { "services.web": { path: "/web" } }, /services\.web\.image/],
    ];
    for (const [what, set, message] of cases) {
      it(what, async () => {
        expect(await rejection({ stack: "prod", set })).to.match(message);
      });
    }
  });
});
