// The worked examples (examples/Pulumi.seed-*.yaml): each is evaluated once under mocks, checked
// like the real stacks (schema, namespaces, Pod Security, references, reachability) and compared
// with its seed's tables, written below as data (numbers from the seed documents, not the output).
import { expect } from "chai";
import type { Evaluation, K8sObject } from "./harness";
import { configOf, evaluate, objectsOfKind, ok, rejection } from "./harness";
import { bytes, cpuMillis } from "../config/quantity";
import { objectChecks } from "./object-checks";
import { diff, reachabilityMatrix } from "./reachability";

type Res = [cpuReq: string, cpuLim: string, memReq: string, memLim: string];
interface Scaled {
  replicas: [min: number, max: number];
  targets: [cpu: number, memory?: number];
  res: Res;
}
interface Seed {
  stack: string;
  secrets?: Record<string, string>;
  /** Deployments with an HPA (HTTP services, frontends, worker pools). */
  scaled: Record<string, Scaled>;
  /** Every Deployment and StatefulSet the system runs. */
  workloads: string[];
  /** StatefulSet -> [size, storageClass?] of its data volume, and its resources. */
  stores: Record<string, { size: string; storageClass?: string; res?: Res }>;
  /** "path -> service" over both Ingresses. */
  routes: string[];
  queues?: string[];
  /**
   * What the seed's text says leaves the cluster: workload -> ports, to public addresses. Seed 001
   * calls OpenAI from chat and Stripe from billing (OPENAI_API_KEY, STRIPE_SECRET_KEY); seed 002's
   * backend and Celery workers call AI APIs ("External HTTPS allowed for AI APIs"); seed 003's
   * SMTP server relays out on 25/465/587; seed 004 calls nothing outside.
   */
  outbound: Record<string, number[]>;
}

const SEEDS: Seed[] = [
  {
    stack: "seed-001-saas-chat",
    secrets: { openaiApiKey: "sk-test", stripeSecretKey: "sk-test" },
    scaled: {
      auth: { replicas: [2, 10], targets: [70, 80], res: ["250m", "500m", "256Mi", "512Mi"] },
      chat: { replicas: [3, 20], targets: [70, 80], res: ["300m", "750m", "384Mi", "768Mi"] },
      billing: { replicas: [2, 8], targets: [70, 80], res: ["250m", "500m", "256Mi", "512Mi"] },
    },
    workloads: ["auth", "chat", "billing", "postgres", "redis", "jaeger"],
    stores: {
      postgres: { size: "10Gi", res: ["250m", "1000m", "256Mi", "1Gi"] },
      redis: { size: "5Gi", res: ["100m", "500m", "128Mi", "512Mi"] },
      jaeger: { size: "20Gi", res: ["100m", "500m", "256Mi", "512Mi"] },
    },
    routes: ["/api/auth -> auth", "/api/chat -> chat", "/api/billing -> billing", "/jaeger -> jaeger"],
    outbound: { chat: [443], billing: [443] },
  },
  {
    stack: "seed-002-backend-celery",
    scaled: {
      backend: { replicas: [3, 10], targets: [70, 80], res: ["500m", "2000m", "512Mi", "2Gi"] },
      frontend: { replicas: [2, 5], targets: [60, 70], res: ["100m", "500m", "128Mi", "512Mi"] },
      "worker-default": { replicas: [2, 5], targets: [80, 85], res: ["500m", "2000m", "1Gi", "3Gi"] },
    },
    workloads: ["backend", "frontend", "worker-default", "beat", "flower", "mongo", "redis", "chroma"],
    stores: { mongo: { size: "100Gi", storageClass: "fast-ssd" }, redis: { size: "20Gi", storageClass: "fast-ssd" }, chroma: { size: "50Gi", storageClass: "fast-ssd" } },
    routes: ["/ -> frontend", "/api -> backend", "/flower -> flower"],
    queues: ["default", "audio_processing", "ai_analysis", "embeddings"],
    outbound: { backend: [443], "worker-default": [443] },
  },
  {
    stack: "seed-003-smtp",
    scaled: {},
    // The blackbox exporter probes the mail ports (monitoring is on in prod).
    workloads: ["postfix", "dovecot", "blackbox-exporter"],
    stores: { postfix: { size: "10Gi", storageClass: "fast-ssd", res: ["500m", "2000m", "512Mi", "2Gi"] } },
    routes: [],
    outbound: { postfix: [25, 465, 587] },
  },
  {
    stack: "seed-004-autoscaling",
    scaled: {
      backend: { replicas: [2, 10], targets: [70, 80], res: ["500m", "1000m", "512Mi", "1Gi"] },
      frontend: { replicas: [2, 5], targets: [70, 80], res: ["100m", "500m", "128Mi", "256Mi"] },
    },
    workloads: ["backend", "frontend"],
    stores: {},
    routes: ["/ -> frontend", "/api -> backend"],
    outbound: {},
  },
];

const named = (ev: Evaluation, kind: string, name: string): K8sObject | undefined => objectsOfKind(ev, kind).find((o) => o.metadata.name === name);
const resOf = (c: K8sObject): Res => [c.resources.requests.cpu, c.resources.limits.cpu, c.resources.requests.memory, c.resources.limits.memory];
/** Quantities compare by value: the seed's 2000m is the config's 2. */
const norm = (r: Res): Res => r.map((q) => (/^\d+000m$/.test(q) ? String(Number(q.slice(0, -4))) : q)) as Res;

/** One evaluation per example, shared by every block below. */
const evaluations = new Map<string, Promise<Evaluation>>();
function loadExample(stack: string): Promise<Evaluation> {
  const seed = SEEDS.find((s) => s.stack === stack)!;
  if (!evaluations.has(stack)) evaluations.set(stack, evaluate({ stack, file: `examples/Pulumi.${stack}.yaml`, secrets: seed.secrets }));
  return evaluations.get(stack)!;
}

for (const seed of SEEDS) {
  const file = `examples/Pulumi.${seed.stack}.yaml`;
  const load = () => loadExample(seed.stack);

  describe(`example ${file}`, () => {
    let ev: Evaluation;
    before(async () => {
      ev = ok(await load());
    });

    it("runs exactly the seed's workloads", () => {
      const names = [...objectsOfKind(ev, "Deployment"), ...objectsOfKind(ev, "StatefulSet")].map((o) => o.metadata.name);
      expect(names.sort()).to.deep.equal([...seed.workloads].sort());
    });

    it("scales each service within the seed's range and targets, with its resources, a PDB and zero-downtime rollouts", () => {
      for (const [name, s] of Object.entries(seed.scaled)) {
        const hpa = named(ev, "HorizontalPodAutoscaler", name);
        expect([hpa.spec.minReplicas, hpa.spec.maxReplicas], name).to.deep.equal(s.replicas);
        const targets = hpa.spec.metrics.map((m: K8sObject) => m.resource.target.averageUtilization);
        expect(targets, name).to.deep.equal(s.targets);
        const dep = named(ev, "Deployment", name);
        expect(norm(resOf(dep.spec.template.spec.containers[0])), name).to.deep.equal(norm(s.res));
        expect(dep.spec.strategy.rollingUpdate.maxUnavailable, name).to.equal(0);
        expect(named(ev, "PodDisruptionBudget", name)?.spec.maxUnavailable, name).to.equal(1);
      }
    });

    it("gives each store the seed's volume size, class and resources", () => {
      for (const [name, s] of Object.entries(seed.stores)) {
        const sts = named(ev, "StatefulSet", name) ?? named(ev, "Deployment", name);
        const claim = sts.spec.volumeClaimTemplates?.[0]?.spec ?? objectsOfKind(ev, "PersistentVolumeClaim").find((p) => p.metadata.name.startsWith(name))?.spec;
        expect(claim?.resources.requests.storage, name).to.equal(s.size);
        expect(claim?.storageClassName, name).to.equal(s.storageClass);
        if (s.res) expect(norm(resOf(sts.spec.template.spec.containers.find((c: K8sObject) => c.name === name) ?? sts.spec.template.spec.containers[0])), name).to.deep.equal(norm(s.res));
      }
    });

    it("routes the seed's paths at the edge, and nothing else", () => {
      const routes = objectsOfKind(ev, "Ingress").flatMap((i) => i.spec.rules[0].http.paths.map((p: K8sObject) => `${p.path} -> ${p.backend.service.name}`));
      expect(routes.sort()).to.deep.equal([...seed.routes].sort());
    });

    it("allows exactly the declared traffic graph", () => {
      const m = reachabilityMatrix(ev);
      expect(diff(m.actual, m.expected)).to.deep.equal({ missing: [], extra: [] });
    });

    it(`reaches outside the cluster exactly where the seed calls out (${Object.entries(seed.outbound).map(([w, p]) => `${w} ${p.join("/")}`).join(", ") || "nowhere"})`, () => {
      const m = reachabilityMatrix(ev);
      const outside = new Set(m.endpoints.filter((e) => !e.namespace).map((e) => e.id));
      // Every (workload, port) that reaches an address outside the cluster, from the policies as Kubernetes reads them.
      const reached = new Set(
        m.actual
          .map((t) => t.split(" "))
          .filter(([, , to]) => outside.has(to))
          .map(([from, , , port]) => `${from.split("/")[1]} ${port}`),
      );
      const calls = Object.entries(seed.outbound).flatMap(([w, ports]) => ports.map((p) => `${w} ${p}/TCP`));
      // The platform's own way out: Patroni keeps its leader lock in the Kubernetes API (cluster.apiServer).
      const cfg = configOf(ev);
      const own = cfg.postgres.enabled && cfg.postgres.mode === "patroni" ? (cfg.cluster.apiServer?.ports ?? []).map((p) => `postgres ${p}/TCP`) : [];
      expect([...reached].sort()).to.deep.equal([...calls, ...own].sort());
      // And the public internet is one of the places each of them reaches.
      for (const w of Object.keys(seed.outbound)) expect(m.actual.some((t) => t.includes(`/${w} -> internet `)), w).to.equal(true);
    });

    if (seed.queues) {
      it("consumes the seed's Celery queues", () => {
        const args: string[] = named(ev, "Deployment", "worker-default").spec.template.spec.containers[0].args ?? [];
        const cmd = [...(named(ev, "Deployment", "worker-default").spec.template.spec.containers[0].command ?? []), ...args].join(" ");
        expect(cmd).to.include(`--queues ${seed.queues!.join(",")}`);
      });
    }
  });

  objectChecks(seed.stack, async () => ok(await load()));
}

describe("example seed-003-smtp: the seed's SMTP limits, LimitRange and mail egress", () => {
  let ev: Evaluation;
  before(async () => {
    ev = ok(await loadExample("seed-003-smtp"));
  });

  it("limits messages to 25 MiB and 100 recipients", () => {
    const mainCf = Object.values(named(ev, "ConfigMap", "postfix-config").data as Record<string, string>).join("\n");
    expect(mainCf).to.match(new RegExp(`^message_size_limit = ${25 * 1024 * 1024}$`, "m"));
    expect(mainCf).to.match(/^smtpd_recipient_limit = 100$/m);
  });

  it("bounds containers with the seed's LimitRange", () => {
    const lr = objectsOfKind(ev, "LimitRange").find((l) => l.metadata.namespace === "mail").spec.limits.find((l: K8sObject) => l.type === "Container");
    expect(lr.defaultRequest).to.deep.equal({ cpu: "200m", memory: "256Mi" });
    expect(lr.default).to.deep.equal({ cpu: "1000m", memory: "1Gi" });
    expect(lr.min).to.deep.equal({ cpu: "50m", memory: "64Mi" });
    expect(lr.max).to.deep.equal({ cpu: "4000m", memory: "8Gi" });
  });

  it("lets only Postfix reach the internet, on SMTP ports", () => {
    const out = reachabilityMatrix(ev).actual.filter((t) => t.includes(" -> internet "));
    expect(out).to.include("mail/postfix -> internet 25/TCP");
    expect(out.every((t) => /^mail\/postfix -> internet (25|465|587)\/TCP$/.test(t)), out.join("\n")).to.equal(true);
  });
});

describe("example seed-004-autoscaling: the write-up's scaling, probes, PDB, affinity and load balancing", () => {
  // Seed 004: scale up 100% or 2 pods every 30 s (no window, the larger wins); scale down 50% or 1
  // pod per 60 s after 5 minutes (the smaller wins); probes /health/live and /health/ready every
  // 10 s / 5 s; a 5-minute startup budget; ClientIP affinity for 3 hours; EWMA balancing; retries
  // on errors (502/503/504), 3 attempts with a 10 s timeout; keepalive 100 connections, 60 s.
  const SEED = {
    scaleUp: { stabilizationWindowSeconds: 0, selectPolicy: "Max", policies: [["Percent", 100, 30], ["Pods", 2, 30]] },
    scaleDown: { stabilizationWindowSeconds: 300, selectPolicy: "Min", policies: [["Percent", 50, 60], ["Pods", 1, 60]] },
    liveness: ["/health/live", 10],
    readiness: ["/health/ready", 5],
    startupSeconds: 300,
    affinitySeconds: 3 * 3600,
    loadBalance: "ewma",
    retryOn: ["error", "timeout", "http_502", "http_503", "http_504"],
    tries: 3,
    retryTimeoutSeconds: 10,
    keepalive: { connections: 100, timeoutSeconds: 60 },
  };
  const A = "nginx.ingress.kubernetes.io";
  let ev: Evaluation;
  before(async () => {
    ev = ok(await loadExample("seed-004-autoscaling"));
  });

  it("scales up within 30 s and down conservatively, as the write-up, on both tiers", () => {
    for (const name of ["backend", "frontend"]) {
      const b = named(ev, "HorizontalPodAutoscaler", name).spec.behavior;
      for (const dir of ["scaleUp", "scaleDown"] as const) {
        const rules = b[dir];
        expect([rules.stabilizationWindowSeconds, rules.selectPolicy], `${name} ${dir}`).to.deep.equal([SEED[dir].stabilizationWindowSeconds, SEED[dir].selectPolicy]);
        expect(rules.policies.map((p: K8sObject) => [p.type, p.value, p.periodSeconds]), `${name} ${dir}`).to.deep.equal(SEED[dir].policies);
      }
    }
  });

  it("probes the backend on /health/live and /health/ready with a 5-minute startup budget", () => {
    const c = named(ev, "Deployment", "backend").spec.template.spec.containers[0];
    expect([c.livenessProbe.httpGet.path, c.livenessProbe.periodSeconds]).to.deep.equal(SEED.liveness);
    expect([c.readinessProbe.httpGet.path, c.readinessProbe.periodSeconds]).to.deep.equal(SEED.readiness);
    expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).to.be.at.least(SEED.startupSeconds);
  });

  it("publishes the backend on a load balancer with ClientIP affinity for 3 hours", () => {
    const lb = named(ev, "Service", "backend-lb");
    expect(lb.spec.type).to.equal("LoadBalancer");
    expect(lb.spec.sessionAffinity).to.equal("ClientIP");
    expect(lb.spec.sessionAffinityConfig.clientIP.timeoutSeconds).to.equal(SEED.affinitySeconds);
  });

  it("balances by EWMA and retries failed tries on another pod, per route, each tier on an Ingress of its own", () => {
    for (const name of ["backend", "frontend"]) {
      const ing = named(ev, "Ingress", `webapp-public-${name}`);
      expect(ing.spec.rules[0].http.paths.map((p: K8sObject) => p.backend.service.name), name).to.deep.equal([name]);
      expect(ing.metadata.annotations, name).to.include({
        [`${A}/load-balance`]: SEED.loadBalance,
        [`${A}/proxy-next-upstream`]: SEED.retryOn.join(" "),
        [`${A}/proxy-next-upstream-tries`]: String(SEED.tries),
        [`${A}/proxy-next-upstream-timeout`]: String(SEED.retryTimeoutSeconds),
      });
    }
    // Nothing is left on the shared public Ingress.
    expect(named(ev, "Ingress", "webapp-public")).to.equal(undefined);
  });

  it("publishes the controller's keepalive settings (a ConfigMap setting in ingress-nginx, not an annotation)", () => {
    const settings = ev.outputs.ingressControllerSettings as Record<string, string>;
    expect(settings["upstream-keepalive-connections"]).to.equal(String(SEED.keepalive.connections));
    expect(settings["upstream-keepalive-timeout"]).to.equal(String(SEED.keepalive.timeoutSeconds));
    for (const ing of objectsOfKind(ev, "Ingress")) expect(Object.keys(ing.metadata.annotations).filter((k) => k.includes("keepalive")), ing.metadata.name).to.deep.equal([]);
  });
});

describe("examples seed-001 and seed-003: secrets and mail replicas", () => {
  it("seed 001: the third-party keys reach every service through secretKeyRef only", async () => {
    const ev = ok(await loadExample("seed-001-saas-chat"));
    for (const name of ["auth", "chat", "billing"]) {
      const env = named(ev, "Deployment", name).spec.template.spec.containers[0].env as K8sObject[];
      for (const key of ["OPENAI_API_KEY", "STRIPE_SECRET_KEY"]) {
        const e = env.find((x) => x.name === key);
        expect(e?.valueFrom?.secretKeyRef?.key, `${name} ${key}`).to.equal(key);
        expect(e?.value, `${name} ${key}`).to.equal(undefined);
      }
    }
  });

  it("seed 003: three Postfix replicas, drained one at a time", async () => {
    const ev = ok(await loadExample("seed-003-smtp"));
    expect(named(ev, "StatefulSet", "postfix").spec.replicas).to.equal(3);
    expect(named(ev, "PodDisruptionBudget", "postfix").spec.maxUnavailable).to.equal(1);
  });

  it("seed 003: Postfix requests 1Gi of ephemeral storage and is limited to 5Gi", async () => {
    const ev = ok(await loadExample("seed-003-smtp"));
    const postfix = named(ev, "StatefulSet", "postfix").spec.template.spec.containers.find((c: K8sObject) => c.name === "postfix");
    expect([postfix.resources.requests["ephemeral-storage"], postfix.resources.limits["ephemeral-storage"]]).to.deep.equal(["1Gi", "5Gi"]);
  });
});

describe("examples seed-002 and seed-003: the seeds' fixed quotas as ceilings", () => {
  // Seed 002: 20 CPU and 40Gi memory (requests); seed 003: requests 10 CPU / 20Gi, limits 20 CPU / 40Gi, 20 pods.
  const SEED_QUOTA: Record<string, Record<string, string>> = {
    "seed-002-backend-celery": { "requests.cpu": "20", "requests.memory": "40Gi" },
    "seed-003-smtp": { "requests.cpu": "10", "requests.memory": "20Gi", "limits.cpu": "20", "limits.memory": "40Gi", pods: "20" },
  };
  for (const [stack, ceiling] of Object.entries(SEED_QUOTA)) {
    it(`${stack}: every namespace's computed quota stays within the seed's`, async () => {
      const ev = ok(await loadExample(stack));
      const quotas = objectsOfKind(ev, "ResourceQuota");
      expect(quotas.length).to.be.greaterThan(0);
      for (const q of quotas) {
        for (const [key, max] of Object.entries(ceiling)) {
          const read = key.endsWith("cpu") ? cpuMillis : key === "pods" ? Number : bytes;
          expect(read(q.spec.hard[key]), `${q.metadata.namespace} ${key}`).to.be.at.most(read(max));
        }
      }
    });
  }

  it("seed-003-smtp: more Postfix replicas than the seed's quota admits are refused, naming mail.postfix, before anything is registered", async () => {
    const message = await rejection({ stack: "seed-003-smtp", file: "examples/Pulumi.seed-003-smtp.yaml", set: { "mail.postfix.replicas": 10 } });
    expect(message).to.match(/platform\.quota\.max\.limitsCpu: the mail namespace's computed quota needs limits\.cpu \S+ .*above the ceiling 20; biggest contributors: mail\.postfix /);
  });
});
