// The per-workload knobs, in every stack: egress destinations, HPA behaviour and hpa.enabled,
// ephemeral storage, per-route ingress settings and schema migrations. One evaluation per stack
// sets all of them on a new service and a new worker pool (with the seeds' own values where a seed
// gives them); expectations come from config and from the seeds' numbers written below as data.
import { expect } from "chai";
import type { EgressDestination } from "../config/egress";
import { internetExcept } from "../config/egress";
import { APP_EPHEMERAL_STORAGE, defaultHpaBehavior } from "../config/common";
import { inventory, surgePods } from "../config/inventory";
import type { HttpServiceConfig } from "../config/app";
import type { PlatformConfig } from "../config/schema";
import { keyOwner } from "../components/lib/appwiring";
import { migrationImage, migrationJobName } from "../components/migration";
import { routeIngressName, routeAnnotations, publicIngressName } from "../components/edge";
import { podSecurityViolations, validateObject } from "./checks";
import type { Evaluation, K8sObject } from "./harness";
import { STACKS, configOf, container, evaluate, findObject, objectsOfKind, ok, podSpec, recordOf } from "./harness";
import { objectChecks } from "./object-checks";
import type { GraphData, PolicyObject } from "./reachability";
import { allowed, diff, reachabilityMatrix } from "./reachability";

/** Seed 003's HPA block (its selectPolicy for scale-down is Kubernetes' default, Max). */
const SEED_003_BEHAVIOR = {
  scaleUp: {
    stabilizationWindowSeconds: 0,
    selectPolicy: "Max",
    policies: [
      { type: "Percent", value: 100, periodSeconds: 15 },
      { type: "Pods", value: 4, periodSeconds: 15 },
    ],
  },
  scaleDown: { stabilizationWindowSeconds: 300, selectPolicy: "Max", policies: [{ type: "Percent", value: 10, periodSeconds: 60 }] },
};
/** Seed 004: 100% or 2 pods every 30 s up; 50% or 1 pod per 60 s down after 5 minutes. */
const SEED_004_BEHAVIOR = {
  scaleUp: {
    stabilizationWindowSeconds: 0,
    selectPolicy: "Max",
    policies: [
      { type: "Percent", value: 100, periodSeconds: 30 },
      { type: "Pods", value: 2, periodSeconds: 30 },
    ],
  },
  scaleDown: {
    stabilizationWindowSeconds: 300,
    selectPolicy: "Min",
    policies: [
      { type: "Percent", value: 50, periodSeconds: 60 },
      { type: "Pods", value: 1, periodSeconds: 60 },
    ],
  },
};
const EGRESS: Record<string, EgressDestination> = {
  openai: { internet: true, ports: [443] },
  payments: { cidrs: ["192.0.2.0/24", "198.51.100.0/25"], ports: [443, 8443] },
};
/** A cluster range outside the private ones (some clusters run pods on public addresses). */
const CLUSTER_CIDR = "198.18.0.0/15";
const MIGRATION = { command: ["alembic", "upgrade", "head"], dependsOn: ["postgres"] };
const A = "nginx.ingress.kubernetes.io";

const SET: Record<string, unknown> = {
  "services.chat": {
    image: "ghcr.io/example/chat:2.0.0",
    path: "/api/chat",
    dependsOn: ["postgres", "redis"],
    egress: EGRESS,
    hpa: { behavior: SEED_003_BEHAVIOR },
    // Seed 003's ephemeral storage.
    resources: { requests: { cpu: "250m", memory: "256Mi", "ephemeral-storage": "1Gi" }, limits: { cpu: "500m", memory: "512Mi", "ephemeral-storage": "5Gi" } },
    // Seed 004's load balancing and retries, plus timeouts.
    ingress: { loadBalance: "ewma", retry: { on: ["error", "timeout", "http_502", "http_503", "http_504"], tries: 3, timeoutSeconds: 10 }, timeouts: { connectSeconds: 5, sendSeconds: 30, readSeconds: 120 } },
    migration: MIGRATION,
  },
  // Seed 000's manual scaling: no HPA, a fixed count.
  "services.api.hpa.enabled": false,
  "services.api.replicas": 3,
  "workers.pools.ai": { queues: ["ai_analysis"], egress: { openai: EGRESS.openai }, hpa: { behavior: SEED_004_BEHAVIOR } },
  // A store may call out too (an extension fetching from an external API).
  "postgres.egress": { "extension-api": { cidrs: ["198.51.100.128/25"], ports: [443] } },
  "platform.clusterCidrs": [CLUSTER_CIDR],
  "edge.upstreamKeepalive": { connections: 100, timeoutSeconds: 60 },
};

function chatOf(cfg: PlatformConfig): HttpServiceConfig {
  const s = cfg.services.chat;
  if (s.kind !== "http") throw new Error("chat is an http service");
  return s;
}

const evaluations = new Map<string, Promise<Evaluation>>();
function knobbed(stack: string): Promise<Evaluation> {
  if (!evaluations.has(stack)) evaluations.set(stack, evaluate({ stack, set: SET }));
  return evaluations.get(stack)!;
}

for (const stack of STACKS) {
  describe(`knobs (${stack})`, () => {
    let ev: Evaluation;
    let cfg: PlatformConfig;
    before(async () => {
      ev = ok(await knobbed(stack));
      cfg = configOf(ev);
    });

    describe("egress", () => {
      it("turns each destination into an egress rule of the workload's policy: internet minus private and cluster ranges, or the CIDRs, on the ports", () => {
        const rules = findObject(ev, "NetworkPolicy", "allow-chat").spec.egress as K8sObject[];
        const ports = (ps: number[]) => ps.map((port) => ({ port, protocol: "TCP" }));
        expect(rules).to.deep.include({ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: internetExcept(cfg.platform.clusterCidrs) } }], ports: ports(EGRESS.openai.ports) });
        expect(internetExcept(cfg.platform.clusterCidrs)).to.include(CLUSTER_CIDR);
        for (const cidr of EGRESS.payments.cidrs!) expect(rules).to.deep.include({ to: [{ ipBlock: { cidr } }], ports: ports(EGRESS.payments.ports) });
        const pool = findObject(ev, "NetworkPolicy", "allow-worker-ai").spec.egress as K8sObject[];
        expect(pool.filter((r) => r.to[0].ipBlock)).to.deep.equal([{ to: [{ ipBlock: { cidr: "0.0.0.0/0", except: internetExcept(cfg.platform.clusterCidrs) } }], ports: ports([443]) }]);
      });

      it("reaches exactly the declared destinations: the reachability matrix equals the graph, egress edges included, and nothing else gains egress", () => {
        const m = reachabilityMatrix(ev);
        expect(diff(m.actual, m.expected)).to.deep.equal({ missing: [], extra: [] });
        const ns = cfg.platform.namespace;
        const out = (from: string) => m.actual.filter((t) => t.startsWith(`${ns}/${from} -> `) && !/ -> [^ ]*\//.test(t.slice(t.indexOf(" -> "))));
        expect(out("chat")).to.include.members([`${ns}/chat -> internet 443/TCP`, `${ns}/chat -> cidr:payments 192.0.2.0/24 8443/TCP`, `${ns}/chat -> cidr:payments 198.51.100.0/25 443/TCP`]);
        expect(out("chat").filter((t) => / 8443\/TCP$/.test(t) && t.includes("internet"))).to.deep.equal([]);
        expect(out("worker-ai")).to.include(`${ns}/worker-ai -> internet 443/TCP`);
        expect(out("postgres")).to.deep.equal([`${ns}/postgres -> cidr:extension-api 198.51.100.128/25 443/TCP`]);
        expect(findObject(ev, "NetworkPolicy", "allow-postgres").spec.egress).to.deep.include({ to: [{ ipBlock: { cidr: "198.51.100.128/25" } }], ports: [{ port: 443, protocol: "TCP" }] });
        // Workloads that declare nothing reach nothing outside the cluster.
        for (const w of ["api", "worker-default", "beat", "redis", "mongo"]) expect(out(w), w).to.deep.equal([]);
        const graph = ev.outputs.dependencyGraph as GraphData;
        expect(graph.edges.filter((e) => e.from === "chat" && typeof e.to !== "string").map((e) => e.reason)).to.include.members(["chat calls openai (egress.openai)", "chat calls payments (egress.payments)"]);
      });

      it("never reaches the cluster's own range as internet", () => {
        const m = reachabilityMatrix(ev);
        const policies = objectsOfKind(ev, "NetworkPolicy") as PolicyObject[];
        const chat = m.endpoints.find((e) => e.id === `${cfg.platform.namespace}/chat`)!;
        const outside = (ip: string) => ({ id: ip, namespaceLabels: {}, labels: {}, ip, ports: [], managed: false });
        expect(allowed(policies, chat, outside("198.18.3.4"), 443, "TCP")).to.equal(false);
        expect(allowed(policies, chat, outside("10.1.2.3"), 443, "TCP")).to.equal(false);
        expect(allowed(policies, chat, outside("8.8.8.8"), 443, "TCP")).to.equal(true);
      });
    });

    describe("HPA behaviour and hpa.enabled", () => {
      it("gives each service and pool its configured behaviour (seed 003's and seed 004's values); the rest keep the platform's", () => {
        expect(findObject(ev, "HorizontalPodAutoscaler", "chat").spec.behavior).to.deep.equal(SEED_003_BEHAVIOR);
        expect(findObject(ev, "HorizontalPodAutoscaler", "worker-ai").spec.behavior).to.deep.equal(SEED_004_BEHAVIOR);
        expect(findObject(ev, "HorizontalPodAutoscaler", "worker-default").spec.behavior).to.deep.equal(defaultHpaBehavior());
        expect(chatOf(cfg).hpa.behavior).to.deep.equal(SEED_003_BEHAVIOR);
      });

      it("hpa.enabled false: no HPA, the configured replicas owned by the config, surge, PDB and quota from that count", () => {
        const api = cfg.services.api;
        expect(api.hpa.enabled).to.equal(false);
        expect(objectsOfKind(ev, "HorizontalPodAutoscaler").map((h) => h.metadata.name)).to.not.include("api");
        const d = findObject(ev, "Deployment", "api");
        expect(d.spec.replicas).to.equal(api.replicas);
        expect(recordOf(ev, "Deployment", "api").options.ignoreChanges).to.not.include("spec.replicas");
        expect(recordOf(ev, "Deployment", "chat").options.ignoreChanges).to.include("spec.replicas");
        expect(d.spec.strategy.rollingUpdate.maxSurge).to.equal(surgePods(api.replicas));
        expect(findObject(ev, "PodDisruptionBudget", "api").spec.maxUnavailable).to.equal(1);
        const group = inventory(cfg).find((g) => g.name === "api")!;
        // The HPA maximum no longer counts: the fixed count does.
        expect([group.maxPods, group.surge]).to.deep.equal([api.replicas, surgePods(api.replicas)]);
        expect(api.hpa.maxReplicas).to.not.equal(api.replicas);
      });
    });

    it("ephemeral storage: the configured request and limit (seed 003's), the app default elsewhere", async () => {
      const chat = container(findObject(ev, "Deployment", "chat"));
      expect(chat.resources).to.deep.equal(chatOf(cfg).resources);
      expect([chat.resources.requests["ephemeral-storage"], chat.resources.limits["ephemeral-storage"]]).to.deep.equal(["1Gi", "5Gi"]);
      const defaults = { request: APP_EPHEMERAL_STORAGE.request, limit: APP_EPHEMERAL_STORAGE.limit };
      for (const name of ["api", "worker-default", "worker-ai", "beat"]) {
        const r = container(findObject(ev, "Deployment", name)).resources;
        expect({ request: r.requests["ephemeral-storage"], limit: r.limits["ephemeral-storage"] }, name).to.deep.equal(defaults);
      }
      await validateObject(findObject(ev, "Deployment", "chat"));
    });

    it("ingress: the route's settings as annotations on an Ingress of its own; the shared Ingress keeps the others; keepalive goes to the controller's settings", async () => {
      const own = findObject(ev, "Ingress", routeIngressName(cfg, "chat"));
      expect(own.spec.rules.flatMap((r: K8sObject) => r.http.paths.map((p: K8sObject) => `${p.path} -> ${p.backend.service.name}:${p.backend.service.port.number}`))).to.deep.equal(
        cfg.edge.hosts.map(() => `/api/chat -> chat:${chatOf(cfg).ports.http}`),
      );
      const expected = routeAnnotations(chatOf(cfg).ingress);
      expect(expected).to.deep.equal({
        [`${A}/load-balance`]: "ewma",
        [`${A}/proxy-next-upstream`]: "error timeout http_502 http_503 http_504",
        [`${A}/proxy-next-upstream-tries`]: "3",
        [`${A}/proxy-next-upstream-timeout`]: "10",
        [`${A}/proxy-connect-timeout`]: "5",
        [`${A}/proxy-send-timeout`]: "30",
        [`${A}/proxy-read-timeout`]: "120",
      });
      expect(own.metadata.annotations).to.include(expected);
      const shared = findObject(ev, "Ingress", publicIngressName(cfg));
      expect(shared.spec.rules[0].http.paths.map((p: K8sObject) => p.backend.service.name)).to.not.include("chat");
      expect(Object.keys(shared.metadata.annotations).filter((k) => k in expected)).to.deep.equal([]);
      // Both are public Ingresses: the same CORS, headers, rate limits and TLS.
      for (const k of [`${A}/enable-cors`, `${A}/limit-rpm`, `${A}/ssl-redirect`]) expect(own.metadata.annotations[k], k).to.equal(shared.metadata.annotations[k]);
      expect(own.spec.tls).to.deep.equal(shared.spec.tls);
      expect(ev.outputs.ingressControllerSettings).to.include({ "upstream-keepalive-connections": "100", "upstream-keepalive-timeout": "60" });
      await validateObject(own);
    });

    describe("schema migration", () => {
      let job: K8sObject;
      before(() => {
        const jobs = objectsOfKind(ev, "Job").filter((j) => j.metadata.name.startsWith("chat-migrate-"));
        expect(jobs).to.have.length(1);
        job = jobs[0];
      });

      it("is a Job named by its image and command, as the service's account, with the service's settings and only its stores' credentials", async () => {
        const chat = chatOf(cfg);
        expect(job.metadata.name).to.equal(migrationJobName("chat", chat.image!, MIGRATION.command));
        const c = container(job);
        expect(c.image).to.equal(chat.image);
        expect(c.command).to.deep.equal(MIGRATION.command);
        expect(c.envFrom).to.deep.equal([{ configMapRef: { name: "chat-config" } }]);
        const owners = new Set((c.env as K8sObject[]).map((e) => keyOwner(e.name)).filter((o) => o !== undefined));
        expect([...owners]).to.deep.equal(["postgres"]);
        expect(c.env.find((e: K8sObject) => e.name === "DATABASE_URL").valueFrom.secretKeyRef.key).to.equal("DATABASE_URL");
        expect(c.resources).to.deep.equal(chat.resources);
        const spec = podSpec(job);
        expect(spec.serviceAccountName).to.equal("chat");
        expect(podSecurityViolations(spec, "restricted")).to.deep.equal([]);
        expect([job.spec.backoffLimit, job.spec.activeDeadlineSeconds]).to.deep.equal([chat.migration!.backoffLimit, chat.migration!.timeoutSeconds]);
        expect(job.metadata.annotations["pulumi.com/replaceUnready"]).to.equal("true");
        await validateObject(job);
      });

      it("runs after the stores and its NetworkPolicy, before the Deployment, and a finished Job is never rerun in place", () => {
        const rec = recordOf(ev, "Job", job.metadata.name);
        const postgres = recordOf(ev, "StatefulSet", "postgres").urn;
        const policy = recordOf(ev, "NetworkPolicy", "allow-chat-migrate").urn;
        expect(rec.options.dependsOn).to.include.members([postgres, policy, recordOf(ev, "ConfigMap", "chat-config").urn]);
        expect(rec.options.ignoreChanges).to.deep.equal(["spec"]);
        expect(recordOf(ev, "Deployment", "chat").options.dependsOn).to.include(rec.urn);
        expect(recordOf(ev, "Deployment", "api").options.dependsOn).to.not.include(rec.urn);
      });

      it("reaches only its stores", () => {
        const graph = ev.outputs.dependencyGraph as GraphData;
        expect(graph.edges.filter((e) => e.from === "chat-migrate").map((e) => `${e.to}:${e.ports.map((p) => p.port).join(",")}`)).to.deep.equal(["postgres:5432"]);
        const ns = cfg.platform.namespace;
        const reached = reachabilityMatrix(ev).actual.filter((t) => t.startsWith(`${ns}/${job.metadata.name} -> `) && !t.includes("kube-dns"));
        expect(reached).to.deep.equal([`${ns}/${job.metadata.name} -> ${ns}/postgres 5432/TCP`]);
      });
    });

    objectChecks(`knobs (${stack})`, () => knobbed(stack));
  });
}

describe("knobs: what reruns a migration, and what a disabled one leaves", () => {
  const name = (overrides: Record<string, unknown>) => {
    const cfg = configOf("prod", { services: { chat: { ...(SET["services.chat"] as object), ...overrides } } });
    const chat = chatOf(cfg);
    return migrationJobName("chat", migrationImage(chat, chat.migration!, "chat"), chat.migration!.command);
  };

  it("a new image or command is a new Job; resources, timeouts and the stores it needs are not", () => {
    const base = name({});
    expect(name({ image: "ghcr.io/example/chat:2.0.1" })).to.not.equal(base);
    expect(name({ migration: { ...MIGRATION, command: ["alembic", "upgrade", "heads"] } })).to.not.equal(base);
    expect(name({ migration: { ...MIGRATION, image: "ghcr.io/example/chat-migrations:7" } })).to.not.equal(base);
    expect(name({ migration: { ...MIGRATION, timeoutSeconds: 60, backoffLimit: 2 } })).to.equal(base);
    expect(name({ migration: { ...MIGRATION, resources: { requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "2", memory: "2Gi" } } } })).to.equal(base);
    expect(name({ replicas: 5, env: { FEATURE: "on" } })).to.equal(base);
  });

  it("migration.enabled false: no Job, no edge, the Deployment depends on nothing of it", async () => {
    const ev = ok(await evaluate({ stack: "prod", set: { ...SET, "services.chat": { ...(SET["services.chat"] as object), migration: { ...MIGRATION, enabled: false } } } }));
    expect(objectsOfKind(ev, "Job").map((j) => j.metadata.name).filter((n) => n.startsWith("chat-migrate"))).to.deep.equal([]);
    expect((ev.outputs.dependencyGraph as GraphData).edges.filter((e) => e.from === "chat-migrate")).to.deep.equal([]);
    expect(inventory(configOf(ev)).map((g) => g.name)).to.not.include("chat-migrate");
  });
});
